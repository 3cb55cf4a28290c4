//! Whether a key-clear request comes from the address its `From:` names: read from
//! the `Authentication-Results` header (RFC 8601) that the gateway's own mail server
//! adds after checking SPF, DKIM and DMARC.
//!
//! Anyone can write an `Authentication-Results` header into a mail, so only those
//! naming the configured authserv-id (the mail server's own) are read, and of those
//! only the topmost: a mail server adds its header above the ones the mail came with.
//! Headers are walked from the top; one that cannot be read before the trusted one
//! makes the sender "not authenticated" (it is never skipped to reach a lower one).
//!
//! Which headers can be the mail server's own depends on how the mail came in
//! ([`Intake`]), decided by one exhaustive match in [`check`]:
//! - `deliver` and the Maildir are fed by an MTA in front, which checked the sender,
//!   wrote its header on top and removed any copy naming its authserv-id that came
//!   with the mail (RFC 8601 §5; the README shows how for Postfix);
//! - the gateway's own SMTP receiver *is* the receiving host and checks nothing, so
//!   every header a mail brings to it was written before it, by anybody: none is
//!   believed, whatever its name's case, folding or number of copies, and the
//!   sender is "not checked".
//!
//! The verdict, kept strict because a wrong "authenticated" clears a key pair:
//! - a DMARC result decides alone: `dmarc=pass` (for the From domain, when the
//!   header names it with `header.from`) is authenticated, any other DMARC result
//!   is not, whatever SPF and DKIM say (DMARC is what ties them to the From domain);
//! - with no DMARC result, `dkim=pass` whose signing domain (`header.d`) is the From
//!   domain, or `spf=pass` whose `smtp.mailfrom` domain is the From domain, is
//!   authenticated (exact domains, case aside: no organisational-domain alignment);
//! - anything else, including a header saying `none`, is not authenticated;
//! - no trusted header at all (or no authserv-id configured) is "not checked".

use std::borrow::Cow;

use mail_parser::MessageParser;
use shared_proto::admin_api::SenderAuth;

use crate::vocabulary::Intake;

/// The header read.
const HEADER: &str = "Authentication-Results";

/// `Authentication-Results` headers looked at, from the top (the trusted one is the
/// first in practice; a mail with more is not worth reading further).
const MAX_HEADERS: usize = 50;

/// Longest header value read; a longer one counts as unreadable.
const MAX_VALUE_LEN: usize = 16 * 1024;

/// Most results (`method=result` parts) read from one header.
const MAX_RESULTS: usize = 64;

/// Longest detail text stored with a verdict.
pub const MAX_DETAIL: usize = 500;

/// The methods the verdict reads.
const METHODS: [&str; 3] = ["spf", "dkim", "dmarc"];

/// A verdict and what it rests on (e.g. `spf=fail, dmarc=fail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderCheck {
    pub auth: SenderAuth,
    pub detail: String,
}

impl SenderCheck {
    fn new(auth: SenderAuth, detail: impl Into<String>) -> SenderCheck {
        let mut detail = detail.into();
        if detail.chars().count() > MAX_DETAIL {
            detail = detail.chars().take(MAX_DETAIL - 1).collect();
            detail.push('…');
        }
        SenderCheck { auth, detail }
    }

    /// The verdict for people, as the console and the notices show it.
    pub fn describe(&self) -> String {
        self.auth.describe(&self.detail)
    }
}

/// One parsed `Authentication-Results` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    /// Who wrote it (as written; compared without regard to case).
    pub authserv_id: String,
    pub results: Vec<MethodResult>,
}

/// One `method=result` part with its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResult {
    /// Lower-cased, without a `/version`.
    pub method: String,
    /// Lower-cased.
    pub result: String,
    /// `(ptype.property lower-cased, value)`, e.g. `("header.d", "acme.example")`.
    pub properties: Vec<(String, String)>,
}

impl MethodResult {
    fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Why a header value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("longer than {MAX_VALUE_LEN} bytes")]
    TooLong,
    #[error("a comment or quoted string is not closed")]
    Unclosed,
    #[error("no authserv-id")]
    NoAuthservId,
    #[error("an unknown version {0:?}")]
    Version(String),
    #[error("more than {MAX_RESULTS} results")]
    TooManyResults,
    #[error("a result is not written as method=result")]
    BadResult,
}

