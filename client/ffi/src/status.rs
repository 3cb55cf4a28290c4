//! What a call ends in: the status every fallible function returns, its name, and the
//! calling thread's last error message.
//!
//! The numbers are part of the ABI (compiled into callers): a status keeps its number
//! for ever, and new ones take the next free number of their range. Library-side
//! statuses are below 100, a server's refusals 100 and up; the exhaustive match in
//! `From<ErrorCode>` makes a new server code fail to compile here until it has one.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::sync::OnceLock;

use solme_client::{Error, ErrorCode};

/// What a call ended in: `SOLME_STATUS_OK`, a failure on this side (below 100), or
/// the license server's refusal (100 and up, one per server error code).
/// `solme_status_name` gives its name, `solme_last_error_message` the message.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolmeStatus {
    Ok = 0,
    /// An argument the library cannot use: a NULL pointer where a value is needed,
    /// text that is not UTF-8, a server address that is not `http://` or `https://`,
    /// a lease already released.
    InvalidArgument = 1,
    /// No license server answered (connection refused, timed out, cut), or each only
    /// answered "try later", until the retries ran out (two minutes): try again later.
    Unreachable = 2,
    /// A server answered something this library does not understand.
    Protocol = 3,
    /// A borrow token or public key that does not verify.
    Token = 4,
    /// The library's background thread is gone (the process is ending).
    Stopped = 5,
    /// A bug in the library, stopped before it reached the caller; the message says
    /// what happened.
    LibraryFailure = 6,
    Malformed = 100,
    UnsupportedVersion = 101,
    BadSignature = 102,
    UnknownServerId = 103,
    IdInUse = 104,
    ReplayedRequest = 105,
    StaleRequest = 106,
    Unauthorized = 107,
    NotFound = 108,
    NotSynchronized = 109,
    SyncExpired = 110,
    ClockRollback = 111,
    /// The server has no license for the feature asked for.
    FeatureUnknown = 112,
    LicenseExpired = 113,
    /// Every seat is in use (and the wait, if any, ran out).
    NoSeats = 114,
    /// The server does not know the lease (it was returned or ran out).
    LeaseUnknown = 115,
    WrongServer = 116,
    OlderLicenseFile = 117,
    /// The server's options file refused this user, host or client.
    OptionsDenied = 118,
    Internal = 119,
    Unavailable = 120,
    Forbidden = 121,
    RateLimited = 122,
    NameTaken = 123,
    AlreadyDecided = 124,
    OverrideRequired = 125,
    ContactInUse = 126,
    LastContact = 127,
    ConfirmationRequired = 128,
    /// Solme retired the license server id: it no longer synchronizes.
    ServerRetired = 130,
    /// Solme refuses the server's syncs: two installations seem to share its key pair.
    PossibleCopy = 129,
    /// A standby server that was not promoted: it issues nothing (try the next server).
    StandbyFollowing = 131,
    /// The promoted standby used up its failover period.
    FailoverEnded = 132,
    /// The other server of the pair issues seats now (try the next server).
    ServingElsewhere = 133,
}

impl From<ErrorCode> for SolmeStatus {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::Malformed => Self::Malformed,
            ErrorCode::UnsupportedVersion => Self::UnsupportedVersion,
            ErrorCode::BadSignature => Self::BadSignature,
            ErrorCode::UnknownServerId => Self::UnknownServerId,
            ErrorCode::IdInUse => Self::IdInUse,
            ErrorCode::ReplayedRequest => Self::ReplayedRequest,
            ErrorCode::StaleRequest => Self::StaleRequest,
            ErrorCode::Unauthorized => Self::Unauthorized,
            ErrorCode::NotFound => Self::NotFound,
            ErrorCode::NotSynchronized => Self::NotSynchronized,
            ErrorCode::SyncExpired => Self::SyncExpired,
            ErrorCode::ClockRollback => Self::ClockRollback,
            ErrorCode::FeatureUnknown => Self::FeatureUnknown,
            ErrorCode::LicenseExpired => Self::LicenseExpired,
            ErrorCode::NoSeats => Self::NoSeats,
            ErrorCode::LeaseUnknown => Self::LeaseUnknown,
            ErrorCode::WrongServer => Self::WrongServer,
            ErrorCode::OlderLicenseFile => Self::OlderLicenseFile,
            ErrorCode::OptionsDenied => Self::OptionsDenied,
            ErrorCode::Internal => Self::Internal,
            ErrorCode::Unavailable => Self::Unavailable,
            ErrorCode::Forbidden => Self::Forbidden,
            ErrorCode::RateLimited => Self::RateLimited,
            ErrorCode::NameTaken => Self::NameTaken,
            ErrorCode::AlreadyDecided => Self::AlreadyDecided,
            ErrorCode::OverrideRequired => Self::OverrideRequired,
            ErrorCode::ContactInUse => Self::ContactInUse,
            ErrorCode::LastContact => Self::LastContact,
            ErrorCode::ConfirmationRequired => Self::ConfirmationRequired,
            ErrorCode::ServerRetired => Self::ServerRetired,
            ErrorCode::PossibleCopy => Self::PossibleCopy,
            ErrorCode::StandbyFollowing => Self::StandbyFollowing,
            ErrorCode::FailoverEnded => Self::FailoverEnded,
            ErrorCode::ServingElsewhere => Self::ServingElsewhere,
        }
    }
}

