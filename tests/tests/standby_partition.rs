//! A partition between a primary and its standby, across the real programs
//! (docs/standby.md, "Partitions"): the standby reaches its primary through a relay, and
//! cutting the relay cuts only the pair channel while client programs reach both
//! servers directly. A person promotes the standby anyway. Both issue until a client
//! that the promoted standby served reaches the primary with the standby's higher pair
//! epoch: the primary stops issuing at once (`fenced`) and answers that request with
//! `SERVING_ELSEWHERE`. When the channel heals, the standby hands back, the primary
//! serves again and reports the seats it granted while the standby was promoted.
//!
//! A client's epoch is untrusted: a made-up one fences a primary only until the next
//! call of its standby, which still follows, lets it issue again.
//! Runs on SQLite, and on PostgreSQL with two main-server processes when
//! `SOLME_TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[macro_use]
mod support;

use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use shared_proto::ErrorCode;
use solme_client::{Error as ClientError, Options};
use support::pair::{
    client, held_at, pair, pair_standby, pair_state, serving_primary, FEATURE, SERVE, WAIT,
};
use support::World;
use test_harness::process::wait_until;
use test_harness::LocalServer;

journeys!(
    a_client_of_the_promoted_standby_fences_the_primary_across_a_partition,
    a_made_up_epoch_fences_the_primary_only_until_its_standby_calls,
);

const SEATS: u32 = 3;
/// A client no server serves is told so within seconds.
const GIVE_UP: Duration = Duration::from_secs(3);
const MADE_UP_EPOCH: i64 = 999_999;

