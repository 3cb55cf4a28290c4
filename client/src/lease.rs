//! A held seat and the task that keeps it: heartbeats at the interval the server
//! gives, a new check-out when the server no longer knows the lease, and the seat's
//! return when the lease is released or dropped.
//!
//! The [`Lease`] handle is `Send` and holds no connection: it talks to its keeper task
//! (on the client's runtime) through a channel and reads what the keeper publishes.
//! That is what lets the blocking interface hand the same handle to any thread.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use shared_proto::ErrorCode;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::client::{Client, Options};
use crate::error::Error;
use crate::wire::Grant;

/// Whether the seat is still held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseState {
    Held,
    /// The seat is gone: the server refused a heartbeat, or forgot the lease and a new
    /// check-out was refused or found no server. No more heartbeats are sent.
    Lost(Error),
}

/// What is known of a lease now (the id changes when a forgotten lease was checked out
/// again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The server's answer of the last check-out or heartbeat.
    pub grant: Grant,
    /// The server that holds the lease.
    pub server: String,
    pub state: LeaseState,
    /// Heartbeats the server answered.
    pub heartbeats: u64,
    /// New check-outs made after the server forgot the lease.
    pub recheckouts: u32,
}

type Reply = Box<dyn FnOnce(Result<(), Error>) + Send>;

enum Command {
    /// Return the seat, then tell.
    Release(Reply),
    /// Stop keeping the lease without returning it.
    Keep,
}

/// A checked-out seat. Dropping it returns the seat (in the background); a borrowed
/// seat stays borrowed until its end or an explicit [`Lease::release`].
pub struct Lease {
    info: watch::Receiver<LeaseInfo>,
    commands: mpsc::UnboundedSender<Command>,
    /// Released or kept: the drop has nothing left to do.
    done: bool,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("info", &self.info()).finish()
    }
}

// Checking out lives with the lease it makes, so that the client knows nothing of
// leases and the lease module alone builds them.
impl Client {
    /// Checks out a seat of `feature`, waiting in the queue as `options` allow; the
    /// lease keeps itself alive in the background until it is dropped or released.
    pub async fn checkout(&self, feature: &str, options: Options) -> Result<Lease, Error> {
        let (server, grant) = self.check_out_grant(feature, &options).await?;
        log::debug!(
            "seat checked out feature={feature} lease_id={} server={}",
            grant.lease_id,
            self.server(server)
        );
        Ok(Lease::spawn(self.clone(), server, grant, options))
    }
}

impl Lease {
    /// Starts the keeper of `grant`, held at the server at index `server`.
    pub(crate) fn spawn(client: Client, server: usize, grant: Grant, options: Options) -> Self {
        let info = LeaseInfo {
            server: client.server(server).to_owned(),
            grant,
            state: LeaseState::Held,
            heartbeats: 0,
            recheckouts: 0,
        };
        let (info_tx, info_rx) = watch::channel(info);
        let (commands, rx) = mpsc::unbounded_channel();
        let keeper = Keeper {
            client,
            server,
            options,
            info: info_tx,
            renewed_at: Instant::now(),
        };
        actix_rt::spawn(keeper.run(rx));
        Self {
            info: info_rx,
            commands,
            done: false,
        }
    }

    /// What is known of the lease now.
    pub fn info(&self) -> LeaseInfo {
        self.info.borrow().clone()
    }

    pub fn id(&self) -> Uuid {
        self.info.borrow().grant.lease_id
    }

    pub fn feature(&self) -> String {
        self.info.borrow().grant.feature.clone()
    }

