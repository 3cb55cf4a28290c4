//! License files: a [`LicenseFile`] signed by Solme, then encrypted to the one local
//! server that asked for it, in armored text.
//!
//! Sign-then-encrypt: only the recipient can read the file, and the signature inside
//! proves Solme made it. The signed content also names the recipient's fingerprint
//! and id, so a file re-encrypted to another server is still refused there.

use uuid::Uuid;

use crate::armor::{self, ArmorKind};
use crate::envelope::{self, Kind};
use crate::error::ProtoError;
use crate::keys::{ServerIdentity, ServerPublicKeys, SolmePublicKey, SolmeSigningKey};
use crate::messages::{LicenseFile, MESSAGE_VERSION};

/// Signs `file` with Solme's key, encrypts it to `recipient`, and armors it.
pub fn seal(
    solme: &SolmeSigningKey,
    file: &LicenseFile,
    recipient: &ServerPublicKeys,
) -> Result<String, ProtoError> {
    if file.recipient != recipient.fingerprint() {
        return Err(ProtoError::Malformed(
            "the license file must name the fingerprint of the server it is encrypted to".into(),
        ));
    }
    let signed = envelope::sign_json(Kind::LicenseFile, "the license file", file, solme.key())?;
    let sealed = envelope::seal(&recipient.encryption, &signed)?;
    Ok(armor::encode(
        ArmorKind::LicenseFile,
        &[
            ("Server-Id", file.server_id.to_string()),
            ("Issued", file.issued_at.to_rfc3339()),
            ("Valid-Until", file.valid_until.to_rfc3339()),
            ("Sequence", file.sequence.to_string()),
        ],
        &sealed,
    ))
}

/// Decrypts and verifies a license file for the server `identity` with id
/// `expected_server_id`. Comparing its sequence with the one held is the caller's job.
pub fn open(
    text: &str,
    identity: &ServerIdentity,
    solme: &SolmePublicKey,
    expected_server_id: Uuid,
) -> Result<LicenseFile, ProtoError> {
    let armored = armor::decode(text, ArmorKind::LicenseFile)?;
    let signed = envelope::open(identity.encryption_key(), &armored.body)?;
    let unverified = envelope::parse(Kind::LicenseFile, &signed)?;
    let payload = unverified.verify(solme.key()?).map_err(|_| {
        ProtoError::BadSignature(
            "the license file is not signed by Solme's key: it cannot be trusted".into(),
        )
    })?;
    let file: LicenseFile = serde_json::from_slice(payload)
        .map_err(|e| ProtoError::Malformed(format!("the license file is damaged: {e}")))?;
    if file.version != MESSAGE_VERSION {
        return Err(ProtoError::UnsupportedVersion(file.version));
    }
    if file.server_id != expected_server_id {
        return Err(ProtoError::WrongServer(format!(
            "this license file is for license server id {}, not for this server ({expected_server_id})",
            file.server_id
        )));
    }
    if file.recipient != identity.fingerprint() {
        return Err(ProtoError::WrongServer(
            "this license file was made for another key pair of this id; \
             synchronize again to get one for this server"
                .into(),
        ));
    }
    Ok(file)
}

/// The signed content of a license file for `identity` (decrypted, signature not yet
/// checked): what a primary hands its standby, which checks it with
/// [`open_standby_copy`]. Solme's signature inside is what the standby trusts, not the
/// primary.
pub fn signed_content(text: &str, identity: &ServerIdentity) -> Result<Vec<u8>, ProtoError> {
    let armored = armor::decode(text, ArmorKind::LicenseFile)?;
    envelope::open(identity.encryption_key(), &armored.body)
}

/// Verifies the signed content of the primary's license file (from
/// [`signed_content`]) on the standby whose fingerprint is `own`: signed by Solme, for
/// `expected_server_id`, and naming `own` as the pair's standby.
pub fn open_standby_copy(
    signed: &[u8],
    own: &crate::keys::Fingerprint,
    solme: &SolmePublicKey,
    expected_server_id: Uuid,
) -> Result<LicenseFile, ProtoError> {
    let payload = envelope::parse(Kind::LicenseFile, signed)?
        .verify(solme.key()?)
        .map_err(|_| {
            ProtoError::BadSignature(
                "the primary's license file is not signed by Solme's key: it cannot be trusted"
                    .into(),
            )
        })?;
    let file: LicenseFile = serde_json::from_slice(payload)
        .map_err(|e| ProtoError::Malformed(format!("the license file is damaged: {e}")))?;
    if file.version != MESSAGE_VERSION {
        return Err(ProtoError::UnsupportedVersion(file.version));
    }
    if file.server_id != expected_server_id {
        return Err(ProtoError::WrongServer(format!(
            "the primary's license file is for license server id {}, not for this pair \
             ({expected_server_id})",
            file.server_id
        )));
    }
    match &file.standby {
        Some(terms) if &terms.fingerprint == own => Ok(file),
        Some(_) => Err(ProtoError::WrongServer(
            "the primary's license file names another standby server: Solme has not \
             registered this one yet (the primary registers it with its next sync)"
                .into(),
        )),
        None => Err(ProtoError::WrongServer(
            "the primary's license file names no standby server yet: the primary \
             registers this one with its next sync"
                .into(),
        )),
    }
}

/// The informative headers of an armored license file (not verified: display only).
pub fn peek_headers(text: &str) -> Result<Vec<(String, String)>, ProtoError> {
    Ok(armor::decode(text, ArmorKind::LicenseFile)?.headers)
}
