//! How the gateway runs work beside its single-threaded runtime: [`blocking`] runs
//! file work on the blocking pool, [`every`] is the one loop of every poll (the
//! Maildir watcher, the queues' scans, key-clear notices, reminders, housekeeping),
//! and [`log_abnormal_end`] logs a task that panicked instead of dropping it unseen.
//!
//! A leaf: it imports no other module of the crate.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinError;
use tokio::time::MissedTickBehavior;

/// Runs blocking work (file I/O) on the blocking pool and waits for it. A panic in
/// it becomes an error here instead of ending the caller.
pub async fn blocking<T, F>(work: F) -> anyhow::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .context("a blocking task of the gateway panicked")
}

/// The one shape of the gateway's background loops (tick → work → log): runs `round`
/// at once and then every `period` until `stop` changes. A round that overruns delays
/// the next one; missed ticks are not made up in a burst. A failing round is logged
/// when the failure starts and again when `what` works again, so an outage of hours
/// leaves two lines instead of one per tick.
pub async fn every<F, Fut>(
    what: &str,
    period: Duration,
    mut stop: watch::Receiver<bool>,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        match round().await {
            Ok(()) => {
                if failing {
                    log::info!("{what} works again");
                    failing = false;
                }
            }
            Err(err) => {
                if !failing {
                    log::warn!("{what} failed (retried every round, logged once): {err:#}");
                    failing = true;
                }
            }
        }
    }
}

/// Logs how a task ended when it did not end on its own (a panic, a cancellation),
/// so that no task's end goes unseen. `what` names the task for the log.
pub fn log_abnormal_end(what: &str, joined: Result<(), JoinError>) {
    let Err(err) = joined else {
        return;
    };
    if err.is_panic() {
        let panic = err.into_panic();
        let message = panic
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        log::error!("{what} ended in a panic: {message}");
    } else {
        log::warn!("{what} was cancelled");
    }
}
