//! The dispatcher: hands staged replies to the outbound backend, retries with
//! back-off while the relay is away, and moves each reply from `outgoing/`
//! to `sent/` once the backend took it.
//!
//! A reply the backend took is never handed over again by this process: if
//! the move to `sent/` fails, only the move is retried (with back-off). A
//! spool entry that cannot be read for a file-system reason is retried; one
//! that cannot be decoded goes to `failed/`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};

use crate::outbound::{Outbound, SendError};
use crate::spool::{ReadError, Spool};
use crate::status::Stats;
use crate::worker::{blocking, RetryPolicy};

/// Sends the replies in `spool/outgoing/`.
pub struct Dispatcher {
    pub spool: Spool,
    pub outbound: Outbound,
    pub stats: Arc<Stats>,
    pub retry: RetryPolicy,
    /// One per reply being handed over; closed when the gateway stops.
    pub permits: Semaphore,
    pub known: RefCell<HashSet<String>>,
    /// Becomes true when the gateway stops: retry loops end.
    pub shutdown: watch::Receiver<bool>,
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
                    Stats::add(&self.stats.scans);
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
            let read = match blocking(move || Ok(spool.read_outgoing(&entry))).await {
                Ok(read) => read,
                // The blocking task itself failed: try again.
                Err(err) => Err(ReadError::Io(err)),
            };
            let sent = match read {
                Ok(Some((envelope, message))) => self
                    .outbound
                    .send(&name, &envelope, message)
                    .await
                    .map(|()| envelope),
                // Not (or no longer) waiting: nothing to send.
                Ok(None) => break,
                Err(ReadError::Undecodable(err)) => {
                    self.give_up(&name, &format!("{err:#}")).await;
                    break;
                }
                // EMFILE, EIO and the like pass: read it again later.
                Err(ReadError::Io(err)) => Err(SendError::Transient(err)),
            };
            drop(permit);
            match sent {
                Ok(envelope) => {
                    // Counted before the move, so that an empty `outgoing/`
                    // means every reply is counted.
                    Stats::add(&self.stats.answered);
                    log::info!(
                        "reply={name} kind={} to={} sent",
                        envelope.kind,
                        envelope.to
                    );
                    self.mark_sent(&name).await;
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
                        "reply={name} attempt={failures} failed, next try in {delay:?}: {err:#}"
                    );
                    if !self.pause(delay).await {
                        break;
                    }
                }
            }
        }
        self.known.borrow_mut().remove(&name);
    }

    /// Moves a reply the backend took to `sent/`, retrying only the move:
    /// while the name is being handled here, no scan hands it over again.
    async fn mark_sent(&self, name: &str) {
        let mut failures = 0;
        loop {
            let spool = self.spool.clone();
            let entry = name.to_owned();
            match blocking(move || spool.mark_sent(&entry)).await {
                Ok(()) => return,
                Err(err) => {
                    failures += 1;
                    Stats::add(&self.stats.retries);
                    let delay = self.retry.delay(failures);
                    log::error!(
                        "reply={name} sent but not moved to spool/sent (attempt={failures}), \
                         next try in {delay:?}: {err:#}"
                    );
                    if !self.pause(delay).await {
                        // Left in outgoing/: the next start hands it over
                        // again (the one window of a relay, as with any MTA).
                        log::warn!("reply={name} still in spool/outgoing at the stop");
                        return;
                    }
                }
            }
        }
    }

    /// Waits `delay`; false when the gateway is stopping instead.
    async fn pause(&self, delay: Duration) -> bool {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.wait_for(|stopping| *stopping) => false,
        }
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
