//! The status page: counters since start plus the spool's current depth,
//! as JSON (`/status`), as a small HTML page (`/`) and as Prometheus metrics
//! (`/metrics`, [`metrics`]). The numbers themselves are [`counters`].

pub mod counters;
pub mod metrics;

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
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
        })
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
