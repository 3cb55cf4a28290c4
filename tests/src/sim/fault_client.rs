//! A local server's client API with one feature's answers forced (the `client-force`
//! fault), so that a licensed program's own error handling can be tested: always
//! `NO_SEATS` (or any refusal code), or always granted.
//!
//! Made in front of the local server, never inside it: the simulation starts a small HTTP
//! front (actix-web, forwarding with awc) before that server's client API. A request for
//! a forced feature's check-out is answered by the front (the code's HTTP status and
//! `{"code", "message"}`, or `201` with a lease of its own making, whose heartbeats and
//! return it also answers); every other request goes on to the local server untouched.
//! The simulation's client actions (`POST /v1/client`) go through the front while a
//! local server has a forced answer; a licensed program under test is pointed at the
//! front's address, which the fault's answer names. No switch in `local-server` exists
//! for this, so a real installation cannot be made to lie.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::{Context, Result};
use chrono::Utc;
use serde_json::{json, Value};
use shared_proto::ErrorCode;
use uuid::Uuid;

/// How long a forced lease lasts between heartbeats, in seconds.
const FORCED_LEASE_SECONDS: i64 = 300;
/// Largest request body the front reads.
const MAX_BODY: usize = 256 * 1024;

/// What a forced feature answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forced {
    Granted,
    Refused(ErrorCode),
}

impl Forced {
    /// `granted` or a refusal code (`NO_SEATS`, …).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("granted") {
            return Ok(Self::Granted);
        }
        text.parse::<ErrorCode>().map(Self::Refused).map_err(|_| {
            format!("{text:?} is neither \"granted\" nor a refusal code such as NO_SEATS")
        })
    }

    pub fn name(self) -> String {
        match self {
            Self::Granted => "granted".to_string(),
            Self::Refused(code) => code.as_str().to_string(),
        }
    }
}

struct FrontState {
    upstream: String,
    rules: Mutex<BTreeMap<String, Forced>>,
    /// Leases the front granted itself (answered by it, never sent on).
    forced_leases: Mutex<HashSet<Uuid>>,
    /// The simulated clock's file, for the forced leases' times.
    clock_file: Option<std::path::PathBuf>,
}

/// The front of one local server.
pub struct Front {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<FrontState>,
}

fn relock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Fronts = Mutex<BTreeMap<String, Arc<Front>>>;

fn fronts() -> &'static Fronts {
    static FRONTS: OnceLock<Fronts> = OnceLock::new();
    FRONTS.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Where a client action for local server `name` goes: its front while a feature of it
/// is forced, else `base`, the server's own client API.
pub fn route(name: &str, base: &str) -> String {
    match relock(fronts()).get(name) {
        Some(front) if !relock(&front.state.rules).is_empty() => front.url.clone(),
        _ => base.to_string(),
    }
}

/// The forced answers on now: (server, feature, answer).
pub fn active() -> Vec<(String, String, Forced)> {
    relock(fronts())
        .iter()
        .flat_map(|(name, front)| {
            relock(&front.state.rules)
                .iter()
                .map(|(feature, forced)| (name.clone(), feature.clone(), *forced))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Forces `feature`'s check-outs on local server `name` (client API at `upstream`,
/// `127.0.0.1:PORT`) to answer `forced`; starts its front the first time. Answers the
/// front's URL and whether anything changed.
pub fn force(
    name: &str,
    upstream: &str,
    clock_file: Option<std::path::PathBuf>,
    feature: &str,
    forced: Forced,
) -> Result<(String, bool)> {
    let front = {
        let mut all = relock(fronts());
        match all.get(name) {
            Some(front) => front.clone(),
            None => {
                let front = Arc::new(start(format!("http://{upstream}"), clock_file)?);
                all.insert(name.to_string(), front.clone());
                front
            }
        }
    };
    let before = relock(&front.state.rules).insert(feature.to_string(), forced);
    Ok((front.url.clone(), before != Some(forced)))
}

/// Ends the forced answer of `feature` (or of every feature) on `name`: what ended.
pub fn release(name: &str, feature: Option<&str>) -> Vec<String> {
    let all = relock(fronts());
    let Some(front) = all.get(name) else {
        return Vec::new();
    };
    let mut rules = relock(&front.state.rules);
    match feature {
        Some(feature) => rules
            .remove(feature)
            .map(|_| vec![feature.to_string()])
            .unwrap_or_default(),
        None => std::mem::take(&mut *rules).into_keys().collect(),
    }
}

/// The front's HTTP server on a free loopback port, on a thread of its own.
fn start(upstream: String, clock_file: Option<std::path::PathBuf>) -> Result<Front> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("binding a client API front")?;
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .context("reading the front's address")?
    );
    let state = Arc::new(FrontState {
        upstream,
        rules: Mutex::new(BTreeMap::new()),
        forced_leases: Mutex::new(HashSet::new()),
        clock_file,
    });
    let shared = web::Data::from(state.clone());
    let (started, ready) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("client-front".to_string())
        .spawn(move || {
            let system = actix_web::rt::System::new();
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(shared.clone())
                    .app_data(web::PayloadConfig::new(MAX_BODY))
                    .default_service(web::to(handle))
            })
            .workers(1)
            .disable_signals()
            .listen(listener);
            match server {
                Ok(server) => {
                    let _ = started.send(Ok(()));
                    let _ = system.block_on(server.run());
                }
                Err(error) => {
                    let _ = started.send(Err(error));
                }
            }
        })
        .context("starting the client API front's thread")?;
    ready
        .recv_timeout(Duration::from_secs(10))
        .context("the client API front did not start")?
        .context("starting the client API front")?;
    Ok(Front { url, state })
}

