//! The runner both spool queues share: the inbound queue (the worker asks the main
//! server and stages the reply) and `outgoing/` (the dispatcher hands replies to the
//! outbound backend).
//!
//! Each entry gets one task, scheduled once however often it is announced or listed.
//! An attempt holds a permit (so at most `--workers` run at once, and a stop can wait
//! for those in progress); a temporary failure is retried after a delay that doubles
//! from `--retry-initial-ms` up to `--retry-max-ms`, and every such wait ends at
//! shutdown: the entry stays in the spool and the next start resumes it. The queue is
//! listed every scan, which picks up what `deliver` or a restart left there.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, AcquireError, Semaphore};

use crate::background;
use crate::queue::spool::Spool;
use crate::status::counters::Stats;

/// Delays between attempts after temporary failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// The delay after the `failures`-th failure in a row (1-based).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Waiting between attempts: the policy, the counter of retries, and the stop.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub policy: RetryPolicy,
    pub stats: Arc<Stats>,
    /// Becomes true when the gateway stops: every wait ends.
    pub shutdown: watch::Receiver<bool>,
}

impl Backoff {
    /// Counts a temporary failure, the `failures`-th in a row, and returns the delay
    /// before the next attempt.
    pub fn failed(&self, failures: u32) -> Duration {
        Stats::add(&self.stats.retries);
        self.policy.delay(failures)
    }

    /// Waits `delay`; false when the gateway is stopping instead.
    pub async fn wait(&self, delay: Duration) -> bool {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.wait_for(|stopping| *stopping) => false,
        }
    }
}

/// How one attempt on an entry ended.
pub enum Attempt {
    Done,
    /// Temporary: keep the entry, try again later.
    Retry(anyhow::Error),
    /// The entry itself is unusable: move it to `failed/`.
    GiveUp(anyhow::Error),
}

/// What a queue does with its entries.
pub(crate) trait Job: 'static {
    /// What an entry's earlier attempts in this process left behind.
    type Progress: Default;
    /// The word log lines name an entry by (`message`, `reply`).
    const ENTRY: &'static str;

    /// The names waiting in the spool.
    async fn list(spool: &Spool) -> anyhow::Result<Vec<String>>;
    /// Moves an unusable entry to `failed/`.
    async fn fail(spool: &Spool, name: &str) -> anyhow::Result<()>;

    /// An intake announced `name` (before any listing may show it).
    fn announced(&self, _name: &str) {}
    /// A listing of the queue, taken before `in_progress` was looked at.
    fn listed(&self, _names: &[String], _in_progress: &HashSet<String>) {}

    async fn attempt(&self, name: &str, progress: &mut Self::Progress) -> Attempt;
}

/// One queue being worked on.
pub(crate) struct Runner<J> {
    job: J,
    spool: Spool,
    backoff: Backoff,
    /// One per attempt in progress; closed when the gateway stops.
    permits: Semaphore,
    workers: u32,
    /// Names with a task (scheduled once each).
    known: RefCell<HashSet<String>>,
}

impl<J: Job> Runner<J> {
    pub fn new(job: J, spool: Spool, backoff: Backoff, workers: usize) -> Self {
        let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
        Self {
            job,
            spool,
            backoff,
            permits: Semaphore::new(workers as usize),
            workers,
            known: RefCell::new(HashSet::new()),
        }
    }

    /// Takes names from `inbox` and lists the queue every `scan_every`, until the
    /// gateway stops.
    pub async fn run(
        self: Rc<Self>,
        mut inbox: mpsc::UnboundedReceiver<String>,
        scan_every: Duration,
    ) {
        let announced = async {
            while let Some(name) = inbox.recv().await {
                self.job.announced(&name);
                self.schedule(name);
            }
            // No intake is left to announce anything: the scans go on alone.
            std::future::pending::<()>().await;
        };
        let what = format!("the scan of the spool for {}s", J::ENTRY);
        let stop = self.backoff.shutdown.clone();
        let scans = background::every(&what, scan_every, stop, || self.scan());
        // The scans end at the stop, and the announcements with them.
        tokio::select! {
            () = announced => {}
            () = scans => {}
        }
    }

    /// Lists the queue and schedules every entry no task has yet.
    async fn scan(self: &Rc<Self>) -> anyhow::Result<()> {
        let names = J::list(&self.spool).await?;
        self.job.listed(&names, &self.known.borrow());
        names.into_iter().for_each(|name| self.schedule(name));
        Ok(())
    }

    fn schedule(self: &Rc<Self>, name: String) {
        if self.known.borrow_mut().insert(name.clone()) {
            actix_web::rt::spawn(self.clone().handle(name));
        }
    }

    async fn handle(self: Rc<Self>, name: String) {
        let entry = J::ENTRY;
        let mut failures = 0;
        let mut progress = J::Progress::default();
        loop {
            let attempt = match self.permits.acquire().await {
                Ok(_permit) => self.job.attempt(&name, &mut progress).await,
                // Closed: the gateway is stopping.
                Err(_) => break,
            };
            match attempt {
                Attempt::Done => break,
                Attempt::Retry(err) => {
                    failures += 1;
                    let delay = self.backoff.failed(failures);
                    log::warn!(
                        "{entry}={name} attempt={failures} failed, next try in {delay:?}: {err:#}"
                    );
                    if !self.backoff.wait(delay).await {
                        log::warn!("{entry}={name} left in the spool for the next start");
                        break;
                    }
                }
                Attempt::GiveUp(err) => {
                    log::error!("{entry}={name} given up, moved to spool/failed: {err:#}");
                    Stats::add(&self.backoff.stats.failed);
                    if let Err(err) = J::fail(&self.spool, &name).await {
                        log::error!("{entry}={name} could not be moved to spool/failed: {err:#}");
                    }
                    break;
                }
            }
        }
        self.known.borrow_mut().remove(&name);
    }

    /// Waits until no attempt is in progress (a semaphore is fair, so nothing new
    /// starts meanwhile).
    pub async fn idle(&self) -> Result<(), AcquireError> {
        self.permits.acquire_many(self.workers).await.map(drop)
    }

    /// Ends every task: waiting ones stop at once, the entries stay in the spool.
    pub fn close(&self) {
        self.permits.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        assert_eq!(policy.delay(1), Duration::from_millis(100));
        assert_eq!(policy.delay(2), Duration::from_millis(200));
        assert_eq!(policy.delay(4), Duration::from_millis(800));
        assert_eq!(policy.delay(5), Duration::from_millis(1000));
        assert_eq!(policy.delay(500), Duration::from_millis(1000));
    }
}
