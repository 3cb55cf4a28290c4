//! The simulation's one clock: the clock file every program of the simulation follows
//! (`--clock-file DIR/clock.json`, see `shared_proto::clock`), and the moves the control
//! API makes on it. A move is computed in full, then written in one step: a bad
//! request changes nothing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use shared_proto::clock::{
    format_offset, parse_offset, write_clock_change, write_clock_file, FOLLOW_EVERY,
};

use super::events::{EventLog, What};

/// One move of the clock, as `POST /v1/clock` asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMove {
    /// Forward by a duration (`{"advance": "340d"}`).
    Advance(Duration),
    /// To a point in time (`{"set": "2027-11-10T09:00:00Z"}`).
    Set(DateTime<Utc>),
    /// Backward by a duration (`{"back": "2d"}`), e.g. to test clock-rollback detection.
    Back(Duration),
}

impl ClockMove {
    /// Reads a request body: an object with exactly one of `advance`, `set`, `back`.
    /// The error is a sentence for the caller.
    pub fn from_json(body: &Value) -> Result<Self, String> {
        let object = body
            .as_object()
            .ok_or("the body must be a JSON object such as {\"advance\": \"340d\"}")?;
        let mut entries = object.iter();
        let (Some((key, value)), None) = (entries.next(), entries.next()) else {
            return Err(
                "give exactly one of \"advance\", \"set\" or \"back\", e.g. {\"advance\": \"340d\"}"
                    .to_string(),
            );
        };
        let text = value
            .as_str()
            .ok_or_else(|| format!("\"{key}\" must be a string"))?;
        match key.as_str() {
            "advance" => Ok(Self::Advance(parse_span(text)?)),
            "back" => Ok(Self::Back(parse_span(text)?)),
            "set" => Ok(Self::Set(parse_time(text)?)),
            other => Err(format!(
                "\"{other}\" is not a clock move; use \"advance\", \"set\" or \"back\""
            )),
        }
    }

