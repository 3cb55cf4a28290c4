//! The audit log: its newest entries; pages of it by filter, with a bounded free-text
//! search; its export as CSV or JSON, streamed whole; the walk of its hash chain (from
//! the last verified head, or full); and the chain's head signed with Solme's key.

use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::StreamExt;
use serde::Deserialize;
use shared_proto::admin_api::{AuditAction, AuditEntry, AuditOutcome, SignedAuditHead};
use shared_proto::audit_head::AuditHead;
use shared_proto::audit_log::{
    csv_line, AuditPage, AuditRecord, AuditVerifyReport, CSV_HEADER, DEFAULT_PAGE, MAX_PAGE,
    MAX_SEARCH,
};
use utoipa::IntoParams;

use super::{read_json, write, State};
use crate::auth::Viewer;
use crate::db::Pool;
use crate::error::ApiError;
use crate::routes::with_conn;
use crate::seen_head::SeenHead;
use crate::store::audit::{Cursor, Direction, Filter, OutcomeFilter};
use crate::store::{audit, audit_chain, MAX_EMAIL};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// How many entries: default 100.
    limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/admin/v1/audit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "The newest audit entries, newest first.", body = [AuditEntry]),
        (status = 400, description = "`MALFORMED`: a bad query."),
    )
)]
pub(super) async fn list_audit(
    _: Viewer,
    state: State,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100);
    read_json(&state, move |conn| audit::list(conn, limit)).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyQuery {
    /// A saved `GET /audit/head` answer's `signed` text, to check against the chain.
    head: Option<String>,
    /// `true`: walk the whole chain from its first position. Otherwise the walk starts
    /// after the head the last intact walk reached (after checking that entry's hash).
    full: Option<bool>,
}

/// Seals the audit entries waiting, so that what verify and head see is current.
pub(super) async fn seal_pending(state: &State) -> Result<usize, ApiError> {
    let pool = state.db.write.clone();
    web::block(move || audit_chain::seal_pending(&pool)).await?
}

/// Seals what is waiting, then walks the audit chain (on a reading connection: a long
/// walk holds up no write) and names the first problem.
#[utoipa::path(
    get, path = "/admin/v1/audit/verify", tag = "audit",
    params(VerifyQuery),
    responses(
        (status = 200, description = "The walk of the audit chain (from the last verified head, or full): intact, or the first entry changed, removed, inserted or rewritten. The outcome is stored for the audit view.", body = AuditVerifyReport),
        (status = 400, description = "`BAD_SIGNATURE`: the saved head is not signed with Solme's key; `MALFORMED`: the text is not a saved head."),
    )
)]
pub(super) async fn verify_audit(
    _: Viewer,
    state: State,
    seen: web::Data<SeenHead>,
    query: web::Query<VerifyQuery>,
) -> Result<HttpResponse, ApiError> {
    // The signature is checked first: a saved head not made with this server's key
    // proves nothing about the chain.
    let query = query.into_inner();
    let full = query.full.unwrap_or(false);
    let saved = query
        .head
        .map(|text| AuditHead::verify(&text, &state.signing_key.public_key()))
        .transpose()?;
    seal_pending(&state).await?;
    let seen = seen.load().map_err(ApiError::Internal)?;
    let report = with_conn(&state.db.read, move |conn| {
        audit_chain::verify(conn, saved, seen, full)
    })
    .await?;
    let walked = report.report.clone();
    write(&state, move |conn, now| {
        audit_chain::record_verification(conn, &walked, now)
    })
    .await?;
    Ok(HttpResponse::Ok().json(report))
}

/// The chain's newest entry, signed with Solme's key, for an operator to keep.
#[utoipa::path(
    get, path = "/admin/v1/audit/head", tag = "audit",
    responses((status = 200, description = "The newest sealed entry's position and hash, signed with Solme's key.", body = SignedAuditHead))
)]
pub(super) async fn audit_head(_: Viewer, state: State) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    seal_pending(&state).await?;
    let head = with_conn(&state.db.read, move |conn| audit_chain::head(conn, now)).await?;
    let signed = head.sign(&state.signing_key)?;
    Ok(HttpResponse::Ok().json(SignedAuditHead { head, signed }))
}

