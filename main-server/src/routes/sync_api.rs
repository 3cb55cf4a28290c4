//! The public HTTPS API local servers talk to: `POST /api/v1/sync`, `GET /api/v1/time`
//! and `GET /api/v1/health`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::sync::{Channel, SyncService, MAX_SYNC_DATA};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/sync", web::post().to(sync))
            .route("/time", web::get().to(time))
            .route("/health", web::get().to(health)),
    );
}

async fn sync(
    req: HttpRequest,
    payload: web::Payload,
    service: web::Data<SyncService>,
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
        .observe_sync(Channel::Internet, service.sync_direct(&text, &peer))
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(answer.license_file))
}

async fn time(service: web::Data<SyncService>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "now": service.clock.now() }))
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}
