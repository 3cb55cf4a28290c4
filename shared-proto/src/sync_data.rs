//! Sync data: a [`SyncRequest`] signed by the local server, in armored text.
//!
//! The same text is the body of a direct sync (`POST /api/v1/sync`) and the file a
//! customer mails to licensing@, so both channels share one verification path.

use crate::armor::{self, ArmorKind};
use crate::envelope::{self, Kind};
use crate::error::ProtoError;
use crate::keys::{Fingerprint, ServerIdentity};
use crate::messages::{check_usage, SyncRequest, MESSAGE_VERSION};

/// A sync request whose signature holds for the key it presents.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedSyncRequest {
    pub request: SyncRequest,
    /// Fingerprint of the presented key pair (what gets bound to the id).
    pub fingerprint: Fingerprint,
}

/// Signs `request` with `identity` and returns the armored sync data.
pub fn seal(identity: &ServerIdentity, request: &SyncRequest) -> Result<String, ProtoError> {
    if request.public_keys != identity.public_keys() {
        return Err(ProtoError::Malformed(
            "the sync request must carry the public keys of the identity that signs it".into(),
        ));
    }
    let signed = envelope::sign_json(
        Kind::SyncRequest,
        "the sync request",
        request,
        identity.signing_key(),
    )?;
    Ok(armor::encode(
        ArmorKind::SyncData,
        &[
            ("Server-Id", request.server_id.to_string()),
            ("Request-Id", request.request_id.to_string()),
            ("Created", request.created_at.to_rfc3339()),
        ],
        &signed,
    ))
}

/// Reads armored sync data and verifies its signature against the key it presents.
/// Binding that key to the id (or not) is the main server's decision.
pub fn open(text: &str) -> Result<VerifiedSyncRequest, ProtoError> {
    let armored = armor::decode(text, ArmorKind::SyncData)?;
    let unverified = envelope::parse(Kind::SyncRequest, &armored.body)?;
    let request: SyncRequest = serde_json::from_slice(unverified.payload())
        .map_err(|e| ProtoError::Malformed(format!("the sync data is damaged: {e}")))?;
    if request.version != MESSAGE_VERSION {
        return Err(ProtoError::UnsupportedVersion(request.version));
    }
    unverified.verify(&request.public_keys.signing_key()?)?;
    check_usage(&request.usage).map_err(ProtoError::Malformed)?;
    if let Some(borrows) = &request.borrows {
        crate::borrows::check(borrows).map_err(ProtoError::Malformed)?;
    }
    // The answer is sealed to this key: refuse now a key nothing can be sealed to, so
    // the main server never records a sync it then cannot answer.
    envelope::check_recipient(&request.public_keys.encryption)?;
    let fingerprint = request.public_keys.fingerprint();
    Ok(VerifiedSyncRequest {
        request,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    /// Sync data signed by `identity` but presenting `encryption` as its X25519 key
    /// (`seal` refuses that mismatch, so the text is built by hand).
    fn with_encryption_key(identity: &ServerIdentity, encryption: [u8; 32]) -> String {
        let mut public_keys = identity.public_keys();
        public_keys.encryption = encryption;
        let request = SyncRequest {
            version: MESSAGE_VERSION,
            server_id: Uuid::new_v4(),
            request_id: Uuid::new_v4(),
            created_at: Utc::now(),
            public_keys,
            held_revision: None,
            held_sequence: None,
            software_version: "test".into(),
            usage: vec![],
            usage_since: None,
            held_file_sha256: None,
            request_counter: None,
            borrows: None,
            standby_keys: None,
        };
        let signed = envelope::sign_json(
            Kind::SyncRequest,
            "the sync request",
            &request,
            identity.signing_key(),
        )
        .unwrap();
        armor::encode(ArmorKind::SyncData, &[], &signed)
    }

    #[test]
    fn a_low_order_encryption_key_is_refused_as_malformed() {
        let identity = ServerIdentity::generate().unwrap();
        // All zeros, and the order-4 point with u = 1.
        let mut one = [0u8; 32];
        one[0] = 1;
        for key in [[0u8; 32], one] {
            let err = open(&with_encryption_key(&identity, key)).unwrap_err();
            assert!(matches!(err, ProtoError::Malformed(_)), "{err:?}");
            assert!(!err.is_internal());
        }
        // The identity's own key still passes through the same path.
        let text = with_encryption_key(&identity, identity.public_keys().encryption);
        assert!(open(&text).is_ok());
    }
}
