//! The client API: check out, heartbeat, check in, list features, status. Client
//! programs call it; web pages may not (see [`client_api_guard`]).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use shared_proto::ErrorCode;
use uuid::Uuid;

use std::time::Duration;

use crate::leases::{CheckOut, Outcome};
use crate::pair::fence;

use crate::error::Error;
use crate::metrics::{LeaseRequest, Metrics};
use crate::state::AppState;

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

/// The name recorded when a client does not say who it is.
const UNNAMED: &str = "unknown";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckOutBody {
    feature: String,
    client: String,
    /// Who runs the client program (optional for older clients: `unknown`).
    #[serde(default)]
    user: Option<String>,
    /// The machine it runs on (same).
    #[serde(default)]
    host: Option<String>,
    /// Wait up to this many seconds for a seat when none is free.
    #[serde(default)]
    wait_seconds: u32,
    /// Borrow the seat for offline use for up to this many hours.
    #[serde(default)]
    borrow_hours: Option<u32>,
    /// The highest pair epoch the client has seen (docs/standby.md, "Partitions").
    #[serde(default)]
    pair_epoch: Option<i64>,
}

/// A heartbeat's query: `?pair_epoch=N`, optional (older clients send none).
#[derive(Debug, Deserialize)]
struct HeartbeatQuery {
    #[serde(default)]
    pair_epoch: Option<i64>,
}

/// A primary that receives a higher pair epoch than its own from a client stops
/// issuing before it answers: its standby was promoted. The request that fenced it is
/// answered `SERVING_ELSEWHERE` (the next ones by the lease engine). A standby and a
/// server without a pair ignore client epochs.
async fn heed_pair_epoch(state: &AppState, epoch: Option<i64>) -> Result<(), Error> {
    let Some(epoch) = epoch else {
        return Ok(());
    };
    fence::validate(epoch)?;
    if !state
        .engine
        .with_pair(|pair| fence::outranks(pair, epoch))?
    {
        return Ok(());
    }
    let clock = state.installation.clock.clone();
    let fenced = state
        .installation
        .db(move |c| fence::fence_by_client(c, epoch, clock.now()))
        .await?;
    state.engine.reload()?;
    if fenced {
        return Err(fence::refusal());
    }
    Ok(())
}

pub(crate) async fn check_out(
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
    body: web::Json<CheckOutBody>,
) -> Result<HttpResponse, Error> {
    let body = body.into_inner();
    let heeded = heed_pair_epoch(&state, body.pair_epoch).await;
    metrics.count_refusal(LeaseRequest::CheckOut, heeded)?;
    let request = CheckOut {
        feature: body.feature,
        client: body.client,
        user: body.user.unwrap_or_else(|| UNNAMED.into()),
        host: body.host.unwrap_or_else(|| UNNAMED.into()),
        wait: Duration::from_secs(u64::from(body.wait_seconds)),
        borrow: body
            .borrow_hours
            .map(|h| Duration::from_secs(u64::from(h) * 3_600)),
    };
    let outcome = state.engine.check_out(request).await;
    Ok(answer(
        metrics.count_refusal(LeaseRequest::CheckOut, outcome)?,
    ))
}

/// The key that verifies this server's borrow tokens offline.
pub(crate) async fn public_key(state: web::Data<AppState>) -> HttpResponse {
    use base64::Engine;
    let key = state.engine.public_key();
    HttpResponse::Ok().json(serde_json::json!({
        "algorithm": "Ed25519",
        "public_key": base64::engine::general_purpose::STANDARD.encode(key),
        // The fingerprint Solme's main server bound at the first synchronization.
        "fingerprint": state.installation.identity.fingerprint(),
    }))
}

/// A queued client polls for its seat with its ticket.
pub(crate) async fn poll_queue(
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let ticket = Uuid::parse_str(&path).map_err(|_| {
        Error::refused(
            ErrorCode::NotFound,
            format!("{path:?} is not a queue ticket this server gave out"),
        )
    })?;
    let outcome = state.engine.poll(ticket).await;
    Ok(answer(
        metrics.count_refusal(LeaseRequest::CheckOut, outcome)?,
    ))
}

/// `201` with the lease, or `202` with the place in the queue (poll again).
fn answer(outcome: Outcome) -> HttpResponse {
    match outcome {
        Outcome::Granted(grant) => HttpResponse::Created().json(grant),
        Outcome::Waiting(ticket) => HttpResponse::Accepted().json(ticket),
    }
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
    metrics: web::Data<Metrics>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    let id = lease_id(&path)?;
    let query = web::Query::<HeartbeatQuery>::from_query(req.query_string()).map_err(|_| {
        Error::refused(
            ErrorCode::Malformed,
            "the heartbeat's pair_epoch must be a whole number",
        )
    })?;
    let heeded = heed_pair_epoch(&state, query.pair_epoch).await;
    metrics.count_refusal(LeaseRequest::Heartbeat, heeded)?;
    let grant = state.engine.heartbeat(id).await;
    let grant = metrics.count_refusal(LeaseRequest::Heartbeat, grant)?;
    Ok(HttpResponse::Ok().json(grant))
}

pub(crate) async fn check_in(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id = lease_id(&path)?;
    // Only the in-memory index and a hand-over to the writer thread: no database
    // wait, so no hop to the blocking pool (two thread wake-ups per check-in).
    state.engine.check_in(id)?;
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
