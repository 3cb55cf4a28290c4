//! Customers: adding one, listing them a page at a time (or those whose name starts
//! with a text), one with its ids, renaming one, adding and removing a contact address.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use shared_proto::admin_api::{Customer, CustomerDetail, CustomerRename, NewCustomer, NewEmail};
use utoipa::IntoParams;
use uuid::Uuid;

use super::{read_json, write_json, State};
use crate::auth::{Manager, Viewer};
use crate::error::ApiError;
use crate::store::{customers, servers};

#[utoipa::path(
    post, path = "/admin/v1/customers", tag = "customers",
    request_body = NewCustomer,
    responses(
        (status = 201, description = "The new customer.", body = Customer),
        (status = 400, description = "`MALFORMED`: an empty or multi-line name, or a contact that is no email address."),
        (status = 409, description = "`CONTACT_IN_USE`: a contact is registered for another customer; `CONFIRMATION_REQUIRED`: a customer of that name exists and `confirm_duplicate_name` is not set."),
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct CustomersQuery {
    /// Customers per page: 1–1000, default 100.
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// The last customer of the previous page.
    #[param(value_type = Option<Uuid>)]
    after: Option<String>,
    /// Only customers whose name starts with this text, ignoring case (at most 200
    /// characters; empty: every customer).
    name: Option<String>,
}

#[utoipa::path(
    get, path = "/admin/v1/customers", tag = "customers",
    params(CustomersQuery),
    responses(
        (status = 200, description = "One page of customers, by name ignoring case, then id; a page shorter than `limit` is the last.", body = [Customer]),
        (status = 400, description = "`MALFORMED`: a bad query (`limit` no number from 1 to 1000, `after` no customer id, a `name` longer than 200 characters or of more than one line; the message names it)."),
        (status = 404, description = "`NOT_FOUND`: `after` names no customer."),
    )
)]
pub(super) async fn list_customers(
    _: Viewer,
    state: State,
    query: web::Query<CustomersQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    // Read here rather than by the query's parser, whose messages name its internals.
    let limit = query
        .limit
        .map(|text| {
            text.trim().parse::<u32>().map_err(|_| {
                ApiError::malformed(format!(
                    "limit {:?} is no number of customers (1 to {})",
                    clip(&text),
                    customers::MAX_PAGE
                ))
            })
        })
        .transpose()?;
    let after = query
        .after
        .map(|text| {
            Uuid::parse_str(text.trim()).map_err(|_| {
                ApiError::malformed(format!(
                    "after {:?} is no customer id (like 0f8e5b6e-2f4c-4a8e-9d1a-3c5b7e9f1a2b)",
                    clip(&text)
                ))
            })
        })
        .transpose()?;
    let filter = customers::ListFilter {
        limit,
        after,
        name: query.name,
    };
    read_json(&state, move |conn| customers::list(conn, &filter)).await
}

/// At most 40 characters of a bad value, for a message.
fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

#[utoipa::path(
    get, path = "/admin/v1/customers/{id}", tag = "customers",
    params(("id" = Uuid, Path, description = "The customer.")),
    responses(
        (status = 200, description = "The customer with its copy policy and its license server ids (the first 100 by id, and how many it has).", body = CustomerDetail),
        (status = 404, description = "`NOT_FOUND`: no such customer."),
    )
)]
pub(super) async fn show_customer(
    _: Viewer,
    state: State,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    read_json(&state, move |conn| {
        servers::customer_detail(conn, now, *path)
    })
    .await
}

#[utoipa::path(
    post, path = "/admin/v1/customers/{id}/emails", tag = "customers",
    params(("id" = Uuid, Path, description = "The customer.")),
    request_body = NewEmail,
    responses(
        (status = 200, description = "The customer with the new contact.", body = Customer),
        (status = 400, description = "`MALFORMED`: not an email address."),
        (status = 404, description = "`NOT_FOUND`: no such customer."),
        (status = 409, description = "`CONTACT_IN_USE`: the address is registered for another customer."),
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

#[utoipa::path(
    patch, path = "/admin/v1/customers/{id}", tag = "customers",
    params(("id" = Uuid, Path, description = "The customer.")),
    request_body = CustomerRename,
    responses(
        (status = 200, description = "The renamed customer.", body = Customer),
        (status = 400, description = "`MALFORMED`: an empty or multi-line name."),
        (status = 404, description = "`NOT_FOUND`: no such customer."),
        (status = 409, description = "`CONFIRMATION_REQUIRED`: another customer has that name and `confirm_duplicate_name` is not set."),
    )
)]
pub(super) async fn rename_customer(
    op: Manager,
    state: State,
    path: web::Path<Uuid>,
    body: web::Json<CustomerRename>,
) -> Result<HttpResponse, ApiError> {
    write_json(&state, StatusCode::OK, move |conn, now| {
        customers::rename(conn, now, op.name(), *path, &body)
    })
    .await
}

#[utoipa::path(
    delete, path = "/admin/v1/customers/{id}/emails/{email}", tag = "customers",
    params(
        ("id" = Uuid, Path, description = "The customer."),
        ("email" = String, Path, description = "The contact address to remove."),
    ),
    responses(
        (status = 200, description = "The customer without the address.", body = Customer),
        (status = 400, description = "`MALFORMED`: not an email address."),
        (status = 404, description = "`NOT_FOUND`: no such customer, or the address is not one of its contacts."),
        (status = 409, description = "`LAST_CONTACT`: the address is the customer's last contact."),
    )
)]
pub(super) async fn remove_email(
    op: Manager,
    state: State,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, email) = path.into_inner();
    write_json(&state, StatusCode::OK, move |conn, now| {
        customers::remove_email(conn, now, op.name(), id, &email)
    })
    .await
}
