//! The world grown while it runs (`solme-sim customers add`, `servers add`, `servers
//! reinstall`, and `GET /v1/world`):
//!
//! - a customer is registered with Solme through the main server's own admin API, as an
//!   operator would;
//! - a license server is added: its id allocated with Solme through the admin API (or,
//!   given `id`, an installation that uses an id it was not given, e.g. a stolen one),
//!   its licenses added, its local server installed (`init`) in `DIR/NAME` on the
//!   simulated clock and started, and it joins the world (status, exec, faults, the
//!   client API);
//! - a license server is reinstalled: its local server stopped, its data directory
//!   wiped and `init` run again on the same id, which makes a new key pair, then
//!   started on the same port. Solme refuses the new key pair (`ID_IN_USE`) until the
//!   old one is cleared: that is the customer's and the operator's part, done through
//!   the mail and the admin API, never by the simulation.
//!
//! Every change is recorded in `DIR/world.json` (a resumed simulation starts the grown
//! world) and in the event log. A refused request changes nothing.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use anyhow::Context;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use test_harness::Admin;
use utoipa::ToSchema;
use uuid::Uuid;

use super::control_api::{json_body, ApiError, Shared};
use super::events::What;
use super::faults::{Local, ProgramState};
use super::world::{CustomerRecord, Program, ProgramKind, ServerRecord, Simulation, SyncMode};
use super::world_setup::{listen_of, local_program, LocalSetup, LICENSES};

/// The longest name a customer or a server may be given.
const MAX_NAME: usize = 200;
const MAX_SERVER_NAME: usize = 40;
const MAX_CONTACTS: usize = 10;
const MAX_LICENSES: usize = 20;
const MAX_SEATS: u32 = 100_000;

/// What `POST /v1/customers` registers.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerAdd {
    /// The customer's name, e.g. `Globex GmbH`.
    pub name: String,
    /// Its contacts' mail addresses (1 to 10): Solme's mail goes to them, and mail from
    /// them is the customer's.
    #[schema(min_items = 1, max_items = 10)]
    pub contacts: Vec<String>,
}

/// One license of a server added.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenseSpec {
    pub feature: String,
    #[schema(minimum = 1, maximum = 100000)]
    pub seats: u32,
}

/// What `POST /v1/servers` installs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerAdd {
    /// Its name in the simulation (its data directory is `DIR/NAME`): lower-case
    /// letters, digits and `-`, starting with a letter, at most 40.
    pub name: String,
    /// The customer (its name or id) the new id is allocated to.
    #[serde(default)]
    pub customer: Option<String>,
    /// Instead of allocating one: install it on this existing id (another
    /// installation's, e.g. a stolen id). No licenses are added.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub id: Option<Uuid>,
    /// How it synchronizes (`direct` when not given).
    #[serde(default)]
    pub sync: SyncMode,
    /// The licenses of the new id (solme-cad × 5 and solme-cam × 2 when not given).
    #[serde(default)]
    pub licenses: Option<Vec<LicenseSpec>>,
}

/// A license server of the world, and what was done.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerAnswer {
    pub server: ServerRecord,
    /// Its program as `GET /v1/status` lists it.
    pub program: Program,
    /// What was done, for people.
    pub done: String,
}

/// The world as `GET /v1/world` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorldView {
    /// The main-server replicas' names (`main-server`, `main-server-2`).
    pub replicas: Vec<String>,
    /// Whether the main servers run on PostgreSQL (else SQLite).
    pub postgres: bool,
    pub customers: Vec<CustomerRecord>,
    pub servers: Vec<ServerRecord>,
}

fn conflict(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "CONFLICT", message)
}

/// A refusal of Solme's admin API, passed on: its 400 is bad input, anything else a
/// conflict with the registry's state.
fn refused_by_solme(what: &str, refusal: &test_harness::Refusal) -> ApiError {
    let message = format!(
        "Solme's main server refused to {what}: {} ({})",
        refusal.error.message, refusal.error.code
    );
    if refusal.status == 400 {
        ApiError::bad(message)
    } else {
        conflict(message)
    }
}

