//! The scenario file: TOML, read with every step's place in the file, and checked whole
//! before anything starts (unknown keys, steps that cannot run, values used before any
//! step saved them), each refusal naming the file's line. See `docs/scenarios.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use toml::Spanned;

use crate::sim::clock::{parse_span, ClockMove};
use crate::sim::faults::FaultKind;

/// A scenario, checked.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub file: PathBuf,
    pub name: String,
    pub rule: Option<String>,
    pub world: World,
    pub steps: Vec<Step>,
}

/// One step and the line it starts on.
#[derive(Debug, Clone)]
pub struct Step {
    pub line: usize,
    pub body: StepBody,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    world: World,
    step: Vec<Spanned<StepBody>>,
}

/// The world the scenario needs; the simulation builds it (one customer, contact
/// `ops@acme.example`, each local server with solme-cad × 5 and solme-cam × 2, none
/// synchronized yet).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    #[serde(default = "two")]
    pub local_servers: usize,
    /// `sqlite` (the default) or `postgres` (the database in SOLME_TEST_DATABASE_URL).
    #[serde(default)]
    pub database: Database,
    #[serde(default)]
    pub clock_offset_days: Option<i64>,
    /// The local servers reach Solme through the customer's proxy (with its
    /// credentials), whose faults a scenario can then switch (`customer-proxy`).
    #[serde(default)]
    pub customer_proxy: bool,
    /// Main-server processes on one database (1 or 2). Two share a PostgreSQL database:
    /// on a run on SQLite the scenario is skipped, saying why.
    #[serde(default = "one")]
    pub main_replicas: usize,
}

fn two() -> usize {
    2
}

fn one() -> usize {
    1
}

