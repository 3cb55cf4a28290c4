//! Reminders before day 366, across the real programs: a main server whose clock is
//! moved (`SOLME_CLOCK_OFFSET`), the mail gateway polling it every second, local
//! servers synchronizing. Each journey runs on SQLite and, with
//! `SOLME_TEST_DATABASE_URL` set, on two `main-server` processes on one PostgreSQL
//! database (the `postgres::` tests skip with a notice otherwise).
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The journeys' world; not every helper of it is used here.
#[allow(dead_code)]
#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use support::World;
use test_harness::mail::{read_outbox, Reply};
use test_harness::{wait_until, MailGateway};
use uuid::Uuid;

journeys!(
    a_server_near_day_366_gets_one_reminder_per_threshold_and_a_sync_stops_the_old_ones,
    a_gateway_killed_between_claim_and_send_still_mails_each_reminder_once,
    switched_off_reminders_send_nothing,
);

const MAIL: Duration = Duration::from_secs(60);
const SECOND_CONTACT: &str = "it@acme.example";
/// Polls the gateway makes every second in these tests.
const POLL_EVERY: [&str; 2] = ["--reminder-interval-seconds", "1"];

fn reminders_in(gateway: &MailGateway) -> Vec<Reply> {
    let mut mails = read_outbox(&gateway.outbox()).unwrap();
    mails.retain(|mail| mail.file.starts_with("reminder-"));
    mails
}

fn wait_for_reminders(gateway: &MailGateway, n: usize) -> Vec<Reply> {
    wait_until(&format!("{n} reminder mails"), MAIL, || {
        let mails = reminders_in(gateway);
        (mails.len() >= n).then_some(mails)
    })
    .unwrap()
}

/// Waits until the gateway has completed `n` more reminder polls, so that "nothing more
/// came" is observed after polls that could have sent it.
fn wait_for_polls(gateway: &MailGateway, n: u64) {
    let polls = |g: &MailGateway| g.status().unwrap()["reminder_polls"].as_u64().unwrap();
    let start = polls(gateway);
    wait_until(&format!("{n} more reminder polls"), MAIL, || {
        (polls(gateway) >= start + n).then_some(())
    })
    .unwrap();
}

fn recorded(world: &World) -> Vec<Value> {
    let path = format!("/admin/v1/customers/{}/reminders", world.customer());
    world
        .admin()
        .get(&path)
        .unwrap()
        .unwrap()
        .as_array()
        .cloned()
        .unwrap()
}

fn add_second_contact(world: &World) {
    let path = format!("/admin/v1/customers/{}/emails", world.customer());
    world
        .admin()
        .send("POST", &path, json!({ "email": SECOND_CONTACT }))
        .unwrap()
        .unwrap();
}

/// A synchronized id, with the main server's clock then moved to 29 days before its
/// 366-day limit.
fn synced_id_near_its_limit(world: &mut World) -> (Uuid, test_harness::LocalServer) {
    let (id, local) = world.local_server(2);
    local.succeed("sync", &[]).unwrap();
    world.move_main_clock(Some("337d"));
    (id, local)
}

fn recipients(mails: &[Reply]) -> BTreeSet<String> {
    mails.iter().map(|mail| mail.to.clone()).collect()
}

fn a_server_near_day_366_gets_one_reminder_per_threshold_and_a_sync_stops_the_old_ones(
    mut world: World,
) {
    add_second_contact(&world);
    let (id, mut local) = synced_id_near_its_limit(&mut world);

    // Every process claims at once, several times (replicas, a restarted gateway): the
    // database keeps one reminder.
    std::thread::scope(|scope| {
        for main in world.mains() {
            for _ in 0..3 {
                scope.spawn(|| {
                    let due = main
                        .admin()
                        .unwrap()
                        .send("POST", "/admin/v1/reminders/claim", json!({}))
                        .unwrap()
                        .unwrap();
                    assert_eq!(due.as_array().map(Vec::len), Some(1), "{due}");
                });
            }
        }
    });
    assert_eq!(recorded(&world).len(), 1);

    let gateway = world.gateway_with(&POLL_EVERY);
    let mails = wait_for_reminders(&gateway, 2);
    assert_eq!(
        recipients(&mails),
        BTreeSet::from([support::CONTACT.to_owned(), SECOND_CONTACT.to_owned()])
    );
    let mail = &mails[0];
    assert_eq!(mail.auto_submitted.as_deref(), Some("auto-generated"));
    assert!(mail.in_reply_to.is_empty());
    assert!(mail.subject.contains(&id.to_string()), "{}", mail.subject);
    assert!(mail.subject.contains("29 days left"), "{}", mail.subject);
    support::assert_mentions(
        &mail.text,
        &[
            &id.to_string(),
            "Acme Engineering AB",
            "Days left:         29",
            "local-server sync --data-dir DIR",
            "local-server export-sync-data --data-dir DIR sync.txt",
            "mail that file to licensing@solme.example",
            "local-server import-license-file --data-dir DIR FILE",
            "ask your Solme representative to switch them off",
        ],
    );
    let expected_day = recorded(&world)[0]["valid_until"]
        .as_str()
        .unwrap()
        .get(..10)
        .unwrap()
        .to_owned();
    assert!(mail.text.contains(&expected_day), "{}", mail.text);

    wait_for_polls(&gateway, 3);
    assert_eq!(
        reminders_in(&gateway).len(),
        2,
        "the 30-day reminder went out once"
    );
    let list = recorded(&world);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["threshold"], "30d");
    assert_eq!(list[0]["state"], "handed");
    assert_eq!(list[0]["recipients"].as_array().map(Vec::len), Some(2));

    // The customer synchronizes (the local server's clock moved the same way), then
    // the old validity's 7 days are reached: no 7-day reminder for it.
    local.set_clock(Some("337d"));
    local.succeed("sync", &[]).unwrap();
    world.move_main_clock(Some("360d"));
    wait_for_polls(&gateway, 3);
    assert_eq!(
        reminders_in(&gateway).len(),
        2,
        "no 7-day reminder after the sync"
    );
    assert_eq!(recorded(&world).len(), 1);

    // The new validity's turn (7 days left of it): its most urgent reminder, once.
    world.move_main_clock(Some("696d"));
    let mails = wait_for_reminders(&gateway, 4);
    let seven: Vec<&Reply> = mails
        .iter()
        .filter(|mail| mail.subject.contains("(7 days left)"))
        .collect();
    assert_eq!(seven.len(), 2, "{mails:#?}");
    wait_for_polls(&gateway, 3);
    assert_eq!(reminders_in(&gateway).len(), 4);
    let audit = world.admin().audit().unwrap();
    let handed = audit
        .iter()
        .filter(|entry| entry["action"] == "reminder.handed")
        .count();
    assert_eq!(handed, 2, "one audit entry per reminder handed over");
}

