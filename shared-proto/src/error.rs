//! The stable error codes of the contract and the crate's own error type.

use serde::{Deserialize, Serialize};

/// Every refusal the programs report, with a stable string form (`ID_IN_USE`, …).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    Malformed,
    UnsupportedVersion,
    BadSignature,
    UnknownServerId,
    IdInUse,
    ReplayedRequest,
    StaleRequest,
    Unauthorized,
    NotFound,
    NotSynchronized,
    SyncExpired,
    ClockRollback,
    FeatureUnknown,
    LicenseExpired,
    NoSeats,
    LeaseUnknown,
    WrongServer,
    OlderLicenseFile,
    /// A reservation or limit of the local server's options file refused the client.
    OptionsDenied,
    /// A failure of the answering program itself (a bug, an I/O error): details stay
    /// in its log.
    Internal,
    /// A temporary failure (database locked or full, a dependency down): try again
    /// later; HTTP answers carry `Retry-After`.
    Unavailable,
    /// The caller is authenticated, but its role may not do this.
    Forbidden,
    /// Too many refused tokens from one address: wait a minute.
    RateLimited,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 23] = [
        Self::Malformed,
        Self::UnsupportedVersion,
        Self::BadSignature,
        Self::UnknownServerId,
        Self::IdInUse,
        Self::ReplayedRequest,
        Self::StaleRequest,
        Self::Unauthorized,
        Self::NotFound,
        Self::NotSynchronized,
        Self::SyncExpired,
        Self::ClockRollback,
        Self::FeatureUnknown,
        Self::LicenseExpired,
        Self::NoSeats,
        Self::LeaseUnknown,
        Self::WrongServer,
        Self::OlderLicenseFile,
        Self::OptionsDenied,
        Self::Internal,
        Self::Unavailable,
        Self::Forbidden,
        Self::RateLimited,
    ];

    /// The stable string form, as sent in `{"code": …}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "MALFORMED",
            Self::UnsupportedVersion => "UNSUPPORTED_VERSION",
            Self::BadSignature => "BAD_SIGNATURE",
            Self::UnknownServerId => "UNKNOWN_SERVER_ID",
            Self::IdInUse => "ID_IN_USE",
            Self::ReplayedRequest => "REPLAYED_REQUEST",
            Self::StaleRequest => "STALE_REQUEST",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::NotFound => "NOT_FOUND",
            Self::NotSynchronized => "NOT_SYNCHRONIZED",
            Self::SyncExpired => "SYNC_EXPIRED",
            Self::ClockRollback => "CLOCK_ROLLBACK",
            Self::FeatureUnknown => "FEATURE_UNKNOWN",
            Self::LicenseExpired => "LICENSE_EXPIRED",
            Self::NoSeats => "NO_SEATS",
            Self::LeaseUnknown => "LEASE_UNKNOWN",
            Self::WrongServer => "WRONG_SERVER",
            Self::OlderLicenseFile => "OLDER_LICENSE_FILE",
            Self::OptionsDenied => "OPTIONS_DENIED",
            Self::Internal => "INTERNAL",
            Self::Unavailable => "UNAVAILABLE",
            Self::Forbidden => "FORBIDDEN",
            Self::RateLimited => "RATE_LIMITED",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Malformed
            | Self::UnsupportedVersion
            | Self::BadSignature
            | Self::StaleRequest
            | Self::WrongServer => 400,
            Self::Unauthorized => 401,
            Self::NotSynchronized
            | Self::SyncExpired
            | Self::ClockRollback
            | Self::LicenseExpired
            | Self::OptionsDenied
            | Self::Forbidden => 403,
            Self::UnknownServerId | Self::NotFound | Self::FeatureUnknown | Self::LeaseUnknown => {
                404
            }
            Self::IdInUse | Self::ReplayedRequest | Self::NoSeats | Self::OlderLicenseFile => 409,
            Self::Internal => 500,
            Self::Unavailable => 503,
            Self::RateLimited => 429,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
        for code in ErrorCode::ALL {
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
