//! `import-license-file --dry-run` and the manager page's preview: they show what a
//! license file would change, apply nothing, and refuse exactly what the import refuses.

use chrono::Utc;
use serde_json::Value;

use crate::helpers::*;

/// Everything of the status a license file could change.
fn state_of(local: &Local) -> Value {
    local.status_fields(&[
        "license_file_sequence",
        "valid_until",
        "features",
        "last_sync_at",
        "state",
    ])
}

fn dry_run(local: &Local, text: &str) -> std::process::Output {
    let path = local
        .data_dir()
        .join(format!("preview-{}.lic", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();
    local.cli(&["import-license-file", "--dry-run", path.to_str().unwrap()])
}

/// The error code a refused CLI run printed (`refused (CODE): …`).
fn refusal_code(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    let text = stderr(out);
    text.split_once("refused (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(code, _)| code.to_owned())
        .unwrap_or_else(|| panic!("no refusal code in {text}"))
}

async fn post_text(http: &awc::Client, local: &Local, path: &str, text: &str) -> (u16, Value) {
    let mut resp = manager_request(http, local, "POST", path)
        .send_body(text.to_owned())
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    (resp.status().as_u16(), body)
}

#[actix_rt::test]
async fn a_preview_changes_nothing_and_agrees_with_the_import() -> TestResult {
    let local = Local::serving(vec![license("cad", 3), license("cam", 2)], &[]);
    let now = Utc::now();
    let http = client();
    for _ in 0..3 {
        checked_out(&http, &local, "cad").await;
    }
    let next = local.license_file(2, now, vec![license("cad", 1), license("viz", 4)]);
    let before = state_of(&local);

    let out = dry_run(&local, &next);
    assert_success(&out);
    let printed = stdout(&out);
    for words in [
        "Preview of license file #2",
        "nothing was changed",
        "Valid until:",
        "would be added    viz: 4 seats",
        "would be removed  cam: had 2 seats",
        "would be changed  cad: 3 -> 1 seat",
        "cad: 1 seat, 3 in use now (no new check-outs until 3 are returned)",
        "To import it: local-server import-license-file",
    ] {
        assert!(printed.contains(words), "expected {words:?} in:\n{printed}");
    }
    assert_eq!(state_of(&local), before, "the dry run changed nothing");

    // The page's preview says the same, also without applying anything.
    let (status, preview) = post_text(&http, &local, "license-file/preview", &next).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(
        state_of(&local),
        before,
        "the page's preview changed nothing"
    );
    assert_eq!(preview["changes"]["seats_below_use"][0]["feature"], "cad");
    assert_eq!(preview["changes"]["seats_below_use"][0]["in_use"], 3);

    // The customer confirms: the import changes exactly what the preview showed.
    let (status, imported) = post_text(&http, &local, "license-file", &next).await;
    assert_eq!(status, 200, "{imported}");
    assert_eq!(imported, preview["changes"], "preview and import agree");
    assert_eq!(local.status()["license_file_sequence"], 2);

    // Now the same file is not newer: the preview refuses it as the import does.
    let after = state_of(&local);
    let preview_code = refusal_code(&dry_run(&local, &next));
    assert_eq!(preview_code, "OLDER_LICENSE_FILE");
    assert_eq!(refusal_code(&local.import(&next)), preview_code);
    let (status, body) = post_text(&http, &local, "license-file/preview", &next).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("OLDER_LICENSE_FILE"))
    );
    assert_eq!(state_of(&local), after);
    Ok(())
}

#[test]
fn a_file_the_preview_refuses_is_refused_by_the_import_with_the_same_code() {
    let local = Local::imported(vec![license("cad", 3)]);
    let now = Utc::now();
    let before = state_of(&local);

    // Damaged: one character of the body changed.
    let good = local.license_file(2, now, vec![license("cad", 9)]);
    let damaged = tampered(&good);

    // Made for another installation of the same id.
    let other = Local::offline();
    let foreign = other.license_file(2, now, vec![license("cad", 9)]);

    for (what, text) in [
        ("damaged", damaged.as_str()),
        ("another server's", foreign.as_str()),
        ("not a license file", "hello"),
    ] {
        let preview = refusal_code(&dry_run(&local, text));
        let import = refusal_code(&local.import(text));
        assert_eq!(preview, import, "{what} file");
        assert_eq!(state_of(&local), before, "{what} file changed something");
    }
    // A good file previews without error and is then imported.
    assert_success(&dry_run(&local, &good));
    assert_eq!(state_of(&local), before);
    assert_success(&local.import(&good));
    assert_eq!(local.status()["license_file_sequence"], 2);
}
