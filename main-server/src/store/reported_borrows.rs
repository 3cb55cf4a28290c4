//! Seats out on borrow, as each key pair of an id last reported them (README,
//! "Borrowed seats across a reinstall").
//!
//! Every accepted sync whose installation holds a license file stores the borrowed
//! seats its request reports, per key pair, keeping the report made last. A request
//! that holds no file reports nothing worth keeping (an installation lends nothing
//! before its first file), so it never replaces a set. After a key clearing, the files
//! to the id's new key pair carry the set the key pair before it reported last, until
//! the new installation holds a file: from then on it reports those seats itself.
//!
//! SQLite stores the report in the sync's transaction ([`record`]); PostgreSQL in the
//! statement that runs `solme_issue_syncs` (`store::sync`, `GROUP_STATEMENT`), with the
//! same upsert ([`RECORD`]).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use shared_proto::borrows::{InheritedBorrows, OutstandingBorrow};
use shared_proto::Fingerprint;
use uuid::Uuid;

use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;

/// Stores one report (binds: server id, fingerprint, made at, borrows as JSON, seen
/// at). A report made earlier than the one kept (a mailed file arriving late) changes
/// nothing.
pub const RECORD: &str = "INSERT INTO reported_borrows (server_id, fingerprint, reported_at, \
     borrows, seen_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (server_id, fingerprint) DO \
     UPDATE SET reported_at = excluded.reported_at, borrows = excluded.borrows, \
     seen_at = excluded.seen_at WHERE excluded.reported_at >= reported_borrows.reported_at";

/// The report of the key pair seen last before the one bound (binds: id, fingerprint):
/// by Solme's clock, since two installations' clocks need not agree.
const PREVIOUS: &str = "SELECT fingerprint, reported_at, borrows FROM reported_borrows \
     WHERE server_id = $1 AND fingerprint <> $2 ORDER BY seen_at DESC, reported_at DESC \
     LIMIT 1";

#[derive(QueryableByName)]
struct Reported {
    #[diesel(sql_type = Text)]
    fingerprint: String,
    #[diesel(sql_type = BigInt)]
    reported_at: i64,
    #[diesel(sql_type = Text)]
    borrows: String,
}

/// The statement in the connection's dialect (`$n` on PostgreSQL, `?` on SQLite; each
/// bind appears once and in order).
fn dialect(conn: &DbConnection, sql: &str) -> String {
    match conn {
        DbConnection::Postgres(_) => sql.to_owned(),
        DbConnection::Sqlite(_) => {
            (1..=5).fold(sql.to_owned(), |s, n| s.replace(&format!("${n}"), "?"))
        }
    }
}

/// What a request's report is stored as: its JSON, when it is worth keeping (see the
/// module's words: only from an installation holding a license file).
pub fn to_store(
    held_sequence: Option<i64>,
    borrows: Option<&[OutstandingBorrow]>,
) -> Result<Option<String>, ApiError> {
    match (held_sequence, borrows) {
        (Some(_), Some(borrows)) => serde_json::to_string(borrows).map(Some).map_err(|e| {
            ApiError::Internal(anyhow::Error::new(e).context("encoding reported borrows"))
        }),
        _ => Ok(None),
    }
}

/// SQLite, in the sync's transaction: stores the report of an accepted sync.
pub(crate) fn record(
    conn: &mut DbConnection,
    server_id: Uuid,
    fingerprint: &str,
    reported_at: DateTime<Utc>,
    borrows: &str,
    seen_at: DateTime<Utc>,
) -> Result<(), ApiError> {
    diesel::sql_query(dialect(conn, RECORD))
        .bind::<Text, _>(server_id.to_string())
        .bind::<Text, _>(fingerprint)
        .bind::<BigInt, _>(to_millis(reported_at))
        .bind::<Text, _>(borrows)
        .bind::<BigInt, _>(to_millis(seen_at))
        .execute(conn)?;
    Ok(())
}

/// What a license file to the key pair `fingerprint` of `server_id` carries over: the
/// seats the previous key pair last reported that are still out at `now`. None when
/// there was no other key pair, or none of its seats is still out. Call it only for a
/// request holding no license file (a new installation).
pub fn inherited(
    conn: &mut DbConnection,
    server_id: Uuid,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<Option<InheritedBorrows>, ApiError> {
    let previous: Option<Reported> = diesel::sql_query(dialect(conn, PREVIOUS))
        .bind::<Text, _>(server_id.to_string())
        .bind::<Text, _>(fingerprint)
        .get_result(conn)
        .optional()?;
    let Some(previous) = previous else {
        return Ok(None);
    };
    let internal = |what: &str| ApiError::Internal(anyhow::anyhow!("reported borrows: {what}"));
    let borrows: Vec<OutstandingBorrow> = serde_json::from_str(&previous.borrows)
        .map_err(|e| internal(&format!("unreadable: {e}")))?;
    let borrows: Vec<OutstandingBorrow> = borrows.into_iter().filter(|b| b.until > now).collect();
    if borrows.is_empty() {
        return Ok(None);
    }
    let from_key = Fingerprint::try_from(previous.fingerprint)
        .map_err(|e| internal(&format!("a stored fingerprint is not one: {e}")))?;
    Ok(Some(InheritedBorrows {
        from_key,
        reported_at: from_millis(previous.reported_at),
        borrows,
    }))
}
