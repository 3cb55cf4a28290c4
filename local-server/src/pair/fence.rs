//! Fencing through client programs (docs/standby.md, "Partitions"): every grant of a
//! paired server carries its epoch, the client library sends the highest it has seen
//! with its next requests, and a primary that receives a higher epoch than its own
//! stops issuing at once. The clients that moved to a promoted standby and come back
//! are exactly the ones that cross a partition the pair channel cannot.
//!
//! A client's epoch is untrusted: it can only make a primary stop issuing, never start,
//! and the standby's next regular call lets the primary issue again when the standby
//! still follows (`primary::replicate`). A standby ignores client epochs.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use shared_proto::ErrorCode;

use super::store::{self, PairRow, PairState, Role};
use crate::db::to_ms;
use crate::error::Error;
use crate::schema::{pair, pair_news};

/// The highest epoch accepted from a client: far above any a pair reaches by its
/// promotions and hand-backs, and low enough that adding to it never overflows.
pub const MAX_CLIENT_EPOCH: i64 = i64::MAX / 2;

/// The `MALFORMED` refusal of an epoch outside `0..=MAX_CLIENT_EPOCH`.
pub fn validate(epoch: i64) -> Result<(), Error> {
    if (0..=MAX_CLIENT_EPOCH).contains(&epoch) {
        Ok(())
    } else {
        Err(Error::refused(
            ErrorCode::Malformed,
            format!("pair_epoch must be 0 to {MAX_CLIENT_EPOCH}"),
        ))
    }
}

/// The answer to the request that fenced this server, and to every request after it
/// until the standby hands back (the lease engine's own refusal says the same).
pub fn refusal() -> Error {
    Error::refused(
        ErrorCode::ServingElsewhere,
        "the standby server was promoted and issues seats now; use it (this server issues \
         again once the standby has handed back)",
    )
}

/// Whether a client's `epoch` tells this server to stop issuing: it is a primary not
/// fenced yet, and the epoch is higher than its own (its standby was promoted).
pub fn outranks(pair: Option<&PairRow>, epoch: i64) -> bool {
    pair.is_some_and(|p| {
        p.role() == Role::Primary && p.state() != PairState::Fenced && epoch > p.epoch
    })
}

/// Stores what a client brought: this primary is fenced at `epoch` (its generation
/// moves, so the lease engine stops issuing at its next reload), and the news is kept
/// for `status`. True when this call fenced it (false: it was not a primary, was fenced
/// already, or its epoch is not lower).
pub fn fence_by_client(
    c: &mut SqliteConnection,
    epoch: i64,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    validate(epoch)?;
    c.immediate_transaction(|c| {
        let Some(row) = store::load(c)? else {
            return Ok(false);
        };
        if !outranks(Some(&row), epoch) {
            return Ok(false);
        }
        diesel::update(pair::table)
            .set((
                pair::state.eq(PairState::Fenced.as_str()),
                pair::epoch.eq(epoch),
                pair::waiting_until.eq(None::<i64>),
            ))
            .execute(c)?;
        let detail = format!(
            "a client program came from the promoted standby (pair epoch {epoch}, this server \
             had {}) at {}: this server stopped issuing seats until the standby hands back \
             or is heard following",
            row.epoch,
            now.format("%Y-%m-%d %H:%M:%S UTC")
        );
        diesel::update(pair_news::table)
            .set((
                pair_news::overlap_detected_at.eq(to_ms(now)),
                pair_news::overlap_detail.eq(&detail),
            ))
            .execute(c)?;
        log::warn!("fenced by a client: {detail}");
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    fn row(role: Role, state: PairState, epoch: i64) -> PairRow {
        let keys = shared_proto::ServerIdentity::generate()
            .expect("a key pair")
            .public_keys();
        let mut row = PairRow::new(role, state, &keys, None, Utc::now()).expect("a pair row");
        row.epoch = epoch;
        row
    }

    #[test]
    fn only_a_higher_epoch_stops_a_primary_that_issues() {
        let serving = row(Role::Primary, PairState::Serving, 4);
        assert!(outranks(Some(&serving), 5));
        assert!(!outranks(Some(&serving), 4));
        assert!(!outranks(Some(&serving), 3));
        assert!(outranks(
            Some(&row(Role::Primary, PairState::Waiting, 4)),
            5
        ));
        assert!(!outranks(
            Some(&row(Role::Primary, PairState::Fenced, 4)),
            9
        ));
        assert!(!outranks(
            Some(&row(Role::Standby, PairState::Promoted, 4)),
            9
        ));
        assert!(!outranks(
            Some(&row(Role::Standby, PairState::Following, 4)),
            9
        ));
        assert!(!outranks(None, 9));
    }

    #[test]
    fn client_epochs_are_bounded() {
        assert!(validate(0).is_ok());
        assert!(validate(MAX_CLIENT_EPOCH).is_ok());
        for bad in [-1, MAX_CLIENT_EPOCH + 1, i64::MAX, i64::MIN] {
            let err = validate(bad).expect_err("out of bounds");
            assert_eq!(err.code(), Some(ErrorCode::Malformed));
        }
    }
}
