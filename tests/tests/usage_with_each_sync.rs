//! Usage with each sync, across the real programs: what the local server's report log
//! holds since the previous sync travels inside the signed sync data, by a direct sync
//! and by email, and shows in `main-server admin server usage` (table and `--json`) and
//! in the gateway's reply. Each test runs a simulation of its own (`solme-sim`) and
//! drives it through the control API; on PostgreSQL (`SOLME_TEST_DATABASE_URL` set)
//! with two main-server replicas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::time::Duration;

use serde_json::{json, Value};
use test_harness::mail::{wait_for_reply, Reply};
use test_harness::wait_until;
use tests::sim::scenario::driver::{RunningSim, SimOptions};

const L1: &str = "local-server-1";
const MAIL: Duration = Duration::from_secs(60);
/// The one feature these tests license: its seats are set by each test.
const FEATURE: &str = "solme-cam";

/// A simulation whose one local server is licensed `seats` seats of [`FEATURE`] and
/// nothing else, not yet synchronized; its id.
fn world(postgres: bool, seats: u32) -> Option<(RunningSim, uuid::Uuid)> {
    let options = SimOptions::new(env!("CARGO_BIN_EXE_solme-sim"), 1);
    let options = if postgres {
        options.on_postgres().unwrap()?
    } else {
        options
    };
    let sim = RunningSim::start(&options).unwrap();
    let id: uuid::Uuid = sim.local_status(L1).unwrap()["server_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let admin = sim.admin().unwrap();
    let cad = support::license_id(&admin, id, "solme-cad");
    admin.remove_license(id, &cad).unwrap();
    let cam = support::license_id(&admin, id, FEATURE);
    admin.change_seats(id, &cam, seats).unwrap();
    Some((sim, id))
}

fn checkout(sim: &RunningSim, host: &str) -> Value {
    let answer = sim.checkout(L1, FEATURE, host).unwrap();
    assert!(answer.granted(), "{:?}", answer.body);
    answer.body
}

fn refused(sim: &RunningSim, host: &str) {
    let answer = sim.checkout(L1, FEATURE, host).unwrap();
    assert_eq!(answer.code(), "NO_SEATS", "{:?}", answer.body);
}

#[test]
fn usage_sent_by_a_direct_sync_and_by_email_shows_in_admin_server_usage_on_sqlite() {
    usage_sent_by_a_direct_sync_and_by_email_shows_in_admin_server_usage(false);
}

#[test]
fn usage_sent_by_a_direct_sync_and_by_email_shows_in_admin_server_usage_on_postgres() {
    if std::env::var_os("SOLME_TEST_DATABASE_URL").is_none() {
        eprintln!("skipped: SOLME_TEST_DATABASE_URL is not set");
        return;
    }
    usage_sent_by_a_direct_sync_and_by_email_shows_in_admin_server_usage(true);
}

/// Waits until the local server's report log shows `n` refusals of the feature.
fn wait_for_refusals(sim: &RunningSim, n: u64) {
    wait_until(
        "the refusal in the report log",
        Duration::from_secs(30),
        || {
            let out = sim.exec(L1, &["report", "--json"]).ok()?;
            let report: Value = serde_json::from_str(&out.stdout).ok()?;
            let feature = report["features"]
                .as_array()?
                .iter()
                .find(|f| f["feature"] == FEATURE)?
                .clone();
            (feature["refusals"]["NO_SEATS"] == n).then_some(())
        },
    )
    .unwrap();
}

fn usage_sent_by_a_direct_sync_and_by_email_shows_in_admin_server_usage(postgres: bool) {
    let (sim, id) = world(postgres, 2).expect("a database URL");
    // A never-used server reports nothing with its first sync.
    sim.succeed(L1, &["sync"]).unwrap();

    let first = checkout(&sim, "laptop-1");
    checkout(&sim, "laptop-2");
    refused(&sim, "laptop-3");
    wait_for_refusals(&sim, 1);
    sim.succeed(L1, &["sync"]).unwrap();

    // By email: the reply says in one line what was reported.
    let returned = sim
        .client(json!({"action": "checkin", "server": L1, "lease": first["lease_id"]}))
        .unwrap();
    assert!(returned.granted(), "{:?}", returned.body);
    let message_id = sim.mail_sync_data(L1, support::CONTACT).unwrap();
    let reply = wait_for_reply(&sim.outbox().unwrap(), &message_id, MAIL).unwrap();
    support::assert_mentions(
        &reply.text,
        &["Usage:", &format!("{FEATURE} peak 2 of 2 seats")],
    );
    sim.import_reply(L1, &message_id, MAIL).unwrap();

    let id = id.to_string();
    let out = sim
        .exec("main-server", &["admin", "server", "usage", &id])
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.text());
    support::assert_mentions(
        &out.stdout,
        &[
            "SEAT-HOURS",
            "(no use reported)",
            "internet",
            "email",
            FEATURE,
            "NO_SEATS 1",
        ],
    );

    let out = sim
        .exec("main-server", &["admin", "--json", "server", "usage", &id])
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.text());
    let syncs: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(syncs.len(), 3, "{syncs:?}");
    assert_eq!(syncs[0]["channel"], "internet");
    assert_eq!(syncs[0]["features"], serde_json::json!([]));
    let direct = &syncs[1];
    assert_eq!(direct["channel"], "internet");
    assert!(direct["usage_since"].is_string(), "{direct}");
    assert_eq!(direct["features"][0]["feature"], FEATURE);
    assert_eq!(direct["features"][0]["seats_total"], 2);
    assert_eq!(direct["features"][0]["peak_in_use"], 2);
    assert_eq!(direct["features"][0]["refusals"]["NO_SEATS"], 1);
    let mailed = &syncs[2];
    assert_eq!(mailed["channel"], "email");
    assert_eq!(mailed["features"][0]["peak_in_use"], 2, "{mailed}");
    assert!(
        mailed["features"][0]["refusals"]
            .as_object()
            .unwrap()
            .is_empty(),
        "the refusal was reported with the previous sync: {mailed}"
    );
}

