//! What the world around the servers does, as the control API offers it to scenarios and
//! scripts: a licensed program talking to a local server (`POST /v1/client`) and a
//! customer mailing licensing@ (`POST /v1/mail/send`).
//!
//! Both act exactly as the outside party would: the client calls the local server's
//! client API over HTTP, the mail goes over SMTP to the gateway. Nothing here reaches
//! into a program. A local server's answer, refusals included, comes back as it was
//! given (`{"status", "body"}`): a refusal is what a scenario looks at, not an error of
//! the control API. That is why the client speaks raw HTTP here and not through the
//! client library (`solme-client`), which the demonstration run uses: the library
//! retries while a server is down, waits in the queue itself, keeps leases with its
//! own heartbeats and returns them when dropped, and answers with typed results, so a
//! scenario could not see a single request's status, body, `202` ticket or
//! unanswered call.

use std::net::SocketAddr;
use std::path::PathBuf;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::control_api::{json_body, ApiError, Shared};
use super::world::{Program, ProgramKind, Simulation};

/// What a licensed program asks (`POST /v1/client`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, tag = "action", rename_all = "kebab-case")]
pub enum ClientAction {
    /// Ask for a seat; with `wait_seconds`, a `202` and a queue ticket may come back.
    Checkout {
        server: String,
        feature: String,
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        host: Option<String>,
        #[serde(default)]
        wait_seconds: Option<u32>,
        #[serde(default)]
        borrow_hours: Option<u32>,
    },
    /// Renew a lease.
    Heartbeat { server: String, lease: String },
    /// Give a lease back.
    Checkin { server: String, lease: String },
    /// Ask again for a seat waited for in the queue.
    Poll { server: String, ticket: String },
}

impl ClientAction {
    fn server(&self) -> &str {
        match self {
            Self::Checkout { server, .. }
            | Self::Heartbeat { server, .. }
            | Self::Checkin { server, .. }
            | Self::Poll { server, .. } => server,
        }
    }
}

fn local_server(sim: &Simulation, name: &str) -> Result<Program, ApiError> {
    sim.program(name)
        .filter(|p| p.kind == ProgramKind::LocalServer)
        .ok_or_else(|| {
            let programs = sim.programs.list();
            let names: Vec<&str> = programs
                .iter()
                .filter(|p| p.kind == ProgramKind::LocalServer)
                .map(|p| p.name.as_str())
                .collect();
            ApiError::not_found(format!(
                "no local server {name:?} in this simulation; there are {}",
                names.join(", ")
            ))
        })
}

/// `POST /v1/client`: answers `{"status": HTTP status, "body": the local server's JSON}`;
/// status 0 with code `UNREACHABLE` when the local server did not answer (down,
/// killed, refusing connections).
#[utoipa::path(
    post, path = "/v1/client", tag = "world", operation_id = "client",
    summary = "Acts as a licensed program: checkout, heartbeat, checkin or poll on a local server's client API.",
    description = "The local server's answer comes back as it was given, refusals included: a refusal is not an error of the control API.",
    request_body = ClientAction,
    responses(
        (status = 200, description = "The local server's answer as it was given, refusals included; status 0 and code `UNREACHABLE` when it gave none.", body = super::openapi::ClientAnswer),
        (status = 400, description = "`MALFORMED`: not one of the actions, or a field missing."),
        (status = 404, description = "`NOT_FOUND`: no such local server in this simulation."),
    )
)]
pub(super) async fn client(
    state: Shared,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&request)?;
    let action: ClientAction = serde_json::from_value(json_body(&body)?).map_err(|e| {
        ApiError::bad(format!(
            "expected {{\"action\": \"checkout\"|\"heartbeat\"|\"checkin\"|\"poll\", \"server\": NAME, …}}: {e}"
        ))
    })?;
    let program = local_server(&state.sim, action.server())?;
    let base = program
        .addresses
        .get("api")
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("{} has no client API", program.name)))?;
    // Through the simulation's front while a feature's answers are forced there
    // (`client-force`, see fault_client.rs); otherwise straight to the server.
    let base = super::fault_client::route(&program.name, &base);
    let (status, body) = web::block(move || call_local(&base, &action))
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("calling a local server: {e}")))?
        .map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok().json(json!({"status": status, "body": body})))
}

