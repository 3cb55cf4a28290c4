//! The operators' admin API (`/admin/v1/…`, see docs/API.md). Every route sits behind
//! the bearer-token check, which finds the caller's operator account and role; the
//! audit log records that account's name as the actor.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use diesel::Connection;
use serde::Deserialize;
use shared_proto::ErrorCode;
use uuid::Uuid;

use super::with_conn;
use crate::auth::{FailureLimiter, Need};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::seen_head::SeenHead;
use crate::store::{
    audit, audit_chain, customers, key_clear, licenses, operators, reminders, servers, usage,
};
use crate::sync::{Channel, SyncService};
use shared_proto::admin_api::{
    AuditAction, AuditEntry, AuditOutcome, Decision, Identity, KeyClear, KeyClearStatus,
    LicenseChange, MailSync, MailSyncAnswer, NewCustomer, NewEmail, NewKeyClearRequest, NewLicense,
    NewOperator, NewServer, RemindersSwitch, SignedAuditHead,
};
use shared_proto::audit_head::AuditHead;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/v1")
            .wrap(from_fn(require_token))
            .route("/customers", web::post().to(create_customer))
            .route("/customers", web::get().to(list_customers))
            .route("/customers/{id}/emails", web::post().to(add_email))
            .route("/customers/{id}/reminders", web::get().to(list_reminders))
            .route("/customers/{id}/reminders", web::put().to(switch_reminders))
            .route("/reminders/claim", web::post().to(claim_reminders))
            .route("/reminders/{id}/handed", web::post().to(reminder_handed))
            .route("/servers", web::post().to(create_server))
            .route("/servers", web::get().to(list_servers))
            .route("/servers/{id}", web::get().to(show_server))
            .route("/servers/{id}/usage", web::get().to(server_usage))
            .route("/servers/{id}/licenses", web::post().to(add_license))
            .route(
                "/servers/{id}/licenses/{license_id}",
                web::patch().to(change_license),
            )
            .route(
                "/servers/{id}/licenses/{license_id}",
                web::delete().to(remove_license),
            )
            .route("/servers/{id}/key-clear", web::post().to(clear_key))
            .route("/mail/sync", web::post().to(mail_sync))
            .route("/key-clear-requests", web::post().to(create_request))
            .route("/key-clear-requests", web::get().to(list_requests))
            .route(
                "/key-clear-requests/unnotified",
                web::get().to(unnotified_requests),
            )
            .route(
                "/key-clear-requests/{id}/approve",
                web::post().to(approve_request),
            )
            .route(
                "/key-clear-requests/{id}/reject",
                web::post().to(reject_request),
            )
            .route(
                "/key-clear-requests/{id}/notified",
                web::post().to(mark_notified),
            )
            .route("/audit", web::get().to(list_audit))
            .route("/audit/verify", web::get().to(verify_audit))
            .route("/audit/head", web::get().to(audit_head))
            .route("/whoami", web::get().to(whoami))
            .route("/operators", web::post().to(add_operator))
            .route("/operators", web::get().to(list_operators))
            .route("/operators/{name}/revoke", web::post().to(revoke_operator))
            .route("/operators/{name}/rotate", web::post().to(rotate_operator)),
    );
}

/// Longest `Authorization` header looked at.
const MAX_AUTHORIZATION: usize = 600;

/// Authenticates every admin request against the operator accounts (one lookup per
/// request, so a revocation counts at once on every replica), checks the role, and
/// leaves the [`Identity`] in the request for the handlers and the audit log.
async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
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
    let identity = match presented.clone() {
        Some(token) => {
            with_conn(&svc.db.read, move |conn| {
                operators::authenticate(conn, &token)
            })
            .await?
        }
        None => None,
    };
    let path = req.path().to_owned();
    let Some(identity) = identity else {
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
        let audited = with_conn(&svc.db.write, move |conn| {
            audit::record_entry(
                conn,
                &AuditEntry {
                    at: now,
                    actor: "unauthenticated".into(),
                    action: AuditAction::AuthRefused,
                    server_id: None,
                    outcome: AuditOutcome::Failed(ErrorCode::Unauthorized),
                    detail,
                },
            )
        })
        .await;
        if let Err(e) = audited {
            log::warn!("could not audit a refused token: {e}");
        }
        return Err(ApiError::unauthorized(
            "this needs an operator token: send `Authorization: Bearer <token>`",
        )
        .into());
    };
    let need = Need::of(req.method(), &path);
    if !need.allows(identity.role) {
        log::warn!(
            "admin request forbidden: operator={} role={} path={path}",
            identity.name,
            identity.role
        );
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
    next.call(req).await
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

async fn create_customer(
    svc: Svc,
    op: Operator,
    body: web::Json<NewCustomer>,
) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let customer = with_conn(&svc.db.write, move |conn| {
        customers::create(conn, now, &op.0, &body)
    })
    .await?;
    Ok(HttpResponse::Created().json(customer))
}