/// The simulated now (the system clock moved by the simulation's clock file).
fn now(state: &FrontState) -> chrono::DateTime<Utc> {
    let offset = state
        .clock_file
        .as_deref()
        .and_then(|file| shared_proto::clock::read_clock_file(file).ok())
        .unwrap_or_default();
    Utc::now() + offset
}

fn forced_grant(state: &FrontState, id: Uuid, feature: &str, body: &Value) -> Value {
    let expires = now(state) + chrono::Duration::seconds(FORCED_LEASE_SECONDS);
    json!({
        "lease_id": id,
        "feature": feature,
        "user": body["user"].as_str().unwrap_or("unnamed"),
        "host": body["host"].as_str().unwrap_or("unnamed"),
        "expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "heartbeat_seconds": FORCED_LEASE_SECONDS / 3,
    })
}

async fn handle(
    state: web::Data<FrontState>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let path = request.uri().path().to_string();
    if request.method() == Method::POST && path == "/api/v1/leases" {
        let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let feature = asked["feature"].as_str().unwrap_or_default().to_string();
        let forced = relock(&state.rules).get(&feature).copied();
        match forced {
            Some(Forced::Granted) => {
                let id = Uuid::new_v4();
                relock(&state.forced_leases).insert(id);
                return HttpResponse::Created().json(forced_grant(&state, id, &feature, &asked));
            }
            Some(Forced::Refused(code)) => {
                let status =
                    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::CONFLICT);
                return HttpResponse::build(status).json(json!({
                    "code": code.as_str(),
                    "message": format!(
                        "{feature}: {} (answer forced by the simulation)",
                        code.as_str()
                    ),
                }));
            }
            None => {}
        }
    }
    if let Some(rest) = path.strip_prefix("/api/v1/leases/") {
        let id = rest
            .split('/')
            .next()
            .and_then(|id| Uuid::parse_str(id).ok());
        if let Some(id) = id.filter(|id| relock(&state.forced_leases).contains(id)) {
            if request.method() == Method::DELETE {
                relock(&state.forced_leases).remove(&id);
                return HttpResponse::NoContent().finish();
            }
            let renewed = forced_grant(&state, id, "", &Value::Null);
            return HttpResponse::Ok().json(renewed);
        }
    }
    forward(&state, &request, body).await
}

/// Sends the request on to the local server and its answer back, as they were.
async fn forward(state: &FrontState, request: &HttpRequest, body: web::Bytes) -> HttpResponse {
    let target = format!(
        "{}{}",
        state.upstream,
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .finish();
    let mut outgoing = client.request(request.method().clone(), &target);
    for name in ["content-type", "accept"] {
        if let Some(value) = request.headers().get(name) {
            outgoing = outgoing.insert_header((name, value.clone()));
        }
    }
    let mut answer = match outgoing.send_body(body).await {
        Ok(answer) => answer,
        Err(error) => {
            return HttpResponse::BadGateway().json(json!({
                "code": "UNREACHABLE",
                "message": format!("the local server did not answer: {error}"),
            }))
        }
    };
    let status = answer.status();
    let content_type = answer.headers().get("content-type").cloned();
    let bytes = answer
        .body()
        .limit(16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let mut response = HttpResponse::build(status);
    if let Some(content_type) = content_type {
        response.insert_header(("content-type", content_type));
    }
    response.body(bytes)
}
