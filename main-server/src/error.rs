//! The HTTP boundary's error type and the one place that turns it into a response:
//! refusals become `{code, message}` with the code's status; anything unexpected is
//! logged once with its cause chain and answered with a bare 500.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
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
    /// A bug or an outage (database down, …): details stay in the log.
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

    /// The code recorded in the audit log (`INTERNAL` for unexpected failures).
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Refused { code, .. } => code.as_str(),
            Self::SenderNotRegistered(_) => ErrorCode::Unauthorized.as_str(),
            Self::Internal(_) => "INTERNAL",
        }
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
        Self::Internal(anyhow::Error::new(error).context("database query"))
    }
}

impl From<diesel::r2d2::PoolError> for ApiError {
    fn from(error: diesel::r2d2::PoolError) -> Self {
        Self::Internal(anyhow::Error::new(error).context("getting a database connection"))
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
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Refused { code, message } => HttpResponse::build(self.status_code())
                .json(shared_proto::ApiError::new(*code, message.clone())),
            Self::SenderNotRegistered(message) => HttpResponse::build(self.status_code()).json(
                shared_proto::ApiError::new(ErrorCode::Unauthorized, message.clone()),
            ),
            Self::Internal(cause) => {
                log::error!("internal error: {cause:#}");
                HttpResponse::InternalServerError().json(json!({
                    "code": "INTERNAL",
                    "message": "internal error, see the server log",
                }))
            }
        }
    }
}
