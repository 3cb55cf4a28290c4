//! The journeys of the product story, one test each, named after the sentence it
//! proves. Each runs a simulation of its own (`solme-sim --no-journeys` as a process,
//! its programs on one simulated clock) and drives it only through the control API:
//! clock moves, verbs run on the simulation's clock, a licensed program's requests,
//! mail to licensing@, faults, servers added and reinstalled. Every journey runs on
//! SQLite; with `SOLME_TEST_DATABASE_URL` set it also runs on PostgreSQL with two
//! `main-server` replicas (the `postgres::` tests skip with a notice otherwise).
//!
//! One journey stays on the harness's own world: the operating system's clock moved
//! under a local server (libfaketime), which is the one clock a simulation does not
//! move.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::time::Duration;

use serde_json::{json, Value};
use shared_proto::exit;
use shared_proto::ErrorCode;
use support::World;
use test_harness::mail::{replies_to, wait_for_reply};
use test_harness::proxy::PROXY_PASSWORD;
use test_harness::wait_until;
use tests::sim::scenario::driver::{RunningSim, SimOptions};

/// Generates `sqlite::NAME` and `postgres::NAME` for each journey: those in `sim` take
/// a [`Start`], those in `world` the harness's [`World`].
macro_rules! journeys {
    (sim: [$($sim:ident),* $(,)?], world: [$($world:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            $(#[test] fn $sim() { super::$sim(super::Start::Sqlite); })*
            $(#[test] fn $world() { super::$world(super::World::sqlite()); })*
        }
        mod postgres {
            $(#[test] fn $sim() {
                if std::env::var_os("SOLME_TEST_DATABASE_URL").is_none() {
                    eprintln!("skipped: SOLME_TEST_DATABASE_URL is not set");
                    return;
                }
                super::$sim(super::Start::Postgres);
            })*
            $(#[test] fn $world() {
                match super::World::postgres() {
                    Some(world) => super::$world(world),
                    None => eprintln!("skipped: SOLME_TEST_DATABASE_URL is not set"),
                }
            })*
        }
    };
}

journeys!(
    sim: [
        a_never_synced_server_issues_nothing,
        license_changes_reach_the_local_server_only_after_a_sync,
        after_366_days_without_sync_nothing_is_issued_and_a_sync_restores_it,
        the_first_sync_binds_the_key_pair,
        a_second_server_with_the_same_id_is_refused,
        a_reinstalled_server_is_refused,
        after_the_operator_clears_the_key_pair_the_reinstalled_server_syncs_and_the_old_one_is_refused,
        a_key_clear_mailed_to_licensing_and_approved_lets_the_reinstalled_server_sync,
        direct_sync_falls_back_from_the_443_port_to_the_8080_port,
        automatic_sync_is_off_by_default_and_runs_daily_or_weekly_on_schedule,
        diagnosis_names_id_in_use_blocked_ports_proxy_and_main_server_down,
        sync_by_file_through_the_mail_gateway_replies_to_the_sender,
        clients_keep_their_leases_and_get_new_ones_during_the_email_round_trip,
        many_local_servers_sync_at_once_through_both_channels,
    ],
    world: [the_366_day_rule_and_rollback_hold_when_the_operating_system_clock_moves],
);

const MAIL: Duration = Duration::from_secs(60);
const L1: &str = "local-server-1";
const L2: &str = "local-server-2";

/// Which database the journey's simulation runs on.
#[derive(Clone, Copy)]
enum Start {
    Sqlite,
    /// A fresh database, two main-server replicas.
    Postgres,
}

impl Start {
    fn options(self, local_servers: usize) -> SimOptions {
        let options = SimOptions::new(env!("CARGO_BIN_EXE_solme-sim"), local_servers);
        match self {
            Self::Sqlite => options,
            Self::Postgres => options.on_postgres().unwrap().expect("a database URL"),
        }
    }

    /// A simulation with `local_servers` local servers, none synchronized.
    fn sim(self, local_servers: usize) -> RunningSim {
        RunningSim::start(&self.options(local_servers)).unwrap()
    }
}

fn id_of(sim: &RunningSim, server: &str) -> uuid::Uuid {
    sim.local_status(server).unwrap()["server_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The features as the local server's client API lists them to licensed programs.
fn feature(sim: &RunningSim, server: &str, name: &str) -> Option<Value> {
    let api = sim.program(server).unwrap()["addresses"]["api"]
        .as_str()
        .unwrap()
        .to_string();
    let features: Value = ureq::get(&format!("{api}/api/v1/features"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    let list = features
        .as_array()
        .cloned()
        .or_else(|| features["features"].as_array().cloned())
        .unwrap_or_default();
    list.into_iter().find(|f| f["feature"] == name)
}

fn seats(sim: &RunningSim, server: &str, name: &str) -> Option<u64> {
    feature(sim, server, name).and_then(|f| f["seats_total"].as_u64())
}

fn in_use(sim: &RunningSim, server: &str, name: &str) -> Option<u64> {
    feature(sim, server, name).and_then(|f| f["in_use"].as_u64())
}

/// Installs another local server on `id` (another key pair), as a thief or a new
/// installation would.
fn another_installation(sim: &RunningSim, name: &str, id: uuid::Uuid) {
    sim.ok(
        "POST",
        "/v1/servers",
        Some(json!({"name": name, "id": id.to_string()})),
    )
    .unwrap();
}

fn a_never_synced_server_issues_nothing(start: Start) {
    let sim = start.sim(1);
    assert_eq!(
        sim.checkout(L1, "solme-cad", "laptop-1").unwrap().code(),
        "NOT_SYNCHRONIZED"
    );
    assert!(!support::synchronized(&sim.local_status(L1).unwrap()));
}

fn license_changes_reach_the_local_server_only_after_a_sync(start: Start) {
    let sim = start.sim(1);
    let id = id_of(&sim, L1);
    sim.succeed(L1, &["sync"]).unwrap();
    assert_eq!(seats(&sim, L1, "solme-cad"), Some(5));

    let admin = sim.admin().unwrap();
    let cad = support::license_id(&admin, id, "solme-cad");
    admin.change_seats(id, &cad, 2).unwrap();
    admin.add_license(id, "solme-view", 3).unwrap();
    // Nothing moves on the local server until it synchronizes.
    assert_eq!(seats(&sim, L1, "solme-cad"), Some(5));
    assert_eq!(seats(&sim, L1, "solme-view"), None);

    sim.succeed(L1, &["sync"]).unwrap();
    assert_eq!(seats(&sim, L1, "solme-cad"), Some(2));
    assert_eq!(seats(&sim, L1, "solme-view"), Some(3));

    admin.remove_license(id, &cad).unwrap();
    assert_eq!(seats(&sim, L1, "solme-cad"), Some(2));
    sim.succeed(L1, &["sync"]).unwrap();
    assert_eq!(seats(&sim, L1, "solme-cad"), None);
    assert_eq!(
        sim.checkout(L1, "solme-cad", "laptop-1").unwrap().code(),
        ErrorCode::FeatureUnknown.as_str()
    );
}

fn after_366_days_without_sync_nothing_is_issued_and_a_sync_restores_it(start: Start) {
    let sim = start.sim(1);
    sim.succeed(L1, &["sync"]).unwrap();
    assert!(sim.checkout(L1, "solme-cad", "laptop-1").unwrap().granted());

    // A year and a day later, for everybody, without restarting anything.
    sim.advance("367d").unwrap();
    assert_eq!(
        sim.checkout(L1, "solme-cad", "laptop-2").unwrap().code(),
        "SYNC_EXPIRED"
    );
    assert!(!support::synchronized(&sim.local_status(L1).unwrap()));

    sim.succeed(L1, &["sync"]).unwrap();
    assert!(sim.checkout(L1, "solme-cad", "laptop-2").unwrap().granted());
}

/// The operating system's clock, not the programs': libfaketime under `serve`. A
/// simulation moves its programs' clock (`--clock-file`) and never the machine's, so
/// this journey keeps the harness's world.
fn the_366_day_rule_and_rollback_hold_when_the_operating_system_clock_moves(world: World) {
    if !support::faketime_installed() {
        return;
    }
    let (_, mut local) = world.serving_local_server(5);
    local.succeed("sync", &[]).unwrap();
    assert!(local.checkout("solme-cad", "laptop-1").unwrap().is_ok());

    // The machine's own clock a year and two days on (not the program's offset).
    local.set_faketime(Some("+367d"));
    local.serve().unwrap();
    assert_eq!(
        support::refused_checkout(&local, "solme-cad", "laptop-2"),
        ErrorCode::SyncExpired
    );

    // Set back behind what the server has seen: a rollback, not a fresh year.
    local.set_faketime(Some("-2d"));
    local.serve().unwrap();
    assert_eq!(
        support::refused_checkout(&local, "solme-cad", "laptop-3"),
        ErrorCode::ClockRollback
    );
}

fn the_first_sync_binds_the_key_pair(start: Start) {
    let sim = start.sim(1);
    let id = id_of(&sim, L1);
    let admin = sim.admin().unwrap();
    assert!(admin.show(id).unwrap()["bound_fingerprint"].is_null());
    sim.succeed(L1, &["sync"]).unwrap();
    let shown = admin.show(id).unwrap();
    let dir = sim.program(L1).unwrap()["data_dir"]
        .as_str()
        .unwrap()
        .to_string();
    let identity = shared_proto::ServerIdentity::load(std::path::Path::new(&dir)).unwrap();
    assert_eq!(
        shown["bound_fingerprint"],
        identity.fingerprint().to_string()
    );
    assert!(!shown["bound_at"].is_null());
    // The same key pair keeps syncing.
    sim.succeed(L1, &["sync"]).unwrap();
}

fn a_second_server_with_the_same_id_is_refused(start: Start) {
    let sim = start.sim(1);
    let id = id_of(&sim, L1);
    sim.succeed(L1, &["sync"]).unwrap();
    another_installation(&sim, "thief", id);
    let output = sim.exec("thief", &["sync"]).unwrap();
    assert_eq!(output.code, 1, "{}", output.text());
    support::assert_mentions(&output.text(), &["ID_IN_USE", "licensing@"]);
    // The rightful server is not disturbed.
    sim.succeed(L1, &["sync"]).unwrap();
}

fn a_reinstalled_server_is_refused(start: Start) {
    let sim = start.sim(1);
    sim.succeed(L1, &["sync"]).unwrap();
    sim.ok("POST", &format!("/v1/servers/{L1}/reinstall"), None)
        .unwrap();
    let output = sim.exec(L1, &["sync"]).unwrap();
    assert_eq!(output.code, 1, "{}", output.text());
    support::assert_mentions(&output.text(), &["ID_IN_USE"]);
}

fn after_the_operator_clears_the_key_pair_the_reinstalled_server_syncs_and_the_old_one_is_refused(
    start: Start,
) {
    let sim = start.sim(1);
    let id = id_of(&sim, L1);
    sim.succeed(L1, &["sync"]).unwrap();
    another_installation(&sim, "reinstalled", id);
    assert_eq!(sim.exec("reinstalled", &["sync"]).unwrap().code, 1);

    sim.admin()
        .unwrap()
        .clear_key(id, "customer reinstalled on new hardware")
        .unwrap();
    sim.succeed("reinstalled", &["sync"]).unwrap();
    let output = sim.exec(L1, &["sync"]).unwrap();
    assert_eq!(output.code, 1, "{}", output.text());
    support::assert_mentions(&output.text(), &["ID_IN_USE"]);

    let audit = sim.admin().unwrap().audit().unwrap();
    assert!(
        audit.iter().any(|e| e
            .to_string()
            .contains("customer reinstalled on new hardware")),
        "the key clear and its reason are audited"
    );
}

fn a_key_clear_mailed_to_licensing_and_approved_lets_the_reinstalled_server_sync(start: Start) {
    let sim = start.sim(1);
    let id = id_of(&sim, L1);
    sim.succeed(L1, &["sync"]).unwrap();
    another_installation(&sim, "reinstalled", id);
    assert_eq!(sim.exec("reinstalled", &["sync"]).unwrap().code, 1);

    let message_id = sim
        .mail(json!({
            "from": support::CONTACT,
            "subject": format!("Please clear the key pair of {id}"),
            "text": format!("Hello,\n\nwe reinstalled our license server. Please clear the key pair of license server id {id}.\n"),
        }))
        .unwrap();
    let outbox = sim.outbox().unwrap();
    let ack = wait_for_reply(&outbox, &message_id, MAIL).unwrap();
    assert_eq!(ack.to, support::CONTACT);

    let admin = sim.admin().unwrap();
    let pending = wait_until("the key-clear request", MAIL, || {
        admin
            .key_clear_requests("pending")
            .ok()?
            .into_iter()
            .find(|r| r["server_id"] == id.to_string())
    })
    .unwrap();
    admin.approve(&pending).unwrap();
    let notice = wait_until("the decision notice", MAIL, || {
        replies_to(&outbox, &message_id)
            .ok()?
            .into_iter()
            .find(|r| r.text.to_lowercase().contains("approved"))
    })
    .unwrap();
    assert_eq!(notice.to, support::CONTACT);

    sim.succeed("reinstalled", &["sync"]).unwrap();
    assert_eq!(sim.exec(L1, &["sync"]).unwrap().code, 1);
}

fn direct_sync_falls_back_from_the_443_port_to_the_8080_port(start: Start) {
    let sim = start.sim(1);
    sim.fault(json!({"fault": "port-refuse", "program": "main-server", "port": "443", "on": true}))
        .unwrap();
    let output = sim.succeed(L1, &["sync"]).unwrap();
    assert!(
        support::synchronized(&sim.local_status(L1).unwrap()),
        "{}",
        output.text()
    );
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("{value} is not an RFC 3339 time"))
        .with_timezone(&chrono::Utc)
}

fn last_sync(sim: &RunningSim) -> Option<chrono::DateTime<chrono::Utc>> {
    let status = sim.local_status(L1).ok()?;
    status["last_sync_at"]
        .is_string()
        .then(|| time(&status["last_sync_at"]))
}

/// Asserts that the status plans the next automatic sync `days` after `last` (within
/// a minute).
fn assert_next_run(sim: &RunningSim, last: chrono::DateTime<chrono::Utc>, days: i64) {
    let status = sim.local_status(L1).unwrap();
    let next = time(&status["next_auto_sync_at"]);
    let expected = last + chrono::Duration::days(days);
    assert!(
        (next - expected).num_seconds().abs() < 60,
        "next run {next}, expected {expected}: {status}"
    );
}

fn wait_for_sync_after(
    sim: &RunningSim,
    previous: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    wait_until("an automatic sync", MAIL, || {
        last_sync(sim).filter(|last| *last > previous)
    })
    .unwrap()
}

/// Moves the clock to five minutes past `period` after now in two moves: all but five
/// minutes, then ten more. Every program reads the clock file on its own; a run that
/// falls due in the first, long move could reach the main server before it follows,
/// more than 15 minutes ahead of it, and be refused as stale (then retried a minute
/// later).
fn pass(sim: &RunningSim, most: &str) {
    sim.advance(most).unwrap();
    sim.advance("10m").unwrap();
}

fn automatic_sync_is_off_by_default_and_runs_daily_or_weekly_on_schedule(start: Start) {
    let sim = start.sim(1);
    let status = sim.local_status(L1).unwrap();
    assert_eq!(support::auto_sync_mode(&status), "off");
    assert!(status["next_auto_sync_at"].is_null(), "{status}");
    sim.succeed(L1, &["sync"]).unwrap();
    let first = last_sync(&sim).unwrap();

    // The plan follows the mode: a week, or a day, after the last sync.
    sim.succeed(L1, &["auto-sync", "weekly"]).unwrap();
    assert_next_run(&sim, first, 7);
    sim.succeed(L1, &["auto-sync", "daily"]).unwrap();
    assert_next_run(&sim, first, 1);

    // A day later the daily run has happened on its own, and the next one is planned.
    pass(&sim, "23h55m");
    let second = wait_for_sync_after(&sim, first);
    assert_next_run(&sim, second, 1);

    // Weekly from there: due a week after that sync; a week later it has run again.
    sim.succeed(L1, &["auto-sync", "weekly"]).unwrap();
    assert_next_run(&sim, second, 7);
    pass(&sim, "6d23h55m");
    let third = wait_for_sync_after(&sim, second);
    assert_next_run(&sim, third, 7);

    // Off again: nothing is planned.
    sim.succeed(L1, &["auto-sync", "off"]).unwrap();
    assert!(sim.local_status(L1).unwrap()["next_auto_sync_at"].is_null());
}

/// What `diagnose` finds: the cause code of `--json`, and all the customer reads.
fn diagnose(sim: &RunningSim, server: &str) -> (String, String) {
    let human = sim.exec(server, &["diagnose"]).unwrap();
    let json = sim.exec(server, &["diagnose", "--json"]).unwrap();
    let report: Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("diagnose --json is not JSON ({e}):\n{}", json.text()));
    let cause = report["cause"].as_str().unwrap_or("none").to_string();
    (cause, format!("{}\n{}", human.text(), json.text()))
}

fn diagnosis_names_id_in_use_blocked_ports_proxy_and_main_server_down(start: Start) {
    let sim = start.sim(2);
    // Id in use: another key pair holds the id.
    let id = id_of(&sim, L1);
    sim.succeed(L1, &["sync"]).unwrap();
    another_installation(&sim, "other", id);
    let (cause, text) = diagnose(&sim, "other");
    assert_eq!(cause, "ID_IN_USE", "{text}");
    support::assert_mentions(&text, &["licensing@"]);

    // Both ports blocked: nothing answers on either port.
    let both =
        json!({"fault": "port-refuse", "program": "main-server", "port": "both", "on": true});
    sim.fault(both.clone()).unwrap();
    let (cause, text) = diagnose(&sim, L2);
    assert_eq!(cause, "PORTS_BLOCKED", "{text}");
    support::assert_mentions(&text, &["firewall"]);
    let output = sim.exec(L2, &["sync"]).unwrap();
    assert_eq!(
        output.code,
        i32::from(exit::TEMPORARY),
        "a network failure is temporary: {}",
        output.text()
    );

    // Main server down: a server that reached it before is told it is down. Its
    // processes are killed and its ports refuse, as a machine's do without a program
    // listening (the simulation's port relays otherwise accept the connection and
    // close it, and the local server sees a TLS handshake that never completes).
    let replicas: Vec<String> = sim.ok("GET", "/v1/world", None).unwrap()["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    for replica in &replicas {
        sim.fault(json!({"fault": "kill", "program": replica, "on": true}))
            .unwrap();
    }
    let (cause, text) = diagnose(&sim, L1);
    assert_eq!(cause, "MAIN_SERVER_DOWN", "{text}");
    drop(sim);

    // A proxy asking for credentials: refused ones are named, never shown; accepted
    // ones work.
    let mut options = start.options(1);
    options.customer_proxy = true;
    let behind = RunningSim::start(&options).unwrap();
    let proxy_auth = json!({"fault": "proxy-auth", "program": "customer-proxy", "on": true});
    behind.fault(proxy_auth.clone()).unwrap();
    let (cause, text) = diagnose(&behind, L1);
    assert_eq!(cause, "PROXY_CREDENTIALS", "{text}");
    assert!(
        !text.contains(PROXY_PASSWORD),
        "the proxy password is not shown: {text}"
    );
    let mut off = proxy_auth;
    off["on"] = json!(false);
    behind.fault(off).unwrap();
    behind.succeed(L1, &["sync"]).unwrap();
}

fn sync_by_file_through_the_mail_gateway_replies_to_the_sender(start: Start) {
    let sim = start.sim(1);
    let id = id_of(&sim, L1);
    let message_id = sim.mail_sync_data(L1, support::CONTACT).unwrap();

    let reply = wait_for_reply(&sim.outbox().unwrap(), &message_id, MAIL).unwrap();
    assert_eq!(
        reply.to,
        support::CONTACT,
        "the reply goes to the sender's address"
    );
    assert_eq!(reply.auto_submitted.as_deref(), Some("auto-replied"));
    assert!(reply.text.contains(&id.to_string()), "{}", reply.text);
    let license = reply.license_file().expect("a license file");
    let dir = sim.program(L1).unwrap()["data_dir"]
        .as_str()
        .unwrap()
        .to_string();
    let path = std::path::Path::new(&dir).join("license.lic");
    std::fs::write(&path, license).unwrap();
    let path = path.to_string_lossy().into_owned();
    sim.succeed(L1, &["import-license-file", &path]).unwrap();
    assert!(support::synchronized(&sim.local_status(L1).unwrap()));

    // The same file again is older than (equal to) what is held: refused, nothing changes.
    let again = sim.exec(L1, &["import-license-file", &path]).unwrap();
    assert_eq!(again.code, 1, "{}", again.text());
    support::assert_mentions(&again.text(), &["OLDER_LICENSE_FILE"]);
}

fn clients_keep_their_leases_and_get_new_ones_during_the_email_round_trip(start: Start) {
    let sim = start.sim(1);
    sim.succeed(L1, &["sync"]).unwrap();
    let lease = sim.checkout(L1, "solme-cad", "laptop-1").unwrap();
    assert!(lease.granted(), "{:?}", lease.body);
    let lease_id = lease.body["lease_id"].as_str().unwrap().to_string();

    let message_id = sim.mail_sync_data(L1, support::CONTACT).unwrap();
    // While the mail is on its way, clients work as usual.
    assert!(sim.heartbeat(L1, &lease_id).unwrap().granted());
    let second = sim.checkout(L1, "solme-cad", "laptop-2").unwrap();
    assert!(second.granted(), "{:?}", second.body);

    sim.import_reply(L1, &message_id, MAIL).unwrap();

    assert!(sim.heartbeat(L1, &lease_id).unwrap().granted());
    assert!(sim
        .heartbeat(L1, second.body["lease_id"].as_str().unwrap())
        .unwrap()
        .granted());
    assert!(sim.checkout(L1, "solme-cad", "laptop-3").unwrap().granted());
    assert_eq!(in_use(&sim, L1, "solme-cad"), Some(3));
}

fn many_local_servers_sync_at_once_through_both_channels(start: Start) {
    const SERVERS: usize = 20;
    let sim = start.sim(SERVERS);
    let names: Vec<String> = (1..=SERVERS).map(|n| format!("local-server-{n}")).collect();
    std::thread::scope(|scope| {
        for (n, name) in names.iter().enumerate() {
            let sim = &sim;
            scope.spawn(move || {
                if n % 2 == 0 {
                    sim.succeed(name, &["sync"]).unwrap();
                    return;
                }
                let message_id = sim.mail_sync_data(name, support::CONTACT).unwrap();
                sim.import_reply(name, &message_id, MAIL).unwrap();
            });
        }
    });
    for name in &names {
        let status = sim.local_status(name).unwrap();
        assert!(support::synchronized(&status), "{status}");
    }
}
