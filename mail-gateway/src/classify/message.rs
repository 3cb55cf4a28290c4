//! Reading an inbound message and deciding what it asks for: a sync, a key
//! clearing, nothing we can serve (a reply saying what was wrong), or no reply
//! at all (automatic mail, which must never be answered: no mail loops).
//!
//! Everything here is pure (bytes in, [`Verdict`] out), so the golden `.eml`
//! tests exercise it without any server.

use std::collections::BTreeSet;

use mail_parser::{Message, MessageParser, MimeHeaders};
use shared_proto::armor::ArmorKind;
use uuid::Uuid;

use crate::vocabulary::{begin_marker, end_marker, Envelope, ReplyKind, Sender};

/// More `Received` headers than this means the message is going round in
/// circles between MTAs (RFC 5321 §6.3 suggests a limit of this order).
const MAX_HOPS: usize = 30;

/// How much of the body text goes into a key-clear request for the operator.
const MAX_REQUEST_TEXT: usize = 2000;

/// What the gateway decided about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No reply: logged and dropped.
    Drop(DropReason),
    /// A reply is due to `sender`; what it says depends on `request`.
    Answer { sender: Sender, request: Request },
}

/// Why a message gets no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// `Auto-Submitted` other than `no` (holds the value).
    AutoSubmitted(String),
    /// Empty return path, or a mailer-daemon: a bounce.
    Bounce,
    /// A delivery or disposition report (`multipart/report`).
    Report,
    /// Mailing-list or bulk mail (`List-Id`, `Precedence`).
    List(String),
    /// Too many `Received` headers: a loop between MTAs.
    Loop,
    /// No usable From address: nobody to answer.
    NoSender,
    /// Mail from the licensing address itself.
    OwnAddress,
    /// Not a parsable message at all.
    Unparsable,
}

impl DropReason {
    /// A short label for logs and tests.
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::AutoSubmitted(_) => "auto-submitted",
            DropReason::Bounce => "bounce",
            DropReason::Report => "report",
            DropReason::List(_) => "list",
            DropReason::Loop => "loop",
            DropReason::NoSender => "no-sender",
            DropReason::OwnAddress => "own-address",
            DropReason::Unparsable => "unparsable",
        }
    }
}

/// What an answerable message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Sync data was found and its signature holds.
    Sync {
        /// The armored block as found (the main server reads it again).
        sync_data: String,
        server_id: Uuid,
        request_id: Uuid,
    },
    /// A request to clear the key pair of `server_id`.
    KeyClear { server_id: Uuid, text: String },
    /// An installation receipt (`import-license-file --receipt`) whose signature holds
    /// for the key it presents; the main server checks that key against the id's.
    Receipt {
        /// The armored block as found (the main server reads it again).
        receipt: String,
        server_id: Uuid,
    },
    /// Something the gateway can answer without the main server.
    Problem(Problem),
}

/// What was wrong with a message, found without asking the main server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Neither sync data nor a key-clear request (names of attachments seen).
    NoSyncData { attachments: Vec<String> },
    /// Sync data was found but cannot be read (the reason, for the customer).
    Damaged { detail: String },
    /// A license file was sent instead of sync data.
    LicenseFileSent,
    /// A key-clear request naming no id.
    KeyClearWithoutId,
    /// A key-clear request naming several ids.
    SeveralIds { ids: Vec<Uuid> },
    /// The message was over the size limit.
    TooLarge { size: u64, limit: u64 },
    /// A support bundle (a `.tar.gz` attachment) instead of sync data.
    SupportBundle { name: String },
}

impl Problem {
    /// The kind of reply that answers this problem.
    pub fn kind(&self) -> ReplyKind {
        match self {
            Problem::NoSyncData { .. } => ReplyKind::NoSyncData,
            Problem::Damaged { .. } => ReplyKind::Damaged,
            Problem::LicenseFileSent => ReplyKind::LicenseFileSent,
            Problem::KeyClearWithoutId => ReplyKind::KeyClearWithoutId,
            Problem::SeveralIds { .. } => ReplyKind::SeveralIds,
            Problem::TooLarge { .. } => ReplyKind::TooLarge,
            Problem::SupportBundle { .. } => ReplyKind::SupportBundle,
        }
    }

