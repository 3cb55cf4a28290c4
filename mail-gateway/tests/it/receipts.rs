//! Installation receipts mailed to licensing@: the gateway finds the receipt, the main
//! server verifies it with the id's bound key pair and records which license file the
//! server holds, and the sender is told; a receipt signed by another key pair is
//! refused and changes nothing.

use shared_proto::messages::MESSAGE_VERSION;
use shared_proto::receipt::{self, Receipt};
use shared_proto::{LicenseFile, ServerIdentity};

use crate::helpers::{main_and_gateway, send_mail, sync_data, sync_mail};

const OPS: &str = "ops@acme.example";

/// The receipt `local-server import-license-file --receipt` writes for `file`.
fn receipt_of(identity: &ServerIdentity, file: &LicenseFile) -> String {
    let json = serde_json::to_vec(file).unwrap();
    let made = Receipt {
        version: MESSAGE_VERSION,
        server_id: file.server_id,
        sequence: file.sequence,
        revision: file.revision,
        license_file_sha256: shared_proto::hex::encode(&openssl::sha::sha256(&json)),
        installed_at: chrono::Utc::now(),
        public_keys: identity.public_keys(),
    };
    receipt::seal(identity, &made).unwrap()
}

#[test]
fn a_mailed_receipt_records_the_installed_license_file() {
    let (_root, main, gw) = main_and_gateway(&[]);
    let (_, server_id) = main.customer_with_server(&[OPS]);
    let identity = ServerIdentity::generate().unwrap();
    send_mail(
        gw.smtp(),
        OPS,
        &sync_mail(OPS, "sync-1@acme.example", &sync_data(&identity, server_id)),
    );
    let replies = gw.wait_replies(1);
    let (_, content) = &replies[0].attachments[0];
    let file =
        shared_proto::license_file::open(content, &identity, &main.solme_key(), server_id).unwrap();

    // Signed by a key pair that is not the bound one: refused, nothing recorded.
    let stranger = ServerIdentity::generate().unwrap();
    send_mail(
        gw.smtp(),
        OPS,
        &sync_mail(OPS, "forged@acme.example", &receipt_of(&stranger, &file)),
    );
    let replies = gw.wait_replies(2);
    let refused = &replies[1];
    assert_eq!(refused.answers(), Some("forged@acme.example"));
    assert!(
        refused.text.contains("not the one bound"),
        "{}",
        refused.text
    );
    let (_, installed) = main.admin(
        "GET",
        &format!("/admin/v1/servers/{server_id}/installation"),
        None,
    );
    assert!(installed["held_sequence"].is_null(), "{installed}");

    send_mail(
        gw.smtp(),
        OPS,
        &sync_mail(OPS, "receipt-1@acme.example", &receipt_of(&identity, &file)),
    );
    let replies = gw.wait_replies(3);
    let thanks = &replies[2];
    assert_eq!(thanks.answers(), Some("receipt-1@acme.example"));
    assert!(
        thanks
            .text
            .contains(&format!("installed license file #{}", file.sequence)),
        "{}",
        thanks.text
    );
    assert!(thanks.attachments.is_empty());
    let (_, installed) = main.admin(
        "GET",
        &format!("/admin/v1/servers/{server_id}/installation"),
        None,
    );
    assert_eq!(installed["held_sequence"], file.sequence, "{installed}");
    assert_eq!(installed["confirmed_by"], "receipt", "{installed}");
    let (_, audit) = main.admin("GET", "/admin/v1/audit?limit=100", None);
    let receipts = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "server.receipt")
        .count();
    assert_eq!(receipts, 1, "{audit}");
    let detail = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "server.receipt")
        .and_then(|e| e["detail"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains(&format!("mailed by {OPS}")), "{detail}");
}
