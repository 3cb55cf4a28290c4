//! The one clock all three programs read time through.
//!
//! It is the system clock plus an offset. The offset exists so that tests and the
//! simulation can run a program "in the future" (the 366-day rule in seconds). A
//! program gets it in one of two ways, chosen once at start by [`Clock::from_settings`]:
//!
//! - `SOLME_CLOCK_OFFSET` (e.g. `367d`): an offset fixed for the life of the process;
//! - `--clock-file FILE` (`SOLME_CLOCK_FILE`): a *live* simulated clock. The file holds
//!   the offset as JSON, `{"offset_ms": N}` (milliseconds; negative is the past), written
//!   whole with [`write_clock_file`]. A background thread reads it again every
//!   [`FOLLOW_EVERY`], so every clone follows a change within that time. A file that
//!   cannot be read at start is an error; a later unreadable or malformed write keeps
//!   the last good offset (logged once, and once more when the file is good again).
//!
//!   A move can also be scheduled for one instant of the system clock
//!   ([`write_clock_change`]: `{"offset_ms": N, "from_ms": T, "before_ms": P}`). Every
//!   program reads it before `T` and switches from `P` to `N` at `T` exactly, so several
//!   programs on one machine never disagree about the time for the moment between
//!   their reads (a local server's sync made on the new date to a main server still on
//!   the old one would be refused as too far ahead).
//!
//! Without either, the clock is the real one. A simulated clock gives a program no
//! power a moved system clock would not: every defence that reads the time (the local
//! server's high-water mark against a clock moved back, Solme's signed time) reads it
//! through this clock and judges it the same way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ProtoError;

/// Environment variable that moves a program's clock, e.g. `367d`, `-2h`, `1d12h`.
pub const CLOCK_OFFSET_ENV: &str = "SOLME_CLOCK_OFFSET";

/// Environment variable of the `--clock-file` flag every program takes.
pub const CLOCK_FILE_ENV: &str = "SOLME_CLOCK_FILE";

/// How often a clock file is read again: a change reaches every program within this.
pub const FOLLOW_EVERY: StdDuration = StdDuration::from_millis(100);

/// Largest offset accepted (100 years): beyond it chrono arithmetic gets close to its limits.
const MAX_OFFSET_DAYS: i64 = 36_600;

/// Largest clock file read: it is one short JSON object.
const MAX_CLOCK_FILE: u64 = 4096;

/// Where a clock's offset comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClockSource {
    /// The real clock.
    #[default]
    System,
    /// An offset fixed at start (`SOLME_CLOCK_OFFSET`, or a test's clock).
    Offset,
    /// A simulated clock following this clock file.
    File(PathBuf),
}

/// The system clock moved by an offset shared between clones.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    schedule: Arc<RwLock<Schedule>>,
    source: Arc<ClockSource>,
}

/// The offset in force before and from an instant of the system clock (milliseconds).
/// An offset that applies at once has `before_ms == offset_ms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Schedule {
    before_ms: i64,
    offset_ms: i64,
    from_ms: i64,
}

impl Schedule {
    fn at_once(offset: Duration) -> Self {
        let ms = offset.num_milliseconds();
        Self {
            before_ms: ms,
            offset_ms: ms,
            from_ms: i64::MIN,
        }
    }

    /// The offset in force at `real`, a reading of the system clock.
    fn offset_at(&self, real: DateTime<Utc>) -> Duration {
        let ms = if real.timestamp_millis() >= self.from_ms {
            self.offset_ms
        } else {
            self.before_ms
        };
        Duration::milliseconds(ms)
    }
}

/// The contents of a clock file: `{"offset_ms": N}`, or a move scheduled for one
/// instant, `{"offset_ms": N, "from_ms": T, "before_ms": P}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockFile {
    /// How far the simulated clock is from the system clock, in milliseconds.
    pub offset_ms: i64,
    /// The system clock's instant (milliseconds since 1970) from which `offset_ms`
    /// applies; before it `before_ms` does. Both or neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_ms: Option<i64>,
}

impl Clock {
    /// The real clock, not moved.
    pub fn system() -> Self {
        Self::default()
    }

    /// The real clock moved by `offset` (negative moves it back).
    pub fn with_offset(offset: Duration) -> Self {
        Self {
            schedule: Arc::new(RwLock::new(Schedule::at_once(offset))),
            source: Arc::new(ClockSource::Offset),
        }
    }

