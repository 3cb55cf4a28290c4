//! The command line: one verb per manager operation, plus `init` and `serve`. Only
//! `main.rs` and the dispatch in `lib.rs` use it: the verbs' flags are turned into the
//! domain's own types here ([`InitArgs::options`], [`ServeArgs::options`]), so no other
//! module depends on the command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};
use uuid::Uuid;

use crate::config::{AutoSyncMode, InitOptions};
use crate::leases::EngineSettings;
use crate::pair::standby::StandbyInit;
use crate::proxy::ProxyText;
use crate::startup::ServeOptions;

/// Solme local license server: hands out floating licenses to client programs and keeps
/// itself synchronized with Solme's main license server.
#[derive(Debug, Parser)]
#[command(name = "local-server", version)]
pub struct Cli {
    /// Run on a simulated clock that follows FILE instead of the system clock (for
    /// tests and QA: the simulation writes it, JSON `{"offset_ms": N}`). Checked again
    /// every 100 ms; a program on it says so in its log and on /metrics.
    #[arg(long, global = true, env = "SOLME_CLOCK_FILE", value_name = "FILE")]
    pub clock_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the server keeps its keys, configuration and database.
#[derive(Debug, Args, Clone)]
pub struct DataDir {
    /// Data directory of this license server (keys, configuration, database).
    #[arg(long, env = "LOCAL_SERVER_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,
}

/// The proxy override shared by the verbs that talk to the main server.
#[derive(Debug, Args, Clone, Default)]
pub struct ProxyArg {
    /// HTTP proxy for reaching the main server, e.g. `http://user:password@proxy:3128`.
    /// Overrides the proxy stored by `init` and the HTTPS_PROXY environment variable;
    /// hosts listed in NO_PROXY are reached directly.
    #[arg(long, env = "LOCAL_SERVER_PROXY", value_name = "URL")]
    pub proxy: Option<ProxyText>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up this license server: make its key pairs and store its configuration.
    Init(InitArgs),
    /// Run the license server: client API, manager API and automatic synchronization.
    Serve(ServeArgs),
    /// Synchronize with Solme's main license server now (Server → Synchronize Server).
    Sync {
        #[command(flatten)]
        data: DataDir,
        #[command(flatten)]
        proxy: ProxyArg,
    },
    /// Turn automatic synchronization off, or on daily or weekly.
    AutoSync {
        #[command(flatten)]
        data: DataDir,
        /// How often to synchronize automatically.
        #[arg(value_enum, env = "LOCAL_SERVER_AUTO_SYNC")]
        mode: AutoSyncMode,
    },
    /// Write the sync data to a file to email to Solme's licensing address (File → Export
    /// Sync Data).
    ExportSyncData {
        #[command(flatten)]
        data: DataDir,
        /// File to write the sync data to.
        #[arg(env = "LOCAL_SERVER_SYNC_DATA_FILE", value_name = "FILE")]
        file: PathBuf,
    },
    /// Import the license file Solme sent back by email (File → Import License File).
    ImportLicenseFile {
        #[command(flatten)]
        data: DataDir,
        /// The license file received from Solme.
        #[arg(env = "LOCAL_SERVER_LICENSE_FILE", value_name = "FILE")]
        file: PathBuf,
        /// Only show what the file would change (licenses added, removed or changed,
        /// features left with fewer seats than are in use, the new valid-until), after
        /// the same checks as the import; change nothing.
        #[arg(long, env = "LOCAL_SERVER_DRY_RUN")]
        dry_run: bool,
        /// After the import, write a receipt to this file: a statement signed by this
        /// server's key that it installed the license file (its number, its checksum and
        /// when). Upload it in Solme's customer portal or email it to Solme's licensing
        /// address, so Solme knows the file is installed.
        #[arg(
            long,
            env = "LOCAL_SERVER_RECEIPT_FILE",
            value_name = "RECEIPT",
            conflicts_with = "dry_run"
        )]
        receipt: Option<PathBuf>,
    },
    /// Show whether this server is synchronized, until when, and the seats in use.
    Status {
        #[command(flatten)]
        data: DataDir,
        /// Print the report as JSON.
        #[arg(long, env = "LOCAL_SERVER_JSON")]
        json: bool,
    },
    /// List who holds what: every live lease with its user, host, client program, since
    /// when and until when (a borrowed seat: when it comes back).
    Leases {
        #[command(flatten)]
        data: DataDir,
        /// Only the leases of this feature.
        #[arg(long, env = "LOCAL_SERVER_FEATURE", value_name = "FEATURE")]
        feature: Option<String>,
        /// Print the list as JSON.
        #[arg(long, env = "LOCAL_SERVER_JSON")]
        json: bool,
    },
    /// Take a seat back (end a lease now), like FlexNet's lmremove: the seat is free at
    /// once, the program that held it is refused at its next heartbeat, a borrowed seat's
    /// token is refused if it is presented again; recorded in the report log with who
    /// and why. Works whether or not `serve` runs.
    TakeBack {
        #[command(flatten)]
        data: DataDir,
        /// The lease to end (the LEASE ID column of `local-server leases`).
        #[arg(value_name = "LEASE_ID")]
        lease_id: String,
        /// Why, for the report log (one line, at most 500 characters).
        #[arg(long, env = "LOCAL_SERVER_TAKE_BACK_REASON", value_name = "TEXT")]
        reason: Option<String>,
        /// Print the result as JSON.
        #[arg(long, env = "LOCAL_SERVER_JSON")]
        json: bool,
    },
    /// Find out why synchronization does not work, and what to do about it.
    Diagnose {
        #[command(flatten)]
        data: DataDir,
        #[command(flatten)]
        proxy: ProxyArg,
        /// Print the report as JSON.
        #[arg(long, env = "LOCAL_SERVER_JSON")]
        json: bool,
    },
    /// Write one .tar.gz for Solme's support: status, diagnose report (which synchronizes
    /// when it can), the last sync attempt and its error, the report log's summary,
    /// recent log lines and the settings, without any private key or password.
    SupportBundle {
        #[command(flatten)]
        data: DataDir,
        #[command(flatten)]
        proxy: ProxyArg,
        /// File to write the bundle to (e.g. support-bundle.tar.gz).
        #[arg(env = "LOCAL_SERVER_SUPPORT_BUNDLE_FILE", value_name = "FILE")]
        file: PathBuf,
    },
    /// Usage per feature from the report log: peak in use, seat-hours, refusals by code,
    /// the busiest users.
    Report {
        #[command(flatten)]
        data: DataDir,
        /// Start of the period: a day (YYYY-MM-DD) or an RFC 3339 time; default: 30 days
        /// before the end.
        #[arg(long, env = "LOCAL_SERVER_REPORT_FROM", value_parser = crate::report::parse_time)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// End of the period (excluded); default: now.
        #[arg(long, env = "LOCAL_SERVER_REPORT_TO", value_parser = crate::report::parse_time)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Print the report as JSON.
        #[arg(long, env = "LOCAL_SERVER_JSON", conflicts_with = "csv")]
        json: bool,
        /// Print one CSV line per feature.
        #[arg(long, env = "LOCAL_SERVER_CSV")]
        csv: bool,
    },
    /// A standby server for this one (docs: standby servers).
    Standby {
        /// Data directory of this license server (before or after the subcommand).
        #[arg(long, global = true, env = "LOCAL_SERVER_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: StandbyCommand,
    },
    /// Make this standby server issue seats while its primary is down. A person decides:
    /// only when the primary has been silent, does not answer a last call, the two
    /// clocks agreed, and the failover period Solme allows is not used up. Make sure the
    /// primary is off: if it still runs where this server cannot reach it, both would
    /// issue seats.
    Promote {
        #[command(flatten)]
        data: DataDir,
        /// Why, kept with the promotion (one line, at most 500 characters).
        #[arg(long, env = "LOCAL_SERVER_PROMOTE_REASON", value_name = "TEXT")]
        reason: Option<String>,
        /// Print the result as JSON.
        #[arg(long, env = "LOCAL_SERVER_JSON")]
        json: bool,
    },
    /// Check or apply an options file (reservations and limits per feature).
    Options {
        /// Data directory of this license server (needed by `apply`; with `check`, rules
        /// for features this server holds no license for are pointed out).
        #[arg(long, global = true, env = "LOCAL_SERVER_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: OptionsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum StandbyCommand {
    /// Show a one-time code (valid 10 minutes) to pair a standby with this server:
    /// run `local-server init --standby-of THIS-ADDRESS --pairing-code CODE` on the
    /// standby's machine.
    Pair,
    /// On a standby whose primary is lost for good: leave the pair, to become the id's
    /// server once Solme cleared the primary's key pair. The copy of the primary's
    /// license file is dropped: the server issues nothing until it holds its own.
    Leave,
}

