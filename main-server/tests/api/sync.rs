//! The sync endpoint: binding, refusals, license file content.

use awc::http::StatusCode;
use chrono::{Duration, Utc};
use serde_json::json;
use shared_proto::armor::{self, ArmorKind};
use shared_proto::{License, LicenseFile};
use test_harness::{MainOptions, MainServer};
use uuid::Uuid;

use crate::helpers::{
    hand_signed_sync_data, https_client, on_both_backends, raw_public_key, spawn_app, Local,
    TestApp,
};

/// The whole life of an id: bind, sync again, other key refused, cleared, rebound.
async fn binding_lifecycle(app: &TestApp) {
    let (server_id, first) = app.register_local().await;

    let answer = app.post_sync(&first.sync_data()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let file = first.open(app, &answer.body);
    assert_eq!(file.server_id, server_id);
    assert_eq!(file.sequence, 1);
    assert_eq!(file.recipient, first.identity.fingerprint());
    assert_eq!(file.valid_until - file.issued_at, Duration::days(366));
    assert_eq!(file.customer, "Acme");
    assert_eq!(file.licenses.len(), 1);
    assert_eq!(file.licenses[0].feature, "cad");
    assert_eq!(file.licenses[0].seats, 10);

    // Same key again, through the fallback listener: accepted, next sequence.
    let again = app.post_sync_to(&app.sync_url(1), &first.sync_data()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(first.open(app, &again.body).sequence, 2);

    // Another key pair for the same id: refused, with the remedy in the message.
    let second = Local::new(server_id);
    let refused = app.post_sync(&second.sync_data()).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.code(), "ID_IN_USE");
    assert!(
        refused.body.contains("licensing@solme.example"),
        "{}",
        refused.body
    );

    let (status, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        shown["bound_fingerprint"],
        first.identity.fingerprint().to_string()
    );
    assert_eq!(shown["last_sync_channel"], "internet");
    assert_eq!(shown["sequence"], 2);
    assert_eq!(shown["days_until_due"], 366);

    // The operator clears the key pair: the new server binds.
    let (status, cleared) = app
        .post(
            &format!("/admin/v1/servers/{server_id}/key-clear"),
            json!({"reason": "customer reinstalled"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert!(cleared["bound_fingerprint"].is_null());
    let rebound = app.post_sync(&second.sync_data()).await;
    assert_eq!(rebound.status, StatusCode::OK, "{}", rebound.body);
    assert_eq!(second.open(app, &rebound.body).sequence, 3);
    let old = app.post_sync(&first.sync_data()).await;
    assert_eq!(old.code(), "ID_IN_USE");

    let (_, audit) = app.get("/admin/v1/audit?limit=100").await;
    let entries = audit.as_array().cloned().unwrap_or_default();
    // Whether one entry records `action` with `outcome` by `actor` (each any when empty)
    // and a detail naming `part`.
    let logged = |action: &str, outcome: &str, actor: &str, part: &str| {
        entries.iter().any(|e| {
            e["action"] == action
                && (outcome.is_empty() || e["outcome"] == outcome)
                && (actor.is_empty() || e["actor"] == actor)
                && e["detail"].as_str().unwrap_or("").contains(part)
        })
    };
    assert!(logged("key.clear", "", "admin", "customer reinstalled"));
    assert!(logged("sync", "ID_IN_USE", "", ""));
    assert!(logged("sync", "OK", "", "channel internet, "));
}

// On PostgreSQL the sync transaction is another code path: the `solme_issue_syncs`
// function.
on_both_backends!(
    binding_lifecycle,
    first_sync_binds_then_other_keys_need_a_key_clear,
    binding_lifecycle_on_postgres
);
on_both_backends!(
    replayed_request,
    replayed_request_is_refused,
    replayed_request_is_refused_on_postgres
);
on_both_backends!(
    unknown_id,
    unknown_id_is_refused,
    unknown_id_is_refused_on_postgres
);
on_both_backends!(
    license_changes,
    license_changes_move_revision_and_sequence,
    license_changes_move_revision_and_sequence_on_postgres
);

async fn replayed_request(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let text = local.sync_data();
    assert_eq!(app.post_sync(&text).await.status, StatusCode::OK);
    let replay = app.post_sync(&text).await;
    assert_eq!(replay.status, StatusCode::CONFLICT);
    assert_eq!(replay.code(), "REPLAYED_REQUEST");

    // Both backends word the audit entries alike; the refusal changed nothing.
    let (_, audit) = app.get("/admin/v1/audit?limit=10").await;
    let entries = audit.as_array().cloned().unwrap_or_default();
    let outcomes: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["server_id"] == server_id.to_string() && e["action"] == "sync")
        .map(|e| {
            (
                e["outcome"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert_eq!(outcomes[0].0, "REPLAYED_REQUEST", "{outcomes:?}");
    assert_eq!(outcomes[1].0, "OK", "{outcomes:?}");
    assert!(
        outcomes[1].1.contains(", issued sequence 1 of revision ")
            && outcomes[1].1.ends_with(", key bound now"),
        "{outcomes:?}"
    );
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(shown["sequence"], 1, "{shown}");
}

async fn unknown_id(app: &TestApp) {
    let answer = app.post_sync(&Local::new(Uuid::new_v4()).sync_data()).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "UNKNOWN_SERVER_ID");
}

#[actix_rt::test]
async fn bad_signature_and_garbage_are_refused() {
    let app = spawn_app().await;
    let (server_id, local) = app.register_local().await;
    let mut armored = armor::decode(&local.sync_data(), ArmorKind::SyncData).expect("armor");
    let last = armored.body.len() - 1;
    armored.body[last] ^= 0x01;
    let headers: Vec<(&str, String)> = armored
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let tampered = armor::encode(ArmorKind::SyncData, &headers, &armored.body);
    let answer = app.post_sync(&tampered).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.code(), "BAD_SIGNATURE");

    let garbage = app.post_sync("hello").await;
    assert_eq!(garbage.code(), "MALFORMED");
    let huge = app.post_sync(&"x".repeat(100 * 1024)).await;
    assert_eq!(huge.status, StatusCode::BAD_REQUEST);
    assert_eq!(huge.code(), "MALFORMED");

    // Nothing was bound by the refused attempts.
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert!(shown["bound_fingerprint"].is_null());
}

/// Sync data correctly signed but presenting an all-zero (low-order) X25519 key: built
/// by hand, since `sync_data::seal` only signs with a whole identity.
fn sync_data_with_zero_encryption_key(server_id: Uuid) -> String {
    let signing = openssl::pkey::PKey::generate_ed25519().expect("key");
    let request = shared_proto::SyncRequest {
        version: shared_proto::messages::MESSAGE_VERSION,
        server_id,
        request_id: Uuid::new_v4(),
        created_at: Utc::now(),
        public_keys: shared_proto::keys::ServerPublicKeys {
            signing: raw_public_key(&signing),
            encryption: [0; 32],
        },
        held_revision: None,
        held_sequence: None,
        software_version: "test-1.0".into(),
        usage: Vec::new(),
        usage_since: None,
        held_file_sha256: None,
        request_counter: None,
        borrows: None,
        standby_keys: None,
    };
    hand_signed_sync_data(&request, &signing)
}

#[actix_rt::test]
async fn a_low_order_encryption_key_is_refused_before_anything_is_recorded() {
    let app = spawn_app().await;
    let (_, server_id) = app.register().await;
    let answer = app
        .post_sync(&sync_data_with_zero_encryption_key(server_id))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.code(), "MALFORMED");

    // Nothing bound, no sequence used: a real key binds afterwards with sequence 1.
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert!(shown["bound_fingerprint"].is_null(), "{shown}");
    let local = Local::new(server_id);
    let answer = app.post_sync(&local.sync_data()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(local.open(&app, &answer.body).sequence, 1);
}

#[actix_rt::test]
async fn stale_requests_are_refused_per_channel() {
    let app = spawn_app().await;
    let (_, local) = app.register_local().await;
    let old = local.sync_data_at(Utc::now() - Duration::minutes(20));
    let answer = app.post_sync(&old).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "STALE_REQUEST");
    let future = local.sync_data_at(Utc::now() + Duration::minutes(20));
    assert_eq!(app.post_sync(&future).await.code(), "STALE_REQUEST");

    // By email, 20 minutes (or 29 days) is fine; 31 days is not.
    let (status, body) = app.mail_sync("OPS@acme.example", &old).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let week_old = local.sync_data_at(Utc::now() - Duration::days(29));
    let (status, _) = app.mail_sync("ops@acme.example", &week_old).await;
    assert_eq!(status, StatusCode::OK);
    let month_old = local.sync_data_at(Utc::now() - Duration::days(31));
    let (status, body) = app.mail_sync("ops@acme.example", &month_old).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "STALE_REQUEST");
}

/// The license for `feature` in `file`; fails the test when there is none.
fn license_for<'a>(file: &'a LicenseFile, feature: &str) -> &'a License {
    file.licenses
        .iter()
        .find(|l| l.feature == feature)
        .unwrap_or_else(|| panic!("no {feature} license in the file"))
}

#[expect(clippy::expect_used, reason = "an answer without an id fails the test")]
async fn license_changes(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let first = local.open(app, &app.post_sync(&local.sync_data()).await.body);

    let (status, added) = app
        .post_license(
            server_id,
            json!({"feature": "render", "seats": 3, "valid_until": "2031-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let second = local.open(app, &app.post_sync(&local.sync_data()).await.body);
    assert!(second.revision > first.revision);
    assert!(second.sequence > first.sequence);
    let render = license_for(&second, "render");
    assert_eq!(render.seats, 3);
    assert_eq!(
        render.valid_until.map(|d| d.to_rfc3339()).as_deref(),
        Some("2031-01-01T00:00:00+00:00")
    );

    let license_id = added["id"].as_str().expect("id");
    let (status, changed) = app
        .admin(
            awc::http::Method::PATCH,
            &format!("/admin/v1/servers/{server_id}/licenses/{license_id}"),
            Some(json!({"seats": 7, "valid_until": null})),
            Some(&app.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let third = local.open(app, &app.post_sync(&local.sync_data()).await.body);
    assert!(third.revision > second.revision);
    let render = license_for(&third, "render");
    assert_eq!((render.seats, render.valid_until), (7, None));

    let (status, _) = app
        .admin(
            awc::http::Method::DELETE,
            &format!("/admin/v1/servers/{server_id}/licenses/{license_id}"),
            None,
            Some(&app.token),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let fourth = local.open(app, &app.post_sync(&local.sync_data()).await.body);
    assert!(fourth.revision > third.revision);
    assert_eq!(fourth.sequence, 4);
    assert!(fourth.licenses.iter().all(|l| l.feature != "render"));
}

#[actix_rt::test]
async fn time_and_health_follow_the_clock() {
    let app = spawn_app().await;
    let (_, local) = app.register_local().await;
    let made_now = local.sync_data();

    // Moving the running server's clock a year and a day ahead.
    app.clock.advance(Duration::days(367));
    let (_, value) = app.sync_get(0, "/api/v1/time").await;
    let now: chrono::DateTime<Utc> = value["now"].as_str().expect("now").parse().expect("time");
    assert!(now - Utc::now() > Duration::days(366));

    // A request made with the real clock is stale for a server 367 days ahead.
    let answer = app.post_sync(&made_now).await;
    assert_eq!(answer.code(), "STALE_REQUEST");
    let answer = app
        .post_sync(&local.sync_data_at(Utc::now() + Duration::days(367)))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let (status, value) = app.sync_get(1, "/api/v1/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value["status"], "ok");
}

/// The shutdown future given to `run_until_stopped` stops both listeners.
#[actix_rt::test]
async fn the_server_stops_when_its_shutdown_future_completes() {
    let app = spawn_app().await;
    let (sync, admin) = (app.listening.sync[0], app.listening.admin.addr);
    app.stop().await;
    assert!(
        std::net::TcpStream::connect(sync).is_err(),
        "sync still listens"
    );
    assert!(
        std::net::TcpStream::connect(admin).is_err(),
        "admin still listens"
    );
}

/// The binary reads `SOLME_CLOCK_OFFSET` (the in-process tests move the clock directly).
#[actix_rt::test]
async fn the_binary_runs_with_its_clock_moved_by_the_environment() {
    let dir = tempfile::TempDir::new().expect("dir");
    let options = MainOptions {
        clock_offset: Some("367d".into()),
        workers: Some(1),
        ..MainOptions::default()
    };
    let main = MainServer::start(dir.path(), options).expect("start main-server");
    let http = https_client(&dir.path().join("ca.pem"));
    let mut response = http
        .get(format!("{}/api/v1/time", main.sync_urls()[0]))
        .send()
        .await
        .expect("time");
    let value: serde_json::Value = response.json().await.expect("json");
    let now: chrono::DateTime<Utc> = value["now"].as_str().expect("now").parse().expect("time");
    assert!(now - Utc::now() > Duration::days(366), "{value}");
}
