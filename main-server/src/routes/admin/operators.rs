//! Operator accounts: who the caller is, and (for admins) adding, listing, revoking
//! and rotating accounts.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use shared_proto::admin_api::{Identity, IssuedToken, NewOperator, OperatorAccount};

use super::{read_json, write_json, State};
use crate::auth::{Admin, Anyone};
use crate::error::ApiError;
use crate::store::operators;

#[utoipa::path(
    get, path = "/admin/v1/whoami", tag = "operators",
    responses((status = 200, description = "The account the presented token belongs to (every role may ask).", body = Identity))
)]
pub(super) async fn whoami(caller: Anyone) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(&caller.identity))
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
pub(super) async fn add_operator(
    op: Admin,
    state: State,
    body: web::Json<NewOperator>,
) -> Result<HttpResponse, ApiError> {
    write_json(&state, StatusCode::CREATED, move |conn, now| {
        operators::add(conn, now, op.name(), &body.name, body.role)
    })
    .await
}

#[utoipa::path(
    get, path = "/admin/v1/operators", tag = "operators",
    responses((status = 200, description = "Every account, without tokens.", body = [OperatorAccount]))
)]
pub(super) async fn list_operators(_: Admin, state: State) -> Result<HttpResponse, ApiError> {
    read_json(&state, operators::list).await
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
pub(super) async fn revoke_operator(
    op: Admin,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    write_json(&state, StatusCode::OK, move |conn, now| {
        operators::revoke(conn, now, op.name(), &path)
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
pub(super) async fn rotate_operator(
    op: Admin,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    write_json(&state, StatusCode::OK, move |conn, now| {
        operators::rotate(conn, now, op.name(), &path)
    })
    .await
}
