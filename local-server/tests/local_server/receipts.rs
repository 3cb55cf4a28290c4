//! `import-license-file --receipt`: after an import, a receipt signed by this server's
//! key names the file installed (its sequence, revision and checksum, and when); a
//! receipt that cannot be written is said before anything is imported.

use chrono::Utc;
use shared_proto::ServerIdentity;

use crate::helpers::{assert_success, license, seal, stderr, stdout, Local};

#[test]
fn an_import_with_receipt_writes_a_receipt_signed_by_this_server() {
    let local = Local::offline();
    let file = local.license_file_contents(3, Utc::now(), vec![license("cad", 5)]);
    let identity = ServerIdentity::load(local.data_dir()).unwrap();
    let text = seal(local.solme.as_ref().unwrap(), &file, &identity);
    let path = local.data_dir().join("license.txt");
    std::fs::write(&path, &text).unwrap();
    let receipt_path = local.data_dir().join("receipt.txt");
    let before = Utc::now();
    let out = local.cli(&[
        "import-license-file",
        path.to_str().unwrap(),
        "--receipt",
        receipt_path.to_str().unwrap(),
    ]);
    assert_success(&out);
    let printed = stdout(&out);
    assert!(
        printed.contains("Receipt for license file #3 written to"),
        "{printed}"
    );
    assert!(printed.contains("customer portal"), "{printed}");

    let written = std::fs::read_to_string(&receipt_path).unwrap();
    let opened = shared_proto::receipt::open(&written).unwrap();
    assert_eq!(opened.fingerprint, identity.fingerprint());
    let receipt = opened.receipt;
    assert_eq!(receipt.server_id, local.id);
    assert_eq!(receipt.sequence, 3);
    assert_eq!(receipt.revision, 3);
    assert!(receipt.installed_at >= before - chrono::Duration::seconds(1));
    // The checksum of the file installed: what the next sync requests present as held.
    let status = local.status();
    assert_eq!(status["license_file_sequence"], 3, "{status}");
    let signed = serde_json::to_vec(&file).unwrap();
    assert_eq!(
        receipt.license_file_sha256,
        shared_proto::hex::encode(&openssl::sha::sha256(&signed))
    );
}

#[test]
fn a_receipt_that_cannot_be_written_stops_the_import_before_it_starts() {
    let local = Local::offline();
    let text = local.license_file(2, Utc::now(), vec![license("cad", 5)]);
    let path = local.data_dir().join("license.txt");
    std::fs::write(&path, &text).unwrap();
    let nowhere = local.data_dir().join("no-such-folder").join("receipt.txt");
    let out = local.cli(&[
        "import-license-file",
        path.to_str().unwrap(),
        "--receipt",
        nowhere.to_str().unwrap(),
    ]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stderr(&out).contains("receipt"), "{}", stderr(&out));
    let status = local.status();
    assert!(
        status["license_file_sequence"].is_null(),
        "the license file was imported anyway: {status}"
    );
    // --receipt makes no sense with --dry-run: a usage error.
    let out = local.cli(&[
        "import-license-file",
        path.to_str().unwrap(),
        "--dry-run",
        "--receipt",
        nowhere.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
