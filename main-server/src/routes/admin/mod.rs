//! The operators' admin API (`/admin/v1/…`, see docs/API.md), one file per resource.
//! Every route sits behind the bearer check (`crate::auth::require_token`), which finds
//! the caller's operator account and role from a personal token or a console session;
//! the audit log records that account's name as the actor. The one exception is the API
//! document, `GET /admin/v1/openapi.json` (the [`Public`] guard).
//!
//! Each endpoint is declared once, in the `endpoints!` list below, with the guard it
//! needs (`Viewer`, `Manager`, `Admin`, `Gateway`, …; see `crate::auth::Guard`). From
//! that line come its route, its row of [`ENDPOINTS`] (what the role check reads, on
//! the path as the router matches it, so an escaped spelling of a path needs the same
//! role) and its operation in the OpenAPI document (from the handler's
//! `#[utoipa::path]`). The handler takes the same guard as its first argument, which
//! the compiler checks: a handler that states no need, or another one, is not built.
//!
//! Adding an endpoint: the handler in its resource's file, its line in the list, its
//! wire type in shared-proto and its store function; then regenerate docs/openapi.json
//! and add its row to the role table of docs/API.md (both checked by tests).

mod audit;
mod clock;
mod copies;
mod customers;
pub mod document;
mod key_clear_requests;
mod licenses;
mod mail;
mod operators;
mod portal_links;
mod receipts;
mod reminders;
mod servers;
mod sessions;
pub(crate) mod usage_chart;

use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::with_conn;
use crate::auth::{
    guarded, require_token, Admin, Anyone, Endpoint, EndpointList, Gateway, Guard, Manager, Person,
    Public, Verb, Viewer,
};
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::state::AppState;

/// Declares every admin endpoint once, with the least it needs beside its handler
/// (`module::handler`, the handler annotated with `#[utoipa::path]`). Three things are
/// made from this one list: [`ENDPOINTS`] (what the token check and the role table of
/// docs/API.md read), the router's registrations, and [`AdminApi`]'s OpenAPI paths. So
/// no route can exist without a decided role or outside the document, and adding an
/// endpoint is one line here beside its handler.
macro_rules! endpoints {
    ($($verb:ident $path:literal => $guard:ident, $module:ident::$handler:ident;)*) => {
        /// Every admin endpoint, in routing order (a literal segment before a `{…}` one
        /// at the same place), with the least it needs. Paths are under `/admin/v1`.
        pub const ENDPOINTS: &[Endpoint] = &[
            $(Endpoint { verb: Verb::$verb, path: $path, need: <$guard as Guard>::NEED },)*
        ];

        fn routes(scope: actix_web::Scope) -> actix_web::Scope {
            scope$(.route($path, web::method(Verb::$verb.method()).to(guarded::<$guard, _, _>($module::$handler))))*
        }

        /// The admin API: its endpoints for the token check, its operations for the
        /// OpenAPI document (see `crate::openapi`).
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($module::$handler),*))]
        pub struct AdminApi;
    };
}

