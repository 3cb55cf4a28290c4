//! A standby license server across the real programs (docs/standby.md): a primary and a
//! standby paired with a one-time code; the primary's next sync names the standby to
//! Solme and the standby keeps a copy, issuing nothing. The primary is killed (`-9`); a
//! person promotes the standby (refused while the primary answers); client programs
//! with both servers in their list move over; a seat more than the license gives is
//! refused. The primary starts again: it waits for the standby, which stops issuing
//! and hands back its report entries, and only then does the primary issue again; the
//! clients move back. From both servers' report logs: the two never issued at the same
//! time and never more seats together than the license gives. The failover period's
//! use (a refusal only the standby saw) reaches Solme with the primary's next sync.
//! Runs on SQLite, and on PostgreSQL with two main-server processes when
//! `SOLME_TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[macro_use]
mod support;

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use serde_json::Value;
use shared_proto::ErrorCode;
use solme_client::Options;
use support::pair::{
    client, database, held_at, pair_state, pairing_code, serve_standby, serving_primary, FEATURE,
    SERVE, WAIT,
};
use support::World;
use test_harness::process::wait_until;
use test_harness::LocalServer;

journeys!(
    a_standby_promoted_while_the_primary_is_down_hands_back_without_both_issuing,
    a_standby_whose_primary_is_lost_leaves_the_pair_and_reports_its_use_as_the_new_server,
);

const SEATS: u32 = 2;
/// Long enough for a client to wait out a hand-back rather than lose its seat.
const GIVE_UP: Duration = Duration::from_secs(20);

/// One report-log entry, as the test reads it from a server's database.
#[derive(QueryableByName, Debug)]
struct Entry {
    #[diesel(sql_type = BigInt)]
    at: i64,
    #[diesel(sql_type = Text)]
    event: String,
    #[diesel(sql_type = Integer)]
    in_use: i32,
    #[diesel(sql_type = Nullable<Text>)]
    actor: Option<String>,
}

/// The server's own report-log entries of the feature (not those handed back to it).
fn own_entries(local: &LocalServer) -> Vec<Entry> {
    diesel::sql_query(
        "SELECT at, event, in_use, actor FROM report_log WHERE feature = ? ORDER BY at, id",
    )
    .bind::<Text, _>(FEATURE)
    .load::<Entry>(&mut database(local))
    .unwrap()
    .into_iter()
    .filter(|e| e.actor.as_deref() != Some("standby server"))
    .collect()
}

fn refusal(local: &LocalServer, user: &str) -> ErrorCode {
    support::refused_checkout(local, FEATURE, user)
}

