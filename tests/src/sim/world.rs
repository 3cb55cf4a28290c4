//! What a running simulation is made of, as the control API shows and drives it: its
//! directory, its clock, the programs it started and where the gateway writes mail.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use super::clock::SimClock;
use super::events::EventLog;
use super::faults::Faults;

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
    /// Its name in the simulation: `main-server`, `mail-gateway`, `local-server-1`, …
    pub name: String,
    pub kind: ProgramKind,
    #[schema(value_type = String)]
    pub data_dir: PathBuf,
    /// The process of its `serve`.
    pub pid: Option<u32>,
    /// What it listens on, by role (`sync-443`, `admin`, `smtp`, `api`, …).
    pub addresses: BTreeMap<String, String>,
}

/// A running simulation.
#[derive(Debug)]
pub struct Simulation {
    pub root: PathBuf,
    pub clock: SimClock,
    pub programs: Vec<Program>,
    /// Where the mail gateway writes the mails it sends (`.eml` files).
    pub outbox: PathBuf,
    /// What the simulation did and saw (`DIR/events.jsonl`).
    pub events: Arc<EventLog>,
    /// The programs' processes and the faults on them.
    pub faults: Faults,
}

impl Simulation {
    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs.iter().find(|p| p.name == name)
    }
}
