//! The status report (`status`, `GET /api/v1/status`, the manager page), computed from
//! the database so that it is the same whether or not `serve` runs.

use std::fmt;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use shared_proto::validity::{
    self, SyncState, CLOCK_ROLLBACK_TOLERANCE, SYNC_VALIDITY_DAYS, WARNING_DAYS,
};
use shared_proto::{Fingerprint, License};

use crate::config::{AutoSyncMode, Settings};
use crate::db::{self, from_ms, to_ms};
use crate::error::Error;
use crate::import::Channel;
use crate::leases::{feature_seats, license_from_row, FeatureSeats, SeatsState};
use crate::pair::standby::CLOCK_WARNING;
use crate::pair::store::{self as pair_store, PairRow, PairState, Role};
use crate::proxy::ProxySettings;
use crate::schema::leases;
use crate::wording::{duration_text, plural_returned, seats_text, time_text};

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
    /// The primary/standby pair this server belongs to; absent when it is not paired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pair: Option<PairStatus>,
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
    let pair_row = pair_store::load(conn)?;
    // A server of a pair may be synchronized and still not issue (a following standby,
    // a fenced primary): clients read `issuing`, so it says what the lease engine does.
    let standby = pair_row
        .as_ref()
        .is_some_and(|row| row.role() == Role::Standby);
    let message = if standby && name == State::NeverSynchronized {
        // A standby does not synchronize: its license file comes from the primary.
        "No copy of the primary's license file yet: no licenses are issued. The primary \
         passes it on after its next synchronization with Solme, while this standby runs."
            .to_owned()
    } else {
        message
    };
    let (issuing, message) = match crate::pair::gate::refusal(pair_row.as_ref(), now) {
        Some(refusal) if issuing => (false, format!("{message} Not issuing now: {refusal}.")),
        _ => (issuing, message),
    };
    let pair = pair_row.map(|row| PairStatus::new(&row, state.sequence, now));
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
        pair,
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
        if let Some(pair) = &self.pair {
            write!(f, "{pair}")?;
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

/// How many of the standby's calls may go missing before the other server counts as
/// unreachable.
const MISSED_CALLS: i32 = 3;

/// The primary/standby pair as `status` and the manager page show it: the stored pair,
/// and the same in words.
#[derive(Debug, Clone, Serialize)]
pub struct PairStatus {
    pub role: Role,
    pub state: PairState,
    pub epoch: i64,
    /// The other server's key fingerprint, pinned at pairing (to compare with what the
    /// other server's `status` shows as its own).
    pub peer_fingerprint: String,
    /// On a standby: the primary's address it calls.
    pub peer_address: Option<String>,
    /// When this server last heard from the other one.
    pub last_heard_at: Option<DateTime<Utc>>,
    /// Whether the other server was heard from within the last few calls.
    pub peer_reachable: bool,
    /// The other server's clock minus this one's at the last measure (positive: this
    /// server's clock is behind).
    pub clock_offset_ms: Option<i64>,
    pub clock_measured_at: Option<DateTime<Utc>>,
    /// On a promoted standby: when, by whom and why.
    pub promoted_at: Option<DateTime<Utc>>,
    pub promoted_by: Option<String>,
    pub promoted_reason: Option<String>,
    /// When a promoted standby's failover period ends.
    pub failover_ends: Option<DateTime<Utc>>,
    /// When the standby last handed back to the primary.
    pub handed_back_at: Option<DateTime<Utc>>,
    /// Both servers issued seats at once (found at the hand-back), in words.
    pub overlap: Option<String>,
    /// The pair in words, one line each, as `status` prints them.
    pub text: Vec<String>,
    /// What needs a person's attention (clocks apart, both servers issued), in words.
    pub warnings: Vec<String>,
}

impl PairStatus {
    /// The pair as stored, seen at `now`; `held_sequence` is the license file this
    /// server holds (a standby's copy of the primary's).
    pub fn new(row: &PairRow, held_sequence: Option<i64>, now: DateTime<Utc>) -> Self {
        let interval =
            chrono::Duration::milliseconds(row.interval_ms.unwrap_or(
                i64::try_from(crate::pair::DEFAULT_INTERVAL.as_millis()).unwrap_or(10_000),
            ));
        let heard = row.last_heard();
        let peer_reachable = heard.is_some_and(|at| now - at <= interval * MISSED_CALLS);
        let mut status = Self {
            role: row.role(),
            state: row.state(),
            epoch: row.epoch,
            peer_fingerprint: row.peer_fingerprint(),
            peer_address: row.peer_address.clone(),
            last_heard_at: heard,
            peer_reachable,
            clock_offset_ms: row.clock_offset_ms,
            clock_measured_at: row.clock_measured_at.map(from_ms),
            promoted_at: row.promoted_at.map(from_ms),
            promoted_by: row.promoted_by.clone(),
            promoted_reason: row.promoted_reason.clone(),
            failover_ends: row.failover_ends(),
            handed_back_at: row.handed_back_at.map(from_ms),
            overlap: row.overlap_detail.clone(),
            text: Vec::new(),
            warnings: Vec::new(),
        };
        status.text = match status.role {
            Role::Primary => status.primary_text(row, now),
            Role::Standby => status.standby_text(row, held_sequence, now),
        };
        status.warnings = status.warning_text(now);
        status
    }

    /// The other server, as this one names it.
    fn peer(&self) -> &'static str {
        match self.role {
            Role::Primary => "standby",
            Role::Standby => "primary",
        }
    }

    /// `; clocks 0.2 seconds apart`, when they were measured.
    fn clocks(&self) -> String {
        self.clock_offset_ms
            .map(|offset| format!("; clocks {} apart", clock_span(offset)))
            .unwrap_or_default()
    }

    fn heard_ago(&self, now: DateTime<Utc>) -> String {
        match self.last_heard_at {
            Some(at) => ago_text(now - at),
            None => "never".to_owned(),
        }
    }

    fn primary_text(&self, row: &PairRow, now: DateTime<Utc>) -> Vec<String> {
        let paired = format!("standby paired (key {})", self.peer_fingerprint);
        let mut lines = vec![match self.state {
            PairState::Waiting => format!(
                "{paired}; waiting for the standby's word before issuing seats (it may have \
                 been promoted while this server was off){}",
                row.waiting_until
                    .map(|until| format!(
                        "; without an answer this server issues from {}",
                        time_text(from_ms(until))
                    ))
                    .unwrap_or_default()
            ),
            PairState::Fenced => format!(
                "{paired}; fenced: the standby was promoted{}; it issues seats now. This \
                 server issues again once the standby has handed back to it",
                self.promoted_at
                    .map(|at| format!(" at {}", time_text(at)))
                    .unwrap_or_default()
            ),
            _ if self.peer_reachable => format!(
                "{paired}, {}, heard {}{}",
                state_words(row.last_heard_state.as_deref()),
                self.heard_ago(now),
                self.clocks()
            ),
            _ => match self.last_heard_at {
                Some(at) => format!(
                    "{paired}, but unreachable since {} ({} ago): this server issues seats; \
                     the standby keeps no copy of them until it answers again",
                    time_text(at),
                    duration_text(now - at)
                ),
                None => format!("{paired}, not heard from yet"),
            },
        }];
        if let Some(at) = self.handed_back_at {
            lines.push(format!("the standby last handed back at {}", time_text(at)));
        }
        lines
    }

    fn standby_text(
        &self,
        row: &PairRow,
        held_sequence: Option<i64>,
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let primary = self
            .peer_address
            .as_deref()
            .map_or("(address unknown)", |a| a.trim_end_matches('/'));
        let held = match held_sequence {
            Some(sequence) => format!("license file {sequence} held"),
            None => "no copy of the primary's license file yet".to_owned(),
        };
        let mut lines = Vec::new();
        match self.state {
            PairState::Promoted => {
                let by = self.promoted_by.as_deref().unwrap_or("someone");
                let at = self.promoted_at.map(time_text).unwrap_or_default();
                let reason = self
                    .promoted_reason
                    .as_deref()
                    .map(|r| format!(" (reason: {r})"))
                    .unwrap_or_default();
                lines.push(match self.failover_ends {
                    Some(ends) if now < ends => format!(
                        "promoted by {by} at {at}{reason}, {} of failover left (until {}): \
                         this server issues seats in place of the primary at {primary}",
                        duration_text(ends - now),
                        time_text(ends)
                    ),
                    Some(ends) => format!(
                        "promoted by {by} at {at}{reason}; the failover period ended at {}: \
                         this server issues no more seats. Bring the primary back",
                        time_text(ends)
                    ),
                    None => format!(
                        "promoted by {by} at {at}{reason}; it holds no failover period: it \
                         issues no seats"
                    ),
                });
            }
            PairState::SteppingDown => lines.push(format!(
                "stepping down: handing back to the primary at {primary}; this server issues \
                 no seats"
            )),
            _ if self.peer_reachable => lines.push(format!(
                "following the primary at {primary} (key {}), heard {}; {held}{}",
                self.peer_fingerprint,
                self.heard_ago(now),
                self.clocks()
            )),
            _ => {
                lines.push(format!(
                    "following the primary at {primary} (key {}), but not heard from {}; \
                     {held}",
                    self.peer_fingerprint,
                    self.last_heard_at
                        .map(|at| format!(
                            "since {} ({} ago)",
                            time_text(at),
                            duration_text(now - at)
                        ))
                        .unwrap_or_else(|| "yet".to_owned())
                ));
                let silence = crate::pair::standby::silence(row);
                let silent = self.last_heard_at.is_none_or(|at| now - at >= silence);
                lines.push(if silent {
                    "if the primary is down, make sure it is off, then promote this server \
                     (`local-server promote`, or Promote Standby on the manager page)"
                        .to_owned()
                } else {
                    format!(
                        "a promotion is possible once the primary has been silent for {}",
                        duration_text(silence)
                    )
                });
            }
        }
        if let (Some(at), PairState::Following) = (self.handed_back_at, self.state) {
            lines.push(format!(
                "stepped down at {}, handed back {} to the primary",
                time_text(at),
                entries_text(row.handed_back_entries.unwrap_or(0))
            ));
        }
        lines
    }

    fn warning_text(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(offset) = self.clock_offset_ms {
            if chrono::Duration::milliseconds(offset.abs()) > CLOCK_WARNING {
                let measured = self
                    .clock_measured_at
                    .map(|at| format!(" (measured {})", ago_text(now - at)))
                    .unwrap_or_default();
                let promotion = match self.role {
                    Role::Standby => format!(
                        "; this standby cannot be promoted while the two are more than {} \
                         apart",
                        duration_text(CLOCK_ROLLBACK_TOLERANCE)
                    ),
                    Role::Primary => String::new(),
                };
                warnings.push(format!(
                    "this server's clock is {} {} the {}'s{measured}: check both clocks \
                     against a reliable time source (NTP) and correct the one that is \
                     wrong{promotion}",
                    clock_span(offset),
                    if offset > 0 { "behind" } else { "ahead of" },
                    self.peer()
                ));
            }
        }
        if let Some(overlap) = &self.overlap {
            warnings.push(overlap.clone());
        }
        warnings
    }
}

