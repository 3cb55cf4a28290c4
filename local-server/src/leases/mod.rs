//! The lease engine of the serving process: an in-memory index of live leases and of
//! the clients waiting for a seat, with write-through to SQLite.
//!
//! Why in memory: a check-out must count the seats in use for its feature. Counting rows
//! in the database on every check-out costs a scan that grows with the number of live
//! leases (10,000 and more). Here one mutex orders the decisions and the counts are kept
//! in maps. The mutex is never held while SQLite is waited for: a decision reserves the
//! seat in memory, hands the rows to the [`LeaseWriter`] thread and releases the lock; a
//! grant is answered once its row is committed (so it survives a crash or restart), and
//! a grant whose write failed is taken back. Returned and expired seats are free at once;
//! their rows are deleted as soon as the database allows (a lost delete only keeps a
//! seat taken until the lease's expiry). On start-up the index is rebuilt from the rows
//! that have not expired.
//!
//! The manager verbs run in other processes and change licenses and the sync state, never
//! leases. The `changes` table (kept by triggers) tells the engine when they did, and it
//! then reloads licenses, sync state and usage peaks (a few rows), on a reading
//! connection of its own.
//!
//! Queueing: a check-out may wait for a seat. Waiters are kept per feature in arrival
//! order; whenever a seat comes back (check-in, expiry, return, more seats) the first
//! waiter is granted it. The queue is bounded. A waiting client holds a long-polled
//! request (`POST /api/v1/leases`, then `GET /api/v1/queue/{ticket}`), each answered
//! within one poll window: with the grant, with `202` and its position, or with
//! `NO_SEATS` once its wait is over. Polling is how the server knows the client is
//! still there (actix-web does not report a closed connection to a waiting handler):
//! a waiter not polled for two windows has gone away and leaves the queue, and a grant
//! nobody collects within that time is returned.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde::Serialize;
use shared_proto::validity::{self, SyncState};
use shared_proto::{BorrowToken, Clock, ErrorCode, License, ServerIdentity};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::db::{self, from_ms, to_ms, LeaseRow};
use crate::error::Error;
use self::writer::{Done, LeaseWriter, Op, WriteError};
use crate::options::{self, Holdings};
use crate::report_log::{Event, ReportRow};

pub mod writer;

/// Longest feature name accepted from a client.
pub const MAX_FEATURE_LEN: usize = 128;
/// Longest client description accepted.
pub const MAX_CLIENT_LEN: usize = 256;
/// Longest user or host name accepted.
pub const MAX_NAME_LEN: usize = 64;
/// Longest wait for a seat a client may ask for.
pub const MAX_WAIT_SECONDS: u32 = 3_600;
/// Longest borrow a client may ask for (the license's limit usually caps it lower).
pub const MAX_BORROW_HOURS: u32 = 8_784;

/// How far the stored clock high-water mark may lag the one in memory. It is well under
/// the rollback tolerance (10 minutes), so a crash cannot hide a rollback.
const HIGH_WATER_PERSIST_MS: i64 = 60_000;

/// What a client asks for.
#[derive(Debug, Clone)]
pub struct CheckOut {
    pub feature: String,
    /// Free text describing the client program.
    pub client: String,
    pub user: String,
    pub host: String,
    /// How long to wait in the queue when no seat is free (zero: answer at once).
    pub wait: StdDuration,
    /// Borrow the seat for offline use for this long (capped by the license).
    pub borrow: Option<StdDuration>,
}

impl CheckOut {
    fn validate(&self) -> Result<(), Error> {
        validate_text("feature", &self.feature, MAX_FEATURE_LEN)?;
        validate_text("client", &self.client, MAX_CLIENT_LEN)?;
        validate_name("user", &self.user)?;
        validate_name("host", &self.host)?;
        let longest_borrow = StdDuration::from_secs(u64::from(MAX_BORROW_HOURS) * 3_600);
        if self
            .borrow
            .is_some_and(|b| b.is_zero() || b > longest_borrow)
        {
            return Err(Error::refused(
                ErrorCode::Malformed,
                format!("borrow_hours must be 1 to {MAX_BORROW_HOURS}"),
            ));
        }
        if self.wait > StdDuration::from_secs(u64::from(MAX_WAIT_SECONDS)) {
            return Err(Error::refused(
                ErrorCode::Malformed,
                format!("wait_seconds must be at most {MAX_WAIT_SECONDS}"),
            ));
        }
        Ok(())
    }
}

/// How the engine behaves; `serve`'s flags map onto it.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub lease_length: Duration,
    /// Longest a grant or renewal waits for a database another program holds locked
    /// before it is answered `UNAVAILABLE`.
    pub write_deadline: StdDuration,
    /// Most clients waiting for a seat, all features together.
    pub queue_limit: usize,
    /// Longest a queued client's request is held before it is answered with its
    /// position (it then polls again).
    pub poll_window: StdDuration,
    /// The report log keeps this many days…
    pub report_days: i64,
    /// …and at most this many entries.
    pub report_rows: i64,
}

/// A granted or renewed lease, as the client sees it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseGrant {
    pub lease_id: Uuid,
    pub feature: String,
    pub user: String,
    pub host: String,
    pub expires_at: DateTime<Utc>,
    /// How often the client should renew: a third of the lease length. Absent for a
    /// borrowed seat, which takes no heartbeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<i64>,
    /// Where the client stood in the queue when it arrived (absent: it did not wait).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    /// How long it waited for the seat, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<i64>,
    /// A borrowed seat: `expires_at` is the end of the borrow (no heartbeats), and this
    /// token, signed with the server's key, proves it offline (see
    /// `shared_proto::BorrowToken`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub borrow_token: Option<String>,
}

/// A check-out's answer: a seat, or a place in the queue to poll.
#[derive(Debug, Clone)]
pub enum Outcome {
    Granted(LeaseGrant),
    Waiting(QueueTicket),
}

/// A place in the queue, as the client sees it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueTicket {
    /// Poll `GET /api/v1/queue/{ticket}` with it.
    pub ticket: Uuid,
    pub feature: String,
    /// 1 = next to get a seat.
    pub position: usize,
    /// When the wait ends with `NO_SEATS` if no seat came free.
    pub wait_until: DateTime<Utc>,
    /// Poll again within this many seconds, or leave the queue.
    pub poll_within_seconds: u64,
}

/// One feature's seats as the client API lists them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FeatureSeats {
    pub feature: String,
    /// Seats of the licenses valid now.
    pub seats_total: u32,
    pub in_use: u32,
    pub free: u32,
    pub state: SeatsState,
    /// Clients waiting for a seat.
    pub queued: usize,
    pub licenses: Vec<License>,
}

