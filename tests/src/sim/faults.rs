//! Faults on demand (`POST /v1/faults`, `solme-sim fault …`): the simulation's programs
//! killed, stopped, restarted, and a local server's database held locked, each switched
//! on and off while everything else runs.
//!
//! How each fault is made:
//! - `kill` (on): SIGKILL to the program's `serve`, as a crash; (off) its `serve` started
//!   again on the same ports, data directory and clock file.
//! - `stop` (on): SIGSTOP, so the process holds its sockets but answers nothing (a hung
//!   program: clients time out instead of being refused); (off): SIGCONT.
//! - `restart` (on only, done at once): SIGTERM, wait for the exit, start again on the
//!   same ports, data directory and clock file (a stopped program is continued first).
//! - `db-lock` (local servers; on for `seconds`, or until off): a SQLite connection in
//!   this process holds `BEGIN IMMEDIATE` on the local server's database, as another
//!   program holding its write lock would; its check-outs then wait and answer
//!   `503 UNAVAILABLE`.
//!
//! Signals go through `rustix` to the process id the simulation started, never through
//! a `kill` command. The processes live here, under one lock, so two faults on the same
//! program never interleave; every change is recorded in the event log.
//!
//! - `port-drop`, `port-hang`, `port-refuse`, `port-slow` (`ms`), `port-cut`,
//!   `rogue-endpoint` (on `main-server`, `port` 443, 8080 or both): the relay in front
//!   of that sync port lets no new connection be established, holds them unanswered, is
//!   closed, delays the answer, cuts it after the request, or answers with a
//!   certificate from another CA ([`super::fault_net`]).
//! - `client-force` (on a local server, with `feature` and `code`): that feature's
//!   check-outs answered `code` (or granted) by a front before the server's client API
//!   ([`super::fault_client`]).
//! - `mail-lost`, `mail-delay` (`seconds`), `mail-duplicate`, `mail-mangle` (`mangle`),
//!   `mail-unregistered` (on `mail-gateway`): the customers' mail to licensing@ as the
//!   simulation sends it ([`super::fault_mail`]).
//! - `customer-mail-lost`, `customer-mail-delay` (`seconds`) (on `mail-gateway`):
//!   Solme's mail on the way to the customer's mailbox ([`super::fault_customer_mail`]).
//! - `proxy-auth`, `proxy-refuse`, `proxy-down` (on `customer-proxy`, in a simulation
//!   started with `--customer-proxy`): the customer's proxy answers 407 whatever the
//!   credentials, 403 to every tunnel, or is closed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use rustix::process::{kill_process, Pid, Signal};
use serde::{Deserialize, Serialize};
use test_harness::{LocalServer, MailGateway, MainServer};
use utoipa::ToSchema;

use super::control_api::{ApiError, Shared};
use super::events::{EventLog, What};
use super::fault_client;
use super::fault_customer_mail::{self, CustomerMailFault};
use super::fault_mail::{self, MailFault};
use super::fault_net::{self, Network, PortMode, ProxyMode, SyncPort, MAX_SLOW_MS};
use super::world::Program;

/// The longest a database lock may be asked for, in seconds.
pub const MAX_LOCK_SECONDS: u64 = 3600;
/// A database lock's length when the request gives none.
pub const DEFAULT_LOCK_SECONDS: u64 = 30;

/// A local server as the simulation runs it: restarted on the address it had.
pub struct Local {
    /// `local-server-1`, …
    pub name: String,
    pub server: LocalServer,
    /// Its client API's address (`127.0.0.1:PORT`).
    pub listen: String,
    /// The flags of its `serve` beyond the data directory and the address.
    pub flags: Vec<String>,
}

/// The programs' processes, held so that faults can end and start them.
pub struct Processes {
    pub main: MainServer,
    pub gateway: MailGateway,
    /// The gateway's flags beyond the harness's defaults (clock file, intervals); its
    /// ports are added at a restart.
    pub gateway_flags: Vec<String>,
    pub locals: Vec<Local>,
    /// The second and later main-server replicas (`main-server-2`, …) on the first's
    /// PostgreSQL database; `main` is the first.
    pub replicas: Vec<MainServer>,
}

/// Where `main-server-N` (N ≥ 2) is in [`Processes::replicas`].
fn replica_index(program: &str) -> Option<usize> {
    let n: usize = program.strip_prefix("main-server-")?.parse().ok()?;
    n.checked_sub(2)
}

/// Which fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Kill,
    Stop,
    Restart,
    DbLock,
    PortDrop,
    PortHang,
    PortRefuse,
    PortSlow,
    PortCut,
    RogueEndpoint,
    ProxyAuth,
    ProxyRefuse,
    ProxyDown,
    ClientForce,
    MailLost,
    MailDelay,
    MailDuplicate,
    MailMangle,
    MailUnregistered,
    CustomerMailLost,
    CustomerMailDelay,
}

/// The program name the customer's proxy faults are made on.
pub const CUSTOMER_PROXY: &str = "customer-proxy";

impl FaultKind {
    /// Every fault, in the order `solme-sim fault --help` lists them.
    pub const ALL: [FaultKind; 21] = [
        Self::Kill,
        Self::Stop,
        Self::Restart,
        Self::DbLock,
        Self::PortDrop,
        Self::PortHang,
        Self::PortRefuse,
        Self::PortSlow,
        Self::PortCut,
        Self::RogueEndpoint,
        Self::ProxyAuth,
        Self::ProxyRefuse,
        Self::ProxyDown,
        Self::ClientForce,
        Self::MailLost,
        Self::MailDelay,
        Self::MailDuplicate,
        Self::MailMangle,
        Self::MailUnregistered,
        Self::CustomerMailLost,
        Self::CustomerMailDelay,
    ];

    /// The fault's name in the API, the CLI and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::DbLock => "db-lock",
            Self::PortDrop => "port-drop",
            Self::PortHang => "port-hang",
            Self::PortRefuse => "port-refuse",
            Self::PortSlow => "port-slow",
            Self::PortCut => "port-cut",
            Self::RogueEndpoint => "rogue-endpoint",
            Self::ProxyAuth => "proxy-auth",
            Self::ProxyRefuse => "proxy-refuse",
            Self::ProxyDown => "proxy-down",
            Self::ClientForce => "client-force",
            Self::MailLost => "mail-lost",
            Self::MailDelay => "mail-delay",
            Self::MailDuplicate => "mail-duplicate",
            Self::MailMangle => "mail-mangle",
            Self::MailUnregistered => "mail-unregistered",
            Self::CustomerMailLost => "customer-mail-lost",
            Self::CustomerMailDelay => "customer-mail-delay",
        }
    }

    /// The relay's mode this fault puts a sync port in.
    fn port_mode(self, ms: u64) -> Option<PortMode> {
        Some(match self {
            Self::PortDrop => PortMode::Drop,
            Self::PortHang => PortMode::Hang,
            Self::PortRefuse => PortMode::Refuse,
            Self::PortSlow => PortMode::Slow(ms),
            Self::PortCut => PortMode::Cut,
            Self::RogueEndpoint => PortMode::Rogue,
            _ => return None,
        })
    }

    /// The customer's proxy's mode this fault puts it in.
    fn proxy_mode(self) -> Option<ProxyMode> {
        Some(match self {
            Self::ProxyAuth => ProxyMode::Auth,
            Self::ProxyRefuse => ProxyMode::Refuse,
            Self::ProxyDown => ProxyMode::Down,
            _ => return None,
        })
    }
}

