//! The rules that say whether a seat may be issued, as pure functions of the time they
//! are given: the clock and sync-state refusals, the seats valid now, how long a borrow
//! may last, and whether the options file lets a client take a free seat.
//!
//! Why pure: `import`, `status` and `sync` judge licenses by the same rules from the
//! database rows, and the engine judges them under its lock; none of them may read a
//! clock or wait on I/O here, and each rule is tested with a time it chooses.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use shared_proto::validity::{self, SyncState};
use shared_proto::{ErrorCode, License};

use super::request::CheckOut;
use crate::db::{self, from_ms};
use crate::error::Error;
use crate::options::{self, Holdings, Options};

/// How far the stored clock high-water mark may lag the one in memory. It is well under
/// the rollback tolerance (10 minutes), so a crash cannot hide a rollback.
pub const HIGH_WATER_PERSIST_MS: i64 = 60_000;

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

/// Sum of the seats of the licenses valid at `now`; `None` when none is.
pub fn seats_valid_now(licenses: &[License], now: DateTime<Utc>) -> Option<u32> {
    let mut valid = licenses.iter().filter(|l| l.check(now).is_ok()).peekable();
    // No valid license is not the same as a valid license of zero seats.
    valid.peek()?;
    Some(valid.map(|l| l.seats).fold(0u32, u32::saturating_add))
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

pub fn license_from_row(row: &db::LicenseRow) -> License {
    License {
        feature: row.feature.clone(),
        seats: u32::try_from(row.seats).unwrap_or(0),
        valid_from: row.valid_from.map(from_ms),
        valid_until: row.valid_until.map(from_ms),
        max_borrow_hours: row.max_borrow_hours.and_then(|h| u32::try_from(h).ok()),
    }
}

/// The seats a check-out of `feature` may count on at `now`: `FEATURE_UNKNOWN` when no
/// license names it (`licenses` is `None`), `LICENSE_EXPIRED` when none is valid now.
pub fn seats_now(
    feature: &str,
    licenses: Option<&[License]>,
    now: DateTime<Utc>,
) -> Result<u32, Error> {
    let licenses = licenses.ok_or_else(|| {
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

/// The clock check that comes before any other: `CLOCK_ROLLBACK` when `now` is behind
/// the latest time seen (beyond the tolerance); otherwise the mark raised to `now`.
pub fn raise_high_water(
    now: DateTime<Utc>,
    high_water: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, Error> {
    if validity::check_clock(now, high_water).is_err() {
        return Err(clock_rollback(high_water));
    }
    Ok(high_water.map_or(now, |m| m.max(now)))
}

/// The stored high-water mark to write at `now_ms`, if the one in memory got a minute
/// ahead of the stored one (or none is stored).
pub fn high_water_to_persist(
    high_water: Option<DateTime<Utc>>,
    stored: Option<i64>,
    now_ms: i64,
) -> Option<i64> {
    let mark = high_water.map(crate::db::to_ms)?.max(now_ms);
    match stored {
        Some(stored) if mark - stored < HIGH_WATER_PERSIST_MS => None,
        _ => Some(mark),
    }
}

/// When a borrow of `feature` asked for `wanted` at `now` ends: at most the longest
/// borrow of a license valid now, that license's end, and the server's validity
/// (`valid_until`). Refused when no license valid now allows borrowing, or when that
/// end is now.
pub fn borrow_until(
    feature: &str,
    licenses: &[License],
    wanted: StdDuration,
    now: DateTime<Utc>,
    valid_until: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, Error> {
    let wanted = Duration::from_std(wanted).unwrap_or(Duration::MAX);
    // Each borrowable license valid now allows its limit, cut at its own end; the most
    // generous one counts.
    let best = licenses
        .iter()
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
    // Never longer than asked, nor past the server's own validity.
    let mut until = best.min(now + wanted);
    if let Some(valid_until) = valid_until {
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

/// Whether a client may take a seat of its feature now.
#[derive(Debug)]
pub enum Seat {
    Free,
    /// Every seat is in use.
    NoneFree,
    /// A seat is free but the options file keeps this client from it (a reservation
    /// for others, or one of its limits); the refusal says which rule.
    Held(Error),
}

/// The options file's `exclude`, `include` and `max` rules for this client: rules that
/// hold however many seats are free.
pub fn client_rules(
    rules: &Options,
    request: &CheckOut,
    holders: &dyn Holdings,
) -> Result<(), Error> {
    rules.check_client(&request.feature, &request.user, &request.host, holders)
}

/// Whether a seat is free for a client whose [`client_rules`] passed: counts and
/// reservations only, so a check-out evaluates its client rules once.
pub fn free_seat(
    rules: &Options,
    request: &CheckOut,
    holders: &dyn Holdings,
    in_use: u32,
    seats: u32,
) -> Seat {
    let feature = request.feature.as_str();
    if in_use >= seats {
        return Seat::NoneFree;
    }
    // Free seats beyond those still owed to reservations the client is not part of.
    let (owed, rule) = rules.reserved_for_others(feature, &request.user, &request.host, holders);
    if in_use.saturating_add(owed) >= seats {
        return rule.map_or(Seat::NoneFree, |r| {
            Seat::Held(options::reserved_refusal(feature, r))
        });
    }
    Seat::Free
}

/// Whether a waiter may take a seat now: [`client_rules`] (they may hold now that its
/// user holds more), then [`free_seat`]. No rule is looked at while no seat is free.
pub fn seat_for(
    rules: &Options,
    request: &CheckOut,
    holders: &dyn Holdings,
    in_use: u32,
    seats: u32,
) -> Seat {
    if in_use >= seats {
        return Seat::NoneFree;
    }
    match client_rules(rules, request, holders) {
        Ok(()) => free_seat(rules, request, holders, in_use, seats),
        Err(refusal) => Seat::Held(refusal),
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::TimeZone;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn hours(h: i64) -> Duration {
        Duration::hours(h)
    }

    fn license(seats: u32, from: Option<i64>, until: Option<i64>, borrow: Option<u32>) -> License {
        License {
            feature: "cad".into(),
            seats,
            valid_from: from.map(|h| t0() + hours(h)),
            valid_until: until.map(|h| t0() + hours(h)),
            max_borrow_hours: borrow,
        }
    }

    fn code(result: Result<impl std::fmt::Debug, Error>) -> Option<ErrorCode> {
        result.err().and_then(|e| e.code())
    }

    #[test]
    fn seats_valid_now_sum_the_licenses_in_their_dates() {
        let licenses = [
            license(2, None, None, None),
            license(3, Some(-1), Some(1), None),
            license(7, Some(1), None, None),
        ];
        assert_eq!(seats_valid_now(&licenses, t0()), Some(5));
        assert_eq!(seats_valid_now(&licenses, t0() + hours(2)), Some(9));
        let ended = [license(4, None, Some(-1), None)];
        assert_eq!(seats_valid_now(&ended, t0()), None);
        assert_eq!(
            seats_valid_now(&[license(0, None, None, None)], t0()),
            Some(0)
        );
    }

    #[test]
    fn seats_now_tells_an_unknown_feature_from_an_ended_license() {
        let ended = [license(4, None, Some(-1), None)];
        assert_eq!(
            code(seats_now("cad", None, t0())),
            Some(ErrorCode::FeatureUnknown)
        );
        assert_eq!(
            code(seats_now("cad", Some(&ended), t0())),
            Some(ErrorCode::LicenseExpired)
        );
        assert_eq!(
            seats_now("cad", Some(&ended), t0() - hours(2)).ok(),
            Some(4)
        );
    }

    #[test]
    fn a_borrow_ends_at_the_first_of_asked_license_limit_license_end_and_validity() {
        let asked = |h: u64| StdDuration::from_secs(h * 3_600);
        let borrowable = [license(1, None, Some(48), Some(24))];
        let until =
            |wanted, valid_until| borrow_until("cad", &borrowable, wanted, t0(), valid_until).ok();
        assert_eq!(until(asked(8), None), Some(t0() + hours(8)), "as asked");
        assert_eq!(
            until(asked(100), None),
            Some(t0() + hours(24)),
            "license limit"
        );
        assert_eq!(
            until(asked(100), Some(t0() + hours(5))),
            Some(t0() + hours(5)),
            "server validity"
        );
        let ending = [license(1, None, Some(3), Some(24))];
        assert_eq!(
            borrow_until("cad", &ending, asked(100), t0(), None).ok(),
            Some(t0() + hours(3)),
            "license end"
        );
        // The most generous license valid now counts.
        let two = [
            license(1, None, None, Some(2)),
            license(1, None, None, Some(10)),
        ];
        assert_eq!(
            borrow_until("cad", &two, asked(100), t0(), None).ok(),
            Some(t0() + hours(10))
        );
    }

    #[test]
    fn a_borrow_is_refused_when_no_license_valid_now_allows_one() {
        let asked = StdDuration::from_secs(3_600);
        let not_borrowable = [license(1, None, None, None)];
        let borrowable_later = [license(1, Some(1), None, Some(24))];
        for licenses in [&not_borrowable[..], &borrowable_later[..], &[]] {
            assert_eq!(
                code(borrow_until("cad", licenses, asked, t0(), None)),
                Some(ErrorCode::Malformed)
            );
        }
        let borrowable = [license(1, None, None, Some(24))];
        assert_eq!(
            code(borrow_until("cad", &borrowable, asked, t0(), Some(t0()))),
            Some(ErrorCode::LicenseExpired),
            "the server's validity ends now"
        );
    }

    #[test]
    fn the_clock_may_go_back_within_the_tolerance_only() {
        let seen = t0() + Duration::minutes(10);
        assert_eq!(raise_high_water(t0(), None).ok(), Some(t0()));
        assert_eq!(
            raise_high_water(t0(), Some(seen)).ok(),
            Some(seen),
            "within"
        );
        assert_eq!(
            code(raise_high_water(t0() - Duration::seconds(1), Some(seen))),
            Some(ErrorCode::ClockRollback)
        );
        assert_eq!(
            raise_high_water(seen + hours(1), Some(seen)).ok(),
            Some(seen + hours(1))
        );
    }

    #[test]
    fn the_high_water_mark_is_stored_once_a_minute_ahead() {
        let ms = crate::db::to_ms(t0());
        assert_eq!(high_water_to_persist(None, None, ms), None);
        assert_eq!(high_water_to_persist(Some(t0()), None, ms), Some(ms));
        let stored = ms - HIGH_WATER_PERSIST_MS + 1;
        assert_eq!(high_water_to_persist(Some(t0()), Some(stored), ms), None);
        assert_eq!(
            high_water_to_persist(Some(t0()), Some(stored - 1), ms),
            Some(ms)
        );
    }

    #[test]
    fn sync_refusals_name_the_state() {
        let refusal = |state| sync_refusal(state).and_then(|e| e.code());
        assert_eq!(
            refusal(SyncState::NeverSynced),
            Some(ErrorCode::NotSynchronized)
        );
        let valid_until = t0();
        assert_eq!(
            refusal(SyncState::Expired { valid_until }),
            Some(ErrorCode::SyncExpired)
        );
        let days_left = 3;
        assert_eq!(
            refusal(SyncState::Warning {
                valid_until,
                days_left
            }),
            None
        );
    }

    #[derive(Default)]
    struct Held(HashMap<&'static str, u32>);

    impl Holdings for Held {
        fn by_user(&self, user: &str) -> u32 {
            self.0.get(user).copied().unwrap_or(0)
        }
        fn by_host(&self, _host: &str) -> u32 {
            0
        }
    }

    fn client(user: &str) -> CheckOut {
        CheckOut {
            feature: "cad".into(),
            client: "test".into(),
            user: user.into(),
            host: "ws".into(),
            wait: StdDuration::ZERO,
            borrow: None,
        }
    }

    fn rules(text: &str) -> Options {
        Options::parse(text).unwrap_or_default()
    }

    fn verdict(seat: &Seat) -> &'static str {
        match seat {
            Seat::Free => "free",
            Seat::NoneFree => "none free",
            Seat::Held(e) if e.code() == Some(ErrorCode::OptionsDenied) => "held",
            Seat::Held(_) => "held, wrong code",
        }
    }

    #[test]
    fn a_reservation_holds_free_seats_for_its_clients_only() {
        let rules = rules("[[reserve]]\nfeature = \"cad\"\nseats = 1\nuser = \"alice\"\n");
        let held = Held::default();
        assert_eq!(rules.rule_count(), 1);
        // Two seats, one in use: the free one is alice's.
        let seat = |user| seat_for(&rules, &client(user), &held, 1, 2);
        assert_eq!(verdict(&seat("alice")), "free");
        assert_eq!(verdict(&seat("bob")), "held");
        // Two free: bob may take one.
        assert_eq!(
            verdict(&seat_for(&rules, &client("bob"), &held, 0, 2)),
            "free"
        );
        // Once alice holds her reserved seat, the rest is anyone's.
        let alice_holds = Held(HashMap::from([("alice", 1)]));
        assert_eq!(
            verdict(&seat_for(&rules, &client("bob"), &alice_holds, 1, 2)),
            "free"
        );
        assert_eq!(
            verdict(&seat_for(&rules, &client("alice"), &held, 2, 2)),
            "none free"
        );
    }

    #[test]
    fn a_limit_holds_a_waiter_but_free_seat_leaves_the_rules_to_the_caller() {
        let rules = rules("[[max]]\nfeature = \"cad\"\nseats = 1\nuser = \"carol\"\n");
        let carol_holds = Held(HashMap::from([("carol", 1)]));
        let carol = client("carol");
        assert_eq!(
            verdict(&seat_for(&rules, &carol, &carol_holds, 1, 5)),
            "held"
        );
        assert_eq!(
            code(client_rules(&rules, &carol, &carol_holds)),
            Some(ErrorCode::OptionsDenied)
        );
        assert_eq!(
            verdict(&free_seat(&rules, &carol, &carol_holds, 1, 5)),
            "free"
        );
    }
}
