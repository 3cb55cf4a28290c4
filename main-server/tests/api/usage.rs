//! The usage summary carried by each sync: stored per id and sync on both channels and
//! both backends, read back through `GET /admin/v1/servers/{id}/usage`; requests from
//! older local servers (no usage at all) still sync; an oversized summary is refused
//! before anything is recorded.

use std::collections::BTreeMap;

use awc::http::StatusCode;
use chrono::Utc;
use serde_json::{json, Value};
use shared_proto::messages::{MAX_USAGE_FEATURES, MESSAGE_VERSION};
use shared_proto::{FeatureUsage, SyncRequest};
use uuid::Uuid;

use crate::helpers::{
    hand_signed_sync_data, on_both_backends, raw_public_key, spawn_app, Local, TestApp,
};

pub(crate) fn feature(name: &str, peak: u32, hours: f64, no_seats: u64) -> FeatureUsage {
    FeatureUsage {
        feature: name.into(),
        seats_total: 5,
        peak_in_use: peak,
        seat_hours: hours,
        refusals: BTreeMap::from([("NO_SEATS".to_owned(), no_seats)]),
    }
}

#[expect(
    clippy::expect_used,
    reason = "test set-up helpers fail the test with a message"
)]
pub(crate) fn sync_data_with_usage(local: &Local, usage: Vec<FeatureUsage>) -> String {
    let request = SyncRequest {
        version: MESSAGE_VERSION,
        server_id: local.server_id,
        request_id: Uuid::new_v4(),
        created_at: Utc::now(),
        public_keys: local.identity.public_keys(),
        held_revision: None,
        held_sequence: None,
        software_version: "test".into(),
        usage,
        usage_since: Some(Utc::now() - chrono::Duration::days(1)),
        held_file_sha256: None,
        request_counter: None,
        borrows: None,
        standby_keys: None,
    };
    shared_proto::sync_data::seal(&local.identity, &request).expect("seal")
}

async fn usage_of(app: &TestApp, server_id: Uuid) -> Vec<Value> {
    let (status, list) = app
        .get(&format!("/admin/v1/servers/{server_id}/usage"))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().cloned().unwrap_or_default()
}

async fn usage_is_stored_per_sync_on_both_channels(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let direct = sync_data_with_usage(&local, vec![feature("cad", 3, 12.5, 2)]);
    let answer = app.post_sync(&direct).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let mailed = sync_data_with_usage(&local, vec![feature("cad", 5, 30.0, 0)]);
    let (status, reply) = app.mail_sync("ops@acme.example", &mailed).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        reply["usage"][0]["peak_in_use"], 5,
        "the gateway gets the usage"
    );

    let list = usage_of(app, server_id).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["sequence"], 1);
    assert_eq!(list[0]["channel"], "internet");
    assert_eq!(list[0]["features"][0]["feature"], "cad");
    assert_eq!(list[0]["features"][0]["peak_in_use"], 3);
    assert_eq!(list[0]["features"][0]["seat_hours"], 12.5);
    assert_eq!(list[0]["features"][0]["refusals"]["NO_SEATS"], 2);
    assert!(list[0]["usage_since"].is_string(), "{}", list[0]);
    assert_eq!(list[1]["sequence"], 2);
    assert_eq!(list[1]["channel"], "email");
    assert_eq!(list[1]["features"][0]["peak_in_use"], 5);

    // The mail asked again (the gateway lost the answer): the same answer, no new row.
    let (status, _) = app.mail_sync("ops@acme.example", &mailed).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(usage_of(app, server_id).await.len(), 2);

    let (status, limited) = app
        .get(&format!("/admin/v1/servers/{server_id}/usage?limit=1"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(limited[0]["sequence"], 2, "the newest sync: {limited}");
}

on_both_backends!(
    usage_is_stored_per_sync_on_both_channels,
    usage_is_stored_per_sync_on_sqlite,
    usage_is_stored_per_sync_on_postgres
);

/// Sync data as a local server from before usage reporting wrote it: no `usage` and
/// no `usage_since` in the signed JSON (signed by hand with a bare key pair).
fn old_format_sync_data(server_id: Uuid) -> String {
    let signing = openssl::pkey::PKey::generate_ed25519().expect("key");
    let encryption = openssl::pkey::PKey::generate_x25519().expect("key");
    let public_keys = shared_proto::keys::ServerPublicKeys {
        signing: raw_public_key(&signing),
        encryption: raw_public_key(&encryption),
    };
    let request = json!({
        "version": MESSAGE_VERSION,
        "server_id": server_id,
        "request_id": Uuid::new_v4(),
        "created_at": Utc::now(),
        "public_keys": public_keys,
        "held_revision": null,
        "held_sequence": null,
        "software_version": "0.0.9",
    });
    hand_signed_sync_data(&request, &signing)
}

#[actix_rt::test]
async fn an_old_format_request_without_usage_still_syncs() {
    let app = spawn_app().await;
    let (_, server_id) = app.register().await;
    let answer = app.post_sync(&old_format_sync_data(server_id)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let list = usage_of(&app, server_id).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["features"], json!([]));
    assert!(list[0]["usage_since"].is_null());
}

#[actix_rt::test]
async fn a_usage_summary_beyond_its_bounds_is_refused_and_nothing_is_recorded() {
    let app = spawn_app().await;
    let (server_id, local) = app.register_local().await;
    let many = (0..=MAX_USAGE_FEATURES)
        .map(|n| feature(&format!("f{n}"), 1, 1.0, 0))
        .collect();
    let answer = app.post_sync(&sync_data_with_usage(&local, many)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.code(), "MALFORMED");
    let mut bad_code = feature("cad", 1, 1.0, 0);
    bad_code.refusals = BTreeMap::from([("x".repeat(100), 1)]);
    let answer = app
        .post_sync(&sync_data_with_usage(&local, vec![bad_code]))
        .await;
    assert_eq!(answer.code(), "MALFORMED", "{}", answer.body);

    assert!(usage_of(&app, server_id).await.is_empty());
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert!(shown["bound_fingerprint"].is_null(), "{shown}");

    let (status, body) = app
        .get(&format!("/admin/v1/servers/{}/usage", Uuid::new_v4()))
        .await;
    assert_eq!(body["code"], "UNKNOWN_SERVER_ID", "{status} {body}");
}
