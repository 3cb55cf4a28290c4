//! The lease engine of the serving process: an in-memory index of live leases with
//! write-through to SQLite.
//!
//! Why in memory: a check-out must count the seats in use for its feature. Counting rows
//! in the database on every check-out costs a scan that grows with the number of live
//! leases (10,000 and more), and concurrent writers on SQLite would queue on its lock.
//! Here one mutex orders the decisions, the counts are kept in a map, and each change is
//! one short write to the database (an `INSERT`, `UPDATE` or `DELETE`, its own
//! transaction) made before the answer is sent. A lease is granted only once its row is
//! committed, so it survives a crash or restart of the process; on start-up the index
//! is rebuilt from the rows that have not expired.
//!
//! The manager verbs run in other processes and change licenses and the sync state, never
//! leases. SQLite's `PRAGMA data_version` tells the engine when another connection
//! committed, and it then reloads licenses, sync state and usage peaks (a few rows).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde::Serialize;
use shared_proto::validity::{self, SyncState};
use shared_proto::{Clock, ErrorCode, License};
use uuid::Uuid;

use crate::db::{self, from_ms, to_ms, LeaseRow};
use crate::error::Error;
use crate::schema::{leases, usage_peaks};

/// Longest feature name accepted from a client.
pub const MAX_FEATURE_LEN: usize = 128;
/// Longest client description accepted.
pub const MAX_CLIENT_LEN: usize = 256;

/// How far the stored clock high-water mark may lag the one in memory. It is well under
/// the rollback tolerance (10 minutes), so a crash cannot hide a rollback.
const HIGH_WATER_PERSIST_MS: i64 = 60_000;

/// A granted or renewed lease, as the client sees it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseGrant {
    pub lease_id: Uuid,
    pub feature: String,
    pub expires_at: DateTime<Utc>,
    /// How often the client should renew: a third of the lease length.
    pub heartbeat_seconds: i64,
}

/// One feature's seats as the client API lists them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FeatureSeats {
    pub feature: String,
    /// Seats of the licenses valid now.
    pub seats_total: u32,
    pub in_use: u32,
    pub free: u32,
    /// `ok`, or `LICENSE_EXPIRED` when no license of the feature is valid now.
    pub state: String,
    pub licenses: Vec<License>,
}

struct LiveLease {
    feature: Arc<str>,
    /// When it was granted: over a lowered seat count, the newest leases lose first.
    granted_ms: i64,
    expires_ms: i64,
}

struct Inner {
    /// The engine's own connection: every lease write goes through it.
    conn: SqliteConnection,
    data_version: i64,
    valid_until: Option<DateTime<Utc>>,
    licenses: HashMap<String, Vec<License>>,
    /// Latest time seen; may be ahead of the stored one by up to a minute.
    high_water: Option<DateTime<Utc>>,
    stored_high_water: Option<i64>,
    leases: HashMap<Uuid, LiveLease>,
    /// Expiry order, so expired leases are found without a scan.
    by_expiry: BTreeSet<(i64, Uuid)>,
    in_use: HashMap<Arc<str>, u32>,
    peaks: HashMap<String, u32>,
}

/// The lease engine; shared by all workers of the serving process.
pub struct LeaseEngine {
    inner: Mutex<Inner>,
    clock: Clock,
    lease_length: Duration,
}

