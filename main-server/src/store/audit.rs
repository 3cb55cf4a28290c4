//! The audit log: one row per sync attempt and per admin action, never updated.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::audit_log;
use shared_proto::admin_api::{AuditAction, AuditEntry, AuditOutcome};

/// Most entries one read returns.
pub const MAX_LIMIT: u32 = 1_000;

/// A date as the audit detail shows it (`2027-03-01 00:00 UTC`), or `none`.
pub fn date_or(at: Option<DateTime<Utc>>, none: &str) -> String {
    at.map_or_else(
        || none.to_owned(),
        |at| at.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// Records a successful `action` by `actor`. `detail` is read by operators: short
/// phrases separated by commas (`channel internet, held sequence 1`), never Rust's
/// debug form.
pub fn record(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    actor: &str,
    action: AuditAction,
    server_id: Option<Uuid>,
    detail: &str,
) -> Result<(), ApiError> {
    insert(
        conn,
        now,
        actor,
        action,
        server_id,
        AuditOutcome::Ok,
        detail,
    )
}

/// Records an entry made outside a store transaction (a sync refused before the
/// database was asked), with its own outcome.
pub fn record_entry(conn: &mut DbConnection, entry: &AuditEntry) -> Result<(), ApiError> {
    insert(
        conn,
        entry.at,
        &entry.actor,
        entry.action,
        entry.server_id,
        entry.outcome,
        &entry.detail,
    )
}

fn insert(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    actor: &str,
    action: AuditAction,
    server_id: Option<Uuid>,
    outcome: AuditOutcome,
    detail: &str,
) -> Result<(), ApiError> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::at.eq(to_millis(now)),
            audit_log::actor.eq(actor),
            audit_log::action.eq(action.as_str()),
            audit_log::server_id.eq(server_id.map(|id| id.to_string())),
            audit_log::outcome.eq(outcome.as_str()),
            audit_log::detail.eq(detail),
        ))
        .execute(conn)?;
    Ok(())
}

/// One stored entry, as read (the chain's rows carry it too).
#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub(super) struct Row {
    pub(super) at: i64,
    pub(super) actor: String,
    pub(super) action: String,
    pub(super) server_id: Option<String>,
    pub(super) outcome: String,
    pub(super) detail: String,
}

/// Newest first.
pub fn list(conn: &mut DbConnection, limit: u32) -> Result<Vec<AuditEntry>, ApiError> {
    let rows: Vec<Row> = audit_log::table
        .select(Row::as_select())
        .order(audit_log::id.desc())
        .limit(i64::from(limit.min(MAX_LIMIT)))
        .load(conn)?;
    rows.into_iter()
        .map(|row| {
            Ok(AuditEntry {
                at: from_millis(row.at),
                actor: row.actor,
                action: super::parse_word(&row.action)?,
                server_id: row
                    .server_id
                    .as_deref()
                    .map(super::parse_uuid)
                    .transpose()?,
                outcome: super::parse_word(&row.outcome)?,
                detail: row.detail,
            })
        })
        .collect()
}
