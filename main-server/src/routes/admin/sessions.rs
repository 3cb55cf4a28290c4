//! Console sessions: the sign-in that trades a personal token for a session secret,
//! and the sign-out that ends it.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use shared_proto::admin_api::ConsoleSession;
use shared_proto::ErrorCode;

use super::{write, write_json, State};
use crate::auth::{Anyone, Caller, Credential, Person};
use crate::error::ApiError;
use crate::store::sessions;

/// Sign-in of the console: trades the personal token for a session secret.
#[utoipa::path(
    post, path = "/admin/v1/sessions", tag = "operators",
    responses(
        (status = 201, description = "A console session of the token's account (every role but the gateway), for 8 hours.", body = ConsoleSession),
    )
)]
pub(super) async fn open_session(person: Person, state: State) -> Result<HttpResponse, ApiError> {
    let Caller {
        identity,
        credential,
    } = person.0;
    let Credential::Token { token_hash } = credential else {
        return Err(ApiError::refused(
            ErrorCode::Forbidden,
            "a console session cannot open another one: sign in with your personal token",
        ));
    };
    write_json(&state, StatusCode::CREATED, move |conn, now| {
        sessions::open(conn, now, &identity, &token_hash)
    })
    .await
}

/// Sign-out of the console: the session secret stops working at once.
#[utoipa::path(
    delete, path = "/admin/v1/sessions/current", tag = "operators",
    responses(
        (status = 204, description = "The presented console session has ended."),
        (status = 400, description = "`MALFORMED`: the request carries a personal token, not a session."),
    )
)]
pub(super) async fn close_session(caller: Anyone, state: State) -> Result<HttpResponse, ApiError> {
    let Caller {
        identity,
        credential,
    } = caller.0;
    let Credential::Session { secret_hash } = credential else {
        return Err(ApiError::malformed(
            "this request carries a personal token, not a console session: there is no \
             session to end (revoke or rotate the token to stop it)",
        ));
    };
    write(&state, move |conn, now| {
        sessions::close(conn, now, &identity, &secret_hash)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
