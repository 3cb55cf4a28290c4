//! The SQLite writer: one thread that owns the database writes of direct syncs and
//! commits them in groups.
//!
//! SQLite has a single writer anyway. Handing every sync to a blocking-pool thread that
//! then queues for the one write connection cost two thread switches per sync and a
//! transaction each; here the async handlers send their attempt over a channel, this
//! thread takes everything that is waiting (up to [`MAX_BATCH`]), runs each attempt in
//! its own savepoint inside one transaction, commits once, and only then answers every
//! waiter. So nothing is acknowledged before it is committed, a refused attempt (replay,
//! key in use) rolls back only itself, and a failed commit fails the whole group.
//!
//! The thread takes the write connection from the same pool of one that admin requests
//! use, so there is still exactly one writer. PostgreSQL does not use this: its
//! connections write in parallel and its row locks order them.

use std::sync::mpsc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use diesel::{Connection, QueryResult, RunQueryDsl};
use shared_proto::admin_api::{AuditAction, AuditOutcome};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::db::{DbConnection, Pool};
use crate::error::ApiError;
use crate::store::audit::{self, Event};
use crate::store::sync::{self as tx, Attempt, Issued};

/// Most jobs in one transaction: bounds how long the first waiter of a group waits for
/// the last one's statements.
pub const MAX_BATCH: usize = 128;

/// An audit entry to write on its own (a sync refused before the database was asked).
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: AuditAction,
    pub server_id: Option<Uuid>,
    pub outcome: AuditOutcome,
    pub detail: String,
}

enum Job {
    Issue(Box<Attempt>, oneshot::Sender<Result<Issued, ApiError>>),
    Audit(Box<AuditRecord>, oneshot::Sender<Result<(), ApiError>>),
}

enum Done {
    Issue(Result<Issued, ApiError>),
    Audit(Result<(), ApiError>),
}

impl Job {
    /// Runs the job in its own savepoint of the group's transaction. The outer error
    /// means the savepoint itself failed: the group's transaction can no longer be
    /// trusted and must be rolled back whole.
    fn run(&self, conn: &mut DbConnection) -> QueryResult<Done> {
        Ok(match self {
            Self::Issue(attempt, _) => {
                Done::Issue(savepoint(conn, |conn| tx::issue_in(conn, attempt))?)
            }
            Self::Audit(record, _) => Done::Audit(savepoint(conn, |conn| {
                audit::record(
                    conn,
                    record.at,
                    &Event {
                        actor: &record.actor,
                        action: record.action,
                        server_id: record.server_id,
                        outcome: record.outcome,
                        detail: &record.detail,
                    },
                )
            })?),
        })
    }

    /// Answers the waiter (who may have gone away: then nobody listens).
    fn reply(self, done: Done) {
        match (self, done) {
            (Self::Issue(_, reply), Done::Issue(result)) => {
                let _ = reply.send(result);
            }
            (Self::Audit(_, reply), Done::Audit(result)) => {
                let _ = reply.send(result);
            }
            (job, _) => job.fail(&anyhow::anyhow!("the SQLite writer mixed up two answers")),
        }
    }

    fn fail(self, cause: &anyhow::Error) {
        let error = || ApiError::Internal(anyhow::anyhow!("{cause:#}"));
        match self {
            Self::Issue(_, reply) => {
                let _ = reply.send(Err(error()));
            }
            Self::Audit(_, reply) => {
                let _ = reply.send(Err(error()));
            }
        }
    }
}

/// Handle to the writer thread; cheap to clone. The thread ends when the last handle
/// is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the thread; it writes through `pool` (the pool of one write connection).
    pub fn start(pool: Pool) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(&pool, &queue))
            .context("starting the SQLite writer thread")?;
        Ok(Self { jobs })
    }

    /// Runs a sync's transaction; answers once it is committed.
    pub async fn issue(&self, attempt: Attempt) -> Result<Issued, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Issue(Box::new(attempt), reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Writes one audit entry; answers once it is committed.
    pub async fn audit(&self, record: AuditRecord) -> Result<(), ApiError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Audit(Box::new(record), reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> ApiError {
    ApiError::Internal(anyhow::anyhow!("the SQLite writer thread has stopped"))
}

fn run(pool: &Pool, queue: &mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = queue.recv() {
        group.push(first);
        // Let the async workers run once before draining: the syncs they are verifying
        // right now join this group instead of costing a wake-up and a commit each.
        std::thread::yield_now();
        while group.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        // A panic (a bug) must not take the writer down with it, or every later sync
        // would fail: the group's waiters see their answer dropped (an internal error),
        // and a connection left inside a transaction is discarded by the pool.
        let caught =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(pool, &mut group)));
        if caught.is_err() {
            log::error!("the SQLite writer panicked; its group of syncs failed");
            group.clear();
        }
    }
}

/// Runs `work` in a savepoint: released when it succeeds, rolled back to (undoing
/// only this job) when it fails. Issued by hand rather than through diesel's nested
/// transactions so that a failing savepoint statement fails the whole group.
fn savepoint<T>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, ApiError>,
) -> QueryResult<Result<T, ApiError>> {
    diesel::sql_query("SAVEPOINT job").execute(conn)?;
    let result = work(conn);
    if result.is_err() {
        diesel::sql_query("ROLLBACK TO SAVEPOINT job").execute(conn)?;
    }
    diesel::sql_query("RELEASE SAVEPOINT job").execute(conn)?;
    Ok(result)
}

/// Runs `group` in one transaction and answers every job after the commit.
fn commit(pool: &Pool, group: &mut Vec<Job>) {
    let mut done = Vec::with_capacity(group.len());
    let committed = pool
        .get()
        .map_err(|e| anyhow::Error::new(e).context("getting the write connection"))
        .and_then(|mut conn| {
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                for job in group.iter() {
                    done.push(job.run(conn)?);
                }
                Ok(())
            })
            .context("committing a group of syncs")
        });
    match committed {
        Ok(()) => {
            for (job, done) in group.drain(..).zip(done) {
                job.reply(done);
            }
        }
        Err(cause) => {
            log::error!(
                "a group of {} database writes failed: {cause:#}",
                group.len()
            );
            for job in group.drain(..) {
                job.fail(&cause);
            }
        }
    }
}
