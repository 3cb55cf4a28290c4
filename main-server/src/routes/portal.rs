//! The customer portal at `/portal/` on the public HTTPS sync listeners: a registered
//! contact signs in with a link mailed to them, sees their customer's license server
//! ids, syncs one by uploading its sync data (channel `portal`) and asks for a key-pair
//! clearing as an authenticated sender. Plain server-made pages and forms: no script.
//!
//! Security, decided here once:
//! - The session is the cookie [`COOKIE`] (`__Host-`: HTTPS only, this host only, path
//!   `/`), `HttpOnly; Secure; SameSite=Strict`, 8 hours; only its SHA-256 is stored.
//! - Cross-site requests: every POST must carry an `Origin` naming this very origin
//!   (`https://` and the request's `Host`), or, from a browser that sends no `Origin`
//!   or `Origin: null` (Chromium's, for a form on a page with `Referrer-Policy:
//!   no-referrer`), `Sec-Fetch-Site: same-origin`; anything else is refused with 403 before any work.
//!   Together with `SameSite=Strict` (a cross-site POST carries no session) this needs
//!   no CSRF token: both would have to fail. The sign-in and link forms are checked
//!   too (no one can sign a victim in to an attacker's session).
//! - Opening a mailed link (GET) changes nothing: it shows a button that posts the
//!   token. Mail scanners that fetch links do not use them up, and the token leaves the
//!   address bar at once (the next page is `/portal/`; `Referrer-Policy: no-referrer`).
//! - The console's security headers, with `form-action 'self'` instead of `'none'`
//!   (these pages post forms to their own origin), and `Cache-Control: no-store`.
//! - The answer to a link request is the same whether or not the address is known.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use quick_xml::escape::escape;
use serde::Deserialize;
use shared_proto::admin_api::{KeyClearRequest, KeyClearStatus, Server, SyncChannel, SyncUsage};
use shared_proto::page_headers::PAGE_HEADERS;
use shared_proto::receipt::Installation;
use uuid::Uuid;

use super::with_conn;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::portal::{self, Contact, LinkRefusal, SentMail};
use crate::store::receipts::{self, Source};
use crate::sync::MAX_SYNC_DATA;

/// The session cookie's name. The `__Host-` prefix makes browsers refuse it unless it
/// is `Secure`, has `Path=/` and no `Domain`.
pub const COOKIE: &str = "__Host-solme-portal";
/// The console's policy, but forms may post to this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";
/// Largest upload body: the sync data and a multipart form's framing.
const MAX_UPLOAD: usize = MAX_SYNC_DATA + 8 * 1024;
/// Largest form body (an address, a token, a reason).
const MAX_FORM: usize = 8 * 1024;

const STYLE: &str = include_str!("../../assets/portal.css");

type State = web::Data<AppState>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/portal")
            .app_data(
                web::FormConfig::default()
                    .limit(MAX_FORM)
                    .error_handler(|err, _| ApiError::malformed(format!("bad form: {err}")).into()),
            )
            .route("/", web::get().to(home))
            .route("/portal.css", web::get().to(style))
            .route("/sign-in", web::post().to(request_link))
            .route("/link", web::get().to(open_link))
            .route("/link", web::post().to(use_link))
            .route("/sign-out", web::post().to(sign_out))
            .route("/sync", web::post().to(upload_sync))
            .route("/receipt", web::post().to(upload_receipt))
            .route("/servers/{id}", web::get().to(show_server))
            .route("/servers/{id}/key-clear", web::post().to(request_key_clear)),
    )
    .route(
        "/portal",
        web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header((header::LOCATION, "/portal/"))
                .finish()
        }),
    );
}

// ---- the page frame ----------------------------------------------------------------

