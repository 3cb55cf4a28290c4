//! The database half of a sync: bind or compare the key pair, consume the request id,
//! issue the next sequence number, all in one transaction.
//!
//! The transaction starts with one conditional statement that does the common case
//! whole: `UPDATE servers SET sequence = sequence + 1, … WHERE id = ? AND
//! bound_fingerprint = ? RETURNING …` (the key is already bound to this id). When that
//! touches no row, the bind is the single statement `UPDATE servers SET
//! bound_fingerprint = ?, … WHERE id = ? AND bound_fingerprint IS NULL`. On PostgreSQL
//! a concurrent bind blocks on the row lock and re-checks the condition after the first
//! commits (0 rows); on SQLite the first UPDATE takes the write lock before anything is
//! read. Either way exactly one key wins and the others see it bound.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use shared_proto::admin_api::{AuditAction, AuditOutcome};
use shared_proto::ErrorCode;
use uuid::Uuid;

use super::audit::{self, Event};
use super::{licenses, unknown_server};
use crate::db::{to_millis, DbConnection};
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
}

/// Inputs of one accepted-so-far sync. Owned, so it can be handed to the thread that
/// writes it.
pub struct Attempt {
    pub server_id: Uuid,
    pub request_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub fingerprint: String,
    pub channel: &'static str,
    pub now: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    /// Audit actor (peer address or sender).
    pub actor: String,
    pub detail: String,
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
        servers::last_sync_at.eq(to_millis(attempt.now)),
        servers::last_sync_channel.eq(attempt.channel),
        servers::valid_until.eq(to_millis(attempt.valid_until)),
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
        servers::last_sync_at.eq(now),
        servers::last_sync_channel.eq(attempt.channel),
        servers::valid_until.eq(to_millis(attempt.valid_until)),
    ))
    .returning((servers::sequence, servers::revision, servers::customer_id))
    .get_result(conn)
    .optional()
}

/// Runs the sync's transaction.
pub fn issue(conn: &mut DbConnection, attempt: &Attempt) -> Result<Issued, ApiError> {
    conn.transaction::<_, ApiError, _>(|conn| issue_in(conn, attempt))
}

/// The sync's statements, inside a transaction (or savepoint) the caller opened and
/// rolls back when this fails.
pub(crate) fn issue_in(conn: &mut DbConnection, attempt: &Attempt) -> Result<Issued, ApiError> {
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
                    match current {
                        None => return Err(unknown_server(attempt.server_id)),
                        // PostgreSQL only: a concurrent first sync with this same key
                        // bound it between our two statements.
                        Some(Some(fp)) if fp == attempt.fingerprint => (
                            advance_if_bound_to(conn, &id, attempt)?
                                .ok_or_else(|| id_in_use(attempt.server_id))?,
                            false,
                        ),
                        Some(_) => return Err(id_in_use(attempt.server_id)),
                    }
                }
            },
        };

    let consumed = diesel::insert_into(used_requests::table)
        .values((
            used_requests::request_id.eq(attempt.request_id.to_string()),
            used_requests::server_id.eq(&id),
            used_requests::created_at.eq(to_millis(attempt.created_at)),
            used_requests::used_at.eq(to_millis(attempt.now)),
        ))
        .execute(conn);
    match consumed {
        Err(e) if super::is_unique_violation(&e) => {
            // What the customer does next depends on how the request came.
            let remedy = if attempt.channel == crate::sync::Channel::Email.as_str() {
                "a sync-data file can be used only once, export a new one"
            } else {
                "every synchronization is a new request: synchronize again"
            };
            return Err(ApiError::refused(
                ErrorCode::ReplayedRequest,
                format!(
                    "request {} was already answered; {remedy}",
                    attempt.request_id
                ),
            ));
        }
        other => other?,
    };

    let customer: String = customers::table
        .find(&customer_id)
        .select(customers::name)
        .first(conn)?;
    let licenses = licenses::list_for(conn, attempt.server_id)?;
    audit::record(
        conn,
        attempt.now,
        &Event {
            actor: &attempt.actor,
            action: AuditAction::Sync,
            server_id: Some(attempt.server_id),
            outcome: AuditOutcome::Ok,
            detail: &format!(
                "{}, issued sequence {sequence} of revision {revision}{}",
                attempt.detail,
                if bound_now { ", key bound now" } else { "" }
            ),
        },
    )?;
    Ok(Issued {
        sequence,
        revision,
        customer,
        licenses,
        bound_now,
    })
}

fn id_in_use(server_id: Uuid) -> ApiError {
    ApiError::refused(
        ErrorCode::IdInUse,
        format!(
            "license server id {server_id} is already bound to another key pair (another \
             installation, or this server was reinstalled). If this is your server, email \
             licensing@ naming the id {server_id} and ask Solme to clear the key pair; then \
             synchronize again"
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
    audit::record(
        conn,
        attempt.now,
        &Event {
            actor: &attempt.actor,
            action: AuditAction::Sync,
            server_id: Some(attempt.server_id),
            outcome: AuditOutcome::Ok,
            detail: &format!(
                "{}, answered again with the license file issued for this request",
                attempt.detail
            ),
        },
    )?;
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
