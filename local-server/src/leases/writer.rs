//! The lease engine's database writer: one thread that owns the engine's SQLite
//! connection and commits the engine's changes in groups.
//!
//! Why a thread of its own: a write may have to wait for another process that holds
//! the database (a manager verb importing a license file). The engine decides under its
//! lock, hands the rows to this thread and releases the lock, so that wait never stalls
//! the other clients; and everything that queued up meanwhile goes into the next
//! transaction (group commit), which also keeps the cost per lease low under load.
//!
//! A job that must be durable before it is answered (a grant, a renewal) carries a
//! deadline: when the database stays locked past it, the job is dropped and its caller
//! answers `UNAVAILABLE` (try again). A job without a deadline (a returned or expired
//! seat, a report-log entry) is kept and retried until it is committed.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::prelude::*;
use diesel::result::Error as DieselError;

use crate::db::{self, LeaseRow};
use crate::report_log::ReportRow;
use crate::schema::{leases, report_log, usage_peaks};

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 1024;
/// How long one attempt waits for another process's lock before the deadlines are
/// looked at again.
const ATTEMPT_BUSY_MS: u32 = 100;

/// One change to the database.
#[derive(Debug)]
pub enum Op {
    Insert(LeaseRow),
    Renew {
        id: String,
        expires_at: i64,
    },
    Delete(String),
    DeleteExpired {
        now_ms: i64,
    },
    Peak {
        feature: String,
        peak: u32,
    },
    RaiseHighWater(i64),
    Report(ReportRow),
    /// A take-back's event is recorded (in the same transaction as its `Report`).
    TakeBackApplied {
        lease_id: String,
        at: i64,
    },
    /// Forgets report log rows older than `keep_days` days before `now`, and all but the
    /// newest `keep_rows`.
    PruneReport {
        now: chrono::DateTime<chrono::Utc>,
        keep_days: i64,
        keep_rows: i64,
    },
}

/// Why a job was not committed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Locked by another program, or full: worth retrying later.
    #[error("the database stayed locked by another program, or full")]
    Temporary,
    #[error("the database write failed: {0}")]
    Failed(String),
    /// The writer thread ended (it only does when it panicked, or the engine is gone):
    /// the change was dropped with its job.
    #[error("the lease writer thread is gone; the change was not stored")]
    Gone,
}

/// What the caller waits on: whether its change was committed.
pub struct Done(tokio::sync::oneshot::Receiver<Result<(), WriteError>>);

impl Done {
    /// Waits for the change's outcome. A job dropped unanswered (the writer thread is
    /// gone) is [`WriteError::Gone`]: the one place that case becomes an error.
    pub async fn outcome(self) -> Result<(), WriteError> {
        self.0.await.unwrap_or(Err(WriteError::Gone))
    }
}

struct Job {
    ops: Vec<Op>,
    /// `None`: keep retrying until committed.
    deadline: Option<Instant>,
    done: Option<tokio::sync::oneshot::Sender<Result<(), WriteError>>>,
}

/// Handle to the writer thread; cheap to share.
pub struct LeaseWriter {
    tx: mpsc::Sender<Job>,
}

impl LeaseWriter {
    /// Starts the writer thread on `conn`. The thread ends when the handle is dropped
    /// (after committing what was queued).
    pub fn start(mut conn: SqliteConnection) -> anyhow::Result<Self> {
        use diesel::connection::SimpleConnection;
        // No checkpoint inside a lease commit (it syncs the database file, which would
        // hold up every grant waiting in the batch): `LeaseEngine::checkpoint` runs them
        // on a connection of its own.
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {ATTEMPT_BUSY_MS}; PRAGMA wal_autocheckpoint = 0;"
        ))
        .context("setting up the lease writer's connection")?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("lease-writer".into())
            .spawn(move || run(conn, rx))
            .context("starting the lease writer thread")?;
        Ok(Self { tx })
    }

    /// Queues `ops`, to be committed before `deadline`; the receiver says how it went.
    pub fn submit(&self, ops: Vec<Op>, deadline: Duration) -> Done {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.send(Job {
            ops,
            deadline: Some(Instant::now() + deadline),
            done: Some(done),
        });
        Done(rx)
    }

    /// Queues `ops` to be committed whenever the database allows; nobody waits.
    pub fn submit_eventually(&self, ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        self.send(Job {
            ops,
            deadline: None,
            done: None,
        });
    }

    fn send(&self, job: Job) {
        if self.tx.send(job).is_err() {
            // Only after the thread died. The job, and with it its `done`, is dropped
            // here: whoever waits on it learns `WriteError::Gone` from `Done::outcome`.
            log::error!("the lease writer thread is gone; a change was not stored");
        }
    }
}

fn run(mut conn: SqliteConnection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, batch, &rx);
    }
}

