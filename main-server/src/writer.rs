//! The group-committing writer: threads that own the database writes of direct syncs
//! and commit them in groups, on both backends.
//!
//! Every answer waits for its commit to be durable (an fsync: milliseconds on a real
//! disk), so one commit per sync would cap the server at a few hundred syncs per second
//! per connection. Instead the async handlers send their attempt over a channel, and a
//! writer thread takes everything that is waiting (up to [`MAX_BATCH`]), writes it in
//! one transaction, commits once, and only then answers every waiter. Nothing is
//! acknowledged before it is committed, and a failed commit fails the whole group.
//!
//! - SQLite has a single writer anyway: one thread, on the pool of one write connection
//!   that admin requests share. Each attempt runs in its own savepoint, so a refused one
//!   (replay, key in use) rolls back only itself.
//! - PostgreSQL: [`POSTGRES_WRITERS`] threads, each with a connection of its own, so one
//!   group is being collected while another waits for its commit. A group is one call
//!   of the `solme_issue_syncs` function: one round trip, one commit; the function
//!   refuses an attempt without touching anything, so refusals need no savepoints. If
//!   the call fails (a lost connection, a deadlock between processes), the thread
//!   reconnects and retries each attempt of the group alone, so one bad attempt cannot
//!   fail its neighbours.

use std::sync::{mpsc, Arc, Mutex};

use anyhow::Context;
use diesel::{Connection, QueryResult, RunQueryDsl};
use shared_proto::admin_api::AuditEntry;
use tokio::sync::oneshot;

use crate::db::{Db, DbConnection, DbTarget, Pool};
use crate::error::ApiError;
use crate::store::audit;
use crate::store::sync::{self as tx, Attempt, Issued};

/// Most jobs in one transaction: bounds how long the first waiter of a group waits for
/// the last one's statements.
pub const MAX_BATCH: usize = 128;

/// Writer threads (and connections) per process on PostgreSQL: two keep one group
/// collecting while the other commits; more only add connections.
pub const POSTGRES_WRITERS: usize = 2;

enum Job {
    Issue(Box<Attempt>, oneshot::Sender<Result<Issued, ApiError>>),
    Audit(Box<AuditEntry>, oneshot::Sender<Result<(), ApiError>>),
}

enum Done {
    Issue(Result<Issued, ApiError>),
    Audit(Result<(), ApiError>),
}

impl Job {
    /// Runs the job in its own savepoint of the group's transaction (SQLite). The outer
    /// error means the savepoint itself failed: the group's transaction can no longer
    /// be trusted and must be rolled back whole.
    fn run_in_savepoint(&self, conn: &mut DbConnection) -> QueryResult<Done> {
        Ok(match self {
            Self::Issue(attempt, _) => {
                Done::Issue(savepoint(conn, |conn| tx::issue_in(conn, attempt))?)
            }
            Self::Audit(record, _) => {
                Done::Audit(savepoint(conn, |conn| audit::record_entry(conn, record))?)
            }
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
            (job, _) => job.fail(&anyhow::anyhow!("the database writer mixed up two answers")),
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

/// Handle to the writer threads; cheap to clone. The threads end when the last handle
/// is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the threads for the database's backend.
    pub fn start(db: &Db) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        // The threads take turns collecting a group: the one holding the lock waits for
        // the next job while the others are writing theirs.
        let queue = Arc::new(Mutex::new(queue));
        match &db.target {
            DbTarget::Sqlite(_) => {
                let pool = db.write.clone();
                spawn("sqlite-writer", queue, move |group| {
                    commit_sqlite(&pool, group)
                })?;
            }
            DbTarget::Postgres(_) => {
                for n in 0..POSTGRES_WRITERS {
                    let mut writer = PostgresWriter {
                        target: db.target.clone(),
                        conn: None,
                    };
                    spawn(
                        &format!("postgres-writer-{n}"),
                        queue.clone(),
                        move |group| {
                            writer.commit(group);
                        },
                    )?;
                }
            }
        }
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

    /// Writes one audit entry on its own (a sync refused before the database was asked);
    /// answers once it is committed.
    pub async fn audit(&self, record: AuditEntry) -> Result<(), ApiError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Audit(Box::new(record), reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> ApiError {
    ApiError::Internal(anyhow::anyhow!("the database writer has stopped"))
}

fn spawn(
    name: &str,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    mut commit: impl FnMut(&mut Vec<Job>) + Send + 'static,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut group = Vec::with_capacity(MAX_BATCH);
            while collect(&queue, &mut group) {
                // A panic (a bug) must not take the writer down with it, or every later
                // sync would fail: the group's waiters see their answer dropped (an
                // internal error), and a connection left inside a transaction is
                // discarded.
                let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    commit(&mut group);
                }));
                if caught.is_err() {
                    log::error!("the database writer panicked; its group of syncs failed");
                }
                group.clear();
            }
        })
        .with_context(|| format!("starting the {name} thread"))?;
    Ok(())
}

