//! The database half of a sync: bind or compare the key pair, consume the request id,
//! issue the next sequence number and write the audit entry, all in one transaction.
//!
//! SQLite (one writer connection, in process) runs separate statements. The first does
//! the common case whole: `UPDATE servers SET sequence = sequence + 1, … WHERE id = ?
//! AND bound_fingerprint = ? RETURNING …` (the key is already bound to this id). When
//! that touches no row, the bind is the single statement `UPDATE servers SET
//! bound_fingerprint = ?, … WHERE id = ? AND bound_fingerprint IS NULL`. The first
//! UPDATE takes SQLite's write lock before anything is read, so exactly one key wins.
//!
//! PostgreSQL (several processes, a network round trip per statement) runs the same
//! steps inside the server-side function `solme_issue_syncs` (migration
//! `sync_function`): one statement for a whole group of syncs, i.e. one round trip and
//! one commit. There the id's row is locked `FOR UPDATE` before the binding is read, so
//! a concurrent first sync waits for the winner's commit and then sees its key bound;
//! the request id is consumed with `ON CONFLICT DO NOTHING`, so a replay inserts
//! nothing even when another process committed it a moment ago.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types;
use shared_proto::admin_api::{AuditAction, AuditOutcome, SyncChannel};
use shared_proto::ErrorCode;
use uuid::Uuid;

use super::audit;
use super::{licenses, unknown_server};
use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::{customers, servers, used_requests};
use shared_proto::admin_api::License;

/// What the transaction hands to the sealing step.
pub struct Issued {
    pub sequence: i64,
    pub revision: i64,
    pub customer: String,
    pub licenses: Vec<License>,
    /// Whether this sync bound the key pair (first sync after allocation or a clear).
    pub bound_now: bool,
    /// Whether this sync marked the id a possible copy.
    pub marked_copy: bool,
}

/// Inputs of one accepted-so-far sync. Owned, so it can be handed to the thread that
/// writes it.
pub struct Attempt {
    pub server_id: Uuid,
    pub request_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub fingerprint: String,
    pub channel: SyncChannel,
    pub now: DateTime<Utc>,
    /// Audit actor (peer address or sender).
    pub actor: String,
    pub detail: String,
    /// The request's usage summary as JSON (already bounded), and where its period
    /// begins: stored with the sync in `sync_usage`.
    pub usage: String,
    pub usage_since: Option<DateTime<Utc>>,
    /// What the request said about the installation that made it (see
    /// [`super::copies`]): its request counter, and the license file it held.
    pub request_counter: Option<i64>,
    pub held_sequence: Option<i64>,
    pub held_file_sha256: Option<String>,
    /// The seats out on borrow the request reported, as JSON, when they are kept (see
    /// [`super::reported_borrows`]).
    pub borrows: Option<String>,
}

impl Attempt {
    /// Until when the license file it is answered with lets the server serve (the
    /// 366-day rule, from the sync's own time).
    pub fn valid_until(&self) -> DateTime<Utc> {
        shared_proto::validity::valid_until_for(self.now)
    }

    /// What the history of copies keeps of this sync.
    fn seen(&self) -> super::copies::Seen<'_> {
        super::copies::Seen {
            server_id: self.server_id,
            fingerprint: &self.fingerprint,
            created_at: self.created_at,
            now: self.now,
            channel: self.channel,
            actor: &self.actor,
            request_counter: self.request_counter,
            held_sequence: self.held_sequence,
            held_file_sha256: self.held_file_sha256.as_deref(),
        }
    }

    /// Records this sync in the audit log as accepted, with `detail`.
    fn record_ok(&self, conn: &mut DbConnection, detail: &str) -> Result<(), ApiError> {
        let id = Some(self.server_id);
        audit::record(conn, self.now, &self.actor, AuditAction::Sync, id, detail)
    }
}

/// `(sequence, revision, customer_id)` after the increment.
type Counters = (i64, i64, String);

