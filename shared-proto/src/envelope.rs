//! The signed envelope and the encryption to a server's public key.
//!
//! Signed message (what an armor body carries for sync data, and what is encrypted
//! inside a license file):
//!
//! ```text
//! offset  size  field
//! 0       4     magic "SOLM"
//! 4       1     format version (1)
//! 5       1     kind: 1 = sync request, 2 = license file, 3 = borrow token,
//!               4 = audit head, 5 = installation receipt
//! 6       4     payload length N, big-endian u32 (at most MAX_PAYLOAD_LEN)
//! 10      N     payload: the message as UTF-8 JSON
//! 10+N    64    Ed25519 signature over  label || 0x00 || bytes[0 .. 10+N]
//! ```
//!
//! The label is the kind's domain-separation string (`solme sync request v1`,
//! `solme license file v1`, `solme borrow token v1`, `solme audit head v1`,
//! `solme installation receipt v1`), so a signature made for one kind of message never
//! verifies as another. Nothing may follow the signature.
//!
//! Sealed message (the armor body of a license file):
//!
//! ```text
//! 0       4     magic "SOLE"
//! 4       1     format version (1)
//! 5       32    SHA-256 of the recipient's raw X25519 public key
//! 37      32    ephemeral X25519 public key
//! 69      12    AES-GCM nonce
//! 81      M     AES-256-GCM ciphertext of the signed message
//! 81+M    16    GCM tag; the additional data is bytes[0 .. 81]
//! ```
//!
//! The key is HKDF-SHA256 over the X25519 shared secret, with salt = ephemeral public
//! key || recipient public key and info = `solme license file v1 aes-256-gcm`. A fresh
//! ephemeral key per message makes a random nonce safe.

use openssl::derive::Deriver;
use openssl::md::Md;
use openssl::pkey::{HasPublic, Id, PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::sign::{Signer, Verifier};
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};

use crate::error::ProtoError;

/// Current envelope format version.
pub const FORMAT_VERSION: u8 = 1;
/// Largest JSON payload accepted inside an envelope.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;

const SIGNED_MAGIC: &[u8; 4] = b"SOLM";
const SIGNED_HEADER_LEN: usize = 10;
const SIGNATURE_LEN: usize = 64;

const SEALED_MAGIC: &[u8; 4] = b"SOLE";
const SEALED_HEADER_LEN: usize = 4 + 1 + 32 + 32 + 12;
const TAG_LEN: usize = 16;
const SEAL_INFO: &[u8] = b"solme license file v1 aes-256-gcm";

/// The kinds of signed message, each with its own domain-separation label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    SyncRequest,
    LicenseFile,
    BorrowToken,
    AuditHead,
    /// A local server's statement that it installed a license file.
    Receipt,
    /// A message between the two servers of a primary/standby pair.
    PairMessage,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Self::SyncRequest => 1,
            Self::LicenseFile => 2,
            Self::BorrowToken => 3,
            Self::AuditHead => 4,
            Self::Receipt => 5,
            Self::PairMessage => 6,
        }
    }

    fn label(self) -> &'static [u8] {
        match self {
            Self::SyncRequest => b"solme sync request v1",
            Self::LicenseFile => b"solme license file v1",
            Self::BorrowToken => b"solme borrow token v1",
            Self::AuditHead => b"solme audit head v1",
            Self::Receipt => b"solme installation receipt v1",
            Self::PairMessage => b"solme pair message v1",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::SyncRequest => "sync data",
            Self::LicenseFile => "a license file",
            Self::BorrowToken => "a borrow token",
            Self::AuditHead => "an audit head",
            Self::Receipt => "an installation receipt",
            Self::PairMessage => "a message from the other server of the pair",
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::SyncRequest),
            2 => Some(Self::LicenseFile),
            3 => Some(Self::BorrowToken),
            4 => Some(Self::AuditHead),
            5 => Some(Self::Receipt),
            6 => Some(Self::PairMessage),
            _ => None,
        }
    }
}

