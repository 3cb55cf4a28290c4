//! The operators' admin API (`/admin/v1/…`, see docs/API.md). Every route sits behind
//! the bearer check, which finds the caller's operator account and role from a personal
//! token or a console session; the audit log records that account's name as the actor.
//! The one exception is the API document, `GET /admin/v1/openapi.json`
//! ([`Need::Public`]). Each endpoint is declared once, in [`ENDPOINTS`], with the least
//! it needs: the router and the role check are both made from that list (the check on
//! the path as the router matches it, so an escaped spelling of a path needs the same
//! role). Each handler's `#[utoipa::path]` describes it in that document (see
//! `crate::openapi`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::Connection;
use serde::{Deserialize, Serialize};
use shared_proto::ErrorCode;
use uuid::Uuid;

use super::with_conn;
use crate::auth::{token_hash, Credential, Endpoint, FailureLimiter, Need, Verb, SESSION_PREFIX};
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::seen_head::SeenHead;
use crate::store::{
    audit, audit_chain, customers, key_clear, licenses, operators, reminders, servers, sessions,
    usage,
};
use crate::sync::SyncService;
use shared_proto::admin_api::{
    AuditAction, AuditEntry, AuditOutcome, AuditVerification, ConsoleSession, Customer,
    DecidedKeyClearRequest, Decision, DueReminder, Identity, IssuedToken, KeyClear,
    KeyClearRequest, KeyClearStatus, License, LicenseChange, MailSync, NewCustomer, NewEmail,
    NewKeyClearRequest, NewLicense, NewOperator, NewServer, OperatorAccount, Reminder,
    RemindersSwitch, Server, SignedAuditHead, SyncAnswer, SyncChannel, SyncUsage,
};
use shared_proto::audit_head::AuditHead;
use utoipa::IntoParams;

/// Declares every admin endpoint once, with the least it needs beside its handler:
/// [`ENDPOINTS`] (what the token check and the role table of docs/API.md read) and the
/// router's registrations are both made from this one list, so no route can exist
/// without a decided role, nor a role without its route.
macro_rules! endpoints {
    ($($verb:ident $path:literal => $need:ident, $handler:ident;)*) => {
        /// Every admin endpoint, in routing order (a literal segment before a `{…}` one
        /// at the same place), with the least it needs. Paths are under `/admin/v1`.
        pub const ENDPOINTS: &[Endpoint] = &[
            $(Endpoint { verb: Verb::$verb, path: $path, need: Need::$need },)*
        ];

        fn routes(scope: actix_web::Scope) -> actix_web::Scope {
            scope$(.route($path, web::method(Verb::$verb.method()).to($handler)))*
        }
    };
}

endpoints! {
    Post "/customers" => Manage, create_customer;
    Get "/customers" => Read, list_customers;
    Post "/customers/{id}/emails" => Manage, add_email;
    Get "/customers/{id}/reminders" => Read, list_reminders;
    Put "/customers/{id}/reminders" => Manage, switch_reminders;
    Post "/reminders/claim" => Mail, claim_reminders;
    Post "/reminders/{id}/handed" => Mail, reminder_handed;
    Post "/servers" => Manage, create_server;
    Get "/servers" => Read, list_servers;
    Get "/servers/{id}" => Read, show_server;
    Get "/servers/{id}/usage" => Read, server_usage;
    Post "/servers/{id}/licenses" => Manage, add_license;
    Patch "/servers/{id}/licenses/{license_id}" => Manage, change_license;
    Delete "/servers/{id}/licenses/{license_id}" => Manage, remove_license;
    Post "/servers/{id}/key-clear" => Manage, clear_key;
    Post "/mail/sync" => Mail, mail_sync;
    Post "/key-clear-requests" => Mail, create_request;
    Get "/key-clear-requests" => Read, list_requests;
    // The gateway's work list (with every contact address): a service endpoint, not a
    // view, so a viewer may not call it. Before `{id}`, which would match it too.
    Get "/key-clear-requests/unnotified" => Mail, unnotified_requests;
    Get "/key-clear-requests/{id}" => Read, show_request;
    Post "/key-clear-requests/{id}/approve" => Manage, approve_request;
    Post "/key-clear-requests/{id}/reject" => Manage, reject_request;
    Post "/key-clear-requests/{id}/notified" => Mail, mark_notified;
    Get "/audit" => Read, list_audit;
    Get "/audit/verify" => Read, verify_audit;
    Get "/audit/head" => Read, audit_head;
    Get "/whoami" => Own, whoami;
    Post "/sessions" => SignIn, open_session;
    Delete "/sessions/current" => Own, close_session;
    Post "/operators" => Admin, add_operator;
    Get "/operators" => Admin, list_operators;
    Post "/operators/{name}/revoke" => Admin, revoke_operator;
    Post "/operators/{name}/rotate" => Admin, rotate_operator;
    Get "/openapi.json" => Public, openapi_document;
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(routes(web::scope("/admin/v1")).wrap(from_fn(require_token)));
}