    /// The clock `SOLME_CLOCK_OFFSET` asks for; the real clock when it is unset or empty.
    pub fn from_env() -> Result<Self, ProtoError> {
        match offset_from_env() {
            Some(value) => Ok(Self::with_offset(parse_offset(&value)?)),
            None => Ok(Self::system()),
        }
    }

    /// The clock a program runs on: following `clock_file` when given (its
    /// `--clock-file` flag), else [`Clock::from_env`]. Giving both is refused: a
    /// program must not be on two clocks.
    pub fn from_settings(clock_file: Option<&Path>) -> Result<Self, ProtoError> {
        let Some(path) = clock_file else {
            return Self::from_env();
        };
        if offset_from_env().is_some() {
            return Err(ProtoError::Malformed(format!(
                "both a clock file ({}) and {CLOCK_OFFSET_ENV} are given; use one of them",
                path.display()
            )));
        }
        let clock = Self::following_file(path)?;
        log::info!(
            "simulated clock: following {} (offset {}, now {})",
            path.display(),
            format_offset(clock.offset()),
            clock.now().format("%Y-%m-%d %H:%M:%S UTC")
        );
        Ok(clock)
    }

    /// A clock following the clock file at `path`: read now (an error if it cannot
    /// be), then again every [`FOLLOW_EVERY`] by a thread that ends once every clone
    /// of the clock is gone.
    pub fn following_file(path: &Path) -> Result<Self, ProtoError> {
        let schedule = read_schedule(path)?;
        let clock = Self {
            schedule: Arc::new(RwLock::new(schedule)),
            source: Arc::new(ClockSource::File(path.to_path_buf())),
        };
        let shared = Arc::downgrade(&clock.schedule);
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("clock-file".to_string())
            .spawn(move || follow(&path, &shared))
            .map_err(|e| ProtoError::io("starting the thread that follows the clock file", e))?;
        Ok(clock)
    }

    /// The current time as this clock sees it.
    pub fn now(&self) -> DateTime<Utc> {
        let real = Utc::now();
        real + self.schedule().offset_at(real)
    }

    /// Moves this clock (and every clone of it) by `by`, at once. A clock following
    /// a file takes the file's offset again at its next read.
    pub fn advance(&self, by: Duration) {
        let mut schedule = self
            .schedule
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let moved = self_offset(&schedule) + by;
        *schedule = Schedule::at_once(moved);
    }

    /// How far this clock is from the system clock.
    pub fn offset(&self) -> Duration {
        self_offset(&self.schedule())
    }