    /// The move for people and the event log: `advance 340d`, `set 2027-11-10T09:00:00Z`.
    pub fn describe(&self) -> String {
        match self {
            Self::Advance(by) => format!("advance {}", format_offset(*by).trim_start_matches('+')),
            Self::Back(by) => format!("back {}", format_offset(*by).trim_start_matches('+')),
            Self::Set(at) => format!(
                "set {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

/// A length of time without a sign (`340d`, `12h`, `1d12h`, `30m`).
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.starts_with(['-', '+']) {
        return Err(format!(
            "{text:?}: give the length without a sign (\"back\" moves the clock backward)"
        ));
    }
    parse_offset(trimmed).map_err(|e| e.to_string())
}

/// A point in time: RFC 3339 (`2027-11-10T09:00:00Z`), the same without seconds
/// (`2027-11-10T09:00Z`), or a date (`2027-11-10`, midnight UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    if let Some(local) = text.strip_suffix('Z') {
        if let Ok(time) = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M") {
            return Ok(time.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if let Some(time) = date.and_hms_opt(0, 0, 0) {
            return Ok(time.and_utc());
        }
    }
    Err(format!(
        "{text:?} is not a time; write e.g. 2027-11-10T09:00:00Z or 2027-11-10"
    ))
}

/// What the clock says, as the control API answers it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClockState {
    /// The simulated time now.
    pub now: DateTime<Utc>,
    /// Its distance from the system clock, in milliseconds and for people (`+340d`).
    pub offset_ms: i64,
    #[schema(example = "+340d")]
    pub offset: String,
    /// The clock file every program follows.
    #[schema(value_type = String)]
    pub file: PathBuf,
}

/// How far ahead a move is scheduled: several reads of the clock file, so that every
/// program has read it before the instant, even on a busy machine.
const SWITCH_AFTER: Duration = Duration::milliseconds(4 * FOLLOW_EVERY.as_millis() as i64);

/// The clock file and the offset last written to it.
#[derive(Debug)]
pub struct SimClock {
    path: PathBuf,
    /// Held while a move is written, so two moves never interleave.
    offset: Mutex<Duration>,
    /// Every move is recorded here, by the clock itself, so none escapes the log.
    events: Arc<EventLog>,
}

impl SimClock {
    /// Writes the clock file at `path` with `offset`; its moves go to `events`.
    pub fn create(path: &Path, offset: Duration, events: Arc<EventLog>) -> Result<Self> {
        write_clock_file(path, offset)
            .with_context(|| format!("writing the clock file {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            offset: Mutex::new(offset),
            events,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn offset(&self) -> std::sync::MutexGuard<'_, Duration> {
        // A panic while holding the lock left the offset as it was: keep using it.
        self.offset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn state(&self) -> ClockState {
        let offset = *self.offset();
        self.state_at(offset)
    }

    fn state_at(&self, offset: Duration) -> ClockState {
        ClockState {
            now: Utc::now() + offset,
            offset_ms: offset.num_milliseconds(),
            offset: format_offset(offset),
            file: self.path.clone(),
        }
    }

    /// Applies `change`: the new offset is computed and checked, then written in one
    /// step; on any error the file and the clock stay as they were. The move is
    /// scheduled [`SWITCH_AFTER`] ahead, so every program (reading the file every
    /// `FOLLOW_EVERY`) switches at the same instant; this returns once it has passed.
    /// Blocking: call it off the async threads.
    pub fn apply(&self, change: ClockMove) -> Result<ClockState, String> {
        let mut offset = self.offset();
        let new = match change {
            ClockMove::Advance(by) => offset.checked_add(&by),
            ClockMove::Back(by) => offset.checked_sub(&by),
            ClockMove::Set(at) => Some(at - Utc::now()),
        }
        .ok_or("the clock cannot move that far")?;
        let switch_at = Utc::now() + SWITCH_AFTER;
        write_clock_change(&self.path, *offset, new, switch_at).map_err(|e| e.to_string())?;
        if let Ok(left) = (switch_at - Utc::now()).to_std() {
            std::thread::sleep(left);
        }
        let from = std::mem::replace(&mut *offset, new);
        let state = self.state_at(new);
        self.events.clock_moved(
            new,
            What::ClockMoved {
                by: change.describe(),
                from_offset: format_offset(from),
                to_offset: state.offset.clone(),
                now: state.now,
            },
        );
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_each_move_and_refuses_the_rest() {
        assert_eq!(
            ClockMove::from_json(&json!({"advance": "340d"})),
            Ok(ClockMove::Advance(Duration::days(340)))
        );
        assert_eq!(
            ClockMove::from_json(&json!({"back": "2d"})),
            Ok(ClockMove::Back(Duration::days(2)))
        );
        let set = ClockMove::from_json(&json!({"set": "2027-11-10T09:00Z"})).unwrap();
        assert_eq!(
            set,
            ClockMove::Set(parse_time("2027-11-10T09:00:00Z").unwrap())
        );
        for bad in [
            json!({"advance": "soon"}),
            json!({"advance": "-2d"}),
            json!({"advance": 3}),
            json!({"advance": "1d", "back": "1d"}),
            json!({}),
            json!({"forward": "1d"}),
            json!({"set": "tomorrow"}),
            json!([1]),
        ] {
            assert!(ClockMove::from_json(&bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_move_too_far_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock.json");
        let events = Arc::new(EventLog::create(dir.path(), Duration::zero()).unwrap());
        let clock = SimClock::create(&path, Duration::zero(), events.clone()).unwrap();
        assert_eq!(
            clock
                .apply(ClockMove::Advance(Duration::days(340)))
                .unwrap()
                .offset,
            "+340d"
        );
        assert!(clock
            .apply(ClockMove::Advance(Duration::days(40_000)))
            .is_err());
        assert_eq!(clock.state().offset, "+340d");
        assert_eq!(
            shared_proto::clock::read_clock_file(&path).unwrap(),
            Duration::days(340)
        );
        let back = clock.apply(ClockMove::Back(Duration::days(342))).unwrap();
        assert_eq!(back.offset, "-2d");
        // Each move that happened is in the log, the refused one is not.
        let moves = events.since(0, std::time::Duration::ZERO);
        assert_eq!(moves.len(), 2, "{moves:?}");
        assert_eq!(moves[0]["by"], "advance 340d");
        assert_eq!(moves[1]["by"], "back 342d");
        assert_eq!(moves[1]["from_offset"], "+340d");
        assert_eq!(moves[1]["to_offset"], "-2d");
    }
}