/// Most bytes of a filter's text (an actor is at most an email address long).
const MAX_FILTER: usize = MAX_EMAIL;
/// Entries read per query of an export.
const EXPORT_BATCH: i64 = 1_000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct EntriesQuery {
    /// Entries about this license server id.
    server_id: Option<String>,
    /// Entries about the ids this customer has and about the customer itself.
    customer_id: Option<String>,
    /// Entries by this actor (an operator's name, a contact address, `unauthenticated`).
    actor: Option<String>,
    /// Entries of this action (`sync`, `key.clear`, …).
    action: Option<String>,
    /// `OK`, `failed` (every refusal and failure) or one error code.
    outcome: Option<String>,
    /// From this time on (RFC 3339, or a date `YYYY-MM-DD` for its midnight UTC).
    from: Option<String>,
    /// Before this time (same forms; a date means its midnight, so `to=2027-01-02`
    /// includes all of 2027-01-01).
    to: Option<String>,
    /// Text the detail contains, any case (1 to 200 characters). A page's search looks
    /// at no more than 50,000 entries matching the other filters, and its `search`
    /// says where it stopped.
    q: Option<String>,
    /// A page's `older` cursor: the entries after it, going back in time.
    before: Option<String>,
    /// A page's `newer` cursor: the entries before it, going forward in time.
    after: Option<String>,
    /// Entries per page, 1 to 1000 (default 50).
    limit: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportQuery {
    /// `csv` or `json` (required).
    format: Option<String>,
    /// Entries about this license server id.
    server_id: Option<String>,
    /// Entries about the ids this customer has and about the customer itself.
    customer_id: Option<String>,
    /// Entries by this actor.
    actor: Option<String>,
    /// Entries of this action.
    action: Option<String>,
    /// `OK`, `failed` or one error code.
    outcome: Option<String>,
    /// From this time on (RFC 3339 or `YYYY-MM-DD`).
    from: Option<String>,
    /// Before this time (RFC 3339 or `YYYY-MM-DD`).
    to: Option<String>,
    /// Text the detail contains, any case: the export searches every entry.
    q: Option<String>,
    /// Start after this cursor (an entry's `cursor`) instead of at the newest entry.
    before: Option<String>,
}

/// The filter's words, as given in either query.
struct FilterText<'a> {
    server_id: Option<&'a str>,
    customer_id: Option<&'a str>,
    actor: Option<&'a str>,
    action: Option<&'a str>,
    outcome: Option<&'a str>,
    from: Option<&'a str>,
    to: Option<&'a str>,
    q: Option<&'a str>,
}

/// A given, non-empty query value (an empty field of a form means "any").
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn parse_id(what: &str, text: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(text).map_err(|_| {
        ApiError::malformed(format!(
            "the {what} filter {:?} is not an id (like 0f8e5b6e-2f4c-4a8e-9d1a-3c5b7e9f1a2b)",
            clip(text)
        ))
    })
}

/// At most 40 characters of a bad value, for a message.
fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

fn parse_time(what: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if let Some(midnight) = date.and_hms_opt(0, 0, 0) {
            return Ok(midnight.and_utc());
        }
    }
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::malformed(format!(
                "the {what} time {:?} is not a date (YYYY-MM-DD) or a time (like \
                 2027-01-31T14:00:00Z)",
                clip(text)
            ))
        })
}