impl Default for World {
    fn default() -> Self {
        Self {
            local_servers: two(),
            database: Database::Sqlite,
            clock_offset_days: None,
            customer_proxy: false,
            main_replicas: one(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Database {
    #[default]
    Sqlite,
    Postgres,
}

/// A step as written: exactly one action, then what to keep and what to expect.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StepBody {
    /// A sentence for people, shown in the progress and the report.
    pub note: Option<String>,
    pub clock: Option<BTreeMap<String, String>>,
    pub exec: Option<ExecStep>,
    /// `main-server admin ARGS…` (an operator's action).
    pub admin: Option<Vec<String>>,
    /// A direct sync of this local server.
    pub sync: Option<String>,
    /// `export-sync-data` of this local server to a file (saved: its path).
    pub export: Option<String>,
    pub mail: Option<MailStep>,
    /// Imports a license file: the one attached to a reply, or a saved one (saved: its
    /// path, so that the same file can be imported again later).
    pub import: Option<ImportStep>,
    /// Writes a file into a program's data directory (saved: its path), e.g. an
    /// options file for `local-server options apply`.
    pub write: Option<WriteStep>,
    pub checkout: Option<CheckoutStep>,
    pub borrow: Option<BorrowStep>,
    pub heartbeat: Option<LeaseStep>,
    pub checkin: Option<LeaseStep>,
    pub poll: Option<TicketStep>,
    /// A fault switched on or off (`POST /v1/faults`).
    pub fault: Option<FaultStep>,
    /// `status --json` of this local server (for `expect.status`).
    pub status: Option<String>,
    /// The mails Solme sent this contact (for `expect.mail` / `expect.no_new_mail`).
    pub inbox: Option<String>,
    /// A customer registered with Solme (saved: its id).
    pub customer_add: Option<CustomerAddStep>,
    /// A license server added: an id allocated (or `id` taken), its local server
    /// installed and serving under `name` (saved: its id).
    pub server_add: Option<ServerAddStep>,
    /// This local server reinstalled: a new key pair on the same id.
    pub reinstall: Option<String>,
    /// Keep the step's value under this name, for `${name}` in later steps.
    pub save: Option<String>,
    /// Save this field (a dotted path) of what the step saw instead: `server_id` of a
    /// status, `body.expires_at` of a client answer.
    pub save_field: Option<String>,
    /// Repeat the step until its expectations hold, for at most this long (`30s`).
    pub within: Option<String>,
    /// Repeat the step for this long (`3s`); its expectations must hold on every try:
    /// "nothing happens within N".
    pub hold: Option<String>,
    pub expect: Option<Expect>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecStep {
    pub program: String,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailStep {
    pub from: String,
    pub sync_data: Option<String>,
    pub subject: Option<String>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultStep {
    /// `kill`, `stop`, `restart`, `db-lock`, a port fault or a proxy fault.
    pub fault: String,
    pub program: String,
    pub on: bool,
    /// `db-lock`: how long the lock is held.
    pub seconds: Option<u64>,
    /// Port faults: `443`, `8080` or `both`.
    pub port: Option<String>,
    /// `port-slow`: milliseconds added to each piece of the answer.
    pub ms: Option<u64>,
    /// `client-force`: the feature, and `granted` or the refusal code it answers.
    pub feature: Option<String>,
    pub code: Option<String>,
    /// `mail-mangle`: `crlf`, `rewrapped`, `quoted-printable`, `base64` or `inline`.
    pub mangle: Option<String>,
}

/// Where the customer's proxy faults are made: in a world with `customer_proxy`.
const CUSTOMER_PROXY: &str = "customer-proxy";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImportStep {
    pub server: String,
    /// The Message-ID (saved by a `mail` step) whose reply carries the license file.
    pub reply_to: Option<String>,
    /// Or a license file saved by an earlier `import` step (replayed).
    pub file: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerAddStep {
    pub name: String,
    pub contacts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerAddStep {
    /// Its program name from now on (e.g. `globex-1`).
    pub name: String,
    /// The customer (name or saved id) its new id is allocated to.
    pub customer: Option<String>,
    /// Or an existing id it is installed on (e.g. `${id}` of another server: a stolen id).
    pub id: Option<String>,
    /// `direct` (default), `email`, `daily` or `weekly`.
    pub sync: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WriteStep {
    /// The program whose data directory receives the file.
    pub program: String,
    /// A plain file name (no folder); an existing file is never replaced.
    pub file: String,
    pub text: String,
}

/// The largest file a `write` step writes.
pub const MAX_WRITE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutStep {
    pub server: String,
    pub feature: String,
    pub user: Option<String>,
    pub host: Option<String>,
    pub wait_seconds: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BorrowStep {
    pub server: String,
    pub feature: String,
    pub hours: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseStep {
    pub server: String,
    pub lease: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TicketStep {
    pub server: String,
    pub ticket: String,
}

/// What must hold after a step.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The refusal's code (`SYNC_EXPIRED`), or `granted` for a lease.
    pub code: Option<String>,
    /// The HTTP status of a client answer.
    pub http: Option<u16>,
    /// A verb's exit code.
    pub exit: Option<i32>,
    /// Text in a verb's output (stdout or stderr).
    pub output_contains: Option<String>,
    /// Fields of `status --json` (dotted paths) and their values.
    pub status: Option<BTreeMap<String, toml::Value>>,
    pub mail: Option<MailExpect>,
    /// No new mail reaches the contact for the whole `within`.
    pub no_new_mail: Option<bool>,
    /// A lease (or borrow) ends no later than this after the simulated now (`30d`).
    pub ends_within: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailExpect {
    /// `reminder`, `reply` or `key-clear-notice`.
    pub kind: String,
    /// At least this many of that kind in the inbox (default 1).
    pub count: Option<usize>,
    pub subject_contains: Option<String>,
    /// Text in the mail's body (read from the gateway's outbox).
    pub text_contains: Option<String>,
    pub license_file: Option<bool>,
}

/// A refusal of a scenario file, with its line.
#[derive(Debug)]
pub struct FormatError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}

/// The actions a step may name, in the order the reference lists them.
const ACTIONS: &[&str] = &[
    "clock",
    "exec",
    "admin",
    "sync",
    "export",
    "mail",
    "import",
    "write",
    "checkout",
    "borrow",
    "heartbeat",
    "checkin",
    "poll",
    "fault",
    "status",
    "inbox",
    "customer_add",
    "server_add",
    "reinstall",
];

impl StepBody {
    /// The step's one action.
    pub fn action(&self) -> Result<&'static str, String> {
        let value = serde_json::to_value(self).map_err(|e| e.to_string())?;
        let named: Vec<&'static str> = ACTIONS
            .iter()
            .copied()
            .filter(|key| !value[*key].is_null())
            .collect();
        match named.as_slice() {
            [one] => Ok(one),
            [] => Err(format!(
                "the step does nothing: give one of {}",
                ACTIONS.join(", ")
            )),
            many => Err(format!(
                "a step does one thing; this one names {}",
                many.join(" and ")
            )),
        }
    }

    /// Every `${name}` the step uses.
    fn references(&self) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        if let Ok(value) = serde_json::to_value(self) {
            collect_references(&value, &mut found);
        }
        found
    }

    /// The step with every `${name}` replaced by its saved value.
    pub fn substitute(&self, saved: &BTreeMap<String, String>) -> Result<Self, String> {
        let value = serde_json::to_value(self).map_err(|e| e.to_string())?;
        serde_json::from_value(replace(value, saved)).map_err(|e| e.to_string())
    }

    pub fn within(&self) -> Option<Duration> {
        span(self.within.as_deref())
    }

    pub fn hold(&self) -> Option<Duration> {
        span(self.hold.as_deref())
    }
}

fn span(text: Option<&str>) -> Option<Duration> {
    text.and_then(|w| parse_span(w).ok())
        .and_then(|d| d.to_std().ok())
}

fn collect_references(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                let after = &rest[start + 2..];
                match after.find('}') {
                    Some(end) => {
                        found.insert(after[..end].to_string());
                        rest = &after[end + 1..];
                    }
                    None => break,
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, found)),
        Value::Object(map) => map.values().for_each(|v| collect_references(v, found)),
        _ => {}
    }
}

fn replace(value: Value, saved: &BTreeMap<String, String>) -> Value {
    match value {
        Value::String(mut text) => {
            for (name, saved) in saved {
                text = text.replace(&format!("${{{name}}}"), saved);
            }
            Value::String(text)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(|v| replace(v, saved)).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, replace(v, saved)))
                .collect(),
        ),
        other => other,
    }
}

/// Reads and checks `path`.
pub fn load(path: &Path) -> Result<Scenario, FormatError> {
    let refuse = |line: usize, message: String| FormatError {
        file: path.to_path_buf(),
        line,
        message,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| refuse(0, format!("cannot be read: {e}")))?;
    let file: File = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(0, |span| line_of(&text, span.start));
        refuse(line, e.message().trim().to_string())
    })?;
    let world = file.world;
    if world.local_servers == 0 || world.local_servers > 8 {
        return Err(refuse(1, "world.local_servers must be 1 to 8".to_string()));
    }
    if !(1..=crate::sim::world::MAX_REPLICAS).contains(&world.main_replicas) {
        return Err(refuse(1, "world.main_replicas must be 1 or 2".to_string()));
    }
    let mut programs: BTreeSet<String> = (1..=world.local_servers)
        .map(|n| format!("local-server-{n}"))
        .collect();
    let mut locals = programs.clone();
    for n in 2..=world.main_replicas {
        programs.insert(crate::sim::world::replica_name(n));
    }
    programs.insert("main-server".to_string());
    programs.insert("mail-gateway".to_string());
    if world.customer_proxy {
        programs.insert(CUSTOMER_PROXY.to_string());
    }
    let mut saved = BTreeSet::new();
    let mut steps = Vec::new();
    for spanned in file.step {
        let line = line_of(&text, spanned.span().start);
        let body = spanned.into_inner();
        check_step(&body, &locals, &programs, &saved).map_err(|m| refuse(line, m))?;
        // A server added by a step is there for the steps after it.
        if let Some(add) = &body.server_add {
            locals.insert(add.name.clone());
            programs.insert(add.name.clone());
        }
        if let Some(name) = &body.save {
            saved.insert(name.clone());
        }
        steps.push(Step { line, body });
    }
    if steps.is_empty() {
        return Err(refuse(
            1,
            "a scenario needs at least one [[step]]".to_string(),
        ));
    }
    Ok(Scenario {
        file: path.to_path_buf(),
        name: file.name,
        rule: file.rule,
        world,
        steps,
    })
}

fn check_step(
    step: &StepBody,
    locals: &BTreeSet<String>,
    programs: &BTreeSet<String>,
    saved: &BTreeSet<String>,
) -> Result<(), String> {
    let action = step.action()?;
    for name in step.references() {
        if !saved.contains(&name) {
            return Err(format!(
                "${{{name}}} is used before any step saved it (save = \"{name}\")"
            ));
        }
    }
    let local = |name: &str| -> Result<(), String> {
        if name.contains("${") || locals.contains(name) {
            Ok(())
        } else {
            Err(format!(
                "there is no local server {name:?} in this world (it has {})",
                locals.iter().cloned().collect::<Vec<_>>().join(", ")
            ))
        }
    };
    match action {
        "clock" => {
            let body = serde_json::to_value(&step.clock).map_err(|e| e.to_string())?;
            ClockMove::from_json(&body)?;
        }
        "exec" => {
            if let Some(exec) = &step.exec {
                if !programs.contains(&exec.program) {
                    return Err(format!(
                        "there is no program {:?} in this world",
                        exec.program
                    ));
                }
                if exec.args.is_empty() {
                    return Err("exec needs args, the verb first".to_string());
                }
            }
        }
        "admin" if step.admin.as_ref().is_some_and(Vec::is_empty) => {
            return Err("admin needs the admin verb, e.g. [\"audit\"]".to_string())
        }
        "sync" | "export" | "status" => {
            let server = step
                .sync
                .as_ref()
                .or(step.export.as_ref())
                .or(step.status.as_ref());
            local(server.map_or("", String::as_str))?;
        }
        "mail" => {
            if let Some(mail) = &step.mail {
                if mail.sync_data.is_some() == mail.text.is_some() {
                    return Err(
                        "a mail carries either sync_data (a saved export) or text".to_string()
                    );
                }
            }
        }
        "fault" => {
            if let Some(fault) = &step.fault {
                if !FaultKind::ALL.iter().any(|kind| kind.name() == fault.fault) {
                    return Err(format!(
                        "there is no fault {:?}; there are {}",
                        fault.fault,
                        FaultKind::ALL.map(FaultKind::name).join(", ")
                    ));
                }
                if fault.program == CUSTOMER_PROXY && !programs.contains(CUSTOMER_PROXY) {
                    return Err(
                        "customer-proxy is there only in a world with customer_proxy = true"
                            .to_string(),
                    );
                }
                if !programs.contains(&fault.program) {
                    return Err(format!(
                        "there is no program {:?} in this world",
                        fault.program
                    ));
                }
                let port_fault =
                    fault.fault.starts_with("port-") || fault.fault == "rogue-endpoint";
                if port_fault && fault.port.is_none() {
                    return Err(format!(
                        "{} needs port = \"443\", \"8080\" or \"both\"",
                        fault.fault
                    ));
                }
                if !port_fault && (fault.port.is_some() || fault.ms.is_some()) {
                    return Err(format!("{} takes no port or ms", fault.fault));
                }
                let forcing = fault.fault == "client-force";
                if forcing && !locals.contains(&fault.program) {
                    return Err("client-force is made on a local server".to_string());
                }
                if forcing && fault.on && (fault.feature.is_none() || fault.code.is_none()) {
                    return Err(
                        "client-force needs feature and code (granted, or e.g. NO_SEATS)"
                            .to_string(),
                    );
                }
                if !forcing && (fault.feature.is_some() || fault.code.is_some()) {
                    return Err(format!("{} takes no feature or code", fault.fault));
                }
                if fault.fault.starts_with("mail-") && fault.program != "mail-gateway" {
                    return Err(format!("{} is made on mail-gateway", fault.fault));
                }
                if (fault.fault == "mail-mangle") != fault.mangle.is_some() && fault.on {
                    return Err(
                        "mangle goes with mail-mangle, and mail-mangle needs it".to_string()
                    );
                }
            }
        }
        "import" => {
            if let Some(import) = &step.import {
                local(&import.server)?;
                if import.reply_to.is_some() == import.file.is_some() {
                    return Err("an import names either reply_to (a saved Message-ID) or file (a saved license file)".to_string());
                }
            }
        }
        "write" => {
            if let Some(write) = &step.write {
                if !programs.contains(&write.program) {
                    return Err(format!(
                        "there is no program {:?} in this world",
                        write.program
                    ));
                }
                check_file_name(&write.file)?;
                if write.text.len() > MAX_WRITE_BYTES {
                    return Err(format!("write.text is larger than {MAX_WRITE_BYTES} bytes"));
                }
            }
        }
        "checkout" => local(step.checkout.as_ref().map_or("", |s| s.server.as_str()))?,
        "borrow" => local(step.borrow.as_ref().map_or("", |s| s.server.as_str()))?,
        "heartbeat" | "checkin" => {
            let lease = step.heartbeat.as_ref().or(step.checkin.as_ref());
            local(lease.map_or("", |s| s.server.as_str()))?;
        }
        "poll" => local(step.poll.as_ref().map_or("", |s| s.server.as_str()))?,
        "reinstall" => local(step.reinstall.as_deref().unwrap_or_default())?,
        "customer_add"
            if step
                .customer_add
                .as_ref()
                .is_some_and(|c| c.contacts.is_empty()) =>
        {
            return Err("customer_add needs contacts = [\"ADDRESS\", …]".to_string());
        }
        "server_add" => {
            if let Some(add) = &step.server_add {
                if programs.contains(&add.name) {
                    return Err(format!(
                        "there is a program {:?} in this world already",
                        add.name
                    ));
                }
                if add.customer.is_some() == add.id.is_some() {
                    return Err(
                        "server_add takes either customer (a new id) or id (an existing one)"
                            .to_string(),
                    );
                }
                let modes = ["direct", "email", "daily", "weekly"];
                if let Some(sync) = &add.sync {
                    if !modes.contains(&sync.as_str()) {
                        return Err(format!(
                            "server_add.sync is one of {}, not {sync:?}",
                            modes.join(", ")
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    if let Some(within) = &step.within {
        parse_span(within).map_err(|e| format!("within: {e}"))?;
    }
    if let Some(hold) = &step.hold {
        if step.within.is_some() {
            return Err("a step either waits for its expectations (within) or keeps them for a while (hold), not both".to_string());
        }
        if step.expect.is_none() {
            return Err("hold needs expect: what must stay true the whole time".to_string());
        }
        parse_span(hold).map_err(|e| format!("hold: {e}"))?;
    }
    let saves = matches!(
        action,
        "customer_add"
            | "server_add"
            | "exec"
            | "admin"
            | "export"
            | "mail"
            | "import"
            | "write"
            | "checkout"
            | "borrow"
            | "poll"
            | "status"
    );
    if step.save_field.is_some() && step.save.is_none() {
        return Err("save_field needs save = \"NAME\"".to_string());
    }
    if step.save.is_some() && !saves {
        return Err(format!("a {action} step has nothing to save"));
    }
    let Some(expect) = &step.expect else {
        return Ok(());
    };
    let client = matches!(
        action,
        "checkout" | "borrow" | "heartbeat" | "checkin" | "poll"
    );
    let verb = matches!(action, "exec" | "admin" | "sync" | "export" | "import");
    let allowed: &[(&str, bool)] = &[
        ("code", client || verb),
        ("http", client),
        ("exit", verb),
        ("output_contains", verb),
        ("status", action == "status"),
        ("mail", action == "inbox"),
        ("no_new_mail", action == "inbox"),
        (
            "ends_within",
            matches!(action, "checkout" | "borrow" | "heartbeat" | "poll"),
        ),
    ];
    let value = serde_json::to_value(expect).map_err(|e| e.to_string())?;
    for (key, ok) in allowed {
        if !value[*key].is_null() && !ok {
            return Err(format!("expect.{key} means nothing after a {action} step"));
        }
    }
    if expect.no_new_mail == Some(true) && step.within.is_none() {
        return Err(
            "expect.no_new_mail needs within = \"…\" (how long nothing may come)".to_string(),
        );
    }
    if let Some(span) = &expect.ends_within {
        parse_span(span).map_err(|e| format!("expect.ends_within: {e}"))?;
    }
    Ok(())
}

/// A `write` step's file: a plain name in the program's data directory.
fn check_file_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if plain {
        Ok(())
    } else {
        Err(format!(
            "write.file {name:?} is not a plain file name (letters, digits, '.', '-', '_', not starting with '.'); the file goes into the program's data directory"
        ))
    }
}