    /// A short label for logs and tests: the word of its reply kind.
    pub fn label(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// Decides what to do with `raw`, received with `envelope`, for the
/// licensing address `own_address`; `limit` is the size limit in force.
pub fn classify(raw: &[u8], envelope: &Envelope, own_address: &str, limit: usize) -> Verdict {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Verdict::Drop(DropReason::Unparsable);
    };
    if let Some(reason) = automatic(&message, envelope) {
        return Verdict::Drop(reason);
    }
    let Some(sender) = sender(&message) else {
        return Verdict::Drop(DropReason::NoSender);
    };
    if sender.address.eq_ignore_ascii_case(own_address) {
        return Verdict::Drop(DropReason::OwnAddress);
    }
    let request = if envelope.truncated {
        Request::Problem(Problem::TooLarge {
            size: envelope.size,
            limit: limit as u64,
        })
    } else {
        request(&message, &sender.subject)
    };
    Verdict::Answer { sender, request }
}

/// The reason not to answer, when the message was generated by a machine.
fn automatic(message: &Message<'_>, envelope: &Envelope) -> Option<DropReason> {
    for value in all_raw(message, "Auto-Submitted") {
        let value = header_token(value);
        if value != "no" {
            return Some(DropReason::AutoSubmitted(value));
        }
    }
    // Common non-standard markers of autoresponders.
    for name in ["X-Autoreply", "X-Autorespond", "X-Autoresponse"] {
        if all_raw(message, name).next().is_some() {
            return Some(DropReason::AutoSubmitted(name.to_ascii_lowercase()));
        }
    }
    let return_path = match &envelope.return_path {
        Some(path) => Some(path.clone()),
        None => all_raw(message, "Return-Path").next().map(str::to_owned),
    };
    if let Some(path) = return_path {
        let path = path
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim();
        if path.is_empty() {
            return Some(DropReason::Bounce);
        }
    }
    let root = message.root_part();
    if let Some(ctype) = root.content_type() {
        let subtype = ctype.subtype().unwrap_or_default();
        if ctype.ctype().eq_ignore_ascii_case("multipart") && subtype.eq_ignore_ascii_case("report")
        {
            return Some(DropReason::Report);
        }
        if ctype.ctype().eq_ignore_ascii_case("message")
            && (subtype.eq_ignore_ascii_case("delivery-status")
                || subtype.eq_ignore_ascii_case("disposition-notification"))
        {
            return Some(DropReason::Report);
        }
    }
    if let Some(list_id) = all_raw(message, "List-Id").next() {
        return Some(DropReason::List(format!("List-Id {}", list_id.trim())));
    }
    for value in all_raw(message, "Precedence") {
        let value = header_token(value);
        if matches!(value.as_str(), "bulk" | "list" | "junk") {
            return Some(DropReason::List(format!("Precedence {value}")));
        }
    }
    if all_raw(message, "Received").count() > MAX_HOPS {
        return Some(DropReason::Loop);
    }
    if let Some(from) = message.from().and_then(|from| from.first()) {
        let local = from
            .address
            .as_deref()
            .and_then(|a| a.split('@').next())
            .unwrap_or_default();
        if local.eq_ignore_ascii_case("mailer-daemon") {
            return Some(DropReason::Bounce);
        }
    }
    None
}

/// The raw values of every header called `name` in the top-level header block,
/// in order (the first is the topmost, which an MTA adds last).
fn all_raw<'m>(message: &'m Message<'_>, name: &'m str) -> impl Iterator<Item = &'m str> + 'm {
    let raw = message.raw_message();
    message
        .root_part()
        .headers()
        .iter()
        .filter(move |header| header.name().eq_ignore_ascii_case(name))
        .filter_map(move |header| {
            raw.get(header.offset_start() as usize..header.offset_end() as usize)
                .and_then(|bytes| std::str::from_utf8(bytes).ok())
        })
}

