//! A primary and a standby license server of one id (docs/standby.md): pairing, the
//! channel between the two, promotion by a person, and the hand-back.
//!
//! - [`store`]: the pair as stored (one row on each server) and the pairing codes.
//! - [`gate`]: whether this server may issue seats now, from the stored pair alone;
//!   the lease engine asks it before every grant and renewal.
//! - [`messages`]: what the two say to each other, signed by each one's own key.
//! - [`primary`]: the primary's answers to its standby.
//! - [`standby`]: pairing, the regular call, promotion and the hand-back.
//!
//! The rule that keeps the two apart: a standby issues only once a person promoted it,
//! and a primary that hears of a promotion stops issuing before it does anything else;
//! it issues again only once the standby has stopped and handed back.

pub mod fence;
pub mod gate;
pub mod messages;
pub mod primary;
pub mod standby;
pub mod store;

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

use self::store::{PairState, Role};
use crate::db::to_ms;
use crate::error::Error;
use crate::installation::Installation;
use crate::schema::pair;

/// How often a standby calls its primary by default.
pub const DEFAULT_INTERVAL: StdDuration = StdDuration::from_secs(10);

/// At `serve`'s start: a primary with a standby issues nothing until it has heard from
/// the standby (it may have been promoted meanwhile) or three intervals have passed; a
/// standby records its interval, which sets how long the primary must be silent before
/// a promotion.
pub fn on_start(
    c: &mut SqliteConnection,
    now: DateTime<Utc>,
    interval: StdDuration,
) -> Result<(), Error> {
    let Some(row) = store::load(c)? else {
        return Ok(());
    };
    let interval = Duration::from_std(interval).unwrap_or(Duration::seconds(10));
    match row.role() {
        // A fenced primary stays fenced across a restart: its standby issues until it
        // hands back.
        Role::Primary if row.state() == PairState::Fenced => {
            log::warn!("fenced: the standby was promoted; this server issues again once it has handed back");
        }
        Role::Primary => {
            let until = now + interval * 3;
            diesel::update(pair::table)
                .set((
                    pair::state.eq(PairState::Waiting.as_str()),
                    pair::waiting_until.eq(to_ms(until)),
                ))
                .execute(c)?;
            log::info!(
                "a standby is paired: asking it whether it was promoted before issuing seats \
                 (at most {} s)",
                (interval * 3).num_seconds()
            );
        }
        Role::Standby => {
            diesel::update(pair::table)
                .set(pair::interval_ms.eq(interval.num_milliseconds()))
                .execute(c)?;
        }
    }
    Ok(())
}

/// The pair's background work of `serve`: the standby's regular call, and on the
/// primary the end of its wait when the standby does not answer.
pub async fn run(installation: Installation, interval: StdDuration) {
    let role = installation
        .db(|c| Ok(store::load(c)?.map(|row| row.role())))
        .await;
    match role {
        Ok(Some(Role::Standby)) => standby::follow(installation, interval).await,
        Ok(Some(Role::Primary)) => end_wait(installation, interval).await,
        Ok(None) => {}
        Err(e) => log::error!("reading the pair failed: {e}"),
    }
}

/// A primary whose standby did not answer within its wait issues anyway: a dead
/// standby must never stop the department.
async fn end_wait(installation: Installation, interval: StdDuration) {
    let mut ticker = tokio::time::interval(interval.min(StdDuration::from_secs(1)));
    loop {
        ticker.tick().await;
        let clock = installation.clock.clone();
        let ended = installation
            .db(move |c| {
                let now = to_ms(clock.now());
                Ok(diesel::update(
                    pair::table
                        .filter(pair::state.eq(PairState::Waiting.as_str()))
                        .filter(pair::waiting_until.le(now)),
                )
                .set((
                    pair::state.eq(PairState::Serving.as_str()),
                    pair::waiting_until.eq(None::<i64>),
                ))
                .execute(c)?)
            })
            .await;
        match ended {
            Ok(1) => log::warn!(
                "the standby did not answer: this server issues seats (status shows since \
                 when the standby is unreachable)"
            ),
            Ok(_) => {}
            Err(e) => log::error!("ending the wait for the standby failed: {e}"),
        }
    }
}
