//! Operator accounts and service identities: who may call the admin API, with which
//! role. Only the SHA-256 of a token is stored (see `auth.rs`); the token itself is in
//! the answer of `add` and `rotate` and nowhere else.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use shared_proto::admin_api::{AuditAction, Identity, IssuedToken, OperatorAccount, Role};
use shared_proto::ErrorCode;

use super::audit;
use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::operators;
use crate::tokens::{generate, token_hash};

/// Longest operator name (it is shown in every audit entry the operator causes).
pub const MAX_OPERATOR_NAME: usize = 64;
/// Longest token worth hashing: anything longer is no token of ours.
const MAX_TOKEN: usize = 512;

#[derive(Queryable, Selectable)]
#[diesel(table_name = operators)]
struct Row {
    name: String,
    role: String,
    token_hash: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl Row {
    fn account(self) -> Result<OperatorAccount, ApiError> {
        Ok(OperatorAccount {
            role: super::parse_word(&self.role)?,
            name: self.name,
            created_at: from_millis(self.created_at),
            revoked_at: self.revoked_at.map(from_millis),
        })
    }
}

/// A name: 1 to 64 of letters, digits, `.`, `_`, `-`, `@`.
fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= MAX_OPERATOR_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(ApiError::malformed(format!(
            "an operator name is 1 to {MAX_OPERATOR_NAME} letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

/// The active identity a presented token belongs to, if any.
pub fn authenticate(
    conn: &mut DbConnection,
    presented: &str,
) -> Result<Option<Identity>, ApiError> {
    if presented.is_empty() || presented.len() > MAX_TOKEN {
        return Ok(None);
    }
    let hash = token_hash(presented);
    let row: Option<Row> = operators::table
        .filter(operators::token_hash.eq(&hash))
        .filter(operators::revoked_at.is_null())
        .select(Row::as_select())
        .first(conn)
        .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    // The lookup found it by equality already; compare again in constant time so
    // that what decides is never a data-dependent comparison.
    if !openssl::memcmp::eq(row.token_hash.as_bytes(), hash.as_bytes())
        || row.token_hash.len() != hash.len()
    {
        return Ok(None);
    }
    Ok(Some(Identity {
        role: super::parse_word(&row.role)?,
        name: row.name,
    }))
}

fn find(conn: &mut DbConnection, name: &str) -> Result<Option<Row>, ApiError> {
    Ok(operators::table
        .find(name)
        .select(Row::as_select())
        .first(conn)
        .optional()?)
}

/// Adds an account with a fresh token.
pub fn add(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    actor: &str,
    name: &str,
    role: Role,
) -> Result<IssuedToken, ApiError> {
    let name = check_name(name)?;
    let token = generate().map_err(ApiError::Internal)?;
    conn.transaction(|conn| {
        let inserted = insert_account(conn, now, &name, role, &token)?;
        if !inserted {
            return Err(ApiError::refused(
                ErrorCode::NameTaken,
                format!("an operator named {name} exists already (names are never reused)"),
            ));
        }
        audit::record(
            conn,
            now,
            actor,
            AuditAction::OperatorAdd,
            None,
            &format!("operator {name}, role {role}"),
        )
    })?;
    Ok(IssuedToken {
        name,
        role,
        token: token.expose_secret().to_owned(),
    })
}

/// Every account, by name.
pub fn list(conn: &mut DbConnection) -> Result<Vec<OperatorAccount>, ApiError> {
    let rows: Vec<Row> = operators::table
        .select(Row::as_select())
        .order(operators::name.asc())
        .load(conn)?;
    rows.into_iter().map(Row::account).collect()
}

fn unknown(name: &str) -> ApiError {
    ApiError::not_found(format!("no operator named {name}"))
}

/// Revokes an account: its token stops working with the next request.
pub fn revoke(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    actor: &str,
    name: &str,
) -> Result<OperatorAccount, ApiError> {
    conn.transaction(|conn| {
        let row = find(conn, name)?.ok_or_else(|| unknown(name))?;
        if row.revoked_at.is_none() && row.role == Role::Admin.as_str() {
            let admins: i64 = operators::table
                .filter(operators::role.eq(Role::Admin.as_str()))
                .filter(operators::revoked_at.is_null())
                .count()
                .get_result(conn)?;
            if admins <= 1 {
                return Err(ApiError::refused(
                    ErrorCode::Forbidden,
                    format!("{name} is the last admin: add another admin before revoking it"),
                ));
            }
        }
        diesel::update(operators::table.find(name))
            .filter(operators::revoked_at.is_null())
            .set(operators::revoked_at.eq(to_millis(now)))
            .execute(conn)?;
        audit::record(
            conn,
            now,
            actor,
            AuditAction::OperatorRevoke,
            None,
            &format!("operator {name}"),
        )?;
        find(conn, name)?.ok_or_else(|| unknown(name))?.account()
    })
}

/// Gives an active account a new token; the old one stops working at once.
pub fn rotate(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    actor: &str,
    name: &str,
) -> Result<IssuedToken, ApiError> {
    let token = generate().map_err(ApiError::Internal)?;
    conn.transaction(|conn| {
        let row = find(conn, name)?.ok_or_else(|| unknown(name))?;
        if row.revoked_at.is_some() {
            return Err(ApiError::refused(
                ErrorCode::Forbidden,
                format!("{name} is revoked; add a new operator instead"),
            ));
        }
        diesel::update(operators::table.find(name))
            .set(operators::token_hash.eq(token_hash(token.expose_secret())))
            .execute(conn)?;
        audit::record(
            conn,
            now,
            actor,
            AuditAction::OperatorRotate,
            None,
            &format!("operator {name}"),
        )?;
        Ok(IssuedToken {
            role: super::parse_word(&row.role)?,
            name: row.name,
            token: token.expose_secret().to_owned(),
        })
    })
}

/// Inserts an account; `Ok(false)` when the name (or the token) is taken. The token
/// files of `init` (or of an installation from before operator accounts) are adopted
/// through it: an account of that name that exists, rotated or revoked in the database
/// since, is never undone by the file.
pub fn insert_account(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    name: &str,
    role: Role,
    token: &SecretString,
) -> Result<bool, ApiError> {
    super::insert_unless_present(conn, |conn| {
        diesel::insert_into(operators::table)
            .values((
                operators::name.eq(name),
                operators::role.eq(role.as_str()),
                operators::token_hash.eq(token_hash(token.expose_secret())),
                operators::created_at.eq(to_millis(now)),
            ))
            .execute(conn)
    })
}
