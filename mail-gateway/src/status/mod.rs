//! The status page: counters since start, the spool's current depth and the recent
//! mails, as a page for operators (`/`, [`page`], with the security headers of the
//! other pages), as JSON for programs (`/status`, `/status.json`, or `/` asked with
//! `Accept: application/json`) and as Prometheus metrics (`/metrics`, [`metrics`]). The
//! numbers themselves are [`counters`]; the recent mails are read from the spool
//! ([`recent`]).

pub mod counters;
pub mod metrics;
pub mod page;
pub mod recent;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use chrono::{DateTime, Utc};

use shared_proto::Clock;

use crate::queue::spool::Spool;
use crate::status::counters::{Stats, Status};

#[derive(Debug)]
struct State {
    stats: Arc<Stats>,
    spool: Spool,
    started_at: DateTime<Utc>,
    clock: Clock,
    /// The spool's folder, where the recent mails are read.
    spool_dir: PathBuf,
}

impl State {
    async fn status(&self) -> anyhow::Result<Status> {
        let (queued, outgoing, failed_in_spool) = self.spool.counts().await?;
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Ok(Status {
            started_at: self.started_at,
            received: read(&self.stats.received),
            answered: read(&self.stats.answered),
            dropped: read(&self.stats.dropped),
            failed: read(&self.stats.failed),
            retries: read(&self.stats.retries),
            scans: read(&self.stats.scans),
            reminder_polls: read(&self.stats.reminder_polls),
            portal_link_polls: read(&self.stats.portal_link_polls),
            portal_links_staged: read(&self.stats.portal_links_staged),
            queued,
            outgoing,
            failed_in_spool,
            clock: self.clock.describe(),
            clock_offset_seconds: self.clock.offset().num_milliseconds() as f64 / 1000.0,
            clock_simulated: self.clock.is_simulated(),
            recent: self.recent().await,
        })
    }

    async fn recent(&self) -> Vec<recent::RecentMail> {
        let dir = self.spool_dir.clone();
        web::block(move || recent::recent(&dir))
            .await
            .unwrap_or_default()
    }
}

fn internal(err: anyhow::Error) -> HttpResponse {
    log::error!("status page failed: {err:#}");
    HttpResponse::InternalServerError().json(shared_proto::ApiError::internal())
}

/// The counters and the spool's depth; a failure is answered (and logged) as
/// `500 INTERNAL`.
async fn load(state: web::Data<State>) -> Result<Status, HttpResponse> {
    state.status().await.map_err(internal)
}

async fn status_json(state: web::Data<State>) -> HttpResponse {
    match load(state).await {
        Ok(status) => HttpResponse::Ok().json(status),
        Err(failed) => failed,
    }
}

/// Whether the caller asked for JSON rather than a page.
fn wants_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json") && !accept.contains("text/html"))
}

/// The page for people (the JSON for a caller that asks for it).
async fn status_page(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if wants_json(&req) {
        return status_json(state).await;
    }
    let now = state.clock.now();
    let status = match load(state).await {
        Ok(status) => status,
        Err(failed) => return failed,
    };
    let html = page::render(&status, &status.recent, now);
    page_response("text/html; charset=utf-8", html)
}

async fn style() -> HttpResponse {
    page_response("text/css; charset=utf-8", page::STYLE.to_owned())
}

/// `body` with the headers every page of Solme's servers carries, and no caching (the
/// numbers change).
fn page_response(content_type: &str, body: String) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.content_type(content_type);
    for header in shared_proto::page_headers::PAGE_HEADERS {
        response.insert_header(header);
    }
    response
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

async fn metrics(state: web::Data<State>) -> HttpResponse {
    let clock = state.clock.clone();
    let status = match load(state).await {
        Ok(status) => status,
        Err(failed) => return failed,
    };
    match metrics::render(&status, &clock) {
        Ok(text) => HttpResponse::Ok()
            .content_type(shared_proto::metrics::CONTENT_TYPE)
            .body(text),
        Err(err) => internal(anyhow::anyhow!("encoding the metrics: {err}")),
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Serves the status page on `listener` until the returned server is stopped;
/// `spool_dir` is the spool's folder (`DATA_DIR/spool`).
pub fn serve(
    listener: TcpListener,
    stats: Arc<Stats>,
    spool: Spool,
    spool_dir: PathBuf,
    clock: Clock,
) -> anyhow::Result<actix_web::dev::Server> {
    let state = web::Data::new(State {
        stats,
        spool,
        started_at: clock.now(),
        clock,
        spool_dir,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/", web::get().to(status_page))
            .route("/status", web::get().to(status_json))
            .route("/status.json", web::get().to(status_json))
            .route("/assets/status.css", web::get().to(style))
            .route("/health", web::get().to(health))
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .context("serving the status page")?
    .run();
    Ok(server)
}