    /// When the seat goes back unless renewed (a borrow: when it ends).
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.info.borrow().grant.expires_at
    }

    /// The signed token of a borrowed seat ([`crate::verify_borrow_token`]).
    pub fn borrow_token(&self) -> Option<String> {
        self.info.borrow().grant.borrow_token.clone()
    }

    pub fn state(&self) -> LeaseState {
        self.info.borrow().state.clone()
    }

    /// Waits until what is known of the lease changes (a heartbeat, a new check-out,
    /// the seat lost); `Err` once the keeper has stopped.
    pub async fn changed(&mut self) -> Result<LeaseInfo, Error> {
        self.info.changed().await.map_err(|_| Error::Stopped)?;
        Ok(self.info())
    }

    /// Returns the seat now and waits for the server's answer.
    pub async fn release(mut self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.send_release(Box::new(move |result| {
            let _ = tx.send(result);
        }))?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Stops heartbeats and leaves the seat out: a lease runs out after its lease time,
    /// a borrow at its end. For scripts that hand the lease to another program.
    pub fn keep(mut self) -> LeaseInfo {
        self.stop_keeping();
        self.info()
    }

    pub(crate) fn stop_keeping(&mut self) {
        self.done = true;
        let _ = self.commands.send(Command::Keep);
    }

    /// [`Lease::release`] for a thread outside any runtime.
    pub(crate) fn release_blocking(&mut self) -> Result<(), Error> {
        let (tx, rx) = std_mpsc::sync_channel(1);
        self.send_release(Box::new(move |result| {
            let _ = tx.send(result);
        }))?;
        rx.recv().map_err(|_| Error::Stopped)?
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    pub(crate) fn is_borrow(&self) -> bool {
        self.info.borrow().grant.borrow_token.is_some()
    }

    fn send_release(&mut self, reply: Reply) -> Result<(), Error> {
        self.done = true;
        self.commands
            .send(Command::Release(reply))
            .map_err(|_| Error::Stopped)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The channel closing is the keeper's signal: it returns the seat unless it is
        // a borrow (see Keeper::run).
        self.done = true;
    }
}

/// The task that keeps one lease.
struct Keeper {
    client: Client,
    server: usize,
    options: Options,
    info: watch::Sender<LeaseInfo>,
    /// When the server last renewed the lease (locally measured).
    renewed_at: Instant,
}

enum Event {
    Command(Option<Command>),
    Beat(Result<Grant, Error>),
}

/// A lease lasts three heartbeat intervals on the server (its `--lease-seconds`): a
/// heartbeat that finds no server is tried until then, and then the lease is gone.
const INTERVALS_PER_LEASE: u32 = 3;

impl Keeper {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            let event = {
                let beat = self.next_beat();
                tokio::select! {
                    command = commands.recv() => Event::Command(command),
                    outcome = beat => Event::Beat(outcome),
                }
            };
            match event {
                Event::Command(Some(Command::Release(reply))) => {
                    reply(self.check_in().await);
                    return;
                }
                Event::Command(Some(Command::Keep)) => return,
                Event::Command(None) => {
                    // Dropped: a lease goes back, a borrow stays out (its point).
                    if !self.is_borrow() {
                        if let Err(err) = self.check_in().await {
                            log::warn!("the seat could not be returned, it goes back when its lease runs out: {err}");
                        }
                    }
                    return;
                }
                Event::Beat(outcome) => self.after_beat(outcome).await,
            }
        }
    }

    fn is_borrow(&self) -> bool {
        self.info.borrow().grant.heartbeat_seconds.is_none()
    }

    fn interval(&self) -> Option<Duration> {
        let info = self.info.borrow();
        match info.state {
            LeaseState::Held => info
                .grant
                .heartbeat_seconds
                .map(|s| Duration::from_secs(s.max(1))),
            LeaseState::Lost(_) => None,
        }
    }

    /// The next heartbeat, at the interval the server asked for; never for a borrow or
    /// a lost lease.
    async fn next_beat(&self) -> Result<Grant, Error> {
        let Some(interval) = self.interval() else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until((self.renewed_at + interval).into()).await;
        let id = self.info.borrow().grant.lease_id;
        let runs_out = self.renewed_at + interval * INTERVALS_PER_LEASE;
        self.client.heartbeat(self.server, id, runs_out).await
    }

    async fn after_beat(&mut self, outcome: Result<Grant, Error>) {
        match outcome {
            Ok(grant) => {
                self.renewed_at = Instant::now();
                self.info.send_modify(|info| {
                    info.grant.expires_at = grant.expires_at;
                    info.grant.heartbeat_seconds = grant.heartbeat_seconds;
                    info.grant.pair_epoch = grant.pair_epoch;
                    info.heartbeats += 1;
                });
            }
            // The server forgot the lease (it restarted without it, or it ran out), or
            // it could not be renewed before it ran out: check the feature out again,
            // once, at whichever server answers first.
            Err(
                err @ (Error::Refused {
                    code: ErrorCode::LeaseUnknown,
                    ..
                }
                | Error::Unreachable { .. }),
            ) => self.check_out_again(err).await,
            // The other server of a pair issues now (a standby promoted or handed back).
            Err(err) if err.is_other_server_turn() => self.check_out_again(err).await,
            Err(err) => self.lose(err),
        }
    }

    /// Checks the feature out again, once, at whichever server answers first.
    async fn check_out_again(&mut self, err: Error) {
        let feature = self.info.borrow().grant.feature.clone();
        log::info!("the lease is gone, checking out again feature={feature}: {err}");
        match self.client.check_out_grant(&feature, &self.options).await {
            Ok((server, grant)) => {
                log::info!(
                    "checked out again feature={feature} lease_id={} server={}",
                    grant.lease_id,
                    self.client.server(server)
                );
                self.server = server;
                self.renewed_at = Instant::now();
                let address = self.client.server(server).to_owned();
                self.info.send_modify(|info| {
                    info.grant = grant;
                    info.server = address;
                    info.recheckouts += 1;
                });
            }
            Err(err) => self.lose(err),
        }
    }

    fn lose(&mut self, err: Error) {
        let feature = self.info.borrow().grant.feature.clone();
        log::warn!("the seat is lost feature={feature}: {err}");
        self.info
            .send_modify(|info| info.state = LeaseState::Lost(err));
    }

    async fn check_in(&self) -> Result<(), Error> {
        let (id, held) = {
            let info = self.info.borrow();
            (info.grant.lease_id, info.state == LeaseState::Held)
        };
        if !held {
            return Ok(());
        }
        self.client.check_in_at(self.server, id).await
    }
}
