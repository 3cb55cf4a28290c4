//! The control API of a running simulation: HTTP/JSON on loopback, for QA scripts and
//! for `solme-sim clock|status|exec|mail` ([`super::control_cli`]).
//!
//! - Where: `DIR/control.json` says the URL (an ephemeral port on 127.0.0.1) and the
//!   token file; it exists while the simulation runs.
//! - Who: every request carries `Authorization: Bearer TOKEN`, the token in
//!   `DIR/control-token` (0600), compared in constant time; else 401. The one
//!   exception is `GET /v1/openapi.json`, the API's description, which holds nothing
//!   secret ([`super::openapi`]).
//! - Errors: `{"code", "message"}` with 400 (bad input), 401, 404, 409, 422, 500. A
//!   request that is refused changes nothing.
//!
//! Endpoints: the `control_routes!` table below, the one list that both registers each
//! route and puts its handler's `#[utoipa::path]` in the OpenAPI document, so no route
//! is served undocumented. Handlers live here and in [`super::world_actions`]
//! (`/v1/client`, `/v1/mail/send`), [`super::world_grow`] (`/v1/world`,
//! `/v1/customers`, `/v1/servers`), [`super::events`] and [`super::faults`].

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, ResponseError};
use anyhow::{Context, Result};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared_proto::files::{write, Access, Existing};
use utoipa::{IntoParams, ToSchema};

use super::clock::{ClockMove, ClockState};
use super::faults::{ActiveFault, ProgramNow};
use super::world::Simulation;
use super::{events, exec, faults, openapi, world_actions, world_grow};

/// The file that tells clients where the control API is.
pub const CONTROL_FILE: &str = "control.json";
/// The file holding the bearer token.
pub const TOKEN_FILE: &str = "control-token";
/// Largest request body read.
const MAX_BODY: usize = 64 * 1024;

/// The contents of `control.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlFile {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The bearer token's file (0600).
    pub token_file: PathBuf,
    /// The simulation's own process.
    pub pid: u32,
}

/// The body of every refusal.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `MALFORMED`, `UNAUTHORIZED`, `NOT_FOUND`, `CONFLICT`, `UNSUPPORTED` or `INTERNAL`.
    #[schema(example = "MALFORMED")]
    pub code: String,
    /// What was wrong, for people.
    pub message: String,
}

/// A refusal of the control API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: String) -> Self {
        Self {
            status,
            code,
            message,
        }
    }

    pub(super) fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "MALFORMED",
            message: message.into(),
        }
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "NOT_FOUND",
            message: message.into(),
        }
    }

    fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHORIZED",
            message: format!("send Authorization: Bearer TOKEN, the token in {TOKEN_FILE}"),
        }
    }

    /// An unexpected failure: logged with its cause here, a plain message to the client.
    pub(super) fn internal(error: &anyhow::Error) -> Self {
        eprintln!("control API: {error:#}");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "INTERNAL",
            message: "the simulation failed to do this; its output says why".to_string(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody {
            code: self.code.to_string(),
            message: self.message.clone(),
        })
    }
}

pub(super) struct State {
    pub(super) sim: Arc<Simulation>,
    token: SecretString,
}

impl State {
    pub(super) fn authorize(&self, request: &HttpRequest) -> Result<(), ApiError> {
        let given = request
            .headers()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default()
            .as_bytes();
        let expected = self.token.expose_secret().as_bytes();
        if given.len() == expected.len() && openssl::memcmp::eq(given, expected) {
            Ok(())
        } else {
            Err(ApiError::unauthorized())
        }
    }
}

pub(super) type Shared = web::Data<State>;

/// Declares every endpoint once: `verb "path" => handler;`, the handler annotated with
/// `#[utoipa::path]` for the same verb and path. From the table come [`ROUTES`], the
/// router's registrations and [`ControlApi`]'s OpenAPI paths, so a route cannot be
/// served without its entry in the document (a test checks that each annotation
/// states the verb and path it is registered under).
macro_rules! control_routes {
    ($($verb:ident $path:literal => $($handler:ident)::+;)*) => {
        /// Every endpoint of the control API: (lower-case HTTP verb, path).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($verb), $path)),*];

        fn routes(config: &mut web::ServiceConfig) {
            $(config.route($path, web::$verb().to($($handler)::+));)*
        }

        /// The control API's operations, for the OpenAPI document ([`super::openapi`]).
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($($handler)::+),*))]
        pub struct ControlApi;
    };
}

control_routes! {
    get "/v1/status" => status;
    post "/v1/clock" => clock;
    post "/v1/exec" => exec_verb;
    get "/v1/mail/inbox" => inbox;
    get "/v1/events" => events::endpoint;
    post "/v1/faults" => faults::endpoint;
    post "/v1/client" => world_actions::client;
    post "/v1/mail/send" => world_actions::mail_send;
    get "/v1/world" => world_grow::world_endpoint;
    post "/v1/customers" => world_grow::customer_add;
    post "/v1/servers" => world_grow::server_add;
    post "/v1/servers/{name}/reinstall" => world_grow::server_reinstall;
    get "/v1/openapi.json" => openapi::document_endpoint;
}