/// Longest `Authorization` header looked at.
const MAX_AUTHORIZATION: usize = 600;

/// Authenticates every admin request against the operator accounts or the console
/// sessions (one lookup per request, so a revocation counts at once on every replica),
/// checks the role, and leaves the [`Identity`] and the [`Credential`] in the request
/// for the handlers and the audit log.
async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Decided on the path the router matches (percent-escapes of plain characters
    // decoded), not the raw one: `/admin/v1/%6Fperators` is routed to `/operators`
    // and must need what that needs.
    let need = Need::of(ENDPOINTS, req.method(), req.match_info().as_str());
    if need == Need::Public {
        return next.call(req).await;
    }
    let Some(svc) = req.app_data::<Svc>().cloned() else {
        return Err(ApiError::Internal(anyhow::anyhow!("admin API without its service")).into());
    };
    let limiter = req.app_data::<web::Data<FailureLimiter>>().cloned();
    let peer = req.peer_addr().map(|a| a.ip());
    let now = svc.clock.now();
    if let (Some(limiter), Some(peer)) = (&limiter, peer) {
        if limiter.is_limited(peer, now) {
            return Err(ApiError::refused(
                ErrorCode::RateLimited,
                "too many refused tokens from this address: wait a minute",
            )
            .into());
        }
    }
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .filter(|h| h.len() <= MAX_AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let caller = match presented.clone() {
        Some(secret) if secret.starts_with(SESSION_PREFIX) => {
            with_conn(&svc.db.read, move |conn| {
                sessions::authenticate(conn, now, &secret)
            })
            .await?
            .map(|(identity, secret_hash)| (identity, Credential::Session { secret_hash }))
        }
        Some(token) => with_conn(&svc.db.read, move |conn| {
            operators::authenticate(conn, &token)
        })
        .await?
        .map(|identity| {
            let hash = token_hash(presented.as_deref().unwrap_or_default());
            (identity, Credential::Token { token_hash: hash })
        }),
        None => None,
    };
    let path = req.path().to_owned();
    let Some((identity, credential)) = caller else {
        let peer_text = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
        log::warn!("admin request refused: missing or wrong token peer={peer_text} path={path}");
        if let (Some(limiter), Some(peer)) = (&limiter, peer) {
            limiter.record_failure(peer, now);
        }
        let what = if presented.is_some() {
            "a token that is not valid"
        } else {
            "no token"
        };
        let detail = format!("{what} from {peer_text} for {} {path}", req.method());
        audit_refusal(
            &svc,
            now,
            "unauthenticated",
            AuditAction::AuthRefused,
            ErrorCode::Unauthorized,
            detail,
        )
        .await;
        return Err(ApiError::unauthorized(
            "this needs an operator token or a console session (missing, wrong, expired or \
             ended): send `Authorization: Bearer <token>`",
        )
        .into());
    };
    if !need.allows(identity.role) {
        log::warn!(
            "admin request forbidden: operator={} role={} path={path}",
            identity.name,
            identity.role
        );
        let detail = format!(
            "the {} role may not {} {path} ({})",
            identity.role,
            req.method(),
            need.describe()
        );
        // Known caller, insufficient role: its own action, so the log tells a probe
        // with stolen or guessed tokens apart from an account reaching past its role.
        audit_refusal(
            &svc,
            now,
            &identity.name,
            AuditAction::AuthForbidden,
            ErrorCode::Forbidden,
            detail,
        )
        .await;
        return Err(ApiError::refused(
            ErrorCode::Forbidden,
            format!(
                "{} is {}: {}",
                identity.name,
                identity.role,
                need.describe()
            ),
        )
        .into());
    }
    req.extensions_mut().insert(identity);
    req.extensions_mut().insert(credential);
    next.call(req).await
}

/// Audits a request the token check refused: `auth.refused` for a caller not
/// authenticated (actor `unauthenticated`), `auth.forbidden` for an account whose role
/// may not do it (actor: the account). The refusal is answered even when the audit
/// write fails: it is logged then.
async fn audit_refusal(
    svc: &Svc,
    now: chrono::DateTime<chrono::Utc>,
    actor: &str,
    action: AuditAction,
    code: ErrorCode,
    detail: String,
) {
    let entry = AuditEntry {
        at: now,
        actor: actor.to_owned(),
        action,
        server_id: None,
        outcome: AuditOutcome::Failed(code),
        detail,
    };
    if let Err(e) = with_conn(&svc.db.write, move |conn| audit::record_entry(conn, &entry)).await {
        log::warn!("could not audit a refused request: {e}");
    }
}

/// The authenticated caller's name, for the audit log.
pub struct Operator(pub String);

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let name = req
            .extensions()
            .get::<Identity>()
            .map(|identity| Operator(identity.name.clone()))
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("an admin route ran without authentication"))
            });
        std::future::ready(name)
    }
}

