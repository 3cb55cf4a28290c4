//! Borrowed seats survive a reinstall, across the real programs: a seat borrowed from
//! installation A is reported with A's next sync; A is reinstalled as B (a new key
//! pair), Solme clears the key pair, and B's first license file carries A's borrow
//! (naming A's key pair). B counts the seat as taken: with every seat taken it refuses
//! others, it accepts the return of A's token (by the lease id the token names), and the
//! seat is then free. A token's signature is A's: it verifies with A's key, not B's.
//! Runs on SQLite, and on PostgreSQL with two main-server processes when
//! `SOLME_TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[macro_use]
mod support;

use serde_json::{json, Value};
use shared_proto::{BorrowToken, ErrorCode};
use support::World;
use test_harness::LocalServer;

journeys!(a_seat_borrowed_before_a_reinstall_stays_taken_until_its_token_is_returned);

const FEATURE: &str = "solme-cad";

/// A client program borrows a seat for `hours`: the grant, with its token.
fn borrow(local: &LocalServer, user: &str, hours: u32) -> Value {
    let url = format!("{}/api/v1/leases", local.api_url().unwrap());
    let response = ureq::post(&url)
        .send_json(json!({
            "feature": FEATURE,
            "client": "cad-suite",
            "user": user,
            "host": format!("{user}-laptop"),
            "borrow_hours": hours,
        }))
        .unwrap();
    assert_eq!(response.status(), 201);
    response.into_json().unwrap()
}

/// The raw Ed25519 key that verifies the installation's borrow tokens (its identity in
/// the data directory, the key `GET /api/v1/public-key` hands out).
fn token_key(local: &LocalServer) -> [u8; 32] {
    shared_proto::ServerIdentity::load(&local.dir)
        .unwrap()
        .public_keys()
        .signing
}

/// Seats of the feature in use, as client programs see them.
fn in_use(local: &LocalServer) -> u64 {
    support::in_use(local, FEATURE).unwrap()
}

fn a_seat_borrowed_before_a_reinstall_stays_taken_until_its_token_is_returned(world: World) {
    let admin = world.admin();
    let id = admin.server(world.customer()).unwrap();
    admin
        .send(
            "POST",
            &format!("/admin/v1/servers/{id}/licenses"),
            json!({"feature": FEATURE, "seats": 2, "max_borrow_hours": 72}),
        )
        .unwrap()
        .unwrap();
    let mut a = LocalServer::init_with(
        &world.dir().join("installation-a"),
        id,
        &world.mains()[0],
        &world.sync_urls(),
        &[],
    )
    .unwrap();
    a.serve().unwrap();
    a.succeed("sync", &[]).unwrap();

    // Alice takes a seat home; A reports it with its next sync.
    let grant = borrow(&a, "alice", 48);
    let lease_id = grant["lease_id"].as_str().unwrap().to_owned();
    let token = grant["borrow_token"].as_str().unwrap().to_owned();
    let key_a = token_key(&a);
    a.succeed("sync", &[]).unwrap();
    let fingerprint_a = admin.show(id).unwrap()["bound_fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    a.stop().unwrap();

    // The reinstall: a new installation with a new key pair, refused until Solme
    // clears the old one.
    let mut b = world.local_server_for(id, "installation-b");
    b.serve().unwrap();
    let refused = b.cli("sync", &[]).unwrap();
    assert_eq!(refused.code, 1, "{}", refused.text());
    support::assert_mentions(&refused.text(), &["ID_IN_USE"]);
    admin.clear_key(id, "reinstalled on new hardware").unwrap();
    let synced = b.succeed("sync", &[]).unwrap();
    support::assert_mentions(
        &synced.stdout,
        &[
            "previous installation",
            "1 seat, counted as in use until returned or ended",
        ],
    );

    // B counts Alice's seat as taken, and names where it came from.
    assert_eq!(in_use(&b), 1, "{}", b.features().unwrap());
    let leases = b.succeed("leases", &["--json"]).unwrap().stdout;
    let leases: Value = serde_json::from_str(&leases).unwrap();
    let text = leases.to_string();
    assert!(text.contains(&lease_id), "{text}");
    assert!(
        text.contains(&format!(
            "borrowed from the previous installation (key {}",
            &fingerprint_a[..16]
        )),
        "{text}"
    );
    // Alice's token is signed by A's key, which B no longer has.
    assert!(BorrowToken::verify(&token, &key_a).is_ok());
    assert!(BorrowToken::verify(&token, &token_key(&b)).is_err());

    // One seat left: Bob gets it, Carol is refused.
    let bob = b.checkout(FEATURE, "bob-cad").unwrap().unwrap();
    assert_eq!(in_use(&b), 2);
    assert_eq!(
        support::refused_checkout(&b, FEATURE, "carol-cad"),
        ErrorCode::NoSeats
    );

    // Alice returns her seat to B: accepted, and the seat is free for Carol.
    b.checkin(&lease_id).unwrap().unwrap();
    assert_eq!(in_use(&b), 1);
    b.checkout(FEATURE, "carol-cad").unwrap().unwrap();
    assert_eq!(in_use(&b), 2);

    // A later license file (B now holds one) does not bring the returned seat back.
    b.checkin(bob["lease_id"].as_str().unwrap())
        .unwrap()
        .unwrap();
    b.succeed("sync", &[]).unwrap();
    assert_eq!(
        in_use(&b),
        1,
        "only Carol's seat: {}",
        b.features().unwrap()
    );
    // And B's restart does not either.
    b.stop().unwrap();
    b.serve().unwrap();
    assert_eq!(in_use(&b), 1, "after a restart: {}", b.features().unwrap());
}
