//! The audit log: one row per sync attempt and per admin action, never updated.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::audit_log;
use shared_proto::admin_api::{AuditAction, AuditEntry, AuditOutcome};
use shared_proto::audit_log::{AuditRecord, SearchReach, MAX_PAGE, SEARCH_WINDOW};

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

// ---- pages, filters, search and export ------------------------------------------

diesel::define_sql_function! {
    /// Lower-case (both databases call it `lower`).
    fn lower(text: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// What the outcome filter asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeFilter {
    /// Only the exact outcome (`OK`, or one error code).
    Is(AuditOutcome),
    /// Every refusal or failure, whatever its code.
    AnyFailure,
}

/// Which entries a page or an export holds (all given filters at once).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Entries about this id.
    pub server_id: Option<Uuid>,
    /// Entries about the customer's ids (those it has now) and about the customer
    /// itself (its creation, name, contacts and settings).
    pub customer_id: Option<Uuid>,
    pub actor: Option<String>,
    pub action: Option<AuditAction>,
    pub outcome: Option<OutcomeFilter>,
    /// From this time on (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Before this time (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Free text the detail must contain, case-insensitively.
    pub search: Option<String>,
}

/// A place in the log's order (newest first by time, then by entry number): the
/// entry's time in Unix milliseconds and its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub at: i64,
    pub id: i64,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.at, self.id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = ApiError;

    fn from_str(text: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::malformed(format!(
                "the page cursor {:?} is not one this server gave: give the `older` or `newer` \
                 value of a previous page as it was answered",
                text.chars().take(40).collect::<String>()
            ))
        };
        let (at, id) = text.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            at: at.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// Which way a page goes from its cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Older entries, newest first (strictly before the cursor, or from the newest).
    Older(Option<Cursor>),
    /// Newer entries (strictly after the cursor), read oldest first.
    Newer(Cursor),
}

/// One stored entry with its number and position.
#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_log)]
struct ListedRow {
    id: i64,
    chain_seq: Option<i64>,
    #[diesel(embed)]
    entry: Row,
}

impl ListedRow {
    fn cursor(&self) -> Cursor {
        Cursor {
            at: self.entry.at,
            id: self.id,
        }
    }

    fn into_record(self) -> Result<AuditRecord, ApiError> {
        let cursor = self.cursor().to_string();
        Ok(AuditRecord {
            entry: self.id,
            chain_seq: self.chain_seq.and_then(|seq| u64::try_from(seq).ok()),
            at: from_millis(self.entry.at),
            actor: self.entry.actor,
            action: super::parse_word(&self.entry.action)?,
            server_id: self
                .entry
                .server_id
                .as_deref()
                .map(super::parse_uuid)
                .transpose()?,
            outcome: super::parse_word(&self.entry.outcome)?,
            detail: self.entry.detail,
            cursor,
        })
    }
}

/// Of a customer's entries, which kind one query reads (each has its own index).
#[derive(Clone, Copy)]
enum Part {
    /// Every entry the filter allows (no customer filter).
    All,
    /// Entries of the customer's ids.
    CustomerIds(Uuid),
    /// Entries about the customer itself, which name no id.
    CustomerItself(Uuid),
}

fn parts(filter: &Filter) -> Vec<Part> {
    match filter.customer_id {
        None => vec![Part::All],
        Some(id) => vec![Part::CustomerIds(id), Part::CustomerItself(id)],
    }
}

type Boxed<'a> = audit_log::BoxedQuery<'a, crate::db::MultiBackend>;

