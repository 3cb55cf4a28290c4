//! `local-server support-bundle FILE` and the manager page's button: the archive holds
//! every part support needs, and no secret: no private key, no proxy password (stored,
//! given by flag, or from the environment).

use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use chrono::Utc;

use crate::helpers::*;
use shared_proto::exit;

const STORED_PASSWORD: &str = "Pr0xy-St0red-S3cret";
const FLAG_PASSWORD: &str = "Fl4g-S3cret";
const ENV_PASSWORD: &str = "Env1ron-S3cret";

/// The archive's entries: name and text.
fn entries(bytes: &[u8]) -> Vec<(String, String)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        out.push((name, text));
    }
    out
}

/// The base64 lines of every private key file in the data directory.
fn private_key_lines(local: &Local) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(local.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if text.contains("PRIVATE KEY") {
            lines.extend(
                text.lines()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                    .map(str::to_owned),
            );
        }
    }
    assert!(!lines.is_empty(), "the test found no private key file");
    lines
}

fn assert_complete_and_without_secrets(local: &Local, bytes: &[u8]) {
    let entries = entries(bytes);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert!(local_server::support_bundle::ENTRIES.contains(&"log.txt"));
    for part in local_server::support_bundle::ENTRIES {
        assert!(
            names.contains(&format!("support-bundle/{part}").as_str()),
            "{part} missing from {names:?}"
        );
    }
    let keys = private_key_lines(local);
    for (name, text) in &entries {
        for secret in [STORED_PASSWORD, FLAG_PASSWORD, ENV_PASSWORD, "PRIVATE KEY"] {
            assert!(!text.contains(secret), "{name} holds {secret:?}:\n{text}");
        }
        for line in &keys {
            assert!(!text.contains(line.as_str()), "{name} holds a private key");
        }
    }
    let text = |part: &str| {
        entries
            .iter()
            .find(|(n, _)| n == &format!("support-bundle/{part}"))
            .map(|(_, t)| t.clone())
            .unwrap()
    };
    let settings: serde_json::Value = serde_json::from_str(&text("settings.json")).unwrap();
    assert_eq!(settings["server_id"], local.id.to_string());
    assert!(
        settings["proxy"].as_str().unwrap().contains("alice:***@"),
        "{settings}"
    );
    assert!(text("status.txt").contains(&local.id.to_string()));
    let diagnosis: serde_json::Value = serde_json::from_str(&text("diagnose.json")).unwrap();
    assert!(diagnosis["checks"].is_array(), "{diagnosis}");
    let attempts: serde_json::Value = serde_json::from_str(&text("sync-attempts.json")).unwrap();
    assert!(
        attempts["last_attempt_error"].is_string(),
        "the failed attempt and its error: {attempts}"
    );
    let report: serde_json::Value = serde_json::from_str(&text("report.json")).unwrap();
    assert_eq!(report["features"][0]["feature"], "cad", "{report}");
    let log = text("log.txt");
    assert!(
        !log.contains("no log file") && log.lines().count() > 1,
        "recent log lines of serve:\n{log}"
    );
}

