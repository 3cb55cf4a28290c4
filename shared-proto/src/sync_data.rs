//! Sync data: a [`SyncRequest`] signed by the local server, in armored text.
//!
//! The same text is the body of a direct sync (`POST /api/v1/sync`) and the file a
//! customer mails to licensing@, so both channels share one verification path.

use crate::armor::{self, ArmorKind};
use crate::envelope::{self, Kind};
use crate::error::ProtoError;
use crate::keys::{Fingerprint, ServerIdentity};
use crate::messages::{SyncRequest, MESSAGE_VERSION};

/// A sync request whose signature holds for the key it presents.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    let payload = serde_json::to_vec(request)
        .map_err(|e| ProtoError::Malformed(format!("cannot encode the sync request: {e}")))?;
    let signed = envelope::sign(Kind::SyncRequest, &payload, identity.signing_key())?;
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
    let fingerprint = request.public_keys.fingerprint();
    Ok(VerifiedSyncRequest {
        request,
        fingerprint,
    })
}