fn secured(mut response: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    for (name, value) in PAGE_HEADERS {
        if name != "Content-Security-Policy" {
            response.insert_header((name, value));
        }
    }
    response
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((
            header::CROSS_ORIGIN_OPENER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .insert_header((
            header::CROSS_ORIGIN_RESOURCE_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    response
}

/// A whole page: the frame (title, who is signed in, sign-out) around `body`.
fn page(status: StatusCode, title: &str, contact: Option<&Contact>, body: &str) -> HttpResponse {
    let who = contact.map_or_else(String::new, |c| {
        format!(
            "<div class=\"who\">{} · {} <form method=\"post\" action=\"/portal/sign-out\">\
             <button type=\"submit\">Sign out</button></form></div>",
            escape(&c.email),
            escape(&c.customer_name)
        )
    });
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Solme customer portal</title>\
         <link rel=\"stylesheet\" href=\"/portal/portal.css\"></head><body>\
         <header><a href=\"/portal/\" class=\"brand\">Solme customer portal</a>{who}</header>\
         <main><h1>{title}</h1>\n{body}\n</main></body></html>\n",
        title = escape(title)
    );
    secured(HttpResponse::build(status))
        .content_type("text/html; charset=utf-8")
        .body(html)
}

/// The page of a refusal or failure: the refusal's own words, or (for an unexpected
/// failure, logged here once) a plain apology.
fn error_page(error: &ApiError, contact: Option<&Contact>) -> HttpResponse {
    let message = match error {
        ApiError::Refused { message, .. } | ApiError::SenderNotRegistered(message) => {
            message.clone()
        }
        ApiError::Unavailable(cause) => {
            log::warn!("portal: temporary failure: {cause:#}");
            "The service is busy; try again in a few seconds.".to_owned()
        }
        ApiError::Internal(cause) => {
            log::error!("portal: internal error: {cause:#}");
            "Something went wrong on our side; try again later.".to_owned()
        }
    };
    let status = actix_web::ResponseError::status_code(error);
    let back = if contact.is_some() {
        "<p><a href=\"/portal/\">Back to your license servers</a></p>"
    } else {
        "<p><a href=\"/portal/\">Back to sign-in</a></p>"
    };
    page(
        status,
        "That did not work",
        contact,
        &format!("<p class=\"error\">{}</p>{back}", escape(&message)),
    )
}

fn see_other(to: &str) -> HttpResponse {
    secured(HttpResponse::SeeOther())
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

async fn style() -> HttpResponse {
    let mut response = secured(HttpResponse::Ok());
    response
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .content_type("text/css; charset=utf-8")
        .body(STYLE)
}

// ---- who is asking -----------------------------------------------------------------

/// The session secret from the `Cookie` header, if any.
fn session_secret(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

/// The signed-in contact, if the request carries a live session.
async fn contact(req: &HttpRequest, state: &State) -> Result<Option<Contact>, ApiError> {
    let Some(secret) = session_secret(req) else {
        return Ok(None);
    };
    let now = state.clock.now();
    with_conn(&state.db.read, move |conn| {
        portal::authenticate(conn, now, &secret)
    })
    .await
}

fn peer(req: &HttpRequest) -> String {
    req.peer_addr()
        .map_or_else(|| "-".to_owned(), |addr| addr.ip().to_string())
}

/// Whether a state-changing request comes from this origin's own pages (see the
/// module's overview): `Origin` equal to `https://HOST`, or no `Origin` and
/// `Sec-Fetch-Site: same-origin`.
fn same_origin(req: &HttpRequest) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let Some(host) = header("host") else {
        return false;
    };
    match header("origin") {
        // `Origin: null` is what a browser sends for a form of a page served with
        // `Referrer-Policy: no-referrer` (ours): then its own `Sec-Fetch-Site`, which no
        // page can set, decides (a sandboxed cross-site frame says `cross-site`).
        Some(origin) if origin != "null" => origin.eq_ignore_ascii_case(&format!("https://{host}")),
        _ => header("sec-fetch-site") == Some("same-origin"),
    }
}

fn cross_site_refusal() -> HttpResponse {
    log::info!("portal: a cross-site request was refused");
    page(
        StatusCode::FORBIDDEN,
        "Refused",
        None,
        "<p class=\"error\">This request did not come from the portal's own pages and was \
         refused. Open the portal and use its forms.</p>",
    )
}

/// The common start of every POST that needs a session: the origin check, then the
/// contact; or the page to answer instead.
async fn signed_in_post(req: &HttpRequest, state: &State) -> Result<Contact, HttpResponse> {
    if !same_origin(req) {
        return Err(cross_site_refusal());
    }
    match contact(req, state).await {
        Ok(Some(contact)) => Ok(contact),
        Ok(None) => Err(not_signed_in()),
        Err(e) => Err(error_page(&e, None)),
    }
}

fn not_signed_in() -> HttpResponse {
    page(
        StatusCode::UNAUTHORIZED,
        "Not signed in",
        None,
        "<p>Your session has ended. <a href=\"/portal/\">Sign in again</a>.</p>",
    )
}

// ---- sign-in -----------------------------------------------------------------------

const SIGN_IN_FORM: &str = "<p>Enter your email address as registered with Solme. We will \
     mail you a link that signs you in; it works once, for 15 minutes.</p>\
     <form method=\"post\" action=\"/portal/sign-in\" class=\"stack\">\
     <label>Email address <input type=\"email\" name=\"email\" required autocomplete=\"email\" \
     maxlength=\"254\"></label><button type=\"submit\">Mail me a sign-in link</button></form>";

#[utoipa::path(
    get, path = "/portal/", tag = "portal",
    responses((status = 200, description = "Signed in (the session cookie `__Host-solme-portal`): the customer's license server ids with their binding, last sync, validity and which license file each server holds, the upload forms, the key-clear requests and the reminders and notices mailed. Otherwise the sign-in form.", content_type = "text/html", body = String))
)]
async fn home(req: HttpRequest, state: State) -> HttpResponse {
    let contact = match contact(&req, &state).await {
        Ok(Some(contact)) => contact,
        Ok(None) => return page(StatusCode::OK, "Sign in", None, SIGN_IN_FORM),
        Err(e) => return error_page(&e, None),
    };
    let now = state.clock.now();
    let who = contact.clone();
    let read = with_conn(&state.db.read, move |conn| {
        let servers = portal::servers_of(conn, now, &who)?;
        let installed = servers
            .iter()
            .map(|s| receipts::installation(conn, s.server_id))
            .collect::<Result<Vec<_>, _>>()?;
        let requests = portal::key_clear_requests_of(conn, &who)?;
        let mails = portal::mails_of(conn, &who)?;
        Ok((servers, installed, requests, mails))
    })
    .await;
    let (servers, installed, requests, mails) = match read {
        Ok(read) => read,
        Err(e) => return error_page(&e, Some(&contact)),
    };
    let mut body = String::from(
        "<h2>Your license servers</h2><div class=\"scroll\"><table><thead><tr>\
         <th>License server id</th><th>Key pair</th><th>Last sync</th><th>Valid until</th>\
         <th>Licenses</th><th>License file</th></tr></thead><tbody>",
    );
    for (server, installation) in servers.iter().zip(&installed) {
        body.push_str(&format!(
            "<tr><td><a href=\"/portal/servers/{id}\"><code>{id}</code></a></td><td>{key}</td>\
             <td>{sync}</td><td>{valid}</td><td>{licenses}</td><td class=\"installed\">{file}</td></tr>",
            id = server.server_id,
            key = binding(server),
            sync = last_sync(server),
            valid = validity(server),
            licenses = server.licenses.len(),
            file = installed_words(installation),
        ));
    }
    if servers.is_empty() {
        body.push_str("<tr><td colspan=\"6\">No license server id yet.</td></tr>");
    }
    body.push_str("</tbody></table></div>");
    body.push_str(&upload_form());
    body.push_str(&receipt_form());
    body.push_str(&requests_table(&requests));
    body.push_str(&mails_table(&mails));
    page(StatusCode::OK, "License servers", Some(&contact), &body)
}

#[derive(Deserialize)]
struct LinkRequestForm {
    email: String,
}

#[utoipa::path(
    post, path = "/portal/sign-in", tag = "portal",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`email`: the contact's address."),
    responses(
        (status = 200, description = "The same page whether or not the address is registered; a registered one gets a sign-in link (15 minutes, once) mailed by the gateway.", content_type = "text/html", body = String),
        (status = 403, description = "Not posted from the portal's own page (`Origin`, `Sec-Fetch-Site`).", content_type = "text/html", body = String),
        (status = 429, description = "More than 3 requests for the address in 15 minutes, or 20 from the client address in an hour.", content_type = "text/html", body = String),
    )
)]
async fn request_link(
    req: HttpRequest,
    state: State,
    form: web::Form<LinkRequestForm>,
) -> HttpResponse {
    if !same_origin(&req) {
        return cross_site_refusal();
    }
    let (now, peer) = (state.clock.now(), peer(&req));
    let key = state.signing_key.clone();
    let email = form.into_inner().email;
    let recorded = with_conn(&state.db.write, move |conn| {
        portal::request_link(conn, &key, now, &email, &peer)
    })
    .await;
    match recorded {
        // The same words whether or not the address is registered.
        Ok(()) => page(
            StatusCode::OK,
            "Check your mail",
            None,
            "<p>If this address is registered with Solme, a sign-in link is on its way to \
             it. The link works once, for 15 minutes.</p>\
             <p>Nothing arrived? Check the address and your spam folder, then ask again.</p>",
        ),
        Err(e) => error_page(&e, None),
    }
}

