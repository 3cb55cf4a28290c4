//! `serve`'s start-up: opens the data directory, binds the listener (so port 0 works
//! and the real address is known), writes `listening.json`, starts the lease sweeper
//! and the sync scheduler beside the HTTP server (routes in [`crate::routes`]), and
//! runs until Ctrl-C / SIGTERM.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use chrono::Duration;
use openssl::ssl::SslConnector;
use shared_proto::Clock;

use crate::cli::ServeArgs;
use crate::config::{ServeLock, LISTENING_FILE};
use crate::leases::LeaseEngine;
use crate::proxy::ProxySettings;
use crate::routes;
use crate::scheduler;
use crate::sync::{self, SyncContext};

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
    /// The bound address of the client API and manager page.
    address: SocketAddr,
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
                .app_data(routes::json_config())
                .configure(routes::routes)
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
            address,
            _lock: lock,
        })
    }

    /// The bound address (the real port when the settings asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Runs until Ctrl-C/SIGTERM (actix-web's own handlers) or `shutdown` completes (a
    /// caller embedding the server), then drains connections.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + 'static,
    ) -> anyhow::Result<()> {
        let handle = self.server.handle();
        actix_rt::spawn(async move {
            shutdown.await;
            handle.stop(true).await;
        });
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