type Svc = web::Data<SyncService>;

/// Runs a change on a writing connection, at the clock's time of the request.
async fn write<T, F>(svc: &Svc, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection, DateTime<Utc>) -> Result<T, ApiError> + Send + 'static,
{
    let now = svc.clock.now();
    with_conn(&svc.db.write, move |conn| work(conn, now)).await
}

/// Runs a change like [`write`] and answers `status` with its result as JSON.
async fn write_json<T, F>(svc: &Svc, status: StatusCode, work: F) -> Result<HttpResponse, ApiError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&mut DbConnection, DateTime<Utc>) -> Result<T, ApiError> + Send + 'static,
{
    let value = write(svc, work).await?;
    Ok(HttpResponse::build(status).json(value))
}

/// Answers 200 with what `work` reads on a reading connection, as JSON.
async fn read_json<T, F>(svc: &Svc, work: F) -> Result<HttpResponse, ApiError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
{
    let value = with_conn(&svc.db.read, work).await?;
    Ok(HttpResponse::Ok().json(value))
}

#[utoipa::path(
    post, path = "/admin/v1/customers", tag = "customers",
    request_body = NewCustomer,
    responses(
        (status = 201, description = "The new customer.", body = Customer),
        (status = 400, description = "`MALFORMED`: an empty or multi-line name, or a contact that is no email address."),
    )
)]
async fn create_customer(
    svc: Svc,
    op: Operator,
    body: web::Json<NewCustomer>,
) -> Result<HttpResponse, ApiError> {
    write_json(&svc, StatusCode::CREATED, move |conn, now| {
        customers::create(conn, now, &op.0, &body)
    })
    .await
}

#[utoipa::path(
    get, path = "/admin/v1/customers", tag = "customers",
    responses((status = 200, description = "Every customer.", body = [Customer]))
)]
async fn list_customers(svc: Svc) -> Result<HttpResponse, ApiError> {
    read_json(&svc, customers::list).await
}

#[utoipa::path(
    post, path = "/admin/v1/customers/{id}/emails", tag = "customers",
    params(("id" = Uuid, Path, description = "The customer.")),
    request_body = NewEmail,
    responses(
        (status = 200, description = "The customer with the new contact.", body = Customer),
        (status = 400, description = "`MALFORMED`: not an email address."),
        (status = 404, description = "`NOT_FOUND`: no such customer."),
    )
)]
async fn add_email(
    svc: Svc,
    op: Operator,
    path: web::Path<Uuid>,
    body: web::Json<NewEmail>,
) -> Result<HttpResponse, ApiError> {
    write_json(&svc, StatusCode::OK, move |conn, now| {
        customers::add_email(conn, now, &op.0, *path, &body.email)
    })
    .await
}

#[utoipa::path(
    get, path = "/admin/v1/customers/{id}/reminders", tag = "reminders",
    params(("id" = Uuid, Path, description = "The customer.")),
    responses(
        (status = 200, description = "The reminders recorded for the customer's ids, newest first (at most 1000).", body = [Reminder]),
        (status = 404, description = "`NOT_FOUND`: no such customer."),
    )
)]
async fn list_reminders(svc: Svc, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    read_json(&svc, move |conn| reminders::list_for_customer(conn, *path)).await
}

