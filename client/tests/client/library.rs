//! The library: check-out, queue, borrow, heartbeats, return, failover, restarts.

use std::time::Duration;

use solme_client::{Error, ErrorCode, LeaseState, Options};

use crate::helpers::*;

#[test]
fn a_dropped_lease_returns_its_seat_at_once() {
    let server = Server::serving(vec![license("cad", 2)], &[]);
    let client = blocking(vec![server.url()], "alice");
    let lease = client.checkout("cad", Options::default()).unwrap();
    assert_eq!(server.in_use("cad"), 1);
    assert_eq!(lease.info().grant.user, "alice");
    assert!(lease.borrow_token().is_none());
    drop(lease);
    // The blocking drop waits for the server's answer: no wait needed here.
    assert_eq!(server.in_use("cad"), 0);

    let lease = client.checkout("cad", Options::default()).unwrap();
    lease.release().unwrap();
    assert_eq!(server.in_use("cad"), 0);
}

#[test]
fn a_refusal_is_its_code_and_message() {
    let server = Server::serving(vec![license("cad", 1)], &[]);
    let client = blocking(vec![server.url()], "alice");
    let _held = client.checkout("cad", Options::default()).unwrap();
    let err = client.checkout("cad", Options::default()).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NoSeats), "{err}");
    let err = client.checkout("cam", Options::default()).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::FeatureUnknown), "{err}");
    assert!(err.to_string().contains("FEATURE_UNKNOWN"), "{err}");
}

#[test]
fn a_client_waits_in_the_queue_until_a_seat_comes_back() {
    let server = Server::serving(vec![license("cad", 1)], &[]);
    let first = blocking(vec![server.url()], "alice");
    let held = first.checkout("cad", Options::default()).unwrap();
    let url = server.url();
    let waiter = std::thread::spawn(move || {
        let client = blocking(vec![url], "bob");
        let options = Options {
            wait: Some(Duration::from_secs(30)),
            borrow_hours: None,
        };
        client.checkout("cad", options).map(|lease| lease.keep())
    });
    wait_until("bob to wait in the queue", DEADLINE, || {
        (server.count("cad", "queued") == 1).then_some(())
    })
    .unwrap();
    drop(held);
    let info = waiter.join().unwrap().unwrap();
    assert_eq!(info.grant.user, "bob");
    assert_eq!(info.grant.queue_position, Some(1));
    assert!(info.grant.waited_ms.is_some());
    assert_eq!(server.in_use("cad"), 1);
}

#[test]
fn a_borrowed_seat_has_a_token_that_verifies_offline_and_stays_out_when_dropped() {
    let server = Server::serving(vec![borrowable("cad", 2, 48)], &[]);
    let client = blocking(vec![server.url()], "alice");
    let options = Options {
        wait: None,
        borrow_hours: Some(8),
    };
    let lease = client.checkout("cad", options).unwrap();
    assert_eq!(lease.info().grant.heartbeat_seconds, None);
    let token = lease.borrow_token().unwrap();
    let key = client.public_key().unwrap();
    let read = solme_client::verify_borrow_token(&token, &key).unwrap();
    assert_eq!(read.lease_id, lease.id());
    assert_eq!(read.until, lease.expires_at());
    assert!(read.valid_at(chrono::Utc::now()));

    // Another key, or one changed character, and the token is refused.
    let mut other = key;
    other[0] ^= 1;
    assert!(matches!(
        solme_client::verify_borrow_token(&token, &other),
        Err(Error::Token(_))
    ));
    let mut tampered: Vec<char> = token.chars().collect();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    assert!(solme_client::verify_borrow_token(&tampered, &key).is_err());

    // The point of a borrow: the seat stays out when the program lets go of it…
    let id = lease.id();
    drop(lease);
    assert_eq!(server.in_use("cad"), 1);
    // …until it is returned early.
    client.check_in(id).unwrap();
    assert_eq!(server.in_use("cad"), 0);
}

