//! The simulation's event log: one JSON line per thing the simulation did or saw, in
//! `DIR/events.jsonl` and in memory for `GET /v1/events?since=N` (and `solme-sim events
//! --follow`).
//!
//! Each event has a sequence number (1, 2, …, never reused), the real time it happened,
//! the simulated time then, a `kind` and the fields of that kind. The file is appended
//! one whole line at a time under the log's lock, so a reader never sees half an event
//! and the file's order is the sequence's.
//!
//! Who records what: the clock records its own moves ([`super::clock::SimClock`]), so
//! no move escapes the log; the programs' starts, stops and crashes are recorded where
//! the processes are held; exec runs by [`super::exec`]; faults by the faults module;
//! mails out by [`watch_outbox`], which looks at the gateway's outbox.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::control_api::{ApiError, Shared};

/// The log's file in the simulation directory.
pub const EVENTS_FILE: &str = "events.jsonl";
/// Most events one `GET /v1/events` answers; the caller asks again from the last.
pub const MAX_PAGE: usize = 1000;
/// How often the outbox is looked at.
const OUTBOX_EVERY: Duration = Duration::from_millis(250);
/// The longest `GET /v1/events` holds a request open waiting for the next event.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// What happened, with its fields. Serialized with its name in `kind`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum What {
    /// A program's `serve` started (at set-up, or again after a fault).
    ProgramStarted { program: String, pid: u32 },
    /// A program's `serve` ended: `how` is `stopped` (asked to), `killed` (SIGKILL by a
    /// fault) or `exited` (on its own; `status` says how).
    ProgramStopped {
        program: String,
        pid: u32,
        how: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<String>,
    },
    /// The simulated clock moved; every program follows within a second.
    ClockMoved {
        /// The request, e.g. `advance 340d`.
        by: String,
        from_offset: String,
        to_offset: String,
        now: DateTime<Utc>,
    },
    /// A fault was switched on (or, for one-shot faults such as `restart`, done).
    FaultOn {
        fault: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        program: Option<String>,
        detail: String,
    },
    /// A fault was switched off (asked to, or its time ran out).
    FaultOff {
        fault: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        program: Option<String>,
        detail: String,
    },
    /// A verb of a program run through the control API.
    Exec {
        program: String,
        args: Vec<String>,
        /// None when it was killed (timed out).
        exit_code: Option<i32>,
        timed_out: bool,
        elapsed_ms: u64,
    },
    /// The world changed: `change` is `resumed` (the simulation started again on its
    /// directory), `customer-added`, `server-added` or `server-reinstalled`; `name` is
    /// what it is about.
    World {
        change: String,
        name: String,
        detail: String,
    },
    /// A mail the gateway sent, as it appeared in its outbox.
    MailSent {
        to: String,
        subject: String,
        /// `reminder`, `key-clear-notice` or `reply`.
        mail_kind: String,
        file: String,
        license_file: bool,
    },
}

/// One line of the log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Event {
    /// 1, 2, 3, …: `GET /v1/events?since=N` answers the events after N.
    pub seq: u64,
    /// The real time it was recorded.
    pub at: DateTime<Utc>,
    /// The simulated time then.
    pub sim_time: DateTime<Utc>,
    #[serde(flatten)]
    pub what: What,
}

struct Inner {
    file: File,
    events: Vec<Value>,
    /// The simulated clock's offset, kept by the clock's moves.
    offset: chrono::Duration,
}

/// The event log of one simulation.
pub struct EventLog {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Woken at each new event, for callers waiting for the next one.
    grown: Condvar,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.path)
            .finish()
    }
}