/// An operator's client of the admin API of the first main-server replica that runs.
fn operator(sim: &Simulation) -> Result<Admin, ApiError> {
    let programs = sim.faults.programs_now(&sim.programs.list());
    let replica = programs
        .iter()
        .find(|p| p.program.kind == ProgramKind::MainServer && p.state == ProgramState::Running)
        .ok_or_else(|| {
            conflict(
                "no main-server replica is running (a fault is on each): switch one back on \
                 first"
                    .to_string(),
            )
        })?;
    let dir = &replica.program.data_dir;
    let url = replica.program.addresses.get("admin").ok_or_else(|| {
        ApiError::internal(&anyhow::anyhow!("the main server has no admin address"))
    })?;
    let token = shared_proto::files::read_secret(&dir.join("admin-token"))
        .map_err(|e| ApiError::internal(&anyhow::anyhow!(e).context("reading the admin token")))?;
    Admin::new(url, token.expose_secret(), &dir.join("ca.pem")).map_err(|e| ApiError::internal(&e))
}

fn check_address(address: &str) -> Result<(), ApiError> {
    let ok = address.len() <= 254
        && !address.chars().any(char::is_whitespace)
        && address
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(format!("{address:?} is not a mail address")))
    }
}

fn check_server_name(sim: &Simulation, name: &str) -> Result<(), ApiError> {
    let well_formed = !name.is_empty()
        && name.len() <= MAX_SERVER_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !well_formed {
        return Err(ApiError::bad(format!(
            "{name:?} is not a server name: lower-case letters, digits and -, starting with a \
             letter, at most {MAX_SERVER_NAME}"
        )));
    }
    let reserved =
        name.starts_with("main-server") || matches!(name, "mail-gateway" | "customer-proxy");
    if sim.program(name).is_some() || reserved {
        return Err(conflict(format!(
            "there is a program {name:?} in this simulation already"
        )));
    }
    if sim.root.join(name).exists() {
        return Err(conflict(format!(
            "{} exists already: give the server another name",
            sim.root.join(name).display()
        )));
    }
    Ok(())
}

/// Registers a customer with Solme and records it.
pub fn add_customer(sim: &Simulation, request: CustomerAdd) -> Result<CustomerRecord, ApiError> {
    let name = request.name.trim().to_string();
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(ApiError::bad(format!(
            "a customer's name is 1 to {MAX_NAME} characters"
        )));
    }
    if request.contacts.is_empty() || request.contacts.len() > MAX_CONTACTS {
        return Err(ApiError::bad(format!(
            "give 1 to {MAX_CONTACTS} contact addresses"
        )));
    }
    for contact in &request.contacts {
        check_address(contact)?;
    }
    let mut world = sim.world();
    if world.customer(&name).is_some() {
        return Err(conflict(format!("there is a customer {name:?} already")));
    }
    let admin = operator(sim)?;
    let answer = admin
        .send(
            "POST",
            "/admin/v1/customers",
            json!({"name": name, "emails": request.contacts}),
        )
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|r| refused_by_solme("register the customer", &r))?;
    let id = match &answer["id"] {
        Value::String(id) => id.clone(),
        Value::Number(id) => id.to_string(),
        _ => {
            return Err(ApiError::internal(&anyhow::anyhow!(
                "the registered customer has no id"
            )))
        }
    };
    let record = CustomerRecord {
        name: name.clone(),
        id,
        contacts: request.contacts,
    };
    world.customers.push(record.clone());
    world.save(&sim.root).map_err(|e| ApiError::internal(&e))?;
    sim.events.record(What::World {
        change: "customer-added".to_string(),
        name,
        detail: format!("id {}, contacts {}", record.id, record.contacts.join(", ")),
    });
    Ok(record)
}

