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

/// The signed request of `export-sync-data`, read back.
fn exported(local: &Local) -> shared_proto::SyncRequest {
    let path = local.data_dir().join("sync-data.txt");
    assert_success(&local.cli(&["export-sync-data", path.to_str().unwrap()]));
    let text = std::fs::read_to_string(&path).unwrap();
    shared_proto::sync_data::open(&text).unwrap().request
}

#[test]
fn requests_count_themselves_and_name_the_file_held() {
    let local = Local::offline();
    let first = exported(&local);
    assert_eq!(first.request_counter, Some(1));
    assert_eq!(first.held_file_sha256, None);
    let file = local.license_file_contents(7, Utc::now(), vec![license("cad", 2)]);
    let identity = shared_proto::ServerIdentity::load(local.data_dir()).unwrap();
    assert_success(&local.import(&seal(local.solme.as_ref().unwrap(), &file, &identity)));
    let second = exported(&local);
    assert_eq!(second.request_counter, Some(2));
    assert_eq!(second.held_sequence, Some(7));
    let json = serde_json::to_vec(&file).unwrap();
    let expected = shared_proto::hex::encode(&openssl::sha::sha256(&json));
    assert_eq!(second.held_file_sha256.as_deref(), Some(expected.as_str()));

    // A copy of the data directory continues from the original's number.
    let copy = local.data_dir().with_extension("copy");
    copy_dir(local.data_dir(), &copy);
    let original = exported(&local);
    let copied = std::process::Command::new(local_bin())
        .arg("export-sync-data")
        .arg("--data-dir")
        .arg(&copy)
        .arg(copy.join("c.txt"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_success(&copied);
    let text = std::fs::read_to_string(copy.join("c.txt")).unwrap();
    let from_copy = shared_proto::sync_data::open(&text).unwrap().request;
    assert_eq!(original.request_counter, Some(3));
    assert_eq!(from_copy.request_counter, Some(3));
    std::fs::remove_dir_all(&copy).unwrap();
}

/// Copies a stopped installation's data directory, as a backup or a VM clone would.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
