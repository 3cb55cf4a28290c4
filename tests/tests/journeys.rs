//! The journeys of the product story, one test each, named after the sentence it
//! proves. Every journey runs on SQLite; with `SOLME_TEST_DATABASE_URL` set it also
//! runs on PostgreSQL, with two `main-server` processes behind the local servers'
//! endpoint list (the `postgres::` tests skip with a notice otherwise).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::Value;
use shared_proto::exit;
use shared_proto::ErrorCode;
use support::World;
use test_harness::mail::{send_text_mail, wait_for_reply};
use test_harness::proxy::{Tinyproxy, PROXY_PASSWORD, PROXY_USER};
use test_harness::wait_until;

journeys!(
    a_never_synced_server_issues_nothing,
    license_changes_reach_the_local_server_only_after_a_sync,
    after_366_days_without_sync_nothing_is_issued_and_a_sync_restores_it,
    the_366_day_rule_and_rollback_hold_when_the_operating_system_clock_moves,
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
);

const MAIL: Duration = Duration::from_secs(60);

fn a_never_synced_server_issues_nothing(world: World) {
    let (_, local) = world.serving_local_server(5);
    assert_eq!(
        support::refused_checkout(&local, "solme-cad", "laptop-1"),
        ErrorCode::NotSynchronized
    );
    assert!(!support::synchronized(&local.status().unwrap()));
}

fn license_changes_reach_the_local_server_only_after_a_sync(world: World) {
    let (id, local) = world.serving_local_server(5);
    local.succeed("sync", &[]).unwrap();
    assert_eq!(support::seats(&local, "solme-cad"), Some(5));

    let admin = world.admin();
    let cad = support::license_id(&admin, id, "solme-cad");
    admin.change_seats(id, &cad, 2).unwrap();
    admin.add_license(id, "solme-cam", 3).unwrap();
    // Nothing moves on the local server until it synchronizes.
    assert_eq!(support::seats(&local, "solme-cad"), Some(5));
    assert_eq!(support::seats(&local, "solme-cam"), None);

    local.succeed("sync", &[]).unwrap();
    assert_eq!(support::seats(&local, "solme-cad"), Some(2));
    assert_eq!(support::seats(&local, "solme-cam"), Some(3));

    admin.remove_license(id, &cad).unwrap();
    assert_eq!(support::seats(&local, "solme-cad"), Some(2));
    local.succeed("sync", &[]).unwrap();
    assert_eq!(support::seats(&local, "solme-cad"), None);
    assert_eq!(
        support::refused_checkout(&local, "solme-cad", "laptop-1"),
        ErrorCode::FeatureUnknown
    );
}

fn after_366_days_without_sync_nothing_is_issued_and_a_sync_restores_it(mut world: World) {
    let (_, mut local) = world.serving_local_server(5);
    local.succeed("sync", &[]).unwrap();
    assert!(local.checkout("solme-cad", "laptop-1").unwrap().is_ok());

    // A year and a day later, for everybody.
    world.move_main_clock(Some("367d"));
    local.set_clock(Some("367d"));
    local.serve().unwrap();
    assert_eq!(
        support::refused_checkout(&local, "solme-cad", "laptop-2"),
        ErrorCode::SyncExpired
    );
    assert!(!support::synchronized(&local.status().unwrap()));

    local.succeed("sync", &[]).unwrap();
    assert!(local.checkout("solme-cad", "laptop-2").unwrap().is_ok());
}

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

fn the_first_sync_binds_the_key_pair(world: World) {
    let (id, local) = world.local_server(5);
    let admin = world.admin();
    assert!(admin.show(id).unwrap()["bound_fingerprint"].is_null());
    local.succeed("sync", &[]).unwrap();
    let shown = admin.show(id).unwrap();
    let identity = shared_proto::ServerIdentity::load(&support::key_dir(&local)).unwrap();
    assert_eq!(
        shown["bound_fingerprint"],
        identity.fingerprint().to_string()
    );
    assert!(!shown["bound_at"].is_null());
    // The same key pair keeps syncing.
    local.succeed("sync", &[]).unwrap();
}

fn a_second_server_with_the_same_id_is_refused(world: World) {
    let (id, first) = world.local_server(5);
    first.succeed("sync", &[]).unwrap();
    let second = world.local_server_for(id, "thief");
    let output = second.cli("sync", &[]).unwrap();
    assert_eq!(output.code, 1, "{}", output.text());
    support::assert_mentions(&output.text(), &["ID_IN_USE", "licensing@"]);
    // The rightful server is not disturbed.
    first.succeed("sync", &[]).unwrap();
}

fn a_reinstalled_server_is_refused(world: World) {
    let (_, local) = world.local_server(5);
    local.succeed("sync", &[]).unwrap();
    world.reinstall(&local);
    let output = local.cli("sync", &[]).unwrap();
    assert_eq!(output.code, 1, "{}", output.text());
    support::assert_mentions(&output.text(), &["ID_IN_USE"]);
}

