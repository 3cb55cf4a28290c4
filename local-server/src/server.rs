//! `serve`: the HTTP server with the client API (`/api/v1/…`), the manager API
//! (`/manager/v1/…`) and the web manager page (`/`, both loopback only, see
//! [`crate::manager_page`]), the lease sweeper and the sync scheduler.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use chrono::Duration;
use openssl::ssl::SslConnector;
use serde::Deserialize;
use shared_proto::{Clock, ErrorCode};
use uuid::Uuid;

use crate::cli::{AutoSyncMode, ServeArgs};
use crate::config::{ServeLock, LISTENING_FILE};
use crate::diagnose;
use crate::error::Error;
use crate::import::{self, Channel};
use crate::leases::LeaseEngine;
use crate::manager_page;
use crate::proxy::ProxySettings;
use crate::scheduler;
use crate::status;
use crate::sync::{self, SyncContext};

/// Largest JSON body accepted on the client API.
const MAX_JSON_BYTES: usize = 4 * 1024;
/// How often expired leases are swept from the database.
const SWEEP_EVERY: StdDuration = StdDuration::from_secs(5);

/// Shared by all workers.
pub struct AppState {
    pub engine: Arc<LeaseEngine>,
    pub sync: SyncContext,
    pub tls: SslConnector,
    pub proxy: ProxySettings,
}

/// A bound, ready server.
pub struct Application {
    server: actix_web::dev::Server,
    /// Held while serving: one `serve` per data directory.
    _lock: ServeLock,
}

impl Application {
    /// Opens the data directory, binds the listener and writes `listening.json`.
    pub fn build(args: &ServeArgs, clock: Clock) -> anyhow::Result<Self> {
        let dir = &args.data.data_dir;
        let sync_ctx = SyncContext::open(dir, clock.clone())?;
        let lock = crate::config::lock_serve(dir)?;
        let settings = sync_ctx.settings().map_err(anyhow::Error::from)?;
        let proxy = ProxySettings::resolve(args.proxy.proxy.as_ref(), settings.proxy.as_ref())?;
        let tls = sync::tls_connector(&settings.ca_pem)?;
        let engine = Arc::new(LeaseEngine::open(
            dir,
            clock,
            Duration::seconds(i64::from(args.lease_seconds)),
        )?);
        let state = web::Data::new(AppState {
            engine: engine.clone(),
            sync: sync_ctx.clone(),
            tls: tls.clone(),
            proxy: proxy.clone(),
        });

        let listener = TcpListener::bind(args.listen)
            .with_context(|| format!("listening on {}", args.listen))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(json_config())
                .configure(routes)
        })
        .max_connections(args.max_connections)
        .shutdown_timeout(5);
        if args.workers > 0 {
            server = server.workers(args.workers);
        }
        let server = server
            .listen(listener)
            .context("starting the HTTP server")?
            .run();

        // Background work runs on the main system thread, beside the server.
        actix_rt::spawn(sweeper(engine));
        let client = sync::http_client(tls, proxy);
        actix_rt::spawn(scheduler::run(
            sync_ctx,
            client,
            StdDuration::from_millis(args.scheduler_tick_ms),
        ));

        write_listening(dir, address)?;
        log::info!(
            "serving server_id={} on {address} (lease {}s)",
            settings.server_id,
            args.lease_seconds
        );
        Ok(Self {
            server,
            _lock: lock,
        })
    }

    /// Runs until Ctrl-C / SIGTERM, then drains connections.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await.context("running the HTTP server")
    }
}

fn write_listening(dir: &Path, address: SocketAddr) -> anyhow::Result<()> {
    let body = serde_json::json!({ "api": address.to_string() }).to_string();
    use shared_proto::files::{write, Access, Existing};
    write(
        &dir.join(LISTENING_FILE),
        body.as_bytes(),
        Access::Public,
        Existing::Replace,
    )?;
    Ok(())
}

async fn sweeper(engine: Arc<LeaseEngine>) {
    let mut interval = tokio::time::interval(SWEEP_EVERY);
    loop {
        interval.tick().await;
        let engine = engine.clone();
        match web::block(move || engine.sweep()).await {
            Ok(Ok(n)) if n > 0 => log::info!("{n} leases expired without heartbeat"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => log::error!("lease sweep failed: {e:#}"),
            Err(e) => log::error!("lease sweep failed: {e}"),
        }
    }
}

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_JSON_BYTES)
        .error_handler(|err, _req| {
            Error::refused(
                ErrorCode::Malformed,
                format!("the request body is not valid: {err}"),
            )
            .into()
        })
}

/// All routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .wrap(actix_web::middleware::from_fn(client_api_guard))
            .route("/leases", web::post().to(check_out))
            .route("/leases/{id}/heartbeat", web::post().to(heartbeat))
            .route("/leases/{id}", web::delete().to(check_in))
            .route("/features", web::get().to(features))
            .route("/status", web::get().to(client_status)),
    )
    .service(
        web::scope("/manager/v1")
            .wrap(actix_web::middleware::from_fn(manager_page::api_guard))
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("Cache-Control", "no-store")),
            )
            .route("/status", web::get().to(manager_status))
            .route("/sync", web::post().to(manager_sync))
            .route("/auto-sync", web::put().to(manager_auto_sync))
            .route("/sync-data", web::post().to(manager_export))
            .service(
                web::resource("/license-file")
                    .app_data(web::PayloadConfig::new(
                        import::MAX_LICENSE_FILE_BYTES as usize,
                    ))
                    .route(web::post().to(manager_import)),
            )
            // POST: it runs a real synchronization.
            .route("/diagnose", web::post().to(manager_diagnose)),
    )
    .configure(manager_page::routes);
}

