//! Start-up: turns the `serve` arguments into running parts. [`Application::build`]
//! binds the listeners (port 0 allowed) and writes `DATA_DIR/listening.json`;
//! [`Application::run_until_stopped`] runs intake, worker, dispatcher, notices,
//! reminders, the portal's sign-in links (with `--portal-url`) and the status page
//! until the shutdown future completes, then drains.
//!
//! The stop, in order: no new mail is taken (SMTP listener, Maildir) and the
//! scans stop; SMTP sessions in `DATA` may finish (their message is stored
//! and gets its `250`) for up to [`SMTP_DRAIN_TIMEOUT`]; messages and
//! replies being processed may finish for up to [`DRAIN_TIMEOUT`]; then the
//! worker's and dispatcher's semaphores are closed, which ends every retry
//! loop. Whatever is cut short stays in the spool and resumes at the next
//! start.
//!
//! Everything runs on one actix (tokio current-thread) runtime: the awc
//! client of the main server is not `Send`. Blocking file I/O goes to the
//! blocking pool, so one thread is plenty for a mail gateway.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
use serde::{Deserialize, Serialize};
use shared_proto::Clock;
use tokio::sync::{mpsc, watch};

use crate::admin_client::AdminClient;
use crate::background;
use crate::cli::{ServeArgs, SmtpListen};
use crate::intake::smtp::{Smtp, SmtpSettings};
use crate::outgoing::replies::Composer;
use crate::outgoing::transport::{Outbound, RelaySettings};
use crate::own_mail::notices::Notices;
use crate::own_mail::portal_links::PortalLinks;
use crate::own_mail::reminders::Reminders;
use crate::queue::dispatch::Dispatcher;
use crate::queue::runner::{Backoff, RetryPolicy, Runner};
use crate::queue::spool::Spool;
use crate::queue::worker::{Complaints, ReceivedCounter, Worker};
use crate::status::counters::Stats;
use shared_proto::files::{self, Access, Existing};

/// How often the spool queue and `outgoing/` are scanned for entries no
/// channel announced (messages from `deliver`, leftovers of a restart).
const SCAN_EVERY: Duration = Duration::from_millis(500);
/// How often old sent replies and ledger entries are removed.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);
/// How long a stop waits for messages and replies being processed.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for SMTP sessions in `DATA` to finish.
pub const SMTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// `DATA_DIR/listening.json` (docs/API.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listening {
    /// The SMTP receiver, `null` when `--smtp-listen off`.
    pub smtp: Option<SocketAddr>,
    /// The status page.
    pub http: SocketAddr,
}

/// A gateway with its listeners bound.
pub struct Application {
    args: ServeArgs,
    clock: Clock,
    spool: Spool,
    smtp_listener: Option<std::net::TcpListener>,
    http_listener: std::net::TcpListener,
    listening: Listening,
    composer: Composer,
    main: AdminClient,
    outbound: Outbound,
    tls: Option<SslAcceptor>,
}

impl Application {
    /// Checks the settings, opens the spool, binds the listeners and writes
    /// `listening.json`.
    pub fn build(args: ServeArgs, clock: Clock) -> anyhow::Result<Application> {
        let composer =
            Composer::new(&args.address, &args.from_name)?.with_portal(args.portal_url.clone());
        let token =
            shared_proto::files::read_secret(&args.token_file).context("reading --token-file")?;
        let main = AdminClient::new(&args.main_server, args.main_server_ca.as_deref(), token)?;
        let outbound = match (&args.smtp_relay, &args.outbox) {
            (_, Some(outbox)) => Outbound::outbox(outbox)?,
            (Some(url), None) => {
                let credentials = match (&args.smtp_relay_user, &args.smtp_relay_password_file) {
                    (Some(user), Some(file)) => Some((
                        user.clone(),
                        shared_proto::files::read_secret(file)
                            .context("reading --smtp-relay-password-file")?,
                    )),
                    _ => None,
                };
                Outbound::relay(&RelaySettings {
                    url: url.clone(),
                    tls: args.smtp_relay_tls,
                    credentials,
                })?
            }
            (None, None) => bail!("give --smtp-relay or --outbox"),
        };
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
            _ => None,
        };
        if args.workers == 0 || args.max_connections == 0 || args.max_connections_per_ip == 0 {
            bail!("--workers, --max-connections and --max-connections-per-ip must be at least 1");
        }

        crate::queue::spool::create_private_dir(&args.spool.data_dir)
            .with_context(|| format!("creating {}", args.spool.data_dir.display()))?;
        let spool = Spool::open(&args.spool.data_dir)?;
        let swept = spool.sweep_tmp()?;
        if swept > 0 {
            log::info!("removed {swept} temporary files left by a crash");
        }
        if let Some(maildir) = &args.maildir {
            crate::intake::maildir::prepare(maildir)?;
        }

