#![doc = include_str!("../README.md")]

mod backoff;
pub mod blocking;
mod client;
mod error;
mod lease;
mod wire;

pub use backoff::Backoff;
pub use client::{Client, Identity, Options, Settings};
pub use error::{exit, Error};
pub use lease::{Lease, LeaseInfo, LeaseState};
pub use shared_proto::{BorrowToken, ErrorCode};
pub use url::Url;
pub use wire::{Feature, Grant};

/// Checks a borrow token offline with the server's raw Ed25519 public key
/// ([`Client::public_key`], or `GET /api/v1/public-key` kept from earlier) and reads
/// it. Whether it is still valid at a given time is [`BorrowToken::valid_at`].
pub fn verify_borrow_token(token: &str, public_key: &[u8; 32]) -> Result<BorrowToken, Error> {
    BorrowToken::verify(token, public_key).map_err(|err| Error::Token(err.to_string()))
}
