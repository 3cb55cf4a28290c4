//! Messages between the two servers of a primary/standby pair: JSON signed by the
//! sender's own Ed25519 key under their own envelope kind ([`Kind::PairMessage`]), so
//! a pair message never passes for sync data or a receipt. The receiver checks the
//! signature against the key it pinned when the two were paired; which message may
//! follow which, and their freshness, are the local server's business.

use crate::envelope::{self, Kind};
use crate::error::ProtoError;
use crate::keys::{ServerIdentity, ServerPublicKeys};

/// The prefix of a signed pair message as text.
const PREFIX: &str = "solme-pair.";

/// `value` signed by `identity`, as one line of text.
pub fn sign<T: serde::Serialize>(
    identity: &ServerIdentity,
    value: &T,
) -> Result<String, ProtoError> {
    envelope::sign_line(
        Kind::PairMessage,
        PREFIX,
        "a pair message",
        value,
        identity.signing_key(),
    )
}

/// The value of a line [`sign`] wrote, once its signature holds for `sender`'s key.
pub fn open<T: serde::de::DeserializeOwned>(
    text: &str,
    sender: &ServerPublicKeys,
) -> Result<T, ProtoError> {
    let body = text.trim().strip_prefix(PREFIX).ok_or_else(|| {
        ProtoError::Malformed("this is not a message from a paired license server".into())
    })?;
    envelope::open_line(
        Kind::PairMessage,
        body,
        "the pair message",
        &sender.signing_key()?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_opens_with_its_senders_key_only() {
        let sender = ServerIdentity::generate().unwrap();
        let other = ServerIdentity::generate().unwrap();
        let line = sign(&sender, &vec![1, 2, 3]).unwrap();
        let value: Vec<i32> = open(&line, &sender.public_keys()).unwrap();
        assert_eq!(value, vec![1, 2, 3]);
        let refused = open::<Vec<i32>>(&line, &other.public_keys()).unwrap_err();
        assert!(matches!(refused, ProtoError::BadSignature(_)), "{refused}");
        let flipped = envelope::flip_a_bit(PREFIX, &line);
        assert!(open::<Vec<i32>>(&flipped, &sender.public_keys()).is_err());
    }
}