impl EventLog {
    /// Creates (or empties) `DIR/events.jsonl`; `offset` is the simulated clock's.
    pub fn create(root: &Path, offset: chrono::Duration) -> Result<Self> {
        let path = root.join(EVENTS_FILE);
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            path,
            inner: Mutex::new(Inner {
                file,
                events: Vec::new(),
                offset,
            }),
            grown: Condvar::new(),
        })
    }

    /// Opens the log of a simulation being resumed: its events are kept and the new
    /// ones appended, numbered on from the last (a damaged line is skipped).
    pub fn resume(root: &Path, offset: chrono::Duration) -> Result<Self> {
        let path = root.join(EVENTS_FILE);
        let events: Vec<Value> = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            path,
            inner: Mutex::new(Inner {
                file,
                events,
                offset,
            }),
            grown: Condvar::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves whole events only: keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `what` now. A failure to write the file is told on standard error and
    /// the event kept in memory: the log never stops the simulation.
    pub fn record(&self, what: What) {
        let mut inner = self.lock();
        let at = Utc::now();
        let event = Event {
            seq: inner.events.len() as u64 + 1,
            at,
            sim_time: at + inner.offset,
            what,
        };
        let value = match serde_json::to_value(&event) {
            Ok(value) => value,
            Err(error) => {
                eprintln!("event log: an event could not be encoded: {error}");
                return;
            }
        };
        let mut line = value.to_string();
        line.push('\n');
        if let Err(error) = inner.file.write_all(line.as_bytes()) {
            eprintln!("event log: writing {}: {error}", self.path.display());
        }
        inner.events.push(value);
        self.grown.notify_all();
    }

    /// The clock moved to `offset`: the events from now on carry its time. Called by
    /// the clock with its move, so the move's own event already has the new time.
    pub fn clock_moved(&self, offset: chrono::Duration, what: What) {
        self.lock().offset = offset;
        self.record(what);
    }

    /// The events after `since` (at most [`MAX_PAGE`]); when there are none yet, waits
    /// up to `wait` for the next one.
    pub fn since(&self, since: u64, wait: Duration) -> Vec<Value> {
        let start = usize::try_from(since).unwrap_or(usize::MAX);
        let inner = self.lock();
        let (inner, _) = self
            .grown
            .wait_timeout_while(inner, wait, |inner| inner.events.len() <= start)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner
            .events
            .iter()
            .skip(start)
            .take(MAX_PAGE)
            .cloned()
            .collect()
    }

    /// How many events there are (the last one's `seq`).
    pub fn len(&self) -> u64 {
        self.lock().events.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// The events after this sequence number (0: from the start).
    #[serde(default)]
    since: u64,
    /// When there is none yet, wait this long for the next (at most 30 s).
    #[serde(default)]
    wait_ms: u64,
}

/// `GET /v1/events?since=N&wait_ms=M`: the events after N, oldest first, at most
/// [`MAX_PAGE`]; an empty list when there is none after `wait_ms`.
#[utoipa::path(
    get, path = "/v1/events", tag = "events", operation_id = "events",
    summary = "The event log after event `since`, waiting up to `wait_ms` for the next one.",
    description = "The same lines as `DIR/events.jsonl`. To follow the log, ask again with the last `seq` as `since` and a `wait_ms`.",
    params(EventsQuery),
    responses(
        (status = 200, description = "The events after `since`, oldest first, at most 1,000 (ask again from the last `seq` for more); empty when none came within `wait_ms`.", body = [Event]),
        (status = 400, description = "`MALFORMED`: a bad query (not numbers, or an unknown parameter)."),
    )
)]
pub(super) async fn endpoint(
    state: Shared,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&request)?;
    let query = web::Query::<EventsQuery>::from_query(request.query_string())
        .map_err(|e| ApiError::bad(format!("expected ?since=N&wait_ms=M: {e}")))?
        .into_inner();
    let wait = Duration::from_millis(query.wait_ms).min(MAX_WAIT);
    let sim = state.sim.clone();
    let events = web::block(move || sim.events.since(query.since, wait))
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("reading the event log: {e}")))?;
    Ok(HttpResponse::Ok().json(events))
}

/// Watches the gateway's outbox on a thread of its own and records each new mail once,
/// until `stop` is set. Mails already there when it starts are recorded too (the
/// set-up's replies).
pub fn watch_outbox(
    log: Arc<EventLog>,
    outbox: PathBuf,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("outbox-watch".to_string())
        .spawn(move || {
            let mut seen = BTreeSet::new();
            let mut count = usize::MAX;
            while !stop.load(Ordering::Relaxed) {
                // Counting files is cheap; the mails are parsed only when it changed.
                let now = test_harness::mail::outbox_count(&outbox);
                if now != count {
                    match test_harness::mail::read_outbox(&outbox) {
                        Ok(mails) => {
                            count = now;
                            for mail in mails {
                                if seen.insert(mail.file.clone()) {
                                    log.record(What::MailSent {
                                        mail_kind: mail_kind(&mail.file).to_string(),
                                        license_file: mail.license_file().is_some(),
                                        to: mail.to,
                                        subject: mail.subject,
                                        file: mail.file,
                                    });
                                }
                            }
                        }
                        // A mail being renamed into place: looked at again next time.
                        Err(error) => eprintln!("event log: reading the outbox: {error:#}"),
                    }
                }
                std::thread::sleep(OUTBOX_EVERY);
            }
        })
        .context("starting the outbox watcher")
}

/// What kind of mail the gateway's outbox file is, by its name.
pub fn mail_kind(file: &str) -> &'static str {
    if file.starts_with("reminder-") {
        "reminder"
    } else if file.starts_with("notice-") {
        "key-clear-notice"
    } else {
        "reply"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_event_is_one_line_numbered_in_order_and_waiters_get_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EventLog::create(dir.path(), chrono::Duration::days(2)).unwrap());
        log.record(What::ProgramStarted {
            program: "main-server".to_string(),
            pid: 7,
        });
        let waiter = {
            let log = log.clone();
            std::thread::spawn(move || log.since(1, Duration::from_secs(10)))
        };
        log.clock_moved(
            chrono::Duration::days(3),
            What::ClockMoved {
                by: "advance 1d".to_string(),
                from_offset: "+2d".to_string(),
                to_offset: "+3d".to_string(),
                now: Utc::now(),
            },
        );
        let next = waiter.join().unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0]["seq"], 2);
        assert_eq!(next[0]["kind"], "clock-moved");
        assert!(log.since(2, Duration::ZERO).is_empty());

        let text = std::fs::read_to_string(dir.path().join(EVENTS_FILE)).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["kind"], "program-started");
        assert_eq!(lines[0]["program"], "main-server");
        let first = lines[0]["at"].as_str().unwrap().parse::<DateTime<Utc>>();
        let sim = lines[0]["sim_time"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>();
        assert_eq!((sim.unwrap() - first.unwrap()).num_days(), 2);
        let sim = lines[1]["sim_time"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>();
        let at = lines[1]["at"].as_str().unwrap().parse::<DateTime<Utc>>();
        assert_eq!((sim.unwrap() - at.unwrap()).num_days(), 3);
    }
}
