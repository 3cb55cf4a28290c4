//! Installation receipts: a local server's signed statement that it installed a license
//! file (`local-server import-license-file --receipt FILE`), in armored text. The
//! customer uploads it in the portal or mails it to licensing@, and the main server then
//! knows which license file the server holds without waiting for its next sync.
//!
//! A receipt is signed by the server's own Ed25519 key under its own envelope kind
//! ([`Kind::Receipt`]), so it can never pass for sync data and sync data never for a
//! receipt. It presents the keys it is signed with; whether they are the ones bound to
//! the id is the main server's decision, as with sync data.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::armor::{self, ArmorKind};
use crate::envelope::{self, Kind};
use crate::error::ProtoError;
use crate::keys::{Fingerprint, ServerIdentity, ServerPublicKeys};
use crate::messages::MESSAGE_VERSION;

/// What a receipt states.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub version: u32,
    pub server_id: Uuid,
    /// The sequence of the license file installed.
    pub sequence: i64,
    /// The revision of the licenses that file carries.
    pub revision: i64,
    /// Hex SHA-256 of the installed file's signed content (what sync requests present
    /// as `held_file_sha256`).
    pub license_file_sha256: String,
    /// When the local server installed it (its own clock).
    pub installed_at: DateTime<Utc>,
    /// The keys the receipt is signed with.
    pub public_keys: ServerPublicKeys,
}

/// `POST /admin/v1/mail/receipt`: a receipt mailed to licensing@, from `sender`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MailReceipt {
    pub sender: String,
    /// The armored receipt as found in the mail.
    pub receipt: String,
}

/// A receipt the main server accepted (recorded now, or already before).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReceiptRecorded {
    pub server_id: Uuid,
    /// The license file the receipt confirms.
    pub sequence: i64,
    /// When the local server installed it.
    pub installed_at: DateTime<Utc>,
    /// False when the same receipt was recorded before (a mail sent twice).
    pub newly_recorded: bool,
}

/// `GET /admin/v1/installations`: which license file an id's local server is known to
/// hold against the newest issued (from receipts and from the held sequence every
/// sync request carries).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Installation {
    pub server_id: Uuid,
    pub customer_id: Uuid,
    /// The customer's name (empty from a main server older than this field).
    #[serde(default)]
    pub customer_name: String,
    /// Sequence of the newest license file issued (0: none yet).
    pub issued_sequence: i64,
    /// When it was issued.
    pub issued_at: Option<DateTime<Utc>>,
    /// The newest license file the local server confirmed holding (null: none).
    pub held_sequence: Option<i64>,
    /// When the file it holds was issued.
    pub held_issued_at: Option<DateTime<Utc>>,
    /// When the local server installed it (from a receipt; null when only a sync
    /// request said it held the file).
    pub installed_at: Option<DateTime<Utc>>,
    /// When Solme learned it: the receipt's arrival or the request's making.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// How Solme learned it: `receipt` or `sync`.
    pub confirmed_by: Option<String>,
    /// Whether licenses changed after the file the server holds was issued (or it holds
    /// none and has licenses): changes not yet installed.
    pub changes_not_installed: bool,
    /// The state in words: "license file #4 issued on 2026-12-01, installed on
    /// 2026-12-02" or "license file #4 issued on 2026-12-01, not yet installed".
    pub summary: String,
}

/// A receipt whose signature holds for the key it presents.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedReceipt {
    pub receipt: Receipt,
    /// Fingerprint of the presented key pair (to compare with the one bound to the id).
    pub fingerprint: Fingerprint,
}

/// Signs `receipt` with `identity` and returns the armored receipt.
pub fn seal(identity: &ServerIdentity, receipt: &Receipt) -> Result<String, ProtoError> {
    if receipt.public_keys != identity.public_keys() {
        return Err(ProtoError::Malformed(
            "the receipt must carry the public keys of the identity that signs it".into(),
        ));
    }
    let signed = envelope::sign_json(
        Kind::Receipt,
        "the installation receipt",
        receipt,
        identity.signing_key(),
    )?;
    Ok(armor::encode(
        ArmorKind::Receipt,
        &[
            ("Server-Id", receipt.server_id.to_string()),
            ("Sequence", receipt.sequence.to_string()),
            ("Installed", receipt.installed_at.to_rfc3339()),
        ],
        &signed,
    ))
}

/// Reads an armored receipt and verifies its signature against the key it presents.
pub fn open(text: &str) -> Result<VerifiedReceipt, ProtoError> {
    let armored = armor::decode(text, ArmorKind::Receipt)?;
    let unverified = envelope::parse(Kind::Receipt, &armored.body)?;
    let receipt: Receipt = serde_json::from_slice(unverified.payload()).map_err(|_| {
        ProtoError::Malformed(
            "the installation receipt is damaged: its content cannot be read".into(),
        )
    })?;
    if receipt.version != MESSAGE_VERSION {
        return Err(ProtoError::UnsupportedVersion(receipt.version));
    }
    unverified.verify(&receipt.public_keys.signing_key()?)?;
    let valid_hash = receipt.license_file_sha256.len() == 64
        && receipt
            .license_file_sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if receipt.sequence < 1 || receipt.revision < 0 || !valid_hash {
        return Err(ProtoError::Malformed(
            "the installation receipt is damaged: it names no license file".into(),
        ));
    }
    let fingerprint = receipt.public_keys.fingerprint();
    Ok(VerifiedReceipt {
        receipt,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(identity: &ServerIdentity) -> Receipt {
        Receipt {
            version: MESSAGE_VERSION,
            server_id: Uuid::new_v4(),
            sequence: 3,
            revision: 2,
            license_file_sha256: "ab".repeat(32),
            installed_at: Utc::now(),
            public_keys: identity.public_keys(),
        }
    }

    #[test]
    fn a_receipt_opens_with_the_key_it_was_signed_with() {
        let identity = ServerIdentity::generate().unwrap();
        let made = receipt(&identity);
        let text = seal(&identity, &made).unwrap();
        assert!(text.starts_with("-----BEGIN SOLME INSTALLATION RECEIPT-----"));
        let opened = open(&text).unwrap();
        assert_eq!(opened.receipt, made);
        assert_eq!(opened.fingerprint, identity.fingerprint());
    }

    #[test]
    fn sync_data_is_no_receipt_and_a_receipt_no_sync_data() {
        let identity = ServerIdentity::generate().unwrap();
        let text = seal(&identity, &receipt(&identity)).unwrap();
        let err = crate::sync_data::open(&text).unwrap_err();
        assert!(err.to_string().contains("installation receipt"), "{err}");
        // The same signed bytes relabelled as sync data still say what they are.
        let body = armor::decode(&text, ArmorKind::Receipt).unwrap().body;
        let relabelled = armor::encode(ArmorKind::SyncData, &[], &body);
        let err = crate::sync_data::open(&relabelled).unwrap_err();
        assert!(matches!(err, ProtoError::Malformed(_)), "{err:?}");
    }

    #[test]
    fn an_altered_receipt_is_refused() {
        let identity = ServerIdentity::generate().unwrap();
        let mut made = receipt(&identity);
        let text = seal(&identity, &made).unwrap();
        let mut body = armor::decode(&text, ArmorKind::Receipt).unwrap().body;
        let middle = body.len() / 2;
        body[middle] ^= 1;
        let altered = armor::encode(ArmorKind::Receipt, &[], &body);
        assert!(open(&altered).is_err());
        // Signed by another key than the one it presents.
        let other = ServerIdentity::generate().unwrap();
        made.public_keys = other.public_keys();
        assert!(seal(&identity, &made).is_err());
    }
}
