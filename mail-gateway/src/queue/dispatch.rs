//! The dispatcher: the job of the `outgoing/` queue (see [`crate::queue::runner`]). It hands
//! each staged reply to the outbound backend and moves it to `sent/` once the backend
//! took it; the queue runner retries with back-off while the relay is away.
//!
//! A reply the backend took is never handed over again by this process: if the move
//! to `sent/` fails, only the move is retried. A spool entry that cannot be read for a
//! file-system reason is retried; one that cannot be decoded goes to `failed/`.

use std::collections::HashSet;
use std::sync::Arc;

use crate::outgoing::transport::{Outbound, SendError};
use crate::queue::runner::{Attempt, Job};
use crate::queue::spool::{ReadError, Spool};
use crate::status::counters::Stats;

/// Sends the replies in `spool/outgoing/`.
pub struct Dispatcher {
    pub spool: Spool,
    pub outbound: Outbound,
    pub stats: Arc<Stats>,
}

/// What a reply's earlier attempts did.
#[derive(Debug, Default)]
pub struct Progress {
    /// The backend took it: only the move to `sent/` is left.
    handed_over: bool,
}

impl Job for Dispatcher {
    type Progress = Progress;
    const ENTRY: &'static str = "reply";

    async fn list(spool: &Spool) -> anyhow::Result<Vec<String>> {
        spool.outgoing().await
    }

    async fn fail(spool: &Spool, name: &str) -> anyhow::Result<()> {
        spool.fail_outgoing(name).await
    }

    fn listed(&self, _names: &[String], _in_progress: &HashSet<String>) {
        Stats::add(&self.stats.scans);
    }

    async fn attempt(&self, name: &str, progress: &mut Progress) -> Attempt {
        if !progress.handed_over {
            let (envelope, message) = match self.spool.read_outgoing(name).await {
                Ok(Some(read)) => read,
                // Not (or no longer) waiting: nothing to send.
                Ok(None) => return Attempt::Done,
                Err(ReadError::Undecodable(err)) => return Attempt::GiveUp(err),
                // EMFILE, EIO and the like pass: read it again later.
                Err(ReadError::Io(err)) => return Attempt::Retry(err),
            };
            match self.outbound.send(name, &envelope, message).await {
                Ok(()) => {}
                Err(SendError::Permanent(reason)) => {
                    return Attempt::GiveUp(anyhow::anyhow!(reason))
                }
                Err(SendError::Transient(err)) => return Attempt::Retry(err),
            }
            // Counted before the move, so that an empty `outgoing/` means every
            // reply is counted.
            Stats::add(&self.stats.answered);
            log::info!(
                "reply={name} kind={} to={} sent",
                envelope.kind,
                envelope.to
            );
            progress.handed_over = true;
        }
        match self.spool.mark_sent(name).await {
            Ok(()) => Attempt::Done,
            // Left in outgoing/ at a stop, the next start hands it over again (the
            // one window of a relay, as with any MTA).
            Err(err) => Attempt::Retry(err.context("sent but not moved to spool/sent")),
        }
    }
}
