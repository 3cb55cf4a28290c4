//! License server ids: allocation, the operator's view of one id, the due list, and
//! clearing a bound key pair.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use shared_proto::admin_api::{
    AuditAction, CustomerDetail, Holds, HoldsState, PossibleCopy, ReminderState, SeenRequest,
    SyncChannel,
};
use uuid::Uuid;

use super::audit;
use super::{licenses, parse_uuid, parse_word, required_line, unknown_server, MAX_REASON};
use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::{customers, reminders, servers, sync_history};
use shared_proto::admin_api::Server;
use shared_proto::ErrorCode;

/// One id with its customer's name, as read (`servers` joined with `customers`).
#[derive(Queryable, Selectable)]
#[diesel(table_name = servers)]
pub(crate) struct ServerRow {
    id: String,
    customer_id: String,
    #[diesel(select_expression = customers::name)]
    #[diesel(select_expression_type = customers::name)]
    customer_name: String,
    revision: i64,
    sequence: i64,
    bound_fingerprint: Option<String>,
    bound_at: Option<i64>,
    last_sync_at: Option<i64>,
    last_sync_channel: Option<String>,
    valid_until: Option<i64>,
    retired_at: Option<i64>,
    possible_copy_since: Option<i64>,
    #[diesel(select_expression = customers::copy_policy)]
    #[diesel(select_expression_type = customers::copy_policy)]
    copy_policy: String,
    issued_revision: Option<i64>,
    /// Apart: diesel selects at most 16 columns as one tuple.
    #[diesel(embed)]
    standby: StandbyColumns,
}

/// The id's standby server and failover period (see [`super::standby`]).
#[derive(Queryable, Selectable)]
#[diesel(table_name = servers)]
pub(crate) struct StandbyColumns {
    standby_fingerprint: Option<String>,
    standby_registered_at: Option<i64>,
    failover_days: i32,
}

fn to_view(
    row: ServerRow,
    licenses: Vec<shared_proto::admin_api::License>,
    now: DateTime<Utc>,
) -> Result<Server, ApiError> {
    let valid_until = row.valid_until.map(from_millis);
    Ok(Server {
        server_id: parse_uuid(&row.id)?,
        customer_id: parse_uuid(&row.customer_id)?,
        customer_name: row.customer_name,
        revision: row.revision,
        sequence: row.sequence,
        bound_fingerprint: row.bound_fingerprint,
        bound_at: row.bound_at.map(from_millis),
        retired_at: row.retired_at.map(from_millis),
        last_sync_at: row.last_sync_at.map(from_millis),
        last_sync_channel: row
            .last_sync_channel
            .as_deref()
            .map(parse_word)
            .transpose()?,
        days_until_due: valid_until.map(|v| shared_proto::validity::days_left(v, now)),
        valid_until,
        licenses,
        possible_copy_since: row.possible_copy_since.map(from_millis),
        copy_policy: parse_word(&row.copy_policy)?,
        holds: None,
        possible_copy: None,
        standby_fingerprint: row.standby.standby_fingerprint,
        standby_registered_at: row.standby.standby_registered_at.map(from_millis),
        failover_days: super::standby::stored_days(row.standby.failover_days)?,
    })
}

pub fn create(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    operator: &str,
    customer_id: Uuid,
) -> Result<Server, ApiError> {
    let id = Uuid::new_v4();
    conn.transaction::<_, ApiError, _>(|conn| {
        let known: i64 = customers::table
            .find(customer_id.to_string())
            .count()
            .get_result(conn)?;
        if known == 0 {
            return Err(ApiError::not_found(format!("no customer {customer_id}")));
        }
        diesel::insert_into(servers::table)
            .values((
                servers::id.eq(id.to_string()),
                servers::customer_id.eq(customer_id.to_string()),
                servers::revision.eq(1),
                servers::sequence.eq(0),
                servers::created_at.eq(to_millis(now)),
            ))
            .execute(conn)?;
        let detail = format!("customer {customer_id}");
        audit::record(
            conn,
            now,
            operator,
            AuditAction::ServerCreate,
            Some(id),
            &detail,
        )
    })?;
    get(conn, now, id)
}

