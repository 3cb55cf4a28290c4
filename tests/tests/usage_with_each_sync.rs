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

#[test]
fn use_made_while_a_mailed_sync_travels_is_reported_once_with_the_next_request() {
    let world = World::sqlite();
    let gateway = world.gateway();
    let (id, local) = world.serving_local_server(1);
    local.succeed("sync", &[]).unwrap();
    local.checkout("solme-cad", "laptop-1").unwrap().unwrap();
    let refuse = |expected_total: u64| {
        let refused = local
            .checkout("solme-cad", "laptop-2")
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.error.code, shared_proto::ErrorCode::NoSeats);
        wait_for_refusals(&local, expected_total);
    };
    let export = |name: &str| {
        let file = local.dir.join(name);
        local
            .succeed("export-sync-data", &[&file.to_string_lossy()])
            .unwrap();
        std::fs::read_to_string(&file).unwrap()
    };
    let mail = |sync_data: &str| {
        let message_id = test_harness::mail::send_sync_mail(
            gateway.smtp,
            support::CONTACT,
            &gateway.address,
            sync_data,
        )
        .unwrap();
        wait_for_reply(&gateway.outbox(), &message_id, Duration::from_secs(60)).unwrap()
    };

    // One refusal before the export; three while the mail is on its way.
    refuse(1);
    let s2 = export("s2.txt");
    for total in 2..=4 {
        refuse(total);
    }
    support::import_reply(&local, mail(&s2));
    support::import_reply(&local, mail(&export("s3.txt")));

    // A reply that never arrives: the customer exports again and mails that one.
    refuse(5);
    let _lost = mail(&export("s4.txt"));
    refuse(6);
    refuse(7);
    support::import_reply(&local, mail(&export("s5.txt")));

    let out = world.admin_cli(&["--json", "server", "usage", &id.to_string()]);
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
