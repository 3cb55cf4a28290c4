//! Manager verbs that need no main server: auto-sync, export, the manager API.

use chrono::Utc;

use crate::helpers::*;

#[test]
fn auto_sync_is_off_by_default_and_shows_its_next_run() {
    let local = Local::offline();
    let status = local.status();
    assert_eq!(status["auto_sync"], "off");
    assert!(status["next_auto_sync_at"].is_null());
    assert_success(&local.cli(&["auto-sync", "weekly"]));
    let status = local.status();
    assert_eq!(status["auto_sync"], "weekly");
    // Never synchronized: due at once.
    let next: chrono::DateTime<Utc> = status["next_auto_sync_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(next <= Utc::now());
    assert_success(&local.import(&local.license_file(1, Utc::now(), vec![license("cad", 1)])));
    assert_success(&local.cli(&["auto-sync", "daily"]));
    let next: chrono::DateTime<Utc> = local.status()["next_auto_sync_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let in_a_day = Utc::now() + chrono::Duration::days(1);
    assert!((next - in_a_day).num_minutes().abs() < 5, "{next}");
    assert_success(&local.cli(&["auto-sync", "off"]));
    assert!(local.status()["next_auto_sync_at"].is_null());
}

#[test]
fn export_writes_signed_sync_data_for_this_id() {
    let local = Local::offline();
    let path = local.data_dir().join("sync-data.txt");
    let out = local.cli(&["export-sync-data", path.to_str().unwrap()]);
    assert_success(&out);
    let text = std::fs::read_to_string(&path).unwrap();
    let verified = shared_proto::sync_data::open(&text).unwrap();
    assert_eq!(verified.request.server_id, local.id);
    assert_eq!(
        verified.fingerprint.to_string(),
        local.status()["fingerprint"].as_str().unwrap()
    );
    assert_eq!(verified.request.held_sequence, None);
}

#[actix_rt::test]
async fn the_manager_api_imports_and_reports() -> TestResult {
    let local = Local::offline_serving();
    let http = client();
    let text = local.license_file(1, Utc::now(), vec![license("cad", 4)]);
    let (status, changes) = manager_import(&http, &local, text.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(changes["added"][0]["feature"], "cad");
    let (status, body) = manager_import(&http, &local, text).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "OLDER_LICENSE_FILE");
    let (s, status) = manager_call(&http, &local, "GET", "status", None).await;
    assert_eq!(s, 200);
    assert_eq!(status["state"], "synchronized");
    assert_eq!(status["features"][0]["seats_total"], 4);
    let (s, body) = manager_call(
        &http,
        &local,
        "PUT",
        "auto-sync",
        Some(serde_json::json!({"mode": "daily"})),
    )
    .await;
    assert_eq!((s, body["auto_sync"].as_str()), (200, Some("daily")));
    // A mode that is not one of the words is refused by code, with the words accepted.
    let (s, body) = manager_call(
        &http,
        &local,
        "PUT",
        "auto-sync",
        Some(serde_json::json!({"mode": "hourly"})),
    )
    .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (400, Some("MALFORMED")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("off, daily, weekly"), "{body}");
    assert!(!message.contains("Json"), "{body}");
    let (_, status) = manager_call(&http, &local, "GET", "status", None).await;
    assert_eq!(status["auto_sync"], "daily");
    checked_out(&http, &local, "cad").await;
    Ok(())
}

/// A manager sync that cannot reach the main server is an error answer with its code
/// (`503 UNAVAILABLE`, to be retried), never a 200 that says "failed" inside.
#[actix_rt::test]
async fn a_manager_sync_that_fails_answers_with_an_error_code() {
    let local = Local::offline_serving();
    let http = client();
    let (status, body) = manager_call(&http, &local, "POST", "sync", None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "UNAVAILABLE", "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let (_, report) = manager_call(&http, &local, "GET", "status", None).await;
    assert_eq!(report["state"], "never_synchronized");
}
