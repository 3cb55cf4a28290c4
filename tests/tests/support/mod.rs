//! The world a journey runs in: a temporary directory, the main server (one process on
//! SQLite, or two on one fresh PostgreSQL database), a demo customer, and helpers that
//! read what users read.

use std::cell::Cell;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use shared_proto::ErrorCode;
use tempfile::TempDir;
use test_harness::mail::{send_sync_mail, Reply};
use test_harness::{Admin, LocalServer, MailGateway, MainOptions, MainServer};
use uuid::Uuid;

pub mod pair;

/// Generates `sqlite::NAME` and `postgres::NAME` for each journey (a function taking
/// the [`World`]); the `postgres::` ones skip with a notice without a database.
#[allow(
    unused_macros,
    reason = "not every test binary with this module runs journeys"
)]
macro_rules! journeys {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::support::World::sqlite()); })*
        }
        mod postgres {
            $(#[test] fn $name() {
                match super::support::World::postgres() {
                    Some(world) => super::$name(world),
                    None => eprintln!("skipped: SOLME_TEST_DATABASE_URL is not set"),
                }
            })*
        }
    };
}

/// The customer's registered contact address.
pub const CONTACT: &str = "ops@acme.example";

pub struct World {
    dir: TempDir,
    mains: Vec<MainServer>,
    customer: String,
    count: Cell<usize>,
}

