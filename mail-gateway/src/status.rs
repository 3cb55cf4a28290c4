//! The status page: counters since start plus the spool's current depth,
//! as JSON (`/status`), as a small HTML page (`/`) and as Prometheus metrics
//! (`/metrics`, [`crate::metrics`]).

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use shared_proto::Clock;

use crate::spool::Spool;

/// Counters shared by the intake, the worker and the sender.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages the worker picked up from the spool.
    pub received: AtomicU64,
    /// Replies handed to the outbound transport.
    pub answered: AtomicU64,
    /// Messages deliberately left unanswered (automatic mail, duplicates).
    pub dropped: AtomicU64,
    /// Messages and replies given up on (moved to `spool/failed/`).
    pub failed: AtomicU64,
    /// Attempts that failed temporarily and were scheduled again.
    pub retries: AtomicU64,
    /// Completed passes of the dispatcher over `spool/outgoing/` (which pick up what a
    /// restart left there): a test knows from it that a pass went by.
    pub scans: AtomicU64,
    /// Completed reminder polls (claim, stage, mark handed): a test knows from it that
    /// a poll went by.
    pub reminder_polls: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The JSON of `/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    pub started_at: DateTime<Utc>,
    pub received: u64,
    pub answered: u64,
    pub dropped: u64,
    pub failed: u64,
    pub retries: u64,
    pub scans: u64,
    pub reminder_polls: u64,
    /// Inbound messages waiting in the spool.
    pub queued: usize,
    /// Replies waiting for the transport.
    pub outgoing: usize,
    /// Files in `spool/failed/` (all time).
    pub failed_in_spool: usize,
    /// Which clock the gateway runs on, when it is not the real one
    /// (`simulated clock (clock file …), offset +340d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
    /// How far the gateway's clock is from the system clock, in seconds.
    pub clock_offset_seconds: f64,
    /// Whether that clock is simulated or moved.
    pub clock_simulated: bool,
}

#[derive(Debug)]
struct State {
    stats: Arc<Stats>,
    spool: Spool,
    started_at: DateTime<Utc>,
    clock: Clock,
}

impl State {
    fn status(&self) -> anyhow::Result<Status> {
        let (queued, outgoing, failed_in_spool) = self.spool.counts()?;
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
            queued,
            outgoing,
            failed_in_spool,
            clock: self.clock.describe(),
            clock_offset_seconds: self.clock.offset().num_milliseconds() as f64 / 1000.0,
            clock_simulated: self.clock.is_simulated(),
        })
    }
}

fn internal(err: anyhow::Error) -> HttpResponse {
    log::error!("status page failed: {err:#}");
    HttpResponse::InternalServerError().json(shared_proto::ApiError::internal())
}

/// The counters, read off the async workers; a failure is answered (and logged) as
/// `500 INTERNAL`.
async fn load(state: web::Data<State>) -> Result<Status, HttpResponse> {
    let state = state.into_inner();
    match web::block(move || state.status()).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(err)) => Err(internal(err)),
        Err(err) => Err(internal(anyhow::Error::new(err))),
    }
}

async fn status_json(state: web::Data<State>) -> HttpResponse {
    match load(state).await {
        Ok(status) => HttpResponse::Ok().json(status),
        Err(failed) => failed,
    }
}

async fn status_page(state: web::Data<State>) -> HttpResponse {
    let status = match load(state).await {
        Ok(status) => status,
        Err(failed) => return failed,
    };
    let rows = [
        ("Received", status.received.to_string()),
        ("Answered", status.answered.to_string()),
        (
            "Dropped (automatic mail, duplicates)",
            status.dropped.to_string(),
        ),
        ("Failed", status.failed.to_string()),
        ("Retried attempts", status.retries.to_string()),
        ("Queued", status.queued.to_string()),
        ("Replies waiting", status.outgoing.to_string()),
    ];
    let rows: String = rows
        .iter()
        .map(|(name, value)| format!("<tr><th>{name}</th><td>{value}</td></tr>"))
        .collect();
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Solme mail gateway</title>\
         <meta http-equiv=\"refresh\" content=\"5\"></head><body>\
         <h1>Solme mail gateway</h1><p>Running since {}</p>{}\
         <table>{rows}</table><p><a href=\"/status\">JSON</a></p></body></html>",
        status.started_at.to_rfc3339(),
        // The description holds a path: escaped like any text on the page.
        status
            .clock
            .as_deref()
            .map(|clock| format!("<p><strong>{}</strong></p>", html_escape(clock)))
            .unwrap_or_default()
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html)
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn metrics(state: web::Data<State>) -> HttpResponse {
    let clock = state.clock.clone();
    let status = match load(state).await {
        Ok(status) => status,
        Err(failed) => return failed,
    };
    match crate::metrics::render(&status, &clock) {
        Ok(text) => HttpResponse::Ok()
            .content_type(shared_proto::metrics::CONTENT_TYPE)
            .body(text),
        Err(err) => internal(anyhow::anyhow!("encoding the metrics: {err}")),
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Serves the status page on `listener` until the returned server is stopped.
pub fn serve(
    listener: TcpListener,
    stats: Arc<Stats>,
    spool: Spool,
    clock: Clock,
) -> anyhow::Result<actix_web::dev::Server> {
    let state = web::Data::new(State {
        stats,
        spool,
        started_at: clock.now(),
        clock,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/", web::get().to(status_page))
            .route("/status", web::get().to(status_json))
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