/// Checks the sender `from` of the mail `raw`, which came in through `intake`,
/// against the topmost `Authentication-Results` header of `authserv_id` (`None`: no
/// header is trusted).
pub fn check(raw: &[u8], intake: Intake, authserv_id: Option<&str>, from: &str) -> SenderCheck {
    let Some(authserv_id) = authserv_id else {
        return SenderCheck::new(
            SenderAuth::NotChecked,
            "the mail gateway trusts no Authentication-Results header (no --authserv-id)",
        );
    };
    let Some(message) = MessageParser::default().parse_headers(raw) else {
        return SenderCheck::new(SenderAuth::NotChecked, "the mail has no readable headers");
    };
    let raw = message.raw_message();
    // Not UTF-8 is read lossily rather than skipped: skipping the trusted header
    // could let a forged one below it count.
    let values = message
        .root_part()
        .headers()
        .iter()
        .filter(|header| header.name().eq_ignore_ascii_case(HEADER))
        .map(|header| {
            let bytes = raw
                .get(header.offset_start() as usize..header.offset_end() as usize)
                .unwrap_or_default();
            String::from_utf8_lossy(bytes)
        });
    match intake {
        // An MTA in front checked the sender and wrote its header on top.
        Intake::Deliver | Intake::Maildir => verdict(values, authserv_id, from),
        // Nobody checked this sender: whatever header it brought, it wrote itself.
        Intake::Smtp => unchecked_smtp(values, authserv_id),
    }
}

/// The verdict on a mail the gateway's own SMTP receiver took in: "not checked",
/// saying how many headers claimed to be `authserv_id`'s (a forgery, or an MTA
/// relaying to this receiver instead of handing mail to `deliver`).
fn unchecked_smtp<'a>(
    values: impl IntoIterator<Item = Cow<'a, str>>,
    authserv_id: &str,
) -> SenderCheck {
    let claiming = values
        .into_iter()
        .filter(|value| names(value, authserv_id))
        .count();
    let mut detail = "received by the mail gateway's own SMTP receiver, which checks no \
                      sender and believes no Authentication-Results header"
        .to_owned();
    if claiming > 0 {
        let (headers, were) = if claiming == 1 {
            ("header", "was")
        } else {
            ("headers", "were")
        };
        detail.push_str(&format!(
            " ({claiming} {headers} naming {authserv_id} came with the mail and {were} ignored)"
        ));
    }
    SenderCheck::new(SenderAuth::NotChecked, detail)
}

/// Whether a header value is headed by `authserv_id`. Only counts claims for the
/// detail: one too damaged to read is not counted.
fn names(value: &str, authserv_id: &str) -> bool {
    matches!(
        lex(value).ok().as_deref(),
        Some([Token::Word(word), ..]) if word.eq_ignore_ascii_case(authserv_id)
    )
}

/// The verdict on `from` given the raw `Authentication-Results` values of a mail,
/// topmost first.
pub fn verdict<'a>(
    values: impl IntoIterator<Item = Cow<'a, str>>,
    authserv_id: &str,
    from: &str,
) -> SenderCheck {
    for value in values.into_iter().take(MAX_HEADERS) {
        match parse(&value) {
            Ok(header) if header.authserv_id.eq_ignore_ascii_case(authserv_id) => {
                return judge(&header, from)
            }
            Ok(_) => continue,
            Err(err) => {
                return SenderCheck::new(
                    SenderAuth::NotAuthenticated,
                    format!("an Authentication-Results header cannot be read ({err})"),
                )
            }
        }
    }
    SenderCheck::new(
        SenderAuth::NotChecked,
        format!("no Authentication-Results header of {authserv_id}"),
    )
}