#[derive(Deserialize)]
struct TokenForm {
    token: String,
}

/// The page a mailed link opens: one button that posts the token. Using the link is
/// the POST; fetching this page (a mail scanner does) changes nothing.
#[utoipa::path(
    get, path = "/portal/link", tag = "portal",
    params(("token" = String, Query, description = "The mailed link's single-use token.")),
    responses((status = 200, description = "One button posting the token; opening the link changes nothing.", content_type = "text/html", body = String))
)]
async fn open_link(query: web::Query<TokenForm>) -> HttpResponse {
    page(
        StatusCode::OK,
        "Sign in",
        None,
        &format!(
            "<form method=\"post\" action=\"/portal/link\" class=\"stack\">\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\
             <button type=\"submit\" id=\"sign-in\">Sign in to the customer portal</button></form>",
            escape(&query.token)
        ),
    )
}

#[utoipa::path(
    post, path = "/portal/link", tag = "portal",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`token`: the mailed link's token."),
    responses(
        (status = 303, description = "Signed in: `Set-Cookie: __Host-solme-portal=…; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=28800`, to `/portal/`. Audited `portal.sign_in`."),
        (status = 400, description = "The link was used, has expired, is unknown, or its address is no longer a contact.", content_type = "text/html", body = String),
        (status = 403, description = "Not posted from the portal's own page.", content_type = "text/html", body = String),
    )
)]
async fn use_link(req: HttpRequest, state: State, form: web::Form<TokenForm>) -> HttpResponse {
    if !same_origin(&req) {
        return cross_site_refusal();
    }
    let (now, peer) = (state.clock.now(), peer(&req));
    let token = form.into_inner().token;
    let used = with_conn(&state.db.write, move |conn| {
        portal::sign_in(conn, now, &token, &peer)
    })
    .await;
    let why = match used {
        Ok(Ok((secret, _))) => {
            let cookie = format!(
                "{COOKIE}={secret}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
                portal::SESSION_HOURS * 3600
            );
            return secured(HttpResponse::SeeOther())
                .insert_header((header::SET_COOKIE, cookie))
                .insert_header((header::LOCATION, "/portal/"))
                .finish();
        }
        Ok(Err(LinkRefusal::Used)) => {
            "This sign-in link was used already: each link signs in once."
        }
        Ok(Err(LinkRefusal::Expired)) => {
            "This sign-in link has expired: links work for 15 minutes."
        }
        Ok(Err(LinkRefusal::Unknown)) => "This is not a valid sign-in link.",
        Ok(Err(LinkRefusal::NotContact)) => {
            "This address is no longer a registered contact; ask Solme to register it again."
        }
        Err(e) => return error_page(&e, None),
    };
    page(
        StatusCode::BAD_REQUEST,
        "Sign-in link not valid",
        None,
        &format!("<p class=\"error\">{why}</p><p><a href=\"/portal/\">Ask for a new link</a></p>"),
    )
}