/// What `POST /v1/faults` asks for.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    pub fault: FaultKind,
    /// Switch it on (true) or off (false).
    pub on: bool,
    /// The program it is made on: `main-server`, `mail-gateway`, `local-server-1`, …
    pub program: String,
    /// `db-lock`: how long the lock is held, in seconds (1 to 3600; 30 when not given).
    #[schema(minimum = 1, maximum = 3600)]
    pub seconds: Option<u64>,
    /// Port faults: which of the main server's sync ports, as the local servers see
    /// them: `443`, `8080` or `both`.
    #[serde(default)]
    #[schema(example = "443")]
    pub port: Option<String>,
    /// `port-slow`: how long each piece of the answer is held, in milliseconds (1 to
    /// 120000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 120000)]
    pub ms: Option<u64>,
    /// `client-force`: the feature whose check-outs are forced (off: that feature's
    /// forced answer ends; without it, every one of the server's).
    #[serde(default)]
    #[schema(example = "solme-cad")]
    pub feature: Option<String>,
    /// `client-force`: what it answers: `granted`, or a refusal code (`NO_SEATS`, …).
    #[serde(default)]
    #[schema(example = "NO_SEATS")]
    pub code: Option<String>,
    /// `mail-mangle`: how the sync data is changed on the way: `crlf`, `rewrapped`,
    /// `quoted-printable`, `base64` or `inline`.
    #[serde(default)]
    #[schema(example = "crlf")]
    pub mangle: Option<String>,
}

/// What a fault request did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FaultAnswer {
    pub fault: FaultKind,
    pub program: String,
    pub on: bool,
    /// Whether anything changed (false: it was already so).
    pub changed: bool,
    /// What was done, for people.
    pub done: String,
    /// The program's process now (None while it is killed).
    pub pid: Option<u32>,
}

/// A fault that is on now, as `GET /v1/status` lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActiveFault {
    pub fault: FaultKind,
    pub program: String,
    pub since: DateTime<Utc>,
    /// When it ends by itself (a database lock), if it does.
    pub until: Option<DateTime<Utc>>,
    /// A port fault's port (`443` or `8080`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// `port-slow`'s delay in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    /// `client-force`: the feature and what it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `mail-delay`'s seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// `mail-mangle`'s change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mangle: Option<String>,
}

/// Why a fault request was refused; nothing was changed.
#[derive(Debug)]
pub enum FaultError {
    /// Bad input (400).
    Malformed(String),
    /// No such program (404).
    NoProgram(String),
    /// Not possible in the program's present state (409), e.g. stopping a killed one.
    Conflict(String),
    /// Not possible in this simulation (422), e.g. a database lock on the gateway.
    Unsupported(String),
    /// Something failed while doing it (500).
    Failed(anyhow::Error),
}

/// A program as `GET /v1/status` shows it: as the simulation started it, with its
/// process now (none while killed) and its state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramNow {
    #[serde(flatten)]
    pub program: Program,
    pub state: ProgramState,
}

/// Whether a program runs, or which fault keeps it from running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProgramState {
    Running,
    /// SIGSTOP (the `stop` fault): it holds its ports and answers nothing.
    Stopped,
    /// SIGKILL (the `kill` fault): its ports refuse connections.
    Killed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Stopped,
    Killed,
}

struct DbLock {
    release: mpsc::Sender<()>,
    /// The holder: joined at a release, so the lock is gone (and its end recorded) when
    /// the answer says so.
    holder: std::thread::JoinHandle<()>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    /// Tells this lock from a later one on the same program, so an ending lock's thread
    /// never removes its successor.
    generation: u64,
}

struct Inner {
    processes: Processes,
    /// Programs not running normally (absent: running).
    states: BTreeMap<String, (State, DateTime<Utc>)>,
}

/// The faults of one simulation and the processes they act on.
pub struct Faults {
    inner: Mutex<Inner>,
    /// Held while a network fault is switched: one at a time.
    network_switch: Mutex<()>,
    locks: Arc<Mutex<BTreeMap<String, DbLock>>>,
    generation: std::sync::atomic::AtomicU64,
    events: Arc<EventLog>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").finish_non_exhaustive()
    }
}

fn relock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the processes as they were: keep going.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn signal(pid: u32, signal: Signal) -> Result<(), FaultError> {
    let raw = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| FaultError::Failed(anyhow::anyhow!("process id {pid} is not valid")))?;
    kill_process(raw, signal)
        .with_context(|| format!("signalling process {pid}"))
        .map_err(FaultError::Failed)
}

impl Processes {
    fn pid(&self, program: &str) -> Option<u32> {
        if let Some(replica) = replica_index(program).and_then(|i| self.replicas.get(i)) {
            return Some(replica.pid());
        }
        match program {
            "main-server" => Some(self.main.pid()),
            "mail-gateway" => Some(self.gateway.pid()),
            name => self
                .locals
                .iter()
                .find(|local| local.name == name)
                .and_then(|local| local.server.pid()),
        }
    }

    fn has(&self, program: &str) -> bool {
        matches!(program, "main-server" | "mail-gateway")
            || self.locals.iter().any(|local| local.name == program)
            || replica_index(program).is_some_and(|i| i < self.replicas.len())
    }

    fn replica(&mut self, program: &str) -> Option<&mut MainServer> {
        replica_index(program).and_then(|i| self.replicas.get_mut(i))
    }

    fn local(&mut self, program: &str) -> Option<&mut Local> {
        self.locals.iter_mut().find(|local| local.name == program)
    }

    /// Kills the program's process (SIGKILL) and reaps it.
    fn kill(&mut self, program: &str) {
        if let Some(replica) = self.replica(program) {
            return replica.kill();
        }
        match program {
            "main-server" => self.main.kill(),
            "mail-gateway" => self.gateway.kill(),
            name => {
                if let Some(local) = self.local(name) {
                    local.server.kill();
                }
            }
        }
    }

