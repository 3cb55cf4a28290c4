//! The HTTP boundary's error type and the one place that turns it into a response:
//! refusals become `{code, message}` with the code's status; a temporary failure (the
//! database locked or full) is `503 UNAVAILABLE` with `Retry-After`; anything
//! unexpected is logged once with its cause chain and answered with a bare 500.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use shared_proto::admin_api::AuditOutcome;
use shared_proto::error::{is_temporary_database_message, RETRY_AFTER_SECONDS};
use shared_proto::{ErrorCode, ProtoError};

/// Everything a request handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal the client should read: stable code plus a human message.
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    /// `UNAUTHORIZED` with status 403: the caller is authenticated (the mail gateway)
    /// but the sender it acts for is not a registered contact.
    #[error("{0}")]
    SenderNotRegistered(String),
    /// A temporary failure (the database locked by another process, full, or out of
    /// connections): the client is asked to come back.
    #[error("temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// A bug or an unexpected failure: details stay in the log.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::refused(ErrorCode::Malformed, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::refused(ErrorCode::NotFound, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::refused(ErrorCode::Unauthorized, message)
    }

    /// The stable code of this error, as answered and as recorded in the audit log.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Refused { code, .. } => *code,
            Self::SenderNotRegistered(_) => ErrorCode::Unauthorized,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The outcome recorded in the audit log.
    pub fn outcome(&self) -> AuditOutcome {
        AuditOutcome::Failed(self.code())
    }
}

impl From<ProtoError> for ApiError {
    fn from(error: ProtoError) -> Self {
        if error.is_internal() {
            Self::Internal(error.into())
        } else {
            Self::refused(error.code(), error.to_string())
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        let temporary = is_temporary_database_error(&error);
        let error = anyhow::Error::new(error).context("database query");
        if temporary {
            Self::Unavailable(error)
        } else {
            Self::Internal(error)
        }
    }
}

/// Whether a database error goes away by itself: SQLite locked by another process or
/// full, a PostgreSQL connection lost.
pub fn is_temporary_database_error(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
        Error::DatabaseError(_, info) => is_temporary_database_message(info.message()),
        _ => false,
    }
}

impl From<diesel::r2d2::PoolError> for ApiError {
    fn from(error: diesel::r2d2::PoolError) -> Self {
        // No connection within the pool's timeout: the database is down or overloaded.
        Self::Unavailable(anyhow::Error::new(error).context("getting a database connection"))
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        Self::Internal(anyhow::Error::new(error).context("running blocking work"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Refused { code, .. } => {
                StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Self::SenderNotRegistered(_) => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        let body = match self {
            Self::Refused { message, .. } | Self::SenderNotRegistered(message) => {
                shared_proto::ApiError::new(self.code(), message.clone())
            }
            Self::Unavailable(cause) => {
                log::warn!("temporary failure: {cause:#}");
                response.insert_header(("Retry-After", RETRY_AFTER_SECONDS.to_string()));
                shared_proto::ApiError::new(
                    ErrorCode::Unavailable,
                    "the database is busy or full; try again in a few seconds",
                )
            }
            Self::Internal(cause) => {
                log::error!("internal error: {cause:#}");
                shared_proto::ApiError::internal()
            }
        };
        response.json(body)
    }
}
