//! The borrow token: the local server's signed statement that a client may use a seat
//! offline until a given time. A client program keeps it and checks it without the
//! network, with the server's public key (`GET /api/v1/public-key`).
//!
//! Layout: the text `solme-borrow-v1.` followed by the URL-safe base64 (no padding) of
//! a signed message of the envelope (kind 3, label `solme borrow token v1`, see
//! [`crate::envelope`]) whose payload is the JSON of [`BorrowToken`], signed with the
//! local server's Ed25519 key (the same key whose fingerprint Solme's main server binds).

use chrono::{DateTime, Utc};
use openssl::pkey::{Id, PKey};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{self, Kind};
use crate::error::ProtoError;
use crate::keys::ServerIdentity;

/// The text every token starts with.
pub const TOKEN_PREFIX: &str = "solme-borrow-v1.";
/// What errors call it.
const WHAT: &str = "the borrow token";
/// Longest token text accepted (the payload is a few hundred bytes).
pub const MAX_TOKEN_LEN: usize = 4 * 1024;

/// What a borrow token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BorrowToken {
    /// The license server that lent the seat.
    pub server_id: Uuid,
    /// The lease that holds the seat on the server (returned early with its id).
    pub lease_id: Uuid,
    pub feature: String,
    pub user: String,
    pub host: String,
    pub issued_at: DateTime<Utc>,
    /// The seat may be used until then, never later: it is at most the license's
    /// borrow limit, the license's own end and the server's 366-day validity.
    pub until: DateTime<Utc>,
}

impl BorrowToken {
    /// Signs the token with the server's key; returns its text.
    pub fn sign(&self, identity: &ServerIdentity) -> Result<String, ProtoError> {
        envelope::sign_line(
            Kind::BorrowToken,
            TOKEN_PREFIX,
            WHAT,
            self,
            identity.signing_key(),
        )
    }

    /// Checks the token's signature with the server's raw Ed25519 public key and reads
    /// it. Whether it is still valid is [`BorrowToken::valid_at`].
    pub fn verify(text: &str, public_key: &[u8; 32]) -> Result<Self, ProtoError> {
        let text = text.trim();
        if text.len() > MAX_TOKEN_LEN {
            return Err(ProtoError::TooLarge {
                limit: MAX_TOKEN_LEN,
            });
        }
        let body = text.strip_prefix(TOKEN_PREFIX).ok_or_else(|| {
            ProtoError::Malformed(format!("a borrow token starts with {TOKEN_PREFIX}"))
        })?;
        let key = PKey::public_key_from_raw_bytes(public_key, Id::ED25519).map_err(|_| {
            ProtoError::BadSignature("the given public key is not an Ed25519 key".into())
        })?;
        envelope::open_line(Kind::BorrowToken, body, WHAT, &key)
    }

    /// Whether the borrowed seat may be used at `now`.
    pub fn valid_at(&self, now: DateTime<Utc>) -> bool {
        self.issued_at <= now && now < self.until
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::Duration;

    fn token() -> BorrowToken {
        let now = Utc::now();
        BorrowToken {
            server_id: Uuid::new_v4(),
            lease_id: Uuid::new_v4(),
            feature: "cad".into(),
            user: "alice".into(),
            host: "laptop-7".into(),
            issued_at: now,
            until: now + Duration::hours(8),
        }
    }

    #[test]
    fn a_token_round_trips_and_is_valid_until_its_end() {
        let identity = ServerIdentity::generate().unwrap();
        let t = token();
        let text = t.sign(&identity).unwrap();
        assert!(text.starts_with(TOKEN_PREFIX));
        let read = BorrowToken::verify(&text, &identity.public_keys().signing).unwrap();
        assert_eq!(read, t);
        assert!(read.valid_at(t.issued_at + Duration::hours(1)));
        assert!(!read.valid_at(t.until));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let identity = ServerIdentity::generate().unwrap();
        let other = ServerIdentity::generate().unwrap();
        let text = token().sign(&identity).unwrap();
        let key = identity.public_keys().signing;
        assert!(matches!(
            BorrowToken::verify(&text, &other.public_keys().signing),
            Err(ProtoError::BadSignature(_))
        ));
        let body = &text[TOKEN_PREFIX.len()..];
        let flipped = envelope::flip_a_bit(TOKEN_PREFIX, &text);
        assert!(BorrowToken::verify(&flipped, &key).is_err());
        assert!(BorrowToken::verify(&text[..text.len() - 8], &key).is_err());
        assert!(BorrowToken::verify(body, &key).is_err(), "no prefix");
        assert!(BorrowToken::verify(&"x".repeat(MAX_TOKEN_LEN + 1), &key).is_err());
    }
}