#[derive(Debug, Subcommand)]
pub enum OptionsCommand {
    /// Check an options file and report each mistake with its line; changes nothing.
    Check {
        /// The options file (TOML).
        #[arg(env = "LOCAL_SERVER_OPTIONS_FILE", value_name = "FILE")]
        file: PathBuf,
    },
    /// Check an options file and, when it is good, put it in force (a running `serve`
    /// uses it from its next check-out). A file with mistakes changes nothing.
    Apply {
        /// The options file (TOML).
        #[arg(env = "LOCAL_SERVER_OPTIONS_FILE", value_name = "FILE")]
        file: PathBuf,
    },
}

/// The id as Solme sent it, with the expected form instead of the parser's words.
fn parse_id(text: &str) -> Result<Uuid, String> {
    Uuid::try_parse(text.trim()).map_err(|_| {
        format!(
            "{text:?} is not a license server id: expected the id Solme sent, like \
             6f0c1a52-3b8e-4d27-9a51-0c2b7f3e9d10"
        )
    })
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// The license server id Solme allocated to you.
    #[arg(long, env = "LOCAL_SERVER_ID", value_name = "UUID", value_parser = parse_id,
          required_unless_present = "standby_of")]
    pub id: Option<Uuid>,
    /// Address of Solme's main license server, e.g. `https://licensing.solme.example`.
    /// Repeat it to list several addresses, tried in order. A single address without a
    /// port is tried on port 443, then on 8080.
    #[arg(
        long = "main-server",
        env = "LOCAL_SERVER_MAIN_SERVERS",
        value_delimiter = ',',
        required_unless_present = "standby_of",
        value_name = "URL"
    )]
    pub main_servers: Vec<String>,
    /// Solme's public key (PEM), as shipped with the software: license files must be
    /// signed by it.
    #[arg(
        long,
        env = "LOCAL_SERVER_SOLME_KEY",
        value_name = "FILE",
        required_unless_present = "standby_of"
    )]
    pub solme_key: Option<PathBuf>,
    /// The certificate authority (PEM) the main server's certificate must come from.
    /// Only this CA is trusted for synchronization.
    #[arg(
        long,
        env = "LOCAL_SERVER_CA_CERT",
        value_name = "FILE",
        required_unless_present = "standby_of"
    )]
    pub ca_cert: Option<PathBuf>,
    /// HTTP proxy to reach the main server through, stored in the configuration.
    #[arg(long, env = "LOCAL_SERVER_INIT_PROXY", value_name = "URL")]
    pub proxy: Option<ProxyText>,
    /// Replace an existing installation: new key pairs, empty state. The main server
    /// refuses the new key pair until Solme clears the old one.
    #[arg(long, env = "LOCAL_SERVER_FORCE")]
    pub force: bool,
    /// Set this server up as the standby of the primary license server at ADDRESS (its
    /// client address, e.g. `http://license1:7070`), with the code `local-server
    /// standby pair` showed there. The id, Solme's key and the main-server addresses
    /// come from the primary.
    #[arg(long, env = "LOCAL_SERVER_STANDBY_OF", value_name = "ADDRESS",
          requires = "pairing_code",
          conflicts_with_all = ["id", "main_servers", "solme_key", "ca_cert", "proxy", "force"])]
    pub standby_of: Option<String>,
    /// The one-time code the primary showed (`local-server standby pair` there).
    #[arg(
        long,
        env = "LOCAL_SERVER_PAIRING_CODE",
        value_name = "CODE",
        requires = "standby_of"
    )]
    pub pairing_code: Option<String>,
}