fn after_the_operator_clears_the_key_pair_the_reinstalled_server_syncs_and_the_old_one_is_refused(
    world: World,
) {
    let (id, old) = world.local_server(5);
    old.succeed("sync", &[]).unwrap();
    let reinstalled = world.local_server_for(id, "reinstalled");
    assert_eq!(reinstalled.cli("sync", &[]).unwrap().code, 1);

    world
        .admin()
        .clear_key(id, "customer reinstalled on new hardware")
        .unwrap();
    reinstalled.succeed("sync", &[]).unwrap();
    let output = old.cli("sync", &[]).unwrap();
    assert_eq!(output.code, 1, "{}", output.text());
    support::assert_mentions(&output.text(), &["ID_IN_USE"]);

    let audit = world.admin().audit().unwrap();
    assert!(
        audit.iter().any(|e| e
            .to_string()
            .contains("customer reinstalled on new hardware")),
        "the key clear and its reason are audited"
    );
}

fn a_key_clear_mailed_to_licensing_and_approved_lets_the_reinstalled_server_sync(world: World) {
    let gateway = world.gateway();
    let (id, old) = world.local_server(5);
    old.succeed("sync", &[]).unwrap();
    let reinstalled = world.local_server_for(id, "reinstalled");
    assert_eq!(reinstalled.cli("sync", &[]).unwrap().code, 1);

    let message_id = send_text_mail(
        gateway.smtp,
        support::CONTACT,
        &gateway.address,
        &format!("Please clear the key pair of {id}"),
        &format!("Hello,\n\nwe reinstalled our license server. Please clear the key pair of license server id {id}.\n"),
    )
    .unwrap();
    let ack = wait_for_reply(&gateway.outbox(), &message_id, MAIL).unwrap();
    assert_eq!(ack.to, support::CONTACT);

    let admin = world.admin();
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
        test_harness::mail::replies_to(&gateway.outbox(), &message_id)
            .ok()?
            .into_iter()
            .find(|r| r.text.to_lowercase().contains("approved"))
    })
    .unwrap();
    assert_eq!(notice.to, support::CONTACT);

    reinstalled.succeed("sync", &[]).unwrap();
    assert_eq!(old.cli("sync", &[]).unwrap().code, 1);
}

fn direct_sync_falls_back_from_the_443_port_to_the_8080_port(world: World) {
    let closed = test_harness::net::closed_port().unwrap();
    let endpoints = vec![
        format!("https://127.0.0.1:{closed}"),
        world.sync_urls()[1].clone(),
    ];
    let (_, local) = world.local_server_with(5, &endpoints, &[]);
    let output = local.succeed("sync", &[]).unwrap();
    assert!(
        support::synchronized(&local.status().unwrap()),
        "{}",
        output.text()
    );
}

fn automatic_sync_is_off_by_default_and_runs_daily_or_weekly_on_schedule(mut world: World) {
    let (_, mut local) = world.local_server(5);
    let status = local.status().unwrap();
    assert_eq!(support::auto_sync_mode(&status), "off");
    assert!(status["next_auto_sync_at"].is_null(), "{status}");
    local.succeed("sync", &[]).unwrap();
    let first = support::last_sync(&local.status().unwrap()).unwrap();

    // The plan follows the mode: a week, or a day, after the last sync.
    local.succeed("auto-sync", &["weekly"]).unwrap();
    support::assert_next_run(&local, first, 7);
    local.succeed("auto-sync", &["daily"]).unwrap();
    support::assert_next_run(&local, first, 1);

    // Two days later the daily run has happened on its own, and the next one is planned.
    world.later_with_scheduler(&mut local, "2d");
    let second = support::wait_for_sync_after(&local, first);
    support::assert_next_run(&local, second, 1);

    // Weekly from there: due a week after that sync; ten days in, it has run again.
    local.succeed("auto-sync", &["weekly"]).unwrap();
    support::assert_next_run(&local, second, 7);
    world.later_with_scheduler(&mut local, "10d");
    let third = support::wait_for_sync_after(&local, second);
    support::assert_next_run(&local, third, 7);

    // Off again: nothing is planned.
    local.succeed("auto-sync", &["off"]).unwrap();
    assert!(local.status().unwrap()["next_auto_sync_at"].is_null());
}

