//! The usage summaries syncs carry: one row per id and license file issued, written in
//! the sync's transaction (SQLite here; PostgreSQL in the statement that calls
//! `solme_issue_syncs`, see [`super::sync`]), read by `admin server usage` and the
//! console.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use shared_proto::admin_api::{SyncChannel, SyncUsage};
use uuid::Uuid;

use super::unknown_server;
use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::{servers, sync_usage};

/// Syncs listed when the caller names no limit, and the most it may ask for.
pub const DEFAULT_SYNCS: u32 = 50;
pub const MAX_SYNCS: u32 = 1_000;

/// Stores the summary of the sync that issued `sequence` (SQLite path).
pub(crate) fn record(
    conn: &mut DbConnection,
    server_id: Uuid,
    sequence: i64,
    at: DateTime<Utc>,
    channel: SyncChannel,
    usage_since: Option<DateTime<Utc>>,
    features: &str,
) -> QueryResult<usize> {
    diesel::insert_into(sync_usage::table)
        .values((
            sync_usage::server_id.eq(server_id.to_string()),
            sync_usage::sequence.eq(sequence),
            sync_usage::synced_at.eq(to_millis(at)),
            sync_usage::channel.eq(channel.as_str()),
            sync_usage::usage_since.eq(usage_since.map(to_millis)),
            sync_usage::features.eq(features),
        ))
        .execute(conn)
}

/// The newest `limit` syncs of an id with their usage, oldest first (as a chart reads).
pub fn list(
    conn: &mut DbConnection,
    server_id: Uuid,
    limit: Option<u32>,
) -> Result<Vec<SyncUsage>, ApiError> {
    let id = server_id.to_string();
    let known: i64 = servers::table
        .filter(servers::id.eq(&id))
        .count()
        .get_result(conn)?;
    if known == 0 {
        return Err(unknown_server(server_id));
    }
    let limit = limit.unwrap_or(DEFAULT_SYNCS).clamp(1, MAX_SYNCS);
    let rows: Vec<(i64, i64, String, Option<i64>, String)> = sync_usage::table
        .filter(sync_usage::server_id.eq(&id))
        .order(sync_usage::sequence.desc())
        .limit(i64::from(limit))
        .select((
            sync_usage::sequence,
            sync_usage::synced_at,
            sync_usage::channel,
            sync_usage::usage_since,
            sync_usage::features,
        ))
        .load(conn)?;
    rows.into_iter()
        .rev()
        .map(|(sequence, synced_at, channel, since, features)| {
            Ok(SyncUsage {
                sequence,
                synced_at: from_millis(synced_at),
                channel: channel
                    .parse()
                    .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored sync channel: {e}")))?,
                usage_since: since.map(from_millis),
                features: serde_json::from_str(&features).map_err(|e| {
                    ApiError::Internal(anyhow::anyhow!("stored usage is not readable: {e}"))
                })?,
            })
        })
        .collect()
}