/// The name of a status number: the server's code for a refusal (`FEATURE_UNKNOWN`),
/// this library's word otherwise; `None` for a number that is no status.
pub(crate) fn name(status: i32) -> Option<&'static CStr> {
    let own = match status {
        0 => Some(c"OK"),
        1 => Some(c"INVALID_ARGUMENT"),
        2 => Some(c"UNREACHABLE"),
        3 => Some(c"PROTOCOL"),
        4 => Some(c"TOKEN"),
        5 => Some(c"STOPPED"),
        6 => Some(c"LIBRARY_FAILURE"),
        _ => None,
    };
    own.or_else(|| {
        // The server codes' names are their wire names, made C strings once.
        static CODES: OnceLock<Vec<(i32, CString)>> = OnceLock::new();
        CODES
            .get_or_init(|| {
                ErrorCode::ALL
                    .iter()
                    .filter_map(|&code| {
                        let text = CString::new(code.as_str()).ok()?;
                        Some((SolmeStatus::from(code) as i32, text))
                    })
                    .collect()
            })
            .iter()
            .find(|(number, _)| *number == status)
            .map(|(_, text)| text.as_c_str())
    })
}

/// A failed call: its status and the message for people.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: SolmeStatus,
    pub message: String,
}

impl Failure {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: SolmeStatus::InvalidArgument,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let status = match &err {
            Error::Refused { code, .. } => SolmeStatus::from(*code),
            Error::Unreachable { .. } => SolmeStatus::Unreachable,
            Error::Protocol { .. } => SolmeStatus::Protocol,
            Error::Token(_) => SolmeStatus::Token,
            Error::Usage(_) => SolmeStatus::InvalidArgument,
            Error::Stopped => SolmeStatus::Stopped,
        };
        Self {
            status,
            message: err.to_string(),
        }
    }
}

thread_local! {
    /// The message of this thread's last failed call.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Records `failure` as this thread's last error and gives its status.
pub(crate) fn record(failure: Failure) -> SolmeStatus {
    // A message never holds NUL in practice; if one did, it would cut the C string.
    let text = CString::new(failure.message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = Some(text));
    failure.status
}

/// This thread's last error message, or NULL; valid until the next call into the
/// library on this thread.
pub(crate) fn last_message() -> *const c_char {
    LAST_ERROR.with(|last| {
        last.borrow()
            .as_ref()
            .map_or(std::ptr::null(), |text| text.as_ptr())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_code_has_its_own_status_named_as_on_the_wire() {
        let mut seen = std::collections::BTreeSet::new();
        for &code in ErrorCode::ALL {
            let status = SolmeStatus::from(code) as i32;
            assert!(status >= 100, "{code}");
            assert!(seen.insert(status), "{code} shares status {status}");
            assert_eq!(
                name(status).and_then(|n| n.to_str().ok()),
                Some(code.as_str())
            );
        }
    }

    #[test]
    fn numbers_that_are_no_status_have_no_name() {
        assert_eq!(name(0), Some(c"OK"));
        assert_eq!(name(7), None);
        assert_eq!(name(-1), None);
        let past_the_last = ErrorCode::ALL
            .iter()
            .map(|&code| SolmeStatus::from(code) as i32)
            .max()
            .unwrap_or(100)
            + 1;
        assert_eq!(name(past_the_last), None);
    }
}