endpoints! {
    Post "/customers" => Manager, customers::create_customer;
    Get "/customers" => Viewer, customers::list_customers;
    Get "/customers/{id}" => Viewer, customers::show_customer;
    Patch "/customers/{id}" => Manager, customers::rename_customer;
    Post "/customers/{id}/emails" => Manager, customers::add_email;
    Delete "/customers/{id}/emails/{email}" => Manager, customers::remove_email;
    Get "/customers/{id}/reminders" => Viewer, reminders::list_reminders;
    Put "/customers/{id}/reminders" => Manager, reminders::switch_reminders;
    Put "/customers/{id}/copy-policy" => Manager, copies::set_copy_policy;
    Post "/reminders/claim" => Gateway, reminders::claim_reminders;
    Post "/reminders/{id}/handed" => Gateway, reminders::reminder_handed;
    Post "/portal-links/claim" => Gateway, portal_links::claim_portal_links;
    Post "/portal-links/{id}/handed" => Gateway, portal_links::portal_link_handed;
    Post "/servers" => Manager, servers::create_server;
    Get "/servers" => Viewer, servers::list_servers;
    Get "/servers/{id}" => Viewer, servers::show_server;
    Get "/servers/{id}/usage" => Viewer, servers::server_usage;
    Get "/servers/{id}/usage.svg" => Viewer, usage_chart::server_usage_svg;
    Post "/servers/{id}/licenses" => Manager, licenses::add_license;
    Patch "/servers/{id}/licenses/{license_id}" => Manager, licenses::change_license;
    Delete "/servers/{id}/licenses/{license_id}" => Manager, licenses::remove_license;
    Post "/servers/{id}/key-clear" => Manager, servers::clear_key;
    Post "/servers/{id}/retire" => Manager, servers::retire_server;
    Post "/servers/{id}/move" => Manager, servers::move_server;
    Put "/servers/{id}/failover-period" => Manager, servers::set_failover_period;
    Post "/servers/{id}/possible-copy/dismiss" => Manager, copies::dismiss_possible_copy;
    Get "/servers/{id}/installation" => Viewer, receipts::server_installation;
    Get "/installations" => Viewer, receipts::list_installations;
    Post "/mail/sync" => Gateway, mail::mail_sync;
    Post "/mail/receipt" => Gateway, receipts::mail_receipt;
    Post "/key-clear-requests" => Gateway, key_clear_requests::create_request;
    Get "/key-clear-requests" => Viewer, key_clear_requests::list_requests;
    // The gateway's work list (with every contact address): a service endpoint, not a
    // view, so a viewer may not call it. Before `{id}`, which would match it too.
    Get "/key-clear-requests/unnotified" => Gateway, key_clear_requests::unnotified_requests;
    Get "/key-clear-requests/{id}" => Viewer, key_clear_requests::show_request;
    Post "/key-clear-requests/{id}/approve" => Manager, key_clear_requests::approve_request;
    Post "/key-clear-requests/{id}/reject" => Manager, key_clear_requests::reject_request;
    Post "/key-clear-requests/{id}/notified" => Gateway, key_clear_requests::mark_notified;
    Get "/audit" => Viewer, audit::list_audit;
    Get "/audit/entries" => Viewer, audit::list_entries;
    Get "/audit/export" => Viewer, audit::export_entries;
    Get "/audit/verify" => Viewer, audit::verify_audit;
    Get "/audit/head" => Viewer, audit::audit_head;
    Get "/whoami" => Anyone, operators::whoami;
    Get "/clock" => Viewer, clock::show_clock;
    Post "/sessions" => Person, sessions::open_session;
    Delete "/sessions/current" => Anyone, sessions::close_session;
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

type State = web::Data<AppState>;

/// Runs a change on a writing connection, at the clock's time of the request.
async fn write<T, F>(state: &State, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection, DateTime<Utc>) -> Result<T, ApiError> + Send + 'static,
{
    let now = state.clock.now();
    with_conn(&state.db.write, move |conn| work(conn, now)).await
}

/// Runs a change like [`write`] and answers `status` with its result as JSON.
async fn write_json<T, F>(
    state: &State,
    status: StatusCode,
    work: F,
) -> Result<HttpResponse, ApiError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&mut DbConnection, DateTime<Utc>) -> Result<T, ApiError> + Send + 'static,
{
    let value = write(state, work).await?;
    Ok(HttpResponse::build(status).json(value))
}

/// Answers 200 with what `work` reads on a reading connection, as JSON.
async fn read_json<T, F>(state: &State, work: F) -> Result<HttpResponse, ApiError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
{
    let value = with_conn(&state.db.read, work).await?;
    Ok(HttpResponse::Ok().json(value))
}

#[cfg(test)]
mod tests {
    use actix_web::http::Method;

    use super::ENDPOINTS;
    use crate::auth::Need;

    #[test]
    fn each_request_needs_what_its_endpoint_declares() {
        // Each request, written `METHOD path`, with the need it has.
        let needs = [
            ("GET /admin/v1/servers", Need::Read),
            ("HEAD /admin/v1/servers", Need::Read),
            ("POST /admin/v1/servers", Need::Manage),
            ("POST /admin/v1/operators", Need::Admin),
            ("GET /admin/v1/operators", Need::Admin),
            ("POST /admin/v1/operators/x/rotate", Need::Admin),
            ("POST /admin/v1/mail/sync", Need::Mail),
            ("POST /admin/v1/reminders/claim", Need::Mail),
            ("POST /admin/v1/reminders/x/handed", Need::Mail),
            ("POST /admin/v1/portal-links/claim", Need::Mail),
            ("POST /admin/v1/portal-links/x/handed", Need::Mail),
            ("POST /admin/v1/key-clear-requests", Need::Mail),
            ("GET /admin/v1/key-clear-requests/unnotified", Need::Mail),
            ("GET /admin/v1/key-clear-requests/x", Need::Read),
            ("POST /admin/v1/key-clear-requests/x/notified", Need::Mail),
            ("POST /admin/v1/key-clear-requests/x/approve", Need::Manage),
            ("PATCH /admin/v1/servers/x/licenses/y", Need::Manage),
            ("GET /admin/v1/audit/verify", Need::Read),
            ("GET /admin/v1/audit/head", Need::Read),
            ("GET /admin/v1/whoami", Need::Own),
            ("GET /admin/v1/openapi.json", Need::Public),
            ("POST /admin/v1/sessions", Need::SignIn),
            ("DELETE /admin/v1/sessions/current", Need::Own),
            // No endpoint: any caller with a token gets the 404.
            ("POST /admin/v1/openapi.json", Need::Own),
            ("GET /admin/v1/servers/", Need::Own),
            ("GET /admin/v1/servers//usage", Need::Own),
            ("GET /admin/v1/nothing", Need::Own),
        ];
        for (request, need) in needs {
            let (method, path) = request.split_once(' ').unwrap();
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(Need::of(ENDPOINTS, &method, path), need, "{request}");
        }
    }
}