impl fmt::Display for PairStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.role {
            Role::Primary => "  pair:            ",
            Role::Standby => "  standby:         ",
        };
        for (n, line) in self.text.iter().enumerate() {
            let label = if n == 0 { label } else { "                   " };
            writeln!(f, "{label}{line}")?;
        }
        for warning in &self.warnings {
            writeln!(f, "  WARNING: {warning}")?;
        }
        Ok(())
    }
}

/// `just now` under a second, else `4 seconds ago`.
pub fn ago_text(span: chrono::Duration) -> String {
    if span < chrono::Duration::seconds(1) {
        "just now".to_owned()
    } else {
        format!("{} ago", duration_text(span))
    }
}

/// How far apart two clocks are: tenths of a second below ten seconds, else as
/// [`duration_text`] says it.
pub fn clock_span(offset_ms: i64) -> String {
    let ms = offset_ms.unsigned_abs();
    if ms < 100 {
        "less than 0.1 seconds".to_owned()
    } else if ms < 10_000 {
        format!("{}.{} seconds", ms / 1000, ms % 1000 / 100)
    } else {
        duration_text(chrono::Duration::milliseconds(offset_ms.abs()))
    }
}

/// What the other server said it was doing, in words.
fn state_words(state: Option<&str>) -> &'static str {
    match state.and_then(|s| s.parse().ok()) {
        Some(PairState::Following) => "following",
        Some(PairState::Promoted) => "promoted",
        Some(PairState::SteppingDown) => "stepping down",
        Some(_) | None => "answering",
    }
}

