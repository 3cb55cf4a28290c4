//! The HTTP routes of `serve`: the client API (`/api/v1/…`, [`client_api`]), the manager
//! API (`/manager/v1/…`, [`manager_api`]) and the web manager page (`/`, both loopback
//! only, see [`crate::manager_page`]), and the extractor configuration that turns bad
//! input into `MALFORMED` JSON errors.

pub mod client_api;
pub mod manager_api;
pub mod pair_api;

use actix_web::web;
use shared_proto::ErrorCode;

use crate::error::Error;
use crate::import;
use crate::manager_page;

/// Largest JSON body accepted on the client API.
const MAX_JSON_BYTES: usize = 4 * 1024;

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_JSON_BYTES)
        .error_handler(|err, _req| {
            // serde's own words name the field and what it accepts; the wrapper's
            // "Json deserialize error" prefix is the library's, not the customer's.
            let why = match &err {
                actix_web::error::JsonPayloadError::Deserialize(e) => e.to_string(),
                other => other.to_string(),
            };
            Error::refused(
                ErrorCode::Malformed,
                format!("the request body is not valid: {why}"),
            )
            .into()
        })
}

/// All routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .wrap(actix_web::middleware::from_fn(client_api::client_api_guard))
            .route("/leases", web::post().to(client_api::check_out))
            .route(
                "/leases/{id}/heartbeat",
                web::post().to(client_api::heartbeat),
            )
            .route("/leases/{id}", web::delete().to(client_api::check_in))
            .route("/public-key", web::get().to(client_api::public_key))
            .route("/queue/{ticket}", web::get().to(client_api::poll_queue))
            .route("/features", web::get().to(client_api::features))
            .route("/status", web::get().to(client_api::client_status)),
    )
    .service(
        web::scope("/manager/v1")
            .wrap(actix_web::middleware::from_fn(manager_page::api_guard))
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("Cache-Control", "no-store")),
            )
            .route("/status", web::get().to(manager_api::manager_status))
            .route("/usage", web::get().to(manager_api::manager_usage))
            .route("/usage.svg", web::get().to(manager_api::manager_usage_svg))
            .route("/report", web::get().to(manager_api::manager_report))
            .route(
                "/report.csv",
                web::get().to(manager_api::manager_report_csv),
            )
            .route("/leases", web::get().to(manager_api::manager_leases))
            .route(
                "/leases/{id}/take-back",
                web::post().to(manager_api::manager_take_back),
            )
            .route("/promote", web::post().to(manager_api::manager_promote))
            .route("/sync", web::post().to(manager_api::manager_sync))
            .route("/auto-sync", web::put().to(manager_api::manager_auto_sync))
            .route("/sync-data", web::post().to(manager_api::manager_export))
            .service(
                web::resource("/license-file")
                    .app_data(web::PayloadConfig::new(
                        import::MAX_LICENSE_FILE_BYTES as usize,
                    ))
                    .route(web::post().to(manager_api::manager_import)),
            )
            .service(
                web::resource("/license-file/preview")
                    .app_data(web::PayloadConfig::new(
                        import::MAX_LICENSE_FILE_BYTES as usize,
                    ))
                    .route(web::post().to(manager_api::manager_import_preview)),
            )
            // POST: it runs a real synchronization.
            .route("/diagnose", web::post().to(manager_api::manager_diagnose))
            // POST: its diagnosis synchronizes too.
            .route(
                "/support-bundle",
                web::post().to(manager_api::manager_support_bundle),
            ),
    )
    .service(
        web::scope("/pair/v1")
            .wrap(actix_web::middleware::from_fn(client_api::client_api_guard))
            .app_data(
                web::JsonConfig::default()
                    .limit(crate::pair::messages::MAX_PAIR_BODY)
                    .error_handler(|err, _req| {
                        Error::refused(
                            ErrorCode::Malformed,
                            format!("this is not a message from a paired license server: {err}"),
                        )
                        .into()
                    }),
            )
            .route("/join", web::post().to(pair_api::join))
            .route("/replicate", web::post().to(pair_api::replicate))
            .route("/hand-back", web::post().to(pair_api::hand_back)),
    )
    .configure(manager_page::routes);
}
