//! `solme-sim clock|status|exec|mail`: a client of a running simulation's control API
//! ([`super::control_api`]), found through `DIR/control.json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::control_api::{ControlFile, CONTROL_FILE};

/// The commands that drive a running simulation.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Move the simulated clock of every program of the simulation (within a second,
    /// without a restart).
    #[command(subcommand)]
    Clock(ClockCommand),
    /// Show the programs, their addresses and process ids, and the simulated time.
    Status {
        /// Print the control API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a verb of one program on the simulation's data directory and clock, e.g.
    /// `solme-sim exec local-server-1 -- status --json`; exits with its exit code.
    Exec {
        /// `main-server`, `mail-gateway`, `local-server-1`, …
        program: String,
        /// The verb and its arguments (after `--`).
        #[arg(last = true, required = true)]
        args: Vec<String>,
    },
    /// What the simulated customer received.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Customers of the simulated Solme, registered through the main server's admin API.
    #[command(subcommand)]
    Customers(CustomersCommand),
    /// License servers: add one (an id allocated with Solme, its local server installed
    /// and started) or reinstall one (a new key pair on the same id).
    #[command(subcommand)]
    Servers(ServersCommand),
    /// The world: the main-server replicas, the customers, the license servers and ids.
    World {
        /// Print the control API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// The event log: what the simulation did and saw (programs started and stopped,
    /// clock moves, faults, exec runs, mails sent), one line each.
    Events {
        /// Keep printing new events as they happen, until Ctrl-C.
        #[arg(long)]
        follow: bool,
        /// Only the events after this sequence number.
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// Print each event as its JSON line (as in DIR/events.jsonl).
        #[arg(long)]
        json: bool,
    },
    /// Switch a fault on (or off with --off): `kill` (SIGKILL; off starts it again on
    /// the same ports), `stop` (SIGSTOP; off continues it), `restart` (done at once),
    /// `db-lock` (a local server's database write-locked for --seconds); on main-server's
    /// sync ports (--port 443, 8080 or both): `port-drop` (never connected, as a firewall
    /// dropping packets), `port-hang` (accepted, never answered), `port-refuse`,
    /// `port-slow` (--ms), `port-cut` (the answer cut in the middle), `rogue-endpoint` (a
    /// certificate from another CA); on
    /// customer-proxy: `proxy-auth` (407), `proxy-refuse` (403), `proxy-down`; on a local
    /// server: `client-force` (--feature's check-outs answered --code: `granted` or a
    /// refusal code such as NO_SEATS, by a front before its client API); on mail-gateway
    /// (mail to licensing@): `mail-lost`, `mail-delay` (--seconds), `mail-duplicate`,
    /// `mail-mangle` (--mangle crlf|rewrapped|quoted-printable|base64|inline),
    /// `mail-unregistered`; on mail-gateway (Solme's mail to the customer's mailbox):
    /// `customer-mail-lost`, `customer-mail-delay` (--seconds). E.g.
    /// `solme-sim fault kill main-server`, `solme-sim fault port-drop main-server --port
    /// 443`, `solme-sim fault port-drop main-server --port 443 --off`.
    Fault {
        /// The fault.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(
            crate::sim::faults::FaultKind::ALL.map(crate::sim::faults::FaultKind::name)
        ))]
        fault: String,
        /// `main-server`, `mail-gateway`, `local-server-1`, …
        program: String,
        /// Switch the fault off.
        #[arg(long)]
        off: bool,
        /// db-lock: how long the lock is held, in seconds (30 when not given); mail-delay
        /// and customer-mail-delay: how late the mail arrives.
        #[arg(long)]
        seconds: Option<u64>,
        /// Port faults: which sync port of the main server, as the local servers reach it.
        #[arg(long, value_parser = ["443", "8080", "both"])]
        port: Option<String>,
        /// port-slow: how long each piece of the answer is held, in milliseconds.
        #[arg(long)]
        ms: Option<u64>,
        /// client-force: the feature whose check-outs are forced.
        #[arg(long)]
        feature: Option<String>,
        /// client-force: `granted`, or the refusal code to answer (e.g. NO_SEATS).
        #[arg(long)]
        code: Option<String>,
        /// mail-mangle: how the sync data is changed on the way.
        #[arg(long, value_parser = ["crlf", "rewrapped", "quoted-printable", "base64", "inline"])]
        mangle: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClockCommand {
    /// Move the clock forward, e.g. `340d`, `12h`, `1d12h`.
    Advance { by: String },
    /// Move the clock to a time, e.g. `2027-11-10T09:00:00Z` or `2027-11-10`.
    Set { time: String },
    /// Move the clock backward, e.g. `2d` (local servers then refuse: clock rollback).
    Back { by: String },
}

