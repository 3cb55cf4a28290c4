//! The status report (`status`, `GET /api/v1/status`, the manager page), computed from
//! the database so that it is the same whether or not `serve` runs.

use std::fmt;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use shared_proto::validity::{self, SyncState, SYNC_VALIDITY_DAYS, WARNING_DAYS};
use shared_proto::{Fingerprint, License};

use crate::config::{AutoSyncMode, Settings};
use crate::db::{self, from_ms, to_ms};
use crate::error::Error;
use crate::import::Channel;
use crate::leases::{feature_seats, license_from_row, FeatureSeats, SeatsState};
use crate::proxy::ProxySettings;
use crate::schema::leases;
use crate::wording::{plural_returned, seats_text};

shared_proto::text_enum! {
    /// Where the server stands: whether, and until when, it issues licenses.
    pub enum State {
        Synchronized => "synchronized",
        /// Synchronized, within 30 days of the 366-day limit.
        Warning => "warning",
        Expired => "expired",
        NeverSynchronized => "never_synchronized",
        /// The system clock went back behind a time already seen.
        ClockRollback => "clock_rollback",
    }
}

/// The whole status report.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// What the client API shows too (its fields stand at the top level of the JSON).
    #[serde(flatten)]
    pub client: ClientStatus,
    pub fingerprint: Fingerprint,
    pub last_sync_channel: Option<Channel>,
    pub license_file_sequence: Option<i64>,
    pub revision: Option<i64>,
    pub customer: Option<String>,
    pub auto_sync: AutoSyncMode,
    pub next_auto_sync_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_error: Option<String>,
    pub consecutive_failures: i32,
    pub main_server: Vec<String>,
    pub proxy: Option<String>,
    /// Each license of the license file in force: seats, validity, borrowing.
    pub licenses: Vec<LicenseTerms>,
    /// Seats borrowed for offline use, soonest back first (they count as in use).
    pub borrowed: Vec<BorrowedSeat>,
    /// Which clock the report was made by, when it is not the real one
    /// (`simulated clock (clock file …), offset +340d`); set by the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
}

/// One license as Solme issued it: how many seats, from when until when, and whether
/// (and for how long) a seat may be borrowed for offline use.
#[derive(Debug, Clone, Serialize)]
pub struct LicenseTerms {
    pub feature: String,
    pub seats: u32,
    /// `None`: valid since it was issued.
    pub valid_from: Option<DateTime<Utc>>,
    /// `None`: perpetual.
    pub valid_until: Option<DateTime<Utc>>,
    pub perpetual: bool,
    /// Longest borrow in hours; `None`: not borrowable.
    pub max_borrow_hours: Option<u32>,
    pub borrowable: bool,
    /// The validity in words (`perpetual`, `until 2027-06-30 (ended)`, …).
    pub validity_text: String,
    /// `borrowable for up to 48 hours` or `not borrowable`.
    pub borrow_text: String,
}

impl LicenseTerms {
    pub fn new(license: &License, now: DateTime<Utc>) -> Self {
        let day = |d: DateTime<Utc>| d.format("%Y-%m-%d").to_string();
        let span = match (license.valid_from, license.valid_until) {
            (None, None) => "perpetual".to_owned(),
            (None, Some(until)) => format!("until {}", day(until)),
            (Some(from), None) => format!("from {}, perpetual", day(from)),
            (Some(from), Some(until)) => format!("from {} until {}", day(from), day(until)),
        };
        let when = match (license.valid_from, license.valid_until) {
            (Some(from), _) if now < from => " (not yet valid)",
            (_, Some(until)) if now >= until => " (ended)",
            _ => "",
        };
        let borrow_text = match license.max_borrow_hours {
            Some(1) => "borrowable for up to 1 hour".to_owned(),
            Some(hours) => format!("borrowable for up to {hours} hours"),
            None => "not borrowable".to_owned(),
        };
        Self {
            feature: license.feature.clone(),
            seats: license.seats,
            valid_from: license.valid_from,
            valid_until: license.valid_until,
            perpetual: license.valid_until.is_none(),
            max_borrow_hours: license.max_borrow_hours,
            borrowable: license.max_borrow_hours.is_some(),
            validity_text: format!("{span}{when}"),
            borrow_text,
        }
    }
}

