//! `main-server serve`: opens the database, binds every listener (so port 0 works and
//! the real addresses are known), writes `listening.json`, and runs until stopped.
//! Actix stops both servers gracefully on Ctrl-C or SIGTERM, draining open requests.

use std::any::Any;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use actix_web::dev::{Extensions, Server};
use actix_web::middleware::{Condition, DefaultHeaders};
use actix_web::rt::task::JoinHandle;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use shared_proto::{Clock, SolmeSigningKey};

use crate::auth::FailureLimiter;
use crate::data_dir::DataDir;
use crate::db::{Db, DbTarget};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes::{admin, configure_extractors, not_found, sync_api};
use crate::seen_head::SeenHead;
use crate::state::AppState;
use crate::tls;
use shared_proto::admin_api::{AdminUrl, Listening};
use shared_proto::files::{self, Access, Existing};
use shared_proto::page_headers::{PAGE_HEADERS, STRICT_TRANSPORT_SECURITY};

/// Largest admin JSON body (a mailed sync-data file fits several times over).
const ADMIN_JSON_LIMIT: usize = 256 * 1024;
/// How often each process forgets request ids too old to matter.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often each process appends new audit entries to the hash chain (replicas take
/// turns through the database; see `store/audit_chain.rs`).
const SEAL_EVERY: Duration = Duration::from_secs(1);

/// What `serve` needs; the CLI flags map onto it one to one.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// May hold a password: `Debug` prints it redacted.
    pub database_url: Option<SecretString>,
    pub listen: Vec<SocketAddr>,
    pub admin_listen: SocketAddr,
    /// Serve the admin API and console over plain HTTP instead of HTTPS; only allowed
    /// on a loopback `admin_listen` (see [`Settings::plain_http_refusal`]).
    pub admin_plain_http: bool,
    pub workers: Option<usize>,
    pub db_pool_size: u32,
}

impl Settings {
    /// Why these settings may not serve the admin API over plain HTTP, if they ask
    /// for it: the bearer tokens would cross a network in the clear.
    pub fn plain_http_refusal(&self) -> Option<String> {
        (self.admin_plain_http && !self.admin_listen.ip().is_loopback()).then(|| {
            format!(
                "--admin-plain-http is only allowed on a loopback --admin-listen address \
                 (127.0.0.1 or ::1), not {}: tokens would cross the network unencrypted; \
                 drop the flag to serve the admin API over HTTPS",
                self.admin_listen
            )
        })
    }
}

/// A bound, not yet running server.
pub struct Application {
    sync_server: Server,
    admin_server: Server,
    state: AppState,
    seen_head: web::Data<SeenHead>,
    listening: Listening,
}

/// Without TCP_NODELAY a small response waits for the client's delayed ACK (tens of
/// milliseconds per request on a fresh connection).
fn set_nodelay(conn: &dyn Any, _: &mut Extensions) {
    let tcp = conn
        .downcast_ref::<actix_tls::accept::openssl::TlsStream<actix_web::rt::net::TcpStream>>()
        .map(|tls| tls.get_ref())
        .or_else(|| conn.downcast_ref::<actix_web::rt::net::TcpStream>());
    if let Some(tcp) = tcp {
        if let Err(e) = tcp.set_nodelay(true) {
            log::debug!("could not set TCP_NODELAY: {e}");
        }
    }
}

/// The headers every answer of a sync listener carries: the web pages' security
/// headers and HSTS. The sync API serves no page today, but an auditor (or a browser
/// that wanders onto the port) sees the same hygiene as on the console, and a page
/// added later is covered without anyone remembering to.
fn sync_headers() -> DefaultHeaders {
    PAGE_HEADERS
        .into_iter()
        .chain([STRICT_TRANSPORT_SECURITY])
        .fold(DefaultHeaders::new(), DefaultHeaders::add)
}

fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).with_context(|| format!("binding the {what} listener on {addr}"))
}