/// The running control API.
pub struct ControlServer {
    pub url: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    control_file: PathBuf,
}

impl ControlServer {
    /// Makes the token, binds 127.0.0.1 on a free port, serves on a thread of its own
    /// and writes `DIR/control.json` last, so a client that finds it finds the API up.
    pub fn start(sim: Arc<Simulation>) -> Result<Self> {
        let root = sim.root.clone();
        let token_file = root.join(TOKEN_FILE);
        let token = new_token()?;
        write(
            &token_file,
            token.expose_secret().as_bytes(),
            Access::Private,
            Existing::Replace,
        )
        .context("writing the control API's token")?;
        let listener =
            TcpListener::bind("127.0.0.1:0").context("binding the control API on loopback")?;
        let url = format!(
            "http://{}",
            listener.local_addr().context("reading the bound address")?
        );
        let state = web::Data::new(State { sim, token });
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("control-api".to_string())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .app_data(web::PayloadConfig::new(MAX_BODY))
                        .configure(routes)
                        .default_service(web::to(|| async {
                            ApiError::not_found("no such endpoint; see `solme-sim --help`")
                                .error_response()
                        }))
                })
                .workers(2)
                .disable_signals()
                .listen(listener);
                match server {
                    Ok(server) => {
                        let server = server.run();
                        let _ = sender.send(Ok(server.handle()));
                        if let Err(error) = system.block_on(server) {
                            eprintln!("control API stopped: {error}");
                        }
                    }
                    Err(error) => {
                        let _ = sender.send(Err(error));
                    }
                }
            })
            .context("starting the control API's thread")?;
        let handle = receiver
            .recv()
            .context("the control API's thread ended at start")?
            .context("starting the control API")?;
        let control_file = root.join(CONTROL_FILE);
        let info = ControlFile {
            url: url.clone(),
            token_file,
            pid: std::process::id(),
        };
        write(
            &control_file,
            &serde_json::to_vec_pretty(&info).context("encoding control.json")?,
            Access::Public,
            Existing::Replace,
        )
        .context("writing control.json")?;
        Ok(Self {
            url,
            handle,
            thread: Some(thread),
            control_file,
        })
    }

    /// Stops serving and removes `control.json` (the simulation is no longer driven).
    pub fn stop(mut self) {
        let _ = std::fs::remove_file(&self.control_file);
        actix_web::rt::System::new().block_on(self.handle.stop(true));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// 32 random bytes, hex.
fn new_token() -> Result<SecretString> {
    let mut bytes = [0u8; 32];
    openssl::rand::rand_bytes(&mut bytes).context("making the control API's token")?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(SecretString::from(hex))
}

pub(super) fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("the body is not JSON: {e}")))
}

/// What `GET /v1/status` answers.
#[derive(Debug, Serialize, ToSchema)]
struct StatusAnswer {
    /// The simulation directory.
    #[schema(value_type = String)]
    data_dir: PathBuf,
    clock: ClockState,
    programs: Vec<ProgramNow>,
    /// The faults on now.
    faults: Vec<ActiveFault>,
    /// Where the mail gateway writes the mails it sends.
    #[schema(value_type = String)]
    outbox: PathBuf,
}

/// The programs, their addresses, processes and states, the clock and the faults on.
#[utoipa::path(
    get, path = "/v1/status", tag = "simulation", operation_id = "status",
    responses((status = 200, description = "The programs, the simulated clock and the faults on now.", body = StatusAnswer))
)]
async fn status(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request)?;
    let sim = &state.sim;
    Ok(HttpResponse::Ok().json(StatusAnswer {
        data_dir: sim.root.clone(),
        clock: sim.clock.state(),
        programs: sim.faults.programs_now(&sim.programs.list()),
        faults: sim.faults.active(),
        outbox: sim.outbox.clone(),
    }))
}

/// Moves the one simulated clock every program follows.
#[utoipa::path(
    post, path = "/v1/clock", tag = "simulation", operation_id = "clock",
    request_body = ClockMove,
    responses(
        (status = 200, description = "The clock after the move; every program follows within a second.", body = ClockState),
        (status = 400, description = "`MALFORMED`: not exactly one of `advance`, `set`, `back`, a length or time that cannot be read, or a move too far; the clock did not move."),
    )
)]
async fn clock(
    state: Shared,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&request)?;
    let change = ClockMove::from_json(&json_body(&body)?).map_err(ApiError::bad)?;
    let sim = state.sim.clone();
    let moved = web::block(move || sim.clock.apply(change))
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("moving the clock: {e}")))?
        .map_err(ApiError::bad)?;
    Ok(HttpResponse::Ok().json(moved))
}

/// What `POST /v1/exec` runs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ExecRequest {
    /// `main-server`, `mail-gateway`, `local-server-1`, …
    program: String,
    /// The verb and its arguments, e.g. `["status", "--json"]`; the program's
    /// `--data-dir` is added unless given. Not `serve` or `init`.
    #[schema(min_items = 1)]
    args: Vec<String>,
    /// How long it may run before it is killed (default 60, at most 600).
    #[schema(minimum = 1)]
    timeout_seconds: Option<u64>,
}