#[utoipa::path(
    put, path = "/admin/v1/customers/{id}/reminders", tag = "reminders",
    params(("id" = Uuid, Path, description = "The customer.")),
    request_body = RemindersSwitch,
    responses(
        (status = 200, description = "The customer; off cancels the pending reminders.", body = Customer),
        (status = 400, description = "`MALFORMED`: a bad body."),
        (status = 404, description = "`NOT_FOUND`: no such customer."),
    )
)]
async fn switch_reminders(
    svc: Svc,
    op: Operator,
    path: web::Path<Uuid>,
    body: web::Json<RemindersSwitch>,
) -> Result<HttpResponse, ApiError> {
    write_json(&svc, StatusCode::OK, move |conn, now| {
        reminders::set_enabled(conn, now, &op.0, *path, body.enabled)
    })
    .await
}

/// The mail gateway's poll: records what became due and returns what to mail.
#[utoipa::path(
    post, path = "/admin/v1/reminders/claim", tag = "reminders",
    responses((status = 200, description = "The pending reminders to mail, oldest first (at most 100); idempotent.", body = [DueReminder]))
)]
async fn claim_reminders(svc: Svc) -> Result<HttpResponse, ApiError> {
    write_json(&svc, StatusCode::OK, reminders::claim).await
}

#[utoipa::path(
    post, path = "/admin/v1/reminders/{id}/handed", tag = "reminders",
    params(("id" = Uuid, Path, description = "The reminder.")),
    responses(
        (status = 200, description = "The reminder, marked handed to the outgoing spool.", body = Reminder),
        (status = 404, description = "`NOT_FOUND`: no such reminder."),
    )
)]
async fn reminder_handed(
    svc: Svc,
    op: Operator,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    write_json(&svc, StatusCode::OK, move |conn, now| {
        reminders::mark_handed(conn, now, &op.0, *path)
    })
    .await
}

#[utoipa::path(
    post, path = "/admin/v1/servers", tag = "servers",
    request_body = NewServer,
    responses(
        (status = 201, description = "The new license server id.", body = Server),
        (status = 400, description = "`MALFORMED`: a bad body."),
        (status = 404, description = "`NOT_FOUND`: no such customer."),
    )
)]
async fn create_server(
    svc: Svc,
    op: Operator,
    body: web::Json<NewServer>,
) -> Result<HttpResponse, ApiError> {
    write_json(&svc, StatusCode::CREATED, move |conn, now| {
        servers::create(conn, now, &op.0, body.customer_id)
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DueQuery {
    /// Only ids never synced or due within this many days (overdue included), by
    /// valid-until; without it every id, by id.
    due_within_days: Option<i64>,
    /// Ids per page: 1–1000, default 100.
    limit: Option<u32>,
    /// The last id of the previous page.
    after: Option<Uuid>,
}

#[utoipa::path(
    get, path = "/admin/v1/servers", tag = "servers",
    params(DueQuery),
    responses(
        (status = 200, description = "One page of ids; a page shorter than `limit` is the last.", body = [Server]),
        (status = 400, description = "`MALFORMED`: a bad query (`limit` outside 1–1000, `due_within_days` out of range)."),
        (status = 404, description = "`NOT_FOUND`: `after` names no id of the due list."),
    )
)]
async fn list_servers(svc: Svc, query: web::Query<DueQuery>) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let query = query.into_inner();
    let page = servers::Page {
        limit: query.limit,
        after: query.after,
    };
    let due = query.due_within_days;
    read_json(&svc, move |conn| servers::list(conn, now, due, page)).await
}

#[utoipa::path(
    get, path = "/admin/v1/servers/{id}", tag = "servers",
    params(("id" = Uuid, Path, description = "The license server id.")),
    responses(
        (status = 200, description = "The id with its binding, last sync and licenses.", body = Server),
        (status = 404, description = "`UNKNOWN_SERVER_ID` (or `NOT_FOUND` for a path that is no UUID)."),
    )
)]
async fn show_server(svc: Svc, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    read_json(&svc, move |conn| servers::get(conn, now, *path)).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    /// How many of the newest syncs: default 50, at most 1000.
    limit: Option<u32>,
}