fn commit_batch(conn: &mut SqliteConnection, mut batch: Vec<Job>, rx: &mpsc::Receiver<Job>) {
    let mut waited = false;
    loop {
        match conn.immediate_transaction(|c| {
            for job in &batch {
                apply_all(c, &job.ops)?;
            }
            Ok::<_, DieselError>(())
        }) {
            Ok(()) => {
                if waited {
                    log::info!("the database is writable again; stored the waiting lease changes");
                }
                for job in batch {
                    finish(job, Ok(()));
                }
                return;
            }
            Err(e) if is_temporary(&e) => {
                if !waited {
                    log::warn!("the database cannot be written for now ({e}); lease changes wait");
                    waited = true;
                }
                let now = Instant::now();
                let (expired, kept): (Vec<Job>, Vec<Job>) = batch
                    .into_iter()
                    .partition(|j| j.deadline.is_some_and(|d| d <= now));
                for job in expired {
                    finish(job, Err(WriteError::Temporary));
                }
                batch = kept;
                // Whoever arrived meanwhile waits with the others.
                while let Ok(job) = rx.try_recv() {
                    batch.push(job);
                }
                if batch.is_empty() {
                    return;
                }
            }
            Err(e) if batch.len() > 1 => {
                // One bad job must not sink the others: commit them one by one.
                log::warn!("a group of lease changes failed ({e}); storing them one by one");
                for job in batch {
                    commit_batch(conn, vec![job], rx);
                }
                return;
            }
            Err(e) => {
                log::error!("storing a lease change failed: {e}");
                for job in batch {
                    finish(job, Err(WriteError::Failed(e.to_string())));
                }
                return;
            }
        }
    }
}

fn finish(job: Job, result: Result<(), WriteError>) {
    if let Some(done) = job.done {
        // The caller may have gone away: nothing to tell then.
        drop(done.send(result));
    }
}

/// Locked by another program or full: the change waits for the database to take it.
fn is_temporary(err: &DieselError) -> bool {
    match err {
        DieselError::DatabaseError(_, info) => {
            shared_proto::error::is_temporary_database_message(info.message())
        }
        _ => false,
    }
}

fn apply_all(c: &mut SqliteConnection, ops: &[Op]) -> QueryResult<()> {
    for op in ops {
        match op {
            Op::Insert(row) => {
                diesel::insert_into(leases::table).values(row).execute(c)?;
            }
            Op::Renew { id, expires_at } => {
                diesel::update(leases::table.find(id))
                    .set(leases::expires_at.eq(expires_at))
                    .execute(c)?;
            }
            Op::Delete(id) => {
                diesel::delete(leases::table.find(id)).execute(c)?;
            }
            Op::DeleteExpired { now_ms } => {
                diesel::delete(leases::table.filter(leases::expires_at.le(now_ms))).execute(c)?;
            }
            Op::Peak { feature, peak } => {
                let peak = i32::try_from(*peak).unwrap_or(i32::MAX);
                diesel::insert_into(usage_peaks::table)
                    .values((
                        usage_peaks::feature.eq(feature),
                        usage_peaks::peak_in_use.eq(peak),
                    ))
                    .on_conflict(usage_peaks::feature)
                    .do_update()
                    .set(usage_peaks::peak_in_use.eq(peak))
                    .execute(c)?;
            }
            Op::RaiseHighWater(mark) => {
                db::raise_high_water(c, *mark)?;
            }
            Op::PruneReport {
                now,
                keep_days,
                keep_rows,
            } => {
                crate::report::prune(c, *now, *keep_days, *keep_rows)?;
            }
            Op::Report(row) => {
                diesel::insert_into(report_log::table)
                    .values(row)
                    .execute(c)?;
            }
            Op::TakeBackApplied { lease_id, at } => {
                crate::take_back::mark_applied(c, lease_id, *at)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use diesel::result::DatabaseErrorKind;

    use super::*;

    #[tokio::test]
    async fn a_change_dropped_unanswered_is_gone() {
        let (done, rx) = tokio::sync::oneshot::channel();
        drop(done);
        assert!(matches!(Done(rx).outcome().await, Err(WriteError::Gone)));
        let (done, rx) = tokio::sync::oneshot::channel();
        drop(done.send(Err(WriteError::Temporary)));
        assert!(matches!(
            Done(rx).outcome().await,
            Err(WriteError::Temporary)
        ));
    }

    fn database_error(message: &str) -> DieselError {
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message.to_owned()))
    }

    #[test]
    fn a_locked_or_full_database_makes_changes_wait_and_other_failures_do_not() {
        assert!(is_temporary(&database_error("database is locked")));
        assert!(is_temporary(&database_error("database or disk is full")));
        assert!(!is_temporary(&database_error(
            "UNIQUE constraint failed: leases.id"
        )));
        assert!(!is_temporary(&DieselError::NotFound));
    }
}
