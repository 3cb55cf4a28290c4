//! What a running simulation is made of, as the control API shows and drives it: its
//! directory, its clock, the programs it started, where the gateway writes mail, and
//! the record of its world (`DIR/world.json`): the main-server replicas, the customers
//! and the license servers with their ids, kept so that the simulation can be resumed
//! and grown while it runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use shared_proto::files::{write, Access, Existing};
use utoipa::ToSchema;
use uuid::Uuid;

use super::clock::SimClock;
use super::events::EventLog;
use super::faults::Faults;

/// The record of a simulation's world in its directory.
pub const WORLD_FILE: &str = "world.json";
/// The most main-server replicas a simulation runs (on one PostgreSQL database).
pub const MAX_REPLICAS: usize = 2;

/// Which program a process of the simulation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProgramKind {
    MainServer,
    MailGateway,
    LocalServer,
}

impl ProgramKind {
    /// The binary's name.
    pub fn binary(self) -> &'static str {
        match self {
            Self::MainServer => "main-server",
            Self::MailGateway => "mail-gateway",
            Self::LocalServer => "local-server",
        }
    }
}

/// One program the simulation started.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Program {
    /// Its name in the simulation: `main-server` (and `main-server-2`, the second
    /// replica), `mail-gateway`, `local-server-1`, …
    pub name: String,
    pub kind: ProgramKind,
    #[schema(value_type = String)]
    pub data_dir: PathBuf,
    /// The process of its `serve`.
    pub pid: Option<u32>,
    /// What it listens on, by role (`sync-443`, `admin`, `smtp`, `api`, …).
    pub addresses: BTreeMap<String, String>,
}

/// The name of main-server replica `n` (1-based): `main-server`, then `main-server-2`.
/// The first keeps the plain name, so scenarios and scripts written for one replica
/// (`exec main-server -- admin …`, `fault kill main-server`) work with two.
pub fn replica_name(n: usize) -> String {
    if n <= 1 {
        "main-server".to_string()
    } else {
        format!("main-server-{n}")
    }
}

/// How a license server of the world synchronizes with Solme.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    /// Over HTTPS when asked (`exec NAME -- sync`), to every main-server replica in turn.
    #[default]
    Direct,
    /// By mail only: its main-server address refuses connections, as for a site without
    /// a way out; it exports sync data and imports the license file of the reply.
    Email,
    /// Direct, and automatically once a day (`auto-sync daily`).
    Daily,
    /// Direct, and automatically once a week (`auto-sync weekly`).
    Weekly,
}

impl SyncMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Email => "email",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
        }
    }
}

/// A main-server replica as it was started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaRecord {
    pub name: String,
    pub dir: PathBuf,
    /// The "443" and the "8080" listener.
    pub sync: Vec<String>,
    /// The admin API's URL.
    pub admin: String,
}

/// The mail gateway as it was started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayRecord {
    pub dir: PathBuf,
    pub smtp: String,
    pub http: String,
}

/// A customer registered with Solme.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CustomerRecord {
    pub name: String,
    /// Its id at Solme.
    pub id: String,
    /// Its contacts' mail addresses.
    pub contacts: Vec<String>,
}

/// A local license server of the world.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServerRecord {
    /// `local-server-1`, … or the name it was added with.
    pub name: String,
    /// Its license server id at Solme.
    pub id: Uuid,
    /// The customer's id (none for an installation that took another's id).
    pub customer: Option<String>,
    pub sync: SyncMode,
    #[schema(value_type = String)]
    pub dir: PathBuf,
    /// Its client API's address (`127.0.0.1:PORT`).
    pub listen: String,
    /// How many times it was reinstalled (each time with a new key pair).
    #[serde(default)]
    pub reinstalls: u32,
}

