//! The report-log rows the engine writes: one builder per kind of event, so every
//! row of a kind carries the same fields (and `report` can count them).

use uuid::Uuid;

use super::index::LiveLease;
use super::request::CheckOut;
use crate::report_log::{Event, ReportRow};
use shared_proto::ErrorCode;

/// A live lease ended or was returned (`CheckIn`, `Return`, `Expiry`) at `at`.
pub fn lease_ended(event: Event, lease: &LiveLease, id: Uuid, at: i64, in_use: u32) -> ReportRow {
    ReportRow {
        lease_id: Some(id.to_string()),
        ..row(event, at, &lease.feature, &lease.user, &lease.host, in_use)
    }
}

/// A seat was granted (`CheckOut`, `Borrow`, or `QueueGranted` after `wait_ms`).
pub fn granted(
    event: Event,
    request: &CheckOut,
    id: &str,
    at: i64,
    in_use: u32,
    wait_ms: Option<i64>,
) -> ReportRow {
    ReportRow {
        lease_id: Some(id.to_owned()),
        wait_ms,
        ..for_request(event, request, at, in_use)
    }
}

/// A check-out, or a wait, was refused with `code`.
pub fn refused(request: &CheckOut, code: ErrorCode, at: i64, in_use: u32) -> ReportRow {
    ReportRow {
        code: Some(code.as_str().into()),
        ..for_request(Event::Refusal, request, at, in_use)
    }
}

/// A wait ended without a seat after `waited_ms`.
pub fn queue_timeout(request: &CheckOut, at: i64, in_use: u32, waited_ms: i64) -> ReportRow {
    ReportRow {
        code: Some(ErrorCode::NoSeats.as_str().into()),
        wait_ms: Some(waited_ms),
        ..for_request(Event::QueueTimeout, request, at, in_use)
    }
}

fn for_request(event: Event, request: &CheckOut, at: i64, in_use: u32) -> ReportRow {
    row(
        event,
        at,
        &request.feature,
        &request.user,
        &request.host,
        in_use,
    )
}

fn row(event: Event, at: i64, feature: &str, user: &str, host: &str, in_use: u32) -> ReportRow {
    ReportRow {
        at,
        event,
        feature: feature.to_owned(),
        user: user.to_owned(),
        host: host.to_owned(),
        lease_id: None,
        code: None,
        // The column is 32-bit: a count beyond it is stored as its largest value.
        in_use: i32::try_from(in_use).unwrap_or(i32::MAX),
        wait_ms: None,
        actor: None,
        reason: None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn request() -> CheckOut {
        CheckOut {
            feature: "cad".into(),
            client: "test".into(),
            user: "alice".into(),
            host: "ws-1".into(),
            wait: Duration::from_secs(60),
            borrow: None,
        }
    }

    #[test]
    fn each_row_names_its_event_and_only_its_own_fields() {
        let r = refused(&request(), ErrorCode::OptionsDenied, 7, 3);
        assert_eq!(
            (
                r.event.as_str(),
                r.code.as_deref(),
                r.lease_id,
                r.in_use,
                r.at
            ),
            ("refusal", Some("OPTIONS_DENIED"), None, 3, 7)
        );
        let r = queue_timeout(&request(), 9, 2, 1_500);
        assert_eq!(
            (r.event.as_str(), r.code.as_deref(), r.wait_ms),
            ("queue_timeout", Some("NO_SEATS"), Some(1_500))
        );
        let r = granted(Event::QueueGranted, &request(), "id", 1, 1, Some(20));
        assert_eq!(
            (r.event.as_str(), r.lease_id.as_deref(), r.code, r.wait_ms),
            ("queue_granted", Some("id"), None, Some(20))
        );
        let r = refused(&request(), ErrorCode::NoSeats, 0, u32::MAX);
        assert_eq!(r.in_use, i32::MAX);
    }
}
