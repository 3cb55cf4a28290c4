//! The operator token: generated at `init`, read by `serve` and the admin CLI, and
//! compared in constant time.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

/// Bytes of randomness in a new token (256 bits).
const TOKEN_BYTES: usize = 32;

/// The bearer token of the admin API. `Debug` never prints it.
#[derive(Clone)]
pub struct AdminToken {
    /// SHA-256 of the token: comparing digests makes the comparison constant-time
    /// whatever the presented length.
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    pub fn new(token: &SecretString) -> Self {
        Self {
            digest: openssl::sha::sha256(token.expose_secret().as_bytes()),
        }
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Ok(Self::new(&read_token_file(path)?))
    }

    /// Constant-time check of a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        let presented = openssl::sha::sha256(presented.as_bytes());
        openssl::memcmp::eq(&presented, &self.digest)
    }
}

/// A fresh random token (URL-safe base64).
pub fn generate() -> anyhow::Result<SecretString> {
    let mut bytes = [0u8; TOKEN_BYTES];
    openssl::rand::rand_bytes(&mut bytes).context("generating the admin token")?;
    Ok(SecretString::from(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}

/// Reads a token file (trimmed, bounded in size).
pub fn read_token_file(path: &Path) -> anyhow::Result<SecretString> {
    shared_proto::files::read_secret(path).context("reading the admin token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_only_itself() {
        let secret = SecretString::from("abc123".to_owned());
        let token = AdminToken::new(&secret);
        assert!(token.matches("abc123"));
        assert!(!token.matches("abc124"));
        assert!(!token.matches(""));
        assert!(!token.matches("abc1234"));
        assert_eq!(format!("{token:?}"), "AdminToken(..)");
    }
}
