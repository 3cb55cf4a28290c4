//! Retired license server ids at the sync: a retired id is refused with
//! `SERVER_RETIRED` whichever channel asks. (Retiring one is in `servers.rs`.)
//!
//! SQLite checks inside the sync's transaction ([`check`]): its writes all go through
//! one connection, so a retire commits wholly before the sync (refused) or after it.
//! PostgreSQL checks inside `solme_issue_syncs` (migration `sync_function_retired`),
//! after the id's row lock: retiring updates that row, so a retire committed a moment
//! before a grouped sync makes the lock wait for it, and the check then sees it; the
//! function answers `SERVER_RETIRED` with the time, and [`refused_since`] words it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
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
