//! `serve`'s start-up: opens the data directory, binds the listener (so port 0 works
//! and the real address is known), writes `listening.json`, starts the lease sweeper
//! and the sync scheduler beside the HTTP server (routes in [`crate::routes`]), and
//! runs until Ctrl-C / SIGTERM.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use shared_proto::Clock;

use crate::config::{ServeLock, LISTENING_FILE};
use crate::installation::Installation;
use crate::leases::{EngineSettings, LeaseEngine};
use crate::metrics::Metrics;
use crate::proxy::{ProxySettings, ProxyText};
use crate::routes;
use crate::scheduler;
use crate::state::AppState;
use crate::sync;

/// How often expired leases are swept (their seats go to waiting clients).
const SWEEP_EVERY: StdDuration = StdDuration::from_secs(1);
/// How long a stopping server waits for its last lease changes to be stored.
const FLUSH_WITHIN: StdDuration = StdDuration::from_secs(5);
/// The report log is pruned at start-up and every ten minutes.
const PRUNE_EVERY_TICKS: u64 = 600;

/// What `serve` is asked to do (the command line's `serve` flags, converted).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    /// The proxy given for this run; else the stored one, else the environment's.
    pub proxy: Option<ProxyText>,
    /// Address of the client API, manager API and page (port 0: any free port).
    pub listen: SocketAddr,
    pub engine: EngineSettings,
    /// HTTP worker threads (0: one per CPU).
    pub workers: usize,
    /// Most simultaneous client connections per worker.
    pub max_connections: usize,
    /// How often the automatic-sync scheduler looks at the clock.
    pub scheduler_tick: StdDuration,
    /// How often a standby calls its primary ([`crate::pair`]).
    pub pair_interval: StdDuration,
}

/// A bound, ready server.
pub struct Application {
    server: actix_web::dev::Server,
    /// The bound address of the client API and manager page.
    address: SocketAddr,
    /// Swept while serving, flushed when the server stops.
    engine: Arc<LeaseEngine>,
    /// The scheduler's synchronizations and their client.
    installation: Installation,
    sync_client: awc::Client,
    scheduler_tick: StdDuration,
    pair_interval: StdDuration,
    /// Held while serving: one `serve` per data directory.
    _lock: ServeLock,
}

impl Application {
    /// Opens the data directory, binds the listener and writes `listening.json`.
    pub fn build(args: &ServeOptions, clock: Clock) -> anyhow::Result<Self> {
        let dir = &args.data_dir;
        let installation = Installation::open(dir, clock.clone())?;
        let lock = crate::config::lock_serve(dir)?;
        let settings = installation.settings().map_err(anyhow::Error::from)?;
        let proxy = ProxySettings::resolve(args.proxy.as_ref(), settings.proxy.as_ref())?;
        let tls = sync::tls_connector(&settings.ca_pem)?;
        // Before the engine reads the pair: a primary issues nothing until its standby
        // had its word.
        {
            let mut conn = installation.pool.get().context("opening the database")?;
            crate::pair::on_start(&mut conn, clock.now(), args.pair_interval)?;
        }
        let engine = Arc::new(LeaseEngine::open(dir, clock, args.engine.clone())?);
        let state = web::Data::new(AppState {
            engine: engine.clone(),
            installation: installation.clone(),
            tls: tls.clone(),
            proxy: proxy.clone(),
        });

        let listener = TcpListener::bind(args.listen)
            .with_context(|| format!("listening on {}", args.listen))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let metrics = web::Data::new(Metrics::with_clock(&installation.clock));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(metrics.clone())
                .app_data(routes::json_config())
                .configure(routes::routes)
                .configure(crate::metrics::configure)
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

        write_listening(dir, address)?;
        log::info!(
            "serving server_id={} on {address} (lease {}s)",
            settings.server_id,
            args.engine.lease_length.num_seconds()
        );
        Ok(Self {
            server,
            address,
            engine,
            installation,
            sync_client: sync::http_client(tls, proxy),
            scheduler_tick: args.scheduler_tick,
            pair_interval: args.pair_interval,
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
        // Background work runs on the main system thread, beside the server, and ends
        // with it: no sweep or scheduled sync starts once the server has stopped.
        let background = [
            actix_rt::spawn(sweeper(self.engine.clone())),
            actix_rt::spawn(scheduler::run(
                self.installation.clone(),
                self.sync_client,
                self.scheduler_tick,
            )),
            actix_rt::spawn(crate::pair::run(self.installation, self.pair_interval)),
        ];
        let served = self.server.await.context("running the HTTP server");
        for task in background {
            task.abort();
            // Aborting is how they end; any other end (a panic) is told, once.
            if let Err(e) = task.await {
                if !e.is_cancelled() {
                    log::error!("a background task of serve failed: {}", join_failure(e));
                }
            }
        }
        // Returned and expired seats are written without anyone waiting: store them
        // before the process ends.
        if let Err(e) = self.engine.flush(FLUSH_WITHIN).await {
            log::error!("some lease changes were not stored before stopping: {e}");
        }
        served
    }
}

/// Plain words for a background task that did not end by being aborted.
fn join_failure(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .map_or_else(|| "it panicked".to_owned(), |m| format!("it panicked: {m}")),
        Err(_) => "it was stopped".to_owned(),
    }
}

/// `DATA_DIR/listening.json` of a running `serve`: where tests and scripts find it.
#[derive(serde::Serialize)]
struct Listening {
    /// The bound address of the client and manager API (plain HTTP).
    api: SocketAddr,
}

fn write_listening(dir: &Path, api: SocketAddr) -> anyhow::Result<()> {
    use shared_proto::files::{write, Access, Existing};
    let body = serde_json::to_vec(&Listening { api })?;
    write(
        &dir.join(LISTENING_FILE),
        &body,
        Access::Public,
        Existing::Replace,
    )?;
    Ok(())
}

async fn sweeper(engine: Arc<LeaseEngine>) {
    let mut interval = tokio::time::interval(SWEEP_EVERY);
    let mut ticks: u64 = 0;
    loop {
        interval.tick().await;
        if ticks % PRUNE_EVERY_TICKS == 0 {
            engine.prune_report_log();
        }
        ticks += 1;
        let engine = engine.clone();
        match web::block(move || engine.sweep().and_then(|n| engine.checkpoint().map(|()| n))).await
        {
            Ok(Ok(n)) if n > 0 => log::info!("{n} leases expired without heartbeat"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => log::error!("lease sweep failed: {e:#}"),
            Err(e) => log::error!("lease sweep failed: {e}"),
        }
    }
}
