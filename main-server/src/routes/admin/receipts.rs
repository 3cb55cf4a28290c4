//! Installation receipts mailed to licensing@ (the gateway passes them on), and which
//! license file each id's local server holds (`store::receipts`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use shared_proto::admin_api::SyncChannel;
use shared_proto::receipt::{Installation, MailReceipt, ReceiptRecorded};
use utoipa::IntoParams;
use uuid::Uuid;

use super::{read_json, write_json, State};
use crate::auth::{Gateway, Viewer};
use crate::error::ApiError;
use crate::store::receipts::{self, ListFilter, Source};

#[utoipa::path(
    post, path = "/admin/v1/mail/receipt", tag = "mail",
    request_body = MailReceipt,
    responses(
        (status = 200, description = "The receipt is recorded (or was before: `newly_recorded` false); audited as `server.receipt`.", body = ReceiptRecorded),
        (status = 400, description = "`MALFORMED`, `UNSUPPORTED_VERSION` or `BAD_SIGNATURE`: no intact receipt, or one naming a license file Solme never issued to the id."),
        (status = 403, description = "`UNAUTHORIZED`: the sender is no registered contact of the id's customer; `FORBIDDEN`: the token's role may not call this."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`."),
        (status = 409, description = "`ID_IN_USE`: the receipt was signed by a key pair other than the one bound to the id."),
    )
)]
pub(super) async fn mail_receipt(
    op: Gateway,
    state: State,
    body: web::Json<MailReceipt>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    write_json(&state, actix_web::http::StatusCode::OK, move |conn, now| {
        let source = Source {
            channel: SyncChannel::Email,
            sender: &body.sender,
            actor: op.name(),
            customer: None,
        };
        receipts::record(conn, now, &body.receipt, &source)
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct InstallationsQuery {
    /// Only ids whose licenses changed after the license file their server holds was
    /// issued (or that hold none): changes not yet installed.
    not_installed: Option<bool>,
    /// Only the ids of this customer.
    customer_id: Option<Uuid>,
    /// Ids per page: 1–1000, default 100.
    limit: Option<i64>,
    /// The last id of the previous page.
    after: Option<Uuid>,
}

#[utoipa::path(
    get, path = "/admin/v1/installations", tag = "servers",
    params(InstallationsQuery),
    responses(
        (status = 200, description = "Ids in service by id, each with the newest license file issued and the one its server holds (from receipts and sync requests); a page shorter than `limit` is the last.", body = [Installation]),
        (status = 400, description = "`MALFORMED`: a bad query (`limit` outside 1–1000)."),
    )
)]
pub(super) async fn list_installations(
    _: Viewer,
    state: State,
    query: web::Query<InstallationsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let filter = ListFilter {
        not_installed: query.not_installed.unwrap_or(false),
        customer: query.customer_id,
        after: query.after,
        limit: query.limit.unwrap_or(100),
    };
    read_json(&state, move |conn| receipts::list(conn, &filter)).await
}

#[utoipa::path(
    get, path = "/admin/v1/servers/{id}/installation", tag = "servers",
    params(("id" = Uuid, Path, description = "The license server id.")),
    responses(
        (status = 200, description = "The newest license file issued to the id and the one its server holds.", body = Installation),
        (status = 404, description = "`UNKNOWN_SERVER_ID` (or `NOT_FOUND` for a path that is no UUID)."),
    )
)]
pub(super) async fn server_installation(
    _: Viewer,
    state: State,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    read_json(&state, move |conn| receipts::installation(conn, id)).await
}
