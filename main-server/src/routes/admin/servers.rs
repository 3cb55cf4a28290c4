//! License server ids: making one, the due list, one id with its usage, clearing an
//! id's bound key pair, and its failover period.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use diesel::Connection;
use serde::Deserialize;
use shared_proto::admin_api::{
    FailoverPeriodSetting, KeyClear, NewServer, Server, ServerMove, ServerRetire, SyncUsage,
    MAX_FAILOVER_DAYS,
};
use utoipa::IntoParams;
use uuid::Uuid;

use super::{read_json, write_json, State};
use crate::auth::{Manager, Viewer};
use crate::error::ApiError;
use crate::store::{servers, standby, usage};

#[utoipa::path(
    post, path = "/admin/v1/servers", tag = "servers",
    request_body = NewServer,
    responses(
        (status = 201, description = "The new license server id.", body = Server),
        (status = 400, description = "`MALFORMED`: a bad body."),
        (status = 404, description = "`NOT_FOUND`: no such customer."),
    )
)]
pub(super) async fn create_server(
    op: Manager,
    state: State,
    body: web::Json<NewServer>,
) -> Result<HttpResponse, ApiError> {
    write_json(&state, StatusCode::CREATED, move |conn, now| {
        servers::create(conn, now, op.name(), body.customer_id)
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DueQuery {
    /// Only ids never synced or due within this many days (overdue included), by
    /// valid-until; without it every id, by id.
    due_within_days: Option<i64>,
    /// Only the ids of this customer, by id (not with `due_within_days`).
    customer_id: Option<Uuid>,
    /// Ids per page: 1–1000, default 100.
    limit: Option<u32>,
    /// The last id of the previous page.
    after: Option<Uuid>,
}

#[utoipa::path(
    get, path = "/admin/v1/servers", tag = "servers",
    params(DueQuery),
    responses(
        (status = 200, description = "One page of ids; a page shorter than `limit` is the last.", body = [Server]),
        (status = 400, description = "`MALFORMED`: a bad query (`limit` outside 1–1000, `due_within_days` out of range, or both `due_within_days` and `customer_id`)."),
        (status = 404, description = "`NOT_FOUND`: `after` names no id of the due list."),
    )
)]
pub(super) async fn list_servers(
    _: Viewer,
    state: State,
    query: web::Query<DueQuery>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let query = query.into_inner();
    let page = servers::Page {
        limit: query.limit,
        after: query.after,
    };
    let due = query.due_within_days;
    if let Some(customer_id) = query.customer_id {
        if due.is_some() {
            return Err(ApiError::malformed(
                "ask for one customer's ids or for the due list, not both at once",
            ));
        }
        return read_json(&state, move |conn| {
            servers::of_customer(conn, now, customer_id, page)
        })
        .await;
    }
    read_json(&state, move |conn| servers::list(conn, now, due, page)).await
}

#[utoipa::path(
    get, path = "/admin/v1/servers/{id}", tag = "servers",
    params(("id" = Uuid, Path, description = "The license server id.")),
    responses(
        (status = 200, description = "The id with its binding, last sync, licenses, and whether its local server holds the newest revision (`holds`).", body = Server),
        (status = 404, description = "`UNKNOWN_SERVER_ID` (or `NOT_FOUND` for a path that is no UUID)."),
    )
)]
pub(super) async fn show_server(
    _: Viewer,
    state: State,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    read_json(&state, move |conn| servers::get(conn, now, *path)).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct UsageQuery {
    /// How many of the newest syncs: default 50, at most 1000.
    limit: Option<u32>,
}

/// The usage summaries of the id's latest syncs, oldest first.
#[utoipa::path(
    get, path = "/admin/v1/servers/{id}/usage", tag = "servers",
    params(("id" = Uuid, Path, description = "The license server id."), UsageQuery),
    responses(
        (status = 200, description = "The usage summaries of the id's newest accepted syncs, oldest first.", body = [SyncUsage]),
        (status = 400, description = "`MALFORMED`: a bad query."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`."),
    )
)]
pub(super) async fn server_usage(
    _: Viewer,
    state: State,
    path: web::Path<Uuid>,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    read_json(&state, move |conn| usage::list(conn, *path, query.limit)).await
}

#[utoipa::path(
    post, path = "/admin/v1/servers/{id}/key-clear", tag = "servers",
    params(("id" = Uuid, Path, description = "The license server id.")),
    request_body = KeyClear,
    responses(
        (status = 200, description = "The id, now without a bound key pair.", body = Server),
        (status = 400, description = "`MALFORMED`: an empty or multi-line reason."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`."),
    )
)]
pub(super) async fn clear_key(
    op: Manager,
    state: State,
    path: web::Path<Uuid>,
    body: web::Json<KeyClear>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    write_json(&state, StatusCode::OK, move |conn, now| {
        conn.transaction::<_, ApiError, _>(|conn| {
            servers::clear_key(conn, now, op.name(), id, &body.reason, "operator")
        })?;
        servers::get(conn, now, id)
    })
    .await
}