/// The usage summaries of the id's latest syncs, oldest first.
#[utoipa::path(
    get, path = "/admin/v1/servers/{id}/usage", tag = "servers",
    params(("id" = Uuid, Path, description = "The license server id."), UsageQuery),
    responses(
        (status = 200, description = "The usage summaries of the id's newest accepted syncs, oldest first.", body = [SyncUsage]),
        (status = 400, description = "`MALFORMED`: a bad query."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`."),
    )
)]
async fn server_usage(
    svc: Svc,
    path: web::Path<Uuid>,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    read_json(&svc, move |conn| usage::list(conn, *path, query.limit)).await
}

#[utoipa::path(
    post, path = "/admin/v1/servers/{id}/licenses", tag = "licenses",
    params(("id" = Uuid, Path, description = "The license server id.")),
    request_body = NewLicense,
    responses(
        (status = 201, description = "The new license; the id's revision moves.", body = License),
        (status = 400, description = "`MALFORMED`: a bad feature name, seat count, validity or borrow limit, or the id already has a license of that feature."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`."),
    )
)]
async fn add_license(
    svc: Svc,
    op: Operator,
    path: web::Path<Uuid>,
    body: web::Json<NewLicense>,
) -> Result<HttpResponse, ApiError> {
    write_json(&svc, StatusCode::CREATED, move |conn, now| {
        licenses::add(conn, now, &op.0, *path, &body)
    })
    .await
}

#[utoipa::path(
    patch, path = "/admin/v1/servers/{id}/licenses/{license_id}", tag = "licenses",
    params(("id" = Uuid, Path, description = "The license server id."), ("license_id" = Uuid, Path, description = "The license.")),
    request_body = LicenseChange,
    responses(
        (status = 200, description = "The changed license; the id's revision moves.", body = License),
        (status = 400, description = "`MALFORMED`: a bad seat count or validity."),
        (status = 404, description = "`UNKNOWN_SERVER_ID` or `NOT_FOUND`: no such id or license."),
    )
)]
async fn change_license(
    svc: Svc,
    op: Operator,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<LicenseChange>,
) -> Result<HttpResponse, ApiError> {
    let (id, license_id) = path.into_inner();
    write_json(&svc, StatusCode::OK, move |conn, now| {
        licenses::change(conn, now, &op.0, id, license_id, &body)
    })
    .await
}

