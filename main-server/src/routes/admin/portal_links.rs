//! The customer portal's sign-in links, as the mail gateway mails them: its claim of
//! the links to mail and its report of each staged in the outgoing spool (the same
//! exactly-once path as reminders; see `store/portal.rs`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use shared_proto::admin_api::DuePortalLink;
use uuid::Uuid;

use super::{write, write_json, State};
use crate::auth::Gateway;
use crate::error::ApiError;
use crate::store::portal;

/// The mail gateway's poll: the sign-in links to mail.
#[utoipa::path(
    post, path = "/admin/v1/portal-links/claim", tag = "portal",
    responses((status = 200, description = "The sign-in links to mail, oldest first (at most 100): not handed over, not used, not expired; idempotent. Each carries its single-use link path: never log it.", body = [DuePortalLink]))
)]
pub(super) async fn claim_portal_links(_: Gateway, state: State) -> Result<HttpResponse, ApiError> {
    let key = state.signing_key.clone();
    write_json(&state, StatusCode::OK, move |conn, now| {
        portal::claim_links(conn, &key, now)
    })
    .await
}

#[utoipa::path(
    post, path = "/admin/v1/portal-links/{id}/handed", tag = "portal",
    params(("id" = Uuid, Path, description = "The sign-in link.")),
    responses(
        (status = 204, description = "Marked handed to the outgoing spool (audited once; again changes nothing)."),
        (status = 404, description = "`NOT_FOUND`: no such link."),
    )
)]
pub(super) async fn portal_link_handed(
    op: Gateway,
    state: State,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    write(&state, move |conn, now| {
        portal::mark_link_handed(conn, now, op.name(), *path)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