#[test]
fn heartbeats_keep_a_lease_past_its_lease_time() {
    // A 2-second lease, renewed every second.
    let server = Server::serving(vec![license("cad", 2)], &["--lease-seconds", "2"]);
    let client = blocking(vec![server.url()], "alice");
    let kept = client.checkout("cad", Options::default()).unwrap();
    assert_eq!(kept.info().grant.heartbeat_seconds, Some(1));
    // A lease left without heartbeats runs out: what the heartbeats prevent.
    let unkept = client.checkout("cad", Options::default()).unwrap().keep();
    server.wait_in_use("cad", 1);

    // Three lease times later the kept lease is still the same, held seat.
    let first_expiry = kept.expires_at();
    wait_until("six heartbeats", DEADLINE, || {
        (kept.info().heartbeats >= 6).then_some(())
    })
    .unwrap();
    let info = kept.info();
    assert_eq!(info.state, LeaseState::Held);
    assert_eq!(info.recheckouts, 0);
    assert!(info.grant.expires_at > first_expiry + chrono::Duration::seconds(4));
    assert_ne!(info.grant.lease_id, unkept.grant.lease_id);
    assert_eq!(server.in_use("cad"), 1);
}

#[test]
fn the_standby_serves_when_the_primary_is_down() {
    let standby = Server::serving(vec![license("cad", 1)], &[]);
    let client = blocking(vec![nowhere(), standby.url()], "alice");
    let lease = client.checkout("cad", Options::default()).unwrap();
    assert_eq!(lease.info().server, standby.url().as_str());
    assert_eq!(standby.in_use("cad"), 1);
    assert_eq!(client.features().unwrap()[0].in_use, 1);
    drop(lease);
    assert_eq!(standby.in_use("cad"), 0);
}

