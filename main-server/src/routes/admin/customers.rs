//! Customers: adding one, listing them, adding a contact address.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use shared_proto::admin_api::{Customer, NewCustomer, NewEmail};
use uuid::Uuid;

use super::{read_json, write_json, State};
use crate::auth::{Manager, Viewer};
use crate::error::ApiError;
use crate::store::customers;

#[utoipa::path(
    post, path = "/admin/v1/customers", tag = "customers",
    request_body = NewCustomer,
    responses(
        (status = 201, description = "The new customer.", body = Customer),
        (status = 400, description = "`MALFORMED`: an empty or multi-line name, or a contact that is no email address."),
    )
)]
pub(super) async fn create_customer(
    op: Manager,
    state: State,
    body: web::Json<NewCustomer>,
) -> Result<HttpResponse, ApiError> {
    write_json(&state, StatusCode::CREATED, move |conn, now| {
        customers::create(conn, now, op.name(), &body)
    })
    .await
}

#[utoipa::path(
    get, path = "/admin/v1/customers", tag = "customers",
    responses((status = 200, description = "Every customer.", body = [Customer]))
)]
pub(super) async fn list_customers(_: Viewer, state: State) -> Result<HttpResponse, ApiError> {
    read_json(&state, customers::list).await
}

#[utoipa::path(
    post, path = "/admin/v1/customers/{id}/emails", tag = "customers",
    params(("id" = Uuid, Path, description = "The customer.")),
    request_body = NewEmail,
    responses(
        (status = 200, description = "The customer with the new contact.", body = Customer),
        (status = 400, description = "`MALFORMED`: not an email address."),
        (status = 404, description = "`NOT_FOUND`: no such customer."),
    )
)]
pub(super) async fn add_email(
    op: Manager,
    state: State,
    path: web::Path<Uuid>,
    body: web::Json<NewEmail>,
) -> Result<HttpResponse, ApiError> {
    write_json(&state, StatusCode::OK, move |conn, now| {
        customers::add_email(conn, now, op.name(), *path, &body.email)
    })
    .await
}
