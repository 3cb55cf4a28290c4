//! The audit log as the admin API pages, searches and exports it: one entry with its
//! number and chain position, a page of entries with the cursors around it, and where
//! the chain's last verification stands.
//!
//! Cursors are opaque to callers: the text `AT_MS.ENTRY` (the entry's time in Unix
//! milliseconds and its number). Pages are ordered newest first by time, then by entry
//! number; a cursor names a place in that order, so a page asked with one is the same
//! however many entries were written meanwhile.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admin_api::{AuditAction, AuditOutcome};

/// Most entries a free-text search looks at for one page; the page says where it
/// stopped when it stopped there.
pub const SEARCH_WINDOW: u64 = 50_000;
/// Longest free-text search accepted (characters).
pub const MAX_SEARCH: usize = 200;
/// Entries per page: default and most.
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 1_000;

/// One audit entry with its place in the log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The entry's number (its row id): grows with every entry written.
    pub entry: i64,
    /// Its position in the hash chain; `None` until it is sealed (within seconds).
    pub chain_seq: Option<u64>,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: AuditAction,
    pub server_id: Option<Uuid>,
    pub outcome: AuditOutcome,
    pub detail: String,
    /// This page's cursor at this entry.
    pub cursor: String,
}

/// How far a free-text search looked for one page.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchReach {
    /// The most entries matching the other filters it looks at for one page
    /// ([`SEARCH_WINDOW`]).
    pub limit: u64,
    /// Whether it looked at every entry in the page's direction. When `false` the
    /// search stopped after `limit` entries: fewer matches than the page holds does
    /// not mean there are no more; the page's cursor continues the search.
    pub complete: bool,
    /// The time of the last entry looked at, when it stopped early.
    pub stopped_at: Option<DateTime<Utc>>,
}

/// Where the audit chain's verification stands, as stored by the last `verify`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditChainStatus {
    /// The newest sealed position (0: nothing sealed yet).
    pub head_seq: u64,
    /// Verified intact from position 1 up to this position (0: never verified).
    pub verified_seq: u64,
    /// That entry's hash when it was verified.
    pub verified_hash: Option<String>,
    /// When it was verified.
    pub verified_at: Option<DateTime<Utc>>,
    /// The problem the last verification found, if it found one.
    pub broken: Option<ChainBreak>,
}

/// The first problem the last verification found.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    /// The position named.
    pub chain_seq: u64,
    /// The finding in plain words.
    pub message: String,
    /// When the verification found it.
    pub found_at: DateTime<Utc>,
}

/// The answer of `GET /admin/v1/audit/entries`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditRecord>,
    /// Give as `before` for the next page (older entries); `None` when no older
    /// entry matches (or, for a search, none within reach: see `search`).
    pub older: Option<String>,
    /// Give as `after` for the previous page (newer entries); `None` on the first page.
    pub newer: Option<String>,
    /// With a free-text search: how far it looked.
    pub search: Option<SearchReach>,
    /// The chain's verification.
    pub chain: AuditChainStatus,
}

/// The answer of `GET /admin/v1/audit/verify`: the walk's report, and which walk it was.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerifyReport {
    #[serde(flatten)]
    pub report: crate::admin_api::AuditVerification,
    /// `true`: the walk started after the last verified head (only newer entries were
    /// walked, after checking that head's hash); `false`: from position 1.
    pub incremental: bool,
    /// The position the walk started after (0 for a full walk).
    pub started_after: u64,
}

/// The first line of a CSV export.
pub const CSV_HEADER: &str =
    "entry,chain position,time (UTC),actor,action,license server id,outcome,detail\r\n";

/// One entry as a CSV line (RFC 4180: fields with a comma, quote or line break are
/// quoted, quotes doubled). A field a spreadsheet would read as a formula (starting
/// with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`, so that
/// opening an export never runs what a customer or an attacker wrote into a detail.
pub fn csv_line(out: &mut String, record: &AuditRecord) {
    let fields = [
        record.entry.to_string(),
        record.chain_seq.map(|s| s.to_string()).unwrap_or_default(),
        record.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        record.actor.clone(),
        record.action.to_string(),
        record.server_id.map(|s| s.to_string()).unwrap_or_default(),
        record.outcome.to_string(),
        record.detail.clone(),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let guarded = if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{field}")
        } else {
            field.clone()
        };
        if guarded.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&guarded.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&guarded);
        }
    }
    out.push_str("\r\n");
}