/// The common case in one statement: the id is bound to this key already; move its
/// sequence and record the sync.
fn advance_if_bound_to(
    conn: &mut DbConnection,
    id: &str,
    attempt: &Attempt,
) -> QueryResult<Option<Counters>> {
    diesel::update(
        servers::table
            .filter(servers::id.eq(id))
            .filter(servers::bound_fingerprint.eq(&attempt.fingerprint)),
    )
    .set((
        servers::sequence.eq(servers::sequence + 1),
        servers::issued_revision.eq(servers::revision.nullable()),
        servers::last_sync_at.eq(to_millis(attempt.now)),
        servers::last_sync_channel.eq(attempt.channel.as_str()),
        servers::valid_until.eq(to_millis(attempt.valid_until())),
    ))
    .returning((servers::sequence, servers::revision, servers::customer_id))
    .get_result(conn)
    .optional()
}

/// The race-free bind: only where no key is bound yet.
fn bind_and_advance(
    conn: &mut DbConnection,
    id: &str,
    attempt: &Attempt,
) -> QueryResult<Option<Counters>> {
    let now = to_millis(attempt.now);
    diesel::update(
        servers::table
            .filter(servers::id.eq(id))
            .filter(servers::bound_fingerprint.is_null()),
    )
    .set((
        servers::bound_fingerprint.eq(&attempt.fingerprint),
        servers::bound_at.eq(now),
        servers::sequence.eq(servers::sequence + 1),
        servers::issued_revision.eq(servers::revision.nullable()),
        servers::last_sync_at.eq(now),
        servers::last_sync_channel.eq(attempt.channel.as_str()),
        servers::valid_until.eq(to_millis(attempt.valid_until())),
    ))
    .returning((servers::sequence, servers::revision, servers::customer_id))
    .get_result(conn)
    .optional()
}

/// The sync's statements, inside a transaction (or savepoint) the caller opened and
/// rolls back when this fails. On PostgreSQL this is one call of the migration's
/// `solme_issue_syncs` function.
pub(crate) fn issue_in(conn: &mut DbConnection, attempt: &Attempt) -> Result<Issued, ApiError> {
    match conn {
        DbConnection::Postgres(pg) => issue_group_pg(pg, &[attempt])?.pop().unwrap_or_else(|| {
            Err(ApiError::Internal(anyhow::anyhow!(
                "the sync function returned no row"
            )))
        }),
        DbConnection::Sqlite(_) => {
            super::retired::check(conn, attempt.server_id)?;
            issue_sqlite(conn, attempt)
        }
    }
}

/// SQLite: the steps of `solme_issue_syncs` as separate statements (cheap in process;
/// the single writer connection makes them race-free).
fn issue_sqlite(conn: &mut DbConnection, attempt: &Attempt) -> Result<Issued, ApiError> {
    let id = attempt.server_id.to_string();
    let ((sequence, revision, customer_id), bound_now) =
        match advance_if_bound_to(conn, &id, attempt)? {
            Some(counters) => (counters, false),
            None => match bind_and_advance(conn, &id, attempt)? {
                Some(counters) => (counters, true),
                None => {
                    let current: Option<Option<String>> = servers::table
                        .find(&id)
                        .select(servers::bound_fingerprint)
                        .first(conn)
                        .optional()?;
                    return Err(match current {
                        None => unknown_server(attempt.server_id),
                        Some(_) => id_in_use(attempt.server_id),
                    });
                }
            },
        };

    super::copies::check_policy(conn, attempt.server_id)?;

    let consumed = diesel::insert_into(used_requests::table)
        .values((
            used_requests::request_id.eq(attempt.request_id.to_string()),
            used_requests::server_id.eq(&id),
            used_requests::created_at.eq(to_millis(attempt.created_at)),
            used_requests::used_at.eq(to_millis(attempt.now)),
        ))
        .execute(conn);
    match consumed {
        Err(e) if super::is_unique_violation(&e) => return Err(replayed(attempt)),
        other => other?,
    };

    let customer: String = customers::table
        .find(&customer_id)
        .select(customers::name)
        .first(conn)?;
    let licenses = licenses::list_for(conn, attempt.server_id)?;
    let detail = accepted_detail(&attempt.detail, sequence, revision, bound_now);
    attempt.record_ok(conn, &detail)?;
    super::usage::record(
        conn,
        attempt.server_id,
        sequence,
        attempt.now,
        attempt.channel,
        attempt.usage_since,
        &attempt.usage,
    )?;
    let marked_copy = super::copies::record(conn, &attempt.seen(), sequence)?;
    if let Some(borrows) = &attempt.borrows {
        let (id, key) = (attempt.server_id, &attempt.fingerprint);
        let (made, seen) = (attempt.created_at, attempt.now);
        super::reported_borrows::record(conn, id, key, made, borrows, seen)?;
    }
    Ok(Issued {
        sequence,
        revision,
        customer,
        licenses,
        bound_now,
        marked_copy,
    })
}

