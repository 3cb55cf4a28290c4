//! The public HTTPS API local servers talk to: `POST /api/v1/sync`, `GET /api/v1/time`
//! and `GET /api/v1/health`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::sync::MAX_SYNC_DATA;
use shared_proto::admin_api::SyncChannel;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/sync", web::post().to(sync))
            .route("/time", web::get().to(time))
            .route("/health", web::get().to(health)),
    );
}

/// A local server's sync: signed sync data in, license file out.
///
/// The signature inside the sync data is the authentication; there is no token.
#[utoipa::path(
    post, path = "/api/v1/sync", tag = "sync",
    request_body(
        content = String, content_type = "text/plain",
        description = "The armored sync data (`-----BEGIN SOLME SYNC DATA-----`), at most 64 KiB."
    ),
    responses(
        (status = 200, description = "The armored license file.", body = String, content_type = "text/plain"),
        (status = 400, description = "`MALFORMED`, `UNSUPPORTED_VERSION`, `BAD_SIGNATURE` or `STALE_REQUEST` (more than 15 minutes off)."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`."),
        (status = 409, description = "`ID_IN_USE` (another key pair holds the id) or `REPLAYED_REQUEST`."),
    )
)]
async fn sync(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let body = payload
        .to_bytes_limited(MAX_SYNC_DATA)
        .await
        .map_err(|_| {
            ApiError::malformed(format!("sync data is larger than {MAX_SYNC_DATA} bytes"))
        })?
        .map_err(|e| ApiError::malformed(format!("could not read the request body: {e}")))?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::malformed("sync data must be UTF-8 text"))?;
    let peer = req
        .peer_addr()
        .map_or_else(|| "-".to_owned(), |addr| addr.ip().to_string());
    let answer = metrics
        .observe_sync(SyncChannel::Internet, state.sync_direct(&text, &peer))
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(answer.license_file))
}

/// `GET /api/v1/time`: the server's clock, for the local server's clock-skew check.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ServerTime {
    pub now: DateTime<Utc>,
}

/// `GET /api/v1/health`: always `{"status": "ok"}` while the server answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

#[utoipa::path(
    get, path = "/api/v1/time", tag = "sync",
    responses((status = 200, description = "The server's current time.", body = ServerTime))
)]
async fn time(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ServerTime {
        now: state.clock.now(),
    })
}

#[utoipa::path(
    get, path = "/api/v1/health", tag = "sync",
    responses((status = 200, description = "The server answers.", body = Health))
)]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}