/// Runs one verb of a program on its data directory and the simulated clock.
#[utoipa::path(
    post, path = "/v1/exec", tag = "simulation", operation_id = "exec",
    request_body = ExecRequest,
    responses(
        (status = 200, description = "How the verb ended, with its output (each stream cut at 1 MiB).", body = exec::ExecOutput),
        (status = 400, description = "`MALFORMED`: not an exec request, no verb, a verb not run through exec (`serve`, `init`), or `timeout_seconds` 0."),
        (status = 404, description = "`NOT_FOUND`: no such program in this simulation."),
    )
)]
async fn exec_verb(
    state: Shared,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&request)?;
    let exec: ExecRequest = serde_json::from_value(json_body(&body)?).map_err(|e| {
        ApiError::bad(format!(
            "expected {{\"program\": NAME, \"args\": [VERB, …]}}: {e}"
        ))
    })?;
    let sim = state.sim.clone();
    let program = sim.program(&exec.program).ok_or_else(|| {
        let programs = sim.programs.list();
        let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
        ApiError::not_found(format!(
            "no program {:?} in this simulation; there are {}",
            exec.program,
            names.join(", ")
        ))
    })?;
    let verb = exec
        .args
        .first()
        .ok_or_else(|| ApiError::bad("args must start with the verb, e.g. [\"status\"]"))?;
    if let Some(why) = exec::refused_verb(verb) {
        return Err(ApiError::bad(format!(
            "{verb} is not run through exec: {why}"
        )));
    }
    let timeout = match exec.timeout_seconds {
        None => exec::DEFAULT_TIMEOUT,
        Some(0) => return Err(ApiError::bad("timeout_seconds must be at least 1")),
        Some(seconds) => Duration::from_secs(seconds).min(exec::MAX_TIMEOUT),
    };
    let binary = test_harness::binary(program.kind.binary()).map_err(|e| ApiError::internal(&e))?;
    let command = exec::command(&binary, &program, sim.clock.path(), &exec.args);
    let args = exec.args;
    let output =
        web::block(move || exec::run_logged(&sim.events, &program.name, &args, command, timeout))
            .await
            .map_err(|e| ApiError::internal(&anyhow::anyhow!("running a verb: {e}")))?
            .map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok().json(output))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct InboxQuery {
    /// The contact's address, e.g. `ops@acme.example`.
    #[param(required = true)]
    address: Option<String>,
}

/// One mail the gateway sent.
#[derive(Debug, Serialize, ToSchema)]
struct SentMail {
    /// `reminder`, `key-clear-notice` or `reply` (to a mail received).
    #[schema(value_type = String)]
    kind: &'static str,
    to: String,
    subject: String,
    date: Option<String>,
    /// The outbox file.
    file: String,
    /// Whether a license file is attached.
    license_file: bool,
}

fn kind_of(file: &str) -> &'static str {
    if file.starts_with("reminder-") {
        "reminder"
    } else if file.starts_with("notice-") {
        "key-clear-notice"
    } else {
        "reply"
    }
}

/// What Solme's gateway sent one customer contact.
#[utoipa::path(
    get, path = "/v1/mail/inbox", tag = "world", operation_id = "mail_inbox",
    params(InboxQuery),
    responses(
        (status = 200, description = "The mails the gateway sent that contact (in no set order; each has its date).", body = [SentMail]),
        (status = 400, description = "`MALFORMED`: no `address`, or not a mail address."),
    )
)]
async fn inbox(state: Shared, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.authorize(&request)?;
    let query = web::Query::<InboxQuery>::from_query(request.query_string())
        .map_err(|e| ApiError::bad(format!("bad query: {e}")))?;
    let address = match query.into_inner().address {
        Some(address) if address.contains('@') => address,
        _ => {
            return Err(ApiError::bad(
                "give ?address=CONTACT, e.g. ops@acme.example",
            ))
        }
    };
    let outbox = state.sim.outbox.clone();
    let mails = web::block(move || read_inbox(&outbox, &address))
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("reading the outbox: {e}")))?
        .map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok().json(mails))
}

/// The customer's mailbox: what the gateway sent `address`, less what the customer-mail
/// faults lost or still hold back.
fn read_inbox(outbox: &Path, address: &str) -> Result<Vec<SentMail>> {
    let mails = test_harness::mail::read_outbox(outbox)?;
    let now = std::time::SystemTime::now();
    let arrived = |file: &str| {
        std::fs::metadata(outbox.join(file))
            .and_then(|meta| meta.modified())
            .map_or(true, |sent| {
                super::fault_customer_mail::delivered(sent, now)
            })
    };
    Ok(mails
        .into_iter()
        .filter(|mail| mail.to.eq_ignore_ascii_case(address) && arrived(&mail.file))
        .map(|mail| SentMail {
            kind: kind_of(&mail.file),
            license_file: mail.license_file().is_some(),
            to: mail.to,
            subject: mail.subject,
            date: mail.date,
            file: mail.file,
        })
        .collect())
}
