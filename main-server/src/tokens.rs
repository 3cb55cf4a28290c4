//! Secret tokens: making them, their stored form, reading them from a file. A leaf:
//! the account and session stores and the authentication all use it, so it imports
//! none of them.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use secrecy::SecretString;

/// Bytes of randomness in a new token (256 bits).
const TOKEN_BYTES: usize = 32;

/// What starts a console session secret (`.` never occurs in a generated token).
pub const SESSION_PREFIX: &str = "session.";

/// A fresh random token (URL-safe base64).
pub fn generate() -> anyhow::Result<SecretString> {
    let mut bytes = [0u8; TOKEN_BYTES];
    openssl::rand::rand_bytes(&mut bytes).context("generating a token")?;
    Ok(SecretString::from(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}

/// The stored form of a token: lower-case hex SHA-256.
pub fn token_hash(token: &str) -> String {
    shared_proto::hex::encode(&openssl::sha::sha256(token.as_bytes()))
}

/// Reads a token file (trimmed, bounded in size).
pub fn read_token_file(path: &Path) -> anyhow::Result<SecretString> {
    shared_proto::files::read_secret(path)
        .with_context(|| format!("reading the token file {}", path.display()))
}