impl FilterText<'_> {
    /// The filter, or `MALFORMED` naming the value that is not one.
    fn parse(&self) -> Result<Filter, ApiError> {
        // No stored text holds a control character (PostgreSQL's text cannot even hold
        // a NUL): such a filter is a mistake, answered as one.
        for (what, text) in [("actor", self.actor), ("search", self.q)] {
            if text.is_some_and(|t| t.chars().any(char::is_control)) {
                return Err(ApiError::malformed(format!(
                    "the {what} text holds a control character (a line break, a tab or an \
                     invisible one)"
                )));
            }
        }
        let actor = match self.actor {
            Some(actor) if actor.len() > MAX_FILTER => {
                return Err(ApiError::malformed(format!(
                    "the actor filter is longer than {MAX_FILTER} bytes"
                )))
            }
            actor => actor.map(str::to_owned),
        };
        let action = self
            .action
            .map(|text| {
                text.parse::<AuditAction>().map_err(|_| {
                    ApiError::malformed(format!(
                        "the action filter {:?} is no action of the audit log; the actions are {}",
                        clip(text),
                        AuditAction::ALL
                            .iter()
                            .map(|a| a.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
            })
            .transpose()?;
        let outcome = self
            .outcome
            .map(|text| {
                if text.eq_ignore_ascii_case("failed") {
                    return Ok(OutcomeFilter::AnyFailure);
                }
                text.parse::<AuditOutcome>()
                    .map(OutcomeFilter::Is)
                    .map_err(|_| {
                        ApiError::malformed(format!(
                            "the outcome filter {:?} is not an outcome: give OK, failed (any \
                             refusal or failure) or an error code such as NOT_FOUND",
                            clip(text)
                        ))
                    })
            })
            .transpose()?;
        let from = self.from.map(|t| parse_time("from", t)).transpose()?;
        let to = self.to.map(|t| parse_time("to", t)).transpose()?;
        if let (Some(from), Some(to)) = (from, to) {
            if from >= to {
                return Err(ApiError::malformed(format!(
                    "the time range is empty: from ({}) must be before to ({})",
                    from.format("%Y-%m-%d %H:%M:%S UTC"),
                    to.format("%Y-%m-%d %H:%M:%S UTC")
                )));
            }
        }
        let search = match self.q {
            Some(q) if q.chars().count() > MAX_SEARCH => {
                return Err(ApiError::malformed(format!(
                    "the search text is longer than {MAX_SEARCH} characters"
                )))
            }
            q => q.map(str::to_owned),
        };
        Ok(Filter {
            server_id: self.server_id.map(|t| parse_id("id", t)).transpose()?,
            customer_id: self
                .customer_id
                .map(|t| parse_id("customer", t))
                .transpose()?,
            actor,
            action,
            outcome,
            from,
            to,
            search,
        })
    }
}

fn parse_cursor(text: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    text.map(str::parse).transpose()
}

/// One page of the audit log by filter, newest first, with the cursors of the pages
/// around it and the chain's verification status.
#[utoipa::path(
    get, path = "/admin/v1/audit/entries", tag = "audit",
    params(EntriesQuery),
    responses(
        (status = 200, description = "One page of entries, newest first (by time, then entry number); `older`/`newer` continue it, unaffected by entries written meanwhile. A search says how far it looked.", body = AuditPage),
        (status = 400, description = "`MALFORMED`: a filter, cursor or limit that is not one (the message names it), both `before` and `after`, or an empty time range."),
    )
)]
pub(super) async fn list_entries(
    _: Viewer,
    state: State,
    query: web::Query<EntriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let filter = FilterText {
        server_id: given(&query.server_id),
        customer_id: given(&query.customer_id),
        actor: given(&query.actor),
        action: given(&query.action),
        outcome: given(&query.outcome),
        from: given(&query.from),
        to: given(&query.to),
        q: given(&query.q),
    }
    .parse()?;
    let direction = match (
        parse_cursor(given(&query.before))?,
        parse_cursor(given(&query.after))?,
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::malformed(
                "give either before (older entries) or after (newer entries), not both",
            ))
        }
        (before, None) => Direction::Older(before),
        (None, Some(after)) => Direction::Newer(after),
    };
    let limit = match given(&query.limit) {
        None => DEFAULT_PAGE,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::malformed(format!(
                    "the page size {:?} is not a number from 1 to {MAX_PAGE}",
                    clip(text)
                )))
            }
        },
    };
    read_json(&state, move |conn| {
        let page = audit::page(conn, &filter, direction, limit)?;
        Ok(AuditPage {
            entries: page.entries,
            older: page.older.map(|c| c.to_string()),
            newer: page.newer.map(|c| c.to_string()),
            search: page.search,
            chain: audit_chain::status(conn)?,
        })
    })
    .await
}

/// The export's file format.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

