//! The stable error codes of the contract and the crate's own error type.

use serde::{Deserialize, Serialize};

crate::text_enum! {
    /// Every refusal the programs report, with its stable string form (`ID_IN_USE`, …):
    /// each code is written once here, and [`ErrorCode::http_status`] must place it.
    pub enum ErrorCode {
        Malformed => "MALFORMED",
        UnsupportedVersion => "UNSUPPORTED_VERSION",
        BadSignature => "BAD_SIGNATURE",
        UnknownServerId => "UNKNOWN_SERVER_ID",
        /// Another key pair is bound to the license server id.
        IdInUse => "ID_IN_USE",
        /// A sync request id was used before.
        ReplayedRequest => "REPLAYED_REQUEST",
        StaleRequest => "STALE_REQUEST",
        Unauthorized => "UNAUTHORIZED",
        NotFound => "NOT_FOUND",
        NotSynchronized => "NOT_SYNCHRONIZED",
        SyncExpired => "SYNC_EXPIRED",
        ClockRollback => "CLOCK_ROLLBACK",
        FeatureUnknown => "FEATURE_UNKNOWN",
        LicenseExpired => "LICENSE_EXPIRED",
        NoSeats => "NO_SEATS",
        LeaseUnknown => "LEASE_UNKNOWN",
        WrongServer => "WRONG_SERVER",
        OlderLicenseFile => "OLDER_LICENSE_FILE",
        /// A reservation or limit of the local server's options file refused the client.
        OptionsDenied => "OPTIONS_DENIED",
        /// A failure of the answering program itself (a bug, an I/O error): details stay
        /// in its log.
        Internal => "INTERNAL",
        /// A temporary failure (database locked or full, a dependency down): try again
        /// later; HTTP answers carry `Retry-After`.
        Unavailable => "UNAVAILABLE",
        /// The caller is authenticated, but its role may not do this.
        Forbidden => "FORBIDDEN",
        /// Too many refused tokens from one address: wait a minute.
        RateLimited => "RATE_LIMITED",
        /// A name that must be unique (an operator's) is taken; names are never reused.
        NameTaken => "NAME_TAKEN",
        /// A key-clear request was already decided the other way.
        AlreadyDecided => "ALREADY_DECIDED",
        /// Approving a key-clear request whose sender was not authenticated needs the
        /// operator's explicit override.
        OverrideRequired => "OVERRIDE_REQUIRED",
        /// The contact address is registered for another customer: one address belongs
        /// to one customer (reminders and key-clear notices would reach the wrong one).
        ContactInUse => "CONTACT_IN_USE",
        /// The address is the customer's last contact: a customer keeps at least one
        /// once it has one (its reminders and notices would reach nobody).
        LastContact => "LAST_CONTACT",
        /// The change looks like a slip (a second customer of the same name, …) and is
        /// made only when sent again with the confirmation its message names.
        ConfirmationRequired => "CONFIRMATION_REQUIRED",
        /// The license server id was retired by Solme: it is kept in the registry but
        /// no longer synchronizes (ask Solme for a new id).
        ServerRetired => "SERVER_RETIRED",
        /// Solme saw two installations synchronizing with one key pair (a copied data
        /// directory), and the customer's policy refuses their syncs until an operator
        /// has looked.
        PossibleCopy => "POSSIBLE_COPY",
        /// This is a standby license server that follows its primary: it issues seats
        /// only once a person promoted it. Clients move on to the next server.
        StandbyFollowing => "STANDBY_FOLLOWING",
        /// The promoted standby used up the failover period Solme allows: bring the
        /// primary back.
        FailoverEnded => "FAILOVER_ENDED",
        /// The other server of the pair issues seats now (the standby was promoted, or
        /// handed back to the primary): clients move on to the next server.
        ServingElsewhere => "SERVING_ELSEWHERE",
    }
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Malformed
            | Self::UnsupportedVersion
            | Self::BadSignature
            | Self::StaleRequest
            | Self::WrongServer
            | Self::OverrideRequired => 400,
            Self::Unauthorized => 401,
            Self::NotSynchronized
            | Self::SyncExpired
            | Self::ClockRollback
            | Self::LicenseExpired
            | Self::OptionsDenied
            | Self::Forbidden
            | Self::ServerRetired
            | Self::StandbyFollowing
            | Self::FailoverEnded => 403,
            Self::UnknownServerId | Self::NotFound | Self::FeatureUnknown | Self::LeaseUnknown => {
                404
            }
            Self::IdInUse
            | Self::ReplayedRequest
            | Self::NoSeats
            | Self::OlderLicenseFile
            | Self::NameTaken
            | Self::AlreadyDecided
            | Self::ContactInUse
            | Self::LastContact
            | Self::ConfirmationRequired
            | Self::PossibleCopy
            | Self::ServingElsewhere => 409,
            Self::Internal => 500,
            Self::Unavailable => 503,
            Self::RateLimited => 429,
        }
    }
}

/// Seconds a client is asked to wait (`Retry-After`) after an `UNAVAILABLE` answer.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// The JSON body of every error answer over HTTP: the one type every server sends and
/// every client parses.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The body of an unexpected failure: the cause stays in the server's log.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error, see the server log")
    }
}

/// Whether a database's error message names a condition that passes by itself: SQLite
/// locked or busy because another process holds it, or out of disk space. (SQLite
/// reports these only as text through diesel, so the servers classify by it here, once.)
pub fn is_temporary_database_message(message: &str) -> bool {
    const TEMPORARY: [&str; 3] = [
        "database is locked",
        "database table is locked",
        "database or disk is full",
    ];
    let message = message.to_ascii_lowercase();
    TEMPORARY.iter().any(|text| message.contains(text))
}

/// Whether any cause in an error's chain is such a temporary database condition (see
/// [`is_temporary_database_message`]); for `anyhow` errors pass `err.as_ref()`.
pub fn is_temporary_database_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(current) = cause {
        if is_temporary_database_message(&current.to_string()) {
            return true;
        }
        cause = current.source();
    }
    false
}

/// What can go wrong in this crate. Every variant maps to one [`ErrorCode`].
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("{0}")]
    Malformed(String),
    #[error("format version {0} is not supported by this software; update it")]
    UnsupportedVersion(u32),
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    WrongServer(String),
    #[error("the input is larger than the {limit} bytes allowed")]
    TooLarge { limit: usize },
    #[error("cryptographic operation failed: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl ProtoError {
    /// The stable code to report for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) | Self::TooLarge { .. } | Self::Crypto(_) | Self::Io { .. } => {
                ErrorCode::Malformed
            }
            Self::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            Self::BadSignature(_) => ErrorCode::BadSignature,
            Self::WrongServer(_) => ErrorCode::WrongServer,
        }
    }

    /// Whether this is a failure of this side (I/O, the crypto library) rather than of
    /// the input: servers answer it as an internal error and log it, never blame the
    /// sender. Input-driven crypto failures are reported as the variants above.
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Crypto(_) | Self::Io { .. })
    }

    /// Whether this is the refusal to create a file that already exists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists)
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_are_stable_and_match_serde() {
        for &code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap_or(ErrorCode::NotFound);
            assert_eq!(back, code);
        }
        assert_eq!(ErrorCode::IdInUse.as_str(), "ID_IN_USE");
        assert_eq!(ErrorCode::OlderLicenseFile.http_status(), 409);
        assert_eq!(ErrorCode::Unavailable.http_status(), 503);
        assert_eq!(ErrorCode::Forbidden.http_status(), 403);
        assert_eq!(ErrorCode::RateLimited.http_status(), 429);
    }
}