#[utoipa::path(
    post, path = "/admin/v1/servers/{id}/retire", tag = "servers",
    params(("id" = Uuid, Path, description = "The license server id.")),
    request_body = ServerRetire,
    responses(
        (status = 200, description = "The id, retired: kept and listed, never allocated again; its syncs are refused with `SERVER_RETIRED`; its pending reminders cancelled.", body = Server),
        (status = 400, description = "`MALFORMED`: an empty or multi-line reason."),
        (status = 403, description = "`SERVER_RETIRED`: the id was retired already."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`."),
        (status = 409, description = "`CONFIRMATION_REQUIRED`: a key pair is bound and `force` is not set."),
    )
)]
pub(super) async fn retire_server(
    op: Manager,
    state: State,
    path: web::Path<Uuid>,
    body: web::Json<ServerRetire>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    write_json(&state, StatusCode::OK, move |conn, now| {
        servers::retire(conn, now, op.name(), id, &body.reason, body.force)
    })
    .await
}

#[utoipa::path(
    post, path = "/admin/v1/servers/{id}/move", tag = "servers",
    params(("id" = Uuid, Path, description = "The license server id.")),
    request_body = ServerMove,
    responses(
        (status = 200, description = "The id, now the other customer's: its reminders and key-clear notices go to that customer's contacts.", body = Server),
        (status = 400, description = "`MALFORMED`: the id already belongs to that customer."),
        (status = 403, description = "`SERVER_RETIRED`: a retired id is not moved."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`, or `NOT_FOUND`: no such customer."),
    )
)]
pub(super) async fn move_server(
    op: Manager,
    state: State,
    path: web::Path<Uuid>,
    body: web::Json<ServerMove>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    write_json(&state, StatusCode::OK, move |conn, now| {
        servers::move_to(conn, now, op.name(), id, body.customer_id)
    })
    .await
}

#[utoipa::path(
    put, path = "/admin/v1/servers/{id}/failover-period", tag = "servers",
    params(("id" = Uuid, Path, description = "The license server id.")),
    request_body = FailoverPeriodSetting,
    responses(
        (status = 200, description = "The id with its failover period as set: the days a promoted standby of the id may issue seats while its primary is down, carried in the next license files that name a standby (audited `server.failover_period_set` when it changed).", body = Server),
        (status = 400, description = "`MALFORMED`: `days` is not a whole number from 1 to 90."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`."),
    )
)]
pub(super) async fn set_failover_period(
    op: Manager,
    state: State,
    path: web::Path<Uuid>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    // Read by hand rather than by the JSON extractor, so that a wrong value is refused
    // in words a person reads, not the JSON library's.
    let days = failover_days(&body)?;
    write_json(&state, StatusCode::OK, move |conn, now| {
        standby::set_failover_days(conn, now, op.name(), id, days)?;
        servers::get(conn, now, id)
    })
    .await
}

/// The `days` of a failover-period body: a whole number from 1 to 90, and nothing else
/// in the body.
fn failover_days(body: &serde_json::Value) -> Result<u32, ApiError> {
    let refused = |what: &str| {
        ApiError::malformed(format!(
            "the failover period must be a whole number of days from 1 to \
             {MAX_FAILOVER_DAYS}; {what}"
        ))
    };
    let serde_json::Value::Object(fields) = body else {
        return Err(refused("send it as {\"days\": N}"));
    };
    if fields.keys().any(|k| k.as_str() != "days") {
        return Err(refused("the body may hold nothing but the days"));
    }
    match fields.get("days") {
        None => Err(refused("the body names no days")),
        Some(value) => match value.as_u64().map(u32::try_from) {
            Some(Ok(days)) if (1..=MAX_FAILOVER_DAYS).contains(&days) => Ok(days),
            Some(_) => Err(refused(&format!("{value} is out of range"))),
            None => Err(refused(&format!("{} is not one", shown(value)))),
        },
    }
}

/// A JSON value in an error message, cut short.
fn shown(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}
