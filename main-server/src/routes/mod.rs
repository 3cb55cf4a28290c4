//! HTTP routes: the public sync API and the operators' admin API, plus the shared
//! extractor configuration that turns bad input into `MALFORMED` JSON errors.

pub mod admin;
pub mod console;
pub mod portal;
pub mod sync_api;

use actix_web::{web, HttpResponse};

use crate::db::{DbConnection, Pool};
use crate::error::ApiError;

/// Runs blocking database work on a pooled connection, off the async workers.
pub(crate) async fn with_conn<T, F>(pool: &Pool, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
{
    let pool = pool.clone();
    web::block(move || {
        let mut conn = pool.get()?;
        work(&mut conn)
    })
    .await?
}

/// JSON, query and path extractors answer bad input with `MALFORMED` (or `NOT_FOUND`
/// for a path that is not an id), in the contract's error shape.
pub(crate) fn configure_extractors(cfg: &mut web::ServiceConfig, json_limit: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(json_limit)
            .error_handler(|err, _| ApiError::malformed(format!("bad JSON body: {err}")).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|err, _| ApiError::malformed(format!("bad query: {err}")).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _| ApiError::not_found(format!("no such resource: {err}")).into()),
    );
}

/// Unknown paths answer in the contract's error shape too.
pub(crate) async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("no such endpoint"))
}