shared_proto::text_enum! {
    /// Whether a feature's seats can be checked out now, as the client API writes it.
    pub enum SeatsState {
        Ok => "ok",
        /// No license of the feature is valid now.
        LicenseExpired => "LICENSE_EXPIRED",
    }
}

struct LiveLease {
    feature: Arc<str>,
    user: String,
    host: String,
    /// When it was granted: over a lowered seat count, the newest leases lose first.
    granted_ms: i64,
    expires_ms: i64,
    borrowed: bool,
}

/// A client waiting for a seat.
struct Waiter {
    ticket: Uuid,
    request: CheckOut,
    arrived_ms: i64,
    deadline_ms: i64,
    /// Its position on arrival.
    position: usize,
    /// When its client last asked (a request held open counts as asking).
    last_seen_ms: i64,
    /// Wakes its pending poll when a seat is granted to it.
    notify: Arc<Notify>,
}

/// A seat granted to a waiter, until its client collects it.
struct Ready {
    grant: LeaseGrant,
    done: Done,
    granted_ms: i64,
}

/// The answer kept for a waiter whose time ran out while no request of its client was
/// held (or while another request ran the queue first), until its client polls for it.
struct Ended {
    refusal: Error,
    ended_ms: i64,
}

struct Inner {
    generation: i64,
    valid_until: Option<DateTime<Utc>>,
    licenses: HashMap<String, Vec<License>>,
    /// Latest time seen; may be ahead of the stored one by up to a minute.
    high_water: Option<DateTime<Utc>>,
    stored_high_water: Option<i64>,
    leases: HashMap<Uuid, LiveLease>,
    /// Expiry order, so expired leases are found without a scan.
    by_expiry: BTreeSet<(i64, Uuid)>,
    in_use: HashMap<Arc<str>, u32>,
    /// Seats held per user and per host, per feature (for the options file's rules).
    holders: HashMap<Arc<str>, Holders>,
    /// The options file in force (the last good one).
    options: options::InForce,
    peaks: HashMap<String, u32>,
    queues: HashMap<String, VecDeque<Waiter>>,
    /// Which feature's queue each ticket is in.
    tickets: HashMap<Uuid, String>,
    ready: HashMap<Uuid, Ready>,
    /// Kept for two poll windows, then forgotten by the sweeper.
    ended: HashMap<Uuid, Ended>,
}

/// What a reload read from the database.
struct Snapshot {
    generation: i64,
    options: Option<String>,
    state: db::SyncStateRow,
    licenses: Vec<db::LicenseRow>,
    peaks: Vec<(String, i32)>,
}

/// The lease engine; shared by all workers of the serving process.
pub struct LeaseEngine {
    inner: Mutex<Inner>,
    /// Reads the `changes` count and reloads; never used for lease writes.
    reader: Mutex<SqliteConnection>,
    /// Copies the write-ahead log into the database file, off the writer's path.
    checkpointer: Mutex<SqliteConnection>,
    writer: LeaseWriter,
    clock: Clock,
    settings: EngineSettings,
    /// Signs borrow tokens.
    identity: ServerIdentity,
    server_id: Uuid,
}

/// The outcome of a check-out decision, made under the lock.
enum Decision {
    Granted(LeaseGrant, Vec<Op>),
    Queued(Uuid),
}

impl LeaseEngine {
    /// Opens the engine on the data directory and rebuilds the index of live leases.
    pub fn open(data_dir: &Path, clock: Clock, settings: EngineSettings) -> anyhow::Result<Self> {
        let identity = crate::config::load_identity(data_dir)?;
        let mut reader = db::connect_existing(data_dir)?;
        let server_id = Uuid::parse_str(&db::load_config(&mut reader)?.server_id)
            .context("reading the license server id")?;
        let writer = LeaseWriter::start(db::connect_existing(data_dir)?)?;
        let checkpointer = db::connect_existing(data_dir)?;
        let now = clock.now();
        // Every stored lease, also those that ran out while no server ran: their expiry
        // is recorded (at its time) once the engine is up.
        let rows = db::load_live_leases(&mut reader, i64::MIN).context("loading leases")?;
        let mut inner = Inner {
            generation: -1,
            valid_until: None,
            licenses: HashMap::new(),
            high_water: None,
            stored_high_water: None,
            leases: HashMap::new(),
            by_expiry: BTreeSet::new(),
            in_use: HashMap::new(),
            holders: HashMap::new(),
            options: options::InForce::default(),
            peaks: HashMap::new(),
            queues: HashMap::new(),
            tickets: HashMap::new(),
            ready: HashMap::new(),
            ended: HashMap::new(),
        };
        for row in rows {
            let Ok(id) = Uuid::parse_str(&row.id) else {
                log::warn!("ignoring a lease row with a malformed id {:?}", row.id);
                continue;
            };
            inner.insert(id, &row);
        }
        let snapshot = Snapshot::load(&mut reader).context("loading licenses and sync state")?;
        inner.apply(snapshot);
        let engine = Self {
            inner: Mutex::new(inner),
            reader: Mutex::new(reader),
            checkpointer: Mutex::new(checkpointer),
            writer,
            clock,
            settings,
            identity,
            server_id,
        };
        {
            let mut inner = engine.lock();
            let expired = engine.expire(&mut inner, to_ms(now));
            log::info!(
                "lease index rebuilt: {} live leases ({expired} ran out while stopped)",
                inner.leases.len()
            );
        }
        Ok(engine)
    }