/// The search text as a `LIKE` pattern: lower-case, its wildcards escaped.
fn like_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The query of one part with every filter but the search, and the keyset of
/// `direction`, in its order.
fn filtered<'a>(filter: &'a Filter, part: Part, direction: Direction) -> Boxed<'a> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Bool, Text};
    let mut query = audit_log::table.into_boxed();
    match part {
        Part::All => {}
        Part::CustomerIds(customer) => {
            query = query.filter(
                audit_log::server_id.eq_any(
                    crate::schema::servers::table
                        .filter(crate::schema::servers::customer_id.eq(customer.to_string()))
                        .select(crate::schema::servers::id.nullable()),
                ),
            );
        }
        Part::CustomerItself(customer) => {
            // Spelled as the partial index `audit_log_customer` is, so both databases
            // use it.
            query = query
                .filter(sql::<Bool>(
                    "server_id IS NULL AND substr(action, 1, 9) = 'customer.'",
                ))
                .filter(sql::<Text>("substr(detail, 10, 36)").eq(customer.to_string()));
        }
    }
    if let Some(server_id) = filter.server_id {
        query = query.filter(audit_log::server_id.eq(server_id.to_string()));
    }
    if let Some(actor) = &filter.actor {
        query = query.filter(audit_log::actor.eq(actor.as_str()));
    }
    if let Some(action) = filter.action {
        query = query.filter(audit_log::action.eq(action.as_str()));
    }
    match filter.outcome {
        None => {}
        Some(OutcomeFilter::Is(AuditOutcome::Ok)) => {
            query = query.filter(audit_log::outcome.eq(AuditOutcome::Ok.as_str()));
        }
        Some(OutcomeFilter::Is(outcome)) => {
            query = query
                .filter(sql::<Bool>("outcome <> 'OK'"))
                .filter(audit_log::outcome.eq(outcome.as_str()));
        }
        Some(OutcomeFilter::AnyFailure) => {
            query = query.filter(sql::<Bool>("outcome <> 'OK'"));
        }
    }
    if let Some(from) = filter.from {
        query = query.filter(audit_log::at.ge(to_millis(from)));
    }
    if let Some(to) = filter.to {
        query = query.filter(audit_log::at.lt(to_millis(to)));
    }
    match direction {
        Direction::Older(cursor) => {
            if let Some(Cursor { at, id }) = cursor {
                // `(at, id) < cursor`, with the bound on `at` alone spelled out so that
                // the index range starts there.
                query = query.filter(
                    audit_log::at
                        .le(at)
                        .and(audit_log::at.lt(at).or(audit_log::id.lt(id))),
                );
            }
            query.order((audit_log::at.desc(), audit_log::id.desc()))
        }
        Direction::Newer(Cursor { at, id }) => query
            .filter(
                audit_log::at
                    .ge(at)
                    .and(audit_log::at.gt(at).or(audit_log::id.gt(id))),
            )
            .order((audit_log::at.asc(), audit_log::id.asc())),
    }
}

/// Restricts `query` to entries up to `bound` (inclusive) in `direction`'s order.
fn up_to<'a>(query: Boxed<'a>, direction: Direction, bound: Cursor) -> Boxed<'a> {
    let Cursor { at, id } = bound;
    match direction {
        Direction::Older(_) => query.filter(
            audit_log::at
                .ge(at)
                .and(audit_log::at.gt(at).or(audit_log::id.ge(id))),
        ),
        Direction::Newer(_) => query.filter(
            audit_log::at
                .le(at)
                .and(audit_log::at.lt(at).or(audit_log::id.le(id))),
        ),
    }
}

/// `a` against `b` in `direction`'s reading order.
fn reading_order(direction: Direction, a: Cursor, b: Cursor) -> std::cmp::Ordering {
    match direction {
        Direction::Older(_) => b.cmp(&a),
        Direction::Newer(_) => a.cmp(&b),
    }
}

/// Up to `limit` entries from `direction`'s start matching `filter` (with its search,
/// when `window` is given only up to that bound), in reading order.
fn read(
    conn: &mut DbConnection,
    filter: &Filter,
    direction: Direction,
    limit: i64,
    window: Option<Cursor>,
) -> Result<Vec<ListedRow>, ApiError> {
    let pattern = filter.search.as_deref().map(like_pattern);
    let mut rows = Vec::new();
    for part in parts(filter) {
        let mut query = filtered(filter, part, direction);
        if let Some(bound) = window {
            query = up_to(query, direction, bound);
        }
        if let Some(pattern) = &pattern {
            query = query.filter(lower(audit_log::detail).like(pattern.clone()).escape('\\'));
        }
        let part_rows: Vec<ListedRow> = query
            .select(ListedRow::as_select())
            .limit(limit)
            .load(conn)?;
        rows.extend(part_rows);
    }
    rows.sort_by(|a, b| reading_order(direction, a.cursor(), b.cursor()));
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(rows)
}

