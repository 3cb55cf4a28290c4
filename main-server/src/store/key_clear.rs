//! Key-clear requests that arrived by email: created by the mail gateway, decided by
//! an operator, and marked "notified" once the gateway has told the sender.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use shared_proto::admin_api::{AuditAction, AuditEntry, AuditOutcome};
use shared_proto::admin_api::{
    DecidedKeyClearRequest, KeyClearRequest, KeyClearRequestDetail, KeyClearStatus,
    NewKeyClearRequest, SenderAuth,
};
use shared_proto::ErrorCode;
use uuid::Uuid;

use super::audit;
use super::{
    check_text, customers, normalize_email, parse_uuid, parse_word, required_line, servers,
    MAX_MESSAGE_ID, MAX_REASON, MAX_TEXT,
};
use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::key_clear_requests as kcr;

/// The stored text of a pending request (the filters below compare with it).
const PENDING: &str = KeyClearStatus::Pending.as_str();

/// Longest verdict detail stored (the gateway writes at most 500 characters).
const MAX_SENDER_AUTH_DETAIL: usize = 1_000;

/// One stored request, as read.
#[derive(Queryable, Selectable)]
#[diesel(table_name = kcr)]
struct Row {
    id: String,
    server_id: String,
    sender: String,
    message_id: String,
    text: String,
    status: String,
    created_at: i64,
    decided_at: Option<i64>,
    operator: Option<String>,
    reason: Option<String>,
    sender_auth: String,
    sender_auth_detail: String,
}

fn to_view(row: Row) -> Result<KeyClearRequest, ApiError> {
    Ok(KeyClearRequest {
        id: parse_uuid(&row.id)?,
        server_id: parse_uuid(&row.server_id)?,
        sender: row.sender,
        message_id: row.message_id,
        text: row.text,
        sender_auth: parse_word(&row.sender_auth)?,
        sender_auth_detail: row.sender_auth_detail,
        status: parse_word(&row.status)?,
        created_at: from_millis(row.created_at),
        decided_at: row.decided_at.map(from_millis),
        operator: row.operator,
        reason: row.reason,
    })
}

fn by_message_id(
    conn: &mut DbConnection,
    message_id: &str,
) -> Result<Option<KeyClearRequest>, ApiError> {
    let row: Option<Row> = kcr::table
        .filter(kcr::message_id.eq(message_id))
        .select(Row::as_select())
        .first(conn)
        .optional()?;
    row.map(to_view).transpose()
}

pub fn get(conn: &mut DbConnection, id: Uuid) -> Result<KeyClearRequest, ApiError> {
    let row: Option<Row> = kcr::table
        .find(id.to_string())
        .select(Row::as_select())
        .first(conn)
        .optional()?;
    to_view(row.ok_or_else(|| ApiError::not_found(format!("no key-clear request {id}")))?)
}

/// A request with what an operator needs to decide it: the id's customer, its key
/// pair and last sync now, until when its installation keeps issuing, and the
/// customer's other contacts (whom to ask whether the request is genuine).
pub fn detail(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    id: Uuid,
) -> Result<KeyClearRequestDetail, ApiError> {
    let request = get(conn, id)?;
    let server = servers::get(conn, now, request.server_id)?;
    let sender = request.sender.to_lowercase();
    let other_contacts = customers::get(conn, server.customer_id)?
        .emails
        .into_iter()
        .filter(|email| email.to_lowercase() != sender)
        .collect();
    Ok(KeyClearRequestDetail {
        request,
        customer_id: server.customer_id,
        customer_name: server.customer_name,
        bound_fingerprint: server.bound_fingerprint,
        bound_at: server.bound_at,
        last_sync_at: server.last_sync_at,
        last_sync_channel: server.last_sync_channel,
        valid_until: server.valid_until,
        days_until_due: server.days_until_due,
        possible_copy_since: server.possible_copy_since,
        retired_at: server.retired_at,
        other_contacts,
    })
}