/// The audit detail of an accepted sync. `solme_issue_syncs` (PostgreSQL migration
/// `sync_function`) builds the same words: change both together.
fn accepted_detail(detail: &str, sequence: i64, revision: i64, bound_now: bool) -> String {
    format!(
        "{detail}, issued sequence {sequence} of revision {revision}{}",
        if bound_now { ", key bound now" } else { "" }
    )
}

/// One row of `solme_issue_syncs`: the outcome of the attempt at `o_index` (1-based).
#[derive(QueryableByName)]
struct GroupRow {
    #[diesel(sql_type = sql_types::Integer)]
    o_index: i32,
    #[diesel(sql_type = sql_types::Text)]
    o_outcome: String,
    #[diesel(sql_type = sql_types::Nullable<sql_types::BigInt>)]
    o_sequence: Option<i64>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::BigInt>)]
    o_revision: Option<i64>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    o_customer: Option<String>,
    #[diesel(sql_type = sql_types::Bool)]
    o_bound_now: bool,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    o_licenses: Option<String>,
    #[diesel(sql_type = sql_types::Bool)]
    o_marked_copy: bool,
    /// Since when the id is retired, when it is (then the outcome is `SERVER_RETIRED`).
    #[diesel(sql_type = sql_types::Nullable<sql_types::BigInt>)]
    o_retired_at: Option<i64>,
}

/// The columns of a `licenses` row the license file needs, as the function returns
/// them (`json_agg` of the rows; other columns are ignored).
#[derive(serde::Deserialize)]
struct LicenseColumns {
    id: String,
    feature: String,
    seats: i32,
    valid_from: Option<i64>,
    valid_until: Option<i64>,
    /// The row's column (`json_agg` of the whole row carries it).
    #[serde(default)]
    max_borrow_hours: Option<i32>,
}

/// The statement of a group on PostgreSQL: the sync function, and the usage summary of
/// every accepted attempt stored by the same statement (so in the same transaction),
/// keyed by the sequence number the function issued, and the borrowed seats it reported
/// (`super::reported_borrows::RECORD`'s upsert; one row per id and key pair of the
/// group, the report made last).
const GROUP_STATEMENT: &str = "WITH r AS (\
         SELECT * FROM solme_issue_syncs($1, $2, $3, $4, $5, $6, $7, $8, $9, $12, $13, $14)\
     ), u AS (\
         INSERT INTO sync_usage (server_id, sequence, synced_at, channel, usage_since, features) \
         SELECT ($1::TEXT[])[r.o_index], r.o_sequence, ($6::BIGINT[])[r.o_index], \
                ($5::TEXT[])[r.o_index], ($11::BIGINT[])[r.o_index], ($10::TEXT[])[r.o_index] \
         FROM r WHERE r.o_outcome = 'OK'\
     ), b AS (\
         INSERT INTO reported_borrows (server_id, fingerprint, reported_at, borrows, seen_at) \
         SELECT DISTINCT ON (1, 2) ($1::TEXT[])[r.o_index], ($4::TEXT[])[r.o_index], \
                ($3::BIGINT[])[r.o_index], ($15::TEXT[])[r.o_index], ($6::BIGINT[])[r.o_index] \
         FROM r WHERE r.o_outcome = 'OK' AND ($15::TEXT[])[r.o_index] IS NOT NULL \
         ORDER BY 1, 2, 3 DESC \
         ON CONFLICT (server_id, fingerprint) DO UPDATE SET \
         reported_at = excluded.reported_at, borrows = excluded.borrows, \
         seen_at = excluded.seen_at WHERE excluded.reported_at >= reported_borrows.reported_at\
     ) SELECT * FROM r";