    fn schedule(&self) -> Schedule {
        // Nothing panics while the lock is held; a poisoned lock still holds a whole value.
        *self.schedule.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the offset comes from.
    pub fn source(&self) -> &ClockSource {
        &self.source
    }

    /// Whether this is not the real clock (moved, or following a clock file).
    pub fn is_simulated(&self) -> bool {
        *self.source != ClockSource::System || self.offset() != Duration::zero()
    }

    /// One line for people saying which clock this is, or None for the real clock:
    /// `simulated clock (clock file /x/clock.json), offset +340d`.
    pub fn describe(&self) -> Option<String> {
        let offset = format_offset(self.offset());
        match &*self.source {
            ClockSource::File(path) => Some(format!(
                "simulated clock (clock file {}), offset {offset}",
                path.display()
            )),
            ClockSource::Offset | ClockSource::System if self.is_simulated() => {
                Some(format!("moved clock, offset {offset}"))
            }
            _ => None,
        }
    }
}

/// The offset `schedule` gives now.
fn self_offset(schedule: &Schedule) -> Duration {
    schedule.offset_at(Utc::now())
}

fn offset_from_env() -> Option<String> {
    std::env::var(CLOCK_OFFSET_ENV)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// The follower thread: reads the file every [`FOLLOW_EVERY`] until the clock is gone.
fn follow(path: &Path, shared: &Weak<RwLock<Schedule>>) {
    let mut failing = false;
    loop {
        std::thread::sleep(FOLLOW_EVERY);
        let Some(schedule) = shared.upgrade() else {
            return;
        };
        match read_schedule(path) {
            Ok(read) => {
                *schedule.write().unwrap_or_else(PoisonError::into_inner) = read;
                if failing {
                    log::info!("simulated clock: {} is readable again", path.display());
                    failing = false;
                }
            }
            Err(e) if !failing => {
                log::warn!(
                    "simulated clock: keeping the last offset, the clock file cannot be used: {e}"
                );
                failing = true;
            }
            Err(_) => {}
        }
    }
}

/// The offset a clock file gives now (its scheduled move taken into account).
pub fn read_clock_file(path: &Path) -> Result<Duration, ProtoError> {
    Ok(read_schedule(path)?.offset_at(Utc::now()))
}

/// Reads a clock file's offset, or its scheduled move.
fn read_schedule(path: &Path) -> Result<Schedule, ProtoError> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_CLOCK_FILE + 1).read_to_string(&mut text))
        .map_err(|e| ProtoError::io(format!("reading the clock file {}", path.display()), e))?;
    let bad = |why: &str| {
        ProtoError::Malformed(format!(
            "the clock file {} {why}; it must hold {{\"offset_ms\": N}} (milliseconds from the system clock)",
            path.display()
        ))
    };
    if text.len() as u64 > MAX_CLOCK_FILE {
        return Err(bad("is too large"));
    }
    let file: ClockFile = serde_json::from_str(&text).map_err(|_| bad("is not understood"))?;
    let too_far = |ms: i64| ms.unsigned_abs() > (MAX_OFFSET_DAYS as u64) * 86_400_000;
    match (file.from_ms, file.before_ms) {
        _ if too_far(file.offset_ms) || file.before_ms.is_some_and(too_far) => {
            Err(bad("moves the clock more than 100 years"))
        }
        (None, None) => Ok(Schedule::at_once(Duration::milliseconds(file.offset_ms))),
        (Some(from_ms), Some(before_ms)) => Ok(Schedule {
            before_ms,
            offset_ms: file.offset_ms,
            from_ms,
        }),
        _ => Err(bad("gives only one of from_ms and before_ms")),
    }
}

/// Writes a clock file holding `offset`, whole or not at all (readers never see half
/// of it).
pub fn write_clock_file(path: &Path, offset: Duration) -> Result<(), ProtoError> {
    if offset.num_days().abs() > MAX_OFFSET_DAYS {
        return Err(ProtoError::Malformed(
            "a simulated clock may be at most 100 years from the system clock".to_string(),
        ));
    }
    write_clock(
        path,
        &ClockFile {
            offset_ms: offset.num_milliseconds(),
            from_ms: None,
            before_ms: None,
        },
    )
}

/// Writes a clock file that keeps `before` until the system clock reaches `from`, then
/// gives `offset`: every program reading it before `from` switches at that instant.
pub fn write_clock_change(
    path: &Path,
    before: Duration,
    offset: Duration,
    from: DateTime<Utc>,
) -> Result<(), ProtoError> {
    if before.num_days().abs() > MAX_OFFSET_DAYS || offset.num_days().abs() > MAX_OFFSET_DAYS {
        return Err(ProtoError::Malformed(
            "a simulated clock may be at most 100 years from the system clock".to_string(),
        ));
    }
    write_clock(
        path,
        &ClockFile {
            offset_ms: offset.num_milliseconds(),
            from_ms: Some(from.timestamp_millis()),
            before_ms: Some(before.num_milliseconds()),
        },
    )
}

fn write_clock(path: &Path, file: &ClockFile) -> Result<(), ProtoError> {
    let body = serde_json::to_vec(file)
        .map_err(|e| ProtoError::Malformed(format!("encoding the clock file: {e}")))?;
    crate::files::write(
        path,
        &body,
        crate::files::Access::Public,
        crate::files::Existing::Replace,
    )
}

