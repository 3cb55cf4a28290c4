//! Copies of one installation: the history each accepted sync leaves (`sync_history`),
//! the rule that marks an id a *possible copy*, the operator's dismissal and the
//! customer's policy. README, "Copies of one installation", says which histories are
//! flagged and why.
//!
//! One installation makes its requests one after the other: ordered by the time they
//! were made, their request counters grow and the license files they hold never get
//! older, whatever order they arrive in (a mailed file may come a month late). A
//! *going back* is a request whose counter is not above, or whose held file is older
//! than, the request made just before it. A restored backup goes back once and then
//! grows again; two installations with one key pair go back each time the one behind
//! syncs after the one ahead. So an id is marked at the second going back of one key
//! pair within [`HISTORY_DAYS`].
//!
//! SQLite runs the steps here, in the sync's transaction. PostgreSQL runs the same
//! steps inside `solme_issue_syncs` (migration `sync_function_copies`), after the id's
//! row lock, so two processes never judge one id at once: keep the two in step (the
//! query [`GOING_BACK`] and the words of [`evidence`]).

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use shared_proto::admin_api::{AuditAction, CopyPolicy, CustomerCopyPolicy, SyncChannel};
use shared_proto::ErrorCode;
use uuid::Uuid;

use super::audit;
use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::{customers, servers, sync_history};

/// How long a sync's history row is kept, and so the window in which two goings back
/// make a possible copy (two restored backups months apart are not one).
pub const HISTORY_DAYS: i64 = 90;

/// Goings back that mark an id: the first is a restored backup.
pub const GOINGS_BACK_MARKED: i64 = 2;

/// Requests shown in the evidence (the latest made, oldest first).
pub const EVIDENCE_ROWS: i64 = 8;

/// The goings back of one key pair's history (binds: server id, fingerprint). NULLs
/// (a request without counter or file) compare as unknown and count nothing.
pub const GOING_BACK: &str = "SELECT COUNT(*) AS n FROM (\
     SELECT h.request_counter AS c, h.held_sequence AS s, \
            LAG(h.request_counter) OVER (ORDER BY h.created_at, h.issued_sequence) AS pc, \
            LAG(h.held_sequence) OVER (ORDER BY h.created_at, h.issued_sequence) AS ps \
     FROM sync_history h WHERE h.server_id = $1 AND h.fingerprint = $2\
 ) t WHERE t.c <= t.pc OR t.s < t.ps";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// One request of the history, as the evidence shows it.
#[derive(Queryable)]
struct Row {
    issued_sequence: i64,
    created_at: i64,
    channel: String,
    request_counter: Option<i64>,
    held_sequence: Option<i64>,
    held_file_sha256: Option<String>,
}

/// The refusal under the customer's `refuse` policy, in words a customer acts on.
pub fn refused(server_id: Uuid) -> ApiError {
    ApiError::refused(
        ErrorCode::PossibleCopy,
        format!(
            "Solme has seen two installations synchronizing as license server {server_id} \
             (a copied data directory, a cloned virtual machine or a backup restored on a \
             second computer), and your license terms stop its synchronization until this \
             is cleared up. Keep one installation, then write to {address} naming the id \
             {server_id}: Solme will clear the mark",
            address = crate::wording::licensing_address()
        ),
    )
}

/// SQLite: refuses the sync when the id is marked and its customer's policy refuses
/// (runs after the id's row was written, so inside SQLite's write lock).
pub(crate) fn check_policy(conn: &mut DbConnection, server_id: Uuid) -> Result<(), ApiError> {
    let (since, policy): (Option<i64>, String) = servers::table
        .inner_join(customers::table)
        .filter(servers::id.eq(server_id.to_string()))
        .select((servers::possible_copy_since, customers::copy_policy))
        .first(conn)?;
    let policy: CopyPolicy = super::parse_word(&policy)?;
    if since.is_some() && policy == CopyPolicy::Refuse {
        return Err(refused(server_id));
    }
    Ok(())
}

