//! The engine's state under its lock: the licenses and sync state in force (reloaded
//! from the database when another program changed them), the clock's high-water mark,
//! the live leases, the wait queue and the leases taken back; and the steps that read or change them together.
//!
//! Why apart from the engine: these steps are decisions over the state alone. They read
//! no clock (the time is given), wait on nothing and write nothing; the rows they make
//! are returned for the engine to hand to the writer. Only [`Snapshot::load`] reads the
//! database, on the engine's reading connection.

use std::collections::{HashMap, HashSet};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use shared_proto::validity;
use shared_proto::{ErrorCode, License};
use uuid::Uuid;

use super::index::Index;
use super::inherited::{self, InheritedRow};
use super::policy::{self, Seat};
use super::queue::{WaitQueue, Waiter};
use super::report_rows;
use super::request::{CheckOut, LeaseGrant};
use super::writer::{Done, Op};
use crate::db::{self, from_ms, to_ms, LeaseRow};
use crate::error::Error;
use crate::options;
use crate::pair::gate as pair_gate;
use crate::pair::store::{self as pair_store, PairRow, Role};
use crate::report_log::Event;
use crate::take_back::{self, TakenBackRow};

/// A seat granted to a waiter, as the queue keeps it until its client collects it.
pub struct Collect {
    pub grant: LeaseGrant,
    /// Its row's commit, awaited by the poll that collects it.
    pub done: Done,
}

pub struct Inner {
    pub generation: i64,
    pub valid_until: Option<DateTime<Utc>>,
    pub licenses: HashMap<String, Vec<License>>,
    /// Latest time seen; may be ahead of the stored one by up to a minute.
    pub high_water: Option<DateTime<Utc>>,
    pub stored_high_water: Option<i64>,
    pub index: Index,
    /// The options file in force (the last good one).
    pub options: options::InForce,
    pub peaks: HashMap<String, u32>,
    pub queue: WaitQueue<Collect>,
    /// Leases the administrator took back, so that a heartbeat or return of one is
    /// told what happened (a handful: an administrator's actions).
    pub taken_back: HashMap<Uuid, TakenBackRow>,
    /// The seats taken over from the previous installation that are in the index or
    /// were (a returned one is never taken in again).
    pub adopted: HashSet<Uuid>,
    /// The primary/standby pair this server belongs to, if any (see [`crate::pair`]).
    pub pair: Option<PairRow>,
}

/// What a reload read from the database.
pub struct Snapshot {
    pub generation: i64,
    pub options: Option<String>,
    pub state: db::SyncStateRow,
    pub licenses: Vec<db::LicenseRow>,
    pub peaks: Vec<(String, i32)>,
    /// Take-backs not applied yet (taken by another process).
    pub taken_back: Vec<TakenBackRow>,
    /// The seats taken over from the previous installation (see [`inherited`]).
    pub inherited: Vec<InheritedRow>,
    pub pair: Option<PairRow>,
}

impl Snapshot {
    pub fn load(conn: &mut SqliteConnection) -> QueryResult<Self> {
        conn.transaction(|c| {
            Ok(Self {
                generation: db::generation(c)?,
                options: db::load_options(c)?,
                state: db::load_sync_state(c)?,
                licenses: db::load_licenses(c)?,
                peaks: db::load_peaks(c)?,
                taken_back: take_back::pending(c)?,
                inherited: inherited::load(c)?,
                pair: pair_store::load(c)?,
            })
        })
    }
}