pub fn get(conn: &mut DbConnection, now: DateTime<Utc>, id: Uuid) -> Result<Server, ApiError> {
    let row: Option<ServerRow> = servers::table
        .inner_join(customers::table)
        .filter(servers::id.eq(id.to_string()))
        .select(ServerRow::as_select())
        .first(conn)
        .optional()?;
    let row = row.ok_or_else(|| unknown_server(id))?;
    let licenses = licenses::list_for(conn, id)?;
    let holds = holds(conn, id, &row)?;
    let evidence = match (row.possible_copy_since, row.bound_fingerprint.as_deref()) {
        (Some(since), Some(fingerprint)) => Some(possible_copy(conn, id, fingerprint, since)?),
        _ => None,
    };
    let mut server = to_view(row, licenses, now)?;
    server.holds = Some(holds);
    server.possible_copy = evidence;
    Ok(server)
}

/// The evidence of a possible copy, from the key pair's history of requests (kept
/// until the mark is dismissed): the newest ones, oldest first, each marked when it
/// went back against the one made before it.
fn possible_copy(
    conn: &mut DbConnection,
    id: Uuid,
    fingerprint: &str,
    since: i64,
) -> Result<PossibleCopy, ApiError> {
    type Seen = (i64, i64, String, Option<i64>, Option<i64>);
    let mut rows: Vec<Seen> = sync_history::table
        .filter(sync_history::server_id.eq(id.to_string()))
        .filter(sync_history::fingerprint.eq(fingerprint))
        .order((
            sync_history::created_at.desc(),
            sync_history::issued_sequence.desc(),
        ))
        // One more than shown: the first shown is compared with the one before it.
        .limit(super::copies::EVIDENCE_ROWS + 1)
        .select((
            sync_history::issued_sequence,
            sync_history::created_at,
            sync_history::channel,
            sync_history::request_counter,
            sync_history::held_sequence,
        ))
        .load(conn)?;
    rows.reverse();
    let mut requests = Vec::with_capacity(rows.len());
    let mut before: Option<(Option<i64>, Option<i64>)> = None;
    for (answered, made, channel, counter, held) in rows {
        let lower = |now: Option<i64>, then: Option<i64>| matches!((now, then), (Some(n), Some(t)) if n < t);
        let not_above = matches!((counter, before.and_then(|b| b.0)), (Some(n), Some(t)) if n <= t);
        let went_back = before.is_some() && (not_above || lower(held, before.and_then(|b| b.1)));
        before = Some((counter, held));
        requests.push(SeenRequest {
            made_at: from_millis(made),
            channel: parse_word(&channel)?,
            request_counter: counter,
            held_sequence: held,
            answered_sequence: answered,
            went_back,
        });
    }
    // The extra oldest row only served as the first comparison.
    let shown = usize::try_from(super::copies::EVIDENCE_ROWS).unwrap_or(usize::MAX);
    if requests.len() > shown {
        requests.remove(0);
    }
    let goings_back = requests.iter().filter(|r| r.went_back).count();
    let explanation = format!(
        "Two installations seem to synchronize with this id's key pair (a copied data \
         directory, a cloned virtual machine, or a backup restored on a second computer). \
         One installation's requests, in the order it made them, count up and never hold \
         an older license file; here they went back {goings_back} {} among the newest \
         {} (a restored backup goes back once, then counts on). Dismiss the mark when you \
         know it is none (a restored backup, a lost mail) or the copy is gone.",
        if goings_back == 1 { "time" } else { "times" },
        requests.len(),
    );
    Ok(PossibleCopy {
        since: from_millis(since),
        explanation,
        requests,
    })
}

