//! `import-license-file`: what is accepted, what is refused, and that a refusal
//! changes nothing.

use chrono::Utc;
use shared_proto::{ServerIdentity, SolmeSigningKey};
use uuid::Uuid;

use crate::helpers::*;
use shared_proto::exit;

/// A main-server address for installations that never synchronize.
const SOLME_EXAMPLE: &str = "https://licensing.solme.example";

/// The parts of the status an import may change.
fn state_of(local: &Local) -> serde_json::Value {
    local.status_fields(&[
        "license_file_sequence",
        "valid_until",
        "features",
        "last_sync_at",
    ])
}

/// Asserts that `out` is a refusal (exit 1) naming one of `codes`: which one depends
/// on where the damage falls.
fn refused_with_one_of(out: &std::process::Output, codes: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    assert!(
        codes.iter().any(|c| stderr(out).contains(c)),
        "{}",
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
    assert_eq!(before["license_file_sequence"], 5);

    // Tampered: one character of the body changed.
    let good = local.license_file(6, now, vec![license("cad", 50)]);
    let out = local.import(&tampered(&good));
    refused_with_one_of(&out, &["MALFORMED", "BAD_SIGNATURE", "WRONG_SERVER"]);
    assert_eq!(state_of(&local), before);

    // Signed by another key than Solme's.
    let identity = ServerIdentity::load(local.data_dir()).unwrap();
    let forger = SolmeSigningKey::generate().unwrap();
    let mut file = shared_proto::LicenseFile {
        customer: "Mallory".into(),
        ..local.license_file_contents(7, now, vec![license("cad", 99)])
    };
    let forged = seal(&forger, &file, &identity);
    assert_stderr(&local.import(&forged), 1, "BAD_SIGNATURE");
    assert_eq!(state_of(&local), before);

    // Made for another server (another id and key pair).
    let other = ServerIdentity::generate().unwrap();
    file.server_id = Uuid::new_v4();
    file.recipient = other.fingerprint();
    let foreign = seal(local.solme.as_ref().unwrap(), &file, &other);
    refused_with_one_of(&local.import(&foreign), &["WRONG_SERVER", "MALFORMED"]);
    assert_eq!(state_of(&local), before);

    // For this key pair but another id.
    file.recipient = identity.fingerprint();
    let wrong_id = seal(local.solme.as_ref().unwrap(), &file, &identity);
    assert_stderr(&local.import(&wrong_id), 1, "WRONG_SERVER");

    // Older than, or the same as, the one installed.
    assert_stderr(
        &local.import(&local.license_file(4, now, vec![license("cad", 9)])),
        1,
        "OLDER_LICENSE_FILE",
    );
    assert_stderr(
        &local.import(&local.license_file(5, now, vec![license("cad", 9)])),
        1,
        "OLDER_LICENSE_FILE",
    );
    // Not a license file at all.
    assert_stderr(&local.import("hello"), 1, "MALFORMED");
    assert_eq!(state_of(&local), before);

    // A newer one goes in, and says what changed.
    let out = local.import(&local.license_file(8, now, vec![license("cad", 3), license("viz", 1)]));
    assert_success(&out);
    let printed = stdout(&out);
    assert!(printed.contains("changed  cad: 5 -> 3 seats"), "{printed}");
    assert!(printed.contains("removed  cam"), "{printed}");
    assert!(printed.contains("added    viz: 1 seat ("), "{printed}");
    assert_eq!(state_of(&local)["license_file_sequence"], 8);
}

#[test]
fn init_refuses_to_replace_an_identity_without_force() {
    let local = Local::offline();
    let fingerprint = local.status()["fingerprint"].clone();
    let out = local.init(&[SOLME_EXAMPLE], local.data_dir(), &[]);
    assert_stderr(&out, 1, "--force");
    assert_eq!(local.status()["fingerprint"], fingerprint);

    assert_success(&local.init(&[SOLME_EXAMPLE], local.data_dir(), &["--force"]));
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
    assert_stderr(&out, 1, "already running");
    let fingerprint = local.status()["fingerprint"].clone();
    let out = local.init(&[SOLME_EXAMPLE], local.data_dir(), &["--force"]);
    assert_stderr(&out, 1, "while `serve` runs");
    assert_eq!(
        local.status()["fingerprint"],
        fingerprint,
        "nothing changed"
    );
    // Once it stops, the lock is free again.
    local.stop();
    assert_success(&local.init(&[SOLME_EXAMPLE], local.data_dir(), &["--force"]));
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
    assert_eq!(
        out.status.code(),
        Some(i32::from(exit::TEMPORARY)),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("busy"), "{}", stderr(&out));
    holder.batch_execute("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(state_of(&local), before);

    assert_success(&local.import(&file));
    assert_eq!(state_of(&local)["license_file_sequence"], 3);
}