/// Records a request; returns it and whether it is new (`false`: the same Message-ID
/// was recorded before, and that earlier request is returned unchanged).
pub fn create(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    new: &NewKeyClearRequest,
) -> Result<(KeyClearRequest, bool), ApiError> {
    let message_id = required_line("message_id", &new.message_id, MAX_MESSAGE_ID)?;
    check_text("text", &new.text, MAX_TEXT)?;
    check_text(
        "sender_auth_detail",
        &new.sender_auth_detail,
        MAX_SENDER_AUTH_DETAIL,
    )?;
    // The request and its audit entry commit together, so a crash between them cannot
    // leave an unaudited request that the gateway's retry then finds and returns.
    let created = conn.transaction::<_, ApiError, _>(|conn| {
        if let Some(existing) = by_message_id(conn, &message_id)? {
            return Ok((existing, false));
        }
        customers::check_contact(conn, new.server_id, &new.sender)?;
        let sender = normalize_email(&new.sender)?;
        let id = Uuid::new_v4();
        // The same mail delivered twice at once: the unique key keeps one request.
        let inserted = super::insert_unless_present(conn, |conn| {
            diesel::insert_into(kcr::table)
                .values((
                    kcr::id.eq(id.to_string()),
                    kcr::server_id.eq(new.server_id.to_string()),
                    kcr::sender.eq(&sender),
                    kcr::message_id.eq(&message_id),
                    kcr::text.eq(&new.text),
                    kcr::sender_auth.eq(new.sender_auth.as_str()),
                    kcr::sender_auth_detail.eq(new.sender_auth_detail.trim()),
                    kcr::status.eq(PENDING),
                    kcr::created_at.eq(to_millis(now)),
                    kcr::notified.eq(false),
                ))
                .execute(conn)
        })?;
        if !inserted {
            let existing = by_message_id(conn, &message_id)?.ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("request {message_id:?} vanished"))
            })?;
            return Ok((existing, false));
        }
        let detail = format!(
            "request {id}, mail {message_id}, sender {}",
            new.sender_auth.describe(&new.sender_auth_detail)
        );
        audit::record(
            conn,
            now,
            &sender,
            AuditAction::KeyClearRequestCreate,
            Some(new.server_id),
            &detail,
        )?;
        Ok((get(conn, id)?, true))
    })?;
    if created.1 {
        log::info!(
            "key-clear request recorded server_id={} request={} sender={}",
            new.server_id,
            created.0.id,
            created.0.sender
        );
    }
    Ok(created)
}

pub fn list(
    conn: &mut DbConnection,
    status: Option<KeyClearStatus>,
) -> Result<Vec<KeyClearRequest>, ApiError> {
    let mut query = kcr::table
        .select(Row::as_select())
        .order((kcr::created_at.desc(), kcr::id.asc()))
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(kcr::status.eq(status.as_str()));
    }
    let rows: Vec<Row> = query.load(conn)?;
    rows.into_iter().map(to_view).collect()
}

/// How an operator decides a pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve {
        /// The operator confirms approving although the sender was not authenticated.
        override_unauthenticated: bool,
    },
    Reject,
}