impl Application {
    /// Binds everything; must run inside an actix system (`#[actix_web::main]`).
    pub fn build(settings: &Settings, clock: Clock) -> anyhow::Result<Self> {
        let dir = DataDir::new(&settings.data_dir);
        anyhow::ensure!(
            !settings.listen.is_empty(),
            "at least one --listen address is needed"
        );
        if let Some(refusal) = settings.plain_http_refusal() {
            anyhow::bail!(refusal);
        }
        // A stale file from an earlier run would send readers to dead ports.
        match std::fs::remove_file(dir.listening()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", dir.listening().display()))
            }
            _ => {}
        }
        let signing_key = SolmeSigningKey::load(&dir.solme_signing_key()).with_context(|| {
            format!(
                "reading {} (run `main-server init` first)",
                dir.solme_signing_key().display()
            )
        })?;
        let target = DbTarget::from_options(
            dir.root(),
            settings
                .database_url
                .as_ref()
                .map(ExposeSecret::expose_secret),
        )?;
        log::info!("database: {}", target.describe());
        let db = Db::open(target, settings.db_pool_size)?;
        crate::init::adopt_token_files(&db, &dir, clock.now())?;
        let state = AppState::new(db, clock, signing_key)?;
        // By the system's clock, which is what TLS clients check certificates against.
        let certificate = tls::server_certificate(&dir, chrono::Utc::now(), false)?;
        match &certificate.renewed {
            Some(reason) => log::info!(
                "renewed the server certificate {} ({reason}); valid until {}",
                dir.tls_cert().display(),
                certificate.not_after
            ),
            None => log::info!(
                "server certificate {} valid until {}",
                dir.tls_cert().display(),
                certificate.not_after
            ),
        }

        let state_data = web::Data::new(state.clone());
        let limiter = web::Data::new(FailureLimiter::default());
        let seen_head = web::Data::new(SeenHead::new(dir.last_audit_head()));
        let metrics = web::Data::new(Metrics::with_clock(&state.clock));

        let data = state_data.clone();
        let sync_metrics = metrics.clone();
        let mut sync_server = HttpServer::new(move || {
            App::new()
                .wrap(sync_headers())
                .app_data(data.clone())
                .app_data(sync_metrics.clone())
                .configure(|cfg| configure_extractors(cfg, ADMIN_JSON_LIMIT))
                .configure(sync_api::configure)
                .configure(crate::routes::portal::configure)
                .default_service(web::to(not_found))
        })
        .on_connect(set_nodelay);
        if let Some(workers) = settings.workers {
            sync_server = sync_server.workers(workers.max(1));
        }
        let mut sync_addrs = Vec::new();
        for addr in &settings.listen {
            let listener = bind(*addr, "sync")?;
            sync_addrs.push(listener.local_addr().context("reading a bound address")?);
            let acceptor = tls::acceptor_builder(&certificate.issued)?;
            sync_server = sync_server
                .listen_openssl(listener, acceptor)
                .with_context(|| format!("starting TLS on {addr}"))?;
        }

        let data = state_data.clone();
        let admin_seen_head = seen_head.clone();
        let admin_listener = bind(settings.admin_listen, "admin")?;
        let admin_addr = admin_listener
            .local_addr()
            .context("reading a bound address")?;
        let admin_tls = !settings.admin_plain_http;
        let document = web::Data::new(admin::document::PublishedDocument(
            crate::openapi::document_json()?,
        ));
        let admin_server = HttpServer::new(move || {
            App::new()
                // Over HTTPS, the console and the API are HTTPS-only for browsers too.
                .wrap(Condition::new(
                    admin_tls,
                    DefaultHeaders::new().add(STRICT_TRANSPORT_SECURITY),
                ))
                .app_data(data.clone())
                .app_data(limiter.clone())
                .app_data(admin_seen_head.clone())
                .app_data(metrics.clone())
                .app_data(document.clone())
                .configure(|cfg| configure_extractors(cfg, ADMIN_JSON_LIMIT))
                .configure(admin::configure)
                .configure(crate::metrics::configure)
                .configure(crate::routes::console::configure)
                .default_service(web::to(not_found))
        })
        .on_connect(set_nodelay)
        .workers(1);
        // The admin listener uses the sync listeners' certificate: both are reached by
        // the server's names (`init --hostname`), and one certificate is one thing to
        // renew.
        let admin_server = if settings.admin_plain_http {
            admin_server.listen(admin_listener)
        } else {
            let acceptor = tls::acceptor_builder(&certificate.issued)?;
            admin_server.listen_openssl(admin_listener, acceptor)
        }
        .with_context(|| format!("starting the admin API on {admin_addr}"))?;