/// Every entry matching the filter, newest first, as one CSV or JSON file, streamed in
/// batches (nothing is cut: a failure part-way breaks the transfer off rather than end
/// the file early).
#[utoipa::path(
    get, path = "/admin/v1/audit/export", tag = "audit",
    params(ExportQuery),
    responses(
        (status = 200, description = "Every matching entry, newest first, streamed: `text/csv` (a header line, then entry, chain position, time, actor, action, license server id, outcome, detail) or `application/json` (an array of entries as in `GET /audit/entries`). No limit applies; if the server fails part-way the transfer breaks off instead of ending.", content((String = "text/csv"), (Vec<AuditRecord> = "application/json"))),
        (status = 400, description = "`MALFORMED`: no format, one other than csv or json, or a filter or cursor that is not one (the message names it)."),
    )
)]
pub(super) async fn export_entries(
    _: Viewer,
    state: State,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let format = match given(&query.format).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => Format::Csv,
        Some("json") => Format::Json,
        None => {
            return Err(ApiError::malformed(
                "say which file the export is: format=csv or format=json",
            ))
        }
        Some(other) => {
            return Err(ApiError::malformed(format!(
                "the export format {:?} is not one: give csv or json",
                clip(other)
            )))
        }
    };
    let filter = FilterText {
        server_id: given(&query.server_id),
        customer_id: given(&query.customer_id),
        actor: given(&query.actor),
        action: given(&query.action),
        outcome: given(&query.outcome),
        from: given(&query.from),
        to: given(&query.to),
        q: given(&query.q),
    }
    .parse()?;
    let start = parse_cursor(given(&query.before))?;
    // The first batch before the answer starts: a database that is down gets its
    // proper error status rather than a transfer broken off at once.
    let pool = state.db.read.clone();
    let first = read_batch(&pool, &filter, start).await?;
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    let name = format!(
        "solme-audit-{}.{extension}",
        state.clock.now().format("%Y%m%d-%H%M%S")
    );
    let head = match format {
        Format::Csv => Bytes::from_static(CSV_HEADER.as_bytes()),
        Format::Json => Bytes::from_static(b"["),
    };
    let stream = futures_util::stream::unfold(
        Export {
            pool,
            filter,
            format,
            pending: Some(first),
            last: start,
            written: 0,
            done: false,
        },
        |mut export| async move {
            if export.done {
                return None;
            }
            let batch = match export.pending.take() {
                Some(batch) => batch,
                None => match read_batch(&export.pool, &export.filter, export.last).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        log::error!("audit export failed part-way: {error}");
                        export.done = true;
                        return Some((Err(actix_web::Error::from(error)), export));
                    }
                },
            };
            let last = i64::try_from(batch.len()).unwrap_or(i64::MAX) < EXPORT_BATCH;
            let bytes = export.render(&batch, last);
            if let Some(record) = batch.last() {
                export.last = Some(Cursor {
                    at: crate::db::to_millis(record.at),
                    id: record.entry,
                });
            }
            export.done = last;
            Some((Ok(bytes), export))
        },
    );
    let stream =
        futures_util::stream::once(async move { Ok::<_, actix_web::Error>(head) }).chain(stream);
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(name)],
        })
        .streaming(stream))
}

/// An export under way.
struct Export {
    pool: Pool,
    filter: Filter,
    format: Format,
    /// The first batch, read before the answer started.
    pending: Option<Vec<AuditRecord>>,
    /// Where the next batch starts.
    last: Option<Cursor>,
    /// Entries written so far.
    written: u64,
    done: bool,
}

impl Export {
    /// A batch in the file's format; `last` closes the file.
    fn render(&mut self, batch: &[AuditRecord], last: bool) -> Bytes {
        let mut out = String::with_capacity(batch.len() * 200);
        for record in batch {
            match self.format {
                Format::Csv => csv_line(&mut out, record),
                Format::Json => {
                    out.push_str(if self.written == 0 { "\n" } else { ",\n" });
                    // An entry of plain strings and numbers always serializes.
                    out.push_str(&serde_json::to_string(record).unwrap_or_default());
                }
            }
            self.written += 1;
        }
        if last && self.format == Format::Json {
            out.push_str("\n]\n");
        }
        Bytes::from(out)
    }
}

/// The next batch of an export, strictly older than `after`.
async fn read_batch(
    pool: &Pool,
    filter: &Filter,
    after: Option<Cursor>,
) -> Result<Vec<AuditRecord>, ApiError> {
    let filter = filter.clone();
    with_conn(pool, move |conn| {
        audit::export_batch(conn, &filter, after, EXPORT_BATCH)
    })
    .await
}
