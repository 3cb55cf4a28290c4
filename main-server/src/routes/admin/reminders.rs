//! Renewal reminders: a customer's list and switch, and the mail gateway's claim of
//! the due ones and its report of each handed to the outgoing spool.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use shared_proto::admin_api::{Customer, DueReminder, Reminder, RemindersSwitch};
use uuid::Uuid;

use super::{read_json, write_json, State};
use crate::auth::{Gateway, Manager, Viewer};
use crate::error::ApiError;
use crate::store::reminders;

#[utoipa::path(
    get, path = "/admin/v1/customers/{id}/reminders", tag = "reminders",
    params(("id" = Uuid, Path, description = "The customer.")),
    responses(
        (status = 200, description = "The reminders recorded for the customer's ids, newest first (at most 1000).", body = [Reminder]),
        (status = 404, description = "`NOT_FOUND`: no such customer."),
    )
)]
pub(super) async fn list_reminders(
    _: Viewer,
    state: State,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    read_json(&state, move |conn| {
        reminders::list_for_customer(conn, *path)
    })
    .await
}

#[utoipa::path(
    put, path = "/admin/v1/customers/{id}/reminders", tag = "reminders",
    params(("id" = Uuid, Path, description = "The customer.")),
    request_body = RemindersSwitch,
    responses(
        (status = 200, description = "The customer; off cancels the pending reminders.", body = Customer),
        (status = 400, description = "`MALFORMED`: a bad body."),
        (status = 404, description = "`NOT_FOUND`: no such customer."),
    )
)]
pub(super) async fn switch_reminders(
    op: Manager,
    state: State,
    path: web::Path<Uuid>,
    body: web::Json<RemindersSwitch>,
) -> Result<HttpResponse, ApiError> {
    write_json(&state, StatusCode::OK, move |conn, now| {
        reminders::set_enabled(conn, now, op.name(), *path, body.enabled)
    })
    .await
}

/// The mail gateway's poll: records what became due and returns what to mail.
#[utoipa::path(
    post, path = "/admin/v1/reminders/claim", tag = "reminders",
    responses((status = 200, description = "The pending reminders to mail, oldest first (at most 100); idempotent.", body = [DueReminder]))
)]
pub(super) async fn claim_reminders(_: Gateway, state: State) -> Result<HttpResponse, ApiError> {
    write_json(&state, StatusCode::OK, reminders::claim).await
}

#[utoipa::path(
    post, path = "/admin/v1/reminders/{id}/handed", tag = "reminders",
    params(("id" = Uuid, Path, description = "The reminder.")),
    responses(
        (status = 200, description = "The reminder, marked handed to the outgoing spool.", body = Reminder),
        (status = 404, description = "`NOT_FOUND`: no such reminder."),
    )
)]
pub(super) async fn reminder_handed(
    op: Gateway,
    state: State,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    write_json(&state, StatusCode::OK, move |conn, now| {
        reminders::mark_handed(conn, now, op.name(), *path)
    })
    .await
}
