//! Console sessions: a personal token opens one, its secret then acts as the account
//! with the account's role, and it stops working at sign-out, after 8 hours, and at
//! once when the account is revoked or given a new token.

use awc::http::{Method, StatusCode};
use chrono::Duration;
use serde_json::{json, Value};

use crate::helpers::{assert_refused, spawn_app, spawn_pg_app, TestApp};
use crate::operators::add;

/// Opens a console session with `token`; returns its secret and the answer.
async fn open(app: &TestApp, token: &str) -> (String, Value) {
    let (status, opened) = app
        .admin(Method::POST, "/admin/v1/sessions", None, Some(token))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let secret = opened["session"].as_str().unwrap_or_default().to_owned();
    assert!(
        secret.starts_with("session.") && secret.len() > 40,
        "{opened}"
    );
    (secret, opened)
}

async fn whoami(app: &TestApp, secret: &str) -> (StatusCode, Value) {
    app.admin(Method::GET, "/admin/v1/whoami", None, Some(secret))
        .await
}

/// Ends the console session that `secret` names.
async fn sign_out(app: &TestApp, secret: &str) -> (StatusCode, Value) {
    app.admin(
        Method::DELETE,
        "/admin/v1/sessions/current",
        None,
        Some(secret),
    )
    .await
}

#[actix_rt::test]
async fn a_session_acts_as_its_account_with_its_role_until_sign_out() {
    acts_as_its_account_until_sign_out(&spawn_app().await).await;
}

async fn acts_as_its_account_until_sign_out(app: &TestApp) {
    let viewer = add(app, "vera", "viewer").await;
    let (secret, opened) = open(app, &viewer).await;
    assert_eq!(opened["name"], "vera");
    assert_eq!(opened["role"], "viewer");
    let expires: chrono::DateTime<chrono::Utc> = opened["expires_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    let minutes = (expires - app.clock.now()).num_minutes();
    assert!((479..=480).contains(&minutes), "{opened}");

    let (status, me) = whoami(app, &secret).await;
    assert_eq!(
        (status, me),
        (StatusCode::OK, json!({"name": "vera", "role": "viewer"}))
    );
    let (status, _) = app
        .admin(Method::GET, "/admin/v1/servers", None, Some(&secret))
        .await;
    assert_eq!(status, StatusCode::OK);
    // The role still holds: a viewer's session may not change the registry.
    let (status, body) = app
        .admin(
            Method::POST,
            "/admin/v1/customers",
            Some(json!({"name": "Acme", "emails": []})),
            Some(&secret),
        )
        .await;
    assert_refused(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    // A session cannot open another session, and a token has no session to end.
    let (status, body) = app
        .admin(Method::POST, "/admin/v1/sessions", None, Some(&secret))
        .await;
    assert_refused(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, body) = sign_out(app, &viewer).await;
    assert_refused(status, &body, StatusCode::BAD_REQUEST, "MALFORMED");

    let (status, body) = sign_out(app, &secret).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = whoami(app, &secret).await;
    assert_refused(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    // The personal token itself goes on working.
    let (status, _) = whoami(app, &viewer).await;
    assert_eq!(status, StatusCode::OK);

    // Sign-in and sign-out are audited as the account, never with the secret.
    let (_, audit) = app.get("/admin/v1/audit?limit=1000").await;
    let entries = audit.as_array().cloned().unwrap_or_default();
    for action in ["session.start", "session.end"] {
        assert!(
            entries
                .iter()
                .any(|e| e["action"] == action && e["actor"] == "vera"),
            "{action}: {audit}"
        );
    }
    let text = audit.to_string();
    assert!(!text.contains(&secret) && !text.contains(&viewer), "{text}");
}

#[actix_rt::test]
async fn the_gateway_and_wrong_tokens_open_no_session() {
    let app = &spawn_app().await;
    let gateway = add(app, "gw", "gateway").await;
    let (status, body) = app
        .admin(Method::POST, "/admin/v1/sessions", None, Some(&gateway))
        .await;
    assert_refused(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    for wrong in ["not-a-token", "session.not-a-session"] {
        let (status, body) = app
            .admin(Method::POST, "/admin/v1/sessions", None, Some(wrong))
            .await;
        assert_refused(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        let (status, body) = whoami(app, wrong).await;
        assert_refused(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
}

#[actix_rt::test]
async fn a_session_expires_after_eight_hours() {
    let app = &spawn_app().await;
    let (secret, _) = open(app, &app.token).await;
    app.clock.advance(Duration::hours(8) - Duration::minutes(1));
    let (status, _) = whoami(app, &secret).await;
    assert_eq!(status, StatusCode::OK);
    app.clock.advance(Duration::minutes(1));
    let (status, body) = whoami(app, &secret).await;
    assert_refused(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

#[actix_rt::test]
async fn revoking_or_rotating_the_account_ends_its_sessions_at_once() {
    ends_at_revocation_and_rotation(&spawn_app().await).await;
}

/// The same on PostgreSQL (the session lookup joins the account there too).
#[actix_rt::test]
async fn sessions_work_the_same_on_postgres() {
    let Some(app) = &spawn_pg_app().await else {
        return;
    };
    acts_as_its_account_until_sign_out(app).await;
    ends_at_revocation_and_rotation(app).await;
    keeps_at_most_twenty(app).await;
}

async fn ends_at_revocation_and_rotation(app: &TestApp) {
    let otto = add(app, "otto", "operator").await;
    let (before_rotation, _) = open(app, &otto).await;
    let (status, rotated) = app.post("/admin/v1/operators/otto/rotate", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (status, body) = whoami(app, &before_rotation).await;
    assert_refused(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");

    let new_token = rotated["token"].as_str().unwrap_or_default().to_owned();
    let (after_rotation, _) = open(app, &new_token).await;
    let (status, _) = whoami(app, &after_rotation).await;
    assert_eq!(status, StatusCode::OK);
    let (status, revoked) = app.post("/admin/v1/operators/otto/revoke", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    let (status, body) = whoami(app, &after_rotation).await;
    assert_refused(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

#[actix_rt::test]
async fn an_account_keeps_at_most_twenty_sessions() {
    keeps_at_most_twenty(&spawn_app().await).await;
}

async fn keeps_at_most_twenty(app: &TestApp) {
    let (oldest, _) = open(app, &app.token).await;
    for _ in 0..19 {
        app.clock.advance(Duration::seconds(1));
        open(app, &app.token).await;
    }
    let (status, _) = whoami(app, &oldest).await;
    assert_eq!(status, StatusCode::OK, "20 sessions are allowed");
    app.clock.advance(Duration::seconds(1));
    let (newest, _) = open(app, &app.token).await;
    let (status, body) = whoami(app, &oldest).await;
    assert_refused(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let (status, _) = whoami(app, &newest).await;
    assert_eq!(status, StatusCode::OK);
}
