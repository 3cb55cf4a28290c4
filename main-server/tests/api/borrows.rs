//! Borrowed seats across a reinstall, at the API: which reports the main server keeps,
//! and which license files carry them to the next key pair (README, "Borrowed seats
//! across a reinstall").

use awc::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use shared_proto::borrows::OutstandingBorrow;
use shared_proto::LicenseFile;
use uuid::Uuid;

use crate::helpers::{on_both_backends, Local, TestApp};

fn borrow(user: &str, until: DateTime<Utc>) -> OutstandingBorrow {
    OutstandingBorrow {
        lease_id: Uuid::new_v4(),
        feature: "cad".into(),
        user: user.into(),
        host: format!("{user}-laptop"),
        until,
    }
}

/// Sync data as a local server makes it, holding the file `held` and reporting
/// `borrows`, made at `created_at`.
fn sync_data(
    local: &Local,
    held: Option<i64>,
    borrows: Option<Vec<OutstandingBorrow>>,
    created_at: DateTime<Utc>,
) -> String {
    let request = shared_proto::SyncRequest {
        version: shared_proto::messages::MESSAGE_VERSION,
        server_id: local.server_id,
        request_id: Uuid::new_v4(),
        created_at,
        public_keys: local.identity.public_keys(),
        held_revision: held,
        held_sequence: held,
        software_version: "test".into(),
        usage: Vec::new(),
        usage_since: None,
        held_file_sha256: None,
        request_counter: None,
        borrows,
        standby_keys: None,
    };
    shared_proto::sync_data::seal(&local.identity, &request).expect("seal")
}

async fn synced(app: &TestApp, local: &Local, text: &str) -> LicenseFile {
    let answer = app.post_sync(text).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    local.open(app, &answer.body)
}

async fn reports_reach_the_next_key_pair_until_it_holds_a_file(app: &TestApp) {
    let now = Utc::now();
    let (server_id, a) = app.register_local().await;
    let alice = borrow("alice", now + Duration::days(2));
    let ended = borrow("bob", now - Duration::hours(1));

    // A new installation reports nothing worth keeping; then A reports two seats, the
    // second already ended; a report made earlier (arriving late) replaces nothing.
    let first = synced(app, &a, &sync_data(&a, None, Some(vec![]), now)).await;
    assert_eq!(first.inherited_borrows, None, "nothing before");
    let reported = vec![alice.clone(), ended.clone()];
    let held = Some(first.sequence);
    synced(app, &a, &sync_data(&a, held, Some(reported), now)).await;
    let earlier = now - Duration::minutes(5);
    synced(app, &a, &sync_data(&a, held, Some(vec![]), earlier)).await;
    // An older local server reports nothing: the set stays.
    synced(app, &a, &a.sync_data()).await;

    // The reinstall and the key clearing.
    let (status, cleared) = app
        .post(
            &format!("/admin/v1/servers/{server_id}/key-clear"),
            json!({"reason": "reinstalled"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    let b = Local::new(server_id);
    let to_b = synced(app, &b, &sync_data(&b, None, Some(vec![]), now)).await;
    let inherited = to_b
        .inherited_borrows
        .expect("the first file carries A's seats");
    assert_eq!(inherited.from_key, a.identity.fingerprint());
    assert_eq!(
        inherited.borrows,
        vec![alice.clone()],
        "the ended one left out"
    );

    // Its reply lost, B asks again holding no file: carried again. Once B holds a file
    // it reports the seats itself, and nothing is carried any more.
    let again = synced(app, &b, &sync_data(&b, None, Some(vec![]), now)).await;
    assert_eq!(
        again.inherited_borrows.map(|i| i.borrows),
        Some(vec![alice.clone()])
    );
    let held = Some(again.sequence);
    let later = synced(
        app,
        &b,
        &sync_data(&b, held, Some(vec![alice.clone()]), now),
    )
    .await;
    assert_eq!(later.inherited_borrows, None);

    // A second reinstall carries B's report on (B reported the seat itself).
    let (status, _) = app
        .post(
            &format!("/admin/v1/servers/{server_id}/key-clear"),
            json!({"reason": "reinstalled again"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let c = Local::new(server_id);
    let to_c = synced(app, &c, &sync_data(&c, None, None, now)).await;
    let inherited = to_c
        .inherited_borrows
        .expect("C's first file carries B's seats");
    assert_eq!(inherited.from_key, b.identity.fingerprint());
    assert_eq!(inherited.borrows, vec![alice]);
}

on_both_backends!(
    reports_reach_the_next_key_pair_until_it_holds_a_file,
    reports_reach_the_next_key_pair_until_it_holds_a_file_on_sqlite,
    reports_reach_the_next_key_pair_until_it_holds_a_file_on_postgres
);

/// A report beyond the bounds is refused as malformed, nothing stored.
async fn an_oversized_report_is_refused(app: &TestApp) {
    let (_, a) = app.register_local().await;
    let until = Utc::now() + Duration::days(1);
    let many = vec![borrow("alice", until); shared_proto::borrows::MAX_REPORTED_BORROWS + 1];
    let answer = app
        .post_sync(&sync_data(&a, Some(1), Some(many), Utc::now()))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.code(), "MALFORMED");
}

on_both_backends!(
    an_oversized_report_is_refused,
    an_oversized_report_is_refused_on_sqlite,
    an_oversized_report_is_refused_on_postgres
);