/// What `init` sets up: a license server, or the standby of one.
pub enum InitPlan {
    Server(InitOptions),
    Standby(StandbyInit),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataDir,
    #[command(flatten)]
    pub proxy: ProxyArg,
    /// Address for the client API and the manager API (port 0 picks a free port; the
    /// address chosen is written to DIR/listening.json). The manager API answers only
    /// connections from this machine.
    #[arg(long, env = "LOCAL_SERVER_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// How long a lease lasts without a heartbeat, in seconds.
    #[arg(long, env = "LOCAL_SERVER_LEASE_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub lease_seconds: u32,
    /// Most clients waiting for a seat at once (all features); beyond it a check-out
    /// that asks to wait is refused with NO_SEATS at once.
    #[arg(long, env = "LOCAL_SERVER_QUEUE_LIMIT", default_value_t = 10_000)]
    pub queue_limit: usize,
    /// Longest a waiting client's request is held open, in seconds, before it is
    /// answered with its place in the queue (202) and polls again. A waiting client that
    /// does not poll for twice this long has gone away and leaves the queue.
    #[arg(long, env = "LOCAL_SERVER_QUEUE_POLL_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub queue_poll_seconds: u64,
    /// How long a check-out or heartbeat waits for the database while another program
    /// (a manager verb) holds it, in milliseconds, before it is answered UNAVAILABLE
    /// ("try again"). Returns are never refused: they are stored once the database is free.
    #[arg(long, env = "LOCAL_SERVER_DB_WAIT_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub db_wait_ms: u64,
    /// Days the report log keeps (check-outs, returns, refusals, …).
    #[arg(long, env = "LOCAL_SERVER_REPORT_DAYS", default_value_t = 400,
          value_parser = clap::value_parser!(u32).range(1..=3_650))]
    pub report_days: u32,
    /// Most entries the report log keeps (the oldest go first).
    #[arg(long, env = "LOCAL_SERVER_REPORT_MAX_ROWS", default_value_t = 5_000_000,
          value_parser = clap::value_parser!(u64).range(1_000..=100_000_000))]
    pub report_max_rows: u64,
    /// How often the automatic-sync scheduler looks at the clock, in milliseconds.
    #[arg(long, env = "LOCAL_SERVER_SCHEDULER_TICK_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub scheduler_tick_ms: u64,
    /// Worker threads for the HTTP server (0 = one per CPU).
    #[arg(long, env = "LOCAL_SERVER_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Most simultaneous client connections per worker.
    #[arg(long, env = "LOCAL_SERVER_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// How often a standby calls its primary, in milliseconds (a primary waits three
    /// of them for its standby's word when it starts; a standby may be promoted after
    /// twelve without word from the primary).
    #[arg(long, env = "LOCAL_SERVER_PAIR_INTERVAL_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub pair_interval_ms: u64,
}