/// Wraps `payload` in a signed message of `kind`, signed with the Ed25519 `key`.
pub fn sign(kind: Kind, payload: &[u8], key: &PKey<Private>) -> Result<Vec<u8>, ProtoError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(ProtoError::TooLarge {
            limit: MAX_PAYLOAD_LEN,
        });
    }
    let mut message = Vec::with_capacity(SIGNED_HEADER_LEN + payload.len() + SIGNATURE_LEN);
    message.extend_from_slice(SIGNED_MAGIC);
    message.push(FORMAT_VERSION);
    message.push(kind.byte());
    // The length fits: it was checked against MAX_PAYLOAD_LEN above.
    message.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    message.extend_from_slice(payload);
    let signature =
        Signer::new_without_digest(key)?.sign_oneshot_to_vec(&signed_bytes(kind, &message))?;
    message.extend_from_slice(&signature);
    Ok(message)
}

/// `value` as JSON, wrapped in a signed message of `kind`. `what` names the value in
/// errors (`the license file`).
pub fn sign_json<T: serde::Serialize>(
    kind: Kind,
    what: &str,
    value: &T,
    key: &PKey<Private>,
) -> Result<Vec<u8>, ProtoError> {
    let payload = serde_json::to_vec(value)
        .map_err(|e| ProtoError::Malformed(format!("cannot encode {what}: {e}")))?;
    sign(kind, &payload, key)
}

/// A signed JSON `value` as one line of text: `prefix`, then the signed message in
/// URL-safe base64 without padding (borrow tokens, audit heads). `what` names the
/// value in errors (`the borrow token`).
pub fn sign_line<T: serde::Serialize>(
    kind: Kind,
    prefix: &str,
    what: &str,
    value: &T,
    key: &PKey<Private>,
) -> Result<String, ProtoError> {
    use base64::Engine;
    let signed = sign_json(kind, what, value, key)?;
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed)
    ))
}

/// Reads the value [`sign_line`] wrote, from the text after its prefix, once its
/// signature holds for `key`.
pub fn open_line<T: serde::de::DeserializeOwned, K: HasPublic>(
    kind: Kind,
    body: &str,
    what: &str,
    key: &PKey<K>,
) -> Result<T, ProtoError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| ProtoError::Malformed(format!("{what} is damaged")))?;
    let payload = parse(kind, &bytes)?.verify(key)?;
    serde_json::from_slice(payload)
        .map_err(|e| ProtoError::Malformed(format!("{what} is damaged: {e}")))
}

/// `line` (made by [`sign_line`] with `prefix`) with one bit of its signed message
/// flipped, for tests of tampering.
#[cfg(test)]
pub(crate) fn flip_a_bit(prefix: &str, line: &str) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut bytes = engine
        .decode(&line[prefix.len()..])
        .unwrap_or_else(|e| panic!("not a signed line: {e}"));
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    format!("{prefix}{}", engine.encode(&bytes))
}

/// A signed message split into its parts; the signature is not checked yet.
#[derive(Debug)]
pub struct Unverified<'a> {
    kind: Kind,
    signed: &'a [u8],
    signature: &'a [u8],
}

impl<'a> Unverified<'a> {
    /// The payload, to be trusted only after [`Unverified::verify`]. Crate-private:
    /// outside code gets payloads only through `verify`.
    pub(crate) fn payload(&self) -> &'a [u8] {
        &self.signed[SIGNED_HEADER_LEN..]
    }

    /// Checks the signature with `key`; returns the payload when it holds.
    pub fn verify<T: HasPublic>(&self, key: &PKey<T>) -> Result<&'a [u8], ProtoError> {
        let valid = Verifier::new_without_digest(key)?
            .verify_oneshot(self.signature, &signed_bytes(self.kind, self.signed))
            .unwrap_or(false);
        if valid {
            Ok(self.payload())
        } else {
            Err(ProtoError::BadSignature(format!(
                "the signature of this {} does not verify: it was altered or not made by the key it claims",
                self.kind.describe()
            )))
        }
    }
}

/// Splits a signed message, checking its framing and that it is of the `expected` kind.
pub fn parse(expected: Kind, message: &[u8]) -> Result<Unverified<'_>, ProtoError> {
    let damaged = |what: &str| {
        ProtoError::Malformed(format!("the {} is damaged: {what}", expected.describe()))
    };
    if message.len() < SIGNED_HEADER_LEN + SIGNATURE_LEN {
        return Err(damaged("it is too short"));
    }
    if &message[..4] != SIGNED_MAGIC {
        return Err(damaged("it does not start with the Solme signature header"));
    }
    if message[4] != FORMAT_VERSION {
        return Err(ProtoError::UnsupportedVersion(u32::from(message[4])));
    }
    match Kind::from_byte(message[5]) {
        Some(kind) if kind == expected => {}
        Some(other) => {
            return Err(ProtoError::Malformed(format!(
                "this is {}, not {}",
                other.describe(),
                expected.describe()
            )))
        }
        None => return Err(damaged("unknown message kind")),
    }
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&message[6..10]);
    let payload_len = u32::from_be_bytes(len_bytes) as usize;
    if payload_len > MAX_PAYLOAD_LEN {
        return Err(ProtoError::TooLarge {
            limit: MAX_PAYLOAD_LEN,
        });
    }
    if message.len() != SIGNED_HEADER_LEN + payload_len + SIGNATURE_LEN {
        return Err(damaged(
            "its length does not match its header (truncated or padded)",
        ));
    }
    let (signed, signature) = message.split_at(SIGNED_HEADER_LEN + payload_len);
    Ok(Unverified {
        kind: expected,
        signed,
        signature,
    })
}