#[utoipa::path(
    post, path = "/portal/sign-out", tag = "portal",
    responses(
        (status = 303, description = "The session is ended (audited `portal.sign_out`) and the cookie cleared; to `/portal/`."),
        (status = 401, description = "No live session.", content_type = "text/html", body = String),
        (status = 403, description = "Not posted from the portal's own page.", content_type = "text/html", body = String),
    )
)]
async fn sign_out(req: HttpRequest, state: State) -> HttpResponse {
    let contact = match signed_in_post(&req, &state).await {
        Ok(contact) => contact,
        Err(page) => return page,
    };
    let now = state.clock.now();
    let who = contact.clone();
    if let Err(e) = with_conn(&state.db.write, move |conn| {
        portal::sign_out(conn, now, &who)
    })
    .await
    {
        return error_page(&e, Some(&contact));
    }
    let cleared = format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
    secured(HttpResponse::SeeOther())
        .insert_header((header::SET_COOKIE, cleared))
        .insert_header((header::LOCATION, "/portal/"))
        .finish()
}

// ---- one license server ------------------------------------------------------------

fn binding(server: &Server) -> String {
    match (&server.bound_fingerprint, server.bound_at) {
        (Some(fingerprint), Some(at)) => format!(
            "bound since {}<br><code class=\"fp\">{}</code>",
            day(at),
            escape(fingerprint)
        ),
        (Some(fingerprint), None) => {
            format!("bound<br><code class=\"fp\">{}</code>", escape(fingerprint))
        }
        _ => "not bound: the first sync binds its key pair".to_owned(),
    }
}

fn last_sync(server: &Server) -> String {
    match (server.last_sync_at, server.last_sync_channel) {
        (Some(at), Some(channel)) => format!("{} ({})", minute(at), channel_words(channel)),
        (Some(at), None) => minute(at),
        _ => "never".to_owned(),
    }
}

fn channel_words(channel: SyncChannel) -> &'static str {
    match channel {
        SyncChannel::Internet => "over the internet",
        SyncChannel::Email => "by email",
        SyncChannel::Portal => "uploaded in the portal",
    }
}

fn validity(server: &Server) -> String {
    match (server.valid_until, server.days_until_due) {
        (Some(until), Some(days)) if days >= 0 => {
            format!("{} ({days} days left)", day(until))
        }
        (Some(until), Some(days)) => format!(
            "<span class=\"error\">{} (ended {} days ago)</span>",
            day(until),
            -days
        ),
        _ => "not synchronized yet".to_owned(),
    }
}

