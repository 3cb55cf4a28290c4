//! The exit codes every command line of the three programs uses (docs/API.md).

/// Success.
pub const SUCCESS: u8 = 0;
/// Refused or failed; the message says why.
pub const FAILED: u8 = 1;
/// Bad usage (clap's own code).
pub const USAGE: u8 = 2;
/// A temporary failure (network, a database locked by another process or full):
/// trying again later may work. `EX_TEMPFAIL` of `sysexits.h`, which MTAs retry on.
pub const TEMPORARY: u8 = 75;

/// The text a command line prints for a failure: every cause of its chain once, outer
/// first, joined by ": " (what `{:#}` of an `anyhow::Error` means to print).
///
/// Two habits of error types would otherwise repeat a cause: a wrapper whose own text
/// already ends with its source's text (`"reading F: {source}"` with `#[source]`), and
/// `std::io::Error`'s " (os error N)" code, which is for programmers. A wrapper is cut
/// before the text its source prints anyway, and an operating-system error is shown as
/// its sentence alone ("No such file or directory").
pub fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = Some(err);
    while let Some(current) = cause {
        let source = current.source();
        let mut text = current.to_string();
        if let Some(source) = source {
            if let Some(own) = text.strip_suffix(source.to_string().as_str()) {
                text = own.trim_end_matches([':', ' ']).to_owned();
            }
        }
        if let Some(code) = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            if let Some(sentence) = text.strip_suffix(&format!(" (os error {code})")) {
                text = sentence.to_owned();
            }
        }
        if !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
        cause = source;
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}: {source}")]
    struct ShowsItsSource {
        path: &'static str,
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("reading the key pair (was init run?)")]
    struct Context(#[source] ShowsItsSource);

    fn missing() -> std::io::Error {
        std::io::Error::from_raw_os_error(2)
    }

    #[test]
    fn each_cause_is_printed_once_and_os_codes_are_left_out() {
        let err = Context(ShowsItsSource {
            path: "/x/key.pem",
            source: missing(),
        });
        let text = error_text(&err);
        assert_eq!(
            text,
            format!(
                "reading the key pair (was init run?): reading /x/key.pem: {}",
                missing().to_string().replace(" (os error 2)", "")
            )
        );
        assert!(!text.contains("os error"), "{text}");
    }

    #[test]
    fn errors_that_do_not_repeat_their_source_are_joined_whole() {
        let io = std::io::Error::other("disk on fire");
        assert_eq!(error_text(&io), "disk on fire");
        let err = ShowsItsSource {
            path: "/y",
            source: std::io::Error::other("disk on fire"),
        };
        assert_eq!(error_text(&err), "reading /y: disk on fire");
    }
}