impl World {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let main = MainServer::start(&dir.path().join("main"), MainOptions::default()).unwrap();
        Self::with(dir, vec![main])
    }

    /// Two processes on a fresh database, or None when no PostgreSQL is configured.
    pub fn postgres() -> Option<Self> {
        let url = std::env::var("SOLME_TEST_DATABASE_URL").ok()?;
        let name = format!("solme_e2e_{}", Uuid::new_v4().simple());
        let status = Command::new("psql")
            .arg(&url)
            .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
            .status()
            .expect("psql runs");
        assert!(status.success(), "creating the test database");
        let (base, _) = url.rsplit_once('/').expect("a database URL with a path");
        let options = MainOptions {
            database_url: Some(format!("{base}/{name}")),
            ..MainOptions::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let first = MainServer::start(&dir.path().join("main-1"), options).unwrap();
        let second = first.another_process(&dir.path().join("main-2")).unwrap();
        Some(Self::with(dir, vec![first, second]))
    }

    fn with(dir: TempDir, mains: Vec<MainServer>) -> Self {
        let customer = mains[0]
            .admin()
            .unwrap()
            .customer("Acme Engineering AB", &[CONTACT])
            .unwrap();
        Self {
            dir,
            mains,
            customer,
            count: Cell::new(0),
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn admin(&self) -> Admin {
        self.mains[self.mains.len() - 1].admin().unwrap()
    }

    /// The endpoint list local servers get: the "443" port of the first process and
    /// the "8080" port of the last one.
    pub fn sync_urls(&self) -> Vec<String> {
        vec![
            self.mains[0].sync_urls()[0].clone(),
            self.mains[self.mains.len() - 1].sync_urls()[1].clone(),
        ]
    }

    fn next_dir(&self, name: &str) -> PathBuf {
        let n = self.count.get() + 1;
        self.count.set(n);
        self.dir.path().join(format!("{name}-{n}"))
    }

    /// A new license server id with `seats` seats of solme-cad, and its local server
    /// installed (not serving).
    pub fn local_server(&self, seats: u32) -> (Uuid, LocalServer) {
        self.local_server_with(seats, &self.sync_urls(), &[])
    }

    pub fn local_server_with(
        &self,
        seats: u32,
        endpoints: &[String],
        extra: &[&str],
    ) -> (Uuid, LocalServer) {
        let admin = self.admin();
        let id = admin.server(&self.customer).unwrap();
        admin.add_license(id, "solme-cad", seats).unwrap();
        let local = LocalServer::init_with(
            &self.next_dir("local"),
            id,
            &self.mains[0],
            endpoints,
            extra,
        )
        .unwrap();
        (id, local)
    }

    /// Like [`World::local_server`], and serving clients.
    pub fn serving_local_server(&self, seats: u32) -> (Uuid, LocalServer) {
        let (id, mut local) = self.local_server(seats);
        local.serve().unwrap();
        (id, local)
    }

    /// Another installation (another key pair) claiming an existing id.
    pub fn local_server_for(&self, id: Uuid, name: &str) -> LocalServer {
        LocalServer::init_with(
            &self.next_dir(name),
            id,
            &self.mains[0],
            &self.sync_urls(),
            &[],
        )
        .unwrap()
    }

    /// Reinstalls a local server in place: `init --force` makes a new key pair.
    pub fn reinstall(&self, local: &LocalServer) {
        LocalServer::init_with(
            &local.dir,
            local.id,
            &self.mains[0],
            &self.sync_urls(),
            &["--force"],
        )
        .unwrap();
    }

    /// Restarts every main-server process with its clock moved.
    pub fn move_main_clock(&mut self, offset: Option<&str>) {
        for main in &mut self.mains {
            main.restart_with_clock(offset).unwrap();
        }
    }

    /// Moves every clock (main servers' and `local`'s) by `offset` and restarts `local`'s
    /// `serve` with a fast scheduler tick, so that an automatic sync due by then runs.
    pub fn later_with_scheduler(&mut self, local: &mut LocalServer, offset: &str) {
        self.move_main_clock(Some(offset));
        local.set_clock(Some(offset));
        local.serve_with(&["--scheduler-tick-ms", "50"]).unwrap();
    }

    pub fn stop_main(&mut self) {
        for main in &mut self.mains {
            main.stop().unwrap();
        }
    }

    /// Runs `main-server admin …` against the world's main server.
    #[allow(
        dead_code,
        reason = "not every test binary that shares this module uses it"
    )]
    pub fn admin_cli(&self, args: &[&str]) -> test_harness::process::Output {
        self.mains[self.mains.len() - 1].admin_cli(args).unwrap()
    }

    pub fn gateway(&self) -> MailGateway {
        self.gateway_with(&[])
    }

    /// A gateway with `extra` flags, talking to the first main-server process.
    pub fn gateway_with(&self, extra: &[&str]) -> MailGateway {
        MailGateway::start_with(&self.next_dir("gateway"), &self.mains[0], extra).unwrap()
    }

    /// The main-server processes (two on PostgreSQL).
    #[allow(
        dead_code,
        reason = "used by the reminder journeys, not by every test binary"
    )]
    pub fn mains(&self) -> &[MainServer] {
        &self.mains
    }

    /// The demo customer's id.
    #[allow(
        dead_code,
        reason = "used by the reminder journeys, not by every test binary"
    )]
    pub fn customer(&self) -> &str {
        &self.customer
    }
}

/// Where the local server keeps its key pairs.
pub fn key_dir(local: &LocalServer) -> PathBuf {
    local.dir.clone()
}

pub fn assert_mentions(text: &str, words: &[&str]) {
    for word in words {
        assert!(text.contains(word), "expected {word:?} in:\n{text}");
    }
}

/// Whether `status --json` says the server is synchronized (and so issues licenses).
pub fn synchronized(status: &Value) -> bool {
    status["issuing"] == true
        && matches!(status["state"].as_str(), Some("synchronized" | "warning"))
}

pub fn auto_sync_mode(status: &Value) -> String {
    status["auto_sync"]["mode"]
        .as_str()
        .or_else(|| status["auto_sync"].as_str())
        .unwrap_or_default()
        .to_string()
}

pub fn last_sync(status: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    status["last_sync_at"]
        .is_string()
        .then(|| time(&status["last_sync_at"]))
}

fn feature(local: &LocalServer, name: &str) -> Option<Value> {
    let features = local.features().unwrap();
    let list = features
        .as_array()
        .cloned()
        .or_else(|| features["features"].as_array().cloned())
        .unwrap_or_default();
    list.into_iter().find(|f| f["feature"] == name)
}

