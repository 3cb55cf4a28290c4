//! The pair channel on the primary (`/pair/v1/…`): the standby's join, its regular
//! calls and its hand-back. Every body is a message signed by the standby's key
//! (checked against the key pinned at pairing, or for a join against the pairing
//! code); the answers are signed by this server's key.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::SqliteConnection;
use shared_proto::ServerIdentity;

use crate::error::Error;
use crate::pair::{messages::Wire, primary};
use crate::state::AppState;

/// `POST /pair/v1/join`
pub(crate) async fn join(
    state: web::Data<AppState>,
    body: web::Json<Wire>,
) -> Result<HttpResponse, Error> {
    let installation = state.installation.clone();
    let identity = installation.identity.clone();
    let now = installation.clock.now();
    let wire = body.into_inner();
    let answer = installation
        .db_with_settings(move |c, settings| primary::join(c, &identity, settings, &wire, now))
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// `POST /pair/v1/replicate`
pub(crate) async fn replicate(
    state: web::Data<AppState>,
    body: web::Json<Wire>,
) -> Result<HttpResponse, Error> {
    answer_and_reload(state, body.into_inner(), primary::replicate).await
}

/// `POST /pair/v1/hand-back`
pub(crate) async fn hand_back(
    state: web::Data<AppState>,
    body: web::Json<Wire>,
) -> Result<HttpResponse, Error> {
    answer_and_reload(state, body.into_inner(), primary::hand_back).await
}

/// Runs one of the primary's answers to its standby, then has the engine apply what it
/// changed (a promotion seen, a hand-back taken) before the next grant.
async fn answer_and_reload(
    state: web::Data<AppState>,
    wire: Wire,
    step: fn(&mut SqliteConnection, &ServerIdentity, &Wire, DateTime<Utc>) -> Result<Wire, Error>,
) -> Result<HttpResponse, Error> {
    let installation = state.installation.clone();
    let identity = installation.identity.clone();
    let clock = installation.clock.clone();
    let answer = installation
        .db(move |c| step(c, &identity, &wire, clock.now()))
        .await?;
    state.engine.reload()?;
    Ok(HttpResponse::Ok().json(answer))
}
