//! Whether a server of a pair may issue seats now: the one rule that keeps the two
//! apart, decided from the stored pair alone (no clock read, nothing written).

use chrono::{DateTime, Utc};
use shared_proto::ErrorCode;

use super::store::{PairRow, PairState};
use crate::error::Error;

/// `None` when this server may grant and renew seats at `now`; else the refusal its
/// clients get. A server without a pair always may.
pub fn refusal(pair: Option<&PairRow>, now: DateTime<Utc>) -> Option<Error> {
    let pair = pair?;
    match pair.state() {
        PairState::Serving => None,
        PairState::Waiting => Some(Error::refused(
            ErrorCode::Unavailable,
            "this license server has just started and is asking its standby server whether \
             it was promoted meanwhile; try again in a few seconds",
        )),
        PairState::Fenced => Some(Error::refused(
            ErrorCode::ServingElsewhere,
            "the standby server was promoted and issues seats now; use it (this server \
             issues again once the standby has handed back)",
        )),
        PairState::Following => Some(Error::refused(
            ErrorCode::StandbyFollowing,
            "this is a standby license server: it issues seats only once a person promoted \
             it while the primary is down; use the primary",
        )),
        PairState::SteppingDown => Some(Error::refused(
            ErrorCode::ServingElsewhere,
            "this standby server handed back to the primary, which issues seats again; use \
             the primary",
        )),
        PairState::Promoted => match pair.failover_ends() {
            Some(ends) if now < ends => None,
            Some(ends) => Some(Error::refused(
                ErrorCode::FailoverEnded,
                format!(
                    "this standby server's failover period ended on {}: it issues no more \
                     seats. Bring the primary back, or ask Solme to make this server the \
                     id's primary",
                    ends.format("%Y-%m-%d %H:%M UTC")
                ),
            )),
            None => Some(Error::refused(
                ErrorCode::FailoverEnded,
                "this standby server holds no failover period from Solme: it issues no seats",
            )),
        },
    }
}
