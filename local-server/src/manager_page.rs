//! The web manager page (`GET /` and its assets under `/manager/assets/`) and the
//! guard in front of the manager API (`/manager/v1/…`).
//!
//! The page is static HTML, CSS and JavaScript compiled into the binary; the script
//! does everything through the manager API. Both answer only on this machine, and the
//! guard keeps other web sites from using them through the administrator's browser:
//!
//! - the peer must be a loopback address (the API acts on the installation);
//! - the `Host` header must name a loopback host (`localhost`, `127.x.x.x`, `[::1]`),
//!   so that a site that re-points its DNS name at 127.0.0.1 ("DNS rebinding") gets
//!   nothing;
//! - an `Origin` header, when sent, must be this page's own origin;
//! - every manager API call carries `X-Solme-Manager: 1`. A plain cross-site form
//!   cannot set a header, and a cross-site script that tries needs a CORS preflight,
//!   which this server never grants.
//!
//! The page's answers carry a Content-Security-Policy that allows only this server's
//! own scripts and styles (nothing inline), and forbid framing.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use shared_proto::page_headers::PAGE_HEADERS;
use shared_proto::ErrorCode;

use crate::error::Error;

/// The header every manager API call must carry, with the value [`MANAGER_HEADER_VALUE`].
pub const MANAGER_HEADER: &str = "X-Solme-Manager";
pub const MANAGER_HEADER_VALUE: &str = "1";

const PAGE_HTML: &str = include_str!("../assets/manager.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const FAVICON_SVG: &str = include_str!("../assets/favicon.svg");

/// The page and its assets.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(page))
        .route("/manager/assets/app.js", web::get().to(app_js))
        .route("/manager/assets/app.css", web::get().to(app_css))
        // The page links the icon; browsers that ask for /favicon.ico anyway get it
        // too rather than a 404 in their console.
        .route("/manager/assets/favicon.svg", web::get().to(favicon))
        .route("/favicon.ico", web::get().to(favicon));
}

async fn page(req: HttpRequest) -> Result<HttpResponse, Error> {
    require_local(&req)?;
    Ok(asset("text/html; charset=utf-8", PAGE_HTML))
}

async fn app_js(req: HttpRequest) -> Result<HttpResponse, Error> {
    require_local(&req)?;
    Ok(asset("text/javascript; charset=utf-8", APP_JS))
}

async fn app_css(req: HttpRequest) -> Result<HttpResponse, Error> {
    require_local(&req)?;
    Ok(asset("text/css; charset=utf-8", APP_CSS))
}

async fn favicon(req: HttpRequest) -> Result<HttpResponse, Error> {
    require_local(&req)?;
    Ok(asset("image/svg+xml", FAVICON_SVG))
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.content_type(content_type);
    for page_header in PAGE_HEADERS {
        response.insert_header(page_header);
    }
    response
        // The assets change only with the binary; a stale cached script after an
        // upgrade would talk to an API it does not know.
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

/// Middleware on `/manager/v1`: local, same-origin, and carrying the manager header.
///
/// A refusal is answered here (not passed up as an error) so that the outer
/// middleware still adds its headers to it.
pub async fn api_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Err(refusal) = check_api_call(req.request()) {
        let response = refusal.error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

fn check_api_call(req: &HttpRequest) -> Result<(), Error> {
    require_local(req)?;
    let marked = req
        .headers()
        .get(MANAGER_HEADER)
        .is_some_and(|v| v.as_bytes() == MANAGER_HEADER_VALUE.as_bytes());
    if marked {
        Ok(())
    } else {
        Err(Error::refused(
            ErrorCode::Unauthorized,
            format!(
                "manager API calls must carry the header `{MANAGER_HEADER}: {MANAGER_HEADER_VALUE}` \
                 (it keeps other web sites from using the manager through your browser)"
            ),
        ))
    }
}

/// Loopback peer, loopback `Host`, and no foreign `Origin`.
pub fn require_local(req: &HttpRequest) -> Result<(), Error> {
    let refused = |message: String| Err(Error::refused(ErrorCode::Unauthorized, message));
    match req.peer_addr() {
        Some(addr) if addr.ip().is_loopback() => {}
        _ => {
            return refused(
                "the manager answers only on this machine: open it in a browser on the \
                 license server's own computer (http://127.0.0.1:PORT/)"
                    .into(),
            )
        }
    }
    let Some(host) = request_host(req) else {
        return refused("the request names no host".into());
    };
    if !is_loopback_host(host) {
        return refused(format!(
            "the manager answers only to http://127.0.0.1:PORT/ or http://localhost:PORT/, \
             not to {host:?}"
        ));
    }
    if let Some(origin) = header_str(req.headers(), header::ORIGIN) {
        let own = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host));
        if !own {
            return refused(format!(
                "a request from another web page ({origin}) cannot use the manager"
            ));
        }
    }
    Ok(())
}

/// The host (with port) the client asked for: the URI's authority (HTTP/2), else `Host`.
fn request_host(req: &HttpRequest) -> Option<&str> {
    match req.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => header_str(req.headers(), header::HOST),
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `localhost`, `*.localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback_host(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        // "[::1]:7070" or "[::1]"
        match rest.split_once(']') {
            Some((inner, after)) if after.is_empty() || after.starts_with(':') => inner,
            _ => return false,
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            Some(_) => return false,
            None => host_port,
        }
    };
    let host = host.to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts_are_told_apart() {
        for ok in [
            "127.0.0.1:7070",
            "127.0.0.1",
            "127.1.2.3:80",
            "localhost:7070",
            "LOCALHOST",
            "manager.localhost:1",
            "[::1]:7070",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:7070",
            "127.0.0.1.evil.example",
            "localhost.evil.example:7070",
            "10.0.0.1:7070",
            "[::2]:7070",
            "[::1]x",
            "127.0.0.1:70x",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