fn day(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

fn minute(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn upload_form() -> String {
    "<h2>Synchronize by upload</h2><p>For a license server without internet access: export \
     its sync data (<code>local-server export-sync-data</code>), upload the file here, and \
     import the license file you get back (<code>local-server import-license-file</code>).</p>\
     <form method=\"post\" action=\"/portal/sync\" enctype=\"multipart/form-data\" class=\"stack\">\
     <label>Sync data file <input type=\"file\" name=\"sync_data\" id=\"sync-data\" required></label>\
     <button type=\"submit\" id=\"upload\">Upload and get the license file</button></form>"
        .to_owned()
}

fn receipt_form() -> String {
    "<h2>Confirm an installed license file</h2><p>Imported a license file with \
     <code>local-server import-license-file FILE --receipt RECEIPT</code>? Upload the receipt \
     it wrote, so Solme knows the file is installed (the next synchronization tells Solme \
     too).</p>\
     <form method=\"post\" action=\"/portal/receipt\" enctype=\"multipart/form-data\" class=\"stack\">\
     <label>Receipt file <input type=\"file\" name=\"receipt\" id=\"receipt-file\" required></label>\
     <button type=\"submit\" id=\"upload-receipt\">Upload the receipt</button></form>"
        .to_owned()
}

/// "License file #4 issued on …, installed on …" (the store's words, capitalized).
fn installed_words(installation: &Installation) -> String {
    let mut words = escape(&installation.summary).into_owned();
    if let Some(first) = words.get(..1) {
        words = format!("{}{}", first.to_ascii_uppercase(), &words[1..]);
    }
    words
}

fn mails_table(mails: &[SentMail]) -> String {
    let mut html = String::from("<h2>Reminders and notices sent to you</h2>");
    if mails.is_empty() {
        html.push_str("<p>None yet.</p>");
        return html;
    }
    html.push_str(
        "<div class=\"scroll\"><table id=\"mails\"><thead><tr><th>Sent</th><th>License server id</th>\
         <th>What</th><th>To</th></tr></thead><tbody>",
    );
    for mail in mails {
        html.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            minute(mail.at),
            mail.server_id,
            escape(&mail.what),
            if mail.to.is_empty() {
                "every contact".to_owned()
            } else {
                escape(mail.to.join(", ")).into_owned()
            }
        ));
    }
    html.push_str("</tbody></table></div>");
    html
}

fn status_words(request: &KeyClearRequest) -> String {
    match request.status {
        KeyClearStatus::Pending => "pending: an operator will decide".to_owned(),
        KeyClearStatus::Approved => "approved: the key pair is cleared".to_owned(),
        KeyClearStatus::Rejected => format!(
            "rejected: {}",
            escape(request.reason.as_deref().unwrap_or("no reason given"))
        ),
    }
}

fn requests_table(requests: &[KeyClearRequest]) -> String {
    if requests.is_empty() {
        return String::new();
    }
    let mut html = String::from(
        "<h2>Key-pair clearing requests</h2><div class=\"scroll\"><table><thead><tr>\
         <th>Asked</th><th>License server id</th><th>By</th><th>Reason</th><th>Status</th>\
         </tr></thead><tbody>",
    );
    for request in requests {
        html.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"status\">{}</td></tr>",
            minute(request.created_at),
            request.server_id,
            escape(&request.sender),
            escape(&request.text),
            status_words(request)
        ));
    }
    html.push_str("</tbody></table></div>");
    html
}

#[utoipa::path(
    get, path = "/portal/servers/{id}", tag = "portal",
    params(("id" = Uuid, Path, description = "One of the customer's license server ids.")),
    responses(
        (status = 200, description = "The id's facts, licenses, which license file its server holds, the usage each sync reported, the upload and key-clear forms and its requests.", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to `/portal/`."),
        (status = 404, description = "Unknown, or another customer's id (the same page).", content_type = "text/html", body = String),
    )
)]
async fn show_server(req: HttpRequest, state: State, path: web::Path<Uuid>) -> HttpResponse {
    let contact = match contact(&req, &state).await {
        Ok(Some(contact)) => contact,
        Ok(None) => return see_other("/portal/"),
        Err(e) => return error_page(&e, None),
    };
    let (now, id, who) = (state.clock.now(), path.into_inner(), contact.clone());
    let read = with_conn(&state.db.read, move |conn| {
        let server = portal::server_of(conn, now, &who, id)?;
        let requests: Vec<KeyClearRequest> = portal::key_clear_requests_of(conn, &who)?
            .into_iter()
            .filter(|r| r.server_id == id)
            .collect();
        let installation = receipts::installation(conn, id)?;
        let usage = crate::store::usage::list(conn, id, Some(USAGE_SYNCS))?;
        Ok((server, requests, installation, usage))
    })
    .await;
    let (server, requests, installation, usage) = match read {
        Ok(read) => read,
        Err(e) => return error_page(&e, Some(&contact)),
    };
    let mut body = format!(
        "<dl class=\"facts\"><dt>License server id</dt><dd><code>{}</code></dd>\
         <dt>Key pair</dt><dd>{}</dd><dt>Last sync</dt><dd>{}</dd>\
         <dt>Valid until</dt><dd>{}</dd><dt>License file</dt><dd id=\"installed\">{}</dd></dl>",
        server.server_id,
        binding(&server),
        last_sync(&server),
        validity(&server),
        installed_words(&installation)
    );
    body.push_str(
        "<h2>Licenses</h2><div class=\"scroll\"><table><thead><tr><th>Feature</th>\
         <th>Seats</th><th>From</th><th>Until</th></tr></thead><tbody>",
    );
    for license in &server.licenses {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&license.feature),
            license.seats,
            license.valid_from.map_or_else(|| "—".to_owned(), day),
            license
                .valid_until
                .map_or_else(|| "perpetual".to_owned(), day),
        ));
    }
    if server.licenses.is_empty() {
        body.push_str("<tr><td colspan=\"4\">No license.</td></tr>");
    }
    body.push_str("</tbody></table></div>");
    body.push_str(&usage_section(&usage, now));
    body.push_str(&upload_form());
    body.push_str(&receipt_form());
    body.push_str(&format!(
        "<h2>Clear the key pair</h2><p>Reinstalled this license server, or moved it to new \
         hardware? Its new key pair cannot synchronize while the old one is bound. Ask Solme \
         to clear it; your request is recorded as coming from you, signed in.</p>\
         <form method=\"post\" action=\"/portal/servers/{}/key-clear\" class=\"stack\">\
         <label>Reason <input type=\"text\" name=\"reason\" required maxlength=\"2000\" \
         id=\"reason\"></label><button type=\"submit\" id=\"key-clear\">Ask for a clearing</button>\
         </form>",
        server.server_id
    ));
    body.push_str(&requests_table(&requests));
    page(StatusCode::OK, "License server", Some(&contact), &body)
}