impl Inner {
    pub fn apply(&mut self, snapshot: Snapshot) {
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
                .push(policy::license_from_row(&row));
        }
        self.peaks = snapshot
            .peaks
            .into_iter()
            .map(|(f, p)| (f, u32::try_from(p).unwrap_or(0)))
            .collect();
        self.options.offer(snapshot.options);
        self.adopt(snapshot.inherited);
        self.pair = snapshot.pair;
        self.generation = snapshot.generation;
    }

    /// Takes the seats kept from the previous installation into the index, once each:
    /// their leases were written by the import, so only the index learns of them here
    /// (one already loaded from the leases at start-up is not counted twice).
    pub fn adopt(&mut self, rows: Vec<InheritedRow>) {
        for row in rows {
            let Ok(id) = Uuid::parse_str(&row.lease_id) else {
                continue;
            };
            if !self.adopted.insert(id) || self.index.get(id).is_some() {
                continue;
            }
            self.index.insert(id, &row.lease_row());
            log::info!(
                "borrowed seat of the previous installation counted as taken lease_id={id} \
                 feature={} user={} host={} until={}",
                row.feature,
                row.user,
                row.host,
                from_ms(row.until).to_rfc3339()
            );
        }
    }

    /// The epoch of this server's pair, carried by its grants and renewals.
    pub fn pair_epoch(&self) -> Option<i64> {
        self.pair.as_ref().map(|p| p.epoch)
    }

    /// The refusals that come before any seat is counted (clock, then sync state, then a
    /// license of `feature` valid now); the seats valid now when there is none.
    pub fn may_issue(&mut self, feature: &str, now: DateTime<Utc>) -> Result<u32, Error> {
        // A server of a pair issues only in its turn.
        if let Some(refusal) = pair_gate::refusal(self.pair.as_ref(), now) {
            return Err(refusal);
        }
        self.high_water = Some(policy::raise_high_water(now, self.high_water)?);
        if let Some(refusal) = policy::sync_refusal(validity::sync_state(self.valid_until, now)) {
            return Err(refusal);
        }
        self.seats_now(feature, now)
    }

    pub fn seats_now(&self, feature: &str, now: DateTime<Utc>) -> Result<u32, Error> {
        policy::seats_now(feature, self.licenses.get(feature).map(Vec::as_slice), now)
    }

    pub fn borrow_until(
        &self,
        feature: &str,
        wanted: StdDuration,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, Error> {
        // A borrow outlives a failover: a standby lends no seats for offline use.
        if self
            .pair
            .as_ref()
            .is_some_and(|p| p.role() == Role::Standby)
        {
            return Err(Error::refused(
                ErrorCode::Forbidden,
                format!(
                    "a standby server lends no seat of {feature} for offline use (a borrow \
                     would outlive the failover); borrow from the primary once it is back"
                ),
            ));
        }
        let licenses = self.licenses.get(feature).map_or(&[][..], Vec::as_slice);
        policy::borrow_until(feature, licenses, wanted, now, self.valid_until)
    }

    /// Puts a granted lease in the index; returns the rows to write for it: the lease,
    /// a new usage peak, the clock mark when due, and the report-log entry.
    pub fn take_seat(
        &mut self,
        id: Uuid,
        row: LeaseRow,
        request: &CheckOut,
        now: DateTime<Utc>,
        waited_ms: Option<i64>,
    ) -> Vec<Op> {
        let now_ms = to_ms(now);
        let feature = &request.feature;
        self.index.insert(id, &row);
        let in_use = self.index.in_use_of(feature);
        let mut ops = Vec::with_capacity(4);
        let event = match waited_ms {
            Some(_) => Event::QueueGranted,
            None if row.borrowed => Event::Borrow,
            None => Event::CheckOut,
        };
        let report = report_rows::granted(event, request, &row.id, now_ms, in_use, waited_ms);
        // The lease's row first: the others are worth nothing without it.
        ops.push(Op::Insert(row));
        if in_use > self.peaks.get(feature).copied().unwrap_or(0) {
            self.peaks.insert(feature.clone(), in_use);
            let peak = in_use;
            ops.push(Op::Peak {
                feature: feature.clone(),
                peak,
            });
        }
        ops.extend(self.persist_high_water(now_ms));
        ops.push(Op::Report(report));
        ops
    }

    /// The write that stores the clock mark, when the one in memory got a minute ahead
    /// of the stored one; counted as stored from now on.
    pub fn persist_high_water(&mut self, now_ms: i64) -> Option<Op> {
        let mark = policy::high_water_to_persist(self.high_water, self.stored_high_water, now_ms)?;
        self.stored_high_water = Some(mark);
        Some(Op::RaiseHighWater(mark))
    }

    /// Takes out of `feature`'s queue the first waiter the rules let take one of `seats`.
    pub fn next_eligible(&mut self, feature: &str, seats: u32) -> Option<Waiter> {
        let ticket = self.first_eligible(feature, seats)?;
        self.queue.leave(ticket)
    }

    /// Whether a waiter of `feature` could take one of `seats` now.
    pub fn waiter_could_take(&self, feature: &str, seats: u32) -> bool {
        self.queue.has_waiters(feature) && self.first_eligible(feature, seats).is_some()
    }

    fn first_eligible(&self, feature: &str, seats: u32) -> Option<Uuid> {
        let in_use = self.index.in_use_of(feature);
        // No seat free: no waiter's rules need looking at.
        if in_use >= seats {
            return None;
        }
        let rules = self.options.current();
        let holders = self.index.holders_of(feature);
        self.queue.first_eligible(feature, |w| {
            let seat = policy::seat_for(&rules, &w.request, holders, in_use, seats);
            matches!(seat, Seat::Free)
        })
    }
}
