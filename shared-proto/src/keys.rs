//! Key types: a local server's identity, Solme's signing key, and fingerprints.
//!
//! A local server has two key pairs: Ed25519 to sign its sync requests and X25519 so
//! that license files can be encrypted to it. The pair of public keys is what the main
//! server binds to an id; its fingerprint is the SHA-256 of the Ed25519 public key's
//! DER (SubjectPublicKeyInfo) form, written `SHA256:<hex>`. The encryption key is inside
//! every signed request, so binding the signing key binds both.

use std::path::Path;

use base64::Engine;
use openssl::pkey::{Id, PKey, Private, Public};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ProtoError;
use crate::files::{self, Access, Existing};

/// File name of a server's Ed25519 private key inside its key directory.
pub const SERVER_SIGNING_KEY_FILE: &str = "server-signing.pem";
/// File name of a server's X25519 private key inside its key directory.
pub const SERVER_ENCRYPTION_KEY_FILE: &str = "server-encryption.pem";

/// The fixed DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the DER is this
/// followed by the 32 raw key bytes, so fingerprints need no fallible round trip.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// `SHA256:<64 lowercase hex digits>` of a public key's DER.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(String);

impl Fingerprint {
    fn of_der(der: &[u8]) -> Self {
        let digest = openssl::sha::sha256(der);
        let hex = crate::hex::encode(&digest);
        Self(format!("SHA256:{hex}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = ProtoError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let valid = value.strip_prefix("SHA256:").is_some_and(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if valid {
            Ok(Self(value))
        } else {
            Err(ProtoError::Malformed(format!(
                "{value:?} is not a key fingerprint (SHA256:<64 hex digits>)"
            )))
        }
    }
}

impl From<Fingerprint> for String {
    fn from(value: Fingerprint) -> Self {
        value.0
    }
}

/// The public half of a server identity, as carried in every sync request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerPublicKeys {
    /// Raw Ed25519 public key.
    #[serde(with = "base64_32")]
    pub signing: [u8; 32],
    /// Raw X25519 public key.
    #[serde(with = "base64_32")]
    pub encryption: [u8; 32],
}

impl ServerPublicKeys {
    /// The fingerprint the main server binds: SHA-256 of the Ed25519 key's DER.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut der = Vec::with_capacity(44);
        der.extend_from_slice(&ED25519_SPKI_PREFIX);
        der.extend_from_slice(&self.signing);
        Fingerprint::of_der(&der)
    }

    /// The presented Ed25519 key; bytes OpenSSL refuses are the sender's fault.
    pub(crate) fn signing_key(&self) -> Result<PKey<Public>, ProtoError> {
        PKey::public_key_from_raw_bytes(&self.signing, Id::ED25519).map_err(|_| {
            ProtoError::BadSignature("the presented signing key is not a valid Ed25519 key".into())
        })
    }
}

/// A local server's private keys. `Debug` shows only the fingerprint.
pub struct ServerIdentity {
    signing: PKey<Private>,
    encryption: PKey<Private>,
    public: ServerPublicKeys,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// Makes a fresh pair of key pairs.
    pub fn generate() -> Result<Self, ProtoError> {
        Self::from_keys(PKey::generate_ed25519()?, PKey::generate_x25519()?)
    }

    fn from_keys(signing: PKey<Private>, encryption: PKey<Private>) -> Result<Self, ProtoError> {
        if signing.id() != Id::ED25519 || encryption.id() != Id::X25519 {
            return Err(ProtoError::Malformed(
                "server keys must be one Ed25519 and one X25519 key".into(),
            ));
        }
        let public = ServerPublicKeys {
            signing: raw_32(&signing.raw_public_key()?)?,
            encryption: raw_32(&encryption.raw_public_key()?)?,
        };
        Ok(Self {
            signing,
            encryption,
            public,
        })
    }

    /// Writes both private keys into `dir` (mode 0600). Refuses to replace existing
    /// files: a reinstall must remove them deliberately.
    pub fn save(&self, dir: &Path) -> Result<(), ProtoError> {
        let signing_path = dir.join(SERVER_SIGNING_KEY_FILE);
        let encryption_path = dir.join(SERVER_ENCRYPTION_KEY_FILE);
        for path in [&signing_path, &encryption_path] {
            if path.exists() {
                return Err(ProtoError::io(
                    format!("refusing to overwrite the key file {}", path.display()),
                    std::io::Error::from(std::io::ErrorKind::AlreadyExists),
                ));
            }
        }
        write_private_file(&signing_path, &self.signing.private_key_to_pem_pkcs8()?)?;
        write_private_file(
            &encryption_path,
            &self.encryption.private_key_to_pem_pkcs8()?,
        )
    }

