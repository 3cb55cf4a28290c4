//! Automatic synchronization: `auto-sync off|daily|weekly` and the loop in `serve` that
//! runs it.
//!
//! The schedule lives in the database (`next_auto_sync_at`), so `status` shows it from
//! any process and a restart keeps it. The loop wakes every tick, reads the shared
//! clock, and synchronizes when the time has come; a failure is retried with back-off
//! (1, 2, 4 … minutes, at most an hour, never later than the regular period). Only this
//! loop and manual syncs synchronize, and the lock in the database keeps them from
//! overlapping.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

use crate::config::AutoSyncMode;
use crate::db::{self, from_ms, to_ms};
use crate::error::Error;
use crate::installation::Installation;
use crate::schema::{config, sync_state};
use crate::sync;

/// First retry after a failed automatic synchronization.
pub const BACKOFF_FIRST: Duration = Duration::minutes(1);
/// Longest wait between retries.
pub const BACKOFF_MAX: Duration = Duration::hours(1);

/// Delay before retry number `failures` (1 = first failure).
pub fn backoff(failures: i32, period: Duration) -> Duration {
    let exponent = u32::try_from(failures.saturating_sub(1).clamp(0, 16)).unwrap_or(0);
    let delay = BACKOFF_FIRST * 2i32.saturating_pow(exponent);
    delay.min(BACKOFF_MAX).min(period)
}

/// `auto-sync MODE`: stores the mode and the next run. A server that synchronized
/// recently waits a full period from that sync; one that never did, or whose last
/// sync is older than the period, synchronizes at the next tick.
pub fn set_mode(
    conn: &mut SqliteConnection,
    mode: AutoSyncMode,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, Error> {
    conn.immediate_transaction(|c| {
        let state = db::load_sync_state(c)?;
        let next = mode.period().map(|period| {
            state
                .last_sync_at
                .map(from_ms)
                .map_or(now, |last| (last + period).max(now))
        });
        diesel::update(config::table)
            .set(config::auto_sync.eq(mode.as_str()))
            .execute(c)?;
        diesel::update(sync_state::table)
            .set((
                sync_state::next_auto_sync_at.eq(next.map(to_ms)),
                sync_state::consecutive_failures.eq(0),
            ))
            .execute(c)?;
        Ok(next)
    })
}

/// Whether an automatic synchronization is due; the mode and when.
fn due(conn: &mut SqliteConnection, now: DateTime<Utc>) -> Result<Option<AutoSyncMode>, Error> {
    let mode: String = config::table.select(config::auto_sync).first(conn)?;
    let mode = mode.parse().unwrap_or(AutoSyncMode::Off);
    let Some(period) = mode.period() else {
        return Ok(None);
    };
    let state = db::load_sync_state(conn)?;
    match state.next_auto_sync_at {
        Some(next) if next <= to_ms(now) => Ok(Some(mode)),
        Some(_) => Ok(None),
        None => {
            // Mode set by an older version or by hand: schedule from the last sync.
            let next = state.last_sync_at.map_or(now, |l| from_ms(l) + period);
            diesel::update(sync_state::table)
                .set(sync_state::next_auto_sync_at.eq(to_ms(next)))
                .execute(conn)?;
            Ok(None)
        }
    }
}

fn schedule_after(
    conn: &mut SqliteConnection,
    mode: AutoSyncMode,
    now: DateTime<Utc>,
    succeeded: bool,
) -> Result<DateTime<Utc>, Error> {
    let period = mode.period().unwrap_or(Duration::days(1));
    let failures: i32 = sync_state::table
        .select(sync_state::consecutive_failures)
        .first(conn)?;
    let next = if succeeded {
        now + period
    } else {
        now + backoff(failures.max(1), period)
    };
    diesel::update(sync_state::table)
        .set(sync_state::next_auto_sync_at.eq(to_ms(next)))
        .execute(conn)?;
    Ok(next)
}

/// One pass of the scheduler: synchronizes if due, then plans the next run.
pub async fn tick(ctx: &Installation, client: &awc::Client) -> Result<(), Error> {
    let now = ctx.clock.now();
    let Some(mode) = ctx.db(move |c| due(c, now)).await? else {
        return Ok(());
    };
    let result = sync::sync_now(ctx, client, "automatic").await;
    if matches!(result, Err(Error::SyncBusy)) {
        // A manual sync is running; look again at the next tick.
        return Ok(());
    }
    let now = ctx.clock.now();
    let succeeded = result.is_ok();
    let next = ctx
        .db(move |c| schedule_after(c, mode, now, succeeded))
        .await?;
    log::info!("next automatic synchronization at {next}");
    Ok(())
}

/// The scheduler loop, run by `serve` until the process stops.
pub async fn run(ctx: Installation, client: awc::Client, tick_every: StdDuration) {
    let mut interval = tokio::time::interval(tick_every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(e) = tick(&ctx, &client).await {
            log::error!("automatic synchronization scheduler: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour_and_the_period() {
        let day = Duration::days(1);
        assert_eq!(backoff(1, day), Duration::minutes(1));
        assert_eq!(backoff(2, day), Duration::minutes(2));
        assert_eq!(backoff(4, day), Duration::minutes(8));
        assert_eq!(backoff(30, day), Duration::hours(1));
        assert_eq!(backoff(30, Duration::minutes(5)), Duration::minutes(5));
    }
}