/// Where a search of [`SEARCH_WINDOW`] entries from `direction`'s start ends: the
/// window-th entry matching the other filters (of a customer's two parts, the nearer
/// one, so that neither part is searched beyond its window), or `None` when fewer
/// entries than that remain: the search then reaches the end.
fn search_bound(
    conn: &mut DbConnection,
    filter: &Filter,
    direction: Direction,
) -> Result<Option<Cursor>, ApiError> {
    let offset = i64::try_from(SEARCH_WINDOW).unwrap_or(i64::MAX) - 1;
    let mut bound: Option<Cursor> = None;
    for part in parts(filter) {
        let found: Option<(i64, i64)> = filtered(filter, part, direction)
            .select((audit_log::at, audit_log::id))
            .offset(offset)
            .limit(1)
            .first(conn)
            .optional()?;
        if let Some((at, id)) = found {
            let found = Cursor { at, id };
            bound = Some(match bound {
                Some(other) if reading_order(direction, other, found).is_lt() => other,
                _ => found,
            });
        }
    }
    Ok(bound)
}

/// One page of the log, without the chain's status (see `audit_chain::status`).
pub struct Page {
    /// Newest first.
    pub entries: Vec<AuditRecord>,
    pub older: Option<Cursor>,
    pub newer: Option<Cursor>,
    pub search: Option<SearchReach>,
}

/// One page of the log: up to `limit` entries matching `filter` from the cursor in
/// `direction`, newest first, with the cursors of the pages around it. A free-text
/// search looks at no more than [`SEARCH_WINDOW`] entries per page and says so.
pub fn page(
    conn: &mut DbConnection,
    filter: &Filter,
    direction: Direction,
    limit: u32,
) -> Result<Page, ApiError> {
    let limit = usize::try_from(limit.clamp(1, MAX_PAGE)).unwrap_or(1);
    let (window, search) = match &filter.search {
        None => (None, None),
        Some(_) => {
            let bound = search_bound(conn, filter, direction)?;
            let reach = SearchReach {
                limit: SEARCH_WINDOW,
                complete: bound.is_none(),
                stopped_at: bound.map(|b| from_millis(b.at)),
            };
            (bound, Some(reach))
        }
    };
    let mut rows = read(
        conn,
        filter,
        direction,
        i64::try_from(limit + 1).unwrap_or(2),
        window,
    )?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    // What lies beyond the page's far end: more entries, or (a search stopped at its
    // window) entries not searched yet, which the window's end continues.
    let beyond = match (more, window) {
        (true, _) => rows.last().map(ListedRow::cursor),
        (false, bound) => bound,
    };
    let (older, newer) = match direction {
        Direction::Older(from) => {
            // Entries newer than this page exist when it was asked from a cursor: the
            // newer page starts at its first entry (or, when it is empty, at the cursor's
            // entry itself).
            let newer = from.map(|from| {
                rows.first().map_or(
                    Cursor {
                        at: from.at,
                        id: from.id.saturating_sub(1),
                    },
                    ListedRow::cursor,
                )
            });
            (beyond, newer)
        }
        Direction::Newer(from) => {
            rows.reverse();
            (Some(rows.last().map_or(from, ListedRow::cursor)), beyond)
        }
    };
    let entries = rows
        .into_iter()
        .map(ListedRow::into_record)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page {
        entries,
        older,
        newer,
        search,
    })
}

/// Up to `batch` entries matching `filter` (its search over every entry), strictly
/// older than `after`, newest first: one step of an export.
pub fn export_batch(
    conn: &mut DbConnection,
    filter: &Filter,
    after: Option<Cursor>,
    batch: i64,
) -> Result<Vec<AuditRecord>, ApiError> {
    read(conn, filter, Direction::Older(after), batch, None)?
        .into_iter()
        .map(ListedRow::into_record)
        .collect()
}