fn a_standby_promoted_while_the_primary_is_down_hands_back_without_both_issuing(world: World) {
    let admin = world.admin();
    let mut primary = serving_primary(&world, SEATS);
    let id = primary.id;
    let primary_url = primary.api_url().unwrap();

    // Pairing: a one-time code shown on the primary, used once on the standby.
    let code = pairing_code(&primary);
    let standby_dir = world.dir().join("standby");
    let mut standby = LocalServer::existing(&standby_dir, id);
    let wrong = standby
        .cli(
            "init",
            &[
                "--standby-of",
                &primary_url,
                "--pairing-code",
                "AAAAA-BBBBB-CCCCC-DDDDD",
            ],
        )
        .unwrap();
    assert_ne!(wrong.code, 0, "{}", wrong.text());
    support::assert_mentions(&wrong.text(), &["pairing code is wrong"]);
    let paired = standby
        .succeed(
            "init",
            &["--standby-of", &primary_url, "--pairing-code", &code],
        )
        .unwrap();
    support::assert_mentions(&paired.stdout, &["Standby license server", "fingerprint"]);
    let again = LocalServer::existing(&world.dir().join("standby-2"), id)
        .cli(
            "init",
            &["--standby-of", &primary_url, "--pairing-code", &code],
        )
        .unwrap();
    assert_ne!(again.code, 0, "a code is used once: {}", again.text());
    // A standby does not synchronize itself; the primary's next sync names it to
    // Solme, and the standby gets the copy.
    let refused = standby.cli("sync", &[]).unwrap();
    assert_ne!(refused.code, 0, "a standby does not synchronize itself");
    serve_standby(&primary, &mut standby);
    let standby_url = standby.api_url().unwrap();
    assert!(admin.show(id).unwrap().to_string().contains("standby"));
    assert_eq!(refusal(&standby, "eve-probe"), ErrorCode::StandbyFollowing);

    // Alice works on the primary; her client lists both servers.
    let alice = client(&[&primary_url, &standby_url], "alice", GIVE_UP);
    let alice_seat = alice.checkout(FEATURE, Options::default()).unwrap();
    assert!(
        held_at(&alice_seat, &primary_url),
        "{:?}",
        alice_seat.info()
    );

    // A primary that answers is not down: no promotion.
    let early = standby.cli("promote", &["--reason", "testing"]).unwrap();
    assert_ne!(early.code, 0, "{}", early.text());
    support::assert_mentions(&early.text(), &["SERVING_ELSEWHERE"]);

    // The primary's machine dies. A person promotes the standby once the primary has
    // been silent long enough.
    primary.kill();
    let promoted = wait_until("the promotion", WAIT, || {
        let out = standby
            .cli("promote", &["--reason", "primary machine died"])
            .unwrap();
        (out.code == 0).then_some(out.stdout)
    })
    .unwrap();
    support::assert_mentions(&promoted, &["issues seats now", "failover period"]);
    assert_eq!(pair_state(&standby), "promoted");

    // Alice's client moves over; Bob gets the second seat there; Carol is refused.
    wait_until("Alice's seat at the standby", WAIT, || {
        held_at(&alice_seat, &standby_url).then_some(())
    })
    .unwrap();
    let bob = client(&[&primary_url, &standby_url], "bob", GIVE_UP);
    let bob_seat = bob.checkout(FEATURE, Options::default()).unwrap();
    assert!(held_at(&bob_seat, &standby_url));
    assert_eq!(refusal(&standby, "carol"), ErrorCode::NoSeats);
    assert_eq!(support::in_use(&standby, FEATURE), Some(2));

    // The primary comes back on its address: the standby steps down and hands back;
    // the primary issues only then, and the clients move back.
    let address = primary_url.trim_start_matches("http://").to_owned();
    primary.serve_at(&address, &SERVE).unwrap();
    wait_until("the hand-back", WAIT, || {
        (pair_state(&primary) == "serving" && pair_state(&standby) == "following").then_some(())
    })
    .unwrap();
    assert_eq!(
        refusal(&standby, "eve-probe-2"),
        ErrorCode::StandbyFollowing
    );
    for seat in [&alice_seat, &bob_seat] {
        wait_until("a seat back at the primary", WAIT, || {
            held_at(seat, &primary_url).then_some(())
        })
        .unwrap();
    }
    assert_eq!(support::in_use(&primary, FEATURE).unwrap(), 2);

    // From both report logs: never both issuing, never more than the license gives.
    let promoted_at = first_grant(&standby).expect("the standby granted seats");
    let handed_back = last_grant(&standby).unwrap();
    for entry in own_entries(&primary) {
        let grant = matches!(
            entry.event.as_str(),
            "checkout" | "borrow" | "queue_granted"
        );
        assert!(
            !(grant && entry.at >= promoted_at && entry.at <= handed_back),
            "the primary granted a seat while the standby issued: {entry:?}"
        );
    }
    assert_never_above_the_license(&own_entries(&primary), &own_entries(&standby));

    // The failover period's use reaches Solme with the primary's next sync: Carol's
    // refusal happened only at the standby.
    primary.succeed("sync", &[]).unwrap();
    let out = world.admin_cli(&["--json", "server", "usage", &id.to_string()]);
    assert_eq!(out.code, 0, "{}", out.text());
    let syncs: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let refused_at_standby: u64 = syncs
        .iter()
        .flat_map(|s| s["features"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["feature"] == FEATURE)
        .filter_map(|f| f["refusals"]["NO_SEATS"].as_u64())
        .sum();
    assert_eq!(refused_at_standby, 1, "{syncs:?}");
    alice_seat.release().unwrap();
    bob_seat.release().unwrap();
}

/// The primary is lost for good: the promoted standby leaves the pair, issues nothing
/// on the copy it dropped, is refused by Solme until the key pair is cleared, then
/// synchronizes as the id's server and reports the failover period's use.
fn a_standby_whose_primary_is_lost_leaves_the_pair_and_reports_its_use_as_the_new_server(
    world: World,
) {
    let admin = world.admin();
    let mut primary = serving_primary(&world, SEATS);
    let id = primary.id;
    let primary_url = primary.api_url().unwrap();
    let standby = support::pair::pair_standby(&world, &primary, &primary_url);
    let not_a_standby = primary.cli("standby", &["leave"]).unwrap();
    assert_ne!(not_a_standby.code, 0, "{}", not_a_standby.text());
    support::assert_mentions(&not_a_standby.text(), &["WRONG_SERVER"]);

    primary.kill();
    wait_until("the promotion", WAIT, || {
        let out = standby
            .cli("promote", &["--reason", "primary machine lost"])
            .unwrap();
        (out.code == 0).then_some(())
    })
    .unwrap();
    standby.checkout(FEATURE, "dave-cad").unwrap().unwrap();
    let left = standby.succeed("standby", &["leave"]).unwrap().stdout;
    support::assert_mentions(&left, &["no longer a standby", "clear the id's key pair"]);
    assert_eq!(refusal(&standby, "erin"), ErrorCode::NotSynchronized);
    let refused = standby.cli("sync", &[]).unwrap();
    support::assert_mentions(&refused.text(), &["ID_IN_USE"]);
    admin
        .clear_key(id, "the primary's machine is lost")
        .unwrap();
    standby.succeed("sync", &[]).unwrap();
    let out = world.admin_cli(&["--json", "server", "usage", &id.to_string()]);
    assert_eq!(out.code, 0, "{}", out.text());
    let syncs: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let peak = syncs
        .iter()
        .flat_map(|s| s["features"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["feature"] == FEATURE)
        .filter_map(|f| f["peak_in_use"].as_u64())
        .max();
    assert_eq!(
        peak,
        Some(1),
        "Dave's seat at the standby reached Solme: {syncs:?}"
    );
}

fn first_grant(local: &LocalServer) -> Option<i64> {
    own_entries(local)
        .into_iter()
        .find(|e| e.event == "checkout")
        .map(|e| e.at)
}

fn last_grant(local: &LocalServer) -> Option<i64> {
    own_entries(local)
        .into_iter()
        .rev()
        .find(|e| e.event == "checkout")
        .map(|e| e.at)
}

/// Replays both logs in time order: the seats in use at the two servers together never
/// exceed the license.
fn assert_never_above_the_license(primary: &[Entry], standby: &[Entry]) {
    let mut events: Vec<(i64, usize, i32)> = primary
        .iter()
        .map(|e| (e.at, 0, e.in_use))
        .chain(standby.iter().map(|e| (e.at, 1, e.in_use)))
        .collect();
    events.sort();
    let mut level = [0i32; 2];
    for (at, server, in_use) in events {
        level[server] = in_use;
        assert!(
            level[0] + level[1] <= i32::try_from(SEATS).unwrap(),
            "at {at} the two servers held {} and {} seats of {SEATS}",
            level[0],
            level[1]
        );
    }
}