    /// The raw Ed25519 public key that verifies this server's borrow tokens.
    pub fn public_key(&self) -> [u8; 32] {
        self.identity.public_keys().signing
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the maps consistent (each change is
        // made whole), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reloads licenses, sync state and peaks when another program changed them. Reads
    /// only (never blocked by a writer in WAL mode), outside the engine's lock.
    fn refresh(&self) -> Result<(), Error> {
        let mut reader = self
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let generation = db::generation(&mut reader)?;
        if generation == self.lock().generation {
            return Ok(());
        }
        let snapshot = Snapshot::load(&mut reader)?;
        let mut inner = self.lock();
        if snapshot.generation > inner.generation {
            inner.apply(snapshot);
            // More seats may have come: the queue moves.
            let features: Vec<String> = inner.queues.keys().cloned().collect();
            let now = self.clock.now();
            for feature in features {
                self.grant_waiters(&mut inner, &feature, now);
            }
        }
        Ok(())
    }

    /// Checks out a seat; when none is free and the request may wait, queues it and
    /// holds the request for up to one poll window.
    pub async fn check_out(&self, request: CheckOut) -> Result<Outcome, Error> {
        request.validate()?;
        self.refresh()?;
        let now = self.clock.now();
        let decision = {
            let mut inner = self.lock();
            self.expire(&mut inner, to_ms(now));
            match self.decide(&mut inner, &request, now) {
                Ok(decision) => decision,
                Err(refusal) => {
                    let in_use = inner.in_use_of(&request.feature);
                    drop(inner);
                    self.record_refusal(&request, &refusal, now, in_use);
                    return Err(refusal);
                }
            }
        };
        match decision {
            Decision::Granted(grant, ops) => {
                let done = self.writer.submit(ops, self.settings.write_deadline);
                Ok(Outcome::Granted(self.committed(grant, done).await?))
            }
            Decision::Queued(ticket) => self.poll(ticket).await,
        }
    }

    /// A queued client asks again: answers with its seat, its position (after up to one
    /// poll window), or `NO_SEATS` once its wait is over.
    pub async fn poll(&self, ticket: Uuid) -> Result<Outcome, Error> {
        loop {
            let now_ms = to_ms(self.clock.now());
            let ready = self.lock().ready.remove(&ticket);
            if let Some(ready) = ready {
                let grant = self.committed(ready.grant, ready.done).await?;
                return Ok(Outcome::Granted(grant));
            }
            let (notify, remaining_ms) = {
                let mut inner = self.lock();
                if inner.ready.contains_key(&ticket) {
                    // Granted just now.
                    continue;
                }
                if let Some(ended) = inner.ended.remove(&ticket) {
                    return Err(ended.refusal);
                }
                let Some(waiter) = inner.waiter_mut(ticket) else {
                    return Err(Error::refused(
                        ErrorCode::NotFound,
                        format!(
                            "queue ticket {ticket} is not waiting: its wait ended or it was not \
                             polled in time; check out again"
                        ),
                    ));
                };
                if now_ms >= waiter.deadline_ms {
                    return Err(self.leave_queue(&mut inner, ticket, now_ms));
                }
                waiter.last_seen_ms = now_ms;
                (waiter.notify.clone(), waiter.deadline_ms - now_ms)
            };
            let remaining = StdDuration::from_millis(u64::try_from(remaining_ms).unwrap_or(0));
            let window = remaining.min(self.settings.poll_window);
            let woken = tokio::time::timeout(window, notify.notified())
                .await
                .is_ok();
            if !woken && window < remaining {
                let mut inner = self.lock();
                let position = inner.position_of(ticket);
                let poll_within_seconds = self.settings.poll_window.as_secs().max(1);
                if let (Some(position), Some(waiter)) = (position, inner.waiter_mut(ticket)) {
                    waiter.last_seen_ms = to_ms(self.clock.now());
                    return Ok(Outcome::Waiting(QueueTicket {
                        ticket,
                        feature: waiter.request.feature.clone(),
                        position,
                        wait_until: from_ms(waiter.deadline_ms),
                        poll_within_seconds,
                    }));
                }
            }
        }
    }

    /// Removes a waiter whose wait is over, or whose client went away, on behalf of
    /// another request. When its time ran out, its client gets the refusal at its next
    /// poll; one that went away is told at its next poll that it was not polled in time.
    fn end_wait(&self, inner: &mut Inner, ticket: Uuid, now_ms: i64) {
        let time_ran_out = inner
            .waiter_mut(ticket)
            .is_some_and(|waiter| now_ms >= waiter.deadline_ms);
        let refusal = self.leave_queue(inner, ticket, now_ms);
        if !time_ran_out {
            return;
        }
        let ended = Ended {
            refusal,
            ended_ms: now_ms,
        };
        inner.ended.insert(ticket, ended);
    }

    /// Removes a waiter whose wait is over; returns the refusal to answer it with.
    fn leave_queue(&self, inner: &mut Inner, ticket: Uuid, now_ms: i64) -> Error {
        let Some(waiter) = inner.remove_waiter(ticket) else {
            return no_seats("the feature", 0);
        };
        let feature = &waiter.request.feature;
        let in_use = inner.in_use_of(feature);
        let seats = inner.seats_now(feature, from_ms(now_ms)).unwrap_or(0);
        self.writer.submit_eventually(vec![Op::Report(ReportRow {
            at: now_ms,
            event: Event::QueueTimeout.as_str().into(),
            feature: feature.clone(),
            user: waiter.request.user.clone(),
            host: waiter.request.host.clone(),
            lease_id: None,
            code: Some(ErrorCode::NoSeats.as_str().into()),
            in_use: count_i32(in_use),
            wait_ms: Some((now_ms - waiter.arrived_ms).max(0)),
        })]);
        Error::refused(
            ErrorCode::NoSeats,
            format!(
                "no seat of {feature} came free within {} seconds (all {seats} in use; this \
                 client was number {} in the queue); try again later",
                (waiter.deadline_ms - waiter.arrived_ms) / 1000,
                waiter.position
            ),
        )
    }

    /// Waits for a grant's row to be committed; takes the seat back when it was not.
    async fn committed(&self, grant: LeaseGrant, done: Done) -> Result<LeaseGrant, Error> {
        let outcome = match done.await {
            Ok(outcome) => outcome,
            Err(_) => Err(WriteError::Failed("the writer dropped the change".into())),
        };
        match outcome {
            Ok(()) => Ok(grant),
            Err(e) => {
                self.take_back(grant.lease_id);
                Err(write_refusal(e))
            }
        }
    }

    /// Removes a lease whose row was never committed, so its seat goes to the next.
    fn take_back(&self, id: Uuid) {
        // The seat may go to a waiter: under the licenses in force now.
        if let Err(e) = self.refresh() {
            log::warn!("reloading the licenses before returning a seat failed: {e}");
        }
        let now = self.clock.now();
        let mut inner = self.lock();
        if let Some(lease) = inner.remove(id) {
            // Its row may still come: the writer keeps order, so this delete follows it.
            self.writer
                .submit_eventually(vec![Op::Delete(id.to_string())]);
            self.grant_waiters(&mut inner, &lease.feature, now);
        }
    }

    fn decide(
        &self,
        inner: &mut Inner,
        request: &CheckOut,
        now: DateTime<Utc>,
    ) -> Result<Decision, Error> {
        inner.check_may_issue(now)?;
        let seats = inner.seats_now(&request.feature, now)?;
        if let Some(borrow) = request.borrow {
            inner.borrow_until(&request.feature, borrow, now)?;
        }
        inner.check_client_rules(request)?;
        // Those who waited first come first: a newcomer does not pass a waiter who could
        // take the seat.
        let queue_len = inner.queues.get(&request.feature).map_or(0, VecDeque::len);
        let seat = inner.seat_for(request, seats);
        if seat.is_ok() && !inner.waiter_could_take(&request.feature, seats) {
            let (grant, ops) = self.grant(inner, request, now, None)?;
            return Ok(Decision::Granted(grant, ops));
        }
        if request.wait.is_zero() {
            return Err(match seat {
                Err(Some(reserved)) => reserved,
                _ => no_seats(&request.feature, seats),
            });
        }
        if inner.tickets.len() >= self.settings.queue_limit {
            return Err(Error::refused(
                ErrorCode::NoSeats,
                format!(
                    "all {seats} seats of {} are in use and the queue is full ({} waiting); \
                     try again later",
                    request.feature,
                    inner.tickets.len()
                ),
            ));
        }
        let ticket = Uuid::new_v4();
        let now_ms = to_ms(now);
        let wait_ms = i64::try_from(request.wait.as_millis()).unwrap_or(i64::MAX);
        inner.tickets.insert(ticket, request.feature.clone());
        let queue = inner.queues.entry(request.feature.clone()).or_default();
        queue.push_back(Waiter {
            ticket,
            request: request.clone(),
            arrived_ms: now_ms,
            deadline_ms: now_ms.saturating_add(wait_ms),
            position: queue_len + 1,
            last_seen_ms: now_ms,
            notify: Arc::new(Notify::new()),
        });
        log::debug!(
            "check-out queued feature={} user={} position={}",
            request.feature,
            request.user,
            queue_len + 1
        );
        Ok(Decision::Queued(ticket))
    }

    /// Takes a seat in memory; returns the grant and the rows to write for it. A borrow
    /// is checked against the licenses in force now (a waiter's licenses may have changed
    /// since it arrived) and its token signed before anything is taken: a borrow that
    /// cannot be given fails whole, never as a plain seat.
    fn grant(
        &self,
        inner: &mut Inner,
        request: &CheckOut,
        now: DateTime<Utc>,
        waited: Option<(usize, i64)>,
    ) -> Result<(LeaseGrant, Vec<Op>), Error> {
        let now_ms = to_ms(now);
        let id = Uuid::new_v4();
        let borrowed_until = request
            .borrow
            .map(|b| inner.borrow_until(&request.feature, b, now))
            .transpose()?;
        let expires_at = borrowed_until.unwrap_or(now + self.settings.lease_length);
        let borrow_token = borrowed_until
            .map(|until| {
                BorrowToken {
                    server_id: self.server_id,
                    lease_id: id,
                    feature: request.feature.clone(),
                    user: request.user.clone(),
                    host: request.host.clone(),
                    issued_at: now,
                    until,
                }
                .sign(&self.identity)
                .context("signing a borrow token")
            })
            .transpose()?;
        let row = LeaseRow {
            id: id.to_string(),
            feature: request.feature.clone(),
            client: request.client.clone(),
            granted_at: now_ms,
            expires_at: to_ms(expires_at),
            user: request.user.clone(),
            host: request.host.clone(),
            borrowed: borrow_token.is_some(),
        };
        inner.insert(id, &row);
        let in_use = inner.in_use_of(&request.feature);
        let mut ops = Vec::with_capacity(4);
        if in_use > inner.peaks.get(&request.feature).copied().unwrap_or(0) {
            inner.peaks.insert(request.feature.clone(), in_use);
            ops.push(Op::Peak {
                feature: request.feature.clone(),
                peak: in_use,
            });
        }
        if let Some(mark) = inner.high_water_to_persist(now_ms) {
            inner.stored_high_water = Some(mark);
            ops.push(Op::RaiseHighWater(mark));
        }
        let (event, wait_ms) = match waited {
            Some((_, ms)) => (Event::QueueGranted, Some(ms)),
            None if row.borrowed => (Event::Borrow, None),
            None => (Event::CheckOut, None),
        };
        ops.push(Op::Report(ReportRow {
            at: now_ms,
            event: event.as_str().into(),
            feature: request.feature.clone(),
            user: request.user.clone(),
            host: request.host.clone(),
            lease_id: Some(row.id.clone()),
            code: None,
            in_use: count_i32(in_use),
            wait_ms,
        }));
        ops.insert(0, Op::Insert(row));
        log::debug!("lease granted lease_id={id} feature={}", request.feature);
        let grant = LeaseGrant {
            lease_id: id,
            feature: request.feature.clone(),
            user: request.user.clone(),
            host: request.host.clone(),
            expires_at,
            heartbeat_seconds: borrowed_until.is_none().then(|| self.heartbeat_seconds()),
            queue_position: waited.map(|(position, _)| position),
            waited_ms: waited.map(|(_, ms)| ms),
            borrow_token,
        };
        Ok((grant, ops))
    }

    /// Gives free seats of `feature` to its waiters, first come first served.
    fn grant_waiters(&self, inner: &mut Inner, feature: &str, now: DateTime<Utc>) {
        let now_ms = to_ms(now);
        let window = self.settings.poll_window;
        while let Some(front) = inner.queues.get(feature).and_then(VecDeque::front) {
            let ticket = front.ticket;
            if now_ms >= front.deadline_ms || gone(front, now_ms, window) {
                // Its wait is over, or its client went away.
                self.end_wait(inner, ticket, now_ms);
                continue;
            }
            // The checks of a fresh check-out apply to a waiter too. A refusal that no
            // returned seat can lift (the license was removed or ended, the server is
            // out of sync or its clock went back) ends every wait of the feature now.
            let seats = match inner
                .check_may_issue(now)
                .and_then(|()| inner.seats_now(feature, now))
            {
                Ok(seats) => seats,
                Err(refusal) => {
                    self.refuse_waiters(inner, feature, &refusal, now_ms);
                    break;
                }
            };
            // The first waiter the rules let take a seat gets it (one kept out by a
            // reservation or a limit lets those behind it pass).
            let Some(ticket) = inner.first_eligible(feature, seats) else {
                break;
            };
            let Some(waiter) = inner.remove_waiter(ticket) else {
                break;
            };
            let waited_ms = (now_ms - waiter.arrived_ms).max(0);
            let granted = self.grant(
                inner,
                &waiter.request,
                now,
                Some((waiter.position, waited_ms)),
            );
            let (grant, ops) = match granted {
                Ok(granted) => granted,
                Err(refusal) => {
                    // This waiter's borrow can no longer be given: it is told so, and
                    // the seat goes to the next.
                    self.refuse_waiter(inner, waiter, refusal, now_ms);
                    continue;
                }
            };
            let done = self.writer.submit(ops, self.settings.write_deadline);
            inner.ready.insert(
                ticket,
                Ready {
                    grant,
                    done,
                    granted_ms: now_ms,
                },
            );
            waiter.notify.notify_one();
        }
    }

    /// Ends every wait of `feature` with `refusal`, answered at each client's next poll
    /// (a poll held open now is woken).
    fn refuse_waiters(&self, inner: &mut Inner, feature: &str, refusal: &Error, now_ms: i64) {
        let tickets: Vec<Uuid> = inner
            .queues
            .get(feature)
            .into_iter()
            .flatten()
            .map(|w| w.ticket)
            .collect();
        for ticket in tickets {
            if let Some(waiter) = inner.remove_waiter(ticket) {
                let refusal = Error::refused(
                    refusal.code().unwrap_or(ErrorCode::Unavailable),
                    refusal.to_string(),
                );
                self.refuse_waiter(inner, waiter, refusal, now_ms);
            }
        }
    }

    /// Ends one wait (the waiter already left the queue) with `refusal`: recorded in the
    /// report log, kept for the client's next poll, and any poll held open is woken.
    fn refuse_waiter(&self, inner: &mut Inner, waiter: Waiter, refusal: Error, now_ms: i64) {
        let in_use = inner.in_use_of(&waiter.request.feature);
        let refusal = match refusal {
            // Unexpected causes are logged here and never sent.
            Error::Internal(cause) => {
                log::error!(
                    "a queued check-out failed feature={}: {cause:#}",
                    waiter.request.feature
                );
                Error::refused(
                    ErrorCode::Unavailable,
                    "the license server could not give this seat; try again",
                )
            }
            other => other,
        };
        self.record_refusal(&waiter.request, &refusal, from_ms(now_ms), in_use);
        inner.ended.insert(
            waiter.ticket,
            Ended {
                refusal,
                ended_ms: now_ms,
            },
        );
        waiter.notify.notify_one();
    }

    /// Forgets waiters that stopped polling and returns grants nobody collected.
    fn drop_departed(&self, inner: &mut Inner, now_ms: i64) {
        let window = self.settings.poll_window;
        let departed: Vec<Uuid> = inner
            .queues
            .values()
            .flatten()
            .filter(|w| now_ms >= w.deadline_ms || gone(w, now_ms, window))
            .map(|w| w.ticket)
            .collect();
        for ticket in departed {
            self.end_wait(inner, ticket, now_ms);
        }
        let limit = two_windows_ms(window);
        inner
            .ended
            .retain(|_, ended| now_ms - ended.ended_ms <= limit);
        let uncollected: Vec<Uuid> = inner
            .ready
            .iter()
            .filter(|(_, r)| now_ms - r.granted_ms > limit)
            .map(|(t, _)| *t)
            .collect();
        for ticket in uncollected {
            if let Some(ready) = inner.ready.remove(&ticket) {
                log::info!(
                    "a queued client did not collect its seat; returned lease_id={}",
                    ready.grant.lease_id
                );
                self.release(inner, ready.grant.lease_id, now_ms);
            }
        }
    }

    /// Renews a live lease for another lease length.
    pub async fn heartbeat(&self, id: Uuid) -> Result<LeaseGrant, Error> {
        self.refresh()?;
        let now = self.clock.now();
        let now_ms = to_ms(now);
        let (grant, ops) = {
            let mut inner = self.lock();
            self.expire(&mut inner, now_ms);
            let (feature, user, host, borrowed) = match inner.leases.get(&id) {
                Some(l) => (
                    l.feature.clone(),
                    l.user.clone(),
                    l.host.clone(),
                    l.borrowed,
                ),
                None => return Err(lease_unknown(id)),
            };
            if borrowed {
                return Err(Error::refused(
                    ErrorCode::Malformed,
                    format!("lease {id} is a borrowed seat: it needs no heartbeat"),
                ));
            }
            inner.check_may_issue(now)?;
            // A lease of a feature whose license was removed or ended is not renewed.
            // Over a lowered seat count the newest leases are not renewed either, so that
            // the count in use comes down to the new number of seats as they run out.
            let seats = inner.seats_now(&feature, now)?;
            let in_use = inner.in_use_of(&feature);
            if in_use > seats && inner.rank_in_feature(id) >= seats {
                return Err(Error::refused(
                    ErrorCode::NoSeats,
                    format!(
                        "the license for {feature} now has {seats} seats, fewer than are in \
                         use; this lease is not renewed (it ends at its expiry)"
                    ),
                ));
            }
            let expires_at = now + self.settings.lease_length;
            let mut ops = vec![Op::Renew {
                id: id.to_string(),
                expires_at: to_ms(expires_at),
            }];
            if let Some(mark) = inner.high_water_to_persist(now_ms) {
                inner.stored_high_water = Some(mark);
                ops.push(Op::RaiseHighWater(mark));
            }
            let grant = LeaseGrant {
                lease_id: id,
                feature: feature.to_string(),
                user,
                host,
                expires_at,
                heartbeat_seconds: Some(self.heartbeat_seconds()),
                queue_position: None,
                waited_ms: None,
                borrow_token: None,
            };
            (grant, ops)
        };
        let done = self.writer.submit(ops, self.settings.write_deadline);
        match done.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(write_refusal(e)),
            Err(_) => return Err(write_refusal(WriteError::Failed("writer gone".into()))),
        }
        // Stored: now the index follows (unless the lease ended meanwhile).
        let mut inner = self.lock();
        let expires_ms = to_ms(grant.expires_at);
        if let Some(lease) = inner.leases.get_mut(&id) {
            let old = lease.expires_ms;
            if expires_ms > old {
                lease.expires_ms = expires_ms;
                inner.by_expiry.remove(&(old, id));
                inner.by_expiry.insert((expires_ms, id));
            }
        }
        Ok(grant)
    }

    /// Returns a lease's seat, at once. Allowed whatever the sync state: giving back
    /// never hurts.
    pub fn check_in(&self, id: Uuid) -> Result<(), Error> {
        // The seat may go to a waiter: under the licenses in force now.
        self.refresh()?;
        let now_ms = to_ms(self.clock.now());
        let mut inner = self.lock();
        self.expire(&mut inner, now_ms);
        if !self.release(&mut inner, id, now_ms) {
            return Err(lease_unknown(id));
        }
        log::debug!("lease returned lease_id={id}");
        Ok(())
    }

    /// Frees a lease's seat (the queue gets it) and records it; false if unknown.
    fn release(&self, inner: &mut Inner, id: Uuid, now_ms: i64) -> bool {
        let Some(lease) = inner.remove(id) else {
            return false;
        };
        let in_use = inner.in_use_of(&lease.feature);
        let event = if lease.borrowed {
            Event::Return
        } else {
            Event::CheckIn
        };
        self.writer.submit_eventually(vec![
            Op::Delete(id.to_string()),
            Op::Report(lease_report(event, &lease, id, now_ms, in_use)),
        ]);
        self.grant_waiters(inner, &lease.feature, from_ms(now_ms));
        true
    }

    /// Seats per feature: total (valid now), in use, free, waiting.
    pub fn features(&self) -> Result<Vec<FeatureSeats>, Error> {
        self.refresh()?;
        let now = self.clock.now();
        let mut inner = self.lock();
        self.expire(&mut inner, to_ms(now));
        let mut names: Vec<&String> = inner.licenses.keys().collect();
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| {
                let licenses = inner.licenses.get(name).cloned().unwrap_or_default();
                let mut seats = feature_seats(name, licenses, inner.in_use_of(name), now);
                seats.queued = inner.queues.get(name).map_or(0, VecDeque::len);
                seats
            })
            .collect())
    }

    /// Waits until every change queued so far is committed (or `within` passes while
    /// another program holds the database); `serve` calls it when it stops, so a seat
    /// returned just before is not found again at the next start.
    pub async fn flush(&self, within: StdDuration) -> Result<(), WriteError> {
        match self.writer.submit(Vec::new(), within).await {
            Ok(result) => result,
            Err(_) => Err(WriteError::Failed("the writer thread is gone".into())),
        }
    }

    /// Periodic housekeeping: forgets expired leases (their seats go to the queue),
    /// deletes their rows, stores the clock high-water mark.
    pub fn sweep(&self) -> Result<usize, Error> {
        self.refresh()?;
        let now = self.clock.now();
        let now_ms = to_ms(now);
        let mut inner = self.lock();
        let expired = self.expire(&mut inner, now_ms);
        self.drop_departed(&mut inner, now_ms);
        let mut ops = vec![Op::DeleteExpired { now_ms }];
        if validity::check_clock(now, inner.high_water).is_ok() {
            inner.high_water = Some(inner.high_water.map_or(now, |m| m.max(now)));
            if let Some(mark) = inner.high_water_to_persist(now_ms) {
                inner.stored_high_water = Some(mark);
                ops.push(Op::RaiseHighWater(mark));
            }
        }
        self.writer.submit_eventually(ops);
        Ok(expired)
    }

    /// Forgets the leases whose time is up, reports them, and gives their seats to the
    /// queue; returns how many.
    fn expire(&self, inner: &mut Inner, now_ms: i64) -> usize {
        let mut ops = Vec::new();
        let mut features = Vec::new();
        while let Some(&(expires, id)) = inner.by_expiry.first() {
            if expires > now_ms {
                break;
            }
            if let Some(lease) = inner.remove(id) {
                let in_use = inner.in_use_of(&lease.feature);
                let event = Event::Expiry;
                ops.push(Op::Delete(id.to_string()));
                ops.push(Op::Report(lease_report(event, &lease, id, expires, in_use)));
                features.push(lease.feature);
            } else {
                inner.by_expiry.remove(&(expires, id));
            }
        }
        let count = features.len();
        self.writer.submit_eventually(ops);
        if !inner.queues.is_empty() {
            features.dedup();
            let now = from_ms(now_ms);
            for feature in features {
                self.grant_waiters(inner, &feature, now);
            }
        }
        count
    }

    fn record_refusal(&self, request: &CheckOut, refusal: &Error, now: DateTime<Utc>, in_use: u32) {
        let Some(code) = refusal.code() else {
            return;
        };
        self.writer.submit_eventually(vec![Op::Report(ReportRow {
            at: to_ms(now),
            event: Event::Refusal.as_str().into(),
            feature: request.feature.clone(),
            user: request.user.clone(),
            host: request.host.clone(),
            lease_id: None,
            code: Some(code.as_str().into()),
            in_use: count_i32(in_use),
            wait_ms: None,
        })]);
    }

    /// Moves the committed lease writes from the write-ahead log into the database file
    /// (the writer never does, see [`LeaseWriter`]); called every second by the sweeper.
    /// `PASSIVE` waits for nobody: what readers still use is copied next time.
    pub fn checkpoint(&self) -> Result<(), Error> {
        use diesel::connection::SimpleConnection;
        let mut conn = self
            .checkpointer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);")?;
        Ok(())
    }

    /// Keeps the report log within its age and size bounds.
    pub fn prune_report_log(&self) {
        self.writer.submit_eventually(vec![Op::PruneReport {
            now: self.clock.now(),
            keep_days: self.settings.report_days,
            keep_rows: self.settings.report_rows,
        }]);
    }

    fn heartbeat_seconds(&self) -> i64 {
        (self.settings.lease_length.num_seconds() / 3).max(1)
    }
}