/// What one accepted sync said about the installation that made it, as its history
/// keeps it (the sync's own inputs stay with the sync).
pub(crate) struct Seen<'a> {
    pub server_id: Uuid,
    pub fingerprint: &'a str,
    pub created_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub channel: SyncChannel,
    /// Audit actor (peer address or sender).
    pub actor: &'a str,
    pub request_counter: Option<i64>,
    pub held_sequence: Option<i64>,
    pub held_file_sha256: Option<&'a str>,
}

/// SQLite: records an accepted sync's history and marks the id when its history now
/// shows two installations. Returns whether this sync marked it.
pub(crate) fn record(
    conn: &mut DbConnection,
    seen: &Seen<'_>,
    issued_sequence: i64,
) -> Result<bool, ApiError> {
    let id = seen.server_id.to_string();
    diesel::insert_into(sync_history::table)
        .values((
            sync_history::server_id.eq(&id),
            sync_history::issued_sequence.eq(issued_sequence),
            sync_history::fingerprint.eq(seen.fingerprint),
            sync_history::created_at.eq(to_millis(seen.created_at)),
            sync_history::seen_at.eq(to_millis(seen.now)),
            sync_history::channel.eq(seen.channel.as_str()),
            sync_history::request_counter.eq(seen.request_counter),
            sync_history::held_sequence.eq(seen.held_sequence),
            sync_history::held_file_sha256.eq(seen.held_file_sha256),
        ))
        .execute(conn)?;
    let cutoff = to_millis(seen.now - chrono::Duration::days(HISTORY_DAYS));
    diesel::delete(
        sync_history::table
            .filter(sync_history::server_id.eq(&id))
            .filter(sync_history::seen_at.lt(cutoff)),
    )
    .execute(conn)?;

    let marked: Option<i64> = servers::table
        .find(&id)
        .select(servers::possible_copy_since)
        .first(conn)?;
    if marked.is_some() {
        return Ok(false);
    }
    let goings_back = diesel::sql_query(GOING_BACK.replace("$1", "?").replace("$2", "?"))
        .bind::<Text, _>(&id)
        .bind::<Text, _>(seen.fingerprint)
        .get_result::<Count>(conn)?
        .n;
    if goings_back < GOINGS_BACK_MARKED {
        return Ok(false);
    }
    diesel::update(servers::table.find(&id))
        .set(servers::possible_copy_since.eq(to_millis(seen.now)))
        .execute(conn)?;
    let mut rows: Vec<Row> = sync_history::table
        .filter(sync_history::server_id.eq(&id))
        .filter(sync_history::fingerprint.eq(seen.fingerprint))
        .order((
            sync_history::created_at.desc(),
            sync_history::issued_sequence.desc(),
        ))
        .limit(EVIDENCE_ROWS)
        .select((
            sync_history::issued_sequence,
            sync_history::created_at,
            sync_history::channel,
            sync_history::request_counter,
            sync_history::held_sequence,
            sync_history::held_file_sha256,
        ))
        .load(conn)?;
    rows.reverse();
    let detail = evidence(seen.fingerprint, goings_back, &rows);
    audit::record(
        conn,
        seen.now,
        seen.actor,
        AuditAction::PossibleCopy,
        Some(seen.server_id),
        &detail,
    )?;
    Ok(true)
}

/// The audit detail of a possible copy. `solme_issue_syncs` builds the same words.
fn evidence(fingerprint: &str, goings_back: i64, rows: &[Row]) -> String {
    let requests: Vec<String> = rows.iter().map(describe).collect();
    format!(
        "two installations seem to synchronize with key {fingerprint}: ordered by the time \
         they were made, this key pair's requests went back {goings_back} times (a request \
         counter not above the one before, or an older license file held; once is a \
         restored backup). Latest requests, oldest first: {}",
        requests.join("; ")
    )
}

