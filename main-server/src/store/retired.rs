//! Retired license server ids at the sync: a retired id is refused with
//! `SERVER_RETIRED` whichever channel asks. (Retiring one is in `servers.rs`.)
//!
//! A sync that runs in its own transaction (every SQLite sync, a file channel's on
//! PostgreSQL) checks inside it: on SQLite, whose writes all go through one
//! connection, a retire commits wholly before the sync (refused) or after it. The
//! grouped PostgreSQL syncs (`crate::writer`) read the group's retired ids just before
//! the sync function runs and leave those out; the function itself does not check,
//! so a retire committed in that moment lets one last sync through.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::PgConnection;
use shared_proto::ErrorCode;
use uuid::Uuid;

use crate::db::{from_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::servers;

/// The refusal of a retired id's sync, in words its customer acts on.
pub fn refused_since(server_id: Uuid, retired_at: DateTime<Utc>) -> ApiError {
    ApiError::refused(
        ErrorCode::ServerRetired,
        format!(
            "license server id {server_id} was retired by Solme on {} and no longer \
             synchronizes; if an installation still needs licenses, ask Solme for a new id",
            retired_at.format("%Y-%m-%d")
        ),
    )
}

/// SQLite, inside the sync's transaction: refuses a retired id.
pub(crate) fn check(conn: &mut DbConnection, server_id: Uuid) -> Result<(), ApiError> {
    let retired_at: Option<Option<i64>> = servers::table
        .find(server_id.to_string())
        .select(servers::retired_at)
        .first(conn)
        .optional()?;
    match retired_at.flatten() {
        Some(at) => Err(refused_since(server_id, from_millis(at))),
        None => Ok(()),
    }
}

/// PostgreSQL, before a group of syncs: the retired ones among `ids`, with when each
/// was retired. One indexed read per group.
pub(crate) fn retired_among(
    conn: &mut PgConnection,
    ids: &[String],
) -> QueryResult<HashMap<String, DateTime<Utc>>> {
    let rows: Vec<(String, Option<i64>)> = servers::table
        .filter(servers::id.eq_any(ids))
        .filter(servers::retired_at.is_not_null())
        .select((servers::id, servers::retired_at))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, at)| Some((id, from_millis(at?))))
        .collect())
}
