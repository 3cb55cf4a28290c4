//! The options file: reservations and limits per feature, FlexNet-style, in TOML.
//!
//! ```toml
//! [groups]                       # groups of users
//! design = ["alice", "bob"]
//!
//! [host_groups]                  # groups of hosts
//! kiosks = ["kiosk-1", "kiosk-2"]
//!
//! [[reserve]]                    # 2 seats of cad are kept for the design group
//! feature = "cad"
//! seats = 2
//! group = "design"
//!
//! [[max]]                        # carol uses at most 1 seat of cad at a time
//! feature = "cad"
//! seats = 1
//! user = "carol"
//!
//! [[include]]                    # only these may use cam (any number of entries)
//! feature = "cam"
//! group = "design"
//!
//! [[exclude]]                    # nobody on a kiosk may use cad
//! feature = "cad"
//! host_group = "kiosks"
//! ```
//!
//! Every rule names its `feature` and exactly one of `user`, `group`, `host` or
//! `host_group`; `reserve` and `max` also give `seats` (at least 1). A group a rule
//! names must be defined. Errors are reported with their line.
//!
//! Meaning: `exclude` refuses the clients it matches; when a feature has `include`
//! rules, only the clients they match may use it; `max` caps the seats the matched
//! clients hold together (a group's members count together); `reserve` keeps seats for
//! the matched clients: others get a seat only while more seats are free than are
//! still owed to reservations they are not part of. A refusal by a rule is
//! `OPTIONS_DENIED` and names the rule's line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use chrono::{DateTime, Utc};
use diesel::SqliteConnection;
use serde::Deserialize;
use shared_proto::ErrorCode;
use toml::Spanned;

use crate::error::Error;

/// The file in the data directory holding the options in force (a copy of the last
/// file `options apply` accepted).
pub const OPTIONS_FILE: &str = "options.toml";
/// Largest options file accepted.
pub const MAX_OPTIONS_BYTES: usize = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    host_groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    reserve: Vec<Spanned<RawRule>>,
    #[serde(default)]
    max: Vec<Spanned<RawRule>>,
    #[serde(default)]
    include: Vec<Spanned<RawRule>>,
    #[serde(default)]
    exclude: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    feature: Spanned<String>,
    seats: Option<Spanned<u32>>,
    user: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    host_group: Option<Spanned<String>>,
}

/// Whom a rule is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    User(String),
    Group(String),
    Host(String),
    HostGroup(String),
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(u) => write!(f, "user {u}"),
            Self::Group(g) => write!(f, "group {g}"),
            Self::Host(h) => write!(f, "host {h}"),
            Self::HostGroup(g) => write!(f, "host group {g}"),
        }
    }
}

/// A `reserve` or `max` rule.
#[derive(Debug, Clone)]
pub struct SeatRule {
    pub who: Who,
    pub seats: u32,
    pub line: usize,
}

/// An `include` or `exclude` rule.
#[derive(Debug, Clone)]
pub struct ListRule {
    pub who: Who,
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
struct FeatureRules {
    reserve: Vec<SeatRule>,
    max: Vec<SeatRule>,
    include: Vec<ListRule>,
    exclude: Vec<ListRule>,
}

/// Checked options, ready for the lease engine.
#[derive(Debug, Clone, Default)]
pub struct Options {
    groups: HashMap<String, HashSet<String>>,
    host_groups: HashMap<String, HashSet<String>>,
    features: HashMap<String, FeatureRules>,
    rules: usize,
}

/// What is wrong with an options file, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The seats of one feature a client's rules are counted against.
pub trait Holdings {
    /// Seats of the feature held by `user`.
    fn by_user(&self, user: &str) -> u32;
    /// Seats of the feature held on `host`.
    fn by_host(&self, host: &str) -> u32;
}

/// The four kinds of rule, one per table of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Reserve,
    Max,
    Include,
    Exclude,
}

impl Kind {
    /// The name of the kind's table in the file.
    pub fn table(self) -> &'static str {
        match self {
            Self::Reserve => "reserve",
            Self::Max => "max",
            Self::Include => "include",
            Self::Exclude => "exclude",
        }
    }
}

