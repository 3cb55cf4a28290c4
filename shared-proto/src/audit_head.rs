//! The signed audit head: the main server's statement "the audit chain had reached
//! this position with this hash", signed with Solme's key. An operator keeps it outside
//! the database; checking it later (`admin audit verify --head FILE`) shows whether the
//! chain up to that point is still the one that was signed, which catches a rewrite of
//! the whole chain that the chain alone cannot.
//!
//! Layout: the text `solme-audit-head-v1.` followed by the URL-safe base64 (no padding)
//! of a signed message of the envelope (kind 4, label `solme audit head v1`, see
//! [`crate::envelope`]) whose payload is the JSON of [`AuditHead`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::{self, Kind};
use crate::error::ProtoError;
use crate::keys::{SolmePublicKey, SolmeSigningKey};

/// The text every signed head starts with.
pub const HEAD_PREFIX: &str = "solme-audit-head-v1.";
/// What errors call it.
const WHAT: &str = "the signed audit head";
/// Longest signed head text accepted (the payload is about two hundred bytes).
pub const MAX_HEAD_LEN: usize = 4 * 1024;

/// Where the audit chain stood when the head was signed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    /// Position of the newest sealed entry; 0 while the chain is empty.
    pub chain_seq: u64,
    /// That entry's hash, lower-case hex SHA-256 (64 zeros for the empty chain).
    pub entry_hash: String,
    /// When that entry was written; `None` for the empty chain.
    pub at: Option<DateTime<Utc>>,
    /// When the main server signed this head.
    pub signed_at: DateTime<Utc>,
}

impl AuditHead {
    /// Signs the head with Solme's key; returns its text.
    pub fn sign(&self, key: &SolmeSigningKey) -> Result<String, ProtoError> {
        envelope::sign_line(Kind::AuditHead, HEAD_PREFIX, WHAT, self, key.key())
    }

    /// Finds the signed head in `text` (a saved `admin audit head` output: the line
    /// that starts with [`HEAD_PREFIX`]), checks its signature with Solme's public key
    /// and reads it.
    pub fn verify(text: &str, key: &SolmePublicKey) -> Result<Self, ProtoError> {
        if text.len() > MAX_HEAD_LEN {
            return Err(ProtoError::TooLarge {
                limit: MAX_HEAD_LEN,
            });
        }
        let body = text
            .lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(HEAD_PREFIX))
            .ok_or_else(|| {
                ProtoError::Malformed(format!(
                    "no signed audit head found: it is the line that starts with {HEAD_PREFIX}"
                ))
            })?;
        envelope::open_line(Kind::AuditHead, body, WHAT, key.key()?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn head() -> AuditHead {
        AuditHead {
            chain_seq: 42,
            entry_hash: "ab".repeat(32),
            at: Some(Utc::now()),
            signed_at: Utc::now(),
        }
    }

    #[test]
    fn a_head_round_trips_even_inside_saved_text() {
        let key = SolmeSigningKey::generate().unwrap();
        let h = head();
        let text = h.sign(&key).unwrap();
        assert!(text.starts_with(HEAD_PREFIX));
        assert_eq!(AuditHead::verify(&text, &key.public_key()).unwrap(), h);
        let saved = format!("Audit chain head: position 42\n  {text}  \nkeep this\n");
        assert_eq!(AuditHead::verify(&saved, &key.public_key()).unwrap(), h);
    }

    #[test]
    fn tampered_or_foreign_heads_are_refused() {
        let key = SolmeSigningKey::generate().unwrap();
        let other = SolmeSigningKey::generate().unwrap();
        let text = head().sign(&key).unwrap();
        assert!(matches!(
            AuditHead::verify(&text, &other.public_key()),
            Err(ProtoError::BadSignature(_))
        ));
        let body = &text[HEAD_PREFIX.len()..];
        let flipped = envelope::flip_a_bit(HEAD_PREFIX, &text);
        assert!(AuditHead::verify(&flipped, &key.public_key()).is_err());
        assert!(AuditHead::verify(&text[..text.len() - 8], &key.public_key()).is_err());
        assert!(
            AuditHead::verify(body, &key.public_key()).is_err(),
            "no prefix"
        );
        assert!(AuditHead::verify(&"x".repeat(MAX_HEAD_LEN + 1), &key.public_key()).is_err());
    }
}
