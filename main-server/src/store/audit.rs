//! The audit log: one row per sync attempt and per admin action, never updated.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::audit_log;
use shared_proto::admin_api::AuditEntry;

/// Most entries one read returns.
pub const MAX_LIMIT: u32 = 1_000;

/// One audit row to write.
pub struct Event<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub server_id: Option<Uuid>,
    pub outcome: &'a str,
    pub detail: &'a str,
}

pub fn record(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    event: &Event<'_>,
) -> Result<(), ApiError> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::at.eq(to_millis(now)),
            audit_log::actor.eq(event.actor),
            audit_log::action.eq(event.action),
            audit_log::server_id.eq(event.server_id.map(|id| id.to_string())),
            audit_log::outcome.eq(event.outcome),
            audit_log::detail.eq(event.detail),
        ))
        .execute(conn)?;
    Ok(())
}

/// Newest first.
pub fn list(conn: &mut DbConnection, limit: u32) -> Result<Vec<AuditEntry>, ApiError> {
    let rows: Vec<(i64, String, String, Option<String>, String, String)> = audit_log::table
        .select((
            audit_log::at,
            audit_log::actor,
            audit_log::action,
            audit_log::server_id,
            audit_log::outcome,
            audit_log::detail,
        ))
        .order(audit_log::id.desc())
        .limit(i64::from(limit.min(MAX_LIMIT)))
        .load(conn)?;
    rows.into_iter()
        .map(|(at, actor, action, server_id, outcome, detail)| {
            Ok(AuditEntry {
                at: from_millis(at),
                actor,
                action,
                server_id: server_id.as_deref().map(super::parse_uuid).transpose()?,
                outcome,
                detail,
            })
        })
        .collect()
}
