//! The OpenAPI 3 document of the control API, generated from the code: each handler's
//! `#[utoipa::path]` and the `ToSchema` derives of the types it reads and answers. The
//! paths come from the control API's route table (`control_routes!` in
//! [`super::control_api`]), so a route cannot be served without being described.
//!
//! The document is served at `GET /v1/openapi.json` without a token (it is a public
//! description of the API, the same as the committed copy, and holds nothing of the
//! simulation), printed by `solme-sim openapi`, and committed as
//! `docs/control-api.openapi.json`; a test fails when that copy differs from what the
//! code generates.
//!
//! To document a new endpoint: annotate its handler with `#[utoipa::path(verb, path =
//! "/v1/…", tag, operation_id, request_body, params, responses)]` naming each error
//! status it answers itself (no body: [`CommonAnswers`] attaches `{code, message}`),
//! derive `ToSchema` on its types, add its line to `control_routes!`, then regenerate
//! the copy: `cargo run -p tests --bin solme-sim -- openapi > docs/control-api.openapi.json`.

use std::borrow::Cow;

use actix_web::HttpResponse;
use serde_json::Value;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::clock::ClockMove;
use super::control_api::{ApiError, ControlApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "solme-sim control API",
        description = "Drives a running Solme licensing simulation: its one simulated clock, \
                       its programs' verbs, faults on demand, a licensed program's calls and a \
                       customer's mail, and the event log. HTTP/JSON on 127.0.0.1; the URL is in \
                       `DIR/control.json`, the bearer token in `DIR/control-token` (mode 0600). \
                       A refused request changes nothing.",
        license(name = "Apache-2.0")
    ),
    components(schemas(super::control_api::ErrorBody)),
    tags(
        (name = "simulation", description = "The simulation itself: its programs, clock and verbs."),
        (name = "faults", description = "Faults switched on and off while everything runs."),
        (name = "world", description = "The world around the servers: licensed programs and customers' mail."),
        (name = "events", description = "What the simulation did and saw."),
        (name = "document", description = "This description."),
    )
)]
struct ApiDoc;

/// The whole document: the operations of the route table, then the bearer scheme and
/// the answers every operation can give.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.merge(ControlApi::openapi());
    CommonAnswers.modify(&mut document);
    document
}

/// The document as served, printed and committed: pretty JSON (its maps are sorted, so
/// the text changes only when the API does), ending with a newline.
pub fn document_json() -> anyhow::Result<String> {
    let mut json = document().to_pretty_json()?;
    json.push('\n');
    Ok(json)
}

/// `GET /v1/openapi.json`: no token, the one endpoint without it.
#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "document", operation_id = "openapi",
    summary = "This OpenAPI document; the one endpoint that needs no token.",
    security(()),
    responses((status = 200, description = "This OpenAPI document (no token needed: it describes the API and holds nothing of the simulation).", body = Object))
)]
pub(super) async fn document_endpoint() -> Result<HttpResponse, ApiError> {
    let json = document_json().map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(json))
}

/// Name of the bearer-token security scheme.
const BEARER: &str = "bearer";

/// Adds the bearer scheme, requires it of every operation that does not say otherwise
/// (with its 401), adds 500 to every operation, and gives every error answer the
/// `{code, message}` body.
struct CommonAnswers;

impl Modify for CommonAnswers {
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
                            "The token in `DIR/control-token`: `Authorization: Bearer <token>`.",
                        ))
                        .build(),
                ),
            );
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let mut common = vec![(
                    "500",
                    "`INTERNAL`: the simulation failed to do it; its output says why.",
                )];
                if operation.security.is_none() {
                    operation.security =
                        Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
                    common.push((
                        "401",
                        "`UNAUTHORIZED`: no `Authorization: Bearer` header, or not the token.",
                    ));
                }
                let responses = &mut operation.responses.responses;
                for (status, description) in common {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::T(Response::new(description)));
                }
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        let error = status.starts_with('4') || status.starts_with('5');
                        if error && response.content.is_empty() {
                            *response = ResponseBuilder::new()
                                .description(response.description.clone())
                                .content(
                                    "application/json",
                                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                                )
                                .build();
                        }
                    }
                }
            }
        }
    }
}

/// `POST /v1/clock`'s body is read by hand ([`ClockMove::from_json`]): an object with
/// exactly one of its three keys.
impl utoipa::PartialSchema for ClockMove {
    fn schema() -> RefOr<Schema> {
        let one = |key: &str, description: &str, example: &str| {
            ObjectBuilder::new()
                .property(
                    key,
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some(description))
                        .examples([Value::from(example)]),
                )
                .required(key)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        OneOfBuilder::new()
            .description(Some("One move of the simulated clock."))
            .item(one(
                "advance",
                "Forward by a length without a sign: days, hours, minutes (`340d`, `12h`, `1d12h`).",
                "340d",
            ))
            .item(one(
                "set",
                "To a time: RFC 3339, the same without seconds, or a date (midnight UTC).",
                "2027-11-10T09:00:00Z",
            ))
            .item(one(
                "back",
                "Backward by a length, e.g. to test clock-rollback detection.",
                "2d",
            ))
            .into()
    }
}

impl ToSchema for ClockMove {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ClockMove")
    }
}

/// A local server's answer to a licensed program's call, as it was given.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "a schema only: the handler writes this shape itself"
)]
pub struct ClientAnswer {
    /// The local server's HTTP status; 0 when it gave no answer (down, killed, refusing
    /// connections), then `body` is `{"code": "UNREACHABLE", "message"}`.
    status: u16,
    /// The local server's JSON body as it was given (null when empty, a string when
    /// not JSON).
    body: Value,
}

/// A mail the gateway's SMTP took.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "a schema only: the handler writes this shape itself"
)]
pub struct MailAccepted {
    /// The mail's Message-ID, without angle brackets.
    message_id: String,
    /// Where it went: licensing@.
    to: String,
    /// What a mail fault on the way did to it (`mail-lost`, …), when one is on.
    fault: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;

    use super::*;
    use crate::sim::control_api::ROUTES;

    /// Each route of the table is in the document under the verb and path it is
    /// registered with, and the document has no operation that is not served.
    #[test]
    fn every_registered_route_is_documented_as_registered() {
        let document = serde_json::to_value(document()).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for verb in item.as_object().unwrap().keys() {
                documented.insert((verb.clone(), path.clone()));
            }
        }
        let registered: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(verb, path)| (verb.to_string(), path.to_string()))
            .collect();
        assert_eq!(
            registered.len(),
            ROUTES.len(),
            "a route is registered twice"
        );
        assert_eq!(registered, documented);
        // Every operation but the document itself needs the token.
        for (verb, path) in &documented {
            let security = &document["paths"][path][verb]["security"];
            if path == "/v1/openapi.json" {
                assert_eq!(security, &serde_json::json!([{}]), "{verb} {path}");
            } else {
                assert_eq!(
                    security,
                    &serde_json::json!([{BEARER: []}]),
                    "{verb} {path}"
                );
                assert!(
                    document["paths"][path][verb]["responses"]["401"].is_object(),
                    "{verb} {path}"
                );
            }
        }
    }
}