    /// Reads the private keys [`ServerIdentity::save`] wrote.
    pub fn load(dir: &Path) -> Result<Self, ProtoError> {
        let signing = read_private_key(&dir.join(SERVER_SIGNING_KEY_FILE))?;
        let encryption = read_private_key(&dir.join(SERVER_ENCRYPTION_KEY_FILE))?;
        Self::from_keys(signing, encryption)
    }

    pub fn public_keys(&self) -> ServerPublicKeys {
        self.public.clone()
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.public.fingerprint()
    }

    pub(crate) fn signing_key(&self) -> &PKey<Private> {
        &self.signing
    }

    pub(crate) fn encryption_key(&self) -> &PKey<Private> {
        &self.encryption
    }
}

/// Solme's Ed25519 key that signs every license file. `Debug` shows only the fingerprint.
pub struct SolmeSigningKey {
    key: PKey<Private>,
    /// The public half, derived once when the key is made or loaded.
    public: SolmePublicKey,
}

impl std::fmt::Debug for SolmeSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolmeSigningKey")
            .field("fingerprint", &self.public.fingerprint())
            .finish_non_exhaustive()
    }
}

impl SolmeSigningKey {
    pub fn generate() -> Result<Self, ProtoError> {
        Self::from_key(PKey::generate_ed25519()?)
    }

    fn from_key(key: PKey<Private>) -> Result<Self, ProtoError> {
        let raw = raw_32(&key.raw_public_key()?)?;
        let public = SolmePublicKey {
            raw,
            key: Some(PKey::public_key_from_raw_bytes(&raw, Id::ED25519)?),
        };
        Ok(Self { key, public })
    }

    /// Writes the private key as PKCS#8 PEM, mode 0600; refuses to overwrite.
    pub fn save(&self, path: &Path) -> Result<(), ProtoError> {
        write_private_file(path, &self.key.private_key_to_pem_pkcs8()?)
    }

    pub fn load(path: &Path) -> Result<Self, ProtoError> {
        let key = read_private_key(path)?;
        if key.id() != Id::ED25519 {
            return Err(ProtoError::Malformed(format!(
                "{} is not an Ed25519 private key",
                path.display()
            )));
        }
        Self::from_key(key)
    }

    pub fn public_key(&self) -> SolmePublicKey {
        self.public.clone()
    }

    /// A 32-byte secret derived from this key for `label` and `input`: the SHA-256 of
    /// the (deterministic) Ed25519 signature of `solme derived secret v1`, the label
    /// and the input, each length-prefixed. Every process holding the key derives the
    /// same secret, so a secret whose hash alone is stored can be made again where it
    /// is needed; without the key it cannot be. The signature itself never leaves.
    pub fn derive_secret(&self, label: &str, input: &[u8]) -> Result<[u8; 32], ProtoError> {
        let mut message = b"solme derived secret v1".to_vec();
        for part in [label.as_bytes(), input] {
            message.extend_from_slice(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
            message.extend_from_slice(part);
        }
        let mut signer = openssl::sign::Signer::new_without_digest(&self.key)?;
        let signature = signer.sign_oneshot_to_vec(&message)?;
        Ok(openssl::sha::sha256(&signature))
    }

    pub(crate) fn key(&self) -> &PKey<Private> {
        &self.key
    }
}

/// Solme's public key, pinned by every local server.
///
/// Holds the parsed OpenSSL key next to its raw bytes, so verifying a license file does
/// not rebuild it (with OpenSSL 3 that is an algorithm lookup every time).
#[derive(Clone)]
pub struct SolmePublicKey {
    raw: [u8; 32],
    /// The parsed form of `raw`; `None` only if OpenSSL refused the bytes, which
    /// [`SolmePublicKey::key`] then reports.
    key: Option<PKey<Public>>,
}

impl std::fmt::Debug for SolmePublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolmePublicKey")
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl PartialEq for SolmePublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for SolmePublicKey {}

impl SolmePublicKey {
    pub fn from_pem(pem: &[u8]) -> Result<Self, ProtoError> {
        let key = PKey::public_key_from_pem(pem)
            .map_err(|_| ProtoError::Malformed("not a PEM public key".into()))?;
        if key.id() != Id::ED25519 {
            return Err(ProtoError::Malformed(
                "Solme's public key must be an Ed25519 key".into(),
            ));
        }
        Ok(Self {
            raw: raw_32(&key.raw_public_key()?)?,
            key: Some(key),
        })
    }

    pub fn to_pem(&self) -> Result<Vec<u8>, ProtoError> {
        Ok(self.key()?.public_key_to_pem()?)
    }

    pub fn load(path: &Path) -> Result<Self, ProtoError> {
        let pem = read_bounded(path)?;
        Self::from_pem(&pem)
    }

