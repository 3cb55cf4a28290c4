//! Usage with each sync, across the real programs: what the local server's report log
//! holds since the previous sync travels inside the signed sync data, by a direct sync
//! and by email, and shows in `main-server admin server usage` (table and `--json`) and
//! in the gateway's reply. Runs on SQLite, and on PostgreSQL with two main-server
//! processes when `SOLME_TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::time::Duration;

use serde_json::Value;
use support::World;
use test_harness::mail::wait_for_reply;
use test_harness::wait_until;

#[test]
fn usage_sent_by_a_direct_sync_and_by_email_shows_in_admin_server_usage_on_sqlite() {
    usage_sent_by_a_direct_sync_and_by_email_shows_in_admin_server_usage(World::sqlite());
}

#[test]
fn usage_sent_by_a_direct_sync_and_by_email_shows_in_admin_server_usage_on_postgres() {
    match World::postgres() {
        Some(world) => usage_sent_by_a_direct_sync_and_by_email_shows_in_admin_server_usage(world),
        None => eprintln!("skipped: SOLME_TEST_DATABASE_URL is not set"),
    }
}

/// Waits until the local server's report log shows `n` refusals of solme-cad.
fn wait_for_refusals(local: &test_harness::LocalServer, n: u64) {
    wait_until(
        "the refusal in the report log",
        Duration::from_secs(30),
        || {
            let out = local.cli("report", &["--json"]).ok()?;
            let report: Value = serde_json::from_str(&out.stdout).ok()?;
            let cad = report["features"]
                .as_array()?
                .iter()
                .find(|f| f["feature"] == "solme-cad")?
                .clone();
            (cad["refusals"]["NO_SEATS"] == n).then_some(())
        },
    )
    .unwrap();
}

fn usage_sent_by_a_direct_sync_and_by_email_shows_in_admin_server_usage(world: World) {
    let gateway = world.gateway();
    let (id, local) = world.serving_local_server(2);
    // A never-used server reports nothing with its first sync.
    local.succeed("sync", &[]).unwrap();

    let first = local.checkout("solme-cad", "laptop-1").unwrap().unwrap();
    local.checkout("solme-cad", "laptop-2").unwrap().unwrap();
    let refused = local
        .checkout("solme-cad", "laptop-3")
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.error.code, shared_proto::ErrorCode::NoSeats);
    wait_for_refusals(&local, 1);
    local.succeed("sync", &[]).unwrap();

    // By email: the reply says in one line what was reported.
    local
        .checkin(first["lease_id"].as_str().unwrap())
        .unwrap()
        .unwrap();
    let message_id = support::mail_sync_data(&gateway, &local);
    let reply = wait_for_reply(&gateway.outbox(), &message_id, Duration::from_secs(60)).unwrap();
    support::assert_mentions(&reply.text, &["Usage:", "solme-cad peak 2 of 2 seats"]);
    support::import_reply(&local, reply);

    let out = world.admin_cli(&["server", "usage", &id.to_string()]);
    assert_eq!(out.code, 0, "{}", out.text());
    support::assert_mentions(
        &out.stdout,
        &[
            "SEAT-HOURS",
            "(no use reported)",
            "internet",
            "email",
            "solme-cad",
            "NO_SEATS 1",
        ],
    );

    let out = world.admin_cli(&["--json", "server", "usage", &id.to_string()]);
    assert_eq!(out.code, 0, "{}", out.text());
    let syncs: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(syncs.len(), 3, "{syncs:?}");
    assert_eq!(syncs[0]["channel"], "internet");
    assert_eq!(syncs[0]["features"], serde_json::json!([]));
    let direct = &syncs[1];
    assert_eq!(direct["channel"], "internet");
    assert!(direct["usage_since"].is_string(), "{direct}");
    assert_eq!(direct["features"][0]["feature"], "solme-cad");
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