#[utoipa::path(
    delete, path = "/admin/v1/servers/{id}/licenses/{license_id}", tag = "licenses",
    params(("id" = Uuid, Path, description = "The license server id."), ("license_id" = Uuid, Path, description = "The license.")),
    responses(
        (status = 204, description = "Removed; the id's revision moves."),
        (status = 404, description = "`UNKNOWN_SERVER_ID` or `NOT_FOUND`: no such id or license."),
    )
)]
async fn remove_license(
    svc: Svc,
    op: Operator,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (id, license_id) = path.into_inner();
    write(&svc, move |conn, now| {
        licenses::remove(conn, now, &op.0, id, license_id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/admin/v1/servers/{id}/key-clear", tag = "servers",
    params(("id" = Uuid, Path, description = "The license server id.")),
    request_body = KeyClear,
    responses(
        (status = 200, description = "The id, now without a bound key pair.", body = Server),
        (status = 400, description = "`MALFORMED`: an empty or multi-line reason."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`."),
    )
)]
async fn clear_key(
    svc: Svc,
    op: Operator,
    path: web::Path<Uuid>,
    body: web::Json<KeyClear>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    write_json(&svc, StatusCode::OK, move |conn, now| {
        conn.transaction::<_, ApiError, _>(|conn| {
            servers::clear_key(conn, now, &op.0, id, &body.reason, "operator")
        })?;
        servers::get(conn, now, id)
    })
    .await
}

#[utoipa::path(
    post, path = "/admin/v1/mail/sync", tag = "mail",
    request_body = MailSync,
    responses(
        (status = 200, description = "The license file for the reply mail (the same again for the same sync data).", body = SyncAnswer),
        (status = 400, description = "`MALFORMED`, `UNSUPPORTED_VERSION`, `BAD_SIGNATURE` or `STALE_REQUEST`: sync data that cannot be answered."),
        (status = 403, description = "`UNAUTHORIZED`: the sender is no registered contact of the id's customer; `FORBIDDEN`: the token's role may not call this."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`."),
        (status = 409, description = "`ID_IN_USE` (another key pair holds the id) or `REPLAYED_REQUEST`."),
    )
)]
async fn mail_sync(
    svc: Svc,
    op: Operator,
    metrics: web::Data<Metrics>,
    body: web::Json<MailSync>,
) -> Result<HttpResponse, ApiError> {
    let service = svc.into_inner();
    let body = body.into_inner();
    let sync = web::block(move || {
        service.sync(
            &body.sync_data,
            SyncChannel::Email,
            &op.0,
            Some(&body.sender),
        )
    });
    let answer = metrics
        .observe_sync(SyncChannel::Email, async { sync.await? })
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

#[utoipa::path(
    post, path = "/admin/v1/key-clear-requests", tag = "key-clear requests",
    request_body = NewKeyClearRequest,
    responses(
        (status = 200, description = "The request already recorded for this `message_id`.", body = KeyClearRequest),
        (status = 201, description = "The new pending request.", body = KeyClearRequest),
        (status = 400, description = "`MALFORMED`: a bad body."),
        (status = 403, description = "`UNAUTHORIZED`: the sender is no registered contact of the id's customer; `FORBIDDEN`: the token's role may not call this."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`."),
    )
)]
async fn create_request(
    svc: Svc,
    body: web::Json<NewKeyClearRequest>,
) -> Result<HttpResponse, ApiError> {
    let (request, created) =
        write(&svc, move |conn, now| key_clear::create(conn, now, &body)).await?;
    Ok(if created {
        HttpResponse::Created().json(request)
    } else {
        HttpResponse::Ok().json(request)
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StatusQuery {
    /// Only the requests of this status.
    #[param(value_type = Option<KeyClearStatus>)]
    status: Option<String>,
}

#[utoipa::path(
    get, path = "/admin/v1/key-clear-requests", tag = "key-clear requests",
    params(StatusQuery),
    responses(
        (status = 200, description = "The requests, of one status if asked.", body = [KeyClearRequest]),
        (status = 400, description = "`MALFORMED`: an unknown status."),
    )
)]
async fn list_requests(svc: Svc, query: web::Query<StatusQuery>) -> Result<HttpResponse, ApiError> {
    let status = query
        .into_inner()
        .status
        .map(|status| status.parse::<KeyClearStatus>())
        .transpose()
        .map_err(|e| ApiError::malformed(format!("status: {e}")))?;
    read_json(&svc, move |conn| key_clear::list(conn, status)).await
}

#[utoipa::path(
    get, path = "/admin/v1/key-clear-requests/{id}", tag = "key-clear requests",
    params(("id" = Uuid, Path, description = "The key-clear request.")),
    responses(
        (status = 200, description = "The request, with its sender check and decision.", body = KeyClearRequest),
        (status = 404, description = "`NOT_FOUND`: no such request."),
    )
)]
async fn show_request(svc: Svc, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    read_json(&svc, move |conn| key_clear::get(conn, *path)).await
}

#[utoipa::path(
    get, path = "/admin/v1/key-clear-requests/unnotified", tag = "key-clear requests",
    responses((status = 200, description = "Decided requests whose contacts were not told yet, each with every contact to tell.", body = [DecidedKeyClearRequest]))
)]
async fn unnotified_requests(svc: Svc) -> Result<HttpResponse, ApiError> {
    read_json(&svc, key_clear::unnotified).await
}

async fn decide(
    svc: Svc,
    op: Operator,
    id: Uuid,
    verdict: key_clear::Verdict,
    reason: Option<String>,
) -> Result<HttpResponse, ApiError> {
    write_json(&svc, StatusCode::OK, move |conn, now| {
        key_clear::decide(conn, now, &op.0, id, verdict, reason.as_deref())
    })
    .await
}

#[utoipa::path(
    post, path = "/admin/v1/key-clear-requests/{id}/approve", tag = "key-clear requests",
    params(("id" = Uuid, Path, description = "The key-clear request.")),
    request_body(content = Option<Decision>, description = "Optional: a reason recorded with the decision."),
    responses(
        (status = 200, description = "The approved request; the id's key pair is cleared. Approving again changes nothing.", body = KeyClearRequest),
        (status = 400, description = "`MALFORMED`: a bad reason; `OVERRIDE_REQUIRED`: the sender was not authenticated and `override_unauthenticated` is not set."),
        (status = 404, description = "`NOT_FOUND`: no such request."),
        (status = 409, description = "`ALREADY_DECIDED`: the request was already rejected."),
    )
)]
async fn approve_request(
    svc: Svc,
    op: Operator,
    path: web::Path<Uuid>,
    body: Option<web::Json<Decision>>,
) -> Result<HttpResponse, ApiError> {
    let Decision {
        reason,
        override_unauthenticated,
    } = body.map(web::Json::into_inner).unwrap_or_default();
    let verdict = key_clear::Verdict::Approve {
        override_unauthenticated,
    };
    decide(svc, op, path.into_inner(), verdict, reason).await
}

#[utoipa::path(
    post, path = "/admin/v1/key-clear-requests/{id}/reject", tag = "key-clear requests",
    params(("id" = Uuid, Path, description = "The key-clear request.")),
    request_body = Decision,
    responses(
        (status = 200, description = "The rejected request. Rejecting again changes nothing.", body = KeyClearRequest),
        (status = 400, description = "`MALFORMED`: no reason, or a bad one."),
        (status = 404, description = "`NOT_FOUND`: no such request."),
        (status = 409, description = "`ALREADY_DECIDED`: the request was already approved."),
    )
)]
async fn reject_request(
    svc: Svc,
    op: Operator,
    path: web::Path<Uuid>,
    body: web::Json<Decision>,
) -> Result<HttpResponse, ApiError> {
    let reason = body.into_inner().reason;
    decide(
        svc,
        op,
        path.into_inner(),
        key_clear::Verdict::Reject,
        reason,
    )
    .await
}

#[utoipa::path(
    post, path = "/admin/v1/key-clear-requests/{id}/notified", tag = "key-clear requests",
    params(("id" = Uuid, Path, description = "The key-clear request.")),
    responses(
        (status = 204, description = "Marked: the sender was told of the decision."),
        (status = 400, description = "`MALFORMED`: the request is still pending."),
        (status = 404, description = "`NOT_FOUND`: no such request."),
    )
)]
async fn mark_notified(svc: Svc, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    with_conn(&svc.db.write, move |conn| {
        key_clear::mark_notified(conn, *path)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
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
async fn list_audit(svc: Svc, query: web::Query<AuditQuery>) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100);
    read_json(&svc, move |conn| audit::list(conn, limit)).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    /// A saved `GET /audit/head` answer's `signed` text, to check against the chain.
    head: Option<String>,
}

/// Seals the audit entries waiting, so that what verify and head see is current.
async fn seal_pending(svc: &Svc) -> Result<usize, ApiError> {
    let pool = svc.db.write.clone();
    web::block(move || audit_chain::seal_pending(&pool)).await?
}

/// Seals what is waiting, then walks the audit chain (on a reading connection: a long
/// walk holds up no write) and names the first problem.
#[utoipa::path(
    get, path = "/admin/v1/audit/verify", tag = "audit",
    params(VerifyQuery),
    responses(
        (status = 200, description = "The walk of the audit chain: intact, or the first entry changed, removed, inserted or rewritten.", body = AuditVerification),
        (status = 400, description = "`BAD_SIGNATURE`: the saved head is not signed with Solme's key; `MALFORMED`: the text is not a saved head."),
    )
)]
async fn verify_audit(
    svc: Svc,
    seen: web::Data<SeenHead>,
    query: web::Query<VerifyQuery>,
) -> Result<HttpResponse, ApiError> {
    // The signature is checked first: a saved head not made with this server's key
    // proves nothing about the chain.
    let saved = query
        .into_inner()
        .head
        .map(|text| AuditHead::verify(&text, &svc.signing_key.public_key()))
        .transpose()?;
    seal_pending(&svc).await?;
    let seen = seen.load().map_err(ApiError::Internal)?;
    read_json(&svc, move |conn| audit_chain::verify(conn, saved, seen)).await
}

/// The chain's newest entry, signed with Solme's key, for an operator to keep.
#[utoipa::path(
    get, path = "/admin/v1/audit/head", tag = "audit",
    responses((status = 200, description = "The newest sealed entry's position and hash, signed with Solme's key.", body = SignedAuditHead))
)]
async fn audit_head(svc: Svc) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    seal_pending(&svc).await?;
    let head = with_conn(&svc.db.read, move |conn| audit_chain::head(conn, now)).await?;
    let signed = head.sign(&svc.signing_key)?;
    Ok(HttpResponse::Ok().json(SignedAuditHead { head, signed }))
}

#[utoipa::path(
    get, path = "/admin/v1/whoami", tag = "operators",
    responses((status = 200, description = "The account the presented token belongs to (every role may ask).", body = Identity))
)]
async fn whoami(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let identity = req.extensions().get::<Identity>().cloned().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("an admin route ran without authentication"))
    })?;
    Ok(HttpResponse::Ok().json(identity))
}

/// Sign-in of the console: trades the personal token for a session secret.
#[utoipa::path(
    post, path = "/admin/v1/sessions", tag = "operators",
    responses(
        (status = 201, description = "A console session of the token's account (every role but the gateway), for 8 hours.", body = ConsoleSession),
    )
)]
async fn open_session(svc: Svc, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (identity, credential) = caller(&req)?;
    let Credential::Token { token_hash } = credential else {
        return Err(ApiError::refused(
            ErrorCode::Forbidden,
            "a console session cannot open another one: sign in with your personal token",
        ));
    };
    write_json(&svc, StatusCode::CREATED, move |conn, now| {
        sessions::open(conn, now, &identity, &token_hash)
    })
    .await
}

/// Sign-out of the console: the session secret stops working at once.
#[utoipa::path(
    delete, path = "/admin/v1/sessions/current", tag = "operators",
    responses(
        (status = 204, description = "The presented console session has ended."),
        (status = 400, description = "`MALFORMED`: the request carries a personal token, not a session."),
    )
)]
async fn close_session(svc: Svc, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (identity, credential) = caller(&req)?;
    let Credential::Session { secret_hash } = credential else {
        return Err(ApiError::malformed(
            "this request carries a personal token, not a console session: there is no \
             session to end (revoke or rotate the token to stop it)",
        ));
    };
    write(&svc, move |conn, now| {
        sessions::close(conn, now, &identity, &secret_hash)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Who the authenticated caller is and how it authenticated.
fn caller(req: &HttpRequest) -> Result<(Identity, Credential), ApiError> {
    let extensions = req.extensions();
    match (extensions.get::<Identity>(), extensions.get::<Credential>()) {
        (Some(identity), Some(credential)) => Ok((identity.clone(), credential.clone())),
        _ => Err(ApiError::Internal(anyhow::anyhow!(
            "an admin route ran without authentication"
        ))),
    }
}

#[utoipa::path(
    post, path = "/admin/v1/operators", tag = "operators",
    request_body = NewOperator,
    responses(
        (status = 201, description = "The new account with its token, shown this once.", body = IssuedToken),
        (status = 400, description = "`MALFORMED`: a bad name or role."),
        (status = 409, description = "`NAME_TAKEN`: the name is taken (names are never reused)."),
    )
)]
async fn add_operator(
    svc: Svc,
    op: Operator,
    body: web::Json<NewOperator>,
) -> Result<HttpResponse, ApiError> {
    write_json(&svc, StatusCode::CREATED, move |conn, now| {
        operators::add(conn, now, &op.0, &body.name, body.role)
    })
    .await
}

#[utoipa::path(
    get, path = "/admin/v1/operators", tag = "operators",
    responses((status = 200, description = "Every account, without tokens.", body = [OperatorAccount]))
)]
async fn list_operators(svc: Svc) -> Result<HttpResponse, ApiError> {
    read_json(&svc, operators::list).await
}

#[utoipa::path(
    post, path = "/admin/v1/operators/{name}/revoke", tag = "operators",
    params(("name" = String, Path, description = "The account's name.")),
    responses(
        (status = 200, description = "The revoked account; its token stops working at once.", body = OperatorAccount),
        (status = 403, description = "`FORBIDDEN`: the last active admin cannot be revoked, or the token's role may not do this."),
        (status = 404, description = "`NOT_FOUND`: no such account."),
    )
)]
async fn revoke_operator(
    svc: Svc,
    op: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    write_json(&svc, StatusCode::OK, move |conn, now| {
        operators::revoke(conn, now, &op.0, &path)
    })
    .await
}

#[utoipa::path(
    post, path = "/admin/v1/operators/{name}/rotate", tag = "operators",
    params(("name" = String, Path, description = "The account's name.")),
    responses(
        (status = 200, description = "The account with its new token, shown this once; the old one stops working at once.", body = IssuedToken),
        (status = 403, description = "`FORBIDDEN`: a revoked account cannot be rotated, or the token's role may not do this."),
        (status = 404, description = "`NOT_FOUND`: no such account."),
    )
)]
async fn rotate_operator(
    svc: Svc,
    op: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    write_json(&svc, StatusCode::OK, move |conn, now| {
        operators::rotate(conn, now, &op.0, &path)
    })
    .await
}

#[utoipa::path(
    get, path = "/admin/v1/openapi.json", tag = "document",
    security(()),
    responses((status = 200, description = "This OpenAPI document (no token needed: it is the one published with the source).", body = Object))
)]
async fn openapi_document() -> Result<HttpResponse, ApiError> {
    let json = crate::openapi::document_json().map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(json))
}
