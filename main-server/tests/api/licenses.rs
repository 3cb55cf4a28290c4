//! Licenses as operators write them: the checks that catch slips (a feature name no
//! client program could ask for, a license that has already ended when it is written).

use awc::http::{Method, StatusCode};
use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::helpers::{assert_refused, assert_refused_saying, spawn_app, TestApp};

async fn patch(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.admin(Method::PATCH, path, Some(body), Some(&app.token))
        .await
}

fn days_from_now(days: i64) -> String {
    (Utc::now() + Duration::days(days)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[actix_rt::test]
async fn feature_names_outside_the_rule_are_refused_naming_it() {
    let app = spawn_app().await;
    let (_, server_id) = app.register().await;
    let long = "a".repeat(129);
    for bad in [
        "",
        " cad",
        "cad cam",
        "cad\"",
        "caf\u{e9}",
        "cad/cam",
        &long,
    ] {
        let (status, refused) = app
            .post_license(server_id, json!({"feature": bad, "seats": 1}))
            .await;
        assert_refused_saying(
            status,
            &refused,
            StatusCode::BAD_REQUEST,
            "MALFORMED",
            "1 to 128 letters, digits, '-', '_' or '.'",
        );
    }
    let longest = "b".repeat(128);
    for good in ["solme-cad_2.1", "X", &longest] {
        let (status, added) = app
            .post_license(server_id, json!({"feature": good, "seats": 1}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{good}: {added}");
    }
    let (_, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(
        server["licenses"].as_array().map(Vec::len),
        Some(4),
        "{server}"
    );
}

#[actix_rt::test]
async fn a_license_already_ended_is_added_only_when_confirmed() {
    let app = spawn_app().await;
    let (_, server_id) = app.register().await;
    let (_, before) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    let ended = json!({"feature": "cam", "seats": 2, "valid_until": days_from_now(-1)});
    let (status, refused) = app.post_license(server_id, ended.clone()).await;
    assert_refused_saying(
        status,
        &refused,
        StatusCode::CONFLICT,
        "CONFIRMATION_REQUIRED",
        "already past",
    );
    let (_, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(server["revision"], before["revision"], "nothing written");
    assert_eq!(app.audit_count("license.add", "cam").await, 0);

    let mut confirmed = ended;
    confirmed["confirm_ended"] = json!(true);
    let (status, added) = app.post_license(server_id, confirmed).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(app.audit_count("license.add", "cam").await, 1);

    let future = json!({"feature": "sim", "seats": 2, "valid_until": days_from_now(30)});
    let (status, added) = app.post_license(server_id, future).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a future end needs nothing: {added}"
    );
}

#[actix_rt::test]
async fn a_change_that_ends_a_license_in_the_past_needs_a_confirmation() {
    let app = spawn_app().await;
    let (_, server_id) = app.register().await;
    let (_, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    let license_id = server["licenses"][0]["id"].as_str().expect("id").to_owned();
    let path = format!("/admin/v1/servers/{server_id}/licenses/{license_id}");
    let past = days_from_now(-3);
    let (status, refused) = patch(&app, &path, json!({"valid_until": past})).await;
    assert_refused(
        status,
        &refused,
        StatusCode::CONFLICT,
        "CONFIRMATION_REQUIRED",
    );
    let (_, after) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert!(after["licenses"][0]["valid_until"].is_null(), "{after}");
    assert_eq!(after["revision"], server["revision"], "nothing written");

    // Other terms of the license change without a question.
    let (status, changed) = patch(&app, &path, json!({"seats": 3})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let (status, changed) = patch(
        &app,
        &path,
        json!({"valid_until": past, "confirm_ended": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert!(changed["valid_until"].is_string(), "{changed}");
    assert_eq!(changed["seats"], 3);
}