#[derive(Deserialize)]
struct KeyClearForm {
    reason: String,
}

#[utoipa::path(
    post, path = "/portal/servers/{id}/key-clear", tag = "portal",
    params(("id" = Uuid, Path, description = "One of the customer's license server ids.")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`reason`: one line, at most 2,000 bytes."),
    responses(
        (status = 303, description = "Recorded with the contact as an authenticated sender; back to the id's page."),
        (status = 401, description = "No live session.", content_type = "text/html", body = String),
        (status = 403, description = "Not posted from the portal's own page.", content_type = "text/html", body = String),
        (status = 404, description = "Unknown, or another customer's id.", content_type = "text/html", body = String),
    )
)]
async fn request_key_clear(
    req: HttpRequest,
    state: State,
    path: web::Path<Uuid>,
    form: web::Form<KeyClearForm>,
) -> HttpResponse {
    let contact = match signed_in_post(&req, &state).await {
        Ok(contact) => contact,
        Err(page) => return page,
    };
    let (now, id, who) = (state.clock.now(), path.into_inner(), contact.clone());
    let reason = form.into_inner().reason;
    match with_conn(&state.db.write, move |conn| {
        portal::request_key_clear(conn, now, &who, id, &reason)
    })
    .await
    {
        Ok(_) => see_other(&format!("/portal/servers/{id}")),
        Err(e) => error_page(&e, Some(&contact)),
    }
}

// ---- sync by upload ----------------------------------------------------------------

/// What an upload form carries: the name of its file part and the file in words.
#[derive(Clone, Copy)]
struct Upload {
    part: &'static str,
    what: &'static str,
}

const SYNC_DATA: Upload = Upload {
    part: "sync_data",
    what: "sync data",
};
const RECEIPT: Upload = Upload {
    part: "receipt",
    what: "an installation receipt",
};

/// The sync data of an upload: the part named `sync_data` of a `multipart/form-data`
/// body (what the page's form sends), or a `text/plain` body as it is (for scripts).
fn sync_data_of(content_type: &str, body: &[u8]) -> Result<String, ApiError> {
    file_of(SYNC_DATA, content_type, body)
}

