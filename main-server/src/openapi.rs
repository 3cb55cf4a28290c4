//! The OpenAPI 3 document of the sync and admin APIs, generated from the code: the
//! handlers' `#[utoipa::path]` annotations and the wire types' `ToSchema` derives
//! (shared-proto's `openapi` feature). It is served at `GET /admin/v1/openapi.json`
//! (no token needed), printed by `main-server openapi`, and committed as
//! `docs/openapi.json`; a test fails when that copy differs from the generated one.
//!
//! To document a new endpoint:
//! 1. derive the schema of each new wire type where it is declared in shared-proto:
//!    `#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]` (a type with a
//!    hand-written serde form, like the `text_enum!` words, gets its schema in
//!    `shared_proto::openapi` instead);
//! 2. annotate the handler with `#[utoipa::path(post, path = "/admin/v1/…", tag = "…",
//!    params(…), request_body = …, responses(…))]`: its success answers with their
//!    bodies, and each error status it answers itself with a description saying when
//!    (`(status = 404, description = "`NOT_FOUND`: no such customer.")`, no body: the
//!    `{code, message}` body is attached by [`ErrorAnswers`]); an admin handler is in
//!    the document once it is in the admin API's endpoint list (`routes/admin/mod.rs`),
//!    a sync handler once it is in `paths(…)` below;
//! 3. regenerate the committed copy: `cargo run -p main-server -- openapi > docs/openapi.json`.
//!
//! [`ErrorAnswers`] also gives every admin operation the bearer-token requirement
//! (unless it declares its own `security`, as the document itself does) and the
//! answers the token check and the error mapping can give anywhere (401, 403, 429,
//! 500, 503); the sync operations get 500 and 503.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::routes::admin::AdminApi;
use crate::routes::{portal, sync_api};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Solme main server",
        description = "The sync API local servers call over HTTPS (`/api/v1/…`) and the operators' \
                       admin API (`/admin/v1/…`, bearer token). See docs/API.md for the contract."
    ),
    paths(
        sync_api::sync,
        sync_api::time,
        sync_api::health,
        portal::home,
        portal::request_link,
        portal::open_link,
        portal::use_link,
        portal::sign_out,
        portal::upload_sync,
        portal::upload_receipt,
        portal::show_server,
        portal::request_key_clear,
    ),
    components(schemas(shared_proto::ApiError))
)]
struct ApiDoc;

/// The whole document: the sync API's paths, the admin API's (from its endpoint list),
/// then the common answers added to every operation.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.merge(AdminApi::openapi());
    ErrorAnswers.modify(&mut document);
    document
}

/// The document as served and committed: pretty-printed JSON (every map sorted by
/// key, so the text only changes when the API does), ending with a newline.
pub fn document_json() -> anyhow::Result<String> {
    let mut json = document().to_pretty_json()?;
    json.push('\n');
    Ok(json)
}

/// Name of the bearer-token security scheme.
const BEARER: &str = "bearer";

/// Answers the admin API's token check can give to any request.
const TOKEN_CHECK: [(u16, &str); 3] = [
    (
        401,
        "`UNAUTHORIZED`: no token, or one that is not valid (unknown, rotated away or revoked).",
    ),
    (403, "`FORBIDDEN`: the token's role may not do this."),
    (
        429,
        "`RATE_LIMITED`: too many refused tokens from this address within a minute.",
    ),
];

/// Answers any operation can give: the server's own failures.
const SERVER_FAILURES: [(u16, &str); 2] = [
    (
        500,
        "`INTERNAL`: a failure of the server itself; the cause is in its log.",
    ),
    (
        503,
        "`UNAVAILABLE`: a temporary failure (the database busy or full); try again after \
         `Retry-After` seconds.",
    ),
];

/// Adds the security requirement and the common error answers, and gives every
/// error answer the `{code, message}` body (see the module comment).
struct ErrorAnswers;

impl Modify for ErrorAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                BEARER,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "An operator account's token: `Authorization: Bearer <token>`.",
                        ))
                        .build(),
                ),
            );
        for (path, item) in openapi.paths.paths.iter_mut() {
            // The portal's pages answer every status as a page of their own (HTML),
            // documented where they are declared.
            if path.starts_with("/portal/") {
                continue;
            }
            let admin = path.starts_with("/admin/");
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let mut common = SERVER_FAILURES.to_vec();
                if admin && operation.security.is_none() {
                    operation.security =
                        Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
                    common.extend(TOKEN_CHECK);
                }
                let responses = &mut operation.responses.responses;
                for (status, description) in common {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::T(Response::new(description)));
                }
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        if is_error_status(status) && response.content.is_empty() {
                            *response = with_error_body(response, status == "503");
                        }
                    }
                }
            }
        }
    }
}

fn is_error_status(status: &str) -> bool {
    status.starts_with('4') || status.starts_with('5')
}

/// `response` with the `{code, message}` JSON body (and `Retry-After` for 503).
fn with_error_body(response: &Response, retry_after: bool) -> Response {
    let mut builder = ResponseBuilder::new()
        .description(response.description.clone())
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ApiError"))),
        );
    if retry_after {
        builder = builder.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before trying again."))
                .build(),
        );
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::operators::MAX_OPERATOR_NAME;
    use crate::store::{MAX_FEATURE, MAX_NAME, MAX_REASON, MAX_SEATS};

    /// The bounds the document states for request fields are the ones the server
    /// enforces (they are written in shared-proto, the checks here).
    #[test]
    fn documented_bounds_are_the_enforced_ones() {
        let document = serde_json::to_value(document()).unwrap_or_default();
        let field = |schema: &str, name: &str| {
            document["components"]["schemas"][schema]["properties"][name].clone()
        };
        assert_eq!(field("NewCustomer", "name")["maxLength"], MAX_NAME);
        assert_eq!(field("NewLicense", "feature")["maxLength"], MAX_FEATURE);
        assert_eq!(field("NewLicense", "seats")["maximum"], MAX_SEATS);
        assert_eq!(field("LicenseChange", "seats")["maximum"], MAX_SEATS);
        assert_eq!(field("KeyClear", "reason")["maxLength"], MAX_REASON);
        assert_eq!(
            field("NewOperator", "name")["pattern"],
            format!("^[A-Za-z0-9._@-]{{1,{MAX_OPERATOR_NAME}}}$")
        );
    }

    /// The committed copy is what users and tools read without running the server.
    #[test]
    fn the_committed_document_is_the_generated_one() {
        let committed = include_str!("../../docs/openapi.json");
        let generated = document_json().unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json differs from the document the code generates; regenerate it \
             with `cargo run -p main-server -- openapi > docs/openapi.json` and commit it"
        );
    }
}
