//! Reminders before day 366, across the real programs: the main server, the mail
//! gateway polling it every second, local servers synchronizing. Each journey runs on
//! SQLite and, with `SOLME_TEST_DATABASE_URL` set, on two `main-server` processes on
//! one PostgreSQL database (the `postgres::` tests skip with a notice otherwise).
//!
//! Two journeys run a simulation of their own (`solme-sim`) and move its one clock
//! through the control API while everything runs. The gateway killed between claim and
//! send keeps the harness's world: it needs a gateway whose mail relay is away, so that
//! the staged mails wait in its spool when it is killed; the simulation's gateway
//! writes its mail to an outbox and has no relay to lose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The journeys' world; not every helper of it is used here.
#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use support::World;
use test_harness::mail::{read_outbox, Reply};
use test_harness::{wait_until, Admin, MailGateway};
use tests::sim::scenario::driver::{RunningSim, SimOptions};
use uuid::Uuid;

/// `sqlite::NAME` and `postgres::NAME` for each journey: those in `sim` take a
/// [`Start`], those in `world` the harness's [`World`].
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
        a_server_near_day_366_gets_one_reminder_per_threshold_and_a_sync_stops_the_old_ones,
        switched_off_reminders_send_nothing,
    ],
    world: [a_gateway_killed_between_claim_and_send_still_mails_each_reminder_once],
);

const L1: &str = "local-server-1";

/// Which database the journey's simulation runs on.
#[derive(Clone, Copy)]
enum Start {
    Sqlite,
    /// A fresh database, two main-server replicas.
    Postgres,
}

impl Start {
    /// A simulation with one local server, not synchronized.
    fn sim(self) -> RunningSim {
        let options = SimOptions::new(env!("CARGO_BIN_EXE_solme-sim"), 1);
        let options = match self {
            Self::Sqlite => options,
            Self::Postgres => options.on_postgres().unwrap().expect("a database URL"),
        };
        RunningSim::start(&options).unwrap()
    }
}

