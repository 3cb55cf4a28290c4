//! What a client asks for ([`CheckOut`]) and the checks its fields must pass before the
//! engine looks at seats, and the answers it gets ([`Outcome`]: a [`LeaseGrant`] or a
//! [`QueueTicket`]). A leaf: it knows nothing of leases, queues or licenses.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared_proto::ErrorCode;
use uuid::Uuid;

use crate::error::Error;

/// Longest feature name accepted from a client.
pub const MAX_FEATURE_LEN: usize = 128;
/// Longest client description accepted.
pub const MAX_CLIENT_LEN: usize = 256;
/// Longest user or host name accepted.
pub const MAX_NAME_LEN: usize = 64;
/// Longest wait for a seat a client may ask for.
pub const MAX_WAIT_SECONDS: u32 = 3_600;
/// Longest borrow a client may ask for (the license's limit usually caps it lower).
pub const MAX_BORROW_HOURS: u32 = 8_784;

/// What a client asks for.
#[derive(Debug, Clone)]
pub struct CheckOut {
    pub feature: String,
    /// Free text describing the client program.
    pub client: String,
    pub user: String,
    pub host: String,
    /// How long to wait in the queue when no seat is free (zero: answer at once).
    pub wait: StdDuration,
    /// Borrow the seat for offline use for this long (capped by the license).
    pub borrow: Option<StdDuration>,
}

impl CheckOut {
    /// The `MALFORMED` refusal of the first bad field, in the order the API documents.
    pub fn validate(&self) -> Result<(), Error> {
        validate_text("feature", &self.feature, MAX_FEATURE_LEN)?;
        validate_text("client", &self.client, MAX_CLIENT_LEN)?;
        validate_name("user", &self.user)?;
        validate_name("host", &self.host)?;
        let longest_borrow = StdDuration::from_secs(u64::from(MAX_BORROW_HOURS) * 3_600);
        if self
            .borrow
            .is_some_and(|b| b.is_zero() || b > longest_borrow)
        {
            return Err(Error::refused(
                ErrorCode::Malformed,
                format!("borrow_hours must be 1 to {MAX_BORROW_HOURS}"),
            ));
        }
        if self.wait > StdDuration::from_secs(u64::from(MAX_WAIT_SECONDS)) {
            return Err(Error::refused(
                ErrorCode::Malformed,
                format!("wait_seconds must be at most {MAX_WAIT_SECONDS}"),
            ));
        }
        Ok(())
    }
}

/// A granted or renewed lease, as the client sees it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseGrant {
    pub lease_id: Uuid,
    pub feature: String,
    pub user: String,
    pub host: String,
    pub expires_at: DateTime<Utc>,
    /// How often the client should renew: a third of the lease length. Absent for a
    /// borrowed seat, which takes no heartbeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<i64>,
    /// Where the client stood in the queue when it arrived (absent: it did not wait).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    /// How long it waited for the seat, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<i64>,
    /// A borrowed seat: `expires_at` is the end of the borrow (no heartbeats), and this
    /// token, signed with the server's key, proves it offline (see
    /// `shared_proto::BorrowToken`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub borrow_token: Option<String>,
    /// The epoch of this server's pair, when it belongs to one: the client library
    /// sends the highest it has seen with its next requests, so that a primary reached
    /// by a client of its promoted standby learns of the promotion (docs/standby.md,
    /// "Partitions").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pair_epoch: Option<i64>,
}

/// A check-out's answer: a seat, or a place in the queue to poll.
#[derive(Debug, Clone)]
pub enum Outcome {
    Granted(LeaseGrant),
    Waiting(QueueTicket),
}

/// A place in the queue, as the client sees it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueTicket {
    /// Poll `GET /api/v1/queue/{ticket}` with it.
    pub ticket: Uuid,
    pub feature: String,
    /// 1 = next to get a seat.
    pub position: usize,
    /// When the wait ends with `NO_SEATS` if no seat came free.
    pub wait_until: DateTime<Utc>,
    /// Poll again within this many seconds, or leave the queue.
    pub poll_within_seconds: u64,
}

fn validate_text(what: &str, value: &str, max: usize) -> Result<(), Error> {
    if value.trim().is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(Error::refused(
            ErrorCode::Malformed,
            format!("{what} must be 1 to {max} printable characters"),
        ));
    }
    Ok(())
}

/// A user or host name: short, printable, no spaces (it appears in reports and rules).
fn validate_name(what: &str, value: &str) -> Result<(), Error> {
    let printable = value
        .chars()
        .all(|c| c.is_ascii_graphic() || (!c.is_ascii() && !c.is_control()));
    if value.is_empty() || value.len() > MAX_NAME_LEN || !printable {
        return Err(Error::refused(
            ErrorCode::Malformed,
            format!("{what} must be 1 to {MAX_NAME_LEN} printable characters without spaces"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CheckOut {
        CheckOut {
            feature: "cad".into(),
            client: "cad 2.1".into(),
            user: "alice".into(),
            host: "ws-1".into(),
            wait: StdDuration::ZERO,
            borrow: None,
        }
    }

    fn refusal(request: &CheckOut) -> String {
        match request.validate() {
            Err(e) => {
                assert_eq!(e.code(), Some(ErrorCode::Malformed));
                e.to_string()
            }
            Ok(()) => String::from("accepted"),
        }
    }

    #[test]
    fn a_plain_request_passes() {
        assert_eq!(refusal(&request()), "accepted");
    }

    #[test]
    fn the_first_bad_field_is_named() {
        let mut r = request();
        r.feature = " ".into();
        r.user = String::new();
        assert_eq!(refusal(&r), "feature must be 1 to 128 printable characters");
        let mut r = request();
        r.client = "x".repeat(MAX_CLIENT_LEN + 1);
        assert_eq!(refusal(&r), "client must be 1 to 256 printable characters");
        let mut r = request();
        r.host = "ws 1".into();
        assert_eq!(
            refusal(&r),
            "host must be 1 to 64 printable characters without spaces"
        );
    }

    #[test]
    fn names_may_be_non_ascii_but_not_control_characters() {
        let mut r = request();
        r.user = "zoë".into();
        assert_eq!(refusal(&r), "accepted");
        r.user = "zo\u{7}".into();
        assert_eq!(
            refusal(&r),
            "user must be 1 to 64 printable characters without spaces"
        );
    }

    #[test]
    fn waits_and_borrows_stay_within_their_bounds() {
        let mut r = request();
        r.wait = StdDuration::from_secs(u64::from(MAX_WAIT_SECONDS));
        r.borrow = Some(StdDuration::from_secs(u64::from(MAX_BORROW_HOURS) * 3_600));
        assert_eq!(refusal(&r), "accepted");
        r.wait += StdDuration::from_secs(1);
        assert_eq!(refusal(&r), "wait_seconds must be at most 3600");
        r.wait = StdDuration::ZERO;
        r.borrow = Some(StdDuration::ZERO);
        assert_eq!(refusal(&r), "borrow_hours must be 1 to 8784");
    }
}