/// Applies the rules of the module documentation to the trusted header.
fn judge(header: &AuthResults, from: &str) -> SenderCheck {
    let from_domain = domain_of(from);
    let relevant: Vec<&MethodResult> = header
        .results
        .iter()
        .filter(|r| METHODS.contains(&r.method.as_str()))
        .collect();
    if relevant.is_empty() {
        return SenderCheck::new(SenderAuth::NotAuthenticated, "no SPF, DKIM or DMARC result");
    }
    // The domain each result is for; a pass for another domain proves nothing.
    let domain = |r: &MethodResult| -> Option<String> {
        let value = match r.method.as_str() {
            "spf" => r.property("smtp.mailfrom"),
            "dkim" => r.property("header.d").or_else(|| r.property("header.i")),
            _ => r.property("header.from"),
        }?;
        Some(domain_of(value))
    };
    let aligned = |r: &MethodResult| match domain(r) {
        Some(domain) => domain == from_domain,
        // DMARC is evaluated for the mail's own From: a missing header.from is it.
        None => r.method == "dmarc",
    };
    let passed = |r: &MethodResult| r.result == "pass" && aligned(r);
    let detail = relevant
        .iter()
        .map(|r| match domain(r) {
            Some(domain) if r.result == "pass" && domain != from_domain => {
                format!("{}=pass for {domain}", r.method)
            }
            _ => format!("{}={}", r.method, r.result),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let dmarc: Vec<&&MethodResult> = relevant.iter().filter(|r| r.method == "dmarc").collect();
    let authenticated = if dmarc.is_empty() {
        relevant.iter().any(|r| passed(r))
    } else {
        dmarc.iter().all(|r| passed(r))
    };
    let auth = if authenticated {
        SenderAuth::Authenticated
    } else {
        SenderAuth::NotAuthenticated
    };
    SenderCheck::new(auth, detail)
}

/// The lower-cased domain of an address (`user@domain`, `@domain`) or a domain.
fn domain_of(value: &str) -> String {
    let domain = value.rsplit('@').next().unwrap_or_default();
    domain
        .trim()
        .trim_end_matches('.')
        .trim_matches(|c| c == '<' || c == '>')
        .to_ascii_lowercase()
}

/// A lexical unit of a header value (comments and whitespace are gone).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A run of characters; quoted strings are unquoted and joined to what
    /// touches them (`"a b"@x` is one word).
    Word(String),
    Equals,
    Semicolon,
}

/// Splits a header value into words, `=` and `;`, dropping (nested) comments.
fn lex(value: &str) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = value.chars();
    let end_word = |word: &mut Option<String>, tokens: &mut Vec<Token>| {
        if let Some(word) = word.take() {
            tokens.push(Token::Word(word));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '(' => {
                end_word(&mut word, &mut tokens);
                let mut depth = 1;
                while depth > 0 {
                    match chars.next().ok_or(ParseError::Unclosed)? {
                        '\\' => {
                            chars.next().ok_or(ParseError::Unclosed)?;
                        }
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                }
            }
            '"' => {
                let text = word.get_or_insert_with(String::new);
                loop {
                    match chars.next().ok_or(ParseError::Unclosed)? {
                        '\\' => text.push(chars.next().ok_or(ParseError::Unclosed)?),
                        '"' => break,
                        '\r' | '\n' => {}
                        c => text.push(c),
                    }
                }
            }
            '=' => {
                end_word(&mut word, &mut tokens);
                tokens.push(Token::Equals);
            }
            ';' => {
                end_word(&mut word, &mut tokens);
                tokens.push(Token::Semicolon);
            }
            c if c.is_whitespace() => end_word(&mut word, &mut tokens),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    end_word(&mut word, &mut tokens);
    Ok(tokens)
}

/// Parses the value of one `Authentication-Results` header (RFC 8601 §2.2).
pub fn parse(value: &str) -> Result<AuthResults, ParseError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(ParseError::TooLong);
    }
    let tokens = lex(value)?;
    let mut parts = tokens.split(|t| *t == Token::Semicolon);
    let head = parts.next().unwrap_or_default();
    let authserv_id = match head {
        [Token::Word(id)] => id.clone(),
        [Token::Word(id), Token::Word(version)] => {
            if version != "1" {
                return Err(ParseError::Version(version.clone()));
            }
            id.clone()
        }
        _ => return Err(ParseError::NoAuthservId),
    };
    let mut results = Vec::new();
    for part in parts {
        match part {
            // `; none`: no method was applied. A trailing `;` adds an empty part.
            [] => continue,
            [Token::Word(none)] if none.eq_ignore_ascii_case("none") => continue,
            _ => {}
        }
        if results.len() == MAX_RESULTS {
            return Err(ParseError::TooManyResults);
        }
        results.push(method_result(part)?);
    }
    Ok(AuthResults {
        authserv_id,
        results,
    })
}

/// `method[/version]=result [reason=value] [ptype.property=value]…`
fn method_result(part: &[Token]) -> Result<MethodResult, ParseError> {
    let mut pairs = part.chunks(3).map(|chunk| match chunk {
        [Token::Word(key), Token::Equals, Token::Word(value)] => Ok((key, value)),
        _ => Err(ParseError::BadResult),
    });
    let (method, result) = pairs.next().ok_or(ParseError::BadResult)??;
    let method = method.split('/').next().unwrap_or_default().trim();
    if method.is_empty() {
        return Err(ParseError::BadResult);
    }
    let mut properties = Vec::new();
    for pair in pairs {
        let (key, value) = pair?;
        let key = key.to_ascii_lowercase();
        if key == "reason" {
            continue;
        }
        // A property is `ptype.property`; anything else is not RFC 8601.
        if !key.contains('.') {
            return Err(ParseError::BadResult);
        }
        properties.push((key, value.clone()));
    }
    Ok(MethodResult {
        method: method.to_ascii_lowercase(),
        result: result.to_ascii_lowercase(),
        properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MX: &str = "mx.solme.example";
    const FROM: &str = "ops@acme.example";

    fn judged(headers: &[&str]) -> SenderCheck {
        verdict(headers.iter().map(|h| Cow::Borrowed(*h)), MX, FROM)
    }

    #[test]
    fn parses_a_typical_header_with_comments_and_folding() {
        let header = parse(
            " mx.solme.example 1;\r\n\tspf=pass (sender SPF authorized) smtp.mailfrom=ops@acme.example;\r\n \
             dkim=pass (2048-bit key) reason=\"signature ok; fine\" header.d=acme.example header.s=sel;\r\n \
             dmarc=pass (p=reject dis=none) header.from=acme.example",
        )
        .unwrap();
        assert_eq!(header.authserv_id, MX);
        let methods: Vec<(&str, &str)> = header
            .results
            .iter()
            .map(|r| (r.method.as_str(), r.result.as_str()))
            .collect();
        assert_eq!(
            methods,
            [("spf", "pass"), ("dkim", "pass"), ("dmarc", "pass")]
        );
        assert_eq!(header.results[1].property("header.d"), Some("acme.example"));
        assert_eq!(header.results[1].property("header.s"), Some("sel"));
    }

    #[test]
    fn reads_quoted_ids_spaces_around_equals_and_versions() {
        let header =
            parse("\"mx.solme.example\"; DKIM/1 = Pass header.i = \"ops x\"@acme.example").unwrap();
        assert_eq!(header.authserv_id, MX);
        assert_eq!(header.results[0].method, "dkim");
        assert_eq!(header.results[0].result, "pass");
        assert_eq!(
            header.results[0].property("header.i"),
            Some("ops x@acme.example")
        );
        assert_eq!(parse("mx.solme.example; none").unwrap().results, []);
        assert_eq!(
            parse("mx.solme.example 2; spf=pass"),
            Err(ParseError::Version("2".into()))
        );
    }

    #[test]
    fn refuses_what_is_not_the_grammar() {
        assert_eq!(parse(""), Err(ParseError::NoAuthservId));
        assert_eq!(parse("; spf=pass"), Err(ParseError::NoAuthservId));
        assert_eq!(parse("mx (open"), Err(ParseError::Unclosed));
        assert_eq!(parse("mx; spf=\"pass"), Err(ParseError::Unclosed));
        assert_eq!(parse("mx; spf pass"), Err(ParseError::BadResult));
        assert_eq!(parse("mx; spf=pass mailfrom=x"), Err(ParseError::BadResult));
        let many = format!("mx{}", "; spf=pass".repeat(MAX_RESULTS + 1));
        assert_eq!(parse(&many), Err(ParseError::TooManyResults));
        let long = format!("mx; spf=pass smtp.mailfrom={}", "a".repeat(MAX_VALUE_LEN));
        assert_eq!(parse(&long), Err(ParseError::TooLong));
    }

    #[test]
    fn dmarc_pass_authenticates_and_dmarc_fail_does_not() {
        let pass = judged(
            &["mx.solme.example; spf=fail smtp.mailfrom=x@evil.example; \
                             dmarc=pass header.from=acme.example"],
        );
        assert_eq!(pass.auth, SenderAuth::Authenticated);
        assert_eq!(pass.detail, "spf=fail, dmarc=pass");
        let fail = judged(&[
            "mx.solme.example; spf=pass smtp.mailfrom=ops@acme.example; \
                             dkim=pass header.d=acme.example; dmarc=fail header.from=acme.example",
        ]);
        assert_eq!(fail.auth, SenderAuth::NotAuthenticated);
        assert_eq!(
            fail.describe(),
            "not authenticated: spf=pass, dkim=pass, dmarc=fail"
        );
        // A DMARC pass for another From domain proves nothing about ours.
        let other = judged(&["mx.solme.example; dmarc=pass header.from=evil.example"]);
        assert_eq!(other.auth, SenderAuth::NotAuthenticated);
        assert_eq!(other.detail, "dmarc=pass for evil.example");
    }

    #[test]
    fn without_dmarc_an_aligned_spf_or_dkim_pass_authenticates() {
        let spf = judged(&["mx.solme.example; spf=pass smtp.mailfrom=bounce@ACME.example"]);
        assert_eq!(spf.auth, SenderAuth::Authenticated);
        assert_eq!(spf.describe(), "authenticated (spf=pass)");
        let dkim = judged(&["mx.solme.example; dkim=fail header.d=acme.example; \
                             dkim=pass header.d=acme.example."]);
        assert_eq!(dkim.auth, SenderAuth::Authenticated);
        let unaligned = judged(&[
            "mx.solme.example; spf=pass smtp.mailfrom=x@mailer.example; \
                                  dkim=pass header.d=mailer.example",
        ]);
        assert_eq!(unaligned.auth, SenderAuth::NotAuthenticated);
        assert_eq!(
            unaligned.detail,
            "spf=pass for mailer.example, dkim=pass for mailer.example"
        );
        // A pass without the domain it is for is not aligned.
        assert_eq!(
            judged(&["mx.solme.example; spf=pass"]).auth,
            SenderAuth::NotAuthenticated
        );
        let none = judged(&["mx.solme.example; none"]);
        assert_eq!(none.auth, SenderAuth::NotAuthenticated);
        assert_eq!(none.detail, "no SPF, DKIM or DMARC result");
    }

    #[test]
    fn only_the_topmost_header_of_the_trusted_id_counts() {
        // Ours on top says fail; a forged pass below (even with our id) is ignored.
        let forged_below = judged(&[
            "other.example; dmarc=pass header.from=acme.example",
            "MX.solme.example; spf=fail smtp.mailfrom=ops@acme.example; dmarc=fail",
            "mx.solme.example; dmarc=pass header.from=acme.example",
        ]);
        assert_eq!(forged_below.auth, SenderAuth::NotAuthenticated);
        assert_eq!(forged_below.detail, "spf=fail, dmarc=fail");
        // Another server's pass alone is no proof: not checked by ours.
        let foreign = judged(&["other.example; dmarc=pass header.from=acme.example"]);
        assert_eq!(foreign.auth, SenderAuth::NotChecked);
        assert_eq!(
            foreign.detail,
            "no Authentication-Results header of mx.solme.example"
        );
        // An unreadable header above ours stops the walk: never skipped.
        let unreadable = judged(&["(broken", "mx.solme.example; dmarc=pass"]);
        assert_eq!(unreadable.auth, SenderAuth::NotAuthenticated);
    }

    #[test]
    fn reads_the_headers_of_a_whole_mail() {
        let mail = "Authentication-Results: mx.solme.example;\r\n spf=pass smtp.mailfrom=ops@acme.example;\r\n \
                    dmarc=fail header.from=acme.example\r\n\
                    Received: from x by mx.solme.example\r\n\
                    Authentication-Results: mx.solme.example; dmarc=pass header.from=acme.example\r\n\
                    From: Ops <ops@acme.example>\r\nSubject: clear\r\n\r\nbody\r\n";
        for intake in [Intake::Deliver, Intake::Maildir] {
            let checked = check(mail.as_bytes(), intake, Some(MX), FROM);
            assert_eq!(checked.auth, SenderAuth::NotAuthenticated);
            assert_eq!(checked.detail, "spf=pass, dmarc=fail");
        }
        let missing = check(
            b"From: ops@acme.example\r\n\r\nhi\r\n",
            Intake::Deliver,
            Some(MX),
            FROM,
        );
        assert_eq!(missing.auth, SenderAuth::NotChecked);
        let unset = check(mail.as_bytes(), Intake::Deliver, None, FROM);
        assert_eq!(unset.auth, SenderAuth::NotChecked);
        assert!(unset.detail.contains("--authserv-id"), "{}", unset.detail);
    }

    #[test]
    fn the_own_smtp_receiver_believes_no_header_of_any_spelling() {
        // Every way of writing our id's header: any case of the name and the id,
        // folded, with a comment first, several copies, one unreadable.
        let mail = "authentication-results: MX.Solme.Example;\r\n\tdmarc=pass\r\n\
                    AUTHENTICATION-RESULTS: (forged) mx.solme.example 1;\r\n \
                    spf=pass smtp.mailfrom=ops@acme.example\r\n\
                    Authentication-Results:\r\n mx.solme.example; dkim=pass header.d=acme.example\r\n\
                    Authentication-Results: mx.solme.example; dmarc=pass (broken\r\n\
                    Authentication-Results: other.example; dmarc=pass\r\n\
                    From: Ops <ops@acme.example>\r\nSubject: clear\r\n\r\nbody\r\n";
        let checked = check(mail.as_bytes(), Intake::Smtp, Some(MX), FROM);
        assert_eq!(checked.auth, SenderAuth::NotChecked);
        assert_eq!(
            checked.describe(),
            "not checked: received by the mail gateway's own SMTP receiver, which checks no \
             sender and believes no Authentication-Results header (3 headers naming \
             mx.solme.example came with the mail and were ignored)"
        );
        // The same mail handed over by an MTA is read (its topmost header).
        let piped = check(mail.as_bytes(), Intake::Deliver, Some(MX), FROM);
        assert_eq!(piped.auth, SenderAuth::Authenticated);
        let plain = check(
            b"From: ops@acme.example\r\n\r\nhi\r\n",
            Intake::Smtp,
            Some(MX),
            FROM,
        );
        assert_eq!(plain.auth, SenderAuth::NotChecked);
        assert!(!plain.detail.contains("ignored"), "{}", plain.detail);
        // Without an authserv-id, the reason stays the missing flag.
        let unset = check(mail.as_bytes(), Intake::Smtp, None, FROM);
        assert!(unset.detail.contains("--authserv-id"), "{}", unset.detail);
    }

    proptest! {
        /// Any text parses or fails cleanly, and a failure never authenticates.
        #[test]
        fn any_value_is_parsed_or_refused(value in "\\PC{0,300}") {
            let _ = parse(&value);
            let checked = verdict([Cow::Borrowed(value.as_str())], MX, FROM);
            if checked.auth == SenderAuth::Authenticated {
                prop_assert!(parse(&value).is_ok());
            }
            prop_assert!(checked.detail.chars().count() <= MAX_DETAIL);
        }

        /// Whatever a sender writes below the trusted header changes nothing.
        #[test]
        fn headers_below_the_trusted_one_are_ignored(
            ours in prop::sample::select(vec!["pass", "fail", "none", "temperror"]),
            forged in "[ -~]{0,200}",
        ) {
            let top = format!("mx.solme.example; dmarc={ours} header.from=acme.example");
            let alone = verdict([Cow::Borrowed(top.as_str())], MX, FROM);
            let with_forged = verdict(
                [Cow::Borrowed(top.as_str()), Cow::Borrowed(forged.as_str())],
                MX,
                FROM,
            );
            prop_assert_eq!(&alone, &with_forged);
            prop_assert_eq!(alone.auth == SenderAuth::Authenticated, ours == "pass");
        }

        /// Words written back with quoting and comments parse to the same results.
        #[test]
        fn quoting_and_comments_do_not_change_the_meaning(
            method in "[a-z]{1,8}",
            result in "[a-z]{1,8}",
            domain in "[a-z]{1,10}\\.example",
        ) {
            let plain = format!("mx; {method}={result} header.d={domain}");
            let dressed = format!(
                "(c) \"mx\" (a (nested) comment);\r\n {method} (x) = \"{result}\" header.d=\"{domain}\" (y)"
            );
            prop_assert_eq!(parse(&plain), parse(&dressed));
        }
    }
}
