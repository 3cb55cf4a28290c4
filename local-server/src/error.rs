//! The one error type of the local server's boundaries (HTTP API and command line), and
//! the one place that maps it to an HTTP answer and to an exit code.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use shared_proto::ErrorCode;

/// Exit code for a temporary (network) failure: the caller may retry (SPEC §6).
pub const EXIT_TEMPORARY: u8 = 75;
/// Exit code for a refusal or failure.
pub const EXIT_FAILED: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A refusal with a stable code, e.g. `NO_SEATS` or `OLDER_LICENSE_FILE`.
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    /// The main server could not be reached; trying again later may work.
    #[error("{0}")]
    Network(String),
    /// The database stayed locked by another program (a manager verb writing): the
    /// request changed nothing and may be repeated in a moment.
    #[error("{0}")]
    Unavailable(String),
    /// Another synchronization holds the lock.
    #[error("another synchronization is running right now; try again in a minute")]
    SyncBusy,
    /// Anything unexpected: logged with its chain where it is handled, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }

    /// The process exit code for this error (SPEC §6).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Network(_) | Self::SyncBusy | Self::Unavailable(_) => EXIT_TEMPORARY,
            Self::Refused { .. } | Self::Internal(_) => EXIT_FAILED,
        }
    }

    /// The stable code, when there is one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<shared_proto::ProtoError> for Error {
    fn from(err: shared_proto::ProtoError) -> Self {
        // OpenSSL and I/O failures are ours, not the input's: logged, never blamed on it.
        if err.is_internal() {
            return Self::Internal(anyhow::Error::new(err));
        }
        Self::refused(err.code(), err.to_string())
    }
}

impl From<diesel::result::Error> for Error {
    fn from(err: diesel::result::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database query"))
    }
}

impl From<actix_web::error::BlockingError> for Error {
    fn from(err: actix_web::error::BlockingError) -> Self {
        Self::Internal(anyhow::anyhow!("blocking task failed: {err}"))
    }
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize)]
struct Body<'a> {
    code: &'a str,
    message: String,
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Refused { code, .. } => {
                StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Self::Network(_) | Self::SyncBusy | Self::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            Self::Refused { code, message } => Body {
                code: code.as_str(),
                message: message.clone(),
            },
            Self::Network(_) | Self::SyncBusy | Self::Unavailable(_) => Body {
                code: "UNAVAILABLE",
                message: self.to_string(),
            },
            Self::Internal(err) => {
                log::error!("request failed: {err:#}");
                Body {
                    code: "INTERNAL",
                    message: "internal error, see the server log".into(),
                }
            }
        };
        let mut response = HttpResponse::build(self.status_code());
        if let Self::Unavailable(_) = self {
            response.insert_header(("Retry-After", "1"));
        }
        response.json(body)
    }
}