/// A seat borrowed for offline use.
#[derive(Debug, Clone, Serialize, Queryable)]
pub struct BorrowedSeat {
    pub lease_id: String,
    pub feature: String,
    pub user: String,
    pub host: String,
    /// When the borrow ends and the seat comes back by itself.
    #[serde(with = "ms_as_time")]
    pub until: i64,
}

mod ms_as_time {
    pub fn serialize<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&crate::db::from_ms(*ms), s)
    }
}

/// What the client API's `GET /api/v1/status` shows: whether licenses are issued and
/// the seats. No customer, addresses, proxy or error texts: any program that can reach
/// the client port may read it.
#[derive(Debug, Clone, Serialize)]
pub struct ClientStatus {
    pub server_id: uuid::Uuid,
    pub now: DateTime<Utc>,
    pub state: State,
    /// Whether licenses are issued right now.
    pub issuing: bool,
    pub message: String,
    pub valid_until: Option<DateTime<Utc>>,
    /// Days left of the 366 (negative when expired).
    pub days_left: Option<i64>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub features: Vec<FeatureStatus>,
}

shared_proto::text_enum! {
    /// Whether a new check-out of a feature can get a seat, as far as its seats go (the
    /// server's own state is `issuing`).
    pub enum Availability {
        /// At least one seat is free.
        Available => "available",
        /// Every seat is in use: the next check-out waits for a return.
        AllInUse => "all_in_use",
        /// More seats in use than the licenses now give (a new license file lowered
        /// them): check-outs resume only once enough seats are returned.
        OverLicense => "over_license",
        /// No license of the feature is valid now.
        LicenseNotValid => "license_not_valid",
    }
}

/// One feature's seats, and what they mean for a new check-out.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureStatus {
    #[serde(flatten)]
    pub seats: FeatureSeats,
    pub availability: Availability,
    /// With `over_license`: how many seats must come back before a new check-out can
    /// get one (one more than the seats in use beyond the licenses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_before_new: Option<u32>,
    /// The availability in words, as `status` and the manager page show it.
    pub availability_text: String,
}

impl FeatureStatus {
    pub fn new(seats: FeatureSeats) -> Self {
        let (availability, return_before_new) = if seats.state != SeatsState::Ok {
            (Availability::LicenseNotValid, None)
        } else if seats.in_use > seats.seats_total {
            // A check-out is granted only while in_use < seats_total.
            let owed = seats.in_use - seats.seats_total + 1;
            (Availability::OverLicense, Some(owed))
        } else if seats.in_use == seats.seats_total {
            (Availability::AllInUse, None)
        } else {
            (Availability::Available, None)
        };
        Self {
            seats,
            availability,
            return_before_new,
            availability_text: availability_text(availability, return_before_new),
        }
    }
}

fn availability_text(availability: Availability, return_before_new: Option<u32>) -> String {
    match availability {
        Availability::Available => "available".to_owned(),
        Availability::AllInUse => "all in use".to_owned(),
        Availability::OverLicense => format!(
            "over the license: no new check-outs until {} returned",
            plural_returned(return_before_new.unwrap_or(1))
        ),
        Availability::LicenseNotValid => "license not valid now".to_owned(),
    }
}

impl StatusReport {
    /// The part of the report the client API shows.
    pub fn for_clients(self) -> ClientStatus {
        self.client
    }
}

