//! The dispatcher: hands staged replies to the outbound backend, retries with
//! back-off while the relay is away, and moves each reply from `outgoing/`
//! to `sent/` once the backend took it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};

use crate::outbound::{Outbound, SendError};
use crate::spool::Spool;
use crate::status::Stats;
use crate::worker::{blocking, RetryPolicy};

/// Sends the replies in `spool/outgoing/`.
pub struct Dispatcher {
    pub spool: Spool,
    pub outbound: Outbound,
    pub stats: Arc<Stats>,
    pub retry: RetryPolicy,
    pub permits: Semaphore,
    pub known: RefCell<HashSet<String>>,
}

impl Dispatcher {
    /// Takes names from `inbox` and scans `outgoing/` every `scan_every`
    /// (which also picks up what a restart left there).
    pub async fn run(
        self: Rc<Self>,
        mut inbox: mpsc::UnboundedReceiver<String>,
        scan_every: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(scan_every);
        loop {
            tokio::select! {
                Some(name) = inbox.recv() => self.schedule(name),
                _ = tick.tick() => {
                    let spool = self.spool.clone();
                    match blocking(move || spool.outgoing()).await {
                        Ok(names) => names.into_iter().for_each(|name| self.schedule(name)),
                        Err(err) => log::error!("cannot list spool/outgoing: {err:#}"),
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
    }

    fn schedule(self: &Rc<Self>, name: String) {
        if self.known.borrow_mut().insert(name.clone()) {
            actix_web::rt::spawn(self.clone().handle(name));
        }
    }

    async fn handle(self: Rc<Self>, name: String) {
        let mut failures = 0;
        loop {
            let Ok(permit) = self.permits.acquire().await else {
                break;
            };
            let spool = self.spool.clone();
            let entry = name.clone();
            let read = blocking(move || spool.read_outgoing(&entry)).await;
            let (envelope, message) = match read {
                Ok(Some(entry)) => entry,
                // Not (or no longer) waiting: nothing to send.
                Ok(None) => break,
                Err(err) => {
                    self.give_up(&name, &err.to_string()).await;
                    break;
                }
            };
            let sent = self.outbound.send(&name, &envelope, message).await;
            drop(permit);
            match sent {
                Ok(()) => {
                    // Counted before the move, so that an empty `outgoing/`
                    // means every reply is counted.
                    Stats::add(&self.stats.answered);
                    let spool = self.spool.clone();
                    let entry = name.clone();
                    if let Err(err) = blocking(move || spool.mark_sent(&entry)).await {
                        log::error!("reply={name} sent but not moved to spool/sent: {err:#}");
                    }
                    log::info!(
                        "reply={name} kind={} to={} sent",
                        envelope.kind,
                        envelope.to
                    );
                    break;
                }
                Err(SendError::Permanent(reason)) => {
                    self.give_up(&name, &reason).await;
                    break;
                }
                Err(SendError::Transient(err)) => {
                    failures += 1;
                    Stats::add(&self.stats.retries);
                    let delay = self.retry.delay(failures);
                    log::warn!(
                        "reply={name} to={} attempt={failures} failed, next try in {delay:?}: {err:#}",
                        envelope.to
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
        self.known.borrow_mut().remove(&name);
    }

    async fn give_up(&self, name: &str, reason: &str) {
        log::error!("reply={name} given up, moved to spool/failed: {reason}");
        Stats::add(&self.stats.failed);
        let spool = self.spool.clone();
        let entry = name.to_owned();
        if let Err(err) = blocking(move || spool.fail_outgoing(&entry)).await {
            log::error!("reply={name} could not be moved to spool/failed: {err:#}");
        }
    }
}
