//! The operators' admin API (`/admin/v1/…`, see docs/API.md), one file per resource.
//! Every route sits behind the bearer check (`crate::auth::require_token`), which finds
//! the caller's operator account and role from a personal token or a console session;
//! the audit log records that account's name as the actor. The one exception is the API
//! document, `GET /admin/v1/openapi.json` ([`Need::Public`]). Each endpoint is declared
//! once, in [`ENDPOINTS`], with the least it needs: the router and the role check are
//! both made from that list (the check on the path as the router matches it, so an
//! escaped spelling of a path needs the same role). Each handler's `#[utoipa::path]`
//! describes it in that document (see `crate::openapi`).

pub(crate) mod audit;
pub(crate) mod customers;
pub(crate) mod key_clear_requests;
pub(crate) mod licenses;
pub(crate) mod mail;
pub(crate) mod operators;
pub(crate) mod reminders;
pub(crate) mod servers;
pub(crate) mod sessions;

use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::with_conn;
use crate::auth::{require_token, Endpoint, EndpointList, Need, Verb};
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::sync::SyncService;
use audit::*;
use customers::*;
use key_clear_requests::*;
use licenses::*;
use mail::*;
use operators::*;
use reminders::*;
use servers::*;
use sessions::*;

/// Declares every admin endpoint once, with the least it needs beside its handler:
/// [`ENDPOINTS`] (what the token check and the role table of docs/API.md read) and the
/// router's registrations are both made from this one list, so no route can exist
/// without a decided role, nor a role without its route.
macro_rules! endpoints {
    ($($verb:ident $path:literal => $need:ident, $handler:ident;)*) => {
        /// Every admin endpoint, in routing order (a literal segment before a `{…}` one
        /// at the same place), with the least it needs. Paths are under `/admin/v1`.
        pub const ENDPOINTS: &[Endpoint] = &[
            $(Endpoint { verb: Verb::$verb, path: $path, need: Need::$need },)*
        ];

        fn routes(scope: actix_web::Scope) -> actix_web::Scope {
            scope$(.route($path, web::method(Verb::$verb.method()).to($handler)))*
        }
    };
}

endpoints! {
    Post "/customers" => Manage, create_customer;
    Get "/customers" => Read, list_customers;
    Post "/customers/{id}/emails" => Manage, add_email;
    Get "/customers/{id}/reminders" => Read, list_reminders;
    Put "/customers/{id}/reminders" => Manage, switch_reminders;
    Post "/reminders/claim" => Mail, claim_reminders;
    Post "/reminders/{id}/handed" => Mail, reminder_handed;
    Post "/servers" => Manage, create_server;
    Get "/servers" => Read, list_servers;
    Get "/servers/{id}" => Read, show_server;
    Get "/servers/{id}/usage" => Read, server_usage;
    Post "/servers/{id}/licenses" => Manage, add_license;
    Patch "/servers/{id}/licenses/{license_id}" => Manage, change_license;
    Delete "/servers/{id}/licenses/{license_id}" => Manage, remove_license;
    Post "/servers/{id}/key-clear" => Manage, clear_key;
    Post "/mail/sync" => Mail, mail_sync;
    Post "/key-clear-requests" => Mail, create_request;
    Get "/key-clear-requests" => Read, list_requests;
    // The gateway's work list (with every contact address): a service endpoint, not a
    // view, so a viewer may not call it. Before `{id}`, which would match it too.
    Get "/key-clear-requests/unnotified" => Mail, unnotified_requests;
    Get "/key-clear-requests/{id}" => Read, show_request;
    Post "/key-clear-requests/{id}/approve" => Manage, approve_request;
    Post "/key-clear-requests/{id}/reject" => Manage, reject_request;
    Post "/key-clear-requests/{id}/notified" => Mail, mark_notified;
    Get "/audit" => Read, list_audit;
    Get "/audit/verify" => Read, verify_audit;
    Get "/audit/head" => Read, audit_head;
    Get "/whoami" => Own, whoami;
    Post "/sessions" => SignIn, open_session;
    Delete "/sessions/current" => Own, close_session;
    Post "/operators" => Admin, add_operator;
    Get "/operators" => Admin, list_operators;
    Post "/operators/{name}/revoke" => Admin, revoke_operator;
    Post "/operators/{name}/rotate" => Admin, rotate_operator;
    Get "/openapi.json" => Public, openapi_document;
}

/// The admin API's endpoints, for the token check.
pub struct AdminApi;

impl EndpointList for AdminApi {
    const ENDPOINTS: &'static [Endpoint] = ENDPOINTS;
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(routes(web::scope("/admin/v1")).wrap(from_fn(require_token::<AdminApi>)));
}

pub(crate) type Svc = web::Data<SyncService>;

/// Runs a change on a writing connection, at the clock's time of the request.
pub(crate) async fn write<T, F>(svc: &Svc, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection, DateTime<Utc>) -> Result<T, ApiError> + Send + 'static,
{
    let now = svc.clock.now();
    with_conn(&svc.db.write, move |conn| work(conn, now)).await
}

/// Runs a change like [`write`] and answers `status` with its result as JSON.
pub(crate) async fn write_json<T, F>(
    svc: &Svc,
    status: StatusCode,
    work: F,
) -> Result<HttpResponse, ApiError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&mut DbConnection, DateTime<Utc>) -> Result<T, ApiError> + Send + 'static,
{
    let value = write(svc, work).await?;
    Ok(HttpResponse::build(status).json(value))
}

/// Answers 200 with what `work` reads on a reading connection, as JSON.
pub(crate) async fn read_json<T, F>(svc: &Svc, work: F) -> Result<HttpResponse, ApiError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
{
    let value = with_conn(&svc.db.read, work).await?;
    Ok(HttpResponse::Ok().json(value))
}

#[utoipa::path(
    get, path = "/admin/v1/openapi.json", tag = "document",
    security(()),
    responses((status = 200, description = "This OpenAPI document (no token needed: it is the one published with the source).", body = Object))
)]
pub(crate) async fn openapi_document() -> Result<HttpResponse, ApiError> {
    let json = crate::openapi::document_json().map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(json))
}
