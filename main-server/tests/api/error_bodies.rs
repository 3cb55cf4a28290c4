//! Snapshots of the JSON error bodies a user reads when a request is refused, kept by
//! `insta` in `snapshots/api__error_bodies__*.snap`. Ids and dates change from run to
//! run, so the snapshot shows `[uuid]` and `[date]` in their place.

use awc::http::Method;
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, Answer, Local};

/// A refusal as the user sees it: the HTTP status and the parsed JSON body.
fn seen(status: u16, body: Value) -> Value {
    json!({"status": status, "body": body})
}

fn sync_refusal(answer: &Answer) -> Value {
    let body = serde_json::from_str(&answer.body).unwrap_or(Value::String(answer.body.clone()));
    seen(answer.status.as_u16(), body)
}

#[actix_rt::test]
async fn refusal_bodies_match_their_snapshot() {
    let app = spawn_app().await;
    let (server_id, first) = app.register_local().await;
    let bound = first.sync_data();
    let answer = app.post_sync(&bound).await;
    assert!(answer.status.is_success(), "{}", answer.body);

    let id_in_use = app.post_sync(&Local::new(server_id).sync_data()).await;
    let replayed = app.post_sync(&bound).await;
    let unknown = app.post_sync(&Local::new(Uuid::new_v4()).sync_data()).await;
    let stale = app
        .post_sync(&first.sync_data_at(Utc::now() - Duration::minutes(20)))
        .await;
    let malformed = app.post_sync("hello").await;
    let (unauthorized_status, unauthorized) = app
        .admin(
            Method::POST,
            "/admin/v1/customers",
            Some(json!({"name": "Mallory", "emails": []})),
            Some("wrong-token"),
        )
        .await;
    let (bad_input_status, bad_input) = app
        .post("/admin/v1/customers", json!({"name": "", "emails": []}))
        .await;

    let bodies = json!({
        "sync_id_in_use": sync_refusal(&id_in_use),
        "sync_replayed_request": sync_refusal(&replayed),
        "sync_unknown_server_id": sync_refusal(&unknown),
        "sync_stale_request": sync_refusal(&stale),
        "sync_malformed": sync_refusal(&malformed),
        "admin_unauthorized": seen(unauthorized_status.as_u16(), unauthorized),
        "admin_malformed": seen(bad_input_status.as_u16(), bad_input),
    });
    insta::with_settings!({
        filters => vec![
            (
                r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
                "[uuid]",
            ),
            (
                r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
                "[date]",
            ),
        ],
    }, {
        insta::assert_json_snapshot!(bodies);
    });
}