/// Approves (clearing the id's key pair in the same transaction) or rejects a pending
/// request. Deciding it again the same way returns it unchanged; the other way is
/// refused. Approving a request whose sender was not authenticated needs the
/// override, and its audit entry says it was used; an approval refused for want of it
/// is audited as refused.
pub fn decide(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    operator: &str,
    id: Uuid,
    verdict: Verdict,
    reason: Option<&str>,
) -> Result<KeyClearRequest, ApiError> {
    let (approve, override_unauthenticated) = match verdict {
        Verdict::Approve {
            override_unauthenticated,
        } => (true, override_unauthenticated),
        Verdict::Reject => (false, false),
    };
    let status = if approve {
        KeyClearStatus::Approved
    } else {
        KeyClearStatus::Rejected
    };
    let reason = match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(reason) => Some(required_line("reason", reason, MAX_REASON)?),
        None if approve => None,
        None => return Err(ApiError::malformed("a rejection needs a reason")),
    };
    let decided = conn.transaction::<_, ApiError, _>(|conn| {
        let before = get(conn, id)?;
        let unauthenticated = before.sender_auth != SenderAuth::Authenticated;
        if approve
            && unauthenticated
            && !override_unauthenticated
            && before.status == KeyClearStatus::Pending
        {
            return Ok(Decided::NeedsOverride(before));
        }
        // Conditional on `pending`: two operators deciding at once cannot both win.
        let updated = diesel::update(
            kcr::table
                .filter(kcr::id.eq(id.to_string()))
                .filter(kcr::status.eq(PENDING)),
        )
        .set((
            kcr::status.eq(status.as_str()),
            kcr::decided_at.eq(Some(to_millis(now))),
            kcr::operator.eq(Some(operator)),
            kcr::reason.eq(reason.as_deref()),
        ))
        .execute(conn)?;
        let request = get(conn, id)?;
        if updated == 0 {
            if request.status == status {
                return Ok(Decided::Done(request));
            }
            // Deciding it the other way now would contradict what the sender may have
            // been told: a conflict with the recorded decision (409), not bad input.
            return Err(ApiError::refused(
                ErrorCode::AlreadyDecided,
                format!(
                    "key-clear request {id} was already {} by {} at {}; a decided request \
                     cannot be {} (the mail gateway can record a new request)",
                    request.status,
                    request.operator.as_deref().unwrap_or("an operator"),
                    request
                        .decided_at
                        .map_or_else(|| "-".to_owned(), |at| at.to_rfc3339()),
                    status
                ),
            ));
        }
        if approve {
            let why = reason
                .clone()
                .unwrap_or_else(|| format!("key-clear request from {}", request.sender));
            servers::clear_key(
                conn,
                now,
                operator,
                request.server_id,
                &why,
                &format!("request {id}"),
            )?;
        }
        let mut detail = match &reason {
            Some(reason) => format!("request {id}, reason: {reason}"),
            None => format!("request {id}, no reason given"),
        };
        if approve && unauthenticated {
            detail.push_str(&format!(
                ", override used (sender {}: {})",
                request.sender,
                request.sender_auth.describe(&request.sender_auth_detail)
            ));
        }
        audit::record(
            conn,
            now,
            operator,
            if approve {
                AuditAction::KeyClearRequestApprove
            } else {
                AuditAction::KeyClearRequestReject
            },
            Some(request.server_id),
            &detail,
        )?;
        Ok(Decided::Done(request))
    })?;
    match decided {
        Decided::Done(request) => Ok(request),
        // Refused, and audited: an approval without the override is worth a trace.
        Decided::NeedsOverride(request) => {
            let sender_check = request.sender_auth.describe(&request.sender_auth_detail);
            let audited = audit::record_entry(
                conn,
                &AuditEntry {
                    at: now,
                    actor: operator.to_owned(),
                    action: AuditAction::KeyClearRequestApprove,
                    server_id: Some(request.server_id),
                    outcome: AuditOutcome::Failed(ErrorCode::OverrideRequired),
                    detail: format!(
                        "request {id} not approved: its sender {} was {sender_check}, \
                         and the override was not given",
                        request.sender
                    ),
                },
            );
            // The operator is told why in any case; a lost trace is only logged.
            if let Err(e) = audited {
                log::warn!("could not audit a refused approval of request {id}: {e}");
            }
            Err(ApiError::refused(
                ErrorCode::OverrideRequired,
                format!(
                    "the sender of key-clear request {id}, {}, was {sender_check}; make sure \
                 otherwise that the request is genuine, then approve it with the override \
                 (override_unauthenticated: true, or --override-unauthenticated-sender)",
                    request.sender
                ),
            ))
        }
    }
}

/// What deciding a request came to.
enum Decided {
    Done(KeyClearRequest),
    /// Not decided: approving it needs the override (the request as it stands).
    NeedsOverride(KeyClearRequest),
}

/// Decided requests whose notices were not sent yet, oldest first, each with every
/// registered contact of its customer (all of them get the notice).
pub fn unnotified(conn: &mut DbConnection) -> Result<Vec<DecidedKeyClearRequest>, ApiError> {
    let rows: Vec<Row> = kcr::table
        .filter(kcr::status.ne(PENDING))
        .filter(kcr::notified.eq(false))
        .select(Row::as_select())
        .order(kcr::decided_at.asc())
        .load(conn)?;
    rows.into_iter()
        .map(|row| {
            let request = to_view(row)?;
            let contacts = customers::contacts_of_server(conn, request.server_id)?;
            Ok(DecidedKeyClearRequest { request, contacts })
        })
        .collect()
}

/// Records that the sender was told the decision. Only a decided request can be
/// marked: marking a pending one would suppress the notice of its later decision.
pub fn mark_notified(conn: &mut DbConnection, id: Uuid) -> Result<(), ApiError> {
    let updated = diesel::update(
        kcr::table
            .filter(kcr::id.eq(id.to_string()))
            .filter(kcr::status.ne(PENDING)),
    )
    .set(kcr::notified.eq(true))
    .execute(conn)?;
    if updated == 0 {
        // Tells "unknown" from "still pending" (`get` refuses the unknown one).
        get(conn, id)?;
        return Err(ApiError::malformed(format!(
            "key-clear request {id} is still pending: there is no decision to notify yet"
        )));
    }
    Ok(())
}