/// Allocates an id (or takes the one given), installs its local server and starts it.
pub fn add_server(sim: &Simulation, request: ServerAdd) -> Result<ServerAnswer, ApiError> {
    let name = request.name.trim().to_string();
    check_server_name(sim, &name)?;
    let licenses = request.licenses.clone().unwrap_or_else(|| {
        LICENSES
            .iter()
            .map(|(feature, seats)| LicenseSpec {
                feature: (*feature).to_string(),
                seats: *seats,
            })
            .collect()
    });
    if licenses.len() > MAX_LICENSES {
        return Err(ApiError::bad(format!("at most {MAX_LICENSES} licenses")));
    }
    for license in &licenses {
        if license.feature.trim().is_empty() || license.feature.len() > 64 {
            return Err(ApiError::bad("a license's feature is 1 to 64 characters"));
        }
        if !(1..=MAX_SEATS).contains(&license.seats) {
            return Err(ApiError::bad(format!(
                "a license has 1 to {MAX_SEATS} seats"
            )));
        }
    }
    let mut world = sim.world();
    let (id, customer, done) =
        match (&request.id, &request.customer) {
            (Some(_), Some(_)) => return Err(ApiError::bad(
                "give either customer (a new id is allocated) or id (an existing one is used), \
                 not both",
            )),
            (None, None) => {
                return Err(ApiError::bad(
                    "give the customer the new id is allocated to (its name or id), or id to \
                 install on an existing one",
                ))
            }
            (Some(id), None) => (
                *id,
                None,
                format!(
                    "{name} installed on the existing id {id} with a key pair of its own (no id \
                 allocated, no license added)"
                ),
            ),
            (None, Some(which)) => {
                let customer = world.customer(which).cloned().ok_or_else(|| {
                    ApiError::not_found(format!(
                        "no customer {which:?} in this simulation; there are {}",
                        world
                            .customers
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
                let admin = operator(sim)?;
                let customer_id: Value = customer
                    .id
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(customer.id.clone()));
                let server = admin
                    .send(
                        "POST",
                        "/admin/v1/servers",
                        json!({"customer_id": customer_id}),
                    )
                    .map_err(|e| ApiError::internal(&e))?
                    .map_err(|r| refused_by_solme("allocate an id", &r))?;
                let id: Uuid = server["server_id"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        ApiError::internal(&anyhow::anyhow!("the allocated server has no id"))
                    })?;
                for license in &licenses {
                    admin
                        .send(
                            "POST",
                            &format!("/admin/v1/servers/{id}/licenses"),
                            json!({"feature": license.feature, "seats": license.seats}),
                        )
                        .map_err(|e| ApiError::internal(&e))?
                        .map_err(|r| refused_by_solme("add a license", &r))?;
                }
                let licensed: Vec<String> = licenses
                    .iter()
                    .map(|l| format!("{} × {}", l.feature, l.seats))
                    .collect();
                (
                    id,
                    Some(customer.id.clone()),
                    format!(
                        "id {id} allocated to {} with {}; {name} installed and serving, not \
                     synchronized yet",
                        customer.name,
                        licensed.join(", ")
                    ),
                )
            }
        };
    let dir = sim.root.join(&name);
    let endpoints = world.endpoints_for(world.servers.len());
    let flags = world.local_flags.clone();
    let clock_file = sim.clock.path().to_path_buf();
    let installed = sim.faults.with_processes(&name, |processes, _| {
        let setup = LocalSetup {
            main: &processes.main,
            clock_file: &clock_file,
            flags: &flags,
        };
        let local = setup.install(&dir, id, &endpoints, request.sync, "127.0.0.1:0")?;
        let listen = listen_of(&local)?;
        let program = local_program(&name, &local)?;
        processes.locals.push(Local {
            name: name.clone(),
            server: local,
            listen: listen.clone(),
            flags: flags.clone(),
        });
        anyhow::Ok((listen, program))
    });
    let (listen, program) = installed
        .with_context(|| format!("installing {name}"))
        .map_err(|e| {
            // Nothing half-made stays behind: the directory goes with the failure, and
            // an id allocated for it is retired at Solme (recorded in its audit log).
            let _ = std::fs::remove_dir_all(&dir);
            if customer.is_some() {
                if let Ok(admin) = operator(sim) {
                    let _ = admin.send(
                        "POST",
                        &format!("/admin/v1/servers/{id}/retire"),
                        json!({
                            "reason": "the simulation could not install its local server",
                            "force": true
                        }),
                    );
                }
            }
            ApiError::internal(&e)
        })?;
    let record = ServerRecord {
        name: name.clone(),
        id,
        customer,
        sync: request.sync,
        dir,
        listen,
        reinstalls: 0,
    };
    world.servers.push(record.clone());
    world.save(&sim.root).map_err(|e| ApiError::internal(&e))?;
    sim.programs.put(program.clone());
    if let Some(pid) = program.pid {
        sim.events.record(What::ProgramStarted {
            program: name.clone(),
            pid,
        });
    }
    sim.events.record(What::World {
        change: "server-added".to_string(),
        name,
        detail: format!("id {id}, sync {}", request.sync.name()),
    });
    Ok(ServerAnswer {
        server: record,
        program,
        done,
    })
}

/// Stops the local server, wipes its data directory, installs it again on the same id
/// (a new key pair) and starts it on the same port.
pub fn reinstall(sim: &Simulation, name: &str) -> Result<ServerAnswer, ApiError> {
    let mut world = sim.world();
    let position = world
        .servers
        .iter()
        .position(|s| s.name == name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no license server {name:?} in this simulation; there are {}",
                world
                    .servers
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let record = world.servers[position].clone();
    let endpoints = world.endpoints_for(position);
    let flags = world.local_flags.clone();
    let clock_file = sim.clock.path().to_path_buf();
    let done = sim.faults.with_processes(name, |processes, faulted| {
        if faulted {
            return Err(conflict(format!(
                "a fault is on {name}: switch it off first"
            )));
        }
        let index = processes
            .locals
            .iter()
            .position(|l| l.name == name)
            .ok_or_else(|| ApiError::not_found(format!("{name} has no process here")))?;
        let old_pid = processes.locals[index].server.pid();
        let listen = processes.locals[index].listen.clone();
        processes.locals[index]
            .server
            .stop()
            .map_err(|e| ApiError::internal(&e.context(format!("stopping {name}"))))?;
        if let Some(pid) = old_pid {
            sim.events.record(What::ProgramStopped {
                program: name.to_string(),
                pid,
                how: "stopped".to_string(),
                status: None,
            });
        }
        std::fs::remove_dir_all(&record.dir)
            .with_context(|| format!("wiping {}", record.dir.display()))
            .map_err(|e| ApiError::internal(&e))?;
        let setup = LocalSetup {
            main: &processes.main,
            clock_file: &clock_file,
            flags: &flags,
        };
        let local = setup
            .install(&record.dir, record.id, &endpoints, record.sync, &listen)
            .with_context(|| format!("installing {name} again"))
            .map_err(|e| ApiError::internal(&e))?;
        let listen = listen_of(&local).map_err(|e| ApiError::internal(&e))?;
        let program = local_program(name, &local).map_err(|e| ApiError::internal(&e))?;
        let slot = &mut processes.locals[index];
        slot.server = local;
        slot.listen = listen.clone();
        Ok((listen, program))
    })?;
    let (listen, program) = done;
    let server = &mut world.servers[position];
    server.listen = listen;
    server.reinstalls += 1;
    let server = server.clone();
    world.save(&sim.root).map_err(|e| ApiError::internal(&e))?;
    sim.programs.put(program.clone());
    if let Some(pid) = program.pid {
        sim.events.record(What::ProgramStarted {
            program: name.to_string(),
            pid,
        });
    }
    sim.events.record(What::World {
        change: "server-reinstalled".to_string(),
        name: name.to_string(),
        detail: format!("id {}, a new key pair", server.id),
    });
    let id = server.id;
    Ok(ServerAnswer {
        server,
        program,
        done: format!(
            "{name} reinstalled on id {id} with a new key pair (its data directory wiped): \
             Solme refuses its syncs (ID_IN_USE) until the old key pair is cleared — a \
             key-clear request mailed by a contact and approved, or `admin key clear {id}`"
        ),
    })
}

/// The world view.
pub fn view(sim: &Simulation) -> WorldView {
    let world = sim.world();
    WorldView {
        replicas: world.replicas.iter().map(|r| r.name.clone()).collect(),
        postgres: world.database_url.is_some(),
        customers: world.customers.clone(),
        servers: world.servers.clone(),
    }
}

/// `GET /v1/world`.
#[utoipa::path(
    get, path = "/v1/world", tag = "world", operation_id = "world",
    summary = "The world: the main-server replicas, the customers and the license servers with their ids.",
    responses((status = 200, description = "The world as it is now (also in `DIR/world.json`).", body = WorldView))
)]
pub(super) async fn world_endpoint(
    state: Shared,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&request)?;
    Ok(HttpResponse::Ok().json(view(&state.sim)))
}

