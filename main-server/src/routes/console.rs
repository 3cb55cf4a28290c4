//! The web operator console on the admin listener: one static page (`GET /`) with its
//! script and style sheet, all embedded in the binary. The page holds no data and needs
//! no token; it calls the admin API (`/admin/v1/…`) with the bearer token the operator
//! pastes into it, so the API stays exactly as protected as before (a cross-site form
//! cannot add an `Authorization` header).
//!
//! Every response carries a strict Content-Security-Policy (scripts, styles and fetches
//! from this origin only, no inline script, no framing), which is why the script and
//! the style sheet are separate assets.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};
use shared_proto::page_headers::PAGE_HEADERS;

use super::not_found;

const PAGE: &str = include_str!("../../assets/console.html");
const SCRIPT: &str = include_str!("../../assets/console.js");
const STYLE: &str = include_str!("../../assets/console.css");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .route(web::get().to(page))
            .route(web::head().to(page))
            .default_service(web::to(not_found)),
    )
    .service(
        web::resource("/console/console.js")
            .route(web::get().to(script))
            .route(web::head().to(script))
            .default_service(web::to(not_found)),
    )
    .service(
        web::resource("/console/console.css")
            .route(web::get().to(style))
            .route(web::head().to(style))
            .default_service(web::to(not_found)),
    );
}

/// A response with the console's security headers. `no-cache` makes the browser
/// revalidate, so a new binary's assets are picked up at once.
fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)));
    for page_header in PAGE_HEADERS {
        response.insert_header(page_header);
    }
    response
        .insert_header((
            header::CROSS_ORIGIN_OPENER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .insert_header((
            header::CROSS_ORIGIN_RESOURCE_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .body(body)
}

async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}
