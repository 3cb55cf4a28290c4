//! The client API: check out, heartbeat, check in, list features, status. Client
//! programs call it; web pages may not (see [`client_api_guard`]).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use shared_proto::ErrorCode;
use uuid::Uuid;

use crate::error::Error;
use crate::startup::AppState;

/// Refuses client-API requests made by a web page. Client programs send neither an
/// `Origin` header nor `Sec-Fetch-Site: cross-site`; a browser driven by another web
/// site (including through DNS rebinding, where the `Host` looks harmless) sends one of
/// them, and must not check out seats or read the status.
pub(crate) async fn client_api_guard(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let headers = req.headers();
    let from_browser_page = headers.contains_key(actix_web::http::header::ORIGIN)
        || headers
            .get("Sec-Fetch-Site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
    if from_browser_page {
        log::warn!(
            "client API request from a web page refused peer={:?}",
            req.peer_addr()
        );
        let refusal = Error::refused(
            ErrorCode::Unauthorized,
            "the client API does not answer requests made by web pages",
        );
        let response = actix_web::ResponseError::error_response(&refusal);
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[derive(Debug, Deserialize)]
pub(crate) struct CheckOutBody {
    feature: String,
    client: String,
}

pub(crate) async fn check_out(
    state: web::Data<AppState>,
    body: web::Json<CheckOutBody>,
) -> Result<HttpResponse, Error> {
    let engine = state.engine.clone();
    let body = body.into_inner();
    let grant = web::block(move || engine.check_out(&body.feature, &body.client)).await??;
    Ok(HttpResponse::Created().json(grant))
}

fn lease_id(path: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(path).map_err(|_| {
        Error::refused(
            ErrorCode::LeaseUnknown,
            format!("{path:?} is not a lease id this server gave out"),
        )
    })
}

pub(crate) async fn heartbeat(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id = lease_id(&path)?;
    let engine = state.engine.clone();
    let grant = web::block(move || engine.heartbeat(id)).await??;
    Ok(HttpResponse::Ok().json(grant))
}

pub(crate) async fn check_in(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id = lease_id(&path)?;
    let engine = state.engine.clone();
    web::block(move || engine.check_in(id)).await??;
    Ok(HttpResponse::NoContent().finish())
}

pub(crate) async fn features(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let engine = state.engine.clone();
    let list = web::block(move || engine.features()).await??;
    Ok(HttpResponse::Ok().json(list))
}

pub(crate) async fn client_status(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    Ok(HttpResponse::Ok().json(super::manager_api::full_status(&state).await?.for_clients()))
}