/// `POST /v1/customers`.
#[utoipa::path(
    post, path = "/v1/customers", tag = "world", operation_id = "customer_add",
    summary = "Registers a customer with Solme through the main server's admin API.",
    request_body = CustomerAdd,
    responses(
        (status = 200, description = "The customer, with its id at Solme.", body = CustomerRecord),
        (status = 400, description = "`MALFORMED`: no name, no or too many contacts, a contact that is not a mail address, or what Solme refused as bad input."),
        (status = 409, description = "`CONFLICT`: a customer of that name exists, Solme refused it (e.g. a contact of another customer), or no main-server replica runs."),
    )
)]
pub(super) async fn customer_add(
    state: Shared,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&request)?;
    let add: CustomerAdd = serde_json::from_value(json_body(&body)?).map_err(|e| {
        ApiError::bad(format!(
            "expected {{\"name\": NAME, \"contacts\": [ADDRESS, …]}}: {e}"
        ))
    })?;
    let sim = state.sim.clone();
    let record = web::block(move || add_customer(&sim, add))
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("adding a customer: {e}")))??;
    Ok(HttpResponse::Ok().json(record))
}

/// `POST /v1/servers`.
#[utoipa::path(
    post, path = "/v1/servers", tag = "world", operation_id = "server_add",
    summary = "Adds a license server: an id allocated with Solme (or an existing one), its local server installed and started.",
    description = "With `customer`, Solme allocates a new id through the admin API and the licenses are added; with `id`, the local server is installed on that existing id with a key pair of its own (e.g. a stolen id, which Solme refuses once the id is bound). The local server runs in `DIR/NAME` on the simulated clock and joins status, exec, faults and the client API.",
    request_body = ServerAdd,
    responses(
        (status = 200, description = "The server, its program and what was done.", body = ServerAnswer),
        (status = 400, description = "`MALFORMED`: a bad name, neither or both of `customer` and `id`, bad licenses, or what Solme refused as bad input."),
        (status = 404, description = "`NOT_FOUND`: no such customer."),
        (status = 409, description = "`CONFLICT`: the name is taken, Solme refused, or no main-server replica runs."),
    )
)]
pub(super) async fn server_add(
    state: Shared,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&request)?;
    let add: ServerAdd = serde_json::from_value(json_body(&body)?).map_err(|e| {
        ApiError::bad(format!(
            "expected {{\"name\": NAME, \"customer\": CUSTOMER}} or {{\"name\", \"id\"}}, with \
             \"sync\": \"direct\"|\"email\"|\"daily\"|\"weekly\": {e}"
        ))
    })?;
    let sim = state.sim.clone();
    let answer = web::block(move || add_server(&sim, add))
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("adding a server: {e}")))??;
    Ok(HttpResponse::Ok().json(answer))
}

/// `POST /v1/servers/{name}/reinstall`.
#[utoipa::path(
    post, path = "/v1/servers/{name}/reinstall", tag = "world", operation_id = "server_reinstall",
    summary = "Reinstalls a license server: a new key pair on the same id.",
    description = "Its local server is stopped, its data directory wiped and set up again on the same id (a new key pair, nothing synchronized), and started on the same port. Solme refuses its syncs (`ID_IN_USE`) until the old key pair is cleared.",
    params(("name" = String, Path, description = "The server's name, e.g. `local-server-1`.")),
    responses(
        (status = 200, description = "The server, its program and what was done.", body = ServerAnswer),
        (status = 404, description = "`NOT_FOUND`: no such license server."),
        (status = 409, description = "`CONFLICT`: a fault is on it (switch it off first)."),
    )
)]
pub(super) async fn server_reinstall(
    state: Shared,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&request)?;
    let name = path.into_inner();
    let sim = state.sim.clone();
    let answer = web::block(move || reinstall(&sim, &name))
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("reinstalling a server: {e}")))??;
    Ok(HttpResponse::Ok().json(answer))
}