/// A TCP relay in front of the primary: the standby's way to it, and nobody else's.
/// Cut, it closes the connections it carries and every new one at once.
struct Relay {
    address: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (is_cut, carried) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for incoming in listener.incoming() {
                let Ok(near) = incoming else { continue };
                if is_cut.load(Ordering::SeqCst) {
                    let _ = near.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(far) = TcpStream::connect(target) else {
                    continue;
                };
                let mut list = carried.lock().unwrap();
                list.extend([near.try_clone().unwrap(), far.try_clone().unwrap()]);
                drop(list);
                pipe(near.try_clone().unwrap(), far.try_clone().unwrap());
                pipe(far, near);
            }
        });
        Self { address, cut, open }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The channel is cut: open connections close, new ones close at once.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Copies one direction of a relayed connection until either side closes it.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if std::io::Write::write_all(&mut to, &buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// A raw request of a client program: its status and JSON answer.
fn raw(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let request = ureq::request(method, url);
    let sent = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    let response = match sent {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A check-out that names `epoch` as the highest pair epoch seen.
fn check_out_with_epoch(local: &LocalServer, user: &str, epoch: Value) -> (u16, Value) {
    raw(
        "POST",
        &format!("{}/api/v1/leases", local.api_url().unwrap()),
        Some(json!({"feature": FEATURE, "client": "probe", "user": user, "pair_epoch": epoch})),
    )
}

fn code_of(answer: &Value) -> String {
    answer["code"].as_str().unwrap_or_default().to_string()
}

fn a_client_of_the_promoted_standby_fences_the_primary_across_a_partition(world: World) {
    let primary = serving_primary(&world, SEATS);
    let primary_url = primary.api_url().unwrap();
    let relay = Relay::start(
        primary_url
            .trim_start_matches("http://")
            .parse()
            .expect("the primary's address"),
    );
    let mut standby = pair_standby(&world, &primary, &relay.url());
    let standby_url = standby.api_url().unwrap();
    let (_, first_epoch) = pair(&primary);

    // The channel is cut; both keep running. A person promotes the standby anyway,
    // once the primary has been silent long enough for it.
    relay.cut();
    let promoted = wait_until("the promotion", WAIT, || {
        let out = standby
            .cli("promote", &["--reason", "the primary seems down"])
            .unwrap();
        (out.code == 0).then_some(out.stdout)
    })
    .unwrap();
    support::assert_mentions(&promoted, &["issues seats now"]);
    let (state, promoted_epoch) = pair(&standby);
    assert_eq!(state, "promoted");
    assert!(
        promoted_epoch > first_epoch,
        "{promoted_epoch} {first_epoch}"
    );
    assert_eq!(pair_state(&primary), "serving");

    // Both issue now: Bob gets a seat at the primary, which has not heard.
    let bob = client(&[&primary_url, &standby_url], "bob", GIVE_UP);
    let bob_seat = bob.checkout(FEATURE, Options::default()).unwrap();
    assert!(held_at(&bob_seat, &primary_url), "{:?}", bob_seat.info());
    assert_eq!(bob_seat.info().grant.pair_epoch, Some(first_epoch));
    bob_seat.release().unwrap();

    // Alice's client tries the standby first: it is served there and learns the
    // standby's epoch.
    let alice = client(&[&standby_url, &primary_url], "alice", GIVE_UP);
    let alice_seat = alice.checkout(FEATURE, Options::default()).unwrap();
    assert!(
        held_at(&alice_seat, &standby_url),
        "{:?}",
        alice_seat.info()
    );
    assert_eq!(alice_seat.info().grant.pair_epoch, Some(promoted_epoch));
    alice_seat.release().unwrap();

    // The standby's machine goes away; Alice's next check-out crosses to the primary
    // with the standby's epoch. The primary stops issuing before it answers her.
    let standby_address = standby_url.trim_start_matches("http://").to_owned();
    standby.stop().unwrap();
    let crossed = alice.checkout(FEATURE, Options::default());
    match crossed {
        Err(err @ ClientError::Unreachable { .. }) => {
            support::assert_mentions(&err.to_string(), &["standby server was promoted"]);
        }
        other => panic!("the fenced primary served Alice: {other:?}"),
    }
    let (state, fenced_epoch) = pair(&primary);
    assert_eq!(state, "fenced");
    assert_eq!(fenced_epoch, promoted_epoch);
    let status = primary.status().unwrap();
    assert_eq!(status["pair"]["state"], "fenced", "{status}");
    support::assert_mentions(
        &status["pair"]["overlap"].to_string(),
        &["a client program came from the promoted standby"],
    );
    // Nobody else is served there either.
    assert_eq!(
        support::refused_checkout(&primary, FEATURE, "carol"),
        ErrorCode::ServingElsewhere
    );

    // The standby comes back and the channel heals: it hands back, the primary serves
    // again and reports the seat it granted while the standby was promoted.
    standby.serve_at(&standby_address, &SERVE).unwrap();
    relay.heal();
    wait_until("the hand-back", WAIT, || {
        (pair_state(&primary) == "serving" && pair_state(&standby) == "following").then_some(())
    })
    .unwrap();
    let (_, handed_back_epoch) = pair(&primary);
    assert!(handed_back_epoch > promoted_epoch);
    let status = primary.status().unwrap();
    support::assert_mentions(
        &status["pair"]["overlap"].to_string(),
        &["both servers issued seats", "granted 1"],
    );
    let alice_again = alice.checkout(FEATURE, Options::default()).unwrap();
    assert!(
        held_at(&alice_again, &primary_url),
        "{:?}",
        alice_again.info()
    );
    assert_eq!(alice_again.info().grant.pair_epoch, Some(handed_back_epoch));
    alice_again.release().unwrap();
}

fn a_made_up_epoch_fences_the_primary_only_until_its_standby_calls(world: World) {
    let primary = serving_primary(&world, SEATS);
    let primary_url = primary.api_url().unwrap();
    let mut standby = pair_standby(&world, &primary, &primary_url);
    let standby_address = standby
        .api_url()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    wait_until("the primary serving", WAIT, || {
        (pair_state(&primary) == "serving").then_some(())
    })
    .unwrap();
    let (_, epoch) = pair(&primary);

    // A grant of a paired server names its epoch; epochs out of bounds are refused
    // and fence nothing; a lower or equal one changes nothing.
    let (status, grant) = check_out_with_epoch(&primary, "alice", json!(epoch));
    assert_eq!(status, 201, "{grant}");
    assert_eq!(grant["pair_epoch"], json!(epoch));
    let lease = grant["lease_id"].as_str().unwrap().to_owned();
    for bad in [json!(-1), json!(i64::MAX), json!("7")] {
        let (status, answer) = check_out_with_epoch(&primary, "mallory", bad);
        assert_eq!(status, 400, "{answer}");
        assert_eq!(code_of(&answer), "MALFORMED", "{answer}");
    }
    let heartbeat = format!("{primary_url}/api/v1/leases/{lease}/heartbeat");
    let (status, answer) = raw("POST", &format!("{heartbeat}?pair_epoch=seven"), None);
    assert_eq!(code_of(&answer), "MALFORMED", "{status} {answer}");
    let (status, answer) = raw("POST", &format!("{heartbeat}?pair_epoch={epoch}"), None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(pair_state(&primary), "serving");

    // With the standby stopped, a made-up epoch fences the primary and stays.
    standby.stop().unwrap();
    let (status, answer) = check_out_with_epoch(&primary, "mallory", json!(MADE_UP_EPOCH));
    assert_eq!(code_of(&answer), "SERVING_ELSEWHERE", "{status} {answer}");
    assert_eq!(pair(&primary), ("fenced".to_owned(), MADE_UP_EPOCH));
    assert_eq!(
        support::refused_checkout(&primary, FEATURE, "bob"),
        ErrorCode::ServingElsewhere
    );

    // The standby's next call shows it following: the primary issues again, and the
    // standby takes the higher epoch.
    standby.serve_at(&standby_address, &SERVE).unwrap();
    wait_until("the primary serving again", WAIT, || {
        (pair_state(&primary) == "serving").then_some(())
    })
    .unwrap();
    wait_until("the standby's epoch", WAIT, || {
        (pair(&standby).1 == MADE_UP_EPOCH).then_some(())
    })
    .unwrap();
    assert_eq!(pair_state(&standby), "following");
    let bob = client(&[&primary_url], "bob", GIVE_UP);
    let seat = bob.checkout(FEATURE, Options::default()).unwrap();
    assert_eq!(seat.info().grant.pair_epoch, Some(MADE_UP_EPOCH));
    seat.release().unwrap();

    // While the standby follows and calls, a made-up epoch on a heartbeat fences the
    // primary only until the standby's next call.
    let (status, grant) = check_out_with_epoch(&primary, "dave", json!(MADE_UP_EPOCH));
    assert_eq!(status, 201, "{grant}");
    let lease = grant["lease_id"].as_str().unwrap();
    let (status, answer) = raw(
        "POST",
        &format!(
            "{primary_url}/api/v1/leases/{lease}/heartbeat?pair_epoch={}",
            MADE_UP_EPOCH + 1
        ),
        None,
    );
    assert_eq!(code_of(&answer), "SERVING_ELSEWHERE", "{status} {answer}");
    let carol = client(&[&primary_url], "carol", GIVE_UP);
    let seat = wait_until("the primary serving after the standby's call", WAIT, || {
        carol.checkout(FEATURE, Options::default()).ok()
    })
    .unwrap();
    assert!(held_at(&seat, &primary_url));
    assert_eq!(seat.info().grant.pair_epoch, Some(MADE_UP_EPOCH + 1));
    seat.release().unwrap();
}
