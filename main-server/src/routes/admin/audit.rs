//! The audit log: its newest entries, the walk of its hash chain, and the chain's
//! head signed with Solme's key.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use shared_proto::admin_api::{AuditEntry, AuditVerification, SignedAuditHead};
use shared_proto::audit_head::AuditHead;
use utoipa::IntoParams;

use super::{read_json, State};
use crate::auth::Viewer;
use crate::error::ApiError;
use crate::routes::with_conn;
use crate::seen_head::SeenHead;
use crate::store::{audit, audit_chain};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// How many entries: default 100.
    limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/admin/v1/audit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "The newest audit entries, newest first.", body = [AuditEntry]),
        (status = 400, description = "`MALFORMED`: a bad query."),
    )
)]
pub(super) async fn list_audit(
    _: Viewer,
    state: State,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100);
    read_json(&state, move |conn| audit::list(conn, limit)).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyQuery {
    /// A saved `GET /audit/head` answer's `signed` text, to check against the chain.
    head: Option<String>,
}

/// Seals the audit entries waiting, so that what verify and head see is current.
pub(super) async fn seal_pending(state: &State) -> Result<usize, ApiError> {
    let pool = state.db.write.clone();
    web::block(move || audit_chain::seal_pending(&pool)).await?
}

/// Seals what is waiting, then walks the audit chain (on a reading connection: a long
/// walk holds up no write) and names the first problem.
#[utoipa::path(
    get, path = "/admin/v1/audit/verify", tag = "audit",
    params(VerifyQuery),
    responses(
        (status = 200, description = "The walk of the audit chain: intact, or the first entry changed, removed, inserted or rewritten.", body = AuditVerification),
        (status = 400, description = "`BAD_SIGNATURE`: the saved head is not signed with Solme's key; `MALFORMED`: the text is not a saved head."),
    )
)]
pub(super) async fn verify_audit(
    _: Viewer,
    state: State,
    seen: web::Data<SeenHead>,
    query: web::Query<VerifyQuery>,
) -> Result<HttpResponse, ApiError> {
    // The signature is checked first: a saved head not made with this server's key
    // proves nothing about the chain.
    let saved = query
        .into_inner()
        .head
        .map(|text| AuditHead::verify(&text, &state.signing_key.public_key()))
        .transpose()?;
    seal_pending(&state).await?;
    let seen = seen.load().map_err(ApiError::Internal)?;
    read_json(&state, move |conn| audit_chain::verify(conn, saved, seen)).await
}

/// The chain's newest entry, signed with Solme's key, for an operator to keep.
#[utoipa::path(
    get, path = "/admin/v1/audit/head", tag = "audit",
    responses((status = 200, description = "The newest sealed entry's position and hash, signed with Solme's key.", body = SignedAuditHead))
)]
pub(super) async fn audit_head(_: Viewer, state: State) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    seal_pending(&state).await?;
    let head = with_conn(&state.db.read, move |conn| audit_chain::head(conn, now)).await?;
    let signed = head.sign(&state.signing_key)?;
    Ok(HttpResponse::Ok().json(SignedAuditHead { head, signed }))
}
