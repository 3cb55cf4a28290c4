//! An id's licenses: adding, changing and removing one (each moves the id's revision).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use shared_proto::admin_api::{License, LicenseChange, NewLicense};
use uuid::Uuid;

use super::{write, write_json, State};
use crate::auth::Manager;
use crate::error::ApiError;
use crate::store::licenses;

#[utoipa::path(
    post, path = "/admin/v1/servers/{id}/licenses", tag = "licenses",
    params(("id" = Uuid, Path, description = "The license server id.")),
    request_body = NewLicense,
    responses(
        (status = 201, description = "The new license; the id's revision moves.", body = License),
        (status = 400, description = "`MALFORMED`: a bad feature name (1 to 128 letters, digits, `-`, `_`, `.`), seat count, validity or borrow limit, or the id already has a license of that feature."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`."),
        (status = 409, description = "`CONFIRMATION_REQUIRED`: `valid_until` is already past and `confirm_ended` is not set."),
    )
)]
pub(super) async fn add_license(
    op: Manager,
    state: State,
    path: web::Path<Uuid>,
    body: web::Json<NewLicense>,
) -> Result<HttpResponse, ApiError> {
    write_json(&state, StatusCode::CREATED, move |conn, now| {
        licenses::add(conn, now, op.name(), *path, &body)
    })
    .await
}

#[utoipa::path(
    patch, path = "/admin/v1/servers/{id}/licenses/{license_id}", tag = "licenses",
    params(("id" = Uuid, Path, description = "The license server id."), ("license_id" = Uuid, Path, description = "The license.")),
    request_body = LicenseChange,
    responses(
        (status = 200, description = "The changed license; the id's revision moves.", body = License),
        (status = 400, description = "`MALFORMED`: a bad seat count or validity."),
        (status = 404, description = "`UNKNOWN_SERVER_ID` or `NOT_FOUND`: no such id or license."),
        (status = 409, description = "`CONFIRMATION_REQUIRED`: the new `valid_until` is already past and `confirm_ended` is not set."),
    )
)]
pub(super) async fn change_license(
    op: Manager,
    state: State,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<LicenseChange>,
) -> Result<HttpResponse, ApiError> {
    let (id, license_id) = path.into_inner();
    write_json(&state, StatusCode::OK, move |conn, now| {
        licenses::change(conn, now, op.name(), id, license_id, &body)
    })
    .await
}

#[utoipa::path(
    delete, path = "/admin/v1/servers/{id}/licenses/{license_id}", tag = "licenses",
    params(("id" = Uuid, Path, description = "The license server id."), ("license_id" = Uuid, Path, description = "The license.")),
    responses(
        (status = 204, description = "Removed; the id's revision moves."),
        (status = 404, description = "`UNKNOWN_SERVER_ID` or `NOT_FOUND`: no such id or license."),
    )
)]
pub(super) async fn remove_license(
    op: Manager,
    state: State,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (id, license_id) = path.into_inner();
    write(&state, move |conn, now| {
        licenses::remove(conn, now, op.name(), id, license_id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