/// Where each line of a text starts, so that an offset's line is found by a binary
/// search: looking it up by counting from the start made a file's parse quadratic in
/// its number of rules.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &[u8]) -> Self {
        let starts = std::iter::once(0)
            .chain(
                text.iter()
                    .enumerate()
                    .filter(|(_, &b)| b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        Self { starts }
    }

    /// The line (from 1) holding the byte at `offset`.
    fn of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset).max(1)
    }
}

impl Options {
    /// Parses and checks an options file given as bytes: text that is not UTF-8 is a
    /// mistake reported at the line of its first invalid byte.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, Problem> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::parse(text),
            Err(e) => Err(Problem {
                line: Lines::new(bytes).of(e.valid_up_to()),
                message: "the file is not UTF-8 text (save it as UTF-8)".to_owned(),
            }),
        }
    }

    /// Parses and checks an options file.
    pub fn parse(text: &str) -> Result<Self, Problem> {
        if text.len() > MAX_OPTIONS_BYTES {
            return Err(Problem {
                line: 1,
                message: format!("the file is larger than {MAX_OPTIONS_BYTES} bytes"),
            });
        }
        let lines = Lines::new(text.as_bytes());
        let raw: RawFile = toml::from_str(text).map_err(|e| Problem {
            line: e.span().map_or(1, |s| lines.of(s.start)),
            message: e.message().trim().to_owned(),
        })?;
        let mut options = Self {
            groups: raw
                .groups
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect(),
            host_groups: raw
                .host_groups
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect(),
            ..Self::default()
        };
        for (kind, list) in [
            (Kind::Reserve, raw.reserve),
            (Kind::Max, raw.max),
            (Kind::Include, raw.include),
            (Kind::Exclude, raw.exclude),
        ] {
            for spanned in list {
                let line = lines.of(spanned.span().start);
                options.add(kind, spanned.into_inner(), line, &lines)?;
            }
        }
        Ok(options)
    }

    /// Adds one rule; `line` is where it starts (a mistake in one of its values is
    /// reported at that value's line).
    fn add(
        &mut self,
        kind: Kind,
        rule: RawRule,
        line: usize,
        lines: &Lines,
    ) -> Result<(), Problem> {
        let table = kind.table();
        let problem = |message: String| Problem { line, message };
        let at = |span: Range<usize>, message: String| Problem {
            line: lines.of(span.start),
            message,
        };
        if rule.feature.get_ref().trim().is_empty() {
            return Err(at(
                rule.feature.span(),
                format!("a [[{table}]] rule needs a feature"),
            ));
        }
        let mut named: Vec<(Who, Range<usize>)> = [
            rule.user.map(|v| (v.span(), Who::User(v.into_inner()))),
            rule.group.map(|v| (v.span(), Who::Group(v.into_inner()))),
            rule.host.map(|v| (v.span(), Who::Host(v.into_inner()))),
            rule.host_group
                .map(|v| (v.span(), Who::HostGroup(v.into_inner()))),
        ]
        .into_iter()
        .flatten()
        .map(|(span, who)| (who, span))
        .collect();
        // A second name is the mistake: report the later one's line.
        named.sort_by_key(|(_, span)| span.start);
        let mut named = named.into_iter();
        let (who, who_span) = match (named.next(), named.next()) {
            (Some(first), None) => first,
            (None, _) => {
                return Err(problem(format!(
                    "a [[{table}]] rule names exactly one of user, group, host or host_group"
                )))
            }
            (Some(_), Some((_, second))) => {
                return Err(at(
                    second,
                    format!(
                        "a [[{table}]] rule names exactly one of user, group, host or host_group"
                    ),
                ))
            }
        };
        match &who {
            Who::Group(g) if !self.groups.contains_key(g) => {
                return Err(at(
                    who_span,
                    format!("group {g:?} is not defined under [groups]"),
                ))
            }
            Who::HostGroup(g) if !self.host_groups.contains_key(g) => {
                return Err(at(
                    who_span,
                    format!("host group {g:?} is not defined under [host_groups]"),
                ))
            }
            _ => {}
        }
        let seats = rule.seats.map(|s| (s.span(), s.into_inner()));
        let seat_rule = || match seats.clone() {
            Some((_, seats)) if seats >= 1 => Ok(SeatRule {
                who: who.clone(),
                seats,
                line,
            }),
            Some((span, _)) => Err(at(
                span,
                format!("a [[{table}]] rule needs seats = N (at least 1)"),
            )),
            None => Err(problem(format!(
                "a [[{table}]] rule needs seats = N (at least 1)"
            ))),
        };
        let list_rule = || match seats.clone() {
            Some((span, _)) => Err(at(span, format!("a [[{table}]] rule takes no seats"))),
            None => Ok(ListRule {
                who: who.clone(),
                line,
            }),
        };
        let rules = self.features.entry(rule.feature.into_inner()).or_default();
        match kind {
            Kind::Reserve => rules.reserve.push(seat_rule()?),
            Kind::Max => rules.max.push(seat_rule()?),
            Kind::Include => rules.include.push(list_rule()?),
            Kind::Exclude => rules.exclude.push(list_rule()?),
        }
        self.rules += 1;
        Ok(())
    }

    /// How many rules the file has.
    pub fn rule_count(&self) -> usize {
        self.rules
    }

    /// The features the rules name, sorted.
    pub fn features(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.features.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    fn matches(&self, who: &Who, user: &str, host: &str) -> bool {
        match who {
            Who::User(u) => u == user,
            Who::Host(h) => h == host,
            Who::Group(g) => self.groups.get(g).is_some_and(|m| m.contains(user)),
            Who::HostGroup(g) => self.host_groups.get(g).is_some_and(|m| m.contains(host)),
        }
    }

    /// Seats held together by the clients `who` matches.
    fn held(&self, who: &Who, holdings: &dyn Holdings) -> u32 {
        match who {
            Who::User(u) => holdings.by_user(u),
            Who::Host(h) => holdings.by_host(h),
            Who::Group(g) => self
                .groups
                .get(g)
                .map_or(0, |m| m.iter().map(|u| holdings.by_user(u)).sum()),
            Who::HostGroup(g) => self
                .host_groups
                .get(g)
                .map_or(0, |m| m.iter().map(|h| holdings.by_host(h)).sum()),
        }
    }

    /// The refusal, if any, of `exclude`, `include` and `max` for a client of
    /// `feature`: rules that hold however many seats are free.
    pub fn check_client(
        &self,
        feature: &str,
        user: &str,
        host: &str,
        holdings: &dyn Holdings,
    ) -> Result<(), Error> {
        let Some(rules) = self.features.get(feature) else {
            return Ok(());
        };
        if let Some(rule) = rules
            .exclude
            .iter()
            .find(|r| self.matches(&r.who, user, host))
        {
            return Err(denied(format!(
                "{feature} is not available to {user} on {host}: the options file excludes \
                 {} (line {}); ask the license administrator",
                rule.who, rule.line
            )));
        }
        if !rules.include.is_empty()
            && !rules
                .include
                .iter()
                .any(|r| self.matches(&r.who, user, host))
        {
            let lines: Vec<String> = rules.include.iter().map(|r| r.line.to_string()).collect();
            return Err(denied(format!(
                "{feature} is available only to the clients the options file includes (lines \
                 {}), and {user} on {host} is not one of them; ask the license administrator",
                lines.join(", ")
            )));
        }
        for rule in rules
            .max
            .iter()
            .filter(|r| self.matches(&r.who, user, host))
        {
            if self.held(&rule.who, holdings) >= rule.seats {
                return Err(denied(format!(
                    "{} may hold at most {} seats of {feature} at a time (options file, line \
                     {}); return one first",
                    rule.who, rule.seats, rule.line
                )));
            }
        }
        Ok(())
    }

    /// Seats still owed to reservations the client is not part of, and the first such
    /// reservation (for the refusal's message).
    pub fn reserved_for_others(
        &self,
        feature: &str,
        user: &str,
        host: &str,
        holdings: &dyn Holdings,
    ) -> (u32, Option<&SeatRule>) {
        let Some(rules) = self.features.get(feature) else {
            return (0, None);
        };
        let mut owed = 0u32;
        let mut first = None;
        for rule in rules
            .reserve
            .iter()
            .filter(|r| !self.matches(&r.who, user, host))
        {
            let open = rule.seats.saturating_sub(self.held(&rule.who, holdings));
            if open > 0 {
                owed = owed.saturating_add(open);
                first.get_or_insert(rule);
            }
        }
        (owed, first)
    }
}