fn signed_bytes(kind: Kind, message: &[u8]) -> Vec<u8> {
    let label = kind.label();
    let mut bytes = Vec::with_capacity(label.len() + 1 + message.len());
    bytes.extend_from_slice(label);
    bytes.push(0);
    bytes.extend_from_slice(message);
    bytes
}

/// Encrypts `plaintext` to the raw X25519 public key `recipient`.
pub fn seal(recipient: &[u8; 32], plaintext: &[u8]) -> Result<Vec<u8>, ProtoError> {
    let recipient_key = PKey::public_key_from_raw_bytes(recipient, Id::X25519)?;
    let ephemeral = PKey::generate_x25519()?;
    let ephemeral_public = ephemeral.raw_public_key()?;
    let mut nonce = [0u8; 12];
    openssl::rand::rand_bytes(&mut nonce)?;

    let mut sealed = Vec::with_capacity(SEALED_HEADER_LEN + plaintext.len() + TAG_LEN);
    sealed.extend_from_slice(SEALED_MAGIC);
    sealed.push(FORMAT_VERSION);
    sealed.extend_from_slice(&openssl::sha::sha256(recipient));
    sealed.extend_from_slice(&ephemeral_public);
    sealed.extend_from_slice(&nonce);

    let key = derive_key(&ephemeral, &recipient_key, &ephemeral_public, recipient)?;
    let mut tag = [0u8; TAG_LEN];
    let ciphertext = encrypt_aead(
        Cipher::aes_256_gcm(),
        &key,
        Some(&nonce),
        &sealed,
        plaintext,
        &mut tag,
    )?;
    sealed.extend_from_slice(&ciphertext);
    sealed.extend_from_slice(&tag);
    Ok(sealed)
}

/// Checks that `recipient` is an X25519 public key [`seal`] can encrypt to, with a trial
/// key agreement against a throwaway key. Low-order points (all zeros, among others)
/// give an all-zero shared secret, which OpenSSL refuses: checking this up front lets a
/// server refuse such a key before it records anything, rather than fail afterwards.
pub(crate) fn check_recipient(recipient: &[u8; 32]) -> Result<(), ProtoError> {
    /// One throwaway key for every check: the shared secret is discarded, and whether
    /// it is all zero depends only on the recipient's point (clamped scalars are
    /// multiples of the cofactor), so a fresh key per check (a key generation, a
    /// tenth of a sync's crypto) would prove nothing more.
    static THROWAWAY: std::sync::OnceLock<PKey<Private>> = std::sync::OnceLock::new();
    let refused = || {
        ProtoError::Malformed(
            "the presented encryption key is not a usable X25519 public key".into(),
        )
    };
    let recipient_key =
        PKey::public_key_from_raw_bytes(recipient, Id::X25519).map_err(|_| refused())?;
    // Generating the throwaway key failing is this side's problem (`Crypto`), not the
    // sender's; only the agreement itself is judged.
    let throwaway = match THROWAWAY.get() {
        Some(key) => key,
        None => {
            let key = PKey::generate_x25519()?;
            THROWAWAY.get_or_init(|| key)
        }
    };
    let mut deriver = Deriver::new(throwaway)?;
    deriver.set_peer(&recipient_key).map_err(|_| refused())?;
    let shared = deriver.derive_to_vec().map_err(|_| refused())?;
    // OpenSSL already refuses an all-zero secret; checked again so the guarantee does
    // not rest on the library version.
    if shared.iter().all(|&b| b == 0) {
        return Err(refused());
    }
    Ok(())
}