#[test]
fn use_made_while_a_mailed_sync_travels_is_reported_once_with_the_next_request() {
    let (sim, id) = world(false, 1).unwrap();
    sim.succeed(L1, &["sync"]).unwrap();
    checkout(&sim, "laptop-1");
    let refuse = |expected_total: u64| {
        refused(&sim, "laptop-2");
        wait_for_refusals(&sim, expected_total);
    };
    let dir = std::path::PathBuf::from(sim.program(L1).unwrap()["data_dir"].as_str().unwrap());
    let export = |name: &str| {
        let file = dir.join(name).to_string_lossy().into_owned();
        sim.succeed(L1, &["export-sync-data", &file]).unwrap();
        file
    };
    let mail = |file: &str| -> (String, Reply) {
        let message_id = sim
            .mail(json!({"from": support::CONTACT, "sync_data": file}))
            .unwrap();
        let reply = wait_for_reply(&sim.outbox().unwrap(), &message_id, MAIL).unwrap();
        (message_id, reply)
    };
    let import = |(message_id, _): (String, Reply)| {
        sim.import_reply(L1, &message_id, MAIL).unwrap();
    };

    // One refusal before the export; three while the mail is on its way.
    refuse(1);
    let s2 = export("s2.txt");
    for total in 2..=4 {
        refuse(total);
    }
    import(mail(&s2));
    import(mail(&export("s3.txt")));

    // A reply that never arrives: the customer exports again and mails that one.
    refuse(5);
    let _lost = mail(&export("s4.txt"));
    refuse(6);
    refuse(7);
    import(mail(&export("s5.txt")));

    let out = sim
        .exec(
            "main-server",
            &["admin", "--json", "server", "usage", &id.to_string()],
        )
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.text());
    let syncs: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let refusals: Vec<u64> = syncs
        .iter()
        .map(|sync| {
            sync["features"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["refusals"]["NO_SEATS"].as_u64())
                .sum()
        })
        .collect();
    // The direct sync, then S2 to S5: each refusal in exactly one of them, all 7 in all.
    assert_eq!(refusals, vec![0, 1, 3, 1, 2], "{syncs:?}");
}