/// PostgreSQL: runs a group of syncs in one statement, i.e. one round trip and, in
/// autocommit, one transaction and one commit. Returns one result per attempt, in
/// order; the outer error means the statement failed and nothing was committed.
pub(crate) fn issue_group_pg(
    conn: &mut PgConnection,
    attempts: &[&Attempt],
) -> QueryResult<Vec<Result<Issued, ApiError>>> {
    use sql_types::{Array, BigInt, Nullable, Text};
    let texts = |f: &dyn Fn(&Attempt) -> String| attempts.iter().map(|a| f(a)).collect::<Vec<_>>();
    let times = |f: &dyn Fn(&Attempt) -> DateTime<Utc>| {
        attempts.iter().map(|a| to_millis(f(a))).collect::<Vec<_>>()
    };
    let since: Vec<Option<i64>> = attempts
        .iter()
        .map(|a| a.usage_since.map(to_millis))
        .collect();
    let rows: Vec<GroupRow> = diesel::sql_query(GROUP_STATEMENT)
        .bind::<Array<Text>, _>(texts(&|a| a.server_id.to_string()))
        .bind::<Array<Text>, _>(texts(&|a| a.request_id.to_string()))
        .bind::<Array<BigInt>, _>(times(&|a| a.created_at))
        .bind::<Array<Text>, _>(texts(&|a| a.fingerprint.clone()))
        .bind::<Array<Text>, _>(texts(&|a| a.channel.as_str().to_owned()))
        .bind::<Array<BigInt>, _>(times(&|a| a.now))
        .bind::<Array<BigInt>, _>(times(&|a| a.valid_until()))
        .bind::<Array<Text>, _>(texts(&|a| a.actor.clone()))
        .bind::<Array<Text>, _>(texts(&|a| a.detail.clone()))
        .bind::<Array<Text>, _>(texts(&|a| a.usage.clone()))
        .bind::<Array<Nullable<BigInt>>, _>(since)
        .bind::<Array<Nullable<BigInt>>, _>(
            attempts
                .iter()
                .map(|a| a.request_counter)
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<BigInt>>, _>(
            attempts.iter().map(|a| a.held_sequence).collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(
            attempts
                .iter()
                .map(|a| a.held_file_sha256.clone())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(
            attempts
                .iter()
                .map(|a| a.borrows.clone())
                .collect::<Vec<_>>(),
        )
        .load(conn)?;
    let mut results: Vec<Option<Result<Issued, ApiError>>> =
        attempts.iter().map(|_| None).collect();
    for row in rows {
        let slot = usize::try_from(row.o_index)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| Some((attempts.get(i)?, results.get_mut(i)?)));
        if let Some((attempt, slot)) = slot {
            *slot = Some(group_result(attempt, row));
        }
    }
    Ok(results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                Err(ApiError::Internal(anyhow::anyhow!(
                    "the sync function returned no row for an attempt"
                )))
            })
        })
        .collect())
}

