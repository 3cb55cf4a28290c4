//! The one clock all three programs read time through.
//!
//! It is the system clock plus an offset. The offset exists so that tests and the
//! simulation can run a program "in the future" (the 366-day rule in seconds): every
//! binary reads `SOLME_CLOCK_OFFSET` at start-up through [`Clock::from_env`]. Clones
//! share the offset, so a test can move the clock of a whole in-process server.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::error::ProtoError;

/// Environment variable that moves a program's clock, e.g. `367d`, `-2h`, `1d12h`.
pub const CLOCK_OFFSET_ENV: &str = "SOLME_CLOCK_OFFSET";

/// Largest offset accepted (100 years): beyond it chrono arithmetic gets close to its limits.
const MAX_OFFSET_DAYS: i64 = 36_600;

/// The system clock moved by an offset shared between clones.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The real clock, not moved.
    pub fn system() -> Self {
        Self::default()
    }

    /// The real clock moved by `offset` (negative moves it back).
    pub fn with_offset(offset: Duration) -> Self {
        Self {
            offset_ms: Arc::new(AtomicI64::new(offset.num_milliseconds())),
        }
    }

    /// The clock `SOLME_CLOCK_OFFSET` asks for; the real clock when it is unset or empty.
    pub fn from_env() -> Result<Self, ProtoError> {
        match std::env::var(CLOCK_OFFSET_ENV) {
            Ok(value) if !value.trim().is_empty() => Ok(Self::with_offset(parse_offset(&value)?)),
            _ => Ok(Self::system()),
        }
    }

    /// The current time as this clock sees it.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }

    /// Moves this clock (and every clone of it) by `by`.
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }

    /// How far this clock is from the system clock.
    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }
}

/// Milliseconds since the epoch: how the programs store a time in their databases.
pub fn to_millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The inverse of [`to_millis`]; out-of-range values (impossible unless the database
/// was edited by hand) become the epoch rather than a panic.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Parses an offset: an optional sign, then either a plain number of days (`367`) or
/// numbers with units `d`, `h`, `m`, `s` (`1d12h`, `-30m`).
pub fn parse_offset(text: &str) -> Result<Duration, ProtoError> {
    let bad = || {
        ProtoError::Malformed(format!(
            "clock offset {text:?} is not understood; write e.g. 367d, -2h, 1d12h, 30m or 45s"
        ))
    };
    let trimmed = text.trim();
    let (negative, rest) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    if rest.is_empty() {
        return Err(bad());
    }
    let total_seconds: i64 = if rest.bytes().all(|b| b.is_ascii_digit()) {
        let days: i64 = rest.parse().map_err(|_| bad())?;
        if days > MAX_OFFSET_DAYS {
            return Err(bad());
        }
        days * 86_400
    } else {
        let mut total = 0i64;
        let mut number = String::new();
        for c in rest.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                's' => 1,
                _ => return Err(bad()),
            };
            let value: i64 = number.parse().map_err(|_| bad())?;
            total = value
                .checked_mul(unit)
                .and_then(|seconds| total.checked_add(seconds))
                .filter(|&t| t <= MAX_OFFSET_DAYS * 86_400)
                .ok_or_else(bad)?;
            number.clear();
        }
        if !number.is_empty() {
            return Err(bad());
        }
        total
    };
    let seconds = if negative {
        -total_seconds
    } else {
        total_seconds
    };
    Ok(Duration::seconds(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_offset("367").ok(), Some(Duration::days(367)));
        assert_eq!(parse_offset("367d").ok(), Some(Duration::days(367)));
        assert_eq!(parse_offset("-2h").ok(), Some(Duration::hours(-2)));
        assert_eq!(
            parse_offset("1d12h").ok(),
            Some(Duration::days(1) + Duration::hours(12))
        );
        assert_eq!(parse_offset("+30m").ok(), Some(Duration::minutes(30)));
        assert_eq!(parse_offset(" 45s ").ok(), Some(Duration::seconds(45)));
    }

    #[test]
    fn refuses_nonsense() {
        for text in [
            "",
            "-",
            "d",
            "5x",
            "12h3",
            "1.5d",
            "99999999999999999999",
            "40000d",
        ] {
            assert!(parse_offset(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn clones_share_the_offset() {
        let clock = Clock::system();
        let clone = clock.clone();
        clock.advance(Duration::days(400));
        assert_eq!(clone.offset(), Duration::days(400));
        assert!(clone.now() - Utc::now() > Duration::days(399));
    }
}