/// Seats of a feature as the client API lists them (None: not licensed).
/// The code of a check-out the local server refuses (fails the test when it lends the
/// seat).
pub fn refused_checkout(local: &LocalServer, feature: &str, client: &str) -> ErrorCode {
    local
        .checkout(feature, client)
        .unwrap()
        .expect_err("the check-out is refused")
        .error
        .code
}

pub fn seats(local: &LocalServer, name: &str) -> Option<u64> {
    feature(local, name).and_then(|f| f["seats_total"].as_u64())
}

pub fn in_use(local: &LocalServer, name: &str) -> Option<u64> {
    feature(local, name).and_then(|f| f["in_use"].as_u64())
}

/// The id of the license of `feature` on the main server.
pub fn license_id(admin: &Admin, id: Uuid, feature: &str) -> Value {
    let shown = admin.show(id).unwrap();
    shown["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["feature"] == feature)
        .map(|l| l["id"].clone())
        .unwrap()
}

/// What `diagnose` finds: the cause code of `--json`, and all the customer reads
/// (the text report and the JSON) for further checks.
pub fn diagnose(local: &LocalServer) -> (String, String) {
    let human = local.cli("diagnose", &[]).unwrap();
    let json = local.cli("diagnose", &["--json"]).unwrap();
    let report: Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("diagnose --json is not JSON ({e}):\n{}", json.text()));
    let cause = report["cause"].as_str().unwrap_or("none").to_string();
    (cause, format!("{}\n{}", human.text(), json.text()))
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("{value} is not an RFC 3339 time"))
        .with_timezone(&chrono::Utc)
}

/// Asserts that `local`'s status plans the next automatic sync `days` after `last`
/// (within a minute).
pub fn assert_next_run(local: &LocalServer, last: chrono::DateTime<chrono::Utc>, days: i64) {
    let status = local.status().unwrap();
    let next = time(&status["next_auto_sync_at"]);
    let expected = last + chrono::Duration::days(days);
    assert!(
        (next - expected).num_seconds().abs() < 60,
        "next run {next}, expected {expected}: {status}"
    );
}

/// Waits until the server has synchronized after `previous`; returns the new time.
pub fn wait_for_sync_after(
    local: &LocalServer,
    previous: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    test_harness::wait_until(
        "an automatic sync",
        std::time::Duration::from_secs(60),
        || {
            let last = last_sync(&local.status().ok()?)?;
            (last > previous).then_some(last)
        },
    )
    .unwrap()
}

/// The customer's side of an email sync: export the sync data and mail it as an
/// attachment from the registered contact; returns the mail's Message-ID.
pub fn mail_sync_data(gateway: &MailGateway, local: &LocalServer) -> String {
    let file = local.dir.join("sync-data.txt");
    local
        .succeed("export-sync-data", &[&file.to_string_lossy()])
        .unwrap();
    let sync_data = std::fs::read_to_string(&file).unwrap();
    send_sync_mail(gateway.smtp, CONTACT, &gateway.address, &sync_data).unwrap()
}

/// Saves the license file attached to a reply next to the local server's data.
pub fn save_license_file(local: &LocalServer, reply: Reply) -> PathBuf {
    let license = reply
        .license_file()
        .expect("the reply carries a license file");
    let path = local.dir.join("license.lic");
    std::fs::write(&path, license).unwrap();
    path
}

/// Imports the license file attached to a reply, as the customer does.
pub fn import_reply(local: &LocalServer, reply: Reply) {
    let path = save_license_file(local, reply);
    local
        .succeed("import-license-file", &[&path.to_string_lossy()])
        .unwrap();
}

/// Whether libfaketime is installed; in CI (`CI` set) its absence fails the test.
pub fn faketime_installed() -> bool {
    test_harness::tool_present(
        test_harness::programs::libfaketime().is_some(),
        "libfaketime",
        "Debian package faketime",
    )
}
