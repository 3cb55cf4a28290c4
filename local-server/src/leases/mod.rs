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
//! The manager verbs run in other processes and change licenses and the sync state; the
//! only lease change they make is a take-back (`crate::take_back`), which deletes the
//! lease's row and leaves a `taken_back` row for the engine. The `changes` table (kept by
//! triggers) tells the engine when they did, and it then reloads licenses, sync state,
//! usage peaks and take-backs not applied yet (a few rows), on a reading connection of
//! its own; a lease taken back leaves the index and its seat goes to the queue.
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
//!
//! ## One job per file
//!
//! - `mod.rs` (here): [`LeaseEngine`], its lock, and its operations (check-out, poll,
//!   heartbeat, check-in, sweep); the only file that reads the clock, takes the lock,
//!   wakes waiting requests and submits writes.
//! - [`request`]: what a client asks for ([`CheckOut`]), its validation, and the
//!   answers it gets ([`Outcome`]).
//! - `index`: the live leases, counted per feature, user and host.
//! - `queue`: the wait queue's state machine.
//! - [`policy`]: whether a seat may be issued: clock and sync-state refusals, seats
//!   valid now, borrow limits, the options file's verdict on a client. `import`,
//!   `status` and `sync` use it too.
//! - `report_rows`: the report-log rows the engine writes.
//! - [`inherited`]: borrowed seats across a reinstall: the ones a sync request reports,
//!   and the ones a license file takes over from the previous installation (the import
//!   keeps them, `state` takes them into the index).
//! - `state`: the engine's state under its lock (licenses in force, clock mark, index,
//!   queue) and the decisions made over it, which return the rows to write.
//! - [`writer`]: the thread that commits the engine's changes.
//!
//! ## Invariants
//!
//! - `queue` and `policy` do no I/O, read no clock and take no lock: every time they
//!   use is a parameter, so their tests choose it. `index`, `request` and
//!   `report_rows` neither.
//! - The options file's rules (`crate::options`) know no lease engine: they judge a
//!   client against the seats held ([`crate::options::Holdings`]), which `index`
//!   provides.
//! - No file of this folder imports `mod.rs`, and none imports a file that imports it
//!   back: `request` is a leaf; `index`, `inherited` and `writer` use only the
//!   database types;
//!   `queue` and `policy` use `request`; `report_rows` uses `request` and `index`;
//!   `state` uses them all, and only `mod.rs` uses `state`.
//! - A check-out evaluates its client's options rules once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use shared_proto::{BorrowToken, Clock, ErrorCode, ServerIdentity};
use tokio::sync::Notify;
use uuid::Uuid;

use self::index::Index;
use self::policy::Seat;
use self::queue::{Over, Poll, WaitQueue, Waiter};
use self::state::{Collect, Inner, Snapshot};
use self::writer::{Done, LeaseWriter, Op, WriteError};
use crate::db::{self, from_ms, to_ms, LeaseRow};
use crate::error::Error;
use crate::options;
use crate::report_log::Event;
use crate::take_back;

mod index;
pub mod inherited;
pub mod policy;
mod queue;
mod report_rows;
pub mod request;
mod state;
pub mod writer;

pub use self::policy::{
    clock_rollback, feature_seats, license_from_row, seats_valid_now, sync_refusal, FeatureSeats,
    SeatsState,
};
pub use self::request::{
    CheckOut, LeaseGrant, Outcome, QueueTicket, MAX_BORROW_HOURS, MAX_CLIENT_LEN, MAX_FEATURE_LEN,
    MAX_NAME_LEN, MAX_WAIT_SECONDS,
};

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