#[derive(Debug, Subcommand)]
pub enum CustomersCommand {
    /// Register a customer, e.g. `customers add "Globex GmbH" --contact it@globex.example`.
    Add {
        name: String,
        /// A contact's mail address (repeat for several).
        #[arg(long = "contact", required = true)]
        contacts: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServersCommand {
    /// Add a license server NAME: an id allocated to --customer with solme-cad × 5 and
    /// solme-cam × 2 (or, with --id, an installation on an existing id, e.g. a stolen
    /// one), its local server installed in DIR/NAME and started.
    Add {
        name: String,
        /// The customer's name or id.
        #[arg(long, required_unless_present = "id", conflicts_with = "id")]
        customer: Option<String>,
        /// Install on this existing id instead of allocating one.
        #[arg(long)]
        id: Option<String>,
        /// How it synchronizes: direct (HTTPS when asked), email (no way to the main
        /// server: export and import), daily or weekly (automatically).
        #[arg(long, value_enum, default_value_t = super::world::SyncMode::Direct)]
        sync: super::world::SyncMode,
    },
    /// Reinstall NAME: its data directory wiped and set up again on the same id with a
    /// new key pair; Solme refuses its syncs until the old key pair is cleared.
    Reinstall { name: String },
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// The mails the gateway sent to ADDRESS: reminders, replies, key-clear notices.
    Inbox { address: String },
}

/// Runs `command` against the simulation in `data_dir`.
pub fn run(command: SimCommand, data_dir: Option<&Path>) -> ExitCode {
    match run_inner(command, data_dir) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("solme-sim: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(command: SimCommand, data_dir: Option<&Path>) -> Result<ExitCode> {
    let Some(data_dir) = data_dir else {
        bail!(
            "give the running simulation's directory with --data-dir DIR (or SOLME_SIM_DATA_DIR)"
        );
    };
    let client = Client::open(data_dir)?;
    match command {
        SimCommand::Clock(change) => {
            let body = match change {
                ClockCommand::Advance { by } => json!({"advance": by}),
                ClockCommand::Set { time } => json!({"set": time}),
                ClockCommand::Back { by } => json!({"back": by}),
            };
            let state = client.call("POST", "/v1/clock", Some(body))?;
            println!(
                "Simulated time is now {} ({} from the system clock); every program follows within a second.",
                text(&state["now"]),
                text(&state["offset"])
            );
        }
        SimCommand::Status { json } => {
            let status = client.call("GET", "/v1/status", None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
        }
        SimCommand::Exec { program, args } => {
            let output = client.call(
                "POST",
                "/v1/exec",
                Some(json!({"program": program, "args": args})),
            )?;
            print!("{}", text(&output["stdout"]));
            eprint!("{}", text(&output["stderr"]));
            if output["timed_out"] == true {
                eprintln!("solme-sim: {program} did not finish in time and was stopped");
            }
            let code = output["exit_code"].as_i64().unwrap_or(1);
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        SimCommand::Fault {
            fault,
            program,
            off,
            seconds,
            port,
            ms,
            feature,
            code,
            mangle,
        } => {
            let mut body = json!({"fault": fault, "program": program, "on": !off});
            if let Some(seconds) = seconds {
                body["seconds"] = json!(seconds);
            }
            if let Some(port) = port {
                body["port"] = json!(port);
            }
            if let Some(ms) = ms {
                body["ms"] = json!(ms);
            }
            if let Some(feature) = feature {
                body["feature"] = json!(feature);
            }
            if let Some(code) = code {
                body["code"] = json!(code);
            }
            if let Some(mangle) = mangle {
                body["mangle"] = json!(mangle);
            }
            let answer = client.call("POST", "/v1/faults", Some(body))?;
            println!("{}", text(&answer["done"]));
        }
        SimCommand::Events {
            follow,
            since,
            json,
        } => print_events(&client, since, follow, json)?,
        SimCommand::Customers(CustomersCommand::Add { name, contacts }) => {
            let customer = client.call(
                "POST",
                "/v1/customers",
                Some(json!({"name": name, "contacts": contacts})),
            )?;
            println!(
                "Customer {} registered with Solme (id {}), contacts {}.",
                text(&customer["name"]),
                text(&customer["id"]),
                contacts.join(", ")
            );
        }
        SimCommand::Servers(ServersCommand::Add {
            name,
            customer,
            id,
            sync,
        }) => {
            let mut body = json!({"name": name, "sync": sync.name()});
            if let Some(customer) = customer {
                body["customer"] = json!(customer);
            }
            if let Some(id) = id {
                body["id"] = json!(id);
            }
            let answer = client.call("POST", "/v1/servers", Some(body))?;
            println!("{}", text(&answer["done"]));
            println!(
                "{name}: id {}, client API {}",
                text(&answer["server"]["id"]),
                text(&answer["program"]["addresses"]["api"])
            );
        }
        SimCommand::Servers(ServersCommand::Reinstall { name }) => {
            let answer = client.call("POST", &format!("/v1/servers/{name}/reinstall"), None)?;
            println!("{}", text(&answer["done"]));
        }
        SimCommand::World { json } => {
            let world = client.call("GET", "/v1/world", None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&world)?);
            } else {
                print_world(&world);
            }
        }
        SimCommand::Mail(MailCommand::Inbox { address }) => {
            let mails = client.get_query("/v1/mail/inbox", "address", &address)?;
            let mails = mails.as_array().cloned().unwrap_or_default();
            if mails.is_empty() {
                println!("No mail to {address}.");
            }
            for mail in mails {
                println!(
                    "{}  {:<16} {}{}",
                    text(&mail["date"]),
                    text(&mail["kind"]),
                    text(&mail["subject"]),
                    if mail["license_file"] == true {
                        "  [license file attached]"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the events after `since`; with `follow`, waits for more until interrupted.
fn print_events(client: &Client, mut since: u64, follow: bool, json: bool) -> Result<()> {
    loop {
        // While following, the API holds the request open until the next event.
        let wait = if follow { "20000" } else { "0" };
        let events = answer(
            client
                .request("GET", "/v1/events")
                .query("since", &since.to_string())
                .query("wait_ms", wait)
                .call(),
        )?;
        let events = events.as_array().cloned().unwrap_or_default();
        for event in &events {
            if json {
                println!("{event}");
            } else {
                println!("{}", event_line(event));
            }
            since = event["seq"].as_u64().unwrap_or(since);
        }
        if !follow && events.len() < super::events::MAX_PAGE {
            return Ok(());
        }
    }
}

/// `#12  2027-11-10 09:00:03  clock-moved  by=advance 340d …`: the event's own fields
/// after its number, simulated time and kind.
fn event_line(event: &Value) -> String {
    let time = event["sim_time"]
        .as_str()
        .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| text(&event["sim_time"]));
    let fields: Vec<String> = event
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| !matches!(key.as_str(), "seq" | "at" | "sim_time" | "kind"))
        .map(|(key, value)| match value {
            Value::Array(items) => format!(
                "{key}=[{}]",
                items.iter().map(text).collect::<Vec<_>>().join(" ")
            ),
            other => format!("{key}={}", text(other)),
        })
        .collect();
    format!(
        "#{:<5} {time}  {:<16} {}",
        text(&event["seq"]),
        text(&event["kind"]),
        fields.join("  ")
    )
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

fn print_world(world: &Value) {
    let replicas: Vec<String> = world["replicas"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    println!(
        "Main server: {} on {}",
        replicas.join(" and "),
        if world["postgres"] == true {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    for customer in world["customers"].as_array().into_iter().flatten() {
        let contacts: Vec<String> = customer["contacts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        println!(
            "Customer {} (id {}): {}",
            text(&customer["name"]),
            text(&customer["id"]),
            contacts.join(", ")
        );
    }
    for server in world["servers"].as_array().into_iter().flatten() {
        println!(
            "  {:<16} id {}  sync {:<7} reinstalled {} time(s)",
            text(&server["name"]),
            text(&server["id"]),
            text(&server["sync"]),
            text(&server["reinstalls"])
        );
    }
}

fn print_status(status: &Value) {
    let clock = &status["clock"];
    println!("Simulation in {}", text(&status["data_dir"]));
    println!(
        "Simulated time: {} ({} from the system clock; clock file {})",
        text(&clock["now"]),
        text(&clock["offset"]),
        text(&clock["file"])
    );
    for program in status["programs"].as_array().into_iter().flatten() {
        let addresses: Vec<String> = program["addresses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(role, address)| format!("{role} {}", text(address)))
            .collect();
        println!(
            "  {:<16} {:<8} pid {:<8} {}",
            text(&program["name"]),
            text(&program["state"]),
            text(&program["pid"]),
            addresses.join(", ")
        );
    }
    for fault in status["faults"].as_array().into_iter().flatten() {
        let until = match &fault["until"] {
            Value::Null => String::new(),
            until => format!(" until {}", text(until)),
        };
        println!(
            "  fault on: {} {} since {}{until}",
            text(&fault["fault"]),
            text(&fault["program"]),
            text(&fault["since"])
        );
    }
}

/// A client of one simulation's control API.
struct Client {
    url: String,
    token: secrecy::SecretString,
    agent: ureq::Agent,
}

impl Client {
    fn open(data_dir: &Path) -> Result<Self> {
        let path: PathBuf = data_dir.join(CONTROL_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no running simulation in {} ({} cannot be read; start one with `solme-sim --data-dir {}`)",
                data_dir.display(),
                path.display(),
                data_dir.display()
            )
        })?;
        let info: ControlFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged", path.display()))?;
        let token = shared_proto::files::read_secret(&info.token_file)?;
        Ok(Self {
            url: info.url,
            token,
            agent: ureq::AgentBuilder::new()
                .timeout(std::time::Duration::from_secs(700))
                .build(),
        })
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("{}{path}", self.url))
            .set(
                "Authorization",
                &format!("Bearer {}", self.token.expose_secret()),
            )
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let request = self.request(method, path);
        answer(match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        })
    }

    fn get_query(&self, path: &str, key: &str, value: &str) -> Result<Value> {
        answer(self.request("GET", path).query(key, value).call())
    }
}

fn answer(result: Result<ureq::Response, ureq::Error>) -> Result<Value> {
    match result {
        Ok(response) => response
            .into_json()
            .context("the control API's answer is not JSON"),
        Err(ureq::Error::Status(status, response)) => {
            let body: Value = response.into_json().unwrap_or(Value::Null);
            Err(anyhow!(
                "refused ({status} {}): {}",
                text(&body["code"]),
                text(&body["message"])
            ))
        }
        Err(error) => Err(anyhow!(error).context("the simulation's control API cannot be reached")),
    }
}
