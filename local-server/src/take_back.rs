//! Taking a seat back (`local-server take-back`, the manager page), like FlexNet's
//! `lmremove`: the administrator ends a lease, for instance one held by a program left
//! running on a computer nobody uses, or a borrowed seat of someone who left.
//!
//! How it reaches the lease engine: the verb runs in another process than `serve`, whose
//! engine keeps the live leases in memory. One transaction deletes the lease's row and
//! stores a `taken_back` row; its trigger moves the `changes` generation, so the engine
//! reloads at its next request or sweep (within a second), drops the lease from memory,
//! gives its seat to the queue and records the `take_back` event in the report log
//! ([`TakenBackRow::event_row`]). When no `serve` runs, the verb holds the `serve` lock
//! for that transaction (so none can start meanwhile) and records the event itself.
//!
//! The rows stay: a heartbeat or a return of a taken-back lease is refused with what
//! happened (who, when, why) instead of "unknown lease", and a borrowed seat's token is
//! not taken back by the server a second time.

use std::fmt;
use std::path::Path;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use shared_proto::ErrorCode;
use uuid::Uuid;

use crate::db::{from_ms, to_ms, LeaseRow};
use crate::error::Error;
use crate::report_log::{Event, ReportRow};
use crate::schema::{leases, report_log, taken_back};

/// Longest reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// A lease taken back, as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = taken_back)]
pub struct TakenBackRow {
    pub lease_id: String,
    pub feature: String,
    pub user: String,
    pub host: String,
    pub borrowed: bool,
    pub taken_at: i64,
    /// Who took it back.
    pub actor: String,
    pub reason: Option<String>,
    /// When its event went into the report log; `None` until the engine applied it.
    pub applied_at: Option<i64>,
}

impl TakenBackRow {
    /// The report log's `take_back` entry, with `in_use` seats of the feature left.
    pub fn event_row(&self, in_use: u32) -> ReportRow {
        ReportRow {
            at: self.taken_at,
            event: Event::TakeBack,
            feature: self.feature.clone(),
            user: self.user.clone(),
            host: self.host.clone(),
            lease_id: Some(self.lease_id.clone()),
            code: None,
            in_use: i32::try_from(in_use).unwrap_or(i32::MAX),
            wait_ms: None,
            actor: Some(self.actor.clone()),
            reason: self.reason.clone(),
        }
    }

    /// What a client presenting this lease again (a heartbeat, a return) is told.
    pub fn refusal(&self) -> Error {
        let when = from_ms(self.taken_at).format("%Y-%m-%d %H:%M UTC");
        let why = self
            .reason
            .as_deref()
            .map(|r| format!(" (reason given: {r})"))
            .unwrap_or_default();
        let message = if self.borrowed {
            format!(
                "the borrowed seat {} of {} was taken back by the license server's \
                 administrator ({}) on {when}{why}: its borrow token is no longer honoured \
                 and nothing needs returning; check out a new seat",
                self.lease_id, self.feature, self.actor
            )
        } else {
            format!(
                "lease {} of {} was taken back by the license server's administrator ({}) \
                 on {when}{why}; check out a new one",
                self.lease_id, self.feature, self.actor
            )
        };
        Error::refused(ErrorCode::LeaseUnknown, message)
    }
}

/// What a take-back did, as the verb and the manager API answer it.
#[derive(Debug, Clone, Serialize)]
pub struct TakeBack {
    pub lease_id: String,
    pub feature: String,
    pub user: String,
    pub host: String,
    pub borrowed: bool,
    pub taken_at: DateTime<Utc>,
    /// Who took it back.
    pub by: String,
    pub reason: Option<String>,
    /// Whether a running `serve` frees the seat (`true`) or none runs and the lease
    /// is simply gone (`false`).
    pub serve_running: bool,
}

impl fmt::Display for TakeBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.borrowed {
            "borrowed seat"
        } else {
            "seat"
        };
        writeln!(
            f,
            "Took back the {kind} of {} held by {}@{} (lease {}).",
            self.feature, self.user, self.host, self.lease_id
        )?;
        if self.serve_running {
            writeln!(
                f,
                "The running server frees it within a second; a client waiting for {} gets it.",
                self.feature
            )?;
        } else {
            writeln!(f, "The seat is free (no `serve` is running).")?;
        }
        if self.borrowed {
            writeln!(
                f,
                "Its borrow token is refused from now on if it is presented again."
            )?;
        } else {
            writeln!(
                f,
                "The program that held it is refused at its next heartbeat and must check out again."
            )?;
        }
        writeln!(f, "Recorded in the report log as take_back by {}.", self.by)
    }
}