/// An offset for people: `+340d 2h 5m`, `-2d`, `+0s`.
pub fn format_offset(offset: Duration) -> String {
    let sign = if offset < Duration::zero() { '-' } else { '+' };
    let mut seconds = offset.num_seconds().unsigned_abs();
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if seconds >= size {
            parts.push(format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    if parts.is_empty() {
        parts.push("0s".to_string());
    }
    format!("{sign}{}", parts.join(" "))
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

    /// Waits (with a deadline) until `clock` has `offset`.
    fn wait_for_offset(clock: &Clock, offset: Duration) {
        let deadline = std::time::Instant::now() + StdDuration::from_secs(5);
        while clock.offset() != offset {
            assert!(
                std::time::Instant::now() < deadline,
                "the clock stayed at {:?}, expected {offset:?}",
                clock.offset()
            );
            std::thread::sleep(StdDuration::from_millis(10));
        }
    }

    #[test]
    fn a_clock_file_moves_every_clone_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock.json");
        write_clock_file(&path, Duration::days(2)).unwrap();
        let clock = Clock::from_settings(Some(&path)).unwrap();
        let clone = clock.clone();
        assert_eq!(clock.offset(), Duration::days(2));
        assert_eq!(clock.source(), &ClockSource::File(path.clone()));
        assert!(clock.describe().unwrap().contains("+2d"));

        let started = std::time::Instant::now();
        write_clock_file(&path, Duration::days(340)).unwrap();
        wait_for_offset(&clone, Duration::days(340));
        assert!(started.elapsed() < StdDuration::from_secs(1));
        assert!(clone.now() - Utc::now() > Duration::days(339));

        write_clock_file(&path, Duration::days(-2)).unwrap();
        wait_for_offset(&clock, Duration::days(-2));
    }

    #[test]
    fn a_scheduled_move_switches_every_reader_at_its_instant() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock.json");
        write_clock_file(&path, Duration::days(2)).unwrap();
        let first = Clock::following_file(&path).unwrap();
        let from = Utc::now() + Duration::milliseconds(600);
        write_clock_change(&path, Duration::days(2), Duration::days(40), from).unwrap();
        // A program started after the write reads the schedule too.
        let second = Clock::following_file(&path).unwrap();
        std::thread::sleep(FOLLOW_EVERY * 3);
        if Utc::now() < from - Duration::milliseconds(50) {
            assert_eq!(first.offset(), Duration::days(2));
            assert_eq!(second.offset(), Duration::days(2));
        }
        wait_for_offset(&first, Duration::days(40));
        // The file keeps whole milliseconds: the switch is at `from`'s millisecond.
        assert!(Utc::now().timestamp_millis() >= from.timestamp_millis());
        assert_eq!(second.offset(), Duration::days(40));

        std::fs::write(&path, r#"{"offset_ms": 5, "from_ms": 1}"#).unwrap();
        let error = Clock::following_file(&path).unwrap_err().to_string();
        assert!(error.contains("only one of"), "{error}");
    }

    #[test]
    fn a_bad_write_keeps_the_last_good_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock.json");
        write_clock_file(&path, Duration::days(7)).unwrap();
        let clock = Clock::following_file(&path).unwrap();
        std::fs::write(&path, "{\"offset_ms\": ").unwrap();
        std::thread::sleep(FOLLOW_EVERY * 3);
        assert_eq!(clock.offset(), Duration::days(7));
        std::fs::remove_file(&path).unwrap();
        std::thread::sleep(FOLLOW_EVERY * 3);
        assert_eq!(clock.offset(), Duration::days(7));
        write_clock_file(&path, Duration::days(8)).unwrap();
        wait_for_offset(&clock, Duration::days(8));
    }

    #[test]
    fn a_missing_or_malformed_clock_file_is_an_error_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock.json");
        let error = Clock::following_file(&path).unwrap_err().to_string();
        assert!(error.contains("reading the clock file"), "{error}");
        std::fs::write(&path, "340d").unwrap();
        let error = Clock::following_file(&path).unwrap_err().to_string();
        assert!(error.contains("offset_ms"), "{error}");
        std::fs::write(&path, r#"{"offset_ms": 9000000000000000}"#).unwrap();
        assert!(Clock::following_file(&path).is_err());
    }

    #[test]
    fn the_real_clock_is_not_simulated() {
        assert!(!Clock::system().is_simulated());
        assert!(Clock::system().describe().is_none());
        assert!(Clock::with_offset(Duration::hours(2)).is_simulated());
        assert_eq!(
            format_offset(Duration::days(340) + Duration::hours(2)),
            "+340d 2h"
        );
        assert_eq!(format_offset(Duration::days(-2)), "-2d");
        assert_eq!(format_offset(Duration::zero()), "+0s");
    }
}
