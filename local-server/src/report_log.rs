//! The report log: one row per check-out, check-in, expiry, borrow, return, queue wait,
//! refusal and take-back, written by the lease engine in the same transactions as the leases.
//! `local-server report` and the manager page read it ([`crate::report`]).

use diesel::prelude::*;

use crate::schema::report_log;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    CheckOut,
    CheckIn,
    Expiry,
    Borrow,
    Return,
    /// A queued check-out that was granted (its wait in `wait_ms`).
    QueueGranted,
    /// A queued check-out that gave up or timed out.
    QueueTimeout,
    Refusal,
    /// The administrator took a seat back (`take-back`, the manager page): `actor` and
    /// `reason` say who and why.
    TakeBack,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CheckOut => "checkout",
            Self::CheckIn => "checkin",
            Self::Expiry => "expiry",
            Self::Borrow => "borrow",
            Self::Return => "return",
            Self::QueueGranted => "queue_granted",
            Self::QueueTimeout => "queue_timeout",
            Self::Refusal => "refusal",
            Self::TakeBack => "take_back",
        }
    }
}

/// One stored entry.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = report_log)]
pub struct ReportRow {
    pub at: i64,
    pub event: String,
    pub feature: String,
    pub user: String,
    pub host: String,
    pub lease_id: Option<String>,
    /// The refusal's code (`NO_SEATS`, `OPTIONS_DENIED`, …).
    pub code: Option<String>,
    /// Seats of the feature in use after the event.
    pub in_use: i32,
    pub wait_ms: Option<i64>,
    /// Who caused the event when it was not the client (a take-back's administrator).
    pub actor: Option<String>,
    /// Why, when someone said (a take-back's reason).
    pub reason: Option<String>,
}
