//! The admin API: token, mail-gateway operations, key-clear requests, due list.

use awc::http::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{
    assert_refused, assert_refused_saying, newest_audit_entry, on_both_backends, spawn_app, Local,
    TestApp,
};

#[actix_rt::test]
async fn admin_without_the_token_is_refused() {
    let app = spawn_app().await;
    for token in [None, Some("wrong-token"), Some("")] {
        let (status, body) = app
            .admin(
                Method::POST,
                "/admin/v1/customers",
                Some(json!({"name": "Mallory", "emails": []})),
                token,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(body["code"], "UNAUTHORIZED");
    }
    let (status, list) = app.get("/admin/v1/customers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([]), "a refused request created something");
}

#[actix_rt::test]
async fn bad_input_gets_contract_errors() {
    let app = spawn_app().await;
    let (status, body) = app
        .post("/admin/v1/customers", json!({"name": "", "emails": []}))
        .await;
    assert_refused(status, &body, StatusCode::BAD_REQUEST, "MALFORMED");
    let (status, body) = app
        .post(
            "/admin/v1/customers",
            json!({"name": "A", "emails": ["not-an-address"]}),
        )
        .await;
    assert_refused(status, &body, StatusCode::BAD_REQUEST, "MALFORMED");
    let (status, body) = app
        .post("/admin/v1/servers", json!({"customer_id": 5}))
        .await;
    assert_eq!(body["code"], "MALFORMED", "{status}");
    let (status, body) = app
        .post("/admin/v1/servers", json!({"customer_id": Uuid::new_v4()}))
        .await;
    assert_refused(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (status, body) = app
        .get(&format!("/admin/v1/servers/{}", Uuid::new_v4()))
        .await;
    assert_refused(status, &body, StatusCode::NOT_FOUND, "UNKNOWN_SERVER_ID");
    let (status, body) = app.get("/admin/v1/nothing-here").await;
    assert_refused(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");

    let (_, server_id) = app.register().await;
    let (status, body) = app
        .post_license(server_id, json!({"feature": "cad", "seats": 2}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "duplicate feature: {body}");
    let (status, _) = app
        .post_license(server_id, json!({"feature": "x", "seats": 0}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "zero seats");
}

#[actix_rt::test]
async fn mail_sync_needs_a_registered_sender() {
    let app = spawn_app().await;
    let (customer_id, server_id) = app.register().await;
    let local = Local::new(server_id);

    let (status, body) = app
        .mail_sync("intruder@evil.example", &local.sync_data())
        .await;
    assert_refused_saying(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "UNAUTHORIZED",
        "registered",
    );
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert!(
        shown["bound_fingerprint"].is_null(),
        "unregistered sender bound a key"
    );

    let (status, _) = app
        .post(
            &format!("/admin/v1/customers/{customer_id}/emails"),
            json!({"email": "Second@Acme.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .mail_sync("second@acme.example", &local.sync_data())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["server_id"], server_id.to_string());
    assert_eq!(body["licenses"][0]["feature"], "cad");
    let file = local.open(&app, body["license_file"].as_str().expect("file"));
    assert_eq!(
        file.valid_until.to_rfc3339(),
        body["valid_until"]
            .as_str()
            .map(|s| s
                .parse::<chrono::DateTime<chrono::Utc>>()
                .expect("date")
                .to_rfc3339())
            .unwrap_or_default()
    );
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(shown["last_sync_channel"], "email");

    let (status, body) = app
        .mail_sync("ops@acme.example", &Local::new(Uuid::new_v4()).sync_data())
        .await;
    assert_refused(status, &body, StatusCode::NOT_FOUND, "UNKNOWN_SERVER_ID");
}

#[actix_rt::test]
async fn key_clear_requests_are_decided_by_an_operator() {
    let app = spawn_app().await;
    let (server_id, old) = app.register_local().await;
    assert_eq!(app.post_sync(&old.sync_data()).await.status, StatusCode::OK);

    let request = json!({
        "server_id": server_id,
        "sender": "ops@acme.example",
        "message_id": "<abc@acme.example>",
        "text": "we reinstalled, please clear",
    });
    let (status, created) = app
        .post("/admin/v1/key-clear-requests", request.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "pending");
    let (status, again) = app.post("/admin/v1/key-clear-requests", request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        again["id"], created["id"],
        "same Message-ID made a second request"
    );

    let (status, body) = app
        .post(
            "/admin/v1/key-clear-requests",
            json!({"server_id": server_id, "sender": "x@evil.example", "message_id": "<1@x>", "text": ""}),
        )
        .await;
    assert_refused(status, &body, StatusCode::FORBIDDEN, "UNAUTHORIZED");
    let (status, body) = app
        .post(
            "/admin/v1/key-clear-requests",
            json!({"server_id": Uuid::new_v4(), "sender": "ops@acme.example", "message_id": "<2@x>", "text": ""}),
        )
        .await;
    assert_refused(status, &body, StatusCode::NOT_FOUND, "UNKNOWN_SERVER_ID");

    let (_, pending) = app.get("/admin/v1/key-clear-requests?status=pending").await;
    assert_eq!(pending.as_array().map(Vec::len), Some(1));
    // Marking a pending request notified would suppress the notice of its decision.
    let pending_id = created["id"].as_str().expect("id");
    let (status, body) = key_clear_step(&app, pending_id, "notified").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("MALFORMED")),
        "{body}"
    );
    let (status, _) = key_clear_step(&app, Uuid::new_v4(), "notified").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, unnotified) = app.get("/admin/v1/key-clear-requests/unnotified").await;
    assert_eq!(unnotified, json!([]));

    let id = created["id"].as_str().expect("id");
    // Filed without a sender check: approving it needs the explicit override.
    assert_eq!(created["sender_auth"], "not checked");
    let (status, body) = key_clear_step(&app, id, "approve").await;
    assert_refused_saying(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "OVERRIDE_REQUIRED",
        "override_unauthenticated",
    );
    let (_, shown) = app.get(&format!("/admin/v1/key-clear-requests/{id}")).await;
    assert_eq!(shown["status"], "pending", "refused approval changed it");
    let (_, audit) = app.get("/admin/v1/audit?limit=5").await;
    let refused = newest_audit_entry(&audit, "key_clear_request.approve");
    assert_eq!(refused["outcome"], "OVERRIDE_REQUIRED", "{refused}");
    assert_eq!(
        refused["detail"],
        format!(
            "request {id} not approved: its sender ops@acme.example was not checked, \
             and the override was not given"
        ),
    );
    let (status, approved) = app
        .post(
            &format!("/admin/v1/key-clear-requests/{id}/approve"),
            json!({"override_unauthenticated": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "approved");
    let (_, audit) = app.get("/admin/v1/audit?limit=5").await;
    let approval = newest_audit_entry(&audit, "key_clear_request.approve");
    assert!(
        approval["detail"]
            .as_str()
            .is_some_and(|d| d.contains("override used (sender ops@acme.example: not checked)")),
        "{approval}"
    );
    assert_eq!(approved["operator"], "admin");
    // An approved request cannot be rejected any more.
    let (status, body) = app
        .post(
            &format!("/admin/v1/key-clear-requests/{id}/reject"),
            json!({"reason": "late"}),
        )
        .await;
    assert_refused_saying(
        status,
        &body,
        StatusCode::CONFLICT,
        "ALREADY_DECIDED",
        "already approved by admin",
    );

    let new = Local::new(server_id);
    let answer = app.post_sync(&new.sync_data()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let (_, unnotified) = app.get("/admin/v1/key-clear-requests/unnotified").await;
    assert_eq!(unnotified[0]["id"], created["id"]);
    assert_eq!(unnotified[0]["contacts"], json!(["ops@acme.example"]));
    let (status, _) = key_clear_step(&app, id, "notified").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, unnotified) = app.get("/admin/v1/key-clear-requests/unnotified").await;
    assert_eq!(unnotified, json!([]));
}

#[actix_rt::test]
async fn a_request_from_an_authenticated_sender_is_approved_without_override() {
    let app = spawn_app().await;
    let (server_id, created) = app
        .register_with_key_clear_request(
            "<auth@acme.example>",
            json!({"text": "clear", "sender_auth": "authenticated",
                   "sender_auth_detail": "dmarc=pass"}),
        )
        .await;
    assert_eq!(created["sender_auth"], "authenticated");
    assert_eq!(created["sender_auth_detail"], "dmarc=pass");
    let id = created["id"].as_str().expect("id");
    let (_, shown) = app.get(&format!("/admin/v1/key-clear-requests/{id}")).await;
    // The request as created, with what deciding it needs beside it.
    for (field, value) in created.as_object().expect("an object") {
        assert_eq!(&shown[field], value, "{field}: {shown}");
    }
    assert_eq!(shown["customer_name"], "Acme", "{shown}");
    let (status, body) = app
        .get(&format!("/admin/v1/key-clear-requests/{}", Uuid::new_v4()))
        .await;
    assert_refused(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (status, approved) = key_clear_step(&app, id, "approve").await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    let (_, audit) = app.get("/admin/v1/audit?limit=5").await;
    let approval = newest_audit_entry(&audit, "key_clear_request.approve");
    assert!(
        !approval["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("override"),
        "{approval}"
    );
    let (status, body) = app
        .post(
            "/admin/v1/key-clear-requests",
            json!({"server_id": server_id, "sender": "ops@acme.example",
                   "message_id": "<bad@acme.example>", "sender_auth": "trust me"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[actix_rt::test]
async fn due_list_shows_never_synced_and_soon_due_ids() {
    let app = spawn_app().await;
    let (_, local) = app.register_local().await;
    let (_, never) = app.register().await;
    assert_eq!(
        app.post_sync(&local.sync_data()).await.status,
        StatusCode::OK
    );

    let ids = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["server_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (_, due) = app.get("/admin/v1/servers?due_within_days=30").await;
    assert_eq!(ids(&due), vec![never.to_string()]);
    let (_, due) = app.get("/admin/v1/servers?due_within_days=400").await;
    assert_eq!(ids(&due).len(), 2);
    let (_, all) = app.get("/admin/v1/servers").await;
    assert_eq!(ids(&all).len(), 2);
}

#[actix_rt::test]
async fn a_mail_sync_asked_again_gets_the_same_license_file() {
    let app = spawn_app().await;
    let (server_id, local) = app.register_local().await;
    let text = local.sync_data();
    let body = json!({"sender": "ops@acme.example", "sync_data": text});

    let (status, first) = app.post("/admin/v1/mail/sync", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // The gateway lost the answer (crash, timeout) and asks again with the same mail.
    let (status, second) = app.post("/admin/v1/mail/sync", body).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(first["license_file"], second["license_file"]);
    assert_eq!(
        local
            .open(&app, second["license_file"].as_str().expect("file"))
            .sequence,
        1
    );
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(
        shown["sequence"], 1,
        "asking again issues nothing new: {shown}"
    );

    // Over the internet the same request is still a replay.
    let answer = app.post_sync(&text).await;
    assert_eq!(answer.code(), "REPLAYED_REQUEST");
}

/// The same mail handed over several times at once (gateway retries) makes one request
/// with one audit entry; on PostgreSQL the losing inserts must not abort their
/// transactions.
#[expect(
    clippy::expect_used,
    reason = "test set-up helpers fail the test with a message"
)]
async fn concurrent_copies_of_one_key_clear_mail_make_one_request(app: &crate::helpers::TestApp) {
    let (_, server_id) = app.register().await;
    let message_id = format!("<{}@acme.example>", Uuid::new_v4());
    let request = json!({
        "server_id": server_id,
        "sender": "ops@acme.example",
        "message_id": message_id,
        "text": "please clear",
    });
    let answers = futures_util::future::join_all(
        (0..8).map(|_| app.post("/admin/v1/key-clear-requests", request.clone())),
    )
    .await;
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{answers:?}");
    for (status, body) in &answers {
        assert!(status.is_success(), "{body}");
        assert_eq!(body["id"], answers[0].1["id"]);
    }
    assert_eq!(
        app.audit_count("key_clear_request.create", &message_id)
            .await,
        1
    );

    // Adding one address at once from several requests: one row, one audit entry.
    let (_, customer) = app.get("/admin/v1/customers").await;
    let customer_id = customer[0]["id"].as_str().expect("id").to_owned();
    let email = format!("{}@acme.example", Uuid::new_v4().simple());
    let path = format!("/admin/v1/customers/{customer_id}/emails");
    let added =
        futures_util::future::join_all((0..8).map(|_| app.post(&path, json!({"email": email}))))
            .await;
    for (status, body) in &added {
        assert!(status.is_success(), "{body}");
    }
    assert_eq!(app.audit_count("customer.add_email", &email).await, 1);
}

on_both_backends!(
    concurrent_copies_of_one_key_clear_mail_make_one_request,
    concurrent_copies_of_one_key_clear_mail_make_one_request_on_sqlite,
    concurrent_copies_of_one_key_clear_mail_make_one_request_on_postgres
);

/// Pages through `GET /admin/v1/servers{query}` two ids at a time; returns every id in
/// the order served.
#[expect(
    clippy::expect_used,
    reason = "test set-up helpers fail the test with a message"
)]
async fn all_pages(app: &crate::helpers::TestApp, query: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let cursor = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let (status, page) = app
            .get(&format!("/admin/v1/servers?limit=2{query}{cursor}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let ids: Vec<String> = page
            .as_array()
            .expect("list")
            .iter()
            .map(|s| s["server_id"].as_str().expect("id").to_owned())
            .collect();
        assert!(ids.len() <= 2);
        seen.extend(ids.iter().cloned());
        if ids.len() < 2 {
            return seen;
        }
        after = ids.last().cloned();
    }
}

#[actix_rt::test]
async fn id_listings_are_paged() {
    let app = spawn_app().await;
    let mut never = Vec::new();
    let mut synced = Vec::new();
    for i in 0..5 {
        let (_, id) = app.register().await;
        if i % 2 == 0 {
            let local = Local::new(id);
            assert_eq!(
                app.post_sync(&local.sync_data()).await.status,
                StatusCode::OK
            );
            synced.push(id.to_string());
        } else {
            never.push(id.to_string());
        }
    }
    // Every id exactly once, by id.
    let mut all: Vec<String> = never.iter().chain(&synced).cloned().collect();
    all.sort();
    assert_eq!(all_pages(&app, "").await, all);

    // The due list: never-synced ids first (by id), then the synced ones by due date
    // (registered in order, so synced in order).
    never.sort();
    let expected: Vec<String> = never.iter().chain(&synced).cloned().collect();
    assert_eq!(all_pages(&app, "&due_within_days=400").await, expected);
    assert_eq!(all_pages(&app, "&due_within_days=30").await, never);

    for bad in ["limit=0", "limit=1001"] {
        let (status, body) = app.get(&format!("/admin/v1/servers?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, _) = app
        .get(&format!(
            "/admin/v1/servers?due_within_days=30&after={}",
            Uuid::new_v4()
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Without a limit a page holds at most 100 ids.
    let (_, page) = app.get("/admin/v1/servers").await;
    assert_eq!(page.as_array().map(Vec::len), Some(5));
}

/// `POST /admin/v1/key-clear-requests/{id}/{step}` (approve, reject, notified) with an
/// empty body.
async fn key_clear_step(
    app: &TestApp,
    id: impl std::fmt::Display,
    step: &str,
) -> (StatusCode, Value) {
    app.post(
        &format!("/admin/v1/key-clear-requests/{id}/{step}"),
        json!({}),
    )
    .await
}
