#![doc = include_str!("../README.md")]

pub mod admin_api;
pub mod armor;
pub mod audit_head;
pub mod audit_log;
pub mod borrow_token;
pub mod borrows;
pub mod clock;
pub mod envelope;
pub mod error;
pub mod exit;
pub mod files;
pub mod hex;
pub mod keys;
pub mod license_file;
pub mod licensing_address;
pub mod messages;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod page_headers;
pub mod pair;
pub mod receipt;
pub mod sync_data;
pub mod text_enum;
pub mod tls;
pub mod validity;

pub use borrow_token::BorrowToken;
pub use clock::Clock;
pub use error::{ApiError, ErrorCode, ProtoError};
pub use keys::{Fingerprint, ServerIdentity, ServerPublicKeys, SolmePublicKey, SolmeSigningKey};
pub use messages::{FeatureUsage, License, LicenseFile, StandbyTerms, SyncRequest};