/// Builds the report from the database. `proxy` is the proxy in force (for `serve`, the
/// one it resolved from `--proxy`); `None` resolves it from the configuration and the
/// environment, as the `sync` verb would without `--proxy`.
pub fn report(
    conn: &mut SqliteConnection,
    settings: &Settings,
    fingerprint: Fingerprint,
    now: DateTime<Utc>,
    proxy: Option<&ProxySettings>,
) -> Result<StatusReport, Error> {
    let state = db::load_sync_state(conn)?;
    let rows = db::load_licenses(conn)?;
    let live = db::live_by_feature(conn, to_ms(now))?;
    let borrowed: Vec<BorrowedSeat> = leases::table
        .filter(leases::borrowed.eq(true))
        .filter(leases::expires_at.gt(to_ms(now)))
        .order(leases::expires_at)
        .select((
            leases::id,
            leases::feature,
            leases::user,
            leases::host,
            leases::expires_at,
        ))
        .load(conn)?;
    let licenses = rows
        .iter()
        .map(|row| LicenseTerms::new(&license_from_row(row), now))
        .collect();
    let mut by_feature: std::collections::BTreeMap<String, Vec<License>> = Default::default();
    for row in &rows {
        by_feature
            .entry(row.feature.clone())
            .or_default()
            .push(license_from_row(row));
    }
    let features = by_feature
        .into_iter()
        .map(|(name, ls)| {
            let in_use = u32::try_from(live.get(&name).copied().unwrap_or(0)).unwrap_or(0);
            FeatureStatus::new(feature_seats(&name, ls, in_use, now))
        })
        .collect();

    let valid_until = state.valid_until.map(from_ms);
    let high_water = state.clock_high_water.map(from_ms);
    let sync = validity::sync_state(valid_until, now);
    let date = |d: DateTime<Utc>| d.format("%Y-%m-%d %H:%M UTC").to_string();
    let (name, issuing, message, days_left) = if validity::check_clock(now, high_water).is_err() {
        (
            State::ClockRollback,
            false,
            format!(
                "The system clock is behind a time this server has already seen ({}). \
                 No licenses are issued until the clock is corrected; if the clock is right \
                 and that time was wrong, synchronize directly (`local-server sync`): a \
                 successful synchronization with Solme's server sets it back.",
                high_water.map(date).unwrap_or_default()
            ),
            None,
        )
    } else {
        match sync {
            SyncState::NeverSynced => (
                State::NeverSynchronized,
                false,
                "Never synchronized with Solme: no licenses are issued. Run `local-server sync`, \
                 or synchronize by email (export-sync-data, then import-license-file)."
                    .to_owned(),
                None,
            ),
            SyncState::Synchronized { valid_until, days_left } => (
                State::Synchronized,
                true,
                format!(
                    "Synchronized: licenses are issued until {} ({days_left} of {SYNC_VALIDITY_DAYS} days left).",
                    date(valid_until)
                ),
                Some(days_left),
            ),
            SyncState::Warning { valid_until, days_left } => (
                State::Warning,
                true,
                format!(
                    "WARNING: synchronize within {days_left} days (fewer than {WARNING_DAYS} left): \
                     after {} no licenses are issued.",
                    date(valid_until)
                ),
                Some(days_left),
            ),
            SyncState::Expired { valid_until } => (
                State::Expired,
                false,
                format!(
                    "Not synchronized for more than {SYNC_VALIDITY_DAYS} days (ran out {}): \
                     no licenses are issued until the server synchronizes.",
                    date(valid_until)
                ),
                Some(validity::days_left(valid_until, now)),
            ),
        }
    };
    let resolved = match proxy {
        Some(p) => Some(p.clone()),
        None => ProxySettings::resolve(None, settings.proxy.as_ref()).ok(),
    };
    let proxy = resolved.and_then(|p| p.proxy.map(|u| format!("{u} (from {})", p.source)));
    Ok(StatusReport {
        client: ClientStatus {
            server_id: settings.server_id,
            now,
            state: name,
            issuing,
            message,
            valid_until,
            days_left,
            last_sync_at: state.last_sync_at.map(from_ms),
            features,
        },
        fingerprint,
        // An unknown word (a database edited by hand) shows as no channel.
        last_sync_channel: state
            .last_sync_channel
            .and_then(|channel| channel.parse().ok()),
        license_file_sequence: state.sequence,
        revision: state.revision,
        customer: state.customer,
        auto_sync: settings.auto_sync,
        next_auto_sync_at: state.next_auto_sync_at.map(from_ms),
        last_attempt_at: state.last_attempt_at.map(from_ms),
        last_attempt_error: state.last_attempt_error,
        consecutive_failures: state.consecutive_failures,
        main_server: settings.endpoints.iter().map(|e| e.url()).collect(),
        proxy,
        licenses,
        borrowed,
        clock: None,
    })
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = |d: DateTime<Utc>| d.format("%Y-%m-%d %H:%M UTC").to_string();
        writeln!(f, "License server {}", self.client.server_id)?;
        writeln!(f, "  key fingerprint: {}", self.fingerprint)?;
        writeln!(f, "{}", self.client.message)?;
        if let Some(clock) = &self.clock {
            writeln!(f, "  clock:           {clock}")?;
        }
        if let Some(customer) = &self.customer {
            writeln!(f, "  customer:        {customer}")?;
        }
        match self.client.last_sync_at {
            Some(at) => writeln!(
                f,
                "  last sync:       {} ({}), license file #{}",
                date(at),
                self.last_sync_channel.map_or("?", |channel| match channel {
                    Channel::Internet => crate::wording::OVER_THE_INTERNET,
                    Channel::File => crate::wording::BY_EMAIL,
                    Channel::Primary => crate::wording::FROM_THE_PRIMARY,
                }),
                self.license_file_sequence.unwrap_or(0)
            )?,
            None => writeln!(f, "  last sync:       never")?,
        }
        if let Some(until) = self.client.valid_until {
            writeln!(
                f,
                "  valid until:     {} ({} days left)",
                date(until),
                self.client.days_left.unwrap_or(0)
            )?;
        }
        write!(f, "  auto-sync:       {}", self.auto_sync)?;
        match self.next_auto_sync_at {
            Some(next) if self.auto_sync != AutoSyncMode::Off => {
                writeln!(f, ", next run {}", date(next))?
            }
            _ => writeln!(f)?,
        }
        if let (Some(at), Some(err)) = (self.last_attempt_at, &self.last_attempt_error) {
            writeln!(
                f,
                "  last attempt:    {} failed ({} in a row): {err}",
                date(at),
                self.consecutive_failures
            )?;
        }
        writeln!(f, "  main server:     {}", self.main_server.join(", then "))?;
        if let Some(proxy) = &self.proxy {
            writeln!(f, "  proxy:           {proxy}")?;
        }
        if self.client.features.is_empty() {
            writeln!(f, "  licenses:        none")?;
        } else {
            writeln!(f, "  licenses:")?;
            for feat in &self.client.features {
                let seats = &feat.seats;
                writeln!(
                    f,
                    "    {:<20} {:>11}, {:>5} in use, {:>5} free: {}",
                    seats.feature,
                    seats_text(seats.seats_total),
                    seats.in_use,
                    seats.free,
                    feat.availability_text
                )?;
            }
        }
        if !self.licenses.is_empty() {
            writeln!(f, "  license terms:")?;
            for terms in &self.licenses {
                writeln!(
                    f,
                    "    {:<20} {:>11}, {}, {}",
                    terms.feature,
                    seats_text(terms.seats),
                    terms.validity_text,
                    terms.borrow_text
                )?;
            }
        }
        if !self.borrowed.is_empty() {
            writeln!(f, "  borrowed seats:")?;
            for seat in &self.borrowed {
                writeln!(
                    f,
                    "    {:<20} {}@{} until {}",
                    seat.feature,
                    seat.user,
                    seat.host,
                    date(from_ms(seat.until))
                )?;
            }
        }
        Ok(())
    }
}