    /// Asks the program to stop (SIGTERM) and waits for it.
    fn stop(&mut self, program: &str) -> Result<()> {
        if let Some(replica) = self.replica(program) {
            return replica.stop();
        }
        match program {
            "main-server" => self.main.stop(),
            "mail-gateway" => self.gateway.stop(),
            name => match self.local(name) {
                Some(local) => local.server.stop(),
                None => Ok(()),
            },
        }
    }

    /// Starts the program's `serve` again on its ports, data directory and clock file.
    fn start(&mut self, program: &str) -> Result<u32> {
        if let Some(replica) = self.replica(program) {
            replica.start_again()?;
            return Ok(replica.pid());
        }
        match program {
            "main-server" => {
                self.main.start_again()?;
                Ok(self.main.pid())
            }
            "mail-gateway" => {
                let (smtp, http) = (self.gateway.smtp.to_string(), self.gateway.http.to_string());
                let mut flags: Vec<&str> = self.gateway_flags.iter().map(String::as_str).collect();
                flags.extend(["--smtp-listen", &smtp, "--http-listen", &http]);
                let dir = self.gateway.dir.clone();
                self.gateway = MailGateway::start_with(&dir, &self.main, &flags)?;
                Ok(self.gateway.pid())
            }
            name => {
                let local = self.local(name).context("no such local server")?;
                let flags: Vec<&str> = local.flags.iter().map(String::as_str).collect();
                local.server.serve_at(&local.listen, &flags)?;
                local.server.pid().context("the local server did not start")
            }
        }
    }
}