        let listening = Listening {
            sync: sync_addrs,
            admin: AdminUrl {
                tls: !settings.admin_plain_http,
                addr: admin_addr,
            },
        };
        Ok(Self {
            sync_server: sync_server.run(),
            admin_server: admin_server.run(),
            state,
            seen_head,
            listening: listening.clone(),
        })
        .and_then(|app| {
            let json = serde_json::to_vec_pretty(&listening).context("encoding listening.json")?;
            files::write(&dir.listening(), &json, Access::Public, Existing::Replace)?;
            let sync: Vec<String> = listening.sync.iter().map(ToString::to_string).collect();
            log::info!(
                "sync API (HTTPS) on {}, admin API and console on {}",
                sync.join(", "),
                listening.admin
            );
            Ok(app)
        })
    }

    pub fn listening(&self) -> &Listening {
        &self.listening
    }

    /// Runs both servers until Ctrl-C/SIGTERM (actix-web's own handlers) or `shutdown`
    /// completes (a caller embedding the server, such as a test); either way open
    /// requests are drained first.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + 'static,
    ) -> anyhow::Result<()> {
        let handles = [self.sync_server.handle(), self.admin_server.handle()];
        actix_web::rt::spawn(async move {
            shutdown.await;
            for handle in handles {
                handle.stop(true).await;
            }
        });
        let pruner = prune_request_ids(&self.state);
        let sealer = seal_audit_chain(&self.state, &self.seen_head);
        let result = futures_util::future::try_join(self.sync_server, self.admin_server).await;
        for (name, task) in [("pruning", pruner), ("audit sealing", sealer)] {
            task.abort();
            // Cancelled is how a loop ends; anything else (a panic) would otherwise
            // vanish with the handle.
            if let Err(e) = task.await {
                if !e.is_cancelled() {
                    log::error!("the {name} loop had stopped: {}", join_failure(e));
                }
            }
        }
        result.context("running the servers")?;
        log::info!("stopped");
        Ok(())
    }
}

/// The one shape of the background loops: every `period`, run `work` off the async
/// workers (it blocks on the database) and hand its outcome to `report`, which logs it.
/// A failing round is reported and the loop goes on; a panic in `work` is a failed
/// round too.
fn every<T, W, R>(period: Duration, work: W, mut report: R) -> JoinHandle<()>
where
    T: Send + 'static,
    W: Fn() -> Result<T, ApiError> + Clone + Send + 'static,
    R: FnMut(anyhow::Result<T>) + 'static,
{
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(period);
        loop {
            tick.tick().await;
            let outcome = match web::block(work.clone()).await {
                Ok(result) => result.map_err(anyhow::Error::new),
                Err(_) => Err(anyhow::anyhow!("the work panicked")),
            };
            report(outcome);
        }
    })
}

/// Forgets request ids too old to matter every [`PRUNE_EVERY`].
fn prune_request_ids(state: &AppState) -> JoinHandle<()> {
    let state = state.clone();
    every(
        PRUNE_EVERY,
        move || state.prune(),
        |outcome| match outcome {
            Ok(0) => {}
            Ok(n) => log::info!("forgot {n} request ids older than the stale windows"),
            Err(e) => log::warn!("pruning old request ids failed: {e:#}"),
        },
    )
}

/// Seals new audit entries into the hash chain every [`SEAL_EVERY`] and moves this
/// server's copy of the chain's head forward. A failure (the database down) is logged
/// once, and its end once more, not every second.
fn seal_audit_chain(state: &AppState, seen_head: &web::Data<SeenHead>) -> JoinHandle<()> {
    let (db, clock, seen_head) = (state.db.clone(), state.clock.clone(), seen_head.clone());
    let mut failing = false;
    every(
        SEAL_EVERY,
        move || {
            let sealed = crate::store::audit_chain::seal_pending(&db.write)?;
            let mut conn = db.read.get()?;
            seen_head.advance(&mut conn, clock.now())?;
            Ok(sealed)
        },
        move |outcome| match outcome {
            Ok(sealed) => {
                if failing {
                    log::info!("sealing audit entries works again");
                    failing = false;
                }
                if sealed > 0 {
                    log::debug!("sealed {sealed} audit entries into the hash chain");
                }
            }
            Err(e) => {
                if !failing {
                    log::warn!(
                        "sealing audit entries or keeping the chain's head failed \
                         (retrying every second): {e:#}"
                    );
                    failing = true;
                }
            }
        },
    )
}

/// What a background task's failure was, in words: its panic's message.
fn join_failure(e: actix_web::rt::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .map_or_else(|| "it panicked".to_owned(), |m| format!("it panicked: {m}")),
        Err(_) => "it was stopped".to_owned(),
    }
}