/// `DIR/world.json`: what a resumed simulation starts again, and what grows with
/// `customers add` and `servers add`. Written whole (0600: it names the database).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorldFile {
    pub version: u32,
    /// The main servers' PostgreSQL database; SQLite in the first replica's directory
    /// when none.
    pub database_url: Option<String>,
    pub replicas: Vec<ReplicaRecord>,
    pub gateway: GatewayRecord,
    pub customers: Vec<CustomerRecord>,
    pub servers: Vec<ServerRecord>,
    /// The local servers' `serve` flags beyond the data directory and the address.
    pub local_flags: Vec<String>,
    /// The gateway's `serve` flags beyond the harness's defaults.
    pub gateway_flags: Vec<String>,
}

impl WorldFile {
    /// Reads `DIR/world.json`, or None when the directory holds no simulation.
    pub fn read(root: &Path) -> Result<Option<Self>> {
        let path = root.join(WORLD_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        let world: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged", path.display()))?;
        if world.version != 1 {
            anyhow::bail!(
                "{} was written by another version of solme-sim (version {})",
                path.display(),
                world.version
            );
        }
        Ok(Some(world))
    }

    /// Writes it whole (replacing the file in one step), readable by its owner only.
    pub fn save(&self, root: &Path) -> Result<()> {
        let path = root.join(WORLD_FILE);
        let json = serde_json::to_vec_pretty(self).context("encoding the world")?;
        write(&path, &json, Access::Private, Existing::Replace)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The customer named or numbered `which`.
    pub fn customer(&self, which: &str) -> Option<&CustomerRecord> {
        self.customers
            .iter()
            .find(|c| c.id == which || c.name.eq_ignore_ascii_case(which))
    }

    pub fn server(&self, name: &str) -> Option<&ServerRecord> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// Every main-server replica's sync URLs in the order local server `n` (0-based)
    /// tries them: the "443" listeners first, then the "8080" ones, each list starting
    /// at replica `n mod replicas`, so that the local servers spread over the replicas
    /// and each falls over to the next one when its first is lost.
    pub fn endpoints_for(&self, n: usize) -> Vec<String> {
        let count = self.replicas.len().max(1);
        let mut endpoints = Vec::new();
        for port in 0..2 {
            for k in 0..count {
                if let Some(replica) = self.replicas.get((n + k) % count) {
                    if let Some(address) = replica.sync.get(port) {
                        // Through the relay in front of that port, where its faults
                        // are made.
                        let front = super::fault_net::front(address, port);
                        endpoints.push(format!("https://{front}"));
                    }
                }
            }
        }
        endpoints
    }
}

/// The programs of a running simulation; the list grows with `servers add`.
#[derive(Debug, Default)]
pub struct Programs(RwLock<Vec<Program>>);

impl Programs {
    pub fn new(programs: Vec<Program>) -> Self {
        Self(RwLock::new(programs))
    }

    /// Every program, in the order they were started.
    pub fn list(&self) -> Vec<Program> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn get(&self, name: &str) -> Option<Program> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|p| p.name == name)
            .cloned()
    }

    /// Adds `program`, or replaces the one of the same name.
    pub fn put(&self, program: Program) {
        let mut list = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match list.iter_mut().find(|p| p.name == program.name) {
            Some(slot) => *slot = program,
            None => list.push(program),
        }
    }
}

/// A running simulation.
#[derive(Debug)]
pub struct Simulation {
    pub root: PathBuf,
    pub clock: SimClock,
    pub programs: Programs,
    /// Where the mail gateway writes the mails it sends (`.eml` files).
    pub outbox: PathBuf,
    /// What the simulation did and saw (`DIR/events.jsonl`).
    pub events: Arc<EventLog>,
    /// The programs' processes and the faults on them.
    pub faults: Faults,
    /// The world's record, held while the world grows so that two changes never
    /// interleave; saved to `DIR/world.json` after each.
    pub world: Mutex<WorldFile>,
}

impl Simulation {
    pub fn program(&self, name: &str) -> Option<Program> {
        self.programs.get(name)
    }

    /// The world's record, locked.
    pub fn world(&self) -> MutexGuard<'_, WorldFile> {
        self.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