fn group_result(attempt: &Attempt, row: GroupRow) -> Result<Issued, ApiError> {
    let internal = |what: &str| ApiError::Internal(anyhow::anyhow!("the sync function {what}"));
    // The function answers `OK` or the code of its refusal, as the audit log writes them.
    let outcome: AuditOutcome = row
        .o_outcome
        .parse()
        .map_err(|e| internal(&format!("answered an unknown outcome: {e}")))?;
    if let AuditOutcome::Failed(code) = outcome {
        return Err(match code {
            ErrorCode::UnknownServerId => unknown_server(attempt.server_id),
            ErrorCode::IdInUse => id_in_use(attempt.server_id),
            ErrorCode::ReplayedRequest => replayed(attempt),
            ErrorCode::PossibleCopy => super::copies::refused(attempt.server_id),
            ErrorCode::ServerRetired => match row.o_retired_at {
                Some(at) => super::retired::refused_since(attempt.server_id, from_millis(at)),
                None => internal("refused a retired id without saying since when"),
            },
            other => internal(&format!("answered the unexpected refusal {other}")),
        });
    }
    let columns: Vec<LicenseColumns> =
        serde_json::from_str(row.o_licenses.as_deref().unwrap_or("[]"))
            .map_err(|e| internal(&format!("returned unreadable licenses: {e}")))?;
    let licenses = columns
        .into_iter()
        .map(|l| {
            Ok(License {
                id: super::parse_uuid(&l.id)?,
                feature: l.feature,
                seats: u32::try_from(l.seats)
                    .map_err(|_| internal("returned a negative seat count"))?,
                valid_from: l.valid_from.map(from_millis),
                valid_until: l.valid_until.map(from_millis),
                max_borrow_hours: l.max_borrow_hours.and_then(|h| u32::try_from(h).ok()),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Issued {
        sequence: row
            .o_sequence
            .ok_or_else(|| internal("returned no sequence"))?,
        revision: row
            .o_revision
            .ok_or_else(|| internal("returned no revision"))?,
        customer: row
            .o_customer
            .ok_or_else(|| internal("returned no customer"))?,
        licenses,
        bound_now: row.o_bound_now,
        marked_copy: row.o_marked_copy,
    })
}

/// The refusal of a request id already used; what the customer does next depends on
/// how the request came.
fn replayed(attempt: &Attempt) -> ApiError {
    let remedy = if attempt.channel.carries_files() {
        "a sync-data file can be used only once, export a new one"
    } else {
        "every synchronization is a new request: synchronize again"
    };
    ApiError::refused(
        ErrorCode::ReplayedRequest,
        format!(
            "request {} was already answered; {remedy}",
            attempt.request_id
        ),
    )
}

fn id_in_use(server_id: Uuid) -> ApiError {
    ApiError::refused(
        ErrorCode::IdInUse,
        format!(
            "license server id {server_id} is already bound to another key pair (another \
             installation, or this server was reinstalled). If this is your server, email \
             {address} naming the id {server_id} and ask Solme to clear the key pair; then \
             synchronize again",
            address = crate::wording::licensing_address()
        ),
    )
}

/// The answer kept for an email request, when the same key asks again: the mail
/// gateway may have lost the first answer to a crash or a timeout after the commit.
/// Records the resend in the audit log. Returns the answer's JSON.
pub fn resend(conn: &mut DbConnection, attempt: &Attempt) -> Result<Option<String>, ApiError> {
    let kept: Option<(Option<String>, Option<String>)> = used_requests::table
        .find(attempt.request_id.to_string())
        .select((used_requests::fingerprint, used_requests::answer))
        .first(conn)
        .optional()?;
    let Some((Some(fingerprint), Some(answer))) = kept else {
        return Ok(None);
    };
    if fingerprint != attempt.fingerprint {
        return Ok(None);
    }
    let detail = format!(
        "{}, answered again with the license file issued for this request",
        attempt.detail
    );
    attempt.record_ok(conn, &detail)?;
    Ok(Some(answer))
}

/// Keeps the answer to an email request (JSON) with its request id, in the sync's
/// transaction, for [`resend`].
pub fn keep_answer(
    conn: &mut DbConnection,
    attempt: &Attempt,
    answer: &str,
) -> Result<(), ApiError> {
    diesel::update(used_requests::table.find(attempt.request_id.to_string()))
        .set((
            used_requests::fingerprint.eq(&attempt.fingerprint),
            used_requests::answer.eq(answer),
        ))
        .execute(conn)?;
    Ok(())
}

/// Forgets request ids created before `cutoff`: requests that old are refused as
/// stale before the replay check, so their ids no longer need remembering.
pub fn prune_used_requests(
    conn: &mut DbConnection,
    cutoff: DateTime<Utc>,
) -> Result<usize, ApiError> {
    Ok(
        diesel::delete(
            used_requests::table.filter(used_requests::created_at.lt(to_millis(cutoff))),
        )
        .execute(conn)?,
    )
}

/// How long request ids are kept: the longest stale window plus a margin for requests
/// dated ahead of the server's clock.
pub const REQUEST_ID_RETENTION: Duration = Duration::days(32);