/// The refusal when the only free seats are reserved for others.
pub fn reserved_refusal(feature: &str, rule: &SeatRule) -> Error {
    denied(format!(
        "the free seats of {feature} are reserved for {} (options file, line {}); try again \
         later, or ask to wait for a seat",
        rule.who, rule.line
    ))
}

/// Reads and checks an options file; a mistake is a refusal naming the file and line.
///
/// Only a regular file is read (a device such as `/dev/zero` or a pipe never ends), and
/// never more than [`MAX_OPTIONS_BYTES`] and one byte, which tells a file too large.
pub fn read_checked(path: &Path) -> Result<(String, Options), Error> {
    let malformed = |message: String| Error::refused(ErrorCode::Malformed, message);
    let not_regular = || {
        malformed(format!(
            "{} is not a regular file (a device, pipe or directory); give the path of a TOML \
             file; nothing was changed",
            path.display()
        ))
    };
    let too_big = || {
        malformed(format!(
            "{} is larger than {MAX_OPTIONS_BYTES} bytes; nothing was changed",
            path.display()
        ))
    };
    let reading = || format!("reading {}", path.display());
    // Looked at before opening: opening a pipe would wait for a writer.
    if !std::fs::metadata(path).with_context(reading)?.is_file() {
        return Err(not_regular());
    }
    // Without blocking, and checked again once open, in case the path was replaced.
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .with_context(reading)?;
    let file = std::fs::File::from(fd);
    let metadata = file.metadata().with_context(reading)?;
    if !metadata.is_file() {
        return Err(not_regular());
    }
    if metadata.len() > MAX_OPTIONS_BYTES as u64 {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(MAX_OPTIONS_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(reading)?;
    if bytes.len() > MAX_OPTIONS_BYTES {
        return Err(too_big());
    }
    let parsed = Options::parse_bytes(&bytes).and_then(|options| {
        // parse_bytes accepted it, so it is UTF-8.
        String::from_utf8(bytes)
            .map(|text| (text, options))
            .map_err(|e| Problem {
                line: 1,
                message: e.to_string(),
            })
    });
    parsed.map_err(|problem| {
        malformed(format!(
            "{}, {problem}; nothing was changed (the options in force stay)",
            path.display()
        ))
    })
}

/// The options in force in the serving process. A new file is parsed on a thread of
/// its own and put in force when ready; until then the old rules hold, so no check-out
/// ever waits for a reload (a file of the largest size takes a while to check).
pub struct InForce {
    shared: Arc<Mutex<Slot>>,
    /// The file last offered (`Some(None)`: none applied), so an unchanged file is not
    /// parsed again; `None` until the first offer.
    offered: Option<Option<String>>,
}

struct Slot {
    current: Arc<Options>,
    /// The newest file offered and not yet parsed.
    pending: Option<Option<String>>,
    /// Whether a parsing thread runs (it takes every pending file before it ends).
    parsing: bool,
}

impl Default for InForce {
    fn default() -> Self {
        Self {
            shared: Arc::new(Mutex::new(Slot {
                current: Arc::new(Options::default()),
                pending: None,
                parsing: false,
            })),
            offered: None,
        }
    }
}

impl InForce {
    /// The rules in force now.
    pub fn current(&self) -> Arc<Options> {
        lock(&self.shared).current.clone()
    }

    /// Offers the stored options file (`None`: none applied). The first offer, at
    /// start-up, is parsed at once, so the server never serves without its rules;
    /// later ones are parsed off the request path and replace the rules when ready.
    pub fn offer(&mut self, text: Option<String>) {
        if self.offered.as_ref() == Some(&text) {
            return;
        }
        let first = self.offered.is_none();
        self.offered = Some(text.clone());
        if first {
            install(&self.shared, text.as_deref());
            return;
        }
        let start = {
            let mut slot = lock(&self.shared);
            slot.pending = Some(text);
            !std::mem::replace(&mut slot.parsing, true)
        };
        if !start {
            return;
        }
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("options-parse".into())
            .spawn(move || parse_pending(&shared));
        if let Err(e) = spawned {
            log::error!("cannot start a thread to read the new options file ({e}); reading it on this request");
            parse_pending(&self.shared);
        }
    }
}

/// Parses and puts in force every pending file, newest last, then ends.
fn parse_pending(shared: &Mutex<Slot>) {
    loop {
        let text = {
            let mut slot = lock(shared);
            match slot.pending.take() {
                Some(text) => text,
                None => {
                    slot.parsing = false;
                    return;
                }
            }
        };
        install(shared, text.as_deref());
    }
}

/// Parses `text` (outside the lock) and puts it in force; a bad file leaves the last
/// good one in force.
fn install(shared: &Mutex<Slot>, text: Option<&str>) {
    let parsed = text.map_or_else(|| Ok(Options::default()), Options::parse);
    match parsed {
        Ok(options) => {
            log::info!("options file in force: {} rules", options.rule_count());
            lock(shared).current = Arc::new(options);
        }
        // `options apply` checks before it stores: only an edited database gets here.
        Err(problem) => log::error!(
            "the stored options file is not valid ({problem}); the last good one stays in force"
        ),
    }
}

fn lock(shared: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    // Each change to the slot is one assignment: a panic cannot leave it half made.
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Puts a checked options file in force: stored in the database (the serving process
/// notices) and copied to `DATA_DIR/options.toml` for reading.
pub fn apply(
    data_dir: &Path,
    conn: &mut SqliteConnection,
    text: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    crate::db::store_options(conn, text, crate::db::to_ms(now))?;
    // Private like the rest of the data directory: it names users and hosts.
    shared_proto::files::write(
        &data_dir.join(OPTIONS_FILE),
        text.as_bytes(),
        shared_proto::files::Access::Private,
        shared_proto::files::Existing::Replace,
    )?;
    Ok(())
}

fn denied(message: String) -> Error {
    Error::refused(ErrorCode::OptionsDenied, message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    struct Held(HashMap<String, u32>);
    impl Holdings for Held {
        fn by_user(&self, user: &str) -> u32 {
            self.0.get(user).copied().unwrap_or(0)
        }
        fn by_host(&self, _: &str) -> u32 {
            0
        }
    }

    const EXAMPLE: &str = r#"
[groups]
design = ["alice", "bob"]

[host_groups]
kiosks = ["kiosk-1"]

[[reserve]]
feature = "cad"
seats = 2
group = "design"

[[max]]
feature = "cad"
seats = 1
user = "carol"

[[include]]
feature = "cam"
group = "design"

[[exclude]]
feature = "cad"
host_group = "kiosks"
"#;

    #[test]
    fn the_example_parses_and_its_rules_hold() {
        let options = Options::parse(EXAMPLE).unwrap();
        assert_eq!(options.rule_count(), 4);
        let none = Held(HashMap::new());
        assert!(options.check_client("cad", "carol", "ws", &none).is_ok());
        let carol = Held(HashMap::from([("carol".to_owned(), 1)]));
        let err = options
            .check_client("cad", "carol", "ws", &carol)
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::OptionsDenied));
        assert!(err.to_string().contains("line 13"), "{err}");
        let err = options
            .check_client("cad", "alice", "kiosk-1", &none)
            .unwrap_err();
        assert!(err.to_string().contains("line 22"), "{err}");
        assert!(options.check_client("cam", "bob", "ws", &none).is_ok());
        assert!(options.check_client("cam", "carol", "ws", &none).is_err());
        let (owed, rule) = options.reserved_for_others("cad", "carol", "ws", &none);
        assert_eq!((owed, rule.map(|r| r.line)), (2, Some(8)));
        let alice = Held(HashMap::from([("alice".to_owned(), 1)]));
        assert_eq!(
            options.reserved_for_others("cad", "carol", "ws", &alice).0,
            1
        );
        assert_eq!(options.reserved_for_others("cad", "bob", "ws", &none).0, 0);
    }

    #[test]
    fn mistakes_are_reported_with_their_line() {
        let cases = [
            (
                "[[reserve]]\nfeature = \"cad\"\nseats = 2\ngroup = \"nobody\"\n",
                4,
                "not defined",
            ),
            (
                "\n[[max]]\nfeature = \"cad\"\nuser = \"carol\"\n",
                2,
                "needs seats",
            ),
            (
                "[[include]]\nfeature = \"cad\"\nuser = \"a\"\nhost = \"b\"\n",
                4,
                "exactly one",
            ),
            (
                "\n\n[[exclude]]\nfeature = \"cad\"\nseats = 1\nuser = \"a\"\n",
                5,
                "no seats",
            ),
            (
                "[[reserve]]\nfeature = \"cad\"\nseats = 0\nuser = \"a\"\n",
                3,
                "at least 1",
            ),
            ("[groups]\ndesign = [\"a\"\n", 2, ""),
            ("\n[[limit]]\nfeature = \"cad\"\n", 2, "unknown field"),
            (
                "[[max]]\nfeature = \"cad\"\nseats = -1\nuser = \"a\"\n",
                3,
                "",
            ),
        ];
        for (text, line, words) in cases {
            let problem = Options::parse(text).unwrap_err();
            assert_eq!(problem.line, line, "{text:?}: {problem}");
            assert!(problem.message.contains(words), "{text:?}: {problem}");
        }
    }

    #[test]
    fn lines_are_found_from_any_offset() {
        let lines = Lines::new(b"a\nbc\n\nd");
        let found: Vec<usize> = (0..8).map(|o| lines.of(o)).collect();
        assert_eq!(found, [1, 1, 2, 2, 2, 3, 4, 4]);
        assert_eq!(Lines::new(b"").of(0), 1);
    }

    #[test]
    fn text_that_is_not_utf8_is_reported_at_its_line() {
        let problem = Options::parse_bytes(b"[groups]\n\na = [\"\xff\"]\n").unwrap_err();
        assert_eq!(problem.line, 3, "{problem}");
        assert!(problem.message.contains("UTF-8"), "{problem}");
    }

    #[test]
    fn each_kind_goes_to_its_own_list() {
        let text = "[[reserve]]\nfeature = \"f\"\nseats = 1\nuser = \"r\"\n\
                    [[max]]\nfeature = \"f\"\nseats = 1\nuser = \"m\"\n\
                    [[include]]\nfeature = \"f\"\nuser = \"i\"\n\
                    [[exclude]]\nfeature = \"f\"\nuser = \"e\"\n";
        let options = Options::parse(text).unwrap();
        let rules = &options.features["f"];
        let who = |r: &[ListRule]| r.iter().map(|r| r.who.to_string()).collect::<Vec<_>>();
        let seat_who = |r: &[SeatRule]| r.iter().map(|r| r.who.to_string()).collect::<Vec<_>>();
        assert_eq!(seat_who(&rules.reserve), ["user r"]);
        assert_eq!(seat_who(&rules.max), ["user m"]);
        assert_eq!(who(&rules.include), ["user i"]);
        assert_eq!(who(&rules.exclude), ["user e"]);
    }

    #[test]
    fn a_new_file_is_put_in_force_off_the_caller_and_a_bad_one_changes_nothing() {
        let mut in_force = InForce::default();
        in_force.offer(Some(EXAMPLE.to_owned()));
        assert_eq!(
            in_force.current().rule_count(),
            4,
            "the first offer is read at once"
        );
        in_force.offer(Some("[[max]]\nfeature = \"x\"\n".to_owned()));
        in_force.offer(None);
        // Wait for the parsing thread: it ends once nothing is pending.
        while lock(&in_force.shared).parsing {
            std::thread::yield_now();
        }
        assert_eq!(in_force.current().rule_count(), 0, "the newest offer wins");
        in_force.offer(Some("[[max]]\nfeature = \"x\"\n".to_owned()));
        while lock(&in_force.shared).parsing {
            std::thread::yield_now();
        }
        assert_eq!(
            in_force.current().rule_count(),
            0,
            "a bad file changes nothing"
        );
    }
}
