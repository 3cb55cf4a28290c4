//! The 366-day rule and clock-rollback detection, as pure functions of the time.

use chrono::{DateTime, Duration, Utc};

use crate::error::ErrorCode;

/// A license file is good for this many days after Solme issued it.
pub const SYNC_VALIDITY_DAYS: i64 = 366;
/// Warn this many days before the limit.
pub const WARNING_DAYS: i64 = 30;
/// How far the clock may go back behind the latest time seen before it counts as a
/// rollback. Ten minutes absorbs NTP step corrections and VM resume jitter; a rollback
/// that matters (days, to stretch the 366-day window) is far larger.
pub const CLOCK_ROLLBACK_TOLERANCE: Duration = Duration::minutes(10);

/// Valid-until of a license file issued at `issued_at`.
pub fn valid_until_for(issued_at: DateTime<Utc>) -> DateTime<Utc> {
    issued_at + Duration::days(SYNC_VALIDITY_DAYS)
}

/// Days left until `valid_until`, as people count them: a day begun counts as left,
/// so right after a sync there are 366 days left and on the last day 1; negative once
/// overdue (−1 as soon as `valid_until` has passed).
pub fn days_left(valid_until: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    let ms = (valid_until - now).num_milliseconds();
    if ms >= 0 {
        (ms + DAY_MS - 1) / DAY_MS
    } else {
        ms.div_euclid(DAY_MS)
    }
}

/// Where a local server stands with respect to the 366-day rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    NeverSynced,
    Synchronized {
        valid_until: DateTime<Utc>,
        days_left: i64,
    },
    /// Still synchronized, but within [`WARNING_DAYS`] of the limit.
    Warning {
        valid_until: DateTime<Utc>,
        days_left: i64,
    },
    Expired {
        valid_until: DateTime<Utc>,
    },
}

/// The state of a server whose newest license file is valid until `valid_until`.
pub fn sync_state(valid_until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> SyncState {
    let Some(valid_until) = valid_until else {
        return SyncState::NeverSynced;
    };
    if now > valid_until {
        return SyncState::Expired { valid_until };
    }
    let days_left = days_left(valid_until, now);
    if days_left < WARNING_DAYS {
        SyncState::Warning {
            valid_until,
            days_left,
        }
    } else {
        SyncState::Synchronized {
            valid_until,
            days_left,
        }
    }
}

impl SyncState {
    /// The code a lease request gets in this state, if it is refused.
    pub fn refusal(&self) -> Option<ErrorCode> {
        match self {
            Self::NeverSynced => Some(ErrorCode::NotSynchronized),
            Self::Expired { .. } => Some(ErrorCode::SyncExpired),
            Self::Synchronized { .. } | Self::Warning { .. } => None,
        }
    }

    pub fn is_synchronized(&self) -> bool {
        self.refusal().is_none()
    }
}

/// `CLOCK_ROLLBACK` when `now` is behind the persisted high-water mark by more than
/// [`CLOCK_ROLLBACK_TOLERANCE`]. The caller raises the mark to `max(mark, now)`.
pub fn check_clock(now: DateTime<Utc>, high_water: Option<DateTime<Utc>>) -> Result<(), ErrorCode> {
    match high_water {
        Some(mark) if now < mark - CLOCK_ROLLBACK_TOLERANCE => Err(ErrorCode::ClockRollback),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_366_day_rule() {
        let issued = Utc::now();
        let until = valid_until_for(issued);
        assert_eq!(sync_state(None, issued), SyncState::NeverSynced);
        assert_eq!(
            sync_state(None, issued).refusal(),
            Some(ErrorCode::NotSynchronized)
        );
        assert!(matches!(
            sync_state(Some(until), issued),
            SyncState::Synchronized { days_left: 366, .. }
        ));
        assert!(matches!(
            sync_state(Some(until), issued + Duration::seconds(2)),
            SyncState::Synchronized { days_left: 366, .. }
        ));
        assert!(matches!(
            sync_state(Some(until), issued + Duration::days(340)),
            SyncState::Warning { days_left: 26, .. }
        ));
        assert_eq!(days_left(until, until - Duration::hours(1)), 1);
        assert_eq!(days_left(until, until), 0);
        assert_eq!(days_left(until, until + Duration::seconds(1)), -1);
        assert_eq!(days_left(until, until + Duration::days(2)), -2);
        assert!(sync_state(Some(until), until).is_synchronized());
        let expired = sync_state(Some(until), until + Duration::seconds(1));
        assert_eq!(expired.refusal(), Some(ErrorCode::SyncExpired));
    }

    #[test]
    fn rollback_beyond_the_tolerance_is_refused() {
        let mark = Utc::now();
        assert_eq!(check_clock(mark, None), Ok(()));
        assert_eq!(check_clock(mark - Duration::minutes(9), Some(mark)), Ok(()));
        assert_eq!(
            check_clock(mark - Duration::minutes(11), Some(mark)),
            Err(ErrorCode::ClockRollback)
        );
        assert_eq!(check_clock(mark + Duration::days(3), Some(mark)), Ok(()));
    }
}