/// The simulation's customer (the one it registers).
fn customer_of(sim: &RunningSim) -> String {
    sim.ok("GET", "/v1/world", None).unwrap()["customers"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every main-server replica's admin API.
fn admins_of(sim: &RunningSim) -> Vec<Admin> {
    let replicas = sim.ok("GET", "/v1/world", None).unwrap()["replicas"].clone();
    replicas
        .as_array()
        .unwrap()
        .iter()
        .map(|name| {
            let program = sim.program(name.as_str().unwrap()).unwrap();
            let dir = std::path::PathBuf::from(program["data_dir"].as_str().unwrap());
            let token = std::fs::read_to_string(dir.join("admin-token")).unwrap();
            Admin::new(
                program["addresses"]["admin"].as_str().unwrap(),
                token.trim(),
                &dir.join("ca.pem"),
            )
            .unwrap()
        })
        .collect()
}

/// The simulation's gateway: its outbox and its status page.
struct SimGateway {
    outbox: std::path::PathBuf,
    status: String,
}

impl SimGateway {
    fn of(sim: &RunningSim) -> Self {
        let http = sim.program("mail-gateway").unwrap()["addresses"]["http"]
            .as_str()
            .unwrap()
            .to_string();
        Self {
            outbox: sim.outbox().unwrap(),
            status: format!("{http}/status"),
        }
    }

    fn reminders(&self) -> Vec<Reply> {
        let mut mails = read_outbox(&self.outbox).unwrap();
        mails.retain(|mail| mail.file.starts_with("reminder-"));
        mails
    }

    fn wait_for_reminders(&self, n: usize) -> Vec<Reply> {
        wait_until(&format!("{n} reminder mails"), MAIL, || {
            let mails = self.reminders();
            (mails.len() >= n).then_some(mails)
        })
        .unwrap()
    }

    /// Waits until the gateway has completed `n` more reminder polls.
    fn wait_for_polls(&self, n: u64) {
        let polls = || -> Option<u64> {
            let status: Value = ureq::get(&self.status).call().ok()?.into_json().ok()?;
            status["reminder_polls"].as_u64()
        };
        let start = wait_until("the gateway's status", MAIL, polls).unwrap();
        wait_until(&format!("{n} more reminder polls"), MAIL, || {
            (polls()? >= start + n).then_some(())
        })
        .unwrap();
    }
}

fn recorded_for(admin: &Admin, customer: &str) -> Vec<Value> {
    let path = format!("/admin/v1/customers/{customer}/reminders");
    admin
        .get(&path)
        .unwrap()
        .unwrap()
        .as_array()
        .cloned()
        .unwrap()
}

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

fn recipients(mails: &[Reply]) -> BTreeSet<String> {
    mails.iter().map(|mail| mail.to.clone()).collect()
}

fn a_server_near_day_366_gets_one_reminder_per_threshold_and_a_sync_stops_the_old_ones(
    start: Start,
) {
    let sim = start.sim();
    let customer = customer_of(&sim);
    let admin = sim.admin().unwrap();
    admin
        .send(
            "POST",
            &format!("/admin/v1/customers/{customer}/emails"),
            json!({ "email": SECOND_CONTACT }),
        )
        .unwrap()
        .unwrap();
    let id = sim.local_status(L1).unwrap()["server_id"]
        .as_str()
        .unwrap()
        .to_string();
    sim.succeed(L1, &["sync"]).unwrap();
    // The gateway held (SIGSTOP), so that the claims below are the first; then 29 days
    // before the 366-day limit, for every program at once.
    sim.fault(json!({"fault": "stop", "program": "mail-gateway", "on": true}))
        .unwrap();
    sim.advance("337d").unwrap();

    // Every process claims at once, several times (replicas, a restarted gateway): the
    // database keeps one reminder.
    let admins = admins_of(&sim);
    std::thread::scope(|scope| {
        for admin in &admins {
            for _ in 0..3 {
                scope.spawn(|| {
                    let due = admin
                        .send("POST", "/admin/v1/reminders/claim", json!({}))
                        .unwrap()
                        .unwrap();
                    assert_eq!(due.as_array().map(Vec::len), Some(1), "{due}");
                });
            }
        }
    });
    assert_eq!(recorded_for(&admin, &customer).len(), 1);

    sim.fault(json!({"fault": "stop", "program": "mail-gateway", "on": false}))
        .unwrap();
    let gateway = SimGateway::of(&sim);
    let mails = gateway.wait_for_reminders(2);
    assert_eq!(
        recipients(&mails),
        BTreeSet::from([support::CONTACT.to_owned(), SECOND_CONTACT.to_owned()])
    );
    let mail = &mails[0];
    assert_eq!(mail.auto_submitted.as_deref(), Some("auto-generated"));
    assert!(mail.in_reply_to.is_empty());
    assert!(mail.subject.contains(&id), "{}", mail.subject);
    assert!(mail.subject.contains("29 days left"), "{}", mail.subject);
    support::assert_mentions(
        &mail.text,
        &[
            &id,
            "Acme Engineering AB",
            "Days left:         29",
            "local-server sync --data-dir DIR",
            "local-server export-sync-data --data-dir DIR sync.txt",
            "mail that file to licensing@solme.example",
            "local-server import-license-file --data-dir DIR FILE",
            "ask your Solme representative to switch them off",
        ],
    );
    let expected_day = recorded_for(&admin, &customer)[0]["valid_until"]
        .as_str()
        .unwrap()
        .get(..10)
        .unwrap()
        .to_owned();
    assert!(mail.text.contains(&expected_day), "{}", mail.text);

    gateway.wait_for_polls(3);
    assert_eq!(
        gateway.reminders().len(),
        2,
        "the 30-day reminder went out once"
    );
    let list = recorded_for(&admin, &customer);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["threshold"], "30d");
    assert_eq!(list[0]["state"], "handed");
    assert_eq!(list[0]["recipients"].as_array().map(Vec::len), Some(2));

    // The customer synchronizes (on the same clock), then the old validity's 7 days
    // are reached: no 7-day reminder for it.
    sim.succeed(L1, &["sync"]).unwrap();
    sim.advance("23d").unwrap();
    gateway.wait_for_polls(3);
    assert_eq!(
        gateway.reminders().len(),
        2,
        "no 7-day reminder after the sync"
    );
    assert_eq!(recorded_for(&admin, &customer).len(), 1);

    // The new validity's turn (7 days left of it, day 696): its most urgent reminder,
    // once.
    sim.advance("336d").unwrap();
    let mails = gateway.wait_for_reminders(4);
    let seven: Vec<&Reply> = mails
        .iter()
        .filter(|mail| mail.subject.contains("(7 days left)"))
        .collect();
    assert_eq!(seven.len(), 2, "{mails:#?}");
    gateway.wait_for_polls(3);
    assert_eq!(gateway.reminders().len(), 4);
    let audit = admin.audit().unwrap();
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

fn switched_off_reminders_send_nothing(start: Start) {
    let sim = start.sim();
    let customer = customer_of(&sim);
    let admin = sim.admin().unwrap();
    let off = sim
        .succeed(
            "main-server",
            &["admin", "customer", "reminders", &customer, "off"],
        )
        .unwrap();
    assert!(off.stdout.contains("are off"), "{}", off.stdout);
    let id = sim.local_status(L1).unwrap()["server_id"]
        .as_str()
        .unwrap()
        .to_string();
    sim.succeed(L1, &["sync"]).unwrap();
    sim.advance("337d").unwrap();
    let gateway = SimGateway::of(&sim);
    gateway.wait_for_polls(3);
    assert!(gateway.reminders().is_empty());
    assert!(recorded_for(&admin, &customer).is_empty());

    // Switched on again, the reminder that is due goes out: the test can fail.
    sim.succeed(
        "main-server",
        &["admin", "customer", "reminders", &customer, "on"],
    )
    .unwrap();
    let mails = gateway.wait_for_reminders(1);
    assert!(mails[0].subject.contains(&id));
    let listed = sim
        .succeed("main-server", &["admin", "reminders", "list", &customer])
        .unwrap();
    assert!(listed.stdout.contains(&id), "{}", listed.stdout);
}
