//! The registry in the database: every query the server runs, grouped by concern.
//! Functions take a connection and the current time, run synchronously (call them
//! inside `web::block`), and return [`ApiError`] refusals the HTTP layer passes on.
//!
//! Invariants that must hold under concurrency (one bound key per id, one use per
//! request id, one request per Message-ID, growing sequence) are enforced by the
//! database with conditional updates and unique keys, never by checks in Rust.

pub mod audit;
pub mod audit_chain;
pub mod copies;
pub mod customers;
pub mod key_clear;
pub mod licenses;
pub mod operators;
pub mod portal;
pub mod receipts;
pub mod reminders;
pub mod reported_borrows;
pub mod retired;
pub mod servers;
pub mod sessions;
pub mod standby;
pub mod sync;
pub mod usage;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use shared_proto::ErrorCode;
use uuid::Uuid;

use crate::error::ApiError;

/// Longest accepted lengths of operator and mail input (bytes).
pub const MAX_NAME: usize = 200;
pub const MAX_EMAIL: usize = 254;
pub const MAX_FEATURE: usize = 128;
pub const MAX_REASON: usize = 2_000;
pub const MAX_TEXT: usize = 20_000;
pub const MAX_MESSAGE_ID: usize = 998;
pub const MAX_SEATS: u32 = 1_000_000;
pub const MAX_EMAILS_PER_CUSTOMER: usize = 100;

/// Reads an id column; a bad value means the database was edited by hand.
pub(crate) fn parse_uuid(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored id {text:?} is not a UUID: {e}")))
}

/// Reads a column holding one of an enum's words (a status, a channel); a bad value
/// means the database was edited by hand.
pub(crate) fn parse_word<T>(text: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored value: {e}")))
}

pub(crate) fn is_unique_violation(error: &DieselError) -> bool {
    matches!(
        error,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Runs one INSERT inside the caller's transaction; `Ok(false)` when a unique key
/// already holds the row (a concurrent or earlier insert of the same thing). The insert
/// runs in a savepoint so the violation leaves the surrounding transaction usable: on
/// PostgreSQL a failed statement otherwise aborts the whole transaction. (diesel's
/// `ON CONFLICT DO NOTHING` is not available over the two-backend connection.)
pub(crate) fn insert_unless_present(
    conn: &mut crate::db::DbConnection,
    insert: impl FnOnce(&mut crate::db::DbConnection) -> diesel::QueryResult<usize>,
) -> Result<bool, ApiError> {
    use diesel::Connection;
    match conn.transaction(insert) {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Checks a free-text field: not longer than `max`, no control characters except
/// newlines and tabs (they would garble tables and logs).
pub(crate) fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.len() > max {
        return Err(ApiError::malformed(format!(
            "{field} is longer than {max} bytes"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ApiError::malformed(format!(
            "{field} contains control characters"
        )));
    }
    Ok(())
}

/// A required single-line field: trimmed, non-empty, bounded.
pub(crate) fn required_line(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::malformed(format!("{field} must not be empty")));
    }
    if value.contains(['\n', '\r']) {
        return Err(ApiError::malformed(format!("{field} must be one line")));
    }
    check_text(field, value, max)?;
    Ok(value.to_owned())
}

/// Contact addresses are compared case-insensitively: stored trimmed and lower-case.
pub fn normalize_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let bad = || ApiError::malformed(format!("{email:?} is not an email address"));
    if email.len() > MAX_EMAIL || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(email)
        }
        _ => Err(bad()),
    }
}

/// The refusal for an id the registry does not know.
pub(crate) fn unknown_server(server_id: Uuid) -> ApiError {
    ApiError::refused(
        ErrorCode::UnknownServerId,
        format!("license server id {server_id} is not known to Solme; check the id in your license server's configuration"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            normalize_email(" Ops@Acme.Example ").ok().as_deref(),
            Some("ops@acme.example")
        );
        for bad in [
            "",
            "no-at",
            "@acme.example",
            "ops@",
            "a@b@c",
            "a b@c.d",
            "ops@.x",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn text_fields_are_bounded() {
        assert!(required_line("name", "  ", 10).is_err());
        assert!(required_line("name", "x\ny", 10).is_err());
        assert!(required_line("name", "12345678901", 10).is_err());
        assert_eq!(
            required_line("name", " Acme ", 10).ok().as_deref(),
            Some("Acme")
        );
        assert!(check_text("text", "a\u{7}b", 10).is_err());
    }
}