/// Decrypts a sealed message with the X25519 private key `own`.
pub fn open(own: &PKey<Private>, sealed: &[u8]) -> Result<Vec<u8>, ProtoError> {
    let damaged =
        |what: &str| ProtoError::Malformed(format!("the license file is damaged: {what}"));
    if sealed.len() < SEALED_HEADER_LEN + TAG_LEN {
        return Err(damaged("it is too short"));
    }
    if &sealed[..4] != SEALED_MAGIC {
        return Err(damaged(
            "it does not start with the Solme encryption header",
        ));
    }
    if sealed[4] != FORMAT_VERSION {
        return Err(ProtoError::UnsupportedVersion(u32::from(sealed[4])));
    }
    let own_public = own.raw_public_key()?;
    if sealed[5..37] != openssl::sha::sha256(&own_public) {
        return Err(ProtoError::WrongServer(
            "this license file was made for another license server (another key pair); \
             it cannot be imported here"
                .into(),
        ));
    }
    let ephemeral_public: [u8; 32] = sealed[37..69]
        .try_into()
        .map_err(|_| damaged("bad ephemeral key"))?;
    let ephemeral = PKey::public_key_from_raw_bytes(&ephemeral_public, Id::X25519)
        .map_err(|_| damaged("bad ephemeral key"))?;
    let own_public: [u8; 32] = own_public
        .as_slice()
        .try_into()
        .map_err(|_| damaged("bad key length"))?;
    let key = derive_key(own, &ephemeral, &ephemeral_public, &own_public)
        .map_err(|_| damaged("bad ephemeral key"))?;
    let (header, rest) = sealed.split_at(SEALED_HEADER_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    decrypt_aead(
        Cipher::aes_256_gcm(),
        &key,
        Some(&header[69..81]),
        header,
        ciphertext,
        tag,
    )
    .map_err(|_| {
        ProtoError::BadSignature(
            "the license file does not decrypt: it was altered after Solme made it".into(),
        )
    })
}

fn derive_key<T: HasPublic>(
    own: &PKey<Private>,
    peer: &PKey<T>,
    ephemeral_public: &[u8],
    recipient_public: &[u8; 32],
) -> Result<[u8; 32], ProtoError> {
    let mut deriver = Deriver::new(own)?;
    deriver.set_peer(peer)?;
    let shared = deriver.derive_to_vec()?;

    let mut salt = Vec::with_capacity(64);
    salt.extend_from_slice(ephemeral_public);
    salt.extend_from_slice(recipient_public);

    let mut ctx = PkeyCtx::new_id(Id::HKDF)?;
    ctx.derive_init()?;
    ctx.set_hkdf_md(Md::sha256())?;
    ctx.set_hkdf_key(&shared)?;
    ctx.set_hkdf_salt(&salt)?;
    ctx.add_hkdf_info(SEAL_INFO)?;
    let mut key = [0u8; 32];
    ctx.derive(Some(&mut key))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify() {
        let key = PKey::generate_ed25519().unwrap();
        let message = sign(Kind::SyncRequest, b"{\"a\":1}", &key).unwrap();
        let unverified = parse(Kind::SyncRequest, &message).unwrap();
        assert_eq!(unverified.verify(&key).unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn a_signature_does_not_carry_over_to_another_kind() {
        let key = PKey::generate_ed25519().unwrap();
        let mut message = sign(Kind::SyncRequest, b"{}", &key).unwrap();
        assert!(matches!(
            parse(Kind::LicenseFile, &message),
            Err(ProtoError::Malformed(_))
        ));
        // Relabel the kind byte: the label in the signed bytes changes, so it fails.
        message[5] = Kind::LicenseFile.byte();
        let unverified = parse(Kind::LicenseFile, &message).unwrap();
        assert!(matches!(
            unverified.verify(&key),
            Err(ProtoError::BadSignature(_))
        ));
    }

    #[test]
    fn seal_then_open_and_only_for_the_recipient() {
        let own = PKey::generate_x25519().unwrap();
        let public: [u8; 32] = own.raw_public_key().unwrap().try_into().unwrap();
        let sealed = seal(&public, b"secret").unwrap();
        assert_eq!(open(&own, &sealed).unwrap(), b"secret");
        let other = PKey::generate_x25519().unwrap();
        assert!(matches!(
            open(&other, &sealed),
            Err(ProtoError::WrongServer(_))
        ));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            open(&own, &flipped),
            Err(ProtoError::BadSignature(_))
        ));
    }
}
