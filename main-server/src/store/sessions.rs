//! Console sessions: the web console exchanges an operator's personal token for a
//! short-lived session secret, so the personal token is pasted once and never kept in
//! the browser. Only the SHA-256 of the secret is stored (like tokens, see `auth.rs`).
//! A session is looked up on every request and counts only while it has not expired
//! and its account is active with the same personal token it was opened with: a
//! revocation or rotation ends the account's sessions at once, on every replica.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use secrecy::ExposeSecret;
use shared_proto::admin_api::{AuditAction, ConsoleSession, Identity};

use super::audit;
use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::{console_sessions, operators};
use crate::tokens::{generate, token_hash, SESSION_PREFIX};

/// How long a console session lasts from sign-in (a working day).
pub const SESSION_HOURS: i64 = 8;
/// Open sessions one account keeps at most; signing in again ends the oldest (a closed
/// tab forgets its session without signing out).
pub const MAX_SESSIONS_PER_OPERATOR: i64 = 20;
/// Longest presented session secret worth hashing.
const MAX_SECRET: usize = 512;

/// Opens a session for `identity`, authenticated just now by the personal token whose
/// hash is `token_hash`; ends expired sessions and the account's oldest beyond the cap.
pub fn open(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    identity: &Identity,
    personal_token_hash: &str,
) -> Result<ConsoleSession, ApiError> {
    let secret = format!(
        "{SESSION_PREFIX}{}",
        generate().map_err(ApiError::Internal)?.expose_secret()
    );
    let expires_at = now + Duration::hours(SESSION_HOURS);
    conn.transaction(|conn| {
        diesel::delete(console_sessions::table)
            .filter(console_sessions::expires_at.le(to_millis(now)))
            .execute(conn)?;
        let beyond_cap: Vec<String> = console_sessions::table
            .filter(console_sessions::operator.eq(&identity.name))
            .order(console_sessions::created_at.desc())
            .limit(1_000)
            .offset(MAX_SESSIONS_PER_OPERATOR - 1)
            .select(console_sessions::secret_hash)
            .load(conn)?;
        if !beyond_cap.is_empty() {
            diesel::delete(console_sessions::table)
                .filter(console_sessions::secret_hash.eq_any(&beyond_cap))
                .execute(conn)?;
        }
        diesel::insert_into(console_sessions::table)
            .values((
                console_sessions::secret_hash.eq(token_hash(&secret)),
                console_sessions::operator.eq(&identity.name),
                console_sessions::token_hash.eq(personal_token_hash),
                console_sessions::created_at.eq(to_millis(now)),
                console_sessions::expires_at.eq(to_millis(expires_at)),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            now,
            &identity.name,
            AuditAction::SessionStart,
            None,
            &format!(
                "console session of {} ({}) until {}",
                identity.name,
                identity.role,
                expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )
    })?;
    Ok(ConsoleSession {
        name: identity.name.clone(),
        role: identity.role,
        session: secret,
        expires_at: from_millis(to_millis(expires_at)),
    })
}

/// The identity a presented session secret belongs to, if the session is still valid
/// at `now`; with the stored hash, which [`close`] takes.
pub fn authenticate(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    presented: &str,
) -> Result<Option<(Identity, String)>, ApiError> {
    if presented.len() > MAX_SECRET {
        return Ok(None);
    }
    let hash = token_hash(presented);
    let row: Option<(String, String, String)> = console_sessions::table
        .inner_join(operators::table)
        .filter(console_sessions::secret_hash.eq(&hash))
        .filter(console_sessions::expires_at.gt(to_millis(now)))
        .filter(operators::revoked_at.is_null())
        .filter(operators::token_hash.eq(console_sessions::token_hash))
        .select((
            operators::name,
            operators::role,
            console_sessions::secret_hash,
        ))
        .first(conn)
        .optional()?;
    let Some((name, role, stored)) = row else {
        return Ok(None);
    };
    // Found by equality already; what decides is a constant-time comparison.
    if stored.len() != hash.len() || !openssl::memcmp::eq(stored.as_bytes(), hash.as_bytes()) {
        return Ok(None);
    }
    let identity = Identity {
        role: super::parse_word(&role)?,
        name,
    };
    Ok(Some((identity, stored)))
}

/// Ends the session stored as `secret_hash` (sign-out).
pub fn close(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    identity: &Identity,
    secret_hash: &str,
) -> Result<(), ApiError> {
    conn.transaction(|conn| {
        diesel::delete(console_sessions::table.find(secret_hash)).execute(conn)?;
        audit::record(
            conn,
            now,
            &identity.name,
            AuditAction::SessionEnd,
            None,
            &format!("console session of {} signed out", identity.name),
        )
    })
}