/// What a poll does next, decided under the lock.
enum Next {
    Collect(Collect),
    /// Hold the request at most `remaining_ms`, or until `notify`.
    Wait {
        notify: Arc<Notify>,
        remaining_ms: i64,
    },
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
        // The seats taken over before this start are in the leases (or were returned):
        // read before the leases, so one imported in between is taken in once, later.
        let adopted = inherited::load(&mut reader)
            .context("loading the borrowed seats taken over")?
            .iter()
            .filter_map(|row| Uuid::parse_str(&row.lease_id).ok())
            .collect();
        let rows = db::load_live_leases(&mut reader, i64::MIN).context("loading leases")?;
        let mut inner = Inner {
            generation: -1,
            valid_until: None,
            licenses: HashMap::new(),
            high_water: None,
            stored_high_water: None,
            index: Index::default(),
            options: options::InForce::default(),
            peaks: HashMap::new(),
            queue: WaitQueue::new(settings.queue_limit, settings.poll_window),
            taken_back: HashMap::new(),
            adopted,
            pair: None,
        };
        for row in rows {
            let Ok(id) = Uuid::parse_str(&row.id) else {
                log::warn!("ignoring a lease row with a malformed id {:?}", row.id);
                continue;
            };
            inner.index.insert(id, &row);
        }
        for row in take_back::all(&mut reader).context("loading the leases taken back")? {
            if let Ok(id) = Uuid::parse_str(&row.lease_id) {
                inner.taken_back.insert(id, row);
            }
        }
        let mut snapshot =
            Snapshot::load(&mut reader).context("loading licenses and sync state")?;
        let pending = std::mem::take(&mut snapshot.taken_back);
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
            // Taken back while no server ran, or before this one recorded it.
            engine.apply_take_backs(&mut inner, pending, true, to_ms(now));
            let expired = engine.expire(&mut inner, to_ms(now));
            log::info!(
                "lease index rebuilt: {} live leases ({expired} ran out while stopped)",
                inner.index.len()
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
        // One small read tells whether anything changed since the last reload.
        let generation = db::generation(&mut reader)?;
        if generation == self.lock().generation {
            return Ok(());
        }
        let mut snapshot = Snapshot::load(&mut reader)?;
        let mut inner = self.lock();
        // Another request may have applied a newer one meanwhile.
        if snapshot.generation > inner.generation {
            let pending = std::mem::take(&mut snapshot.taken_back);
            inner.apply(snapshot);
            let now = self.clock.now();
            self.apply_take_backs(&mut inner, pending, false, to_ms(now));
            // More seats may have come (or were taken back): the queue moves.
            for feature in inner.queue.features() {
                self.grant_waiters(&mut inner, &feature, now);
            }
        }
        Ok(())
    }

    /// Applies the changes other programs made (licenses, sync state, options, seats
    /// taken back) now rather than at the next request; the manager API calls it after a
    /// take-back so that its answer comes with the seat free.
    pub fn reload(&self) -> Result<(), Error> {
        self.refresh()
    }

    /// `decide` over this server's pair as the engine holds it now (changes other
    /// programs made are read first); `None` for a server without a pair.
    pub fn with_pair<T>(
        &self,
        decide: impl FnOnce(Option<&crate::pair::store::PairRow>) -> T,
    ) -> Result<T, Error> {
        self.refresh()?;
        Ok(decide(self.lock().pair.as_ref()))
    }

    /// Applies take-backs stored by a manager verb or the manager API: the lease leaves
    /// the index (its row is already deleted), its seat goes to the queue, and the
    /// `take_back` event is recorded with who and why. A lease that ended meanwhile (it
    /// expired or was returned just before) has its end recorded already; only its row
    /// is marked applied. At start-up (`starting`) the index never held the lease (its
    /// row was gone), and the event is recorded whenever the row was not applied.
    fn apply_take_backs(
        &self,
        inner: &mut Inner,
        rows: Vec<take_back::TakenBackRow>,
        starting: bool,
        now_ms: i64,
    ) {
        for row in rows {
            let mut ops = vec![Op::TakeBackApplied {
                lease_id: row.lease_id.clone(),
                at: now_ms,
            }];
            let id = Uuid::parse_str(&row.lease_id).ok();
            let removed = id.and_then(|id| inner.index.remove(id));
            if removed.is_some() || starting {
                let in_use = inner.index.in_use_of(&row.feature);
                ops.push(Op::Report(row.event_row(in_use)));
            }
            log::info!(
                "lease taken back lease_id={} feature={} user={} host={} by={}",
                row.lease_id,
                row.feature,
                row.user,
                row.host,
                row.actor
            );
            self.writer.submit_eventually(ops);
            if removed.is_some() {
                self.grant_waiters(inner, &row.feature, from_ms(now_ms));
            }
            if let Some(id) = id {
                inner.taken_back.insert(id, row);
            }
        }
    }