impl LeaseEngine {
    /// Opens the engine on the data directory and rebuilds the index of live leases.
    pub fn open(data_dir: &Path, clock: Clock, lease_length: Duration) -> anyhow::Result<Self> {
        let mut conn = db::connect_existing(data_dir)?;
        let now = clock.now();
        let rows = db::load_live_leases(&mut conn, to_ms(now)).context("loading live leases")?;
        let mut inner = Inner {
            conn,
            data_version: -1,
            valid_until: None,
            licenses: HashMap::new(),
            high_water: None,
            stored_high_water: None,
            leases: HashMap::new(),
            by_expiry: BTreeSet::new(),
            in_use: HashMap::new(),
            peaks: HashMap::new(),
        };
        let mut interned: HashMap<String, Arc<str>> = HashMap::new();
        for row in rows {
            let Ok(id) = Uuid::parse_str(&row.id) else {
                log::warn!("ignoring a lease row with a malformed id {:?}", row.id);
                continue;
            };
            let feature = interned
                .entry(row.feature.clone())
                .or_insert_with(|| Arc::from(row.feature.as_str()))
                .clone();
            *inner.in_use.entry(feature.clone()).or_insert(0) += 1;
            inner.by_expiry.insert((row.expires_at, id));
            inner.leases.insert(
                id,
                LiveLease {
                    feature,
                    granted_ms: row.granted_at,
                    expires_ms: row.expires_at,
                },
            );
        }
        inner.refresh().context("loading licenses and sync state")?;
        log::info!("lease index rebuilt: {} live leases", inner.leases.len());
        Ok(Self {
            inner: Mutex::new(inner),
            clock,
            lease_length,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the maps consistent (every change is
        // made after its database write), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks out a seat of `feature` for `client`.
    pub fn check_out(&self, feature: &str, client: &str) -> Result<LeaseGrant, Error> {
        validate_text("feature", feature, MAX_FEATURE_LEN)?;
        validate_text("client", client, MAX_CLIENT_LEN)?;
        let now = self.clock.now();
        let now_ms = to_ms(now);
        let mut inner = self.lock();
        inner.refresh()?;
        inner.expire(now_ms);
        inner.check_may_issue(now)?;
        let seats = inner.seats_now(feature, now)?;
        let in_use = inner.in_use.get(feature).copied().unwrap_or(0);
        if in_use >= seats {
            return Err(Error::refused(
                ErrorCode::NoSeats,
                format!("all {seats} seats of {feature} are in use; try again later"),
            ));
        }
        let id = Uuid::new_v4();
        let expires_at = now + self.lease_length;
        let row = LeaseRow {
            id: id.to_string(),
            feature: feature.to_owned(),
            client: client.to_owned(),
            granted_at: now_ms,
            expires_at: to_ms(expires_at),
        };
        let new_peak =
            (in_use + 1 > inner.peaks.get(feature).copied().unwrap_or(0)).then_some(in_use + 1);
        let persist_mark = inner.high_water_to_persist(now_ms);
        let inner = &mut *inner;
        if new_peak.is_none() && persist_mark.is_none() {
            diesel::insert_into(leases::table)
                .values(&row)
                .execute(&mut inner.conn)?;
        } else {
            inner.conn.immediate_transaction(|conn| {
                diesel::insert_into(leases::table)
                    .values(&row)
                    .execute(conn)?;
                if let Some(peak) = new_peak {
                    upsert_peak(conn, feature, peak)?;
                }
                if let Some(mark) = persist_mark {
                    db::raise_high_water(conn, mark)?;
                }
                Ok::<_, diesel::result::Error>(())
            })?;
            if let Some(peak) = new_peak {
                inner.peaks.insert(feature.to_owned(), peak);
            }
            if persist_mark.is_some() {
                inner.stored_high_water = persist_mark;
            }
        }
        let feature_key = inner
            .in_use
            .keys()
            .find(|k| k.as_ref() == feature)
            .cloned()
            .unwrap_or_else(|| Arc::from(feature));
        *inner.in_use.entry(feature_key.clone()).or_insert(0) += 1;
        inner.by_expiry.insert((row.expires_at, id));
        inner.leases.insert(
            id,
            LiveLease {
                feature: feature_key,
                granted_ms: row.granted_at,
                expires_ms: row.expires_at,
            },
        );
        log::debug!("lease granted lease_id={id} feature={feature}");
        Ok(LeaseGrant {
            lease_id: id,
            feature: feature.to_owned(),
            expires_at,
            heartbeat_seconds: self.heartbeat_seconds(),
        })
    }

    /// Renews a live lease for another lease length.
    pub fn heartbeat(&self, id: Uuid) -> Result<LeaseGrant, Error> {
        let now = self.clock.now();
        let now_ms = to_ms(now);
        let mut inner = self.lock();
        inner.refresh()?;
        inner.expire(now_ms);
        let feature = match inner.leases.get(&id) {
            Some(lease) => lease.feature.clone(),
            None => return Err(lease_unknown(id)),
        };
        inner.check_may_issue(now)?;
        // A lease of a feature whose license was removed or ended is not renewed. Over a
        // lowered seat count the newest leases are not renewed either, so that the count
        // in use comes down to the new number of seats as they run out.
        let seats = inner.seats_now(&feature, now)?;
        let in_use = inner.in_use.get(feature.as_ref()).copied().unwrap_or(0);
        if in_use > seats && inner.rank_in_feature(id) >= seats {
            return Err(Error::refused(
                ErrorCode::NoSeats,
                format!(
                    "the license for {feature} now has {seats} seats, fewer than are in use; \
                     this lease is not renewed (it ends at its expiry)"
                ),
            ));
        }
        let expires_at = now + self.lease_length;
        let expires_ms = to_ms(expires_at);
        let persist_mark = inner.high_water_to_persist(now_ms);
        inner.conn.immediate_transaction(|conn| {
            diesel::update(leases::table.find(id.to_string()))
                .set(leases::expires_at.eq(expires_ms))
                .execute(conn)?;
            if let Some(mark) = persist_mark {
                db::raise_high_water(conn, mark)?;
            }
            Ok::<_, diesel::result::Error>(())
        })?;
        if persist_mark.is_some() {
            inner.stored_high_water = persist_mark;
        }
        if let Some(lease) = inner.leases.get_mut(&id) {
            let old = lease.expires_ms;
            lease.expires_ms = expires_ms;
            inner.by_expiry.remove(&(old, id));
            inner.by_expiry.insert((expires_ms, id));
        }
        Ok(LeaseGrant {
            lease_id: id,
            feature: feature.to_string(),
            expires_at,
            heartbeat_seconds: self.heartbeat_seconds(),
        })
    }

    /// Returns a lease's seat. Allowed whatever the sync state: giving back never hurts.
    pub fn check_in(&self, id: Uuid) -> Result<(), Error> {
        let now_ms = to_ms(self.clock.now());
        let mut inner = self.lock();
        inner.expire(now_ms);
        if !inner.leases.contains_key(&id) {
            return Err(lease_unknown(id));
        }
        diesel::delete(leases::table.find(id.to_string())).execute(&mut inner.conn)?;
        inner.remove(id);
        log::debug!("lease returned lease_id={id}");
        Ok(())
    }

    /// Seats per feature: total (valid now), in use, free.
    pub fn features(&self) -> Result<Vec<FeatureSeats>, Error> {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.refresh()?;
        inner.expire(to_ms(now));
        let mut names: Vec<&String> = inner.licenses.keys().collect();
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| {
                let licenses = inner.licenses.get(name).cloned().unwrap_or_default();
                let in_use = inner.in_use.get(name.as_str()).copied().unwrap_or(0);
                feature_seats(name, licenses, in_use, now)
            })
            .collect())
    }

    /// Periodic housekeeping: forgets expired leases, deletes their rows, stores the
    /// clock high-water mark.
    pub fn sweep(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        let now_ms = to_ms(now);
        let mut inner = self.lock();
        inner.refresh()?;
        let expired = inner.expire(now_ms);
        diesel::delete(leases::table.filter(leases::expires_at.le(now_ms)))
            .execute(&mut inner.conn)?;
        if validity::check_clock(now, inner.high_water).is_ok() {
            inner.high_water = Some(inner.high_water.map_or(now, |m| m.max(now)));
            if let Some(mark) = inner.high_water_to_persist(now_ms) {
                db::raise_high_water(&mut inner.conn, mark)?;
                inner.stored_high_water = Some(mark);
            }
        }
        Ok(expired)
    }

    fn heartbeat_seconds(&self) -> i64 {
        (self.lease_length.num_seconds() / 3).max(1)
    }
}

impl Inner {
    /// Reloads licenses, sync state and peaks when another connection committed.
    fn refresh(&mut self) -> Result<(), Error> {
        let version = db::data_version(&mut self.conn)?;
        if version == self.data_version {
            return Ok(());
        }
        let state = db::load_sync_state(&mut self.conn)?;
        let rows = db::load_licenses(&mut self.conn)?;
        let peaks = db::load_peaks(&mut self.conn)?;
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
        for row in rows {
            self.licenses
                .entry(row.feature.clone())
                .or_default()
                .push(license_from_row(&row));
        }
        self.peaks = peaks
            .into_iter()
            .map(|(f, p)| (f, u32::try_from(p).unwrap_or(0)))
            .collect();
        self.data_version = version;
        Ok(())
    }

    /// Forgets leases whose time is up; returns how many.
    fn expire(&mut self, now_ms: i64) -> usize {
        let mut count = 0;
        while let Some(&(expires, id)) = self.by_expiry.first() {
            if expires > now_ms {
                break;
            }
            self.remove(id);
            count += 1;
        }
        count
    }

    fn remove(&mut self, id: Uuid) {
        if let Some(lease) = self.leases.remove(&id) {
            self.by_expiry.remove(&(lease.expires_ms, id));
            if let Some(count) = self.in_use.get_mut(&lease.feature) {
                *count = count.saturating_sub(1);
            }
        }
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
            "ok".into()
        } else {
            ErrorCode::LicenseExpired.as_str().into()
        },
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
    }
}

fn upsert_peak(conn: &mut SqliteConnection, feature: &str, peak: u32) -> QueryResult<usize> {
    let peak = i32::try_from(peak).unwrap_or(i32::MAX);
    diesel::insert_into(usage_peaks::table)
        .values((
            usage_peaks::feature.eq(feature),
            usage_peaks::peak_in_use.eq(peak),
        ))
        .on_conflict(usage_peaks::feature)
        .do_update()
        .set(usage_peaks::peak_in_use.eq(peak))
        .execute(conn)
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