async fn list_customers(svc: Svc) -> Result<HttpResponse, ApiError> {
    let list = with_conn(&svc.db.read, customers::list).await?;
    Ok(HttpResponse::Ok().json(list))
}

async fn add_email(
    svc: Svc,
    op: Operator,
    path: web::Path<Uuid>,
    body: web::Json<NewEmail>,
) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let id = path.into_inner();
    let customer = with_conn(&svc.db.write, move |conn| {
        customers::add_email(conn, now, &op.0, id, &body.email)
    })
    .await?;
    Ok(HttpResponse::Ok().json(customer))
}

async fn list_reminders(svc: Svc, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let list = with_conn(&svc.db.read, move |conn| {
        reminders::list_for_customer(conn, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(list))
}

async fn switch_reminders(
    svc: Svc,
    op: Operator,
    path: web::Path<Uuid>,
    body: web::Json<RemindersSwitch>,
) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let id = path.into_inner();
    let customer = with_conn(&svc.db.write, move |conn| {
        reminders::set_enabled(conn, now, &op.0, id, body.enabled)
    })
    .await?;
    Ok(HttpResponse::Ok().json(customer))
}

/// The mail gateway's poll: records what became due and returns what to mail.
async fn claim_reminders(svc: Svc) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let due = with_conn(&svc.db.write, move |conn| reminders::claim(conn, now)).await?;
    Ok(HttpResponse::Ok().json(due))
}

async fn reminder_handed(
    svc: Svc,
    op: Operator,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let id = path.into_inner();
    let reminder = with_conn(&svc.db.write, move |conn| {
        reminders::mark_handed(conn, now, &op.0, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(reminder))
}

async fn create_server(
    svc: Svc,
    op: Operator,
    body: web::Json<NewServer>,
) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let server = with_conn(&svc.db.write, move |conn| {
        servers::create(conn, now, &op.0, body.customer_id)
    })
    .await?;
    Ok(HttpResponse::Created().json(server))
}

#[derive(Deserialize)]
struct DueQuery {
    due_within_days: Option<i64>,
    limit: Option<u32>,
    after: Option<Uuid>,
}

async fn list_servers(svc: Svc, query: web::Query<DueQuery>) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let query = query.into_inner();
    let page = servers::Page {
        limit: query.limit,
        after: query.after,
    };
    let due = query.due_within_days;
    let list = with_conn(&svc.db.read, move |conn| {
        servers::list(conn, now, due, page)
    })
    .await?;
    Ok(HttpResponse::Ok().json(list))
}

async fn show_server(svc: Svc, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let id = path.into_inner();
    let server = with_conn(&svc.db.read, move |conn| servers::get(conn, now, id)).await?;
    Ok(HttpResponse::Ok().json(server))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    limit: Option<u32>,
}

/// The usage summaries of the id's latest syncs, oldest first.
async fn server_usage(
    svc: Svc,
    path: web::Path<Uuid>,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let limit = query.limit;
    let list = with_conn(&svc.db.read, move |conn| usage::list(conn, id, limit)).await?;
    Ok(HttpResponse::Ok().json(list))
}

async fn add_license(
    svc: Svc,
    op: Operator,
    path: web::Path<Uuid>,
    body: web::Json<NewLicense>,
) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let id = path.into_inner();
    let license = with_conn(&svc.db.write, move |conn| {
        licenses::add(conn, now, &op.0, id, &body)
    })
    .await?;
    Ok(HttpResponse::Created().json(license))
}

async fn change_license(
    svc: Svc,
    op: Operator,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<LicenseChange>,
) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let (id, license_id) = path.into_inner();
    let license = with_conn(&svc.db.write, move |conn| {
        licenses::change(conn, now, &op.0, id, license_id, &body)
    })
    .await?;
    Ok(HttpResponse::Ok().json(license))
}