    /// Checks out a seat; when none is free and the request may wait, queues it and
    /// holds the request for up to one poll window.
    pub async fn check_out(&self, request: CheckOut) -> Result<Outcome, Error> {
        request.validate()?;
        self.refresh()?;
        let now = self.clock.now();
        let decision = {
            let mut inner = self.lock();
            // Seats whose time is up count as free for this decision.
            self.expire(&mut inner, to_ms(now));
            match self.decide(&mut inner, &request, now) {
                Ok(decision) => decision,
                Err(refusal) => {
                    let in_use = inner.index.in_use_of(&request.feature);
                    drop(inner);
                    self.record_refusal(&request, &refusal, now, in_use);
                    return Err(refusal);
                }
            }
        };
        // The lock is released: the grant is answered once its row is stored.
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
            let (notify, remaining_ms) = match self.poll_now(ticket, now_ms)? {
                Next::Collect(collect) => {
                    // Its row may still be on its way: wait for it without the lock.
                    let grant = self.committed(collect.grant, collect.done).await?;
                    return Ok(Outcome::Granted(grant));
                }
                Next::Wait {
                    notify,
                    remaining_ms,
                } => (notify, remaining_ms),
            };
            // Hold the request until a seat comes, the wait ends, or one window passes.
            let remaining = StdDuration::from_millis(u64::try_from(remaining_ms).unwrap_or(0));
            let window = remaining.min(self.settings.poll_window);
            let woken = tokio::time::timeout(window, notify.notified())
                .await
                .is_ok();
            // A whole window passed with the wait still on: answer with the place now.
            // Otherwise (woken, or the deadline reached) the next turn says how it ended.
            if !woken && window < remaining {
                let now_ms = to_ms(self.clock.now());
                if let Some(place) = self.lock().queue.place(ticket, now_ms) {
                    return Ok(Outcome::Waiting(QueueTicket {
                        ticket,
                        feature: place.feature,
                        position: place.position,
                        wait_until: from_ms(place.deadline_ms),
                        poll_within_seconds: self.settings.poll_window.as_secs().max(1),
                    }));
                }
            }
        }
    }

    /// What a poll at `now_ms` does next, decided under the lock: collect its seat,
    /// hold the request, or answer at once (an ended wait, a deadline reached now).
    fn poll_now(&self, ticket: Uuid, now_ms: i64) -> Result<Next, Error> {
        let mut inner = self.lock();
        match inner.queue.poll(ticket, now_ms) {
            Poll::Granted(collect) => Ok(Next::Collect(collect)),
            Poll::Ended(refusal) => Err(refusal),
            Poll::TimeUp(waiter) => Err(self.time_up(&inner, waiter, now_ms)),
            Poll::Unknown => Err(not_waiting(ticket)),
            Poll::Waiting {
                notify,
                remaining_ms,
            } => Ok(Next::Wait {
                notify,
                remaining_ms,
            }),
        }
    }

    /// Ends a wait that is over, on behalf of another request (the sweeper, or a seat
    /// coming back). When its time ran out, its client gets the refusal at its next
    /// poll; one that went away is told at its next poll that it was not polled in time.
    fn end_wait(&self, inner: &mut Inner, ticket: Uuid, now_ms: i64) {
        let Some((waiter, over)) = inner.queue.end(ticket, now_ms) else {
            return;
        };
        let refusal = self.time_up(inner, waiter, now_ms);
        if over == Over::TimeUp {
            inner.queue.keep_answer(ticket, refusal, now_ms);
        }
    }

    /// Records a wait that ended without a seat (the waiter already left the queue);
    /// returns the refusal to answer it with.
    fn time_up(&self, inner: &Inner, waiter: Waiter, now_ms: i64) -> Error {
        let feature = &waiter.request.feature;
        let in_use = inner.index.in_use_of(feature);
        let seats = inner.seats_now(feature, from_ms(now_ms)).unwrap_or(0);
        let waited_ms = (now_ms - waiter.arrived_ms).max(0);
        let row = report_rows::queue_timeout(&waiter.request, now_ms, in_use, waited_ms);
        self.writer.submit_eventually(vec![Op::Report(row)]);
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
        match done.outcome().await {
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
        if let Some(lease) = inner.index.remove(id) {
            // Its row may still come: the writer keeps order, so this delete follows it.
            self.writer
                .submit_eventually(vec![Op::Delete(id.to_string())]);
            self.grant_waiters(&mut inner, &lease.feature, now);
        }
    }

    /// Whether `request` gets a seat now, waits for one, or is refused; checked in the
    /// order the API documents.
    fn decide(
        &self,
        inner: &mut Inner,
        request: &CheckOut,
        now: DateTime<Utc>,
    ) -> Result<Decision, Error> {
        let feature = request.feature.as_str();
        // Clock and sync state, then a license of the feature valid now.
        let seats = inner.may_issue(feature, now)?;
        // A borrow the licenses cannot give is refused before it takes or waits.
        if let Some(borrow) = request.borrow {
            inner.borrow_until(feature, borrow, now)?;
        }
        // The client's own rules, evaluated once: they hold however many seats are free.
        let rules = inner.options.current();
        let holders = inner.index.holders_of(feature);
        policy::client_rules(&rules, request, holders)?;
        let in_use = inner.index.in_use_of(feature);
        let seat = policy::free_seat(&rules, request, holders, in_use, seats);
        // Those who waited first come first: a newcomer does not pass a waiter who could
        // take the seat.
        if matches!(seat, Seat::Free) && !inner.waiter_could_take(feature, seats) {
            let (grant, ops) = self.grant(inner, request, now, None)?;
            return Ok(Decision::Granted(grant, ops));
        }
        if request.wait.is_zero() {
            return Err(match seat {
                Seat::Held(reserved) => reserved,
                Seat::Free | Seat::NoneFree => no_seats(feature, seats),
            });
        }
        let ticket = Uuid::new_v4();
        let position = inner
            .queue
            .join(ticket, request.clone(), to_ms(now))
            .map_err(|full| queue_full(feature, seats, full.waiting))?;
        log::debug!(
            "check-out queued feature={feature} user={} position={position}",
            request.user
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
        let id = Uuid::new_v4();
        let borrowed_until = request
            .borrow
            .map(|b| inner.borrow_until(&request.feature, b, now))
            .transpose()?;
        let borrow_token = borrowed_until
            .map(|until| self.borrow_token(id, request, now, until))
            .transpose()?;
        // Nothing can fail from here on: the seat is taken.
        let expires_at = borrowed_until.unwrap_or(now + self.settings.lease_length);
        let row = LeaseRow {
            id: id.to_string(),
            feature: request.feature.clone(),
            client: request.client.clone(),
            granted_at: to_ms(now),
            expires_at: to_ms(expires_at),
            user: request.user.clone(),
            host: request.host.clone(),
            borrowed: borrow_token.is_some(),
        };
        let ops = inner.take_seat(id, row, request, now, waited.map(|(_, ms)| ms));
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
            pair_epoch: inner.pair_epoch(),
        };
        Ok((grant, ops))
    }

    /// The signed token that proves a borrowed seat offline.
    fn borrow_token(
        &self,
        lease_id: Uuid,
        request: &CheckOut,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<String, Error> {
        let token = BorrowToken {
            server_id: self.server_id,
            lease_id,
            feature: request.feature.clone(),
            user: request.user.clone(),
            host: request.host.clone(),
            issued_at: now,
            until,
        };
        Ok(token
            .sign(&self.identity)
            .context("signing a borrow token")?)
    }

    /// Gives free seats of `feature` to its waiters, first come first served.
    fn grant_waiters(&self, inner: &mut Inner, feature: &str, now: DateTime<Utc>) {
        let now_ms = to_ms(now);
        while inner.queue.has_waiters(feature) {
            // A wait that is over, or whose client went away, ends before seats are given.
            if let Some(ticket) = inner.queue.front_over(feature, now_ms) {
                self.end_wait(inner, ticket, now_ms);
                continue;
            }
            // The checks of a fresh check-out apply to a waiter too. A refusal that no
            // returned seat can lift (the license was removed or ended, the server is
            // out of sync or its clock went back) ends every wait of the feature now.
            let seats = match inner.may_issue(feature, now) {
                Ok(seats) => seats,
                Err(refusal) => {
                    self.refuse_waiters(inner, feature, &refusal, now_ms);
                    break;
                }
            };
            // The first waiter the rules let take a seat gets it (one kept out by a
            // reservation or a limit lets those behind it pass).
            let Some(waiter) = inner.next_eligible(feature, seats) else {
                break;
            };
            self.grant_waiter(inner, waiter, now);
        }
    }

    /// Takes a seat for a waiter (it already left the queue), stores it, and wakes its
    /// poll; a borrow that can no longer be given is refused, and the seat goes on.
    fn grant_waiter(&self, inner: &mut Inner, waiter: Waiter, now: DateTime<Utc>) {
        let now_ms = to_ms(now);
        let waited = (waiter.position, (now_ms - waiter.arrived_ms).max(0));
        match self.grant(inner, &waiter.request, now, Some(waited)) {
            Ok((grant, ops)) => {
                // Its row is written while its client comes to collect it.
                let done = self.writer.submit(ops, self.settings.write_deadline);
                inner
                    .queue
                    .grant(waiter.ticket, Collect { grant, done }, now_ms);
                waiter.notify.notify_one();
            }
            Err(refusal) => self.refuse_waiter(inner, waiter, refusal, now_ms),
        }
    }

    /// Ends every wait of `feature` with `refusal`, answered at each client's next poll
    /// (a poll held open now is woken).
    fn refuse_waiters(&self, inner: &mut Inner, feature: &str, refusal: &Error, now_ms: i64) {
        for ticket in inner.queue.tickets_of(feature) {
            if let Some(waiter) = inner.queue.leave(ticket) {
                // Each client gets a refusal of its own, with the same code and words.
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
        let in_use = inner.index.in_use_of(&waiter.request.feature);
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
        inner.queue.keep_answer(waiter.ticket, refusal, now_ms);
        waiter.notify.notify_one();
    }

    /// Forgets waiters that stopped polling and returns grants nobody collected.
    fn drop_departed(&self, inner: &mut Inner, now_ms: i64) {
        for ticket in inner.queue.due(now_ms) {
            self.end_wait(inner, ticket, now_ms);
        }
        for collect in inner.queue.forget(now_ms) {
            let id = collect.grant.lease_id;
            log::info!("a queued client did not collect its seat; returned lease_id={id}");
            self.release(inner, id, now_ms);
        }
    }

    /// Renews a live lease for another lease length.
    pub async fn heartbeat(&self, id: Uuid) -> Result<LeaseGrant, Error> {
        self.refresh()?;
        let now = self.clock.now();
        let (grant, ops) = {
            let mut inner = self.lock();
            // A lease whose time is up is not renewed: it is over.
            self.expire(&mut inner, to_ms(now));
            self.renewal(&mut inner, id, now)?
        };
        // Answered once stored, like a grant; the lock is not held meanwhile.
        let done = self.writer.submit(ops, self.settings.write_deadline);
        done.outcome().await.map_err(write_refusal)?;
        // Stored: now the index follows (unless the lease ended meanwhile).
        self.lock().index.renew(id, to_ms(grant.expires_at));
        Ok(grant)
    }

    /// Whether lease `id` may be renewed at `now`; the renewal and its rows if so.
    fn renewal(
        &self,
        inner: &mut Inner,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(LeaseGrant, Vec<Op>), Error> {
        let lease = inner
            .index
            .get(id)
            .ok_or_else(|| unknown_lease(inner, id))?;
        let (feature, user, host) = (
            lease.feature.clone(),
            lease.user.clone(),
            lease.host.clone(),
        );
        if lease.borrowed {
            return Err(Error::refused(
                ErrorCode::Malformed,
                format!("lease {id} is a borrowed seat: it needs no heartbeat"),
            ));
        }
        // A lease of a feature whose license was removed or ended is not renewed.
        let seats = inner.may_issue(&feature, now)?;
        // Over a lowered seat count the newest leases are not renewed either, so that
        // the count in use comes down to the new number of seats as they run out.
        let in_use = inner.index.in_use_of(&feature);
        if in_use > seats && inner.index.rank_in_feature(id) >= seats {
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
        ops.extend(inner.persist_high_water(to_ms(now)));
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
            pair_epoch: inner.pair_epoch(),
        };
        Ok((grant, ops))
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
            return Err(unknown_lease(&inner, id));
        }
        log::debug!("lease returned lease_id={id}");
        Ok(())
    }

    /// Frees a lease's seat (the queue gets it) and records it; false if unknown.
    fn release(&self, inner: &mut Inner, id: Uuid, now_ms: i64) -> bool {
        let Some(lease) = inner.index.remove(id) else {
            return false;
        };
        let in_use = inner.index.in_use_of(&lease.feature);
        let event = if lease.borrowed {
            Event::Return
        } else {
            Event::CheckIn
        };
        let row = report_rows::lease_ended(event, &lease, id, now_ms, in_use);
        self.writer
            .submit_eventually(vec![Op::Delete(id.to_string()), Op::Report(row)]);
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
                let mut seats = feature_seats(name, licenses, inner.index.in_use_of(name), now);
                seats.queued = inner.queue.len_of(name);
                seats
            })
            .collect())
    }

    /// Waits until every change queued so far is committed (or `within` passes while
    /// another program holds the database); `serve` calls it when it stops, so a seat
    /// returned just before is not found again at the next start.
    pub async fn flush(&self, within: StdDuration) -> Result<(), WriteError> {
        self.writer.submit(Vec::new(), within).outcome().await
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
        // Rows of leases that ran out go too (also any the index lost track of).
        let mut ops = vec![Op::DeleteExpired { now_ms }];
        // The mark moves only with a clock that did not go back.
        if let Ok(mark) = policy::raise_high_water(now, inner.high_water) {
            inner.high_water = Some(mark);
            ops.extend(inner.persist_high_water(now_ms));
        }
        self.writer.submit_eventually(ops);
        Ok(expired)
    }

    /// Forgets the leases whose time is up, reports them, and gives their seats to the
    /// queue; returns how many.
    fn expire(&self, inner: &mut Inner, now_ms: i64) -> usize {
        let mut ops = Vec::new();
        let mut features = Vec::new();
        while let Some((id, lease)) = inner.index.pop_expired(now_ms) {
            let in_use = inner.index.in_use_of(&lease.feature);
            // Recorded at its expiry, not at the time it was noticed.
            let at = lease.expires_ms;
            let row = report_rows::lease_ended(Event::Expiry, &lease, id, at, in_use);
            ops.push(Op::Delete(id.to_string()));
            ops.push(Op::Report(row));
            features.push(lease.feature);
        }
        let count = features.len();
        self.writer.submit_eventually(ops);
        // The seats go to the waiters of their features.
        if inner.queue.waiting() > 0 {
            features.dedup();
            let now = from_ms(now_ms);
            for feature in features {
                self.grant_waiters(inner, &feature, now);
            }
        }
        count
    }

    fn record_refusal(&self, request: &CheckOut, refusal: &Error, now: DateTime<Utc>, in_use: u32) {
        // Only refusals with a code are the client's; the others are ours, logged.
        let Some(code) = refusal.code() else {
            return;
        };
        let row = report_rows::refused(request, code, to_ms(now), in_use);
        self.writer.submit_eventually(vec![Op::Report(row)]);
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

fn no_seats(feature: &str, seats: u32) -> Error {
    Error::refused(
        ErrorCode::NoSeats,
        format!(
            "all {seats} seats of {feature} are in use; try again later, or ask to wait \
             for a seat (wait_seconds)"
        ),
    )
}

fn queue_full(feature: &str, seats: u32, waiting: usize) -> Error {
    Error::refused(
        ErrorCode::NoSeats,
        format!(
            "all {seats} seats of {feature} are in use and the queue is full ({waiting} \
             waiting); try again later"
        ),
    )
}

fn not_waiting(ticket: Uuid) -> Error {
    Error::refused(
        ErrorCode::NotFound,
        format!(
            "queue ticket {ticket} is not waiting: its wait ended or it was not polled in \
             time; check out again"
        ),
    )
}

fn write_refusal(err: WriteError) -> Error {
    match err {
        WriteError::Temporary => Error::DatabaseBusy(anyhow::anyhow!(
            "the database stayed locked by another program, or full, for longer than the write wait"
        )),
        WriteError::Failed(e) => Error::Internal(anyhow::anyhow!("storing the lease: {e}")),
        WriteError::Gone => Error::Internal(anyhow::anyhow!("storing the lease: {err}")),
    }
}

/// The refusal of a lease the index does not hold: what happened to it when it was
/// taken back, else unknown.
fn unknown_lease(inner: &Inner, id: Uuid) -> Error {
    match inner.taken_back.get(&id) {
        Some(row) => row.refusal(),
        None => lease_unknown(id),
    }
}

fn lease_unknown(id: Uuid) -> Error {
    Error::refused(
        ErrorCode::LeaseUnknown,
        format!("lease {id} is not known: it expired or was returned; check out a new one"),
    )
}

#[cfg(test)]
mod tests {
    /// The files of this folder and, for each, the files it may import: only files
    /// listed before it, so no two import each other.
    const LAYERS: [(&str, &str); 8] = [
        ("request", include_str!("request.rs")),
        ("index", include_str!("index.rs")),
        ("inherited", include_str!("inherited.rs")),
        ("writer", include_str!("writer.rs")),
        ("policy", include_str!("policy.rs")),
        ("queue", include_str!("queue.rs")),
        ("report_rows", include_str!("report_rows.rs")),
        ("state", include_str!("state.rs")),
    ];

    /// A file's code before its tests.
    fn code(text: &str) -> &str {
        text.split("#[cfg(test)]").next().unwrap_or(text)
    }

    #[test]
    fn files_import_only_files_below_them_and_never_the_engine() {
        for (at, (name, text)) in LAYERS.iter().enumerate() {
            let below: Vec<&str> = LAYERS[..at].iter().map(|(n, _)| *n).collect();
            let imports = code(text)
                .lines()
                .filter_map(|l| l.strip_prefix("use super::"));
            for path in imports {
                let module: String = path
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    below.contains(&module.as_str()),
                    "{name}.rs imports {module:?}, which is not below it"
                );
            }
            assert!(!code(text).contains("crate::leases"), "{name}.rs");
        }
    }

    #[test]
    fn the_queue_and_the_policy_do_no_io_read_no_clock_and_take_no_lock() {
        let banned = [
            "now()",
            "Instant",
            "SystemTime",
            "self.clock",
            ": Clock",
            "Mutex",
            "RwLock",
            "std::fs",
            "std::io",
            "std::thread",
            "diesel",
            "tokio::time",
            "notify_one",
            "writer",
        ];
        for (name, text) in LAYERS
            .iter()
            .filter(|(n, _)| ["queue", "policy"].contains(n))
        {
            for word in banned {
                let found = code(text)
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .find(|l| l.contains(word));
                assert_eq!(found, None, "{name}.rs uses {word}");
            }
        }
    }

    #[test]
    fn the_options_rules_know_no_lease_engine() {
        let options = code(include_str!("../options.rs"));
        assert!(!options.contains("crate::leases"));
        assert!(!options.contains("LeaseEngine"));
    }
}
