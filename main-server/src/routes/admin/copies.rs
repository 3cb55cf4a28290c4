//! Copies of one installation: an operator's decision on an id marked a possible copy,
//! and a customer's policy for them (see `crate::store::copies`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use shared_proto::admin_api::{
    CopyPolicySetting, CustomerCopyPolicy, PossibleCopyDismissal, PossibleCopyDismissed,
};
use uuid::Uuid;

use super::{write_json, State};
use crate::auth::Manager;
use crate::error::ApiError;
use crate::store::copies;

#[utoipa::path(
    post, path = "/admin/v1/servers/{id}/possible-copy/dismiss", tag = "servers",
    params(("id" = Uuid, Path, description = "The license server id.")),
    request_body = PossibleCopyDismissal,
    responses(
        (status = 200, description = "The mark is cleared and the id's sync history forgotten (a new mark needs new evidence); audited. An id that was not marked is answered with `was_marked_since` null.", body = PossibleCopyDismissed),
        (status = 400, description = "`MALFORMED`: an empty or multi-line reason."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`."),
    )
)]
pub(super) async fn dismiss_possible_copy(
    op: Manager,
    state: State,
    path: web::Path<Uuid>,
    body: Option<web::Json<PossibleCopyDismissal>>,
) -> Result<HttpResponse, ApiError> {
    let server_id = path.into_inner();
    let reason = body.and_then(|b| b.into_inner().reason);
    write_json(&state, StatusCode::OK, move |conn, now| {
        let was_marked_since = copies::dismiss(conn, server_id, op.name(), reason.as_deref(), now)?;
        Ok(PossibleCopyDismissed {
            server_id,
            was_marked_since,
        })
    })
    .await
}

#[utoipa::path(
    put, path = "/admin/v1/customers/{id}/copy-policy", tag = "customers",
    params(("id" = Uuid, Path, description = "The customer.")),
    request_body = CopyPolicySetting,
    responses(
        (status = 200, description = "The policy, as set (audited when it changed).", body = CustomerCopyPolicy),
        (status = 400, description = "`MALFORMED`: a bad body (policy is `warn` or `refuse`)."),
        (status = 404, description = "`NOT_FOUND`: no such customer."),
    )
)]
pub(super) async fn set_copy_policy(
    op: Manager,
    state: State,
    path: web::Path<Uuid>,
    body: web::Json<CopyPolicySetting>,
) -> Result<HttpResponse, ApiError> {
    let customer_id = path.into_inner();
    write_json(&state, StatusCode::OK, move |conn, now| {
        copies::set_policy(conn, now, op.name(), customer_id, body.policy)
    })
    .await
}