/// The file of an upload: the part named `upload.part` of a `multipart/form-data` body,
/// or a `text/plain` body as it is.
fn file_of(upload: Upload, content_type: &str, body: &[u8]) -> Result<String, ApiError> {
    let bad = || ApiError::malformed(format!("the upload holds no file of {}", upload.what));
    let text = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            ApiError::malformed(format!("this file is not {} (it is not text)", upload.what))
        })
    };
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime == "text/plain" {
        return text(body);
    }
    if mime != "multipart/form-data" {
        return Err(ApiError::malformed("upload the file with the page's form"));
    }
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(name, _)| name.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .ok_or_else(bad)?;
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut rest = body;
    while let Some(at) = find(rest, delimiter) {
        rest = rest.get(at + delimiter.len()..).ok_or_else(bad)?;
        let Some(head_end) = find(rest, b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(rest.get(..head_end).ok_or_else(bad)?);
        let content = rest.get(head_end + 4..).ok_or_else(bad)?;
        let Some(end) = find(content, delimiter) else {
            break;
        };
        let named = head.lines().any(|line| {
            let line = line.to_ascii_lowercase();
            line.starts_with("content-disposition:")
                && line.contains(&format!("name=\"{}\"", upload.part))
        });
        if named {
            let part = content.get(..end).ok_or_else(bad)?;
            let part = part.strip_suffix(b"\r\n").unwrap_or(part);
            if part.is_empty() {
                return Err(bad());
            }
            return text(part);
        }
        rest = content.get(end..).ok_or_else(bad)?;
    }
    Err(bad())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs the sync core on the uploaded sync data (channel `portal`, the contact as the
/// sender, who must be a registered contact of the id's customer) and answers the
/// license file as a download.
#[utoipa::path(
    post, path = "/portal/sync", tag = "portal",
    request_body(content = String, content_type = "multipart/form-data", description = "The sync data in the part `sync_data` (or a `text/plain` body), at most 64 KiB."),
    responses(
        (status = 200, description = "The license file as a download (`Content-Disposition: attachment`); channel `portal`, the contact as the sender.", body = String, content_type = "application/octet-stream"),
        (status = 400, description = "Not sync data, damaged, stale, or too large.", content_type = "text/html", body = String),
        (status = 401, description = "No live session.", content_type = "text/html", body = String),
        (status = 403, description = "Not posted from the portal's own page.", content_type = "text/html", body = String),
        (status = 404, description = "Sync data of an unknown or another customer's id.", content_type = "text/html", body = String),
        (status = 409, description = "Another key pair holds the id, or the sync data was used before.", content_type = "text/html", body = String),
    )
)]
async fn upload_sync(
    req: HttpRequest,
    state: State,
    metrics: web::Data<Metrics>,
    payload: web::Payload,
) -> HttpResponse {
    let contact = match signed_in_post(&req, &state).await {
        Ok(contact) => contact,
        Err(page) => return page,
    };
    let body = match read_upload(payload, SYNC_DATA, &contact).await {
        Ok(body) => body,
        Err(page) => return page,
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = match sync_data_of(&content_type, &body) {
        Ok(text) => text,
        Err(e) => return error_page(&e, Some(&contact)),
    };
    let (peer, sender, core) = (peer(&req), contact.email.clone(), state.clone());
    let sync = web::block(move || core.sync(&text, SyncChannel::Portal, &peer, Some(&sender)));
    let answer = metrics
        .observe_sync(SyncChannel::Portal, async { sync.await? })
        .await;
    match answer {
        Ok(answer) => {
            log::info!(
                "portal upload answered server_id={} contact={}",
                answer.server_id,
                contact.email
            );
            secured(HttpResponse::Ok())
                .content_type("application/octet-stream")
                .insert_header((
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"solme-license-{}.txt\"",
                        answer.server_id
                    ),
                ))
                .body(answer.license_file)
        }
        // Another customer's id: the same words as an id Solme does not know.
        Err(ApiError::SenderNotRegistered(_)) => {
            error_page(&unknown_id_of_sync_data(), Some(&contact))
        }
        Err(e) => error_page(&e, Some(&contact)),
    }
}

/// Reads a bounded upload body, or the page that says why not.
async fn read_upload(
    payload: web::Payload,
    upload: Upload,
    contact: &Contact,
) -> Result<web::Bytes, HttpResponse> {
    match payload.to_bytes_limited(MAX_UPLOAD).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(error_page(
            &ApiError::malformed(format!("the upload could not be read: {e}")),
            Some(contact),
        )),
        Err(_) => Err(error_page(
            &ApiError::malformed(format!(
                "this file is too large for {} (at most {} KiB)",
                upload.what,
                MAX_SYNC_DATA / 1024
            )),
            Some(contact),
        )),
    }
}