#[test]
fn no_server_answering_is_unreachable_after_the_retries() {
    let settings = settings(vec![nowhere(), nowhere()], "alice", Duration::from_secs(1));
    let client = solme_client::blocking::Client::with_settings(settings).unwrap();
    let started = std::time::Instant::now();
    let err = client.checkout("cad", Options::default()).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(err.is_temporary());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_lease_survives_a_server_restart_and_its_heartbeats_resume() {
    let mut server = Server::serving(vec![license("cad", 1)], &["--lease-seconds", "3"]);
    let client = blocking(vec![server.url()], "alice");
    let lease = client.checkout("cad", Options::default()).unwrap();
    let id = lease.id();
    wait_until("a heartbeat", DEADLINE, || {
        (lease.info().heartbeats >= 1).then_some(())
    })
    .unwrap();

    server.kill();
    server.restart(&["--lease-seconds", "3"]);
    let before = lease.info().heartbeats;
    wait_until("heartbeats after the restart", DEADLINE, || {
        (lease.info().heartbeats >= before + 2).then_some(())
    })
    .unwrap();
    let info = lease.info();
    assert_eq!(
        info.grant.lease_id, id,
        "the same lease, not a new check-out"
    );
    assert_eq!(info.recheckouts, 0);
    assert_eq!(server.in_use("cad"), 1);
    drop(lease);
    assert_eq!(server.in_use("cad"), 0);
}

/// A reconnect storm's late comers: a heartbeat whose back-off draws a wait past the
/// end of its lease still tries once before that end, and keeps its seat, instead of
/// giving up early and checking out a second seat while the server keeps the first
/// (with every seat taken, that check-out was refused and the seat lost).
#[test]
fn a_heartbeat_whose_back_off_outlasts_the_lease_tries_once_more_before_it_ends() {
    let mut server = Server::serving(vec![license("cad", 1)], &["--lease-seconds", "6"]);
    // Every retry draws from a window far longer than the lease.
    let mut settings = settings(vec![server.url()], "alice", Duration::from_secs(20));
    settings.backoff.first = Duration::from_secs(1000);
    settings.backoff.cap = Duration::from_secs(1000);
    let client = solme_client::blocking::Client::with_settings(settings).unwrap();
    let lease = client.checkout("cad", Options::default()).unwrap();
    let id = lease.id();
    assert_eq!(lease.info().grant.heartbeat_seconds, Some(2));

    // Down past the heartbeat due 2 s after the check-out, back well before the lease
    // (6 s) runs out.
    server.kill();
    let failed = lease.expires_at() - chrono::Duration::seconds(3);
    wait_until("the heartbeat's time has passed", DEADLINE, || {
        (chrono::Utc::now() > failed).then_some(())
    })
    .unwrap();
    server.restart(&["--lease-seconds", "6"]);
    wait_until(
        "the heartbeat answered by the restarted server",
        DEADLINE,
        || {
            let info = lease.info();
            (info.heartbeats >= 1 || info.state != LeaseState::Held).then_some(())
        },
    )
    .unwrap();
    let info = lease.info();
    assert_eq!(info.state, LeaseState::Held);
    assert_eq!(
        info.grant.lease_id, id,
        "the same lease, not a new check-out"
    );
    assert_eq!(info.recheckouts, 0);
    assert_eq!(server.in_use("cad"), 1);
}

#[test]
fn a_lease_the_server_forgot_is_checked_out_again_once() {
    let mut old = Server::serving(vec![license("cad", 1)], &["--lease-seconds", "3"]);
    let client = blocking(vec![old.url()], "alice");
    let lease = client.checkout("cad", Options::default()).unwrap();
    let id = lease.id();
    // A new installation takes the old one's address: it never heard of the lease
    // and answers its heartbeat LEASE_UNKNOWN.
    let addr = old.addr.unwrap().to_string();
    old.kill();
    let mut new = Server::installed(vec![license("cad", 1)]);
    new.serve(&addr, &["--lease-seconds", "3"]);
    wait_until("the new check-out", DEADLINE, || {
        (lease.info().recheckouts == 1).then_some(())
    })
    .unwrap();
    let info = lease.info();
    assert_ne!(info.grant.lease_id, id);
    assert_eq!(info.state, LeaseState::Held);
    assert_eq!(new.in_use("cad"), 1);
    // And it is kept there.
    let beats = info.heartbeats;
    wait_until("heartbeats of the new lease", DEADLINE, || {
        (lease.info().heartbeats > beats).then_some(())
    })
    .unwrap();
    drop(lease);
    assert_eq!(new.in_use("cad"), 0);
}

#[test]
fn a_held_lease_moves_to_the_standby_when_the_primary_stays_down() {
    let mut primary = Server::serving(vec![license("cad", 1)], &["--lease-seconds", "2"]);
    let standby = Server::serving(vec![license("cad", 1)], &["--lease-seconds", "2"]);
    let client = blocking(vec![primary.url(), standby.url()], "alice");
    let lease = client.checkout("cad", Options::default()).unwrap();
    assert_eq!(lease.info().server, primary.url().as_str());
    primary.kill();
    wait_until("the lease at the standby", DEADLINE, || {
        (lease.info().server == standby.url().as_str()).then_some(())
    })
    .unwrap();
    assert_eq!(lease.info().recheckouts, 1);
    assert_eq!(standby.in_use("cad"), 1);
}

#[actix_rt::test]
async fn the_async_client_checks_out_renews_and_returns() {
    let server = Server::serving(vec![license("cad", 2)], &["--lease-seconds", "2"]);
    let settings = settings(vec![server.url()], "alice", Duration::from_secs(10));
    let client = solme_client::Client::with_settings(settings);
    let mut lease = client.checkout("cad", Options::default()).await.unwrap();
    let info = lease.changed().await.unwrap();
    assert_eq!(info.heartbeats, 1);
    lease.release().await.unwrap();
    assert_eq!(server.in_use("cad"), 0);

    // Dropped, the seat goes back in the background.
    let lease = client.checkout("cad", Options::default()).await.unwrap();
    assert_eq!(server.in_use("cad"), 1);
    drop(lease);
    test_harness::wait_until_async("the seat back", DEADLINE, || async {
        (server.in_use("cad") == 0).then_some(())
    })
    .await
    .unwrap();
}
