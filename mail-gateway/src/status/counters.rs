//! The gateway's numbers: the counters the intake, the queues, the reminders and the
//! portal's sign-in links add to ([`Stats`]), and the snapshot the status page and the
//! metrics show ([`Status`]).

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Counters shared by the intake, the worker and the sender.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages the worker picked up from the spool.
    pub received: AtomicU64,
    /// Replies handed to the outbound transport.
    pub answered: AtomicU64,
    /// Messages deliberately left unanswered (automatic mail, duplicates).
    pub dropped: AtomicU64,
    /// Messages and replies given up on (moved to `spool/failed/`).
    pub failed: AtomicU64,
    /// Attempts that failed temporarily and were scheduled again.
    pub retries: AtomicU64,
    /// Completed passes of the dispatcher over `spool/outgoing/` (which pick up what a
    /// restart left there): a test knows from it that a pass went by.
    pub scans: AtomicU64,
    /// Completed reminder polls (claim, stage, mark handed): a test knows from it that
    /// a poll went by.
    pub reminder_polls: AtomicU64,
    /// Completed polls for customer portal sign-in links (also failed ones).
    pub portal_link_polls: AtomicU64,
    /// Portal sign-in link mails staged for the transport.
    pub portal_links_staged: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The JSON of `/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    pub started_at: DateTime<Utc>,
    pub received: u64,
    pub answered: u64,
    pub dropped: u64,
    pub failed: u64,
    pub retries: u64,
    pub scans: u64,
    pub reminder_polls: u64,
    pub portal_link_polls: u64,
    pub portal_links_staged: u64,
    /// Inbound messages waiting in the spool.
    pub queued: usize,
    /// Replies waiting for the transport.
    pub outgoing: usize,
    /// Files in `spool/failed/` (all time).
    pub failed_in_spool: usize,
    /// Which clock the gateway runs on, when it is not the real one
    /// (`simulated clock (clock file …), offset +340d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
    /// How far the gateway's clock is from the system clock, in seconds.
    pub clock_offset_seconds: f64,
    /// Whether that clock is simulated or moved.
    pub clock_simulated: bool,
    /// The newest mails and replies in the spool, newest first.
    pub recent: Vec<super::recent::RecentMail>,
}
