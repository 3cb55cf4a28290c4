//! Key-clear requests: filed by the mail gateway, decided by an operator, and the
//! gateway's work list of decisions still to tell.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use shared_proto::admin_api::{
    DecidedKeyClearRequest, Decision, KeyClearRequest, KeyClearRequestDetail, KeyClearStatus,
    NewKeyClearRequest,
};
use utoipa::IntoParams;
use uuid::Uuid;

use super::{read_json, write, write_json, State};
use crate::auth::{Gateway, Manager, Viewer};
use crate::error::ApiError;
use crate::routes::with_conn;
use crate::store::key_clear;

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
pub(super) async fn create_request(
    _: Gateway,
    state: State,
    body: web::Json<NewKeyClearRequest>,
) -> Result<HttpResponse, ApiError> {
    let (request, created) =
        write(&state, move |conn, now| key_clear::create(conn, now, &body)).await?;
    Ok(if created {
        HttpResponse::Created().json(request)
    } else {
        HttpResponse::Ok().json(request)
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StatusQuery {
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
pub(super) async fn list_requests(
    _: Viewer,
    state: State,
    query: web::Query<StatusQuery>,
) -> Result<HttpResponse, ApiError> {
    let status = query
        .into_inner()
        .status
        .map(|status| status.parse::<KeyClearStatus>())
        .transpose()
        .map_err(|e| ApiError::malformed(format!("status: {e}")))?;
    read_json(&state, move |conn| key_clear::list(conn, status)).await
}

#[utoipa::path(
    get, path = "/admin/v1/key-clear-requests/{id}", tag = "key-clear requests",
    params(("id" = Uuid, Path, description = "The key-clear request.")),
    responses(
        (status = 200, description = "The request, with its sender check and decision, and what deciding it needs: the id's customer, its key pair and last sync now, until when its installation keeps issuing (a clear stops its syncs, not its license file), and the customer's other contacts.", body = KeyClearRequestDetail),
        (status = 404, description = "`NOT_FOUND`: no such request."),
    )
)]
pub(super) async fn show_request(
    _: Viewer,
    state: State,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    read_json(&state, move |conn| key_clear::detail(conn, now, *path)).await
}

#[utoipa::path(
    get, path = "/admin/v1/key-clear-requests/unnotified", tag = "key-clear requests",
    responses((status = 200, description = "Decided requests whose contacts were not told yet, each with every contact to tell.", body = [DecidedKeyClearRequest]))
)]
pub(super) async fn unnotified_requests(
    _: Gateway,
    state: State,
) -> Result<HttpResponse, ApiError> {
    read_json(&state, key_clear::unnotified).await
}

pub(super) async fn decide(
    op: Manager,
    state: State,
    id: Uuid,
    verdict: key_clear::Verdict,
    reason: Option<String>,
) -> Result<HttpResponse, ApiError> {
    write_json(&state, StatusCode::OK, move |conn, now| {
        key_clear::decide(conn, now, op.name(), id, verdict, reason.as_deref())
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
pub(super) async fn approve_request(
    op: Manager,
    state: State,
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
    decide(op, state, path.into_inner(), verdict, reason).await
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
pub(super) async fn reject_request(
    op: Manager,
    state: State,
    path: web::Path<Uuid>,
    body: web::Json<Decision>,
) -> Result<HttpResponse, ApiError> {
    let reason = body.into_inner().reason;
    decide(
        op,
        state,
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
pub(super) async fn mark_notified(
    _: Gateway,
    state: State,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    with_conn(&state.db.write, move |conn| {
        key_clear::mark_notified(conn, *path)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