fn describe(row: &Row) -> String {
    let held = match (row.held_sequence, &row.held_file_sha256) {
        (None, _) => "no license file held".to_owned(),
        (Some(s), None) => format!("held sequence {s}"),
        (Some(s), Some(hash)) => {
            format!(
                "held sequence {s} (file {})",
                hash.get(..12).unwrap_or(hash)
            )
        }
    };
    format!(
        "[counter {}, {held}, {}, made {}, answered with sequence {}]",
        row.request_counter
            .map_or_else(|| "not sent".to_owned(), |c| c.to_string()),
        row.channel,
        from_millis(row.created_at).to_rfc3339_opts(SecondsFormat::Secs, true),
        row.issued_sequence
    )
}

/// An operator's decision on a possible copy (a restored backup, a lost mail, or the
/// copy is gone): clears the mark and forgets the id's history, so a new mark needs new
/// evidence. Audited. `NOT_FOUND` for an unknown id; clearing an unmarked id changes
/// nothing and says so.
pub fn dismiss(
    conn: &mut DbConnection,
    server_id: Uuid,
    actor: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let reason = reason
        .map(|r| super::required_line("reason", r, super::MAX_REASON))
        .transpose()?;
    conn.transaction(|conn| {
        let id = server_id.to_string();
        let since: Option<Option<i64>> = servers::table
            .find(&id)
            .select(servers::possible_copy_since)
            .first(conn)
            .optional()?;
        let Some(since) = since else {
            return Err(super::unknown_server(server_id));
        };
        let Some(since) = since else {
            return Ok(None);
        };
        diesel::update(servers::table.find(&id))
            .set(servers::possible_copy_since.eq(None::<i64>))
            .execute(conn)?;
        diesel::delete(sync_history::table.filter(sync_history::server_id.eq(&id)))
            .execute(conn)?;
        let since = from_millis(since);
        let detail = format!(
            "possible copy marked since {} dismissed{}",
            since.to_rfc3339_opts(SecondsFormat::Secs, true),
            reason.map_or_else(String::new, |r| format!(": {r}"))
        );
        audit::record(
            conn,
            now,
            actor,
            AuditAction::PossibleCopyDismiss,
            Some(server_id),
            &detail,
        )?;
        Ok(Some(since))
    })
}

/// Ids marked a possible copy right now (the metric).
pub fn count_marked(conn: &mut DbConnection) -> Result<i64, ApiError> {
    Ok(servers::table
        .filter(servers::possible_copy_since.is_not_null())
        .count()
        .get_result(conn)?)
}

/// Since when an id is marked, if it is.
pub fn marked_since(
    conn: &mut DbConnection,
    server_id: Uuid,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let since: Option<Option<i64>> = servers::table
        .find(server_id.to_string())
        .select(servers::possible_copy_since)
        .first(conn)
        .optional()?;
    Ok(since.flatten().map(from_millis))
}

/// Sets what possible copies of the customer's ids do to their syncs. Audited when it
/// changes. `NOT_FOUND` for an unknown customer.
pub fn set_policy(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    actor: &str,
    customer_id: Uuid,
    policy: CopyPolicy,
) -> Result<CustomerCopyPolicy, ApiError> {
    conn.transaction(|conn| {
        let id = customer_id.to_string();
        let before: Option<String> = customers::table
            .find(&id)
            .select(customers::copy_policy)
            .first(conn)
            .optional()?;
        let Some(before) = before else {
            return Err(ApiError::not_found(format!("no customer {customer_id}")));
        };
        if before != policy.as_str() {
            diesel::update(customers::table.find(&id))
                .set(customers::copy_policy.eq(policy.as_str()))
                .execute(conn)?;
            let detail = format!(
                "customer {customer_id}: possible copies {}",
                match policy {
                    CopyPolicy::Warn => "are shown, their syncs still answered (warn)",
                    CopyPolicy::Refuse => "have their syncs refused until dismissed (refuse)",
                }
            );
            audit::record(
                conn,
                now,
                actor,
                AuditAction::CustomerCopyPolicy,
                None,
                &detail,
            )?;
        }
        Ok(CustomerCopyPolicy {
            customer_id,
            policy,
        })
    })
}