async fn remove_license(
    svc: Svc,
    op: Operator,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let (id, license_id) = path.into_inner();
    with_conn(&svc.db.write, move |conn| {
        licenses::remove(conn, now, &op.0, id, license_id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn clear_key(
    svc: Svc,
    op: Operator,
    path: web::Path<Uuid>,
    body: web::Json<KeyClear>,
) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let id = path.into_inner();
    let server = with_conn(&svc.db.write, move |conn| {
        conn.transaction::<_, ApiError, _>(|conn| {
            servers::clear_key(conn, now, &op.0, id, &body.reason, "operator")
        })?;
        servers::get(conn, now, id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(server))
}

async fn mail_sync(
    svc: Svc,
    op: Operator,
    metrics: web::Data<Metrics>,
    body: web::Json<MailSync>,
) -> Result<HttpResponse, ApiError> {
    let service = svc.into_inner();
    let body = body.into_inner();
    let sync = web::block(move || {
        service.sync(&body.sync_data, Channel::Email, &op.0, Some(&body.sender))
    });
    let answer = metrics
        .observe_sync(Channel::Email, async { sync.await? })
        .await?;
    Ok(HttpResponse::Ok().json(MailSyncAnswer {
        license_file: answer.license_file,
        server_id: answer.server_id,
        valid_until: answer.valid_until,
        licenses: answer.licenses,
        usage: answer.usage,
    }))
}

async fn create_request(
    svc: Svc,
    body: web::Json<NewKeyClearRequest>,
) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let (request, created) = with_conn(&svc.db.write, move |conn| {
        key_clear::create(conn, now, &body)
    })
    .await?;
    Ok(if created {
        HttpResponse::Created().json(request)
    } else {
        HttpResponse::Ok().json(request)
    })
}

#[derive(Deserialize)]
struct StatusQuery {
    status: Option<String>,
}

async fn list_requests(svc: Svc, query: web::Query<StatusQuery>) -> Result<HttpResponse, ApiError> {
    let status = query
        .into_inner()
        .status
        .map(|status| status.parse::<KeyClearStatus>())
        .transpose()
        .map_err(|e| ApiError::malformed(format!("status: {e}")))?;
    let list = with_conn(&svc.db.read, move |conn| key_clear::list(conn, status)).await?;
    Ok(HttpResponse::Ok().json(list))
}

async fn unnotified_requests(svc: Svc) -> Result<HttpResponse, ApiError> {
    let list = with_conn(&svc.db.read, key_clear::unnotified).await?;
    Ok(HttpResponse::Ok().json(list))
}

async fn decide(
    svc: Svc,
    op: Operator,
    id: Uuid,
    approve: bool,
    reason: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let request = with_conn(&svc.db.write, move |conn| {
        key_clear::decide(conn, now, &op.0, id, approve, reason.as_deref())
    })
    .await?;
    Ok(HttpResponse::Ok().json(request))
}

async fn approve_request(
    svc: Svc,
    op: Operator,
    path: web::Path<Uuid>,
    body: Option<web::Json<Decision>>,
) -> Result<HttpResponse, ApiError> {
    let reason = body.and_then(|b| b.into_inner().reason);
    decide(svc, op, path.into_inner(), true, reason).await
}

async fn reject_request(
    svc: Svc,
    op: Operator,
    path: web::Path<Uuid>,
    body: web::Json<Decision>,
) -> Result<HttpResponse, ApiError> {
    decide(svc, op, path.into_inner(), false, body.into_inner().reason).await
}

async fn mark_notified(svc: Svc, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    with_conn(&svc.db.write, move |conn| {
        key_clear::mark_notified(conn, id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<u32>,
}

async fn list_audit(svc: Svc, query: web::Query<AuditQuery>) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100);
    let list = with_conn(&svc.db.read, move |conn| audit::list(conn, limit)).await?;
    Ok(HttpResponse::Ok().json(list))
}

#[derive(Deserialize)]
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
    let report = with_conn(&svc.db.read, move |conn| {
        audit_chain::verify(conn, saved, seen)
    })
    .await?;
    Ok(HttpResponse::Ok().json(report))
}

/// The chain's newest entry, signed with Solme's key, for an operator to keep.
async fn audit_head(svc: Svc) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    seal_pending(&svc).await?;
    let head = with_conn(&svc.db.read, move |conn| audit_chain::head(conn, now)).await?;
    let signed = head.sign(&svc.signing_key)?;
    Ok(HttpResponse::Ok().json(SignedAuditHead { head, signed }))
}

async fn whoami(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let identity = req.extensions().get::<Identity>().cloned().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("an admin route ran without authentication"))
    })?;
    Ok(HttpResponse::Ok().json(identity))
}

async fn add_operator(
    svc: Svc,
    op: Operator,
    body: web::Json<NewOperator>,
) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let issued = with_conn(&svc.db.write, move |conn| {
        operators::add(conn, now, &op.0, &body.name, body.role)
    })
    .await?;
    Ok(HttpResponse::Created().json(issued))
}

async fn list_operators(svc: Svc) -> Result<HttpResponse, ApiError> {
    let list = with_conn(&svc.db.read, operators::list).await?;
    Ok(HttpResponse::Ok().json(list))
}

async fn revoke_operator(
    svc: Svc,
    op: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let name = path.into_inner();
    let account = with_conn(&svc.db.write, move |conn| {
        operators::revoke(conn, now, &op.0, &name)
    })
    .await?;
    Ok(HttpResponse::Ok().json(account))
}

async fn rotate_operator(
    svc: Svc,
    op: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let now = svc.clock.now();
    let name = path.into_inner();
    let issued = with_conn(&svc.db.write, move |conn| {
        operators::rotate(conn, now, &op.0, &name)
    })
    .await?;
    Ok(HttpResponse::Ok().json(issued))
}
