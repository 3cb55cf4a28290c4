//! Retiring an id (kept, listed as retired, never reused, its syncs refused) and
//! moving one to another customer, each audited.

use awc::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{assert_refused, assert_refused_saying, on_both_backends, Local, TestApp};

async fn retire(app: &TestApp, server_id: Uuid, force: bool) -> (StatusCode, serde_json::Value) {
    app.post(
        &format!("/admin/v1/servers/{server_id}/retire"),
        json!({"reason": "contract ended", "force": force}),
    )
    .await
}

/// A bound id is retired only when forced; then it is listed as retired and its syncs,
/// by the same installation or another, are refused with SERVER_RETIRED.
async fn a_bound_id_is_retired_only_when_forced(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let answer = app.post_sync(&local.sync_data()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let (status, refused) = retire(app, server_id, false).await;
    assert_refused_saying(
        status,
        &refused,
        StatusCode::CONFLICT,
        "CONFIRMATION_REQUIRED",
        "has a key pair bound",
    );
    let answer = app.post_sync(&local.sync_data()).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "not retired: {}",
        answer.body
    );
    assert_eq!(app.audit_count("server.retire", "").await, 0);

    let (status, retired) = retire(app, server_id, true).await;
    assert_eq!(status, StatusCode::OK, "{retired}");
    assert!(retired["retired_at"].is_string(), "{retired}");
    assert_eq!(
        app.audit_count("server.retire", "retired (forced), key ")
            .await,
        1
    );

    let answer = app.post_sync(&local.sync_data()).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert_eq!(answer.code(), "SERVER_RETIRED");
    assert!(
        answer.body.contains("ask Solme for a new id"),
        "{}",
        answer.body
    );
    let stranger = Local::new(server_id);
    let answer = app.post_sync(&stranger.sync_data()).await;
    assert_eq!(answer.code(), "SERVER_RETIRED", "{}", answer.body);
    let (status, mailed) = app.mail_sync("ops@acme.example", &local.sync_data()).await;
    assert_refused(status, &mailed, StatusCode::FORBIDDEN, "SERVER_RETIRED");
    let (_, audit) = app.get("/admin/v1/audit?limit=10").await;
    assert!(
        audit
            .as_array()
            .is_some_and(|l| l.iter().any(|e| e["outcome"] == "SERVER_RETIRED")),
        "the refused sync is audited: {audit}"
    );

    // Kept and listed as retired; retiring again is refused.
    let (_, list) = app.get("/admin/v1/servers").await;
    let listed = list
        .as_array()
        .and_then(|l| l.iter().find(|s| s["server_id"] == server_id.to_string()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed["retired_at"], retired["retired_at"], "{list}");
    let (status, again) = retire(app, server_id, true).await;
    assert_refused(status, &again, StatusCode::FORBIDDEN, "SERVER_RETIRED");
}

on_both_backends!(
    a_bound_id_is_retired_only_when_forced,
    a_bound_id_is_retired_only_when_forced_sqlite,
    a_bound_id_is_retired_only_when_forced_postgres
);

#[actix_rt::test]
async fn an_unbound_id_retires_without_force_and_is_never_allocated_again() {
    let app = crate::helpers::spawn_app().await;
    let (customer_id, server_id) = app.register().await;
    let (status, retired) = retire(&app, server_id, false).await;
    assert_eq!(status, StatusCode::OK, "{retired}");
    assert_eq!(
        app.audit_count("server.retire", "key none bound, reason: contract ended")
            .await,
        1
    );
    // A new allocation is a new id; the retired one stays in the registry.
    let (_, fresh) = app
        .post("/admin/v1/servers", json!({"customer_id": customer_id}))
        .await;
    assert_ne!(fresh["server_id"], server_id.to_string());
    let (status, kept) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kept["retired_at"], retired["retired_at"]);
    // A retired id is not moved either.
    let (status, refused) = app
        .post(
            &format!("/admin/v1/servers/{server_id}/move"),
            json!({"customer_id": customer_id}),
        )
        .await;
    assert_refused(status, &refused, StatusCode::FORBIDDEN, "SERVER_RETIRED");
}

/// After a move, the id is the other customer's: its key-clear notices go to that
/// customer's contacts, and the move is audited with both names.
#[actix_rt::test]
async fn a_moved_id_notifies_its_new_customers_contacts() {
    let app = crate::helpers::spawn_app().await;
    let (_, server_id) = app.register().await;
    let (status, beta) = app
        .post(
            "/admin/v1/customers",
            json!({"name": "Beta", "emails": ["it@beta.example"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{beta}");
    let path = format!("/admin/v1/servers/{server_id}/move");
    let (status, moved) = app.post(&path, json!({"customer_id": beta["id"]})).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["customer_name"], "Beta");
    assert_eq!(app.audit_count("server.move", "moved from Acme (").await, 1);
    let (status, same) = app.post(&path, json!({"customer_id": beta["id"]})).await;
    assert_refused(status, &same, StatusCode::BAD_REQUEST, "MALFORMED");
    let (status, nobody) = app
        .post(&path, json!({"customer_id": Uuid::new_v4()}))
        .await;
    assert_refused(status, &nobody, StatusCode::NOT_FOUND, "NOT_FOUND");

    let (status, request) = app
        .post(
            "/admin/v1/key-clear-requests",
            json!({"server_id": server_id, "sender": "it@beta.example",
                   "message_id": "<move@beta.example>", "text": "new disk"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    let id = request["id"].as_str().unwrap_or_default();
    let (status, _) = app
        .post(
            &format!("/admin/v1/key-clear-requests/{id}/reject"),
            json!({"reason": "call us"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, unnotified) = app.get("/admin/v1/key-clear-requests/unnotified").await;
    assert_eq!(
        unnotified[0]["contacts"],
        json!(["it@beta.example"]),
        "{unnotified}"
    );
}