/// The schedule is the domain's ([`AutoSyncMode`]); the command line only offers its words.
impl ValueEnum for AutoSyncMode {
    fn value_variants<'a>() -> &'a [Self] {
        Self::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}

impl InitArgs {
    /// What `init` is asked to do, in the domain's terms.
    pub fn plan(&self) -> InitPlan {
        match (&self.standby_of, &self.pairing_code) {
            (Some(primary), Some(code)) => InitPlan::Standby(StandbyInit {
                data_dir: self.data.data_dir.clone(),
                primary: primary.clone(),
                pairing_code: code.clone(),
            }),
            // clap requires the rest whenever `--standby-of` is absent.
            _ => InitPlan::Server(InitOptions {
                data_dir: self.data.data_dir.clone(),
                id: self.id.unwrap_or_default(),
                main_servers: self.main_servers.clone(),
                solme_key: self.solme_key.clone().unwrap_or_default(),
                ca_cert: self.ca_cert.clone().unwrap_or_default(),
                proxy: self.proxy.clone(),
                force: self.force,
            }),
        }
    }
}

impl ServeArgs {
    /// What `serve` is asked to do, in the domain's terms (durations, engine settings).
    pub fn options(&self) -> ServeOptions {
        ServeOptions {
            data_dir: self.data.data_dir.clone(),
            proxy: self.proxy.proxy.clone(),
            listen: self.listen,
            engine: EngineSettings {
                lease_length: chrono::Duration::seconds(i64::from(self.lease_seconds)),
                write_deadline: Duration::from_millis(self.db_wait_ms),
                queue_limit: self.queue_limit,
                poll_window: Duration::from_secs(self.queue_poll_seconds),
                report_days: i64::from(self.report_days),
                report_rows: i64::try_from(self.report_max_rows).unwrap_or(i64::MAX),
            },
            workers: self.workers,
            max_connections: self.max_connections,
            scheduler_tick: Duration::from_millis(self.scheduler_tick_ms),
            pair_interval: Duration::from_millis(self.pair_interval_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn debug_output_hides_the_proxy_password() {
        let cli = Cli::parse_from([
            "local-server",
            "serve",
            "--data-dir",
            "/tmp/x",
            "--proxy",
            "http://alice:s3cret@proxy.example:3128",
        ]);
        let text = format!("{cli:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("alice:***@proxy.example"), "{text}");
    }

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