/// "1 report entry" / "12 report entries".
fn entries_text(n: i64) -> String {
    if n == 1 {
        "1 report entry".to_owned()
    } else {
        format!("{n} report entries")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{Duration, TimeZone};
    use shared_proto::ServerIdentity;

    use super::*;

    fn at(hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 31, hour, minute, second)
            .unwrap()
    }

    /// A pair row of `role` in `state`, paired at 10:00 and last heard at `heard`.
    fn row(role: Role, state: PairState, heard: DateTime<Utc>) -> PairRow {
        let peer = ServerIdentity::generate().unwrap().public_keys();
        let address = (role == Role::Standby).then(|| "http://primary.example:7070".to_owned());
        let mut row = PairRow::new(role, state, &peer, address, at(10, 0, 0)).unwrap();
        row.last_heard_at = Some(to_ms(heard));
        row.last_heard_state = Some("following".into());
        row.interval_ms = Some(10_000);
        row
    }

    #[test]
    fn a_primary_says_how_its_standby_follows_and_how_far_apart_the_clocks_are() {
        let now = at(10, 42, 4);
        let mut r = row(Role::Primary, PairState::Serving, at(10, 42, 0));
        r.clock_offset_ms = Some(-230);
        let status = PairStatus::new(&r, Some(37), now);
        let key = r.peer_fingerprint();
        assert_eq!(
            status.text,
            [format!(
                "standby paired (key {key}), following, heard 4 seconds ago; clocks 0.2 \
                 seconds apart"
            )]
        );
        assert!(status.peer_reachable);
        assert!(status.warnings.is_empty());
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["role"], "primary");
        assert_eq!(json["state"], "serving");
        assert_eq!(json["peer_fingerprint"], key);
        assert_eq!(json["clock_offset_ms"], -230);
    }

    #[test]
    fn a_primary_says_since_when_its_standby_is_unreachable() {
        let r = row(Role::Primary, PairState::Serving, at(10, 42, 0));
        let status = PairStatus::new(&r, Some(37), at(10, 50, 0));
        assert!(!status.peer_reachable);
        assert!(
            status.text[0].contains(
                "but unreachable since 2027-01-31 10:42 UTC (8 minutes ago): this server \
                 issues seats"
            ),
            "{:?}",
            status.text
        );
    }

    #[test]
    fn a_fenced_or_waiting_primary_says_why_it_does_not_issue() {
        let fenced = PairStatus::new(
            &row(Role::Primary, PairState::Fenced, at(10, 51, 0)),
            Some(37),
            at(10, 51, 5),
        );
        assert!(
            fenced.text[0].contains("fenced: the standby was promoted; it issues seats now"),
            "{:?}",
            fenced.text
        );
        let mut waiting = row(Role::Primary, PairState::Waiting, at(9, 0, 0));
        waiting.waiting_until = Some(to_ms(at(10, 0, 30)));
        let waiting = PairStatus::new(&waiting, Some(37), at(10, 0, 5));
        assert!(
            waiting.text[0].contains(
                "waiting for the standby's word before issuing seats (it may have been \
                 promoted while this server was off); without an answer this server issues \
                 from 2027-01-31 10:00 UTC"
            ),
            "{:?}",
            waiting.text
        );
    }

    #[test]
    fn a_following_standby_names_its_primary_and_the_license_file_it_holds() {
        let r = row(Role::Standby, PairState::Following, at(10, 42, 0));
        let status = PairStatus::new(&r, Some(37), at(10, 42, 4));
        assert_eq!(
            status.text,
            [format!(
                "following the primary at http://primary.example:7070 (key {}), heard 4 \
                 seconds ago; license file 37 held",
                r.peer_fingerprint()
            )]
        );
        let fresh = PairStatus::new(&r, None, at(10, 42, 4));
        assert!(
            fresh.text[0].contains("no copy of the primary's license file yet"),
            "{:?}",
            fresh.text
        );
    }

    #[test]
    fn a_standby_whose_primary_is_silent_says_when_a_promotion_is_possible() {
        let r = row(Role::Standby, PairState::Following, at(10, 42, 0));
        let early = PairStatus::new(&r, Some(37), at(10, 43, 0));
        assert!(
            early.text[0].contains("but not heard from since 2027-01-31 10:42 UTC (1 minute ago)")
        );
        assert_eq!(
            early.text[1],
            "a promotion is possible once the primary has been silent for 2 minutes"
        );
        let late = PairStatus::new(&r, Some(37), at(10, 45, 0));
        assert!(late.text[1].starts_with("if the primary is down, make sure it is off"));
    }

    #[test]
    fn a_promoted_standby_says_who_promoted_it_and_how_much_failover_is_left() {
        let mut r = row(Role::Standby, PairState::Promoted, at(10, 40, 0));
        r.promoted_at = Some(to_ms(at(10, 50, 0)));
        r.promoted_by = Some("alice".into());
        r.promoted_reason = Some("primary's disk failed".into());
        r.failover_started_at = r.promoted_at;
        r.failover_days = Some(14);
        let status = PairStatus::new(&r, Some(37), at(10, 50, 0) + Duration::hours(2));
        assert_eq!(
            status.text,
            [
                "promoted by alice at 2027-01-31 10:50 UTC (reason: primary's disk failed), 13 \
              days 22 hours of failover left (until 2027-02-14 10:50 UTC): this server issues \
              seats in place of the primary at http://primary.example:7070"
            ]
        );
        assert_eq!(
            status.failover_ends,
            Some(at(10, 50, 0) + Duration::days(14))
        );
        let ended = PairStatus::new(&r, Some(37), at(10, 50, 0) + Duration::days(15));
        assert!(
            ended.text[0].contains("the failover period ended at 2027-02-14 10:50 UTC"),
            "{:?}",
            ended.text
        );
    }

    #[test]
    fn a_standby_that_stepped_down_says_what_it_handed_back() {
        let mut r = row(Role::Standby, PairState::Following, at(14, 2, 0));
        r.handed_back_at = Some(to_ms(at(14, 2, 0)));
        r.handed_back_entries = Some(12);
        let status = PairStatus::new(&r, Some(38), at(14, 2, 5));
        assert_eq!(
            status.text[1],
            "stepped down at 2027-01-31 14:02 UTC, handed back 12 report entries to the \
             primary"
        );
    }

    #[test]
    fn clocks_far_apart_and_both_servers_issuing_are_warned_about() {
        let mut r = row(Role::Standby, PairState::Following, at(10, 42, 0));
        r.clock_offset_ms = Some(180_000);
        r.clock_measured_at = Some(to_ms(at(10, 42, 0)));
        r.overlap_detail = Some("both servers issued seats between … and …".into());
        let status = PairStatus::new(&r, Some(37), at(10, 42, 10));
        assert_eq!(status.warnings.len(), 2, "{:?}", status.warnings);
        assert!(status.warnings[0].starts_with(
            "this server's clock is 3 minutes behind the primary's (measured 10 seconds ago)"
        ));
        assert!(status.warnings[0].contains("more than 10 minutes apart"));
        let mut primary = row(Role::Primary, PairState::Serving, at(10, 42, 0));
        primary.clock_offset_ms = Some(-180_000);
        let status = PairStatus::new(&primary, Some(37), at(10, 42, 10));
        assert!(status.warnings[0]
            .starts_with("this server's clock is 3 minutes ahead of the standby's"));
        let text = status.to_string();
        assert!(
            text.starts_with("  pair:            standby paired"),
            "{text}"
        );
        assert!(text.contains("\n  WARNING: this server's clock"), "{text}");
        // Within the warning's bound: nothing to say.
        primary.clock_offset_ms = Some(-119_000);
        assert!(PairStatus::new(&primary, Some(37), at(10, 42, 10))
            .warnings
            .is_empty());
    }
}
