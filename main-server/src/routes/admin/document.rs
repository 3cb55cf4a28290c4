//! The API document itself, `GET /admin/v1/openapi.json`: the one endpoint that needs
//! no token.

use actix_web::HttpResponse;

use crate::auth::Public;
use crate::error::ApiError;

#[utoipa::path(
    get, path = "/admin/v1/openapi.json", tag = "document",
    security(()),
    responses((status = 200, description = "This OpenAPI document (no token needed: it is the one published with the source).", body = Object))
)]
pub(super) async fn openapi_document(_: Public) -> Result<HttpResponse, ApiError> {
    let json = crate::openapi::document_json().map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(json))
}