fn diagnosis_names_id_in_use_blocked_ports_proxy_and_main_server_down(mut world: World) {
    // Id in use: another key pair holds the id.
    let (id, first) = world.local_server(5);
    first.succeed("sync", &[]).unwrap();
    let thief = world.local_server_for(id, "other");
    let (cause, text) = support::diagnose(&thief);
    assert_eq!(cause, "ID_IN_USE", "{text}");
    support::assert_mentions(&text, &["licensing@"]);

    // Both ports blocked: nothing answers on either endpoint.
    let endpoints = vec![
        format!(
            "https://127.0.0.1:{}",
            test_harness::net::closed_port().unwrap()
        ),
        format!(
            "https://127.0.0.1:{}",
            test_harness::net::closed_port().unwrap()
        ),
    ];
    let (_, walled) = world.local_server_with(5, &endpoints, &[]);
    let (cause, text) = support::diagnose(&walled);
    assert_eq!(cause, "PORTS_BLOCKED", "{text}");
    support::assert_mentions(&text, &["firewall"]);
    let output = walled.cli("sync", &[]).unwrap();
    assert_eq!(
        output.code,
        i32::from(exit::TEMPORARY),
        "a network failure is temporary: {}",
        output.text()
    );

    // A proxy asking for credentials: wrong ones are named, right ones work.
    match Tinyproxy::binary() {
        Some(binary) => {
            let proxy = Tinyproxy::start(&binary, &world.dir().join("proxy")).unwrap();
            let wrong = proxy.url(&format!("{PROXY_USER}:wrong"));
            let (_, behind) = world.local_server_with(5, &world.sync_urls(), &["--proxy", &wrong]);
            let (cause, text) = support::diagnose(&behind);
            assert_eq!(cause, "PROXY_CREDENTIALS", "{text}");
            assert!(
                !text.contains("wrong@"),
                "the proxy password is not shown: {text}"
            );
            let right = proxy.url(&format!("{PROXY_USER}:{PROXY_PASSWORD}"));
            behind.succeed("sync", &["--proxy", &right]).unwrap();
        }
        None => eprintln!("skipped the proxy part: tinyproxy is not installed"),
    }

    // Main server down: a server that reached it before is told it is down.
    let (_, local) = world.local_server(5);
    local.succeed("sync", &[]).unwrap();
    world.stop_main();
    let (cause, text) = support::diagnose(&local);
    assert_eq!(cause, "MAIN_SERVER_DOWN", "{text}");
}

fn sync_by_file_through_the_mail_gateway_replies_to_the_sender(world: World) {
    let gateway = world.gateway();
    let (id, local) = world.local_server(5);
    let message_id = support::mail_sync_data(&gateway, &local);

    let reply = wait_for_reply(&gateway.outbox(), &message_id, MAIL).unwrap();
    assert_eq!(
        reply.to,
        support::CONTACT,
        "the reply goes to the sender's address"
    );
    assert_eq!(reply.auto_submitted.as_deref(), Some("auto-replied"));
    assert!(reply.text.contains(&id.to_string()), "{}", reply.text);
    let path = support::save_license_file(&local, reply);
    local
        .succeed("import-license-file", &[&path.to_string_lossy()])
        .unwrap();
    assert!(support::synchronized(&local.status().unwrap()));

    // The same file again is older than (equal to) what is held: refused, nothing changes.
    let again = local
        .cli("import-license-file", &[&path.to_string_lossy()])
        .unwrap();
    assert_eq!(again.code, 1, "{}", again.text());
    support::assert_mentions(&again.text(), &["OLDER_LICENSE_FILE"]);
}

fn clients_keep_their_leases_and_get_new_ones_during_the_email_round_trip(world: World) {
    let gateway = world.gateway();
    let (_, local) = world.serving_local_server(5);
    local.succeed("sync", &[]).unwrap();
    let lease = local.checkout("solme-cad", "laptop-1").unwrap().unwrap();
    let lease_id = lease["lease_id"].as_str().unwrap().to_string();

    let message_id = support::mail_sync_data(&gateway, &local);
    // While the mail is on its way, clients work as usual.
    assert!(local.heartbeat(&lease_id).unwrap().is_ok());
    let second = local.checkout("solme-cad", "laptop-2").unwrap().unwrap();

    let reply = wait_for_reply(&gateway.outbox(), &message_id, MAIL).unwrap();
    support::import_reply(&local, reply);

    assert!(local.heartbeat(&lease_id).unwrap().is_ok());
    assert!(local
        .heartbeat(second["lease_id"].as_str().unwrap())
        .unwrap()
        .is_ok());
    assert!(local.checkout("solme-cad", "laptop-3").unwrap().is_ok());
    assert_eq!(support::in_use(&local, "solme-cad"), Some(3));
}

fn many_local_servers_sync_at_once_through_both_channels(world: World) {
    const SERVERS: usize = 20;
    let gateway = world.gateway();
    let locals: Vec<_> = (0..SERVERS).map(|_| world.local_server(2).1).collect();
    std::thread::scope(|scope| {
        for (n, local) in locals.iter().enumerate() {
            let gateway = &gateway;
            scope.spawn(move || {
                if n % 2 == 0 {
                    local.succeed("sync", &[]).unwrap();
                    return;
                }
                let message_id = support::mail_sync_data(gateway, local);
                let reply = wait_for_reply(&gateway.outbox(), &message_id, MAIL).unwrap();
                support::import_reply(local, reply);
            });
        }
    });
    for local in &locals {
        let status: Value = local.status().unwrap();
        assert!(support::synchronized(&status), "{status}");
    }
}