/// Whether the id's local server holds the newest revision: the revision now, the
/// revision the last license file issued carries, and the newest file the server
/// confirmed holding ([`super::receipts::held`]: a receipt, or a later sync request).
/// The one place that judges it: the id's page and `server show` read this.
fn holds(conn: &mut DbConnection, id: Uuid, row: &ServerRow) -> Result<Holds, ApiError> {
    let issued_via: Option<SyncChannel> = row
        .last_sync_channel
        .as_deref()
        .map(parse_word)
        .transpose()?;
    let held = super::receipts::held(conn, id)?;
    let revision = row.revision;
    let issued = row.sequence;
    // The server holds the last file for sure once a receipt or a later request says
    // so. Before that, one answered over the internet was in its hands with the answer
    // (it imports it at once); one that went by email or the portal waits for a person.
    let confirmed = held.as_ref().is_some_and(|h| h.sequence >= issued);
    let handed_over = confirmed || issued_via.is_some_and(|c| !c.carries_files());
    let via = issued_via.map_or("hand", channel_words);
    let (state, summary) = match row.issued_revision {
        _ if issued == 0 => (
            HoldsState::NeverSynced,
            format!(
                "revision {revision}, never synchronized: the server holds no license file yet"
            ),
        ),
        None => (
            HoldsState::Unknown,
            format!(
                "revision {revision}; the revision of license file #{issued} is not recorded \
                 (issued before Solme kept it): the next sync tells"
            ),
        ),
        Some(carried) if carried < revision && handed_over => (
            HoldsState::ChangesNotSynced,
            format!(
                "revision {revision}, the server holds {carried}: changes not yet synced \
                 (its next sync brings them)"
            ),
        ),
        Some(carried) if carried < revision => (
            HoldsState::ChangesNotSynced,
            format!(
                "revision {revision}, the last license file issued (#{issued}, by {via}) \
                 carries {carried} and is not confirmed installed: changes not yet synced"
            ),
        ),
        Some(carried) if confirmed => (
            HoldsState::UpToDate,
            format!("revision {revision}, the server holds {carried}: up to date"),
        ),
        Some(_) if handed_over => (
            HoldsState::IssuedNotConfirmed,
            format!(
                "revision {revision} went to the server with license file #{issued} in the \
                 answer to its sync: up to date once installed (its next sync or a receipt \
                 confirms it)"
            ),
        ),
        Some(_) => (
            HoldsState::IssuedNotConfirmed,
            format!(
                "revision {revision} went out by {via} with license file #{issued}: not yet \
                 confirmed installed (a receipt or the next sync tells){}",
                held.as_ref().map_or_else(String::new, |h| format!(
                    "; the server holds #{}",
                    h.sequence
                ))
            ),
        ),
    };
    Ok(Holds {
        revision,
        issued_revision: row.issued_revision,
        issued_sequence: issued,
        issued_via,
        held_sequence: held.as_ref().map(|h| h.sequence),
        held_reported_at: held.as_ref().map(|h| h.confirmed_at),
        state,
        summary,
    })
}

/// Ids shown with a customer; more are paged with `GET /servers?customer_id=`.
pub const SERVERS_SHOWN: u32 = 100;

/// One customer with its first [`SERVERS_SHOWN`] ids (by id) and how many it has.
pub fn customer_detail(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    customer_id: Uuid,
) -> Result<CustomerDetail, ApiError> {
    let customer = super::customers::get(conn, customer_id)?;
    let servers_total: i64 = servers::table
        .filter(servers::customer_id.eq(customer_id.to_string()))
        .count()
        .get_result(conn)?;
    let page = Page {
        limit: Some(SERVERS_SHOWN),
        after: None,
    };
    let servers = of_customer(conn, now, customer_id, page)?;
    Ok(CustomerDetail {
        customer,
        servers,
        servers_total,
    })
}

