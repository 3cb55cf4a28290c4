//! `import-license-file`: what is accepted, what is refused, and that a refusal
//! changes nothing.

use chrono::Utc;
use shared_proto::{ServerIdentity, SolmeSigningKey};
use uuid::Uuid;

use crate::helpers::*;

/// The parts of the status an import may change.
fn state_of(local: &Local) -> serde_json::Value {
    let s = local.status();
    serde_json::json!({
        "seq": s["license_file_sequence"],
        "until": s["valid_until"],
        "features": s["features"],
        "last": s["last_sync_at"],
    })
}

fn refused_with(out: &std::process::Output, code: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    assert!(
        stderr(out).contains(code),
        "expected {code}: {}",
        stderr(out)
    );
}

#[test]
fn import_prints_the_changes_and_refuses_bad_files_without_changing_anything() {
    let local = Local::offline();
    let now = Utc::now();
    let out = local.import(&local.license_file(5, now, vec![license("cad", 5), license("cam", 2)]));
    assert_success(&out);
    let printed = stdout(&out);
    assert!(printed.contains("added    cad: 5 seats"), "{printed}");
    assert!(printed.contains("added    cam: 2 seats"), "{printed}");
    let before = state_of(&local);
    assert_eq!(before["seq"], 5);

    // Tampered: one character of the body changed.
    let good = local.license_file(6, now, vec![license("cad", 50)]);
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    let body_line = lines
        .iter()
        .position(|l| l.len() > 40 && !l.contains(':'))
        .unwrap();
    let mut chars: Vec<char> = lines[body_line].chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    lines[body_line] = chars.into_iter().collect();
    let out = local.import(&lines.join("\n"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        ["MALFORMED", "BAD_SIGNATURE", "WRONG_SERVER"]
            .iter()
            .any(|c| stderr(&out).contains(c)),
        "{}",
        stderr(&out)
    );
    assert_eq!(state_of(&local), before);

    // Signed by another key than Solme's.
    let identity = ServerIdentity::load(local.data_dir()).unwrap();
    let forger = SolmeSigningKey::generate().unwrap();
    let mut file = shared_proto::LicenseFile {
        version: shared_proto::messages::MESSAGE_VERSION,
        server_id: local.id,
        answers_request: Uuid::new_v4(),
        recipient: identity.fingerprint(),
        sequence: 7,
        revision: 7,
        issued_at: now,
        valid_until: shared_proto::validity::valid_until_for(now),
        customer: "Mallory".into(),
        licenses: vec![license("cad", 99)],
    };
    let forged = shared_proto::license_file::seal(&forger, &file, &identity.public_keys()).unwrap();
    refused_with(&local.import(&forged), "BAD_SIGNATURE");
    assert_eq!(state_of(&local), before);

    // Made for another server (another id and key pair).
    let other = ServerIdentity::generate().unwrap();
    file.server_id = Uuid::new_v4();
    file.recipient = other.fingerprint();
    let foreign = shared_proto::license_file::seal(
        local.solme.as_ref().unwrap(),
        &file,
        &other.public_keys(),
    )
    .unwrap();
    let out = local.import(&foreign);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        ["WRONG_SERVER", "MALFORMED"]
            .iter()
            .any(|c| stderr(&out).contains(c)),
        "{}",
        stderr(&out)
    );
    assert_eq!(state_of(&local), before);

    // For this key pair but another id.
    file.recipient = identity.fingerprint();
    let wrong_id = shared_proto::license_file::seal(
        local.solme.as_ref().unwrap(),
        &file,
        &identity.public_keys(),
    )
    .unwrap();
    refused_with(&local.import(&wrong_id), "WRONG_SERVER");

    // Older than, or the same as, the one installed.
    refused_with(
        &local.import(&local.license_file(4, now, vec![license("cad", 9)])),
        "OLDER_LICENSE_FILE",
    );
    refused_with(
        &local.import(&local.license_file(5, now, vec![license("cad", 9)])),
        "OLDER_LICENSE_FILE",
    );
    // Not a license file at all.
    refused_with(&local.import("hello"), "MALFORMED");
    assert_eq!(state_of(&local), before);

    // A newer one goes in, and says what changed.
    let out = local.import(&local.license_file(8, now, vec![license("cad", 3), license("viz", 1)]));
    assert_success(&out);
    let printed = stdout(&out);
    assert!(printed.contains("changed  cad: 5 -> 3 seats"), "{printed}");
    assert!(printed.contains("removed  cam"), "{printed}");
    assert!(printed.contains("added    viz: 1 seats"), "{printed}");
    assert_eq!(state_of(&local)["seq"], 8);
}

