//! The mail gateway's sync: a sync-data file mailed in, answered like a direct sync.

use actix_web::{web, HttpResponse};
use shared_proto::admin_api::{MailSync, SyncAnswer, SyncChannel};

use super::State;
use crate::auth::Gateway;
use crate::error::ApiError;
use crate::metrics::Metrics;

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
pub(super) async fn mail_sync(
    op: Gateway,
    state: State,
    metrics: web::Data<Metrics>,
    body: web::Json<MailSync>,
) -> Result<HttpResponse, ApiError> {
    let state = state.into_inner();
    let body = body.into_inner();
    let sync = web::block(move || {
        state.sync(
            &body.sync_data,
            SyncChannel::Email,
            op.name(),
            Some(&body.sender),
        )
    });
    let answer = metrics
        .observe_sync(SyncChannel::Email, async { sync.await? })
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}