/// A channel in a sentence ("by mail").
fn channel_words(channel: SyncChannel) -> &'static str {
    match channel {
        SyncChannel::Internet => "internet",
        SyncChannel::Email => "email",
        SyncChannel::Portal => "the customer portal",
    }
}

/// Ids per page of a listing when the caller names no limit.
pub const DEFAULT_PAGE: u32 = 100;
/// Largest page of a listing: the registry may hold a million ids.
pub const MAX_PAGE: u32 = 1_000;

/// One page of a listing: at most `limit` ids after the id `after` (the last id of the
/// previous page), in the listing's order.
#[derive(Clone, Copy, Debug, Default)]
pub struct Page {
    pub limit: Option<u32>,
    pub after: Option<Uuid>,
}

impl Page {
    fn limit(self) -> Result<i64, ApiError> {
        match self.limit.unwrap_or(DEFAULT_PAGE) {
            0 => Err(ApiError::malformed("limit must be at least 1")),
            n if n > MAX_PAGE => Err(ApiError::malformed(format!(
                "limit must be at most {MAX_PAGE}; page with `after`"
            ))),
            n => Ok(i64::from(n)),
        }
    }
}

/// One page of ids. Without `due_within_days`: every id, by id. With it: the ids never
/// synced (by id), then those whose 366-day window ends within that many days, overdue
/// included, most urgent first. Each page is a keyset query on an index (`servers` by
/// primary key, or `servers_due (valid_until, id)`), so its cost does not grow with the
/// registry; a page shorter than the limit is the last.
pub fn list(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    due_within_days: Option<i64>,
    page: Page,
) -> Result<Vec<Server>, ApiError> {
    let limit = page.limit()?;
    let rows = match due_within_days {
        None => {
            let mut query = servers::table
                .inner_join(customers::table)
                .select(ServerRow::as_select())
                .order(servers::id.asc())
                .limit(limit)
                .into_boxed();
            if let Some(after) = page.after {
                query = query.filter(servers::id.gt(after.to_string()));
            }
            query.load::<ServerRow>(conn)?
        }
        Some(days) => due_page(conn, now, days, page.after, limit)?,
    };
    with_licenses(conn, now, rows)
}

/// One page of the ids of customer `customer_id`, by id (on the index
/// `servers_customer`). An unknown customer has none.
pub fn of_customer(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    customer_id: Uuid,
    page: Page,
) -> Result<Vec<Server>, ApiError> {
    let limit = page.limit()?;
    let mut query = servers::table
        .inner_join(customers::table)
        .select(ServerRow::as_select())
        .filter(servers::customer_id.eq(customer_id.to_string()))
        .order(servers::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = page.after {
        query = query.filter(servers::id.gt(after.to_string()));
    }
    let rows = query.load::<ServerRow>(conn)?;
    with_licenses(conn, now, rows)
}

/// The views of `rows`, each with its licenses (one query for all of them).
fn with_licenses(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    rows: Vec<ServerRow>,
) -> Result<Vec<Server>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    let mut by_server = licenses::list_for_many(conn, &ids)?;
    rows.into_iter()
        .map(|row| {
            let licenses = by_server.remove(&row.id).unwrap_or_default();
            to_view(row, licenses, now)
        })
        .collect()
}