#[test]
fn init_refuses_to_replace_an_identity_without_force() {
    let local = Local::offline();
    let fingerprint = local.status()["fingerprint"].clone();
    let key = local.data_dir().join("solme-public.pem");
    let ca = local.data_dir().join("ca.pem");
    let args = |force: bool| {
        let mut a = vec![
            "init".to_owned(),
            "--id".into(),
            local.id.to_string(),
            "--main-server".into(),
            "https://licensing.solme.example".into(),
            "--solme-key".into(),
            key.to_str().unwrap().into(),
            "--ca-cert".into(),
            ca.to_str().unwrap().into(),
        ];
        if force {
            a.push("--force".into());
        }
        a
    };
    let refs = args(false);
    let out = local.cli(&refs.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(local.status()["fingerprint"], fingerprint);

    let refs = args(true);
    assert_success(&local.cli(&refs.iter().map(String::as_str).collect::<Vec<_>>()));
    let status = local.status();
    assert_ne!(
        status["fingerprint"], fingerprint,
        "a reinstall makes a new key pair"
    );
    assert_eq!(
        status["main_server"],
        serde_json::json!([
            "https://licensing.solme.example:443",
            "https://licensing.solme.example:8080"
        ])
    );
    // Private keys, the database (proxy credentials) and the directory itself are
    // the owner's only.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(local.data_dir()), 0o700);
    assert_eq!(mode(&local.data_dir().join("local.db")), 0o600);
    for f in ["server-signing.pem", "server-encryption.pem"] {
        let mode = std::fs::metadata(local.data_dir().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{f} is {mode:o}");
    }
}

#[test]
fn usage_errors_exit_2_and_missing_installation_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(local_bin())
        .args(["auto-sync", "--data-dir"])
        .arg(dir.path())
        .arg("hourly")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = std::process::Command::new(local_bin())
        .args(["status", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("init"), "{}", stderr(&out));
}

#[test]
fn one_serve_per_data_directory_and_no_reinstall_while_it_runs() {
    let mut local = Local::offline_serving();
    let out = local.cli(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));
    let key = local.data_dir().join("solme-public.pem");
    let ca = local.data_dir().join("ca.pem");
    let id = local.id.to_string();
    let reinstall = [
        "init",
        "--id",
        &id,
        "--main-server",
        "https://licensing.solme.example",
        "--solme-key",
        key.to_str().unwrap(),
        "--ca-cert",
        ca.to_str().unwrap(),
        "--force",
    ];
    let fingerprint = local.status()["fingerprint"].clone();
    let out = local.cli(&reinstall);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("while `serve` runs"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        local.status()["fingerprint"],
        fingerprint,
        "nothing changed"
    );
    // Once it stops, the lock is free again.
    local.stop();
    assert_success(&local.cli(&reinstall));
}

/// A database another process holds locked is a temporary failure: the verb exits 75,
/// says so, and changes nothing; once the lock is gone the same file imports.
#[test]
fn import_while_another_process_locks_the_database_is_temporary() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;

    let local = Local::offline();
    let file = local.license_file(3, Utc::now(), vec![license("cad", 5)]);
    let before = state_of(&local);

    let db = local.data_dir().join("local.db");
    let mut holder = diesel::SqliteConnection::establish(db.to_str().unwrap()).unwrap();
    holder.batch_execute("BEGIN EXCLUSIVE").unwrap();
    let out = local.import(&file);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(stderr(&out).contains("busy"), "{}", stderr(&out));
    holder.batch_execute("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(state_of(&local), before);

    assert_success(&local.import(&file));
    assert_eq!(state_of(&local)["seq"], 3);
}