fn a_gateway_killed_between_claim_and_send_still_mails_each_reminder_once(mut world: World) {
    add_second_contact(&world);
    let ids: Vec<Uuid> = (0..3)
        .map(|_| {
            let (id, local) = world.local_server(1);
            local.succeed("sync", &[]).unwrap();
            id
        })
        .collect();
    world.move_main_clock(Some("337d"));

    // A gateway claimed the reminders and died before writing anything.
    let due = world
        .admin()
        .send("POST", "/admin/v1/reminders/claim", json!({}))
        .unwrap()
        .unwrap();
    assert_eq!(due.as_array().map(Vec::len), Some(3));

    // The next one stages the mails and marks them handed, but its relay is away; it
    // is killed with the mails still in its outgoing spool.
    let (_held, relay) = test_harness::net::reserve_port().unwrap();
    let relay = format!("smtp://{relay}");
    let mut extra = POLL_EVERY.to_vec();
    extra.extend(["--smtp-relay", &relay, "--smtp-relay-tls", "none"]);
    let mut gateway = world.gateway_with(&extra);
    wait_until("every reminder handed over", MAIL, || {
        let list = recorded(&world);
        (list.len() == 3 && list.iter().all(|r| r["state"] == "handed")).then_some(())
    })
    .unwrap();
    wait_until("six mails waiting for the relay", MAIL, || {
        (gateway.status().ok()?["outgoing"] == 6).then_some(())
    })
    .unwrap();
    gateway.kill();

    // Started and killed again at once, a few times: wherever the kill lands (a poll,
    // a send to the outbox), nothing is sent twice.
    let dir = gateway.dir.clone();
    for _ in 0..3 {
        let mut again = MailGateway::start_with(&dir, &world.mains()[0], &POLL_EVERY).unwrap();
        again.kill();
    }
    let gateway = MailGateway::start_with(&dir, &world.mains()[0], &POLL_EVERY).unwrap();
    let mails = wait_for_reminders(&gateway, 6);
    wait_for_polls(&gateway, 3);
    gateway.status().unwrap();
    assert_eq!(reminders_in(&gateway).len(), 6, "{mails:#?}");
    for id in &ids {
        let to: Vec<String> = reminders_in(&gateway)
            .into_iter()
            .filter(|mail| mail.subject.contains(&id.to_string()))
            .map(|mail| mail.to)
            .collect();
        assert_eq!(to.len(), 2, "one mail per contact for {id}: {to:?}");
        assert_eq!(
            to.into_iter().collect::<BTreeSet<_>>(),
            BTreeSet::from([support::CONTACT.to_owned(), SECOND_CONTACT.to_owned()])
        );
    }
}

fn switched_off_reminders_send_nothing(mut world: World) {
    let off = world.mains()[0]
        .admin_cli(&["customer", "reminders", world.customer(), "off"])
        .unwrap()
        .assert_success()
        .unwrap();
    assert!(off.stdout.contains("are off"), "{}", off.stdout);
    let (id, _local) = synced_id_near_its_limit(&mut world);
    let gateway = world.gateway_with(&POLL_EVERY);
    wait_for_polls(&gateway, 3);
    assert!(reminders_in(&gateway).is_empty());
    assert!(recorded(&world).is_empty());

    // Switched on again, the reminder that is due goes out: the test can fail.
    world.mains()[0]
        .admin_cli(&["customer", "reminders", world.customer(), "on"])
        .unwrap()
        .assert_success()
        .unwrap();
    let mails = wait_for_reminders(&gateway, 1);
    assert!(mails[0].subject.contains(&id.to_string()));
    let listed = world.mains()[0]
        .admin_cli(&["reminders", "list", world.customer()])
        .unwrap()
        .assert_success()
        .unwrap();
    assert!(listed.stdout.contains(&id.to_string()), "{}", listed.stdout);
}