        let smtp_listener = match args.smtp_listen {
            SmtpListen::Off => None,
            SmtpListen::On(addr) => Some(bind(addr, "--smtp-listen")?),
        };
        let http_listener = bind(args.http_listen, "--http-listen")?;
        let listening = Listening {
            smtp: smtp_listener
                .as_ref()
                .map(|l| l.local_addr())
                .transpose()
                .context("reading the SMTP address")?,
            http: http_listener
                .local_addr()
                .context("reading the HTTP address")?,
        };
        let json = serde_json::to_vec_pretty(&listening).context("encoding listening.json")?;
        files::write(
            &args.spool.data_dir.join("listening.json"),
            &json,
            Access::Public,
            Existing::Replace,
        )?;
        let smtp = listening
            .smtp
            .map_or_else(|| "off".to_owned(), |a| a.to_string());
        log::info!(
            "mail gateway for {} listening: smtp {smtp}, http {}",
            composer.address(),
            listening.http
        );
        if args.portal_url.is_none() {
            log::warn!(
                "no --portal-url: sign-in links of the customer portal are not mailed (a \
                 contact who asks for one gets nothing), and replies and reminders do not \
                 name the portal"
            );
        }
        if let (Some(id), Some(addr)) = (&args.authserv_id, listening.smtp) {
            log::warn!(
                "mail received on the SMTP listener {addr} is recorded with its sender not \
                 checked: this receiver checks no SPF, DKIM or DMARC, so it believes no \
                 Authentication-Results header, not even one naming {id}; only mail handed \
                 over by the MTA in front (deliver, --maildir) is checked"
            );
        }
        Ok(Application {
            args,
            clock,
            spool,
            smtp_listener,
            http_listener,
            listening,
            composer,
            main,
            outbound,
            tls,
        })
    }

    /// The bound addresses.
    pub fn listening(&self) -> &Listening {
        &self.listening
    }

    /// Runs until `shutdown` completes, then drains. Must run inside an
    /// actix system (`actix_web::rt::System`).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Application {
            args,
            clock,
            spool,
            smtp_listener,
            http_listener,
            composer,
            main,
            outbound,
            tls,
            ..
        } = self;
        let stats = Arc::new(Stats::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let (accepted_tx, accepted_rx) = mpsc::unbounded_channel();
        let (replies_tx, replies_rx) = mpsc::unbounded_channel();
        let retry = RetryPolicy {
            initial: Duration::from_millis(args.retry_initial_ms.max(1)),
            max: Duration::from_millis(args.retry_max_ms.max(args.retry_initial_ms).max(1)),
        };

        let backoff = Backoff {
            policy: retry,
            stats: stats.clone(),
            shutdown: stop_rx.clone(),
        };
        let worker = Rc::new(Runner::new(
            Worker {
                spool: spool.clone(),
                main: main.clone(),
                composer: composer.clone(),
                clock: clock.clone(),
                stats: stats.clone(),
                backoff: backoff.clone(),
                limit: args.spool.max_message_size,
                authserv_id: args.authserv_id.clone(),
                replies: replies_tx.clone(),
                counter: RefCell::new(ReceivedCounter::default()),
                complaints: RefCell::new(Complaints::default()),
            },
            spool.clone(),
            backoff.clone(),
            args.workers,
        ));
        let dispatcher = Rc::new(Runner::new(
            Dispatcher {
                spool: spool.clone(),
                outbound,
                stats: stats.clone(),
            },
            spool.clone(),
            backoff,
            args.workers,
        ));
        let notices = Rc::new(Notices {
            spool: spool.clone(),
            main: main.clone(),
            composer: composer.clone(),
            clock: clock.clone(),
            replies: replies_tx.clone(),
        });
        let portal_links = args.portal_url.clone().map(|portal| {
            Rc::new(PortalLinks {
                spool: spool.clone(),
                main: main.clone(),
                composer: composer.clone(),
                clock: clock.clone(),
                stats: stats.clone(),
                portal,
                replies: replies_tx.clone(),
            })
        });
        let reminders = Rc::new(Reminders {
            spool: spool.clone(),
            main,
            composer: composer.clone(),
            clock: clock.clone(),
            stats: stats.clone(),
            replies: replies_tx,
        });

        // Each task with the name its end is logged under.
        let mut tasks = vec![
            (
                "the worker's queue",
                actix_web::rt::spawn(worker.clone().run(accepted_rx, SCAN_EVERY)),
            ),
            (
                "the dispatcher's queue",
                actix_web::rt::spawn(dispatcher.clone().run(replies_rx, SCAN_EVERY)),
            ),
            (
                "the key-clear notices",
                actix_web::rt::spawn(notices.run(
                    Duration::from_millis(args.notice_interval_ms.max(10)),
                    stop_rx.clone(),
                )),
            ),
            (
                "the reminders",
                actix_web::rt::spawn(reminders.run(
                    Duration::from_secs(args.reminder_interval_seconds.max(1)),
                    stop_rx.clone(),
                )),
            ),
            (
                "housekeeping",
                actix_web::rt::spawn(housekeeping(
                    spool.clone(),
                    Duration::from_secs(args.retention_days.saturating_mul(86_400)),
                    stop_rx.clone(),
                )),
            ),
        ];
        if let Some(portal_links) = portal_links {
            let poll = actix_web::rt::spawn(portal_links.run(
                Duration::from_millis(args.portal_link_interval_ms.max(10)),
                stop_rx.clone(),
            ));
            tasks.push(("the portal's sign-in links", poll));
        }
        if let Some(maildir) = &args.maildir {
            let watcher = actix_web::rt::spawn(crate::intake::maildir::watch(
                maildir.clone(),
                spool.clone(),
                clock.clone(),
                args.spool.max_message_size,
                accepted_tx.clone(),
                Duration::from_millis(args.maildir_poll_ms.max(10)),
                stop_rx.clone(),
            ));
            tasks.push(("the Maildir watcher", watcher));
        }
        if let Some(listener) = smtp_listener {
            listener
                .set_nonblocking(true)
                .context("configuring the SMTP listener")?;
            let listener = tokio::net::TcpListener::from_std(listener)
                .context("configuring the SMTP listener")?;
            let smtp = Arc::new(Smtp {
                settings: SmtpSettings {
                    hostname: args
                        .hostname
                        .clone()
                        .unwrap_or_else(|| domain_of(&composer.address())),
                    own_address: composer.address(),
                    max_message_size: args.spool.max_message_size,
                    max_connections: args.max_connections,
                    max_connections_per_ip: args.max_connections_per_ip,
                    timeout: Duration::from_secs(args.smtp_timeout_secs.max(1)),
                    data_timeout: Duration::from_secs(args.smtp_data_timeout_secs.max(1)),
                    session_timeout: Duration::from_secs(args.smtp_session_timeout_secs.max(1)),
                    drain_timeout: SMTP_DRAIN_TIMEOUT,
                    tls,
                },
                spool: spool.clone(),
                clock: clock.clone(),
                accepted: accepted_tx.clone(),
            });
            let receiver = actix_web::rt::spawn(crate::intake::smtp::listener::serve(
                smtp,
                listener,
                stop_rx.clone(),
            ));
            tasks.push(("the SMTP receiver", receiver));
        }
        let http = crate::status::serve(
            http_listener,
            stats,
            spool,
            args.spool.data_dir.join("spool"),
            clock.clone(),
        )?;
        let http_handle = http.handle();
        let http_task = actix_web::rt::spawn(http);

        shutdown.await;
        log::info!("stopping: no new mail is taken; messages in progress finish");
        let _ = stop_tx.send(true);
        // The SMTP task ends once its sessions are drained.
        for (what, task) in tasks {
            background::log_abnormal_end(what, task.await);
        }
        http_handle.stop(true).await;
        match http_task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => log::error!("the status page stopped with an error: {err}"),
            Err(err) => background::log_abnormal_end("the status page", Err(err)),
        }
        // Messages and replies in progress hold a permit: taking them all
        // waits for those (a semaphore is fair, so nothing new starts
        // meanwhile); closing then ends every retry loop.
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            let worker_idle = worker.idle().await;
            let dispatcher_idle = dispatcher.idle().await;
            (worker_idle.is_ok() && dispatcher_idle.is_ok()).then_some(())
        })
        .await;
        if drained.is_err() {
            log::warn!("stopping with messages still in progress: they resume at the next start");
        }
        worker.close();
        dispatcher.close();
        drop(accepted_tx);
        log::info!("stopped");
        Ok(())
    }
}

/// Prunes `spool/sent/` and the ledger at start and every hour.
async fn housekeeping(spool: Spool, retention: Duration, shutdown: watch::Receiver<bool>) {
    background::every("housekeeping", HOUSEKEEPING_EVERY, shutdown, || async {
        let removed = spool.prune(retention).await?;
        if removed > 0 {
            log::info!("housekeeping removed {removed} sent replies and ledger entries");
        }
        Ok(())
    })
    .await;
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map_or("localhost", |(_, domain)| domain)
        .to_owned()
}

fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).with_context(|| format!("binding {flag} {addr}"))
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> anyhow::Result<SslAcceptor> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .context("setting up STARTTLS")?;
    builder
        .set_certificate_chain_file(cert)
        .with_context(|| format!("loading --tls-cert {}", cert.display()))?;
    builder
        .set_private_key_file(key, SslFiletype::PEM)
        .with_context(|| format!("loading --tls-key {}", key.display()))?;
    builder
        .check_private_key()
        .context("--tls-key does not match --tls-cert")?;
    Ok(builder.build())
}