#[actix_rt::test]
async fn a_support_bundle_holds_every_part_and_no_secret() -> TestResult {
    let mut local = Local::offline();
    // Reinstall with a stored proxy that has a password (nothing answers on it).
    let proxy = format!(
        "http://alice:{STORED_PASSWORD}@127.0.0.1:{}",
        closed_port().unwrap()
    );
    let main = format!("https://127.0.0.1:{}", closed_port().unwrap());
    let extra = ["--force", "--proxy", &proxy];
    assert_success(&local.init(&[&main], local.data_dir(), &extra));
    assert_success(&local.import(&local.license_file(1, Utc::now(), vec![license("cad", 2)])));
    local.serve(&[], &[("RUST_LOG", "info")]);
    let http = client();
    checked_out(&http, &local, "cad").await;

    // A failed synchronization (nothing answers on the proxy): the bundle shows it.
    let failed = local.cli(&["sync"]);
    assert_eq!(
        failed.status.code(),
        Some(i32::from(exit::TEMPORARY)),
        "{}",
        stderr(&failed)
    );

    // The command line, with a proxy flag and a proxy in the environment.
    let file = local.data_dir().join("bundle.tar.gz");
    let flag = format!(
        "http://bob:{FLAG_PASSWORD}@127.0.0.1:{}",
        closed_port().unwrap()
    );
    let env_proxy = format!(
        "http://carol:{ENV_PASSWORD}@127.0.0.1:{}",
        closed_port().unwrap()
    );
    let out = local.cli_env(
        &["support-bundle", "--proxy", &flag, file.to_str().unwrap()],
        &[("HTTPS_PROXY", &env_proxy)],
    );
    assert_success(&out);
    assert!(stdout(&out).contains("log.txt"), "{}", stdout(&out));
    let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the bundle is the customer's own file");
    assert_complete_and_without_secrets(&local, &std::fs::read(&file)?);

    // The manager page's button.
    let mut resp = manager_request(&http, &local, "POST", "support-bundle")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/gzip"
    );
    let disposition = resp
        .headers()
        .get("content-disposition")
        .unwrap()
        .to_str()?
        .to_owned();
    assert!(
        disposition.contains(&format!("support-bundle-{}.tar.gz", local.id)),
        "{disposition}"
    );
    let bytes = resp.body().limit(16 << 20).await?;
    assert_complete_and_without_secrets(&local, &bytes);

    // Without the manager header, nothing (a cross-site form cannot fetch it).
    let resp = http
        .post(local.url("/manager/v1/support-bundle"))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 401);
    Ok(())
}

/// The parts of the status a synchronization attempt changes.
fn sync_fields(local: &Local) -> serde_json::Value {
    local.status_fields(&[
        "last_sync_at",
        "license_file_sequence",
        "last_attempt_at",
        "last_attempt_error",
        "consecutive_failures",
    ])
}

#[test]
fn a_bundle_that_cannot_be_written_is_refused_before_anything_runs() {
    let local = Local::imported(vec![license("cad", 1)]);
    let before = sync_fields(&local);
    let here = local.data_dir();
    let a_file = here.join("a-file");
    std::fs::write(&a_file, "x").unwrap();
    let locked = here.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    // Root writes into a folder whatever its mode: that case is then not a refusal.
    let locked_is_locked = std::fs::write(locked.join("probe"), "x").is_err();

    let mut cases = vec![
        (
            here.join("missing/b.tar.gz"),
            format!(
                "the folder {} does not exist",
                here.join("missing").display()
            ),
        ),
        (here.to_path_buf(), "it is a folder".to_owned()),
        (
            a_file.join("b.tar.gz"),
            format!("{} is not a folder", a_file.display()),
        ),
    ];
    if locked_is_locked {
        cases.push((
            locked.join("b.tar.gz"),
            format!("the folder {} cannot be written to", locked.display()),
        ));
    }
    for (path, why) in cases {
        let out = local.cli(&["support-bundle", path.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(i32::from(exit::FAILED)), "{err}");
        let expected = format!(
            "error: cannot write the support bundle to {}: {why}",
            path.display()
        );
        assert!(
            err.starts_with(&expected),
            "expected {expected:?} in:\n{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        // Neither the temporary file's name nor the OS error's code.
        assert!(
            !err.contains(".b.tar.gz.") && !err.contains("os error"),
            "{err}"
        );
        // No synchronization was attempted: the status is as it was.
        assert_eq!(sync_fields(&local), before, "{}", path.display());
    }
    let leftovers: Vec<_> = std::fs::read_dir(here)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The sync data's file is checked the same way.
    let out = local.cli(&[
        "export-sync-data",
        here.join("missing/s.txt").to_str().unwrap(),
    ]);
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "error: cannot write the sync data to {}: the folder {} does not exist",
            here.join("missing/s.txt").display(),
            here.join("missing").display()
        )
    );
}