/// The first word of a header value, lower-cased, without comments.
fn header_token(value: &str) -> String {
    let value = match value.find('(') {
        Some(comment) => &value[..comment],
        None => value,
    };
    value
        .split(|c: char| c == ';' || c.is_whitespace())
        .find(|word| !word.is_empty())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn sender(message: &Message<'_>) -> Option<Sender> {
    let from = message.from()?.first()?;
    let address = from.address.as_deref()?.trim();
    // Only an address that lettre accepts can receive a reply.
    let address: lettre::Address = address.parse().ok()?;
    let references = match message.references() {
        mail_parser::HeaderValue::Text(id) => vec![id.to_string()],
        mail_parser::HeaderValue::TextList(ids) => ids.iter().map(|id| id.to_string()).collect(),
        _ => Vec::new(),
    };
    Some(Sender {
        address: address.to_string(),
        name: from.name.as_deref().map(str::to_owned),
        message_id: message.message_id().map(str::to_owned),
        references,
        subject: message.subject().unwrap_or_default().to_owned(),
    })
}

/// How deep forwarded messages (attached `message/rfc822`) are searched.
const MAX_NESTING: usize = 3;

/// The texts a message holds, in the order they are searched for sync data.
#[derive(Default)]
struct Texts {
    /// Attachment contents, body texts, HTML bodies read line by line.
    candidates: Vec<String>,
    /// Names of the attachments seen (for the "no sync data" reply).
    attachments: Vec<String>,
    /// The name of the first compressed archive attached (a support bundle).
    archive: Option<String>,
    /// The text bodies of the outer message (for key-clear requests).
    bodies: String,
}

impl Texts {
    fn collect(&mut self, message: &Message<'_>, depth: usize) {
        for part in message.attachments() {
            if let Some(name) = part.attachment_name() {
                self.attachments.push(name.to_owned());
            }
            if self.archive.is_none() && is_archive(part) {
                let name = part.attachment_name().unwrap_or("support-bundle.tar.gz");
                self.archive = Some(name.to_owned());
            }
            match part.message() {
                // A message forwarded as an attachment: search it as a mail.
                Some(inner) if depth < MAX_NESTING => self.collect(inner, depth + 1),
                _ => self
                    .candidates
                    .push(String::from_utf8_lossy(part.contents()).into_owned()),
            }
        }
        for pos in 0..message.text_body_count() {
            if let Some(text) = message.body_text(pos) {
                if depth == 0 {
                    self.bodies.push_str(&text);
                    self.bodies.push('\n');
                }
                self.candidates.push(text.into_owned());
            }
        }
        // mail-parser's own HTML-to-text joins lines; sync data pasted into
        // an HTML-only mail needs its line breaks, so HTML gets a second reading.
        for pos in 0..message.html_body_count() {
            if let Some(html) = message.body_html(pos) {
                if html.contains(&begin_marker(ArmorKind::SyncData)) {
                    self.candidates.push(html_lines(&html));
                }
            }
        }
    }
}

/// Looks for sync data first (attachments, then body text), then for a
/// key-clear request.
fn request(message: &Message<'_>, subject: &str) -> Request {
    let mut texts = Texts::default();
    texts.collect(message, 0);
    let Texts {
        candidates,
        attachments,
        archive,
        bodies,
    } = texts;

    let mut damaged = None;
    for candidate in &candidates {
        let Some(block) = sync_block(candidate) else {
            continue;
        };
        match shared_proto::sync_data::open(block) {
            Ok(verified) => {
                return Request::Sync {
                    sync_data: block.to_owned(),
                    server_id: verified.request.server_id,
                    request_id: verified.request.request_id,
                }
            }
            // Keep looking: another part (the plain-text twin of an HTML
            // body, a second attachment) may hold an intact copy.
            Err(err) => {
                damaged.get_or_insert(err.to_string());
            }
        }
    }
    if let Some(detail) = damaged {
        return Request::Problem(Problem::Damaged { detail });
    }
    if let Some(found) = receipt(&candidates) {
        return found;
    }
    let license_begin = begin_marker(ArmorKind::LicenseFile);
    if candidates.iter().any(|c| c.contains(&license_begin)) {
        return Request::Problem(Problem::LicenseFileSent);
    }

    // Only what the sender wrote counts: a reply quoting one of our mails
    // (which name "clear" and an id, or show an example) is no request.
    let text = format!("{subject}\n{}", own_words(&bodies));
    if mentions_clear(&text) {
        let ids = uuids(&text);
        return match ids.len() {
            0 => Request::Problem(Problem::KeyClearWithoutId),
            1 => Request::KeyClear {
                server_id: ids[0],
                text: truncate(&text, MAX_REQUEST_TEXT),
            },
            _ => Request::Problem(Problem::SeveralIds { ids }),
        };
    }
    if let Some(name) = archive {
        return Request::Problem(Problem::SupportBundle { name });
    }
    Request::Problem(Problem::NoSyncData { attachments })
}

/// Whether an attachment is a compressed archive (what `local-server support-bundle`
/// writes): by its name or its declared type, since its bytes are not text.
fn is_archive(part: &mail_parser::MessagePart<'_>) -> bool {
    let named = part.attachment_name().is_some_and(|name| {
        let name = name.to_ascii_lowercase();
        name.ends_with(".tar.gz") || name.ends_with(".tgz")
    });
    let typed = part.content_type().is_some_and(|ct| {
        let subtype = ct.subtype().unwrap_or_default().to_ascii_lowercase();
        ct.ctype().eq_ignore_ascii_case("application")
            && matches!(
                subtype.as_str(),
                "gzip" | "x-gzip" | "x-tar" | "x-compressed-tar"
            )
    });
    named || typed
}

/// The first installation receipt among `candidates`: intact (its signature holds for
/// the key it presents), else damaged; `None` when no text holds one.
fn receipt(candidates: &[String]) -> Option<Request> {
    let mut damaged = None;
    for candidate in candidates {
        let Some(block) = armored_block(candidate, ArmorKind::Receipt) else {
            continue;
        };
        match shared_proto::receipt::open(block) {
            Ok(verified) => {
                return Some(Request::Receipt {
                    receipt: block.to_owned(),
                    server_id: verified.receipt.server_id,
                })
            }
            Err(err) => {
                damaged.get_or_insert(err.to_string());
            }
        }
    }
    damaged.map(|detail| Request::Problem(Problem::Damaged { detail }))
}

/// The part of `text` from the BEGIN line to the END line (or, when the END
/// line is missing, to the end of the text: the decoder then says so).
fn sync_block(text: &str) -> Option<&str> {
    armored_block(text, ArmorKind::SyncData)
}

/// The part of `text` from the BEGIN line of a `kind` block to its END line (or to the
/// end of the text).
fn armored_block(text: &str, kind: ArmorKind) -> Option<&str> {
    let begin = text.find(&begin_marker(kind))?;
    let end_line = end_marker(kind);
    let rest = &text[begin..];
    let end = rest
        .find(&end_line)
        .map_or(rest.len(), |end| end + end_line.len());
    let cut = end.min(shared_proto::armor::MAX_ARMORED_LEN);
    // Never cut inside a character.
    let cut = (0..=cut)
        .rev()
        .find(|&i| rest.is_char_boundary(i))
        .unwrap_or(0);
    Some(&rest[..cut])
}

/// HTML to text that keeps line structure: block ends and `<br>` become
/// line breaks, tags go, the common entities are decoded.
fn html_lines(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[open + 1..open + close]
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if matches!(
            tag.as_str(),
            "br" | "p" | "div" | "pre" | "tr" | "li" | "h1" | "h2" | "h3" | "blockquote"
        ) {
            text.push('\n');
        }
        rest = &rest[open + close + 1..];
    }
    text.push_str(rest);
    decode_entities(&text)
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &rest[1..end];
            let ch = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((ch, end))
        });
        match decoded {
            Some((ch, end)) => {
                out.push(ch);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The part of a body text its sender wrote: without quoted lines (`>`)
/// and without everything from the header of a quoted message on: an
/// "On … wrote:" attribution (which clients may wrap over two lines),
/// Outlook's "-----Original Message-----", or a "From: …" line followed by
/// "Sent: …" (Outlook's reply header).
fn own_words(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut own = String::with_capacity(text.len());
    for (at, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        let next = lines.get(at + 1).map_or("", |next| next.trim());
        let lower = trimmed.to_lowercase();
        let attribution = (lower.starts_with("on ") && lower.ends_with("wrote:"))
            || (lower.starts_with("on ") && next.to_lowercase().ends_with("wrote:"));
        let original = trimmed.starts_with("-----") && lower.contains("original message");
        let outlook_header = lower.starts_with("from:")
            && lines[at + 1..]
                .iter()
                .take(4)
                .any(|later| later.trim().to_lowercase().starts_with("sent:"));
        if attribution || original || outlook_header {
            break;
        }
        if trimmed.starts_with('>') {
            continue;
        }
        own.push_str(line);
        own.push('\n');
    }
    own
}

/// True when the text asks for clearing: a word starting with "clear"
/// (clear, clearing, cleared, key-clear).
fn mentions_clear(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.match_indices("clear").any(|(at, _)| {
        !lower[..at]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
    })
}

/// Every distinct hyphenated UUID in `text`, in order of appearance.
fn uuids(text: &str) -> Vec<Uuid> {
    let bytes = text.as_bytes();
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    let mut at = 0;
    while at + 36 <= bytes.len() {
        let window = &bytes[at..at + 36];
        let shaped = window.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
        let bounded = at == 0 || !bytes[at - 1].is_ascii_hexdigit();
        if shaped && bounded {
            if let Some(id) = std::str::from_utf8(window)
                .ok()
                .and_then(|s| Uuid::parse_str(s).ok())
            {
                if seen.insert(id) {
                    found.push(id);
                }
                at += 36;
                continue;
            }
        }
        at += 1;
    }
    found
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_uuids_once_each() {
        let text = "clear 6f0c1a52-3b8e-4d27-9a51-0c2b7f3e9d10 and again \
                    6F0C1A52-3B8E-4D27-9A51-0C2B7F3E9D10, not 6f0c1a52-3b8e-4d27";
        assert_eq!(
            uuids(text),
            vec![Uuid::parse_str("6f0c1a52-3b8e-4d27-9a51-0c2b7f3e9d10").unwrap()]
        );
    }

    #[test]
    fn quoted_text_is_not_the_senders() {
        let id = "6f0c1a52-3b8e-4d27-9a51-0c2b7f3e9d10";
        let gmail = format!(
            "Thanks, will do.\n\nOn Fri, 13 Nov 2026 at 10:00, Solme Licensing <\n\
             licensing@solme.example> wrote:\n\n> send clear {id}\n"
        );
        assert_eq!(own_words(&gmail), "Thanks, will do.\n\n");
        let thunderbird = format!("ok\nOn 13.11.26 10:00, Solme wrote:\nclear {id}\n");
        assert_eq!(own_words(&thunderbird), "ok\n");
        let inline = format!("> clear {id}\nplease clear it\n");
        assert_eq!(own_words(&inline), "please clear it\n");
        let outlook = format!(
            "Hi\n\n________________________________\nFrom: Solme Licensing <licensing@solme.example>\n\
             Sent: Friday, 13 November 2026 10:00\nTo: ops\nSubject: Re: sync\n\nclear {id}\n"
        );
        assert_eq!(
            own_words(&outlook),
            "Hi\n\n________________________________\n"
        );
        let original = format!("Hi\n-----Original Message-----\nclear {id}\n");
        assert_eq!(own_words(&original), "Hi\n");
        // A plain From: line in the sender's own words stays.
        assert_eq!(own_words("From: me\nclear it\n"), "From: me\nclear it\n");
    }

    #[test]
    fn a_reply_quoting_our_id_in_use_mail_is_no_key_clear_request() {
        let raw = "From: ops@acme.example\r\nTo: licensing@solme.example\r\n\
                   Subject: Re: sync data\r\nMessage-ID: <q@acme.example>\r\n\r\n\
                   Thanks, we will look into it.\r\n\r\n\
                   On Fri, 13 Nov 2026, Solme Licensing wrote:\r\n\
                   > with the subject\r\n\
                   >   clear 6f0c1a52-3b8e-4d27-9a51-0c2b7f3e9d10\r\n";
        let envelope = Envelope {
            return_path: Some("ops@acme.example".into()),
            recipients: vec![],
            received_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            intake: crate::vocabulary::Intake::Smtp,
            size: raw.len() as u64,
            truncated: false,
        };
        let Verdict::Answer { request, .. } = classify(
            raw.as_bytes(),
            &envelope,
            "licensing@solme.example",
            1 << 20,
        ) else {
            panic!("not answered");
        };
        assert_eq!(
            request,
            Request::Problem(Problem::NoSyncData {
                attachments: vec![]
            })
        );
    }

    #[test]
    fn clear_must_start_a_word() {
        assert!(mentions_clear("Please CLEAR the key"));
        assert!(mentions_clear("key-clearing request"));
        assert!(!mentions_clear("it is unclear why"));
    }

    #[test]
    fn header_token_ignores_comments_and_case() {
        assert_eq!(header_token(" Auto-Replied (vacation)"), "auto-replied");
        assert_eq!(header_token(" no"), "no");
    }

    #[test]
    fn html_keeps_lines_and_decodes_entities() {
        let html = "<p>-----BEGIN X-----</p><p>ab&#43;c&amp;d</p>x<br/>y &bogus; &#x3D;";
        assert_eq!(
            html_lines(html),
            "\n-----BEGIN X-----\n\nab+c&d\nx\ny &bogus; ="
        );
    }

    #[test]
    fn block_ends_at_the_end_line() {
        let (begin, end) = (
            begin_marker(ArmorKind::SyncData),
            end_marker(ArmorKind::SyncData),
        );
        let text = format!("hi\n{begin}\nabc\n{end}\ntrailer");
        assert_eq!(
            sync_block(&text),
            Some(format!("{begin}\nabc\n{end}").as_str())
        );
    }
}