/// Refuses client-API requests made by a web page. Client programs send neither an
/// `Origin` header nor `Sec-Fetch-Site: cross-site`; a browser driven by another web
/// site (including through DNS rebinding, where the `Host` looks harmless) sends one of
/// them, and must not check out seats or read the status.
async fn client_api_guard(
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
struct CheckOutBody {
    feature: String,
    client: String,
}

async fn check_out(
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

async fn heartbeat(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id = lease_id(&path)?;
    let engine = state.engine.clone();
    let grant = web::block(move || engine.heartbeat(id)).await??;
    Ok(HttpResponse::Ok().json(grant))
}

async fn check_in(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id = lease_id(&path)?;
    let engine = state.engine.clone();
    web::block(move || engine.check_in(id)).await??;
    Ok(HttpResponse::NoContent().finish())
}

async fn features(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let engine = state.engine.clone();
    let list = web::block(move || engine.features()).await??;
    Ok(HttpResponse::Ok().json(list))
}

/// The full status report, with the proxy `serve` uses.
async fn full_status(state: &AppState) -> Result<status::StatusReport, Error> {
    let ctx = state.sync.clone();
    let fingerprint = ctx.identity.fingerprint();
    let now = ctx.clock.now();
    let data_dir = ctx.data_dir.clone();
    let proxy = state.proxy.clone();
    ctx.db(move |c| {
        let settings = crate::config::Settings::load(&data_dir, c)?;
        status::report(c, &settings, fingerprint, now, Some(&proxy))
    })
    .await
}

async fn client_status(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    Ok(HttpResponse::Ok().json(full_status(&state).await?.for_clients()))
}

async fn manager_status(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    Ok(HttpResponse::Ok().json(full_status(&state).await?))
}

async fn manager_sync(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    // awc clients belong to one thread: this one is made for this request from the
    // shared TLS context (a manual sync is rare).
    let client = sync::http_client(state.tls.clone(), state.proxy.clone());
    let ctx = state.sync.clone();
    // A task of its own: should the browser go away, the request future is dropped but
    // the synchronization still finishes and releases its lock.
    let outcome = actix_rt::spawn(async move { sync::sync_now(&ctx, &client, "manager").await })
        .await
        .map_err(task_failed)?;
    // A refusal is an error answer with its code; the main server out of reach or
    // another sync running is `503 UNAVAILABLE`.
    Ok(HttpResponse::Ok().json(outcome?))
}

#[derive(Debug, Deserialize)]
struct AutoSyncBody {
    mode: String,
}

async fn manager_auto_sync(
    state: web::Data<AppState>,
    body: web::Json<AutoSyncBody>,
) -> Result<HttpResponse, Error> {
    let mode =
        body.mode.parse::<AutoSyncMode>().ok().ok_or_else(|| {
            Error::refused(ErrorCode::Malformed, "mode must be off, daily or weekly")
        })?;
    let now = state.sync.clock.now();
    let next = state
        .sync
        .db(move |c| scheduler::set_mode(c, mode, now))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "auto_sync": mode.as_str(),
        "next_auto_sync_at": next,
    })))
}

async fn manager_export(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let ctx = state.sync.clone();
    let (server_id, text) = ctx
        .clone()
        .db(move |c| {
            let settings = crate::config::Settings::load(&ctx.data_dir, c)?;
            let (_, text) = sync::build_request(c, &settings, &ctx.identity, ctx.clock.now())?;
            Ok((settings.server_id, text))
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"sync-data-{server_id}.txt\""),
        ))
        .body(text))
}

async fn manager_import(state: web::Data<AppState>, body: String) -> Result<HttpResponse, Error> {
    let ctx = state.sync.clone();
    let changes = ctx
        .clone()
        .db(move |c| {
            let settings = crate::config::Settings::load(&ctx.data_dir, c)?;
            import::import_text(
                c,
                &settings,
                &ctx.identity,
                &body,
                Channel::File,
                ctx.clock.now(),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(changes))
}

async fn manager_diagnose(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    // The shared pool and the proxy `serve` resolved (`--proxy` / LOCAL_SERVER_PROXY).
    let proxy = state.proxy.clone();
    let ctx = state.sync.clone();
    // Its own task, like a manual sync: the synchronization it runs is never cut short.
    let report = actix_rt::spawn(async move { diagnose::run_in(&ctx, move |_| Ok(proxy)).await })
        .await
        .map_err(task_failed)?;
    Ok(HttpResponse::Ok().json(report))
}

fn task_failed(err: tokio::task::JoinError) -> Error {
    Error::Internal(anyhow::anyhow!("the background task failed: {err}"))
}