/// Who runs this command: the account's name, for the report log.
pub fn command_line_actor() -> String {
    let user = ["USER", "LOGNAME"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .or_else(|| {
            // No login variables (a service): the account's number.
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .ok()
                .map(|m| format!("uid {}", m.uid()))
        })
        .unwrap_or_else(|| "an unnamed account".to_owned());
    format!("{user} (command line)")
}

/// Checks the reason: one line of printable text, at most [`MAX_REASON_CHARS`].
pub(crate) fn checked_reason(reason: Option<&str>) -> Result<Option<String>, Error> {
    let Some(reason) = reason.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(Error::refused(
            ErrorCode::Malformed,
            format!("the reason is longer than {MAX_REASON_CHARS} characters"),
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err(Error::refused(
            ErrorCode::Malformed,
            "the reason must be one line of text",
        ));
    }
    Ok(Some(reason.to_owned()))
}

/// Takes lease `lease_id` back at `now` on behalf of `actor`.
pub fn take_back(
    conn: &mut SqliteConnection,
    data_dir: &Path,
    lease_id: &str,
    actor: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<TakeBack, Error> {
    let reason = checked_reason(reason)?;
    let id = Uuid::parse_str(lease_id.trim()).map_err(|_| {
        Error::refused(
            ErrorCode::LeaseUnknown,
            format!(
                "{lease_id:?} is not a lease id (`local-server leases` lists them, in the \
                 LEASE ID column)"
            ),
        )
    })?;
    let id = id.to_string();
    // Held for the transaction when no `serve` runs: none can start before the event is
    // recorded, so exactly one of the two records it.
    let serve_lock = crate::config::try_lock_serve(data_dir)?;
    let now_ms = to_ms(now);
    let row = conn.immediate_transaction(|c| -> Result<TakenBackRow, Error> {
        let lease: Option<LeaseRow> = leases::table
            .find(&id)
            .filter(leases::expires_at.gt(now_ms))
            .select(LeaseRow::as_select())
            .first(c)
            .optional()?;
        let Some(lease) = lease else {
            let earlier: Option<TakenBackRow> = taken_back::table
                .find(&id)
                .select(TakenBackRow::as_select())
                .first(c)
                .optional()?;
            return Err(match earlier {
                Some(earlier) => Error::refused(
                    ErrorCode::LeaseUnknown,
                    format!(
                        "lease {id} was already taken back by {} on {}",
                        earlier.actor,
                        from_ms(earlier.taken_at).format("%Y-%m-%d %H:%M UTC")
                    ),
                ),
                None => Error::refused(
                    ErrorCode::LeaseUnknown,
                    format!(
                        "no seat is held under lease {id}: it was returned or ran out \
                         (`local-server leases` lists the seats held)"
                    ),
                ),
            });
        };
        let row = TakenBackRow {
            lease_id: id.clone(),
            feature: lease.feature,
            user: lease.user,
            host: lease.host,
            borrowed: lease.borrowed,
            taken_at: now_ms,
            actor: actor.to_owned(),
            reason: reason.clone(),
            applied_at: serve_lock.as_ref().map(|_| now_ms),
        };
        diesel::insert_into(taken_back::table)
            .values(&row)
            .execute(c)?;
        diesel::delete(leases::table.find(&id)).execute(c)?;
        if serve_lock.is_some() {
            let in_use: i64 = leases::table
                .filter(leases::feature.eq(&row.feature))
                .filter(leases::expires_at.gt(now_ms))
                .count()
                .get_result(c)?;
            let in_use = u32::try_from(in_use).unwrap_or(u32::MAX);
            diesel::insert_into(report_log::table)
                .values(row.event_row(in_use))
                .execute(c)?;
        }
        Ok(row)
    })?;
    log::info!(
        "lease taken back lease_id={} feature={} by={}",
        row.lease_id,
        row.feature,
        row.actor
    );
    Ok(TakeBack {
        lease_id: row.lease_id,
        feature: row.feature,
        user: row.user,
        host: row.host,
        borrowed: row.borrowed,
        taken_at: now,
        by: row.actor,
        reason: row.reason,
        serve_running: serve_lock.is_none(),
    })
}

/// The take-backs a running engine has not applied yet.
pub fn pending(conn: &mut SqliteConnection) -> QueryResult<Vec<TakenBackRow>> {
    taken_back::table
        .filter(taken_back::applied_at.is_null())
        .order(taken_back::taken_at)
        .select(TakenBackRow::as_select())
        .load(conn)
}

/// Every take-back stored (the engine refuses their leases with what happened).
pub fn all(conn: &mut SqliteConnection) -> QueryResult<Vec<TakenBackRow>> {
    taken_back::table
        .select(TakenBackRow::as_select())
        .load(conn)
}

/// Marks a take-back applied: its event is in the report log.
pub fn mark_applied(conn: &mut SqliteConnection, lease_id: &str, at: i64) -> QueryResult<usize> {
    diesel::update(taken_back::table.find(lease_id))
        .set(taken_back::applied_at.eq(at))
        .execute(conn)
}