impl Faults {
    pub fn new(processes: Processes, events: Arc<EventLog>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                processes,
                states: BTreeMap::new(),
            }),
            network_switch: Mutex::new(()),
            locks: Arc::new(Mutex::new(BTreeMap::new())),
            generation: std::sync::atomic::AtomicU64::new(0),
            events,
        }
    }

    /// Runs `change` on the processes under the faults' lock, so that a change of the
    /// world (a local server added or reinstalled) never interleaves with a fault; it
    /// is told whether a fault is on `program` now.
    pub fn with_processes<R>(
        &self,
        program: &str,
        change: impl FnOnce(&mut Processes, bool) -> R,
    ) -> R {
        let mut inner = relock(&self.inner);
        let faulted =
            inner.states.contains_key(program) || relock(&self.locks).contains_key(program);
        change(&mut inner.processes, faulted)
    }

    /// The programs as they are now: each with its present process id (none while
    /// killed) and `state` (`running`, `stopped`, `killed`).
    pub fn programs_now(&self, programs: &[Program]) -> Vec<ProgramNow> {
        let inner = relock(&self.inner);
        programs
            .iter()
            .map(|program| {
                let state = inner.states.get(&program.name).map(|(state, _)| *state);
                let mut now = program.clone();
                if inner.processes.has(&program.name) {
                    now.pid = match state {
                        Some(State::Killed) => None,
                        _ => inner.processes.pid(&program.name),
                    };
                }
                ProgramNow {
                    program: now,
                    state: match state {
                        None | Some(State::Running) => ProgramState::Running,
                        Some(State::Stopped) => ProgramState::Stopped,
                        Some(State::Killed) => ProgramState::Killed,
                    },
                }
            })
            .collect()
    }

    /// The faults on now.
    pub fn active(&self) -> Vec<ActiveFault> {
        let mut active: Vec<ActiveFault> = relock(&self.inner)
            .states
            .iter()
            .filter_map(|(program, (state, since))| {
                let fault = match state {
                    State::Running => return None,
                    State::Stopped => FaultKind::Stop,
                    State::Killed => FaultKind::Kill,
                };
                Some(ActiveFault {
                    fault,
                    program: program.clone(),
                    since: *since,
                    until: None,
                    port: None,
                    ms: None,
                    feature: None,
                    code: None,
                    seconds: None,
                    mangle: None,
                })
            })
            .collect();
        active.extend(
            relock(&self.locks)
                .iter()
                .map(|(program, lock)| ActiveFault {
                    fault: FaultKind::DbLock,
                    program: program.clone(),
                    since: lock.since,
                    until: Some(lock.until),
                    port: None,
                    ms: None,
                    feature: None,
                    code: None,
                    seconds: None,
                    mangle: None,
                }),
        );
        if let Some(network) = fault_net::network() {
            active.extend(network_faults(network));
        }
        active.extend(
            fault_client::active()
                .into_iter()
                .map(|(program, feature, forced)| ActiveFault {
                    fault: FaultKind::ClientForce,
                    program,
                    since: Utc::now(),
                    until: None,
                    port: None,
                    ms: None,
                    feature: Some(feature),
                    code: Some(forced.name()),
                    seconds: None,
                    mangle: None,
                }),
        );
        if let Some((fault, since)) = fault_customer_mail::current() {
            active.push(ActiveFault {
                fault: match fault {
                    CustomerMailFault::Lost => FaultKind::CustomerMailLost,
                    CustomerMailFault::Delay(_) => FaultKind::CustomerMailDelay,
                },
                program: "mail-gateway".to_string(),
                since: since.into(),
                until: None,
                port: None,
                ms: None,
                feature: None,
                code: None,
                seconds: match fault {
                    CustomerMailFault::Delay(seconds) => Some(seconds),
                    CustomerMailFault::Lost => None,
                },
                mangle: None,
            });
        }
        if let Some((fault, since)) = fault_mail::current() {
            active.push(ActiveFault {
                fault: mail_kind(fault),
                program: "mail-gateway".to_string(),
                since,
                until: None,
                port: None,
                ms: None,
                feature: None,
                code: None,
                seconds: match fault {
                    MailFault::Delay(seconds) => Some(seconds),
                    _ => None,
                },
                mangle: match fault {
                    MailFault::Mangle(how) => Some(how.name().to_string()),
                    _ => None,
                },
            });
        }
        active
    }

    /// Does what `request` asks, or refuses it having changed nothing.
    pub fn apply(&self, request: &FaultRequest) -> Result<FaultAnswer, FaultError> {
        let network_fault =
            request.fault.port_mode(0).is_some() || request.fault.proxy_mode().is_some();
        if request.fault != FaultKind::ClientForce
            && (request.feature.is_some() || request.code.is_some())
        {
            return Err(FaultError::Malformed(
                "\"feature\" and \"code\" are for client-force only".to_string(),
            ));
        }
        if request.fault == FaultKind::ClientForce {
            return self.apply_client(request);
        }
        if request.mangle.is_some() && request.fault != FaultKind::MailMangle {
            return Err(FaultError::Malformed(
                "\"mangle\" is for mail-mangle only".to_string(),
            ));
        }
        if let Some(mail) = self.mail_fault(request)? {
            return Ok(mail);
        }
        if let Some(mail) = self.customer_mail_fault(request)? {
            return Ok(mail);
        }
        if !network_fault && (request.port.is_some() || request.ms.is_some()) {
            return Err(FaultError::Malformed(
                "\"port\" and \"ms\" are for the port faults only".to_string(),
            ));
        }
        if network_fault {
            return self.apply_network(request);
        }
        let mut inner = relock(&self.inner);
        let program = request.program.as_str();
        if !inner.processes.has(program) {
            let mut names = vec!["main-server".to_string(), "mail-gateway".to_string()];
            names.extend(
                (0..inner.processes.replicas.len()).map(|i| format!("main-server-{}", i + 2)),
            );
            names.extend(inner.processes.locals.iter().map(|l| l.name.clone()));
            return Err(FaultError::NoProgram(format!(
                "no program {program:?} in this simulation; there are {}",
                names.join(", ")
            )));
        }
        let state = inner
            .states
            .get(program)
            .map_or(State::Running, |(state, _)| *state);
        let answer = |changed: bool, done: String, pid: Option<u32>| FaultAnswer {
            fault: request.fault,
            program: program.to_string(),
            on: request.on,
            changed,
            done,
            pid,
        };
        if request.seconds.is_some() && request.fault != FaultKind::DbLock {
            return Err(FaultError::Malformed(
                "\"seconds\" is for db-lock only".to_string(),
            ));
        }
        match (request.fault, request.on) {
            (FaultKind::Kill, true) => {
                if state == State::Killed {
                    return Ok(answer(false, format!("{program} is already killed"), None));
                }
                let pid = inner.processes.pid(program);
                inner.processes.kill(program);
                inner
                    .states
                    .insert(program.to_string(), (State::Killed, Utc::now()));
                self.stopped(program, pid, "killed");
                self.fault_event(request, "killed with SIGKILL");
                Ok(answer(
                    true,
                    format!(
                        "{program} killed (SIGKILL); its ports refuse connections until the \
                         fault is switched off"
                    ),
                    None,
                ))
            }
            (FaultKind::Kill, false) => {
                if state != State::Killed {
                    let pid = inner.processes.pid(program);
                    return Ok(answer(false, format!("{program} is not killed"), pid));
                }
                let pid = self.start(&mut inner, program)?;
                self.fault_event(request, "started again");
                Ok(answer(
                    true,
                    format!(
                        "{program} started again (process {pid}) on the same ports, data \
                         directory and clock file"
                    ),
                    Some(pid),
                ))
            }
            (FaultKind::Stop, true) => {
                let pid = inner.processes.pid(program);
                match (state, pid) {
                    (State::Stopped, _) => {
                        Ok(answer(false, format!("{program} is already stopped"), pid))
                    }
                    (State::Killed, _) | (_, None) => Err(FaultError::Conflict(format!(
                        "{program} is not running (killed): switch the kill fault off first"
                    ))),
                    (State::Running, Some(pid)) => {
                        signal(pid, Signal::STOP)?;
                        inner
                            .states
                            .insert(program.to_string(), (State::Stopped, Utc::now()));
                        self.fault_event(request, "stopped with SIGSTOP");
                        Ok(answer(
                            true,
                            format!(
                                "{program} stopped (SIGSTOP): it keeps its ports but answers \
                                 nothing, so its clients time out"
                            ),
                            Some(pid),
                        ))
                    }
                }
            }
            (FaultKind::Stop, false) => {
                let pid = inner.processes.pid(program);
                match (state, pid) {
                    (State::Stopped, Some(pid)) => {
                        signal(pid, Signal::CONT)?;
                        inner.states.remove(program);
                        self.fault_event(request, "continued with SIGCONT");
                        Ok(answer(
                            true,
                            format!("{program} continued (SIGCONT)"),
                            Some(pid),
                        ))
                    }
                    _ => Ok(answer(false, format!("{program} is not stopped"), pid)),
                }
            }
            (FaultKind::Restart, false) => Err(FaultError::Malformed(
                "restart is done at once and stays on for nothing: send \"on\": true".to_string(),
            )),
            (FaultKind::Restart, true) => {
                let old = inner.processes.pid(program);
                if state == State::Stopped {
                    if let Some(pid) = old {
                        signal(pid, Signal::CONT)?;
                    }
                }
                if state != State::Killed {
                    inner.processes.stop(program).map_err(FaultError::Failed)?;
                    self.stopped(program, old, "stopped");
                }
                let pid = self.start(&mut inner, program)?;
                self.fault_event(request, "restarted");
                Ok(answer(
                    true,
                    format!(
                        "{program} restarted (process {pid}) on the same ports, data directory \
                         and clock file"
                    ),
                    Some(pid),
                ))
            }
            (
                FaultKind::PortDrop
                | FaultKind::PortHang
                | FaultKind::PortRefuse
                | FaultKind::PortSlow
                | FaultKind::PortCut
                | FaultKind::RogueEndpoint
                | FaultKind::ProxyAuth
                | FaultKind::ProxyRefuse
                | FaultKind::ProxyDown
                | FaultKind::ClientForce
                | FaultKind::MailLost
                | FaultKind::MailDelay
                | FaultKind::MailDuplicate
                | FaultKind::MailMangle
                | FaultKind::MailUnregistered
                | FaultKind::CustomerMailLost
                | FaultKind::CustomerMailDelay,
                _,
            ) => {
                drop(inner);
                self.apply_network(request)
            }
            (FaultKind::DbLock, on) => {
                let Some(local) = inner.processes.local(program) else {
                    return Err(FaultError::Unsupported(format!(
                        "db-lock holds a local server's SQLite database; {program} has none \
                         to lock here"
                    )));
                };
                let database = local.server.dir.join("local.db");
                drop(inner);
                if on {
                    self.lock_database(request, database)
                        .map(|(done, pid)| answer(true, done, pid))
                } else {
                    let pid = relock(&self.inner).processes.pid(program);
                    let removed = relock(&self.locks).remove(program);
                    match removed {
                        Some(lock) => {
                            // The holder rolls back, closes the connection and records the
                            // fault's end.
                            let _ = lock.release.send(());
                            let _ = lock.holder.join();
                            Ok(answer(
                                true,
                                format!("{program}'s database lock released"),
                                pid,
                            ))
                        }
                        None => Ok(answer(
                            false,
                            format!("{program}'s database is not locked"),
                            pid,
                        )),
                    }
                }
            }
        }
    }

    /// Holds `BEGIN IMMEDIATE` on `database` on a thread of its own for the request's
    /// seconds, or until released. Answers once the lock is held (or why it cannot be).
    fn lock_database(
        &self,
        request: &FaultRequest,
        database: PathBuf,
    ) -> Result<(String, Option<u32>), FaultError> {
        let seconds = request.seconds.unwrap_or(DEFAULT_LOCK_SECONDS);
        if !(1..=MAX_LOCK_SECONDS).contains(&seconds) {
            return Err(FaultError::Malformed(format!(
                "\"seconds\" must be from 1 to {MAX_LOCK_SECONDS}"
            )));
        }
        let program = request.program.clone();
        let mut locks = relock(&self.locks);
        if let Some(lock) = locks.get(&program) {
            return Err(FaultError::Conflict(format!(
                "{program}'s database is already locked until {}; switch it off first",
                lock.until
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        let (release, released) = mpsc::channel::<()>();
        let (held_tx, held) = mpsc::channel::<Result<()>>();
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let all_locks = self.locks.clone();
        let events = self.events.clone();
        let name = program.clone();
        let holder = std::thread::Builder::new()
            .name(format!("db-lock {program}"))
            .spawn(move || {
                let mut connection = match take_write_lock(&database) {
                    Ok(connection) => {
                        let _ = held_tx.send(Ok(()));
                        connection
                    }
                    Err(error) => {
                        let _ = held_tx.send(Err(error));
                        return;
                    }
                };
                let how = match released.recv_timeout(Duration::from_secs(seconds)) {
                    Err(RecvTimeoutError::Timeout) => "its time ran out",
                    _ => "switched off",
                };
                let _ = diesel::sql_query("ROLLBACK").execute(&mut connection);
                drop(connection);
                let mut locks = relock(&all_locks);
                if locks.get(&name).is_some_and(|l| l.generation == generation) {
                    locks.remove(&name);
                }
                drop(locks);
                events.record(What::FaultOff {
                    fault: FaultKind::DbLock.name().to_string(),
                    program: Some(name),
                    detail: format!("database lock released: {how}"),
                });
            })
            .context("starting the database lock's thread")
            .map_err(FaultError::Failed)?;
        held.recv()
            .context("the database lock's thread ended")
            .and_then(|held| held)
            .map_err(FaultError::Failed)?;
        let since = Utc::now();
        let until = since + chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX));
        locks.insert(
            program.clone(),
            DbLock {
                release,
                holder,
                since,
                until,
                generation,
            },
        );
        drop(locks);
        self.fault_event(request, &format!("write lock held for {seconds} s"));
        let pid = relock(&self.inner).processes.pid(&program);
        Ok((
            format!(
                "{program}'s database write-locked for {seconds} s by another connection \
                 (BEGIN IMMEDIATE); its check-outs wait, then answer UNAVAILABLE"
            ),
            pid,
        ))
    }

    /// The mail faults on the way to licensing@ ([`fault_mail`]); None for any other
    /// fault. One at a time.
    fn mail_fault(&self, request: &FaultRequest) -> Result<Option<FaultAnswer>, FaultError> {
        let wanted = match request.fault {
            FaultKind::MailLost => MailFault::Lost,
            FaultKind::MailDuplicate => MailFault::Duplicate,
            FaultKind::MailUnregistered => MailFault::Unregistered,
            FaultKind::MailDelay => MailFault::Delay(match (request.on, request.seconds) {
                (_, Some(seconds)) if (1..=fault_mail::MAX_DELAY_SECONDS).contains(&seconds) => {
                    seconds
                }
                (false, None) => 0,
                _ => {
                    return Err(FaultError::Malformed(format!(
                        "mail-delay needs \"seconds\" from 1 to {}",
                        fault_mail::MAX_DELAY_SECONDS
                    )))
                }
            }),
            FaultKind::MailMangle => {
                match (
                    request.on,
                    request.mangle.as_deref().map(fault_mail::Mangle::parse),
                ) {
                    (_, Some(Some(how))) => MailFault::Mangle(how),
                    (false, None) => MailFault::Mangle(fault_mail::Mangle::Crlf),
                    _ => {
                        return Err(FaultError::Malformed(format!(
                            "mail-mangle needs \"mangle\": {}",
                            fault_mail::Mangle::NAMES
                        )))
                    }
                }
            }
            _ => return Ok(None),
        };
        let fault = request.fault.name();
        if request.program != "mail-gateway" {
            return Err(FaultError::Malformed(format!(
                "{fault} is made on the way to licensing@: give \"program\": \"mail-gateway\""
            )));
        }
        if request.port.is_some() || request.ms.is_some() {
            return Err(FaultError::Malformed(format!(
                "{fault} takes no \"port\" or \"ms\""
            )));
        }
        if request.seconds.is_some() && request.fault != FaultKind::MailDelay {
            return Err(FaultError::Malformed(format!(
                "{fault} takes no \"seconds\""
            )));
        }
        let _one_at_a_time = relock(&self.network_switch);
        let now = fault_mail::current().map(|(fault, _)| fault);
        let answer = |changed: bool, done: String| FaultAnswer {
            fault: request.fault,
            program: request.program.clone(),
            on: request.on,
            changed,
            done,
            pid: None,
        };
        let same_kind = now.is_some_and(|now| now.fault() == wanted.fault());
        if !request.on {
            if !same_kind {
                return Ok(Some(answer(
                    false,
                    format!("{fault} is not on: mail to licensing@ is not under it"),
                )));
            }
            fault_mail::set(None);
            let done = "mail to licensing@ goes through untouched again".to_string();
            self.fault_event(request, &done);
            return Ok(Some(answer(true, done)));
        }
        if now == Some(wanted) {
            return Ok(Some(answer(
                false,
                format!("already: {}", wanted.describe()),
            )));
        }
        if let Some(now) = now.filter(|_| !same_kind) {
            return Err(FaultError::Conflict(format!(
                "mail to licensing@ is under {} now: switch that off first",
                now.fault()
            )));
        }
        fault_mail::set(Some(wanted));
        let done = wanted.describe();
        self.fault_event(request, &done);
        Ok(Some(answer(true, done)))
    }

    /// Solme's mail to the customer lost or delayed on the way to the mailbox
    /// ([`fault_customer_mail`]); None for any other fault. One at a time.
    fn customer_mail_fault(
        &self,
        request: &FaultRequest,
    ) -> Result<Option<FaultAnswer>, FaultError> {
        let wanted = match (request.fault, request.on, request.seconds) {
            (FaultKind::CustomerMailLost, _, None) => CustomerMailFault::Lost,
            (FaultKind::CustomerMailLost, _, Some(_)) => {
                return Err(FaultError::Malformed(
                    "customer-mail-lost takes no \"seconds\"".to_string(),
                ))
            }
            (FaultKind::CustomerMailDelay, _, Some(seconds))
                if (1..=fault_customer_mail::MAX_DELAY_SECONDS).contains(&seconds) =>
            {
                CustomerMailFault::Delay(seconds)
            }
            (FaultKind::CustomerMailDelay, false, None) => CustomerMailFault::Delay(0),
            (FaultKind::CustomerMailDelay, _, _) => {
                return Err(FaultError::Malformed(format!(
                    "customer-mail-delay needs \"seconds\" from 1 to {}",
                    fault_customer_mail::MAX_DELAY_SECONDS
                )))
            }
            _ => return Ok(None),
        };
        let fault = request.fault.name();
        if request.program != "mail-gateway" {
            return Err(FaultError::Malformed(format!(
                "{fault} is made on the way from Solme's gateway to the customer: give \
                 \"program\": \"mail-gateway\""
            )));
        }
        if request.port.is_some() || request.ms.is_some() {
            return Err(FaultError::Malformed(format!(
                "{fault} takes no \"port\" or \"ms\""
            )));
        }
        let _one_at_a_time = relock(&self.network_switch);
        let now = fault_customer_mail::current().map(|(fault, _)| fault);
        let same_kind = |fault: CustomerMailFault| {
            std::mem::discriminant(&fault) == std::mem::discriminant(&wanted)
        };
        let answer = |changed: bool, done: String| FaultAnswer {
            fault: request.fault,
            program: request.program.clone(),
            on: request.on,
            changed,
            done,
            pid: None,
        };
        if !request.on {
            if !now.is_some_and(same_kind) {
                return Ok(Some(answer(
                    false,
                    format!("{fault} is not on: Solme's mail to the customer is not under it"),
                )));
            }
            fault_customer_mail::set(None);
            let done = "Solme's mail reaches the customer again (mail lost meanwhile stays \
                        lost)"
                .to_string();
            self.fault_event(request, &done);
            return Ok(Some(answer(true, done)));
        }
        if now == Some(wanted) {
            return Ok(Some(answer(
                false,
                format!("already: {}", wanted.describe()),
            )));
        }
        if let Some(now) = now.filter(|now| !same_kind(*now)) {
            return Err(FaultError::Conflict(format!(
                "Solme's mail to the customer is under {} now: switch that off first",
                match now {
                    CustomerMailFault::Lost => "customer-mail-lost",
                    CustomerMailFault::Delay(_) => "customer-mail-delay",
                }
            )));
        }
        fault_customer_mail::set(Some(wanted));
        let done = wanted.describe();
        self.fault_event(request, &done);
        Ok(Some(answer(true, done)))
    }

    /// `client-force`: a feature's check-outs on a local server answered by the front the
    /// simulation puts before its client API ([`fault_client`]).
    fn apply_client(&self, request: &FaultRequest) -> Result<FaultAnswer, FaultError> {
        if request.seconds.is_some() || request.port.is_some() || request.ms.is_some() {
            return Err(FaultError::Malformed(
                "client-force takes \"feature\" and \"code\" only".to_string(),
            ));
        }
        let program = request.program.as_str();
        let mut inner = relock(&self.inner);
        if !inner.processes.has(program) {
            return Err(FaultError::NoProgram(format!(
                "no program {program:?} in this simulation"
            )));
        }
        let pid = inner.processes.pid(program);
        let Some(local) = inner.processes.local(program) else {
            return Err(FaultError::Malformed(format!(
                "client-force is made on a local server's client API; {program} has none"
            )));
        };
        let upstream = local.listen.clone();
        let clock_file = local
            .server
            .dir
            .parent()
            .map(|root| root.join("clock.json"))
            .filter(|file| file.is_file());
        drop(inner);
        let answer = |changed: bool, done: String| FaultAnswer {
            fault: request.fault,
            program: program.to_string(),
            on: request.on,
            changed,
            done,
            pid,
        };
        let feature = request.feature.as_deref().map(str::trim);
        if let Some(feature) = feature {
            if feature.is_empty() || feature.len() > 200 {
                return Err(FaultError::Malformed(
                    "\"feature\" must be a feature name (1 to 200 characters)".to_string(),
                ));
            }
        }
        if !request.on {
            if request.code.is_some() {
                return Err(FaultError::Malformed(
                    "switching client-force off takes no \"code\"".to_string(),
                ));
            }
            let ended = fault_client::release(program, feature);
            if ended.is_empty() {
                return Ok(answer(
                    false,
                    format!("no forced answer on {program}'s client API to end"),
                ));
            }
            let done = format!(
                "{program}'s client API answers {} as the server does again",
                ended.join(", ")
            );
            self.fault_event(request, &done);
            return Ok(answer(true, done));
        }
        let (Some(feature), Some(code)) = (feature, request.code.as_deref()) else {
            return Err(FaultError::Malformed(
                "client-force needs \"feature\" and \"code\" (granted, or a code such as \
                 NO_SEATS)"
                    .to_string(),
            ));
        };
        let forced = fault_client::Forced::parse(code).map_err(FaultError::Malformed)?;
        let (url, changed) = fault_client::force(program, &upstream, clock_file, feature, forced)
            .map_err(FaultError::Failed)?;
        let done = format!(
            "check-outs of {feature} at {url} (in front of {program}'s client API, where \
             the simulation's client actions now go) answer {}; everything else is the \
             server's own answer",
            forced.name()
        );
        if changed {
            self.fault_event(request, &done);
        }
        Ok(answer(changed, done))
    }

    /// A fault on the main server's sync ports or on the customer's proxy: checked whole
    /// (every port it names can take it) before anything is switched.
    fn apply_network(&self, request: &FaultRequest) -> Result<FaultAnswer, FaultError> {
        if request.seconds.is_some() {
            return Err(FaultError::Malformed(
                "\"seconds\" is for db-lock only".to_string(),
            ));
        }
        let fault = request.fault.name();
        let Some(network) = fault_net::network() else {
            return Err(FaultError::Unsupported(
                "this simulation reaches the main server without relays, so its ports \
                 cannot be faulted"
                    .to_string(),
            ));
        };
        let _one_at_a_time = relock(&self.network_switch);
        let answer = |changed: bool, done: String, pid: Option<u32>| FaultAnswer {
            fault: request.fault,
            program: request.program.clone(),
            on: request.on,
            changed,
            done,
            pid,
        };
        if let Some(mode) = request.fault.proxy_mode() {
            if request.program != CUSTOMER_PROXY {
                return Err(FaultError::Malformed(format!(
                    "{fault} is made on the customer's proxy: give \"program\": \"{CUSTOMER_PROXY}\""
                )));
            }
            if request.port.is_some() || request.ms.is_some() {
                return Err(FaultError::Malformed(format!(
                    "{fault} takes no \"port\" or \"ms\""
                )));
            }
            let Some((now, _)) = network.proxy_mode() else {
                return Err(FaultError::Unsupported(
                    "this simulation's local servers reach Solme without a proxy: start it \
                     with --customer-proxy (world.customer_proxy in a scenario)"
                        .to_string(),
                ));
            };
            let target = if request.on { mode } else { ProxyMode::Pass };
            if now == target {
                let done = if request.on {
                    format!("the customer's proxy already {}", mode.describe())
                } else {
                    format!("the customer's proxy is not under {fault}")
                };
                return Ok(answer(false, done, None));
            }
            if request.on && now != ProxyMode::Pass {
                return Err(FaultError::Conflict(format!(
                    "the customer's proxy is under {} now: switch that off first",
                    now.fault().unwrap_or("another fault")
                )));
            }
            if !request.on && now != mode {
                return Ok(answer(
                    false,
                    format!("the customer's proxy is not under {fault}"),
                    None,
                ));
            }
            network.set_proxy(target).map_err(FaultError::Failed)?;
            let done = format!("the customer's proxy {}", target.describe());
            self.fault_event(request, &done);
            return Ok(answer(true, done, None));
        }
        if request.program != "main-server" {
            return Err(FaultError::Malformed(format!(
                "{fault} is made on the main server's sync ports: give \"program\": \
                 \"main-server\" and \"port\": 443, 8080 or both"
            )));
        }
        let ms = match (request.fault, request.ms) {
            (FaultKind::PortSlow, Some(ms)) if (1..=MAX_SLOW_MS).contains(&ms) => ms,
            (FaultKind::PortSlow, None) if !request.on => 0,
            (FaultKind::PortSlow, _) => {
                return Err(FaultError::Malformed(format!(
                    "port-slow needs \"ms\" from 1 to {MAX_SLOW_MS}"
                )))
            }
            (_, Some(_)) => {
                return Err(FaultError::Malformed(
                    "\"ms\" is for port-slow only".to_string(),
                ))
            }
            (_, None) => 0,
        };
        let mode = request.fault.port_mode(ms).unwrap_or(PortMode::Pass);
        let ports: Vec<Arc<SyncPort>> = match request.port.as_deref() {
            Some(name @ ("443" | "8080")) => network.ports_named(name),
            Some("both") => network.ports(),
            _ => {
                return Err(FaultError::Malformed(
                    "give \"port\": \"443\", \"8080\" or \"both\"".to_string(),
                ))
            }
        };
        // Checked whole first: a refused request switches no port.
        let mut changes = Vec::new();
        let mut unchanged = Vec::new();
        if ports.is_empty() {
            return Err(FaultError::Unsupported(
                "no local server reaches the main server through a relay yet".to_string(),
            ));
        }
        for port in &ports {
            let (now, _) = port.mode();
            let same_fault = now.fault() == Some(fault);
            if request.on {
                if now == mode {
                    unchanged.push(format!("port {} already {}", port.name, mode.describe()));
                } else if now == PortMode::Pass || same_fault {
                    changes.push((port.clone(), mode, now));
                } else {
                    return Err(FaultError::Conflict(format!(
                        "port {} is under {} now: switch that off first",
                        port.name,
                        now.fault().unwrap_or("another fault")
                    )));
                }
            } else if same_fault {
                changes.push((port.clone(), PortMode::Pass, now));
            } else {
                unchanged.push(format!("port {} is not under {fault}", port.name));
            }
        }
        let mut done = Vec::new();
        for (n, (port, mode, _)) in changes.iter().enumerate() {
            if let Err(error) = network.set_port(port, *mode) {
                // Put back the ports already switched: nothing half-applied.
                for (port, _, before) in changes.iter().take(n) {
                    let _ = network.set_port(port, *before);
                }
                return Err(FaultError::Failed(error));
            }
            done.push(format!(
                "port {} ({} in front of {}) now {}",
                port.name,
                port.front(),
                port.upstream,
                mode.describe()
            ));
        }
        let changed = !done.is_empty();
        if changed {
            self.fault_event(request, &done.join("; "));
        }
        done.extend(unchanged);
        let pid = relock(&self.inner).processes.pid("main-server");
        Ok(answer(changed, done.join("; "), pid))
    }

    fn start(&self, inner: &mut Inner, program: &str) -> Result<u32, FaultError> {
        let pid = inner
            .processes
            .start(program)
            .with_context(|| format!("starting {program} again"))
            .map_err(FaultError::Failed)?;
        inner.states.remove(program);
        self.events.record(What::ProgramStarted {
            program: program.to_string(),
            pid,
        });
        Ok(pid)
    }

    fn stopped(&self, program: &str, pid: Option<u32>, how: &str) {
        if let Some(pid) = pid {
            self.events.record(What::ProgramStopped {
                program: program.to_string(),
                pid,
                how: how.to_string(),
                status: None,
            });
        }
    }

    fn fault_event(&self, request: &FaultRequest, detail: &str) {
        let fault = request.fault.name().to_string();
        let program = Some(request.program.clone());
        let detail = detail.to_string();
        self.events.record(if request.on {
            What::FaultOn {
                fault,
                program,
                detail,
            }
        } else {
            What::FaultOff {
                fault,
                program,
                detail,
            }
        });
    }

    /// Ends the simulation: every lock released, every stopped program continued, then
    /// each running program stopped (SIGTERM), local servers first.
    pub fn stop_all(&self) -> Result<()> {
        let locks = std::mem::take(&mut *relock(&self.locks));
        for (_, lock) in locks {
            let _ = lock.release.send(());
            let _ = lock.holder.join();
        }
        let mut inner = relock(&self.inner);
        let mut names: Vec<String> = inner
            .processes
            .locals
            .iter()
            .map(|l| l.name.clone())
            .collect();
        names.push("mail-gateway".to_string());
        names.extend((0..inner.processes.replicas.len()).map(|i| format!("main-server-{}", i + 2)));
        names.push("main-server".to_string());
        for name in names {
            let state = inner.states.get(&name).map(|(state, _)| *state);
            let pid = inner.processes.pid(&name);
            if state == Some(State::Killed) {
                continue;
            }
            if state == Some(State::Stopped) {
                if let Some(pid) = pid {
                    let _ = signal(pid, Signal::CONT);
                }
            }
            inner.processes.stop(&name)?;
            self.stopped(&name, pid, "stopped");
        }
        Ok(())
    }
}

fn mail_kind(fault: MailFault) -> FaultKind {
    match fault {
        MailFault::Lost => FaultKind::MailLost,
        MailFault::Delay(_) => FaultKind::MailDelay,
        MailFault::Duplicate => FaultKind::MailDuplicate,
        MailFault::Mangle(_) => FaultKind::MailMangle,
        MailFault::Unregistered => FaultKind::MailUnregistered,
    }
}

/// The faults on now in the simulated network: each sync port not passing, and the
/// customer's proxy when it is not.
fn network_faults(network: &Network) -> Vec<ActiveFault> {
    let mut active = Vec::new();
    for port in network.ports() {
        let (mode, since) = port.mode();
        let fault = match mode {
            PortMode::Pass => continue,
            PortMode::Drop => FaultKind::PortDrop,
            PortMode::Hang => FaultKind::PortHang,
            PortMode::Refuse => FaultKind::PortRefuse,
            PortMode::Slow(_) => FaultKind::PortSlow,
            PortMode::Cut => FaultKind::PortCut,
            PortMode::Rogue => FaultKind::RogueEndpoint,
        };
        active.push(ActiveFault {
            fault,
            program: "main-server".to_string(),
            since,
            until: None,
            port: Some(port.name.to_string()),
            ms: match mode {
                PortMode::Slow(ms) => Some(ms),
                _ => None,
            },
            feature: None,
            code: None,
            seconds: None,
            mangle: None,
        });
    }
    if let Some((mode, since)) = network.proxy_mode() {
        let fault = match mode {
            ProxyMode::Pass => None,
            ProxyMode::Auth => Some(FaultKind::ProxyAuth),
            ProxyMode::Refuse => Some(FaultKind::ProxyRefuse),
            ProxyMode::Down => Some(FaultKind::ProxyDown),
        };
        if let Some(fault) = fault {
            active.push(ActiveFault {
                fault,
                program: CUSTOMER_PROXY.to_string(),
                since,
                until: None,
                port: None,
                ms: None,
                feature: None,
                code: None,
                seconds: None,
                mangle: None,
            });
        }
    }
    active
}

/// A connection to `database` holding its write lock (`BEGIN IMMEDIATE`).
fn take_write_lock(database: &std::path::Path) -> Result<SqliteConnection> {
    let url = database.to_string_lossy();
    let mut connection = SqliteConnection::establish(&url)
        .with_context(|| format!("opening {}", database.display()))?;
    // The server may be writing right now: wait for it rather than fail.
    diesel::sql_query("PRAGMA busy_timeout = 10000")
        .execute(&mut connection)
        .context("setting the busy timeout")?;
    diesel::sql_query("BEGIN IMMEDIATE")
        .execute(&mut connection)
        .with_context(|| format!("taking the write lock of {}", database.display()))?;
    Ok(connection)
}

/// `POST /v1/faults`.
#[utoipa::path(
    post, path = "/v1/faults", tag = "faults", operation_id = "fault",
    summary = "Switches a fault on or off: a program killed, stopped, restarted; a database locked; the main server's sync ports dropped, refused, slowed, cut or answered by a rogue endpoint; the customer's proxy failing.",
    description = "`kill`: SIGKILL (off: started again on the same ports, data directory and clock file); `stop`: SIGSTOP (off: SIGCONT); `restart`: SIGTERM then started again, at once (on only); `db-lock`: a local server's database write-locked for `seconds`. On `main-server` with `port` (`443`, `8080` or `both`: the sync ports as the local servers reach them, through the simulation's relays): `port-drop` (connections never established, as a firewall dropping packets: the client's connect times out), `port-hang` (connections accepted and never answered), `port-refuse` (connections refused), `port-slow` (each piece of the answer held `ms` milliseconds), `port-cut` (the answer cut in the middle, after the request went through), `rogue-endpoint` (answered by a TLS server whose certificate comes from another CA). On `customer-proxy` (a simulation started with `--customer-proxy`): `proxy-auth` (407 whatever the credentials), `proxy-refuse` (403 to every tunnel), `proxy-down` (its port closed). On a local server: `client-force` with `feature` and `code` (`granted`, or a refusal code such as `NO_SEATS`): that feature's check-outs answered so by a front the simulation puts before the server's client API, where its client actions then go (never a switch inside the local server). On `mail-gateway`, for the customers' mail sent through `/v1/mail/send`: `mail-lost`, `mail-delay` (`seconds` of real time), `mail-duplicate`, `mail-mangle` (`mangle`: `crlf`, `rewrapped`, `quoted-printable`, `base64` or `inline`), `mail-unregistered` (sent from an address no customer registered); one at a time. A switch is in force for every new connection when the answer comes.",
    request_body = FaultRequest,
    responses(
        (status = 200, description = "What was done (`changed`: false when it was already so).", body = FaultAnswer),
        (status = 400, description = "`MALFORMED`: not a fault request, `seconds` out of range or given to another fault than db-lock, `port` or `ms` missing, out of range or given to a fault that takes none, a port or proxy fault on another program, client-force without `feature` and `code`, with a code that is no refusal code or on a program that is not a local server, or `restart` switched off."),
        (status = 404, description = "`NOT_FOUND`: no such program in this simulation."),
        (status = 409, description = "`CONFLICT`: the state does not allow it (stopping a killed program, locking a locked database, a port or the proxy already under another fault)."),
        (status = 422, description = "`UNSUPPORTED`: this simulation cannot make it (a database lock on a program without a local database, a proxy fault in a simulation without the customer's proxy)."),
    )
)]
pub(super) async fn endpoint(
    state: Shared,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.authorize(&request)?;
    let fault: FaultRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(format!(
            "expected {{\"fault\": \"kill\"|\"stop\"|\"restart\"|\"db-lock\"|\"port-drop\"|…, \
             \"on\": true|false, \"program\": NAME, \"seconds\": N, \"port\": \"443\", \"ms\": N}}: {e}"
        ))
    })?;
    let sim = state.sim.clone();
    let answer = web::block(move || sim.faults.apply(&fault))
        .await
        .map_err(|e| ApiError::internal(&anyhow::anyhow!("applying a fault: {e}")))?;
    match answer {
        Ok(answer) => Ok(HttpResponse::Ok().json(answer)),
        Err(FaultError::Malformed(message)) => Err(ApiError::bad(message)),
        Err(FaultError::NoProgram(message)) => Err(ApiError::not_found(message)),
        Err(FaultError::Conflict(message)) => {
            Err(ApiError::new(StatusCode::CONFLICT, "CONFLICT", message))
        }
        Err(FaultError::Unsupported(message)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "UNSUPPORTED",
            message,
        )),
        Err(FaultError::Failed(error)) => Err(ApiError::internal(&error)),
    }
}

#[cfg(test)]
mod names {
    use super::FaultKind;

    #[test]
    fn every_fault_is_listed_once_under_the_name_the_api_reads() {
        let mut seen = std::collections::BTreeSet::new();
        for kind in FaultKind::ALL {
            assert!(seen.insert(kind.name()), "{} twice", kind.name());
            let read: FaultKind =
                serde_json::from_value(serde_json::json!(kind.name())).expect("a fault name");
            assert_eq!(read, kind);
        }
    }
}