/// The client API call itself, as a licensed program makes it.
fn call_local(base: &str, action: &ClientAction) -> anyhow::Result<(u16, Value)> {
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(90))
        .build();
    let result = match action {
        ClientAction::Checkout {
            feature,
            user,
            host,
            wait_seconds,
            borrow_hours,
            ..
        } => {
            let mut body = json!({"feature": feature, "client": "solme-sim scenario"});
            for (key, value) in [("user", user), ("host", host)] {
                if let Some(value) = value {
                    body[key] = json!(value);
                }
            }
            if let Some(wait) = wait_seconds {
                body["wait_seconds"] = json!(wait);
            }
            if let Some(hours) = borrow_hours {
                body["borrow_hours"] = json!(hours);
            }
            agent.post(&format!("{base}/api/v1/leases")).send_json(body)
        }
        ClientAction::Heartbeat { lease, .. } => agent
            .post(&format!("{base}/api/v1/leases/{lease}/heartbeat"))
            .send_json(json!({})),
        ClientAction::Checkin { lease, .. } => agent
            .delete(&format!("{base}/api/v1/leases/{lease}"))
            .call(),
        ClientAction::Poll { ticket, .. } => {
            agent.get(&format!("{base}/api/v1/queue/{ticket}")).call()
        }
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        // What a licensed program sees of a server that is down: no answer at all.
        Err(error) => {
            return Ok((
                0,
                json!({"code": "UNREACHABLE", "message": format!("no answer: {error}")}),
            ))
        }
    };
    let status = response.status();
    let text = response
        .into_string()
        .map_err(|e| anyhow::anyhow!(e).context("reading the local server's answer"))?;
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok((status, body))
}

/// What a customer mails licensing@ (`POST /v1/mail/send`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailSend {
    /// The sender, any address (registered or not).
    pub from: String,
    /// A sync-data file written by `export-sync-data` (through exec): sent attached.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub sync_data: Option<PathBuf>,
    /// Or a plain-text mail, e.g. a key-clear request.
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
}

/// `POST /v1/mail/send`: answers `{"message_id"}` (without angle brackets) once the
/// gateway's SMTP has taken the mail.
#[utoipa::path(
    post, path = "/v1/mail/send", tag = "world", operation_id = "mail_send",
    summary = "Mails licensing@ as a customer would, from any sender, over SMTP.",
    description = "Either `sync_data` (a file written by `export-sync-data`, sent attached) or `subject` and `text` (e.g. a key-clear request).",
    request_body = MailSend,
    responses(
        (status = 200, description = "The gateway's SMTP took the mail.", body = super::openapi::MailAccepted),
        (status = 400, description = "`MALFORMED`: not a mail request, `from` not an address, neither or both of `sync_data` and `text`, or the sync data cannot be read."),
        (status = 404, description = "`NOT_FOUND`: this simulation has no mail gateway."),
    )
)]
pub(super) async fn mail_send(
    state: Shared,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&request)?;
    let mail: MailSend = serde_json::from_value(json_body(&body)?).map_err(|e| {
        ApiError::bad(format!(
            "expected {{\"from\": ADDRESS, \"sync_data\": FILE}} or {{\"from\", \"subject\", \"text\"}}: {e}"
        ))
    })?;
    if !mail.from.contains('@') {
        return Err(ApiError::bad("from must be a mail address"));
    }
    if mail.sync_data.is_some() == mail.text.is_some() {
        return Err(ApiError::bad("give either sync_data (a file) or text"));
    }
    let smtp: SocketAddr = state
        .sim
        .program("mail-gateway")
        .and_then(|p| p.addresses.get("smtp").cloned())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| ApiError::not_found("this simulation has no mail gateway"))?;
    let sync_text = match &mail.sync_data {
        Some(file) => Some(std::fs::read_to_string(file).map_err(|e| {
            ApiError::bad(format!(
                "the sync data {} cannot be read: {e}",
                file.display()
            ))
        })?),
        None => None,
    };
    let to = test_harness::programs::LICENSING;
    // Through the mail faults on the way, if one is on (fault_mail.rs).
    let outgoing = super::fault_mail::Outgoing {
        from: mail.from,
        to: to.to_string(),
        subject: mail.subject,
        text: mail.text,
        sync_data: sync_text,
    };
    let (message_id, fault) = web::block(move || super::fault_mail::send(smtp, outgoing))
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("sending a mail: {e}")))?
        .map_err(|e| ApiError::internal(&e))?;
    let mut answer = json!({"message_id": message_id, "to": to});
    if let Some(fault) = fault {
        answer["fault"] = json!(fault);
    }
    Ok(HttpResponse::Ok().json(answer))
}
