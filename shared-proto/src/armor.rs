//! The ASCII-armored text form of sync data and license files.
//!
//! ```text
//! -----BEGIN SOLME LICENSE FILE-----
//! Server-Id: 6f0c…
//! Valid-Until: 2027-11-28T10:00:00Z
//!
//! U09MRQEx…  (base64, 64 characters a line)
//! -----END SOLME LICENSE FILE-----
//! ```
//!
//! Decoding is tolerant of what mail clients and copy-paste do to text: CRLF line ends,
//! quoting (`> `, `>> `), indentation, trailing spaces, and text before and after the
//! block. Headers are informative only: the signed body decides everything.

use base64::Engine;

use crate::error::ProtoError;

/// Largest armored text accepted (a license file with many licenses is a few KiB).
pub const MAX_ARMORED_LEN: usize = 256 * 1024;
const MAX_HEADERS: usize = 16;
const MAX_HEADER_LEN: usize = 256;
const LINE_WIDTH: usize = 64;

/// The armored file types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArmorKind {
    SyncData,
    LicenseFile,
    /// A local server's receipt for an installed license file.
    Receipt,
}

/// Every armored kind, to name the one a text holds instead of the one expected.
const ALL_KINDS: [ArmorKind; 3] = [
    ArmorKind::SyncData,
    ArmorKind::LicenseFile,
    ArmorKind::Receipt,
];

impl ArmorKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::SyncData => "SOLME SYNC DATA",
            Self::LicenseFile => "SOLME LICENSE FILE",
            Self::Receipt => "SOLME INSTALLATION RECEIPT",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::SyncData => "sync data",
            Self::LicenseFile => "license file",
            Self::Receipt => "installation receipt",
        }
    }

    /// As a sentence names it: "sync data" (a mass noun), "a license file".
    fn with_article(self) -> &'static str {
        match self {
            Self::SyncData => "sync data",
            Self::LicenseFile => "a license file",
            Self::Receipt => "an installation receipt",
        }
    }
}

/// A decoded armored block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Armored {
    /// The readable headers, in order (informative only).
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: Vec<u8>,
}

/// Writes an armored block with LF line ends.
pub fn encode(kind: ArmorKind, headers: &[(&str, String)], body: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(body);
    let mut text = format!("-----BEGIN {}-----\n", kind.label());
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\n"));
    }
    text.push('\n');
    for chunk in encoded.as_bytes().chunks(LINE_WIDTH) {
        // base64 output is ASCII, so any chunk of it is valid UTF-8.
        text.push_str(&String::from_utf8_lossy(chunk));
        text.push('\n');
    }
    text.push_str(&format!("-----END {}-----\n", kind.label()));
    text
}

/// Finds and decodes the first block of `kind` in `text`.
pub fn decode(text: &str, kind: ArmorKind) -> Result<Armored, ProtoError> {
    if text.len() > MAX_ARMORED_LEN {
        return Err(ProtoError::TooLarge {
            limit: MAX_ARMORED_LEN,
        });
    }
    let begin = format!("-----BEGIN {}-----", kind.label());
    let end = format!("-----END {}-----", kind.label());
    let mut lines = text.lines().map(unquote);

    if !lines.any(|line| line == begin) {
        let held = ALL_KINDS.into_iter().filter(|k| *k != kind).find(|other| {
            let other_begin = format!("-----BEGIN {}-----", other.label());
            text.lines().map(unquote).any(|line| line == other_begin)
        });
        let message = if let Some(other) = held {
            format!(
                "this text holds {}, not {}",
                other.with_article(),
                kind.with_article()
            )
        } else {
            format!("no {begin} block was found")
        };
        return Err(ProtoError::Malformed(message));
    }

    let mut headers = Vec::new();
    let mut body_text = String::new();
    let mut in_headers = true;
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        if in_headers {
            if line.is_empty() {
                in_headers = false;
                continue;
            }
            if let Some(header) = parse_header(line) {
                if headers.len() == MAX_HEADERS || line.len() > MAX_HEADER_LEN {
                    return Err(ProtoError::Malformed(format!(
                        "the {} has too many or too long headers",
                        kind.describe()
                    )));
                }
                headers.push(header);
                continue;
            }
            // No blank line after the headers: tolerate it, this line is body.
            in_headers = false;
        }
        body_text.extend(line.chars().filter(|c| !c.is_whitespace()));
    }
    if !ended {
        return Err(ProtoError::Malformed(format!(
            "the {} is truncated: its {end} line is missing",
            kind.describe()
        )));
    }
    let body = base64::engine::general_purpose::STANDARD
        .decode(body_text.as_bytes())
        .map_err(|_| {
            ProtoError::Malformed(format!(
                "the {} is damaged: its text between the BEGIN and END lines was changed \
                 (it holds characters or a length that an unchanged export never has)",
                kind.describe()
            ))
        })?;
    Ok(Armored { headers, body })
}

/// Strips mail quoting (`>`), indentation and trailing spaces from a line.
fn unquote(line: &str) -> &str {
    line.trim_start_matches(|c: char| c == '>' || c.is_whitespace())
        .trim_end()
}

fn parse_header(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once(':')?;
    let valid_name =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    valid_name.then(|| (name.to_string(), value.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        encode(
            ArmorKind::SyncData,
            &[("Server-Id", "abc".into()), ("Created", "now".into())],
            &[7u8; 100],
        )
    }

    #[test]
    fn round_trip() {
        let armored = decode(&sample(), ArmorKind::SyncData).unwrap();
        assert_eq!(armored.body, vec![7u8; 100]);
        assert_eq!(armored.headers[0], ("Server-Id".into(), "abc".into()));
    }

    #[test]
    fn survives_crlf_quoting_and_surrounding_text() {
        let quoted: String = sample().lines().map(|l| format!(">> {l}  \r\n")).collect();
        let text = format!("Hello,\r\nhere it is:\r\n{quoted}\r\nRegards\r\n");
        assert_eq!(
            decode(&text, ArmorKind::SyncData).unwrap().body,
            vec![7u8; 100]
        );
    }

    #[test]
    fn names_the_wrong_kind_and_missing_parts() {
        let err = decode(&sample(), ArmorKind::LicenseFile)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "this text holds sync data, not a license file");
        let truncated: String = sample().lines().take(4).map(|l| format!("{l}\n")).collect();
        let err = decode(&truncated, ArmorKind::SyncData)
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
        let err = decode("nothing here", ArmorKind::SyncData)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no -----BEGIN SOLME SYNC DATA----- block"),
            "{err}"
        );
    }

    #[test]
    fn bounds_the_input() {
        let huge = "A".repeat(MAX_ARMORED_LEN + 1);
        assert!(matches!(
            decode(&huge, ArmorKind::SyncData),
            Err(ProtoError::TooLarge { .. })
        ));
    }
}