    /// Writes the public key as PEM (mode 0644: it is public).
    pub fn save(&self, path: &Path) -> Result<(), ProtoError> {
        files::write(path, &self.to_pem()?, Access::Public, Existing::Replace)
    }

    pub fn fingerprint(&self) -> Fingerprint {
        let mut der = Vec::with_capacity(44);
        der.extend_from_slice(&ED25519_SPKI_PREFIX);
        der.extend_from_slice(&self.raw);
        Fingerprint::of_der(&der)
    }

    pub(crate) fn key(&self) -> Result<&PKey<Public>, ProtoError> {
        match &self.key {
            Some(key) => Ok(key),
            None => Err(ProtoError::Malformed(
                "Solme's public key is not a usable Ed25519 key".into(),
            )),
        }
    }
}

/// Key files are small; anything bigger than this is not one of ours.
const MAX_KEY_FILE_LEN: u64 = 16 * 1024;

fn read_bounded(path: &Path) -> Result<Vec<u8>, ProtoError> {
    let len = std::fs::metadata(path)
        .map_err(|e| ProtoError::io(format!("reading {}", path.display()), e))?
        .len();
    if len > MAX_KEY_FILE_LEN {
        return Err(ProtoError::TooLarge {
            limit: MAX_KEY_FILE_LEN as usize,
        });
    }
    std::fs::read(path).map_err(|e| ProtoError::io(format!("reading {}", path.display()), e))
}

fn read_private_key(path: &Path) -> Result<PKey<Private>, ProtoError> {
    let pem = read_bounded(path)?;
    PKey::private_key_from_pem(&pem)
        .map_err(|_| ProtoError::Malformed(format!("{} is not a PEM private key", path.display())))
}

/// Writes a private key file: mode 0600, never replacing an existing file.
fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), ProtoError> {
    files::write(path, contents, Access::Private, Existing::Refuse)
}

fn raw_32(raw: &[u8]) -> Result<[u8; 32], ProtoError> {
    raw.try_into()
        .map_err(|_| ProtoError::Malformed("a raw public key must be 32 bytes".into()))
}

mod base64_32 {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a public key must be 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn fingerprint_is_sha256_of_the_der() {
        let identity = ServerIdentity::generate().unwrap();
        let der = identity.signing.public_key_to_der().unwrap();
        assert_eq!(identity.fingerprint(), Fingerprint::of_der(&der));
        assert!(identity.fingerprint().as_str().starts_with("SHA256:"));
        assert_eq!(identity.fingerprint().as_str().len(), 7 + 64);
    }

    #[test]
    fn identity_round_trips_through_files_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let identity = ServerIdentity::generate().unwrap();
        identity.save(dir.path()).unwrap();
        for name in [SERVER_SIGNING_KEY_FILE, SERVER_ENCRYPTION_KEY_FILE] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let loaded = ServerIdentity::load(dir.path()).unwrap();
        assert_eq!(loaded.public_keys(), identity.public_keys());
        let again = ServerIdentity::generate().unwrap();
        assert!(
            again.save(dir.path()).is_err(),
            "an identity was overwritten"
        );
        assert_eq!(
            ServerIdentity::load(dir.path()).unwrap().public_keys(),
            identity.public_keys()
        );
    }

    #[test]
    fn derived_secrets_are_stable_per_key_label_and_input() {
        let key = SolmeSigningKey::generate().unwrap();
        let other = SolmeSigningKey::generate().unwrap();
        let secret = key.derive_secret("portal link", b"id-1").unwrap();
        assert_eq!(secret, key.derive_secret("portal link", b"id-1").unwrap());
        assert_ne!(secret, key.derive_secret("portal link", b"id-2").unwrap());
        assert_ne!(secret, key.derive_secret("portal lin", b"kid-1").unwrap());
        assert_ne!(secret, other.derive_secret("portal link", b"id-1").unwrap());
    }

    #[test]
    fn solme_keys_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let key = SolmeSigningKey::generate().unwrap();
        key.save(&dir.path().join("k.pem")).unwrap();
        key.public_key().save(&dir.path().join("p.pem")).unwrap();
        let loaded = SolmeSigningKey::load(&dir.path().join("k.pem")).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        assert_eq!(
            SolmePublicKey::load(&dir.path().join("p.pem")).unwrap(),
            key.public_key()
        );
        assert!(key.save(&dir.path().join("k.pem")).is_err());
    }

    #[test]
    fn fingerprint_strings_are_validated() {
        assert!(Fingerprint::try_from("SHA256:abc".to_string()).is_err());
        let good = ServerIdentity::generate().unwrap().fingerprint();
        assert_eq!(Fingerprint::try_from(good.to_string()).unwrap(), good);
    }
}