/// Records an uploaded installation receipt for one of the contact's ids (verified with
/// the id's bound key pair) and says which license file the server now is known to hold.
#[utoipa::path(
    post, path = "/portal/receipt", tag = "portal",
    request_body(content = String, content_type = "multipart/form-data", description = "The installation receipt in the part `receipt` (or a `text/plain` body)."),
    responses(
        (status = 200, description = "Recorded (or recorded before): the page names the license file installed. Audited `server.receipt`.", content_type = "text/html", body = String),
        (status = 400, description = "No intact receipt, or one naming a license file never issued to the id.", content_type = "text/html", body = String),
        (status = 401, description = "No live session.", content_type = "text/html", body = String),
        (status = 403, description = "Not posted from the portal's own page.", content_type = "text/html", body = String),
        (status = 404, description = "Unknown, or another customer's id.", content_type = "text/html", body = String),
        (status = 409, description = "Signed by a key pair other than the id's bound one.", content_type = "text/html", body = String),
    )
)]
async fn upload_receipt(req: HttpRequest, state: State, payload: web::Payload) -> HttpResponse {
    let contact = match signed_in_post(&req, &state).await {
        Ok(contact) => contact,
        Err(page) => return page,
    };
    let body = match read_upload(payload, RECEIPT, &contact).await {
        Ok(body) => body,
        Err(page) => return page,
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = match file_of(RECEIPT, &content_type, &body) {
        Ok(text) => text,
        Err(e) => return error_page(&e, Some(&contact)),
    };
    let (now, who) = (state.clock.now(), contact.clone());
    let recorded = with_conn(&state.db.write, move |conn| {
        let source = Source {
            channel: SyncChannel::Portal,
            sender: &who.email,
            actor: &who.email,
            customer: Some(who.customer_id),
        };
        receipts::record(conn, now, &text, &source)
    })
    .await;
    match recorded {
        Ok(recorded) => page(
            StatusCode::OK,
            "Receipt recorded",
            Some(&contact),
            &format!(
                "<p id=\"recorded\">License server <code>{id}</code> installed license file #{n} \
                 on {at}{again}.</p><p><a href=\"/portal/servers/{id}\">Back to this license \
                 server</a></p>",
                id = recorded.server_id,
                n = recorded.sequence,
                at = minute(recorded.installed_at),
                again = if recorded.newly_recorded {
                    ""
                } else {
                    " (this receipt was recorded before)"
                },
            ),
        ),
        Err(ApiError::Refused {
            code: shared_proto::ErrorCode::UnknownServerId,
            ..
        }) => error_page(&unknown_id_of_receipt(), Some(&contact)),
        Err(e) => error_page(&e, Some(&contact)),
    }
}

/// What a receipt for an id that is not the contact's customer's is told (the same
/// as for an id Solme does not know).
fn unknown_id_of_receipt() -> ApiError {
    ApiError::refused(
        shared_proto::ErrorCode::UnknownServerId,
        "the license server id in this receipt is not one of your license server ids",
    )
}

/// Syncs whose usage the id's page shows.
const USAGE_SYNCS: u32 = 24;

/// The usage each sync reported: a chart of the highest seats in use per feature (the
/// console's, drawn on the server as SVG without script or style attributes, so the
/// page's policy allows it inline), and the same as a table.
fn usage_section(usage: &[SyncUsage], now: chrono::DateTime<chrono::Utc>) -> String {
    let mut html = String::from("<h2>Usage reported with each synchronization</h2>");
    if usage.iter().all(|u| u.features.is_empty()) {
        html.push_str("<p>No usage reported yet: each synchronization reports the seats used since the one before.</p>");
        return html;
    }
    match super::admin::usage_chart::chart(usage, now) {
        Ok(svg) => html.push_str(&format!(
            "<figure class=\"chart\" id=\"usage-chart\">{svg}</figure>"
        )),
        // The table below still says it all.
        Err(e) => log::warn!("portal: the usage chart could not be drawn: {e}"),
    }
    html.push_str(
        "<div class=\"scroll\"><table id=\"usage\"><thead><tr><th>Period</th><th>Synchronized</th>\
         <th>Feature</th><th>Highest in use</th><th>Seats</th><th>Seat hours</th><th>Refused</th>\
         </tr></thead><tbody>",
    );
    for sync in usage.iter().rev() {
        for feature in &sync.features {
            let refused: u64 = feature.refusals.values().sum();
            html.push_str(&format!(
                "<tr><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td></tr>",
                sync.usage_since.map_or_else(|| "—".to_owned(), day),
                minute(sync.synced_at),
                channel_words(sync.channel),
                escape(&feature.feature),
                feature.peak_in_use,
                feature.seats_total,
                feature.seat_hours,
                refused
            ));
        }
    }
    html.push_str("</tbody></table></div>");
    html
}

/// What an upload for an id that is not the contact's customer's is told: what an
/// unknown id is told, without the id (which the uploader's file names anyway).
fn unknown_id_of_sync_data() -> ApiError {
    ApiError::refused(
        shared_proto::ErrorCode::UnknownServerId,
        "the license server id in this sync data is not one of your license server ids",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_uploads_give_the_named_part() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nno\r\n\
                     --XyZ\r\nContent-Disposition: form-data; name=\"sync_data\"; filename=\"s.txt\"\r\n\
                     Content-Type: text/plain\r\n\r\n-----BEGIN X-----\nabc\n-----END X-----\n\r\n--XyZ--\r\n";
        let text = sync_data_of("multipart/form-data; boundary=XyZ", body);
        assert_eq!(
            text.ok().as_deref(),
            Some("-----BEGIN X-----\nabc\n-----END X-----\n")
        );
        assert!(sync_data_of("multipart/form-data; boundary=Other", body).is_err());
        assert!(sync_data_of("application/json", b"{}").is_err());
        assert_eq!(
            sync_data_of("text/plain; charset=utf-8", b"abc")
                .ok()
                .as_deref(),
            Some("abc")
        );
        let empty = b"--B\r\nContent-Disposition: form-data; name=\"sync_data\"\r\n\r\n\r\n--B--";
        assert!(sync_data_of("multipart/form-data; boundary=B", empty).is_err());
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;"
        );
    }
}