impl Snapshot {
    fn load(conn: &mut SqliteConnection) -> QueryResult<Self> {
        conn.transaction(|c| {
            Ok(Self {
                generation: db::generation(c)?,
                options: db::load_options(c)?,
                state: db::load_sync_state(c)?,
                licenses: db::load_licenses(c)?,
                peaks: db::load_peaks(c)?,
            })
        })
    }
}

impl Inner {
    fn apply(&mut self, snapshot: Snapshot) {
        let state = snapshot.state;
        self.valid_until = state.valid_until.map(from_ms);
        // The stored mark only goes down when a direct synchronization proved the clock
        // right (`db::reset_high_water`): then the one in memory is wrong too.
        let lowered = matches!(
            (self.stored_high_water, state.clock_high_water),
            (Some(old), Some(new)) if new < old
        );
        self.stored_high_water = state.clock_high_water;
        let stored = state.clock_high_water.map(from_ms);
        self.high_water = match (self.high_water, stored) {
            (_, Some(b)) if lowered => Some(b),
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.licenses.clear();
        for row in snapshot.licenses {
            self.licenses
                .entry(row.feature.clone())
                .or_default()
                .push(license_from_row(&row));
        }
        self.peaks = snapshot
            .peaks
            .into_iter()
            .map(|(f, p)| (f, u32::try_from(p).unwrap_or(0)))
            .collect();
        self.options.offer(snapshot.options);
        self.generation = snapshot.generation;
    }

    fn insert(&mut self, id: Uuid, row: &LeaseRow) {
        let feature = match self.in_use.get_key_value(row.feature.as_str()) {
            Some((key, _)) => key.clone(),
            None => Arc::from(row.feature.as_str()),
        };
        *self.in_use.entry(feature.clone()).or_insert(0) += 1;
        let holders = self.holders.entry(feature.clone()).or_default();
        *holders.users.entry(row.user.clone()).or_insert(0) += 1;
        *holders.hosts.entry(row.host.clone()).or_insert(0) += 1;
        self.by_expiry.insert((row.expires_at, id));
        self.leases.insert(
            id,
            LiveLease {
                feature,
                user: row.user.clone(),
                host: row.host.clone(),
                granted_ms: row.granted_at,
                expires_ms: row.expires_at,
                borrowed: row.borrowed,
            },
        );
    }

    fn remove(&mut self, id: Uuid) -> Option<LiveLease> {
        let lease = self.leases.remove(&id)?;
        self.by_expiry.remove(&(lease.expires_ms, id));
        if let Some(count) = self.in_use.get_mut(&lease.feature) {
            *count = count.saturating_sub(1);
        }
        if let Some(holders) = self.holders.get_mut(&lease.feature) {
            holders.release(&lease.user, &lease.host);
        }
        Some(lease)
    }

    fn waiter_mut(&mut self, ticket: Uuid) -> Option<&mut Waiter> {
        let feature = self.tickets.get(&ticket)?;
        self.queues
            .get_mut(feature)?
            .iter_mut()
            .find(|w| w.ticket == ticket)
    }

    /// Where a waiter stands now (1 = next).
    fn position_of(&self, ticket: Uuid) -> Option<usize> {
        let feature = self.tickets.get(&ticket)?;
        self.queues
            .get(feature)?
            .iter()
            .position(|w| w.ticket == ticket)
            .map(|i| i + 1)
    }

    fn remove_waiter(&mut self, ticket: Uuid) -> Option<Waiter> {
        let feature = self.tickets.remove(&ticket)?;
        let queue = self.queues.get_mut(&feature)?;
        let at = queue.iter().position(|w| w.ticket == ticket)?;
        let waiter = queue.remove(at);
        if queue.is_empty() {
            self.queues.remove(&feature);
        }
        waiter
    }

    fn holders_of(&self, feature: &str) -> &Holders {
        static NONE: std::sync::OnceLock<Holders> = std::sync::OnceLock::new();
        self.holders
            .get(feature)
            .unwrap_or_else(|| NONE.get_or_init(Holders::default))
    }

    /// The options file's `exclude`, `include` and `max` rules for this client.
    fn check_client_rules(&self, request: &CheckOut) -> Result<(), Error> {
        let feature = request.feature.as_str();
        let in_force = self.options.current();
        if !in_force.has_rules(feature) {
            return Ok(());
        }
        let holders = self.holders_of(feature);
        in_force.check_client(feature, &request.user, &request.host, holders)
    }

    /// Whether `request` may take a seat now. `Err(None)`: none is free; `Err(Some)`:
    /// the free ones are reserved for others (or a limit holds it back).
    fn seat_for(&self, request: &CheckOut, seats: u32) -> Result<(), Option<Error>> {
        let feature = request.feature.as_str();
        let in_use = self.in_use_of(feature);
        if in_use >= seats {
            return Err(None);
        }
        let in_force = self.options.current();
        if !in_force.has_rules(feature) {
            return Ok(());
        }
        self.check_client_rules(request).map_err(Some)?;
        let holders = self.holders_of(feature);
        let (owed, rule) =
            in_force.reserved_for_others(feature, &request.user, &request.host, holders);
        if in_use.saturating_add(owed) >= seats {
            return Err(rule.map(|r| options::reserved_refusal(feature, r)));
        }
        Ok(())
    }

    /// The first waiter of `feature` that may take a seat now.
    fn first_eligible(&self, feature: &str, seats: u32) -> Option<Uuid> {
        self.queues
            .get(feature)?
            .iter()
            .find(|w| self.seat_for(&w.request, seats).is_ok())
            .map(|w| w.ticket)
    }

    fn waiter_could_take(&self, feature: &str, seats: u32) -> bool {
        self.queues.contains_key(feature) && self.first_eligible(feature, seats).is_some()
    }

    fn in_use_of(&self, feature: &str) -> u32 {
        self.in_use.get(feature).copied().unwrap_or(0)
    }

    /// How many live leases of the same feature are older than lease `id` (by grant
    /// time, then id). A scan of the live leases: only called over a lowered count.
    fn rank_in_feature(&self, id: Uuid) -> u32 {
        let Some(lease) = self.leases.get(&id) else {
            return 0;
        };
        let key = (lease.granted_ms, id);
        let older = self
            .leases
            .iter()
            .filter(|(other_id, other)| {
                other.feature == lease.feature && (other.granted_ms, **other_id) < key
            })
            .count();
        u32::try_from(older).unwrap_or(u32::MAX)
    }

    /// The refusals that come before any license check: clock, then sync state.
    fn check_may_issue(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        if validity::check_clock(now, self.high_water).is_err() {
            return Err(clock_rollback(self.high_water));
        }
        self.high_water = Some(self.high_water.map_or(now, |m| m.max(now)));
        sync_refusal(validity::sync_state(self.valid_until, now)).map_or(Ok(()), Err)
    }

    /// The stored high-water mark to write now, if the one in memory got a minute ahead.
    fn high_water_to_persist(&self, now_ms: i64) -> Option<i64> {
        let mark = self.high_water.map(to_ms)?.max(now_ms);
        match self.stored_high_water {
            Some(stored) if mark - stored < HIGH_WATER_PERSIST_MS => None,
            _ => Some(mark),
        }
    }

    /// When a borrow of `feature` asked for `wanted` ends: at most the longest borrow of
    /// a license valid now, that license's end and the server's 366-day validity.
    fn borrow_until(
        &self,
        feature: &str,
        wanted: StdDuration,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, Error> {
        let wanted = Duration::from_std(wanted).unwrap_or(Duration::MAX);
        let best = self
            .licenses
            .get(feature)
            .into_iter()
            .flatten()
            .filter(|l| l.check(now).is_ok())
            .filter_map(|l| {
                let limit = now + Duration::hours(i64::from(l.max_borrow_hours?));
                Some(l.valid_until.map_or(limit, |end| end.min(limit)))
            })
            .max()
            .ok_or_else(|| {
                Error::refused(
                    ErrorCode::Malformed,
                    format!(
                        "the license for {feature} does not allow borrowing; check out without \
                         borrow_hours, or ask Solme for a borrowable license"
                    ),
                )
            })?;
        let mut until = best.min(now + wanted);
        if let Some(valid_until) = self.valid_until {
            until = until.min(valid_until);
        }
        if until <= now {
            return Err(Error::refused(
                ErrorCode::LicenseExpired,
                format!("a seat of {feature} cannot be borrowed: the license ends now"),
            ));
        }
        Ok(until)
    }

    fn seats_now(&self, feature: &str, now: DateTime<Utc>) -> Result<u32, Error> {
        let licenses = self.licenses.get(feature).ok_or_else(|| {
            Error::refused(
                ErrorCode::FeatureUnknown,
                format!("this server holds no license for the feature {feature:?}"),
            )
        })?;
        seats_valid_now(licenses, now).ok_or_else(|| {
            Error::refused(
                ErrorCode::LicenseExpired,
                format!("the license for {feature} is not valid at this date"),
            )
        })
    }
}

fn lease_report(event: Event, lease: &LiveLease, id: Uuid, at: i64, in_use: u32) -> ReportRow {
    ReportRow {
        at,
        event: event.as_str().into(),
        feature: lease.feature.to_string(),
        user: lease.user.clone(),
        host: lease.host.clone(),
        lease_id: Some(id.to_string()),
        code: None,
        in_use: count_i32(in_use),
        wait_ms: None,
    }
}

fn count_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn no_seats(feature: &str, seats: u32) -> Error {
    Error::refused(
        ErrorCode::NoSeats,
        format!(
            "all {seats} seats of {feature} are in use; try again later, or ask to wait \
             for a seat (wait_seconds)"
        ),
    )
}

fn write_refusal(err: WriteError) -> Error {
    match err {
        WriteError::Temporary => Error::DatabaseBusy(anyhow::anyhow!(
            "the database stayed locked by another program, or full, for longer than the write wait"
        )),
        WriteError::Failed(e) => Error::Internal(anyhow::anyhow!("storing the lease: {e}")),
    }
}

/// Sum of the seats of the licenses valid at `now`; `None` when none is.
pub fn seats_valid_now(licenses: &[License], now: DateTime<Utc>) -> Option<u32> {
    let valid: Vec<&License> = licenses.iter().filter(|l| l.check(now).is_ok()).collect();
    if valid.is_empty() {
        None
    } else {
        Some(
            valid
                .iter()
                .map(|l| l.seats)
                .fold(0u32, u32::saturating_add),
        )
    }
}

/// The listing entry of one feature.
pub fn feature_seats(
    name: &str,
    licenses: Vec<License>,
    in_use: u32,
    now: DateTime<Utc>,
) -> FeatureSeats {
    let total = seats_valid_now(&licenses, now);
    FeatureSeats {
        feature: name.to_owned(),
        seats_total: total.unwrap_or(0),
        in_use,
        free: total.unwrap_or(0).saturating_sub(in_use),
        state: if total.is_some() {
            SeatsState::Ok
        } else {
            SeatsState::LicenseExpired
        },
        queued: 0,
        licenses,
    }
}

/// The refusal that goes with a sync state, with a message for the client's user.
pub fn sync_refusal(state: SyncState) -> Option<Error> {
    match state {
        SyncState::NeverSynced => Some(Error::refused(
            ErrorCode::NotSynchronized,
            "this license server has never been synchronized with Solme; \
             ask its administrator to synchronize it",
        )),
        SyncState::Expired { valid_until } => Some(Error::refused(
            ErrorCode::SyncExpired,
            format!(
                "this license server's last synchronization ran out on {}; \
                 ask its administrator to synchronize it",
                valid_until.format("%Y-%m-%d %H:%M UTC")
            ),
        )),
        SyncState::Synchronized { .. } | SyncState::Warning { .. } => None,
    }
}

pub fn clock_rollback(high_water: Option<DateTime<Utc>>) -> Error {
    let seen = high_water
        .map(|m| m.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    Error::refused(
        ErrorCode::ClockRollback,
        format!(
            "the system clock is behind a time this license server has already seen ({seen}); \
             correct the clock. If the clock is right and that time was wrong, ask the \
             administrator to synchronize directly (`local-server sync`): a successful \
             synchronization with Solme's server sets that time back"
        ),
    )
}

pub fn license_from_row(row: &db::LicenseRow) -> License {
    License {
        feature: row.feature.clone(),
        seats: u32::try_from(row.seats).unwrap_or(0),
        valid_from: row.valid_from.map(from_ms),
        valid_until: row.valid_until.map(from_ms),
        max_borrow_hours: row.max_borrow_hours.and_then(|h| u32::try_from(h).ok()),
    }
}

fn lease_unknown(id: Uuid) -> Error {
    Error::refused(
        ErrorCode::LeaseUnknown,
        format!("lease {id} is not known: it expired or was returned; check out a new one"),
    )
}

fn validate_text(what: &str, value: &str, max: usize) -> Result<(), Error> {
    if value.trim().is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(Error::refused(
            ErrorCode::Malformed,
            format!("{what} must be 1 to {max} printable characters"),
        ));
    }
    Ok(())
}

/// A user or host name: short, printable, no spaces (it appears in reports and rules).
fn validate_name(what: &str, value: &str) -> Result<(), Error> {
    let printable = value
        .chars()
        .all(|c| c.is_ascii_graphic() || (!c.is_ascii() && !c.is_control()));
    if value.is_empty() || value.len() > MAX_NAME_LEN || !printable {
        return Err(Error::refused(
            ErrorCode::Malformed,
            format!("{what} must be 1 to {MAX_NAME_LEN} printable characters without spaces"),
        ));
    }
    Ok(())
}

/// A waiter whose client has not asked for two poll windows has gone away.
fn gone(waiter: &Waiter, now_ms: i64, window: StdDuration) -> bool {
    now_ms - waiter.last_seen_ms > two_windows_ms(window)
}

fn two_windows_ms(window: StdDuration) -> i64 {
    2 * i64::try_from(window.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Seats of one feature held per user and per host.
#[derive(Default)]
struct Holders {
    users: HashMap<String, u32>,
    hosts: HashMap<String, u32>,
}

impl Holders {
    fn release(&mut self, user: &str, host: &str) {
        for (map, key) in [(&mut self.users, user), (&mut self.hosts, host)] {
            if let Some(n) = map.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

impl Holdings for Holders {
    fn by_user(&self, user: &str) -> u32 {
        self.users.get(user).copied().unwrap_or(0)
    }

    fn by_host(&self, host: &str) -> u32 {
        self.hosts.get(host).copied().unwrap_or(0)
    }
}
