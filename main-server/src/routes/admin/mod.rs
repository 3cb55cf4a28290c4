//! The operators' admin API (`/admin/v1/…`, see docs/API.md), one file per resource.
//! Every route sits behind the bearer check (`crate::auth::require_token`), which finds
//! the caller's operator account and role from a personal token or a console session;
//! the audit log records that account's name as the actor. The one exception is the API
//! document, `GET /admin/v1/openapi.json` ([`Need::Public`]). Each endpoint is declared
//! once, in [`ENDPOINTS`], with the least it needs: the router and the role check are
//! both made from that list (the check on the path as the router matches it, so an
//! escaped spelling of a path needs the same role). Each handler's `#[utoipa::path]`
//! describes it in that document (see `crate::openapi`).

mod audit;
mod customers;
mod document;
mod key_clear_requests;
mod licenses;
mod mail;
mod operators;
mod reminders;
mod servers;
mod sessions;

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

/// Declares every admin endpoint once, with the least it needs beside its handler
/// (`module::handler`, the handler annotated with `#[utoipa::path]`). Three things are
/// made from this one list: [`ENDPOINTS`] (what the token check and the role table of
/// docs/API.md read), the router's registrations, and [`AdminApi`]'s OpenAPI paths. So
/// no route can exist without a decided role or outside the document, and adding an
/// endpoint is one line here beside its handler.
macro_rules! endpoints {
    ($($verb:ident $path:literal => $need:ident, $module:ident::$handler:ident;)*) => {
        /// Every admin endpoint, in routing order (a literal segment before a `{…}` one
        /// at the same place), with the least it needs. Paths are under `/admin/v1`.
        pub const ENDPOINTS: &[Endpoint] = &[
            $(Endpoint { verb: Verb::$verb, path: $path, need: Need::$need },)*
        ];

        fn routes(scope: actix_web::Scope) -> actix_web::Scope {
            scope$(.route($path, web::method(Verb::$verb.method()).to($module::$handler)))*
        }

        /// The admin API: its endpoints for the token check, its operations for the
        /// OpenAPI document (see `crate::openapi`).
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($module::$handler),*))]
        pub struct AdminApi;
    };
}

endpoints! {
    Post "/customers" => Manage, customers::create_customer;
    Get "/customers" => Read, customers::list_customers;
    Post "/customers/{id}/emails" => Manage, customers::add_email;
    Get "/customers/{id}/reminders" => Read, reminders::list_reminders;
    Put "/customers/{id}/reminders" => Manage, reminders::switch_reminders;
    Post "/reminders/claim" => Mail, reminders::claim_reminders;
    Post "/reminders/{id}/handed" => Mail, reminders::reminder_handed;
    Post "/servers" => Manage, servers::create_server;
    Get "/servers" => Read, servers::list_servers;
    Get "/servers/{id}" => Read, servers::show_server;
    Get "/servers/{id}/usage" => Read, servers::server_usage;
    Post "/servers/{id}/licenses" => Manage, licenses::add_license;
    Patch "/servers/{id}/licenses/{license_id}" => Manage, licenses::change_license;
    Delete "/servers/{id}/licenses/{license_id}" => Manage, licenses::remove_license;
    Post "/servers/{id}/key-clear" => Manage, servers::clear_key;
    Post "/mail/sync" => Mail, mail::mail_sync;
    Post "/key-clear-requests" => Mail, key_clear_requests::create_request;
    Get "/key-clear-requests" => Read, key_clear_requests::list_requests;
    // The gateway's work list (with every contact address): a service endpoint, not a
    // view, so a viewer may not call it. Before `{id}`, which would match it too.
    Get "/key-clear-requests/unnotified" => Mail, key_clear_requests::unnotified_requests;
    Get "/key-clear-requests/{id}" => Read, key_clear_requests::show_request;
    Post "/key-clear-requests/{id}/approve" => Manage, key_clear_requests::approve_request;
    Post "/key-clear-requests/{id}/reject" => Manage, key_clear_requests::reject_request;
    Post "/key-clear-requests/{id}/notified" => Mail, key_clear_requests::mark_notified;
    Get "/audit" => Read, audit::list_audit;
    Get "/audit/verify" => Read, audit::verify_audit;
    Get "/audit/head" => Read, audit::audit_head;
    Get "/whoami" => Own, operators::whoami;
    Post "/sessions" => SignIn, sessions::open_session;
    Delete "/sessions/current" => Own, sessions::close_session;
    Post "/operators" => Admin, operators::add_operator;
    Get "/operators" => Admin, operators::list_operators;
    Post "/operators/{name}/revoke" => Admin, operators::revoke_operator;
    Post "/operators/{name}/rotate" => Admin, operators::rotate_operator;
    Get "/openapi.json" => Public, document::openapi_document;
}

impl EndpointList for AdminApi {
    const ENDPOINTS: &'static [Endpoint] = ENDPOINTS;
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(routes(web::scope("/admin/v1")).wrap(from_fn(require_token::<AdminApi>)));
}

type Svc = web::Data<SyncService>;

/// Runs a change on a writing connection, at the clock's time of the request.
async fn write<T, F>(svc: &Svc, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection, DateTime<Utc>) -> Result<T, ApiError> + Send + 'static,
{
    let now = svc.clock.now();
    with_conn(&svc.db.write, move |conn| work(conn, now)).await
}

/// Runs a change like [`write`] and answers `status` with its result as JSON.
async fn write_json<T, F>(svc: &Svc, status: StatusCode, work: F) -> Result<HttpResponse, ApiError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&mut DbConnection, DateTime<Utc>) -> Result<T, ApiError> + Send + 'static,
{
    let value = write(svc, work).await?;
    Ok(HttpResponse::build(status).json(value))
}

/// Answers 200 with what `work` reads on a reading connection, as JSON.
async fn read_json<T, F>(svc: &Svc, work: F) -> Result<HttpResponse, ApiError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
{
    let value = with_conn(&svc.db.read, work).await?;
    Ok(HttpResponse::Ok().json(value))
}