/// The due list's page: never-synced ids first (`valid_until IS NULL`, by id), then
/// the synced ones due by the cut-off, by `(valid_until, id)`. The cursor id's own
/// `valid_until` says in which part the previous page ended. Two simple queries rather
/// than one with `OR` (which neither database answers from the index in order) and
/// without relying on where each database sorts NULLs.
fn due_page(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    days: i64,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ServerRow>, ApiError> {
    let cutoff = to_millis(now + Duration::days(days.clamp(-36_600, 36_600)));
    // `None`: start; `Some((None, id))`: inside the never-synced part; `Some((Some(v),
    // id))`: inside the synced part.
    let cursor: Option<(Option<i64>, String)> = match after {
        None => None,
        Some(after) => {
            let until: Option<Option<i64>> = servers::table
                .find(after.to_string())
                .select(servers::valid_until)
                .first(conn)
                .optional()?;
            let until = until.ok_or_else(|| {
                ApiError::not_found(format!(
                    "no license server id {after} to continue the list after"
                ))
            })?;
            Some((until, after.to_string()))
        }
    };
    let mut rows: Vec<ServerRow> = Vec::new();
    if !matches!(cursor, Some((Some(_), _))) {
        let mut query = servers::table
            .inner_join(customers::table)
            .select(ServerRow::as_select())
            .filter(servers::valid_until.is_null())
            .order(servers::id.asc())
            .limit(limit)
            .into_boxed();
        if let Some((_, id)) = &cursor {
            query = query.filter(servers::id.gt(id.clone()));
        }
        rows = query.load(conn)?;
    }
    let left = limit - i64::try_from(rows.len()).unwrap_or(limit);
    if left > 0 {
        let mut query = servers::table
            .inner_join(customers::table)
            .select(ServerRow::as_select())
            .filter(servers::valid_until.is_not_null())
            .filter(servers::valid_until.le(cutoff))
            .order((servers::valid_until.asc(), servers::id.asc()))
            .limit(left)
            .into_boxed();
        if let Some((Some(until), id)) = cursor {
            query = query.filter(
                servers::valid_until
                    .gt(until)
                    .or(servers::valid_until.eq(until).and(servers::id.gt(id))),
            );
        }
        rows.extend(query.load::<ServerRow>(conn)?);
    }
    Ok(rows)
}

/// Unbinds the key pair of `id` so the next first sync binds a new one, and forgets its
/// standby server (the reinstalled primary names one again). `via` says what caused it
/// (operator command or an approved request) for the audit log.
pub fn clear_key(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    operator: &str,
    id: Uuid,
    reason: &str,
    via: &str,
) -> Result<(), ApiError> {
    let reason = required_line("reason", reason, MAX_REASON)?;
    // Read the old fingerprint for the audit trail; the update is unconditional, so a
    // concurrent bind between the two statements is cleared too (the operator asked
    // for "no key bound").
    let old: Option<Option<String>> = servers::table
        .find(id.to_string())
        .select(servers::bound_fingerprint)
        .first(conn)
        .optional()?;
    let old = old.ok_or_else(|| unknown_server(id))?;
    diesel::update(servers::table.find(id.to_string()))
        .set((
            servers::bound_fingerprint.eq(None::<String>),
            servers::bound_at.eq(None::<i64>),
        ))
        .execute(conn)?;
    let standby = super::standby::clear(conn, id)?;
    let detail = format!(
        "via {via}, previous key {}, {}, reason: {reason}",
        old.as_deref().unwrap_or("none"),
        standby.as_deref().map_or_else(
            || "no standby server registered".to_owned(),
            |s| format!("standby server {s} cleared too (the primary pairs again)")
        )
    );
    audit::record(
        conn,
        now,
        operator,
        AuditAction::KeyClear,
        Some(id),
        &detail,
    )?;
    log::info!(
        "key pair cleared server_id={id} operator={operator:?} previous={}",
        old.as_deref().unwrap_or("none")
    );
    Ok(())
}

/// Retires `id`: it stays in the registry (so it is listed as retired, its history
/// kept and the id never allocated again) and from now on its syncs are refused with
/// `SERVER_RETIRED`. An id with a bound key pair may still be in use by an
/// installation, so that needs `force`. Its pending reminders are cancelled: nobody
/// is to renew a retired id.
pub fn retire(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    operator: &str,
    id: Uuid,
    reason: &str,
    force: bool,
) -> Result<Server, ApiError> {
    let reason = required_line("reason", reason, MAX_REASON)?;
    conn.transaction::<_, ApiError, _>(|conn| {
        // The conditional update decides (a concurrent retire or bind cannot slip
        // between a check and the write): it takes only an id in service, and without
        // `force` only one with no key pair bound.
        let mut update = diesel::update(servers::table)
            .filter(servers::id.eq(id.to_string()))
            .filter(servers::retired_at.is_null())
            .into_boxed();
        if !force {
            update = update.filter(servers::bound_fingerprint.is_null());
        }
        let retired = update
            .set(servers::retired_at.eq(to_millis(now)))
            .execute(conn)?;
        let (bound, retired_at): (Option<String>, Option<i64>) = servers::table
            .find(id.to_string())
            .select((servers::bound_fingerprint, servers::retired_at))
            .first(conn)
            .optional()?
            .ok_or_else(|| unknown_server(id))?;
        if retired == 0 {
            return Err(match (retired_at, bound) {
                (Some(at), _) => super::retired::refused_since(id, from_millis(at)),
                (None, Some(fingerprint)) => ApiError::refused(
                    ErrorCode::ConfirmationRequired,
                    format!(
                        "license server id {id} has a key pair bound ({}): an installation \
                         may still be using it and would stop synchronizing; retire it \
                         anyway only when it is known to be out of use (force)",
                        fingerprint
                    ),
                ),
                (None, None) => ApiError::Internal(anyhow::anyhow!(
                    "retiring {id} changed no row although it is in service and unbound"
                )),
            });
        }
        diesel::update(
            reminders::table
                .filter(reminders::server_id.eq(id.to_string()))
                .filter(reminders::state.eq(ReminderState::Pending.as_str())),
        )
        .set(reminders::state.eq(ReminderState::Cancelled.as_str()))
        .execute(conn)?;
        let detail = format!(
            "retired{}, key {}, reason: {reason}",
            if force { " (forced)" } else { "" },
            bound.as_deref().unwrap_or("none bound"),
        );
        audit::record(
            conn,
            now,
            operator,
            AuditAction::ServerRetire,
            Some(id),
            &detail,
        )
    })?;
    log::info!("license server id retired server_id={id} operator={operator:?} force={force}");
    get(conn, now, id)
}

/// Moves `id` to another customer. Reminders and key-clear notices read the id's
/// customer when they are sent, so from now on they go to the new customer's contacts.
pub fn move_to(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    operator: &str,
    id: Uuid,
    customer_id: Uuid,
) -> Result<Server, ApiError> {
    conn.transaction::<_, ApiError, _>(|conn| {
        let current: Option<(String, Option<i64>)> = servers::table
            .find(id.to_string())
            .select((servers::customer_id, servers::retired_at))
            .first(conn)
            .optional()?;
        let (from, retired_at) = current.ok_or_else(|| unknown_server(id))?;
        if let Some(at) = retired_at {
            return Err(super::retired::refused_since(id, from_millis(at)));
        }
        let names: Vec<(String, String)> = customers::table
            .filter(customers::id.eq_any([from.clone(), customer_id.to_string()]))
            .select((customers::id, customers::name))
            .load(conn)?;
        let name_of = |cid: &str| names.iter().find(|(i, _)| i == cid).map(|(_, n)| n.clone());
        let to_name = name_of(&customer_id.to_string())
            .ok_or_else(|| ApiError::not_found(format!("no customer {customer_id}")))?;
        if from == customer_id.to_string() {
            return Err(ApiError::malformed(format!(
                "license server id {id} already belongs to {to_name}"
            )));
        }
        diesel::update(servers::table.find(id.to_string()))
            .set(servers::customer_id.eq(customer_id.to_string()))
            .execute(conn)?;
        let detail = format!(
            "moved from {} ({from}) to {to_name} ({customer_id})",
            name_of(&from).unwrap_or_default()
        );
        audit::record(
            conn,
            now,
            operator,
            AuditAction::ServerMove,
            Some(id),
            &detail,
        )
    })?;
    log::info!(
        "license server id moved server_id={id} customer_id={customer_id} operator={operator:?}"
    );
    get(conn, now, id)
}
