//! The one error type of the local server's boundaries (HTTP API and command line), and
//! the one place that maps it to an HTTP answer and to an exit code.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use shared_proto::error::{is_temporary_database_failure, RETRY_AFTER_SECONDS};
use shared_proto::{exit, ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A refusal with a stable code, e.g. `NO_SEATS` or `OLDER_LICENSE_FILE`.
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    /// The main server could not be reached; trying again later may work.
    #[error("{0}")]
    Network(String),
    /// Another synchronization holds the lock.
    #[error("another synchronization is running right now; try again in a minute")]
    SyncBusy,
    /// The database is locked by another process or the disk is full: nothing was
    /// changed, and trying again later may work.
    #[error("the license server's database is busy or full, nothing was changed; try again in a moment ({0:#})")]
    DatabaseBusy(anyhow::Error),
    /// Anything unexpected: logged with its chain where it is handled, never sent.
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl Error {
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }

    /// The process exit code for this error (docs/API.md).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Network(_) | Self::SyncBusy | Self::DatabaseBusy(_) => exit::TEMPORARY,
            Self::Refused { .. } | Self::Internal(_) => exit::FAILED,
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
        Self::from(anyhow::Error::new(err).context("database query"))
    }
}

/// An unexpected failure, unless a cause in its chain says the database is only locked
/// by another process or full.
impl From<anyhow::Error> for Error {
    fn from(err: anyhow::Error) -> Self {
        if is_temporary_database_failure(err.as_ref()) {
            Self::DatabaseBusy(err)
        } else {
            Self::Internal(err)
        }
    }
}

impl From<actix_web::error::BlockingError> for Error {
    fn from(err: actix_web::error::BlockingError) -> Self {
        Self::Internal(anyhow::anyhow!("blocking task failed: {err}"))
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Refused { code, .. } => {
                StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Self::Network(_) | Self::SyncBusy | Self::DatabaseBusy(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        let body = match self {
            Self::Refused { code, message } => ApiError::new(*code, message.clone()),
            Self::Network(_) | Self::SyncBusy => {
                response.insert_header(("Retry-After", RETRY_AFTER_SECONDS.to_string()));
                ApiError::new(ErrorCode::Unavailable, self.to_string())
            }
            Self::DatabaseBusy(err) => {
                log::warn!("request failed for now: {err:#}");
                response.insert_header(("Retry-After", RETRY_AFTER_SECONDS.to_string()));
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the license server's database is busy or full; try again in a moment",
                )
            }
            Self::Internal(err) => {
                log::error!("request failed: {err:#}");
                ApiError::internal()
            }
        };
        response.json(body)
    }
}
