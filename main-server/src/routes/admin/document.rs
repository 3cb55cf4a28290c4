//! The API document itself, `GET /admin/v1/openapi.json`: the one endpoint that needs
//! no token.

use actix_web::{web, HttpResponse};

use crate::auth::Public;
use crate::error::ApiError;

/// The OpenAPI document as served, made once at start-up from the same declarations as
/// the routes (the start-up builds it, so this file needs no part of the document code).
pub struct PublishedDocument(pub String);

#[utoipa::path(
    get, path = "/admin/v1/openapi.json", tag = "document",
    security(()),
    responses((status = 200, description = "This OpenAPI document (no token needed: it is the one published with the source).", body = Object))
)]
pub(super) async fn openapi_document(
    _: Public,
    document: web::Data<PublishedDocument>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone()))
}