/// Waits for the next job and takes whatever else is waiting. `false` once every
/// handle is gone.
fn collect(queue: &Mutex<mpsc::Receiver<Job>>, group: &mut Vec<Job>) -> bool {
    // A thread that panicked while holding the lock left the receiver intact.
    let queue = queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Ok(first) = queue.recv() else {
        return false;
    };
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
    true
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

/// SQLite: runs `group` in one transaction and answers every job after the commit.
fn commit_sqlite(pool: &Pool, group: &mut Vec<Job>) {
    let mut done = Vec::with_capacity(group.len());
    let committed = pool
        .get()
        .map_err(|e| anyhow::Error::new(e).context("getting the write connection"))
        .and_then(|mut conn| {
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                for job in group.iter() {
                    done.push(job.run_in_savepoint(conn)?);
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
        Err(cause) => fail_all(group, &cause),
    }
}

fn fail_all(group: &mut Vec<Job>, cause: &anyhow::Error) {
    log::error!(
        "a group of {} database writes failed: {cause:#}",
        group.len()
    );
    for job in group.drain(..) {
        job.fail(cause);
    }
}

/// One PostgreSQL writer thread and its own connection (made again after a failure).
struct PostgresWriter {
    target: DbTarget,
    conn: Option<DbConnection>,
}

impl PostgresWriter {
    fn connection(&mut self) -> anyhow::Result<&mut DbConnection> {
        if self.conn.is_none() {
            self.conn = Some(self.target.connect_alone()?);
        }
        self.conn
            .as_mut()
            .context("the writer's database connection is missing")
    }

    /// Writes the group's syncs in one call (one commit), then the audit entries of
    /// refused syncs, each in its own autocommit statement (they are rare).
    fn commit(&mut self, group: &mut Vec<Job>) {
        let (issues, audits): (Vec<Job>, Vec<Job>) = group
            .drain(..)
            .partition(|job| matches!(job, Job::Issue(..)));
        let mut issues = issues;
        if !issues.is_empty() {
            if let Err(cause) = self.issue_group(&mut issues) {
                log::warn!(
                    "a group of {} syncs failed ({cause:#}); retrying each alone",
                    issues.len()
                );
                self.conn = None;
                for job in issues.drain(..) {
                    let mut alone = vec![job];
                    if let Err(cause) = self.issue_group(&mut alone) {
                        self.conn = None;
                        fail_all(&mut alone, &cause);
                    }
                }
            }
        }
        for job in audits {
            let written =
                self.connection()
                    .map_err(ApiError::Internal)
                    .and_then(|conn| match &job {
                        Job::Audit(record, _) => audit::record_entry(conn, record),
                        Job::Issue(..) => Err(ApiError::Internal(anyhow::anyhow!(
                            "a sync was sorted among the audit entries"
                        ))),
                    });
            if written.is_err() {
                self.conn = None;
            }
            job.reply(Done::Audit(written));
        }
    }

    /// One statement for all of `jobs` (which are all `Issue`); answers them after the
    /// commit. On an error nothing was committed and `jobs` is left unanswered.
    fn issue_group(&mut self, jobs: &mut Vec<Job>) -> anyhow::Result<()> {
        let DbConnection::Postgres(conn) = self.connection()? else {
            anyhow::bail!("the PostgreSQL writer holds another kind of connection");
        };
        let attempts: Vec<&Attempt> = jobs
            .iter()
            .filter_map(|job| match job {
                Job::Issue(attempt, _) => Some(&**attempt),
                Job::Audit(..) => None,
            })
            .collect();
        anyhow::ensure!(
            attempts.len() == jobs.len(),
            "an audit entry among the syncs"
        );
        // Retired ids are refused by the function itself (see store::retired).
        let answers = tx::issue_group_pg(conn, &attempts).context("committing a group of syncs")?;
        for (job, result) in jobs.drain(..).zip(answers) {
            job.reply(Done::Issue(result));
        }
        Ok(())
    }
}
