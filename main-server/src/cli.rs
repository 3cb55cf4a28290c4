//! Command-line interface (clap derive). Every flag can also come from an environment
//! variable, so containers and scripts configure the server without a wrapper.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use shared_proto::admin_api::{KeyClearStatus, Role, MAX_FAILOVER_DAYS};
use uuid::Uuid;

/// Solme's main license server: the registry of customers, license server ids and
/// licenses, the HTTPS sync API local servers talk to, and the operators' admin API.
#[derive(Debug, Parser)]
#[command(name = "main-server", version, about, long_about = None)]
pub struct Cli {
    /// Run on a simulated clock that follows FILE instead of the system clock (for
    /// tests and QA: the simulation writes it, JSON `{"offset_ms": N}`). Checked again
    /// every 100 ms; a program on it says so in its log and on /metrics.
    #[arg(long, global = true, env = "SOLME_CLOCK_FILE", value_name = "FILE")]
    pub clock_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory: database, Solme's signing key, the simulation CA and TLS
    /// certificate, and the operator token. Existing keys are kept, never overwritten.
    Init(InitArgs),
    /// Run the sync API (HTTPS) and the admin API until stopped (Ctrl-C or SIGTERM).
    /// Renews the server certificate first when it is due (see renew-certificate).
    Serve(ServeArgs),
    /// Renew the server certificate (tls-cert.pem, tls-key.pem) from the data
    /// directory's CA when it ends within 30 days, is not valid, or lasts longer than
    /// 397 days; keep it otherwise. The new one is valid for the same names, for 397
    /// days. Local servers trust the CA, so nothing changes for customers. Running
    /// servers present the new certificate from their next start.
    RenewCertificate(RenewCertificateArgs),
    /// Operator commands, sent to a running server's admin API.
    Admin(AdminArgs),
    /// Print the OpenAPI document of the sync and admin APIs (what a running server
    /// serves at /admin/v1/openapi.json and docs/openapi.json holds).
    Openapi,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory that holds the keys, certificates, token and (SQLite) database.
    #[arg(long, env = "MAIN_SERVER_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Database URL: `postgres://user@host/db` for PostgreSQL; default SQLite in
    /// DATA_DIR/main.db.
    /// The URL may hold a password: it is never printed (not in `--help`, not in logs).
    #[arg(long, env = "MAIN_SERVER_DATABASE_URL", hide_env_values = true, value_parser = parse_secret)]
    pub database_url: Option<SecretString>,
    /// Extra name (DNS name or IP address) the server certificate must be valid for;
    /// localhost and 127.0.0.1 are always included. Repeat for several.
    #[arg(long = "hostname", env = "MAIN_SERVER_HOSTNAME", value_delimiter = ',')]
    pub hostnames: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenewCertificateArgs {
    /// Data directory made by `main-server init`.
    #[arg(long, env = "MAIN_SERVER_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Renew even when the certificate is not due (e.g. after its key was exposed).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory made by `main-server init`.
    #[arg(long, env = "MAIN_SERVER_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Database URL: `postgres://user@host/db` for PostgreSQL; default SQLite in
    /// DATA_DIR/main.db. Several servers on one PostgreSQL database act as one.
    /// The URL may hold a password: it is never printed (not in `--help`, not in logs).
    #[arg(long, env = "MAIN_SERVER_DATABASE_URL", hide_env_values = true, value_parser = parse_secret)]
    pub database_url: Option<SecretString>,
    /// Address of an HTTPS sync listener (repeat; port 0 picks a free port). The first
    /// is the one local servers try first ("443"), the second their fallback ("8080").
    #[arg(
        long = "listen",
        env = "MAIN_SERVER_LISTEN",
        value_delimiter = ',',
        default_values_t = [
            SocketAddr::from(([0, 0, 0, 0], 443)),
            SocketAddr::from(([0, 0, 0, 0], 8080)),
        ]
    )]
    pub listen: Vec<SocketAddr>,
    /// Address of the admin API and the operator console (HTTPS with the data
    /// directory's certificate, bearer token). Keep it on loopback or a private network.
    #[arg(long, env = "MAIN_SERVER_ADMIN_LISTEN", default_value_t = SocketAddr::from(([127, 0, 0, 1], 8081)))]
    pub admin_listen: SocketAddr,
    /// Serve the admin API and console over plain HTTP instead of HTTPS. Refused unless
    /// --admin-listen is a loopback address.
    #[arg(long, env = "MAIN_SERVER_ADMIN_PLAIN_HTTP")]
    pub admin_plain_http: bool,
    /// Worker threads per listener group (default: one per CPU).
    #[arg(long, env = "MAIN_SERVER_WORKERS")]
    pub workers: Option<usize>,
    /// Database connections in the pool.
    #[arg(long, env = "MAIN_SERVER_DB_POOL_SIZE", default_value_t = 8)]
    pub db_pool_size: u32,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Data directory of the server: the admin URL is read from its listening.json and
    /// the token from its admin-token file.
    #[arg(long, env = "MAIN_SERVER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Admin API base URL, e.g. https://main.example:8081 (overrides listening.json).
    /// http:// only for a server on loopback started with --admin-plain-http.
    #[arg(long, env = "MAIN_SERVER_ADMIN_URL")]
    pub admin_url: Option<String>,
    /// CA certificate the admin API's certificate must come from (default:
    /// DATA_DIR/ca.pem). The system's CAs are never trusted.
    #[arg(long, env = "MAIN_SERVER_CA")]
    pub ca: Option<PathBuf>,
    /// File holding your operator token (overrides DATA_DIR/admin-token, the first
    /// admin's token). The audit log records the token's operator as the actor.
    #[arg(long, env = "MAIN_SERVER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Print reads as JSON instead of tables.
    #[arg(long, global = true, env = "MAIN_SERVER_JSON")]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Customers and their registered contact addresses.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// License server ids.
    #[command(subcommand, visible_alias = "servers")]
    Server(ServerCommand),
    /// Licenses of an id (every change moves the id's revision).
    #[command(subcommand)]
    License(LicenseCommand),
    /// Key-pair binding of an id.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Key-clear requests that arrived by email.
    #[command(subcommand, name = "key-clear-requests", visible_alias = "requests")]
    Requests(RequestCommand),
    /// Reminder mails sent before the 366-day limit.
    #[command(subcommand)]
    Reminders(ReminderCommand),
    /// Answer a sync-data file as the mail gateway would, for a sender address; writes
    /// the license file.
    MailSync(MailSyncArgs),
    /// Operator accounts and their tokens (admin role).
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// The audit log, newest first; `verify` and `head` check its hash chain.
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    /// How many entries to list.
    #[arg(long, env = "MAIN_SERVER_AUDIT_LIMIT", default_value_t = 50)]
    pub limit: u32,
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List entries by filter, newest first, a page at a time; or, with --format csv
    /// or json, every matching entry (nothing left out).
    List(Box<AuditListArgs>),
    /// Walk the audit log's hash chain and name the first entry that was changed,
    /// removed or inserted; exits 1 when the chain is broken. Walks only the entries
    /// sealed since the last intact walk (after checking where that one ended), or
    /// the whole chain with --full.
    Verify {
        /// A head saved earlier from `audit head`: also confirm that its entry is
        /// still in the chain with the same hash (catches a rewrite of the whole chain).
        #[arg(long, value_name = "FILE", env = "MAIN_SERVER_AUDIT_HEAD")]
        head: Option<PathBuf>,
        /// Walk the whole chain from its first entry, not only what is new since the
        /// last verification (finds an entry changed behind the last verified one).
        #[arg(long, env = "MAIN_SERVER_AUDIT_FULL")]
        full: bool,
    },
    /// Print the chain's newest position and hash, signed with Solme's key: keep the
    /// output outside the database and check it later with `audit verify --head FILE`.
    Head,
}

/// How `audit list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    /// One page as a table, with the flag that shows the next.
    Table,
    /// Every matching entry as CSV (a header line, then one line per entry).
    Csv,
    /// Every matching entry as a JSON array.
    Json,
}

#[derive(Debug, Args)]
pub struct AuditListArgs {
    /// Only entries about this license server id.
    #[arg(long = "server", value_name = "ID", env = "MAIN_SERVER_AUDIT_SERVER", value_parser = parse_id)]
    pub server_id: Option<Uuid>,
    /// Only entries about this customer's ids and the customer itself.
    #[arg(long = "customer", value_name = "ID", env = "MAIN_SERVER_AUDIT_CUSTOMER", value_parser = parse_id)]
    pub customer_id: Option<Uuid>,
    /// Only entries by this actor (an operator's name, a contact's address).
    #[arg(long, env = "MAIN_SERVER_AUDIT_ACTOR")]
    pub actor: Option<String>,
    /// Only entries of this action, e.g. sync, key.clear, customer.create.
    #[arg(long, env = "MAIN_SERVER_AUDIT_ACTION")]
    pub action: Option<String>,
    /// Only entries with this outcome: OK, failed (any refusal or failure) or an
    /// error code such as NOT_FOUND.
    #[arg(long, env = "MAIN_SERVER_AUDIT_OUTCOME")]
    pub outcome: Option<String>,
    /// From this date (YYYY-MM-DD, midnight UTC) or time (RFC 3339) on.
    #[arg(long, value_name = "DATE", env = "MAIN_SERVER_AUDIT_FROM", value_parser = parse_time)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Before this date (YYYY-MM-DD: up to its midnight, so the day itself is not
    /// included) or time (RFC 3339).
    #[arg(long, value_name = "DATE", env = "MAIN_SERVER_AUDIT_TO", value_parser = parse_time)]
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Only entries whose detail contains this text (any case). A page searches at
    /// most 50,000 entries and says where it stopped.
    #[arg(long, value_name = "TEXT", env = "MAIN_SERVER_AUDIT_SEARCH")]
    pub search: Option<String>,
    /// Entries per page (1 to 1000).
    #[arg(long, default_value_t = 50, env = "MAIN_SERVER_AUDIT_PAGE_LIMIT",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Continue with older entries: the value printed under the previous page.
    #[arg(
        long,
        value_name = "CURSOR",
        env = "MAIN_SERVER_AUDIT_BEFORE",
        conflicts_with = "after"
    )]
    pub before: Option<String>,
    /// Go back to newer entries: the value printed under the page.
    #[arg(long, value_name = "CURSOR", env = "MAIN_SERVER_AUDIT_AFTER")]
    pub after: Option<String>,
    /// table: one page; csv or json: every matching entry, to standard output or
    /// --output.
    #[arg(long, value_enum, default_value_t = AuditFormat::Table, env = "MAIN_SERVER_AUDIT_FORMAT")]
    pub format: AuditFormat,
    /// With --format csv or json: write the file here instead of standard output.
    #[arg(long, value_name = "FILE", env = "MAIN_SERVER_AUDIT_OUTPUT")]
    pub output: Option<PathBuf>,
}

/// A time flag: a date (its midnight UTC) or an RFC 3339 time; a usage mistake exits 2.
fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let trimmed = text.trim();
    if let Some(midnight) = chrono::NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
    {
        return Ok(midnight.and_utc());
    }
    chrono::DateTime::parse_from_rfc3339(trimmed)
        .map(|at| at.with_timezone(&chrono::Utc))
        .map_err(|_| {
            format!(
                "{text:?} is not a date: expected YYYY-MM-DD (for example 2027-02-28) or an \
                 RFC 3339 time such as 2027-02-28T12:00:00Z"
            )
        })
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Add an operator; prints the personal token once (the server keeps only its hash).
    Add {
        /// Name recorded as the actor of everything done with the token.
        name: String,
        /// viewer (reads), operator (also changes the registry and clears key pairs),
        /// admin (also manages operators) or gateway (the mail endpoints only).
        #[arg(long, env = "MAIN_SERVER_OPERATOR_ROLE")]
        role: Role,
    },
    /// List operators and whether they are revoked.
    List,
    /// Revoke an operator: the token stops working with the next request.
    Revoke {
        /// Operator name.
        name: String,
    },
    /// Give an operator a new token (printed once); the old one stops working at once.
    Rotate {
        /// Operator name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Register a customer.
    Add {
        /// Customer name.
        #[arg(long, env = "MAIN_SERVER_CUSTOMER_NAME")]
        name: String,
        /// Registered contact address (repeat for several).
        #[arg(
            long = "email",
            env = "MAIN_SERVER_CUSTOMER_EMAIL",
            value_delimiter = ','
        )]
        emails: Vec<String>,
        /// Add it even though a customer of that name exists (without this, such a
        /// customer is refused: usually the same company typed twice).
        #[arg(long, env = "MAIN_SERVER_CONFIRM_DUPLICATE_NAME")]
        confirm_duplicate_name: bool,
    },
    /// List customers, one page at a time (by name ignoring case, then id).
    List {
        /// Only customers whose name starts with this text (ignoring case).
        #[arg(long, env = "MAIN_SERVER_CUSTOMER_SEARCH")]
        name: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a customer: contacts, reminder mails, what possible copies of its ids do,
    /// and its license server ids.
    Show {
        /// Customer id.
        #[arg(value_parser = parse_id)]
        customer_id: Uuid,
    },
    /// Set what a possible copy of one of the customer's ids does: `warn` (the mark is
    /// shown, its syncs still answered; the default) or `refuse` (its syncs are
    /// refused until an operator dismisses the mark).
    CopyPolicy {
        /// Customer id.
        #[arg(value_parser = parse_id)]
        customer_id: Uuid,
        /// `warn` or `refuse`.
        policy: shared_proto::admin_api::CopyPolicy,
    },
    /// Give a customer a new name.
    Rename {
        /// Customer id.
        #[arg(value_parser = parse_id)]
        customer_id: Uuid,
        /// The new name.
        #[arg(long, env = "MAIN_SERVER_CUSTOMER_NAME")]
        name: String,
        /// Rename it even though another customer has that name.
        #[arg(long, env = "MAIN_SERVER_CONFIRM_DUPLICATE_NAME")]
        confirm_duplicate_name: bool,
    },
    /// Register one more contact address for a customer (an address belongs to one
    /// customer only).
    AddEmail {
        /// Customer id.
        #[arg(value_parser = parse_id)]
        customer_id: Uuid,
        /// The address.
        email: String,
    },
    /// Remove a contact address of a customer (not its last one).
    RemoveEmail {
        /// Customer id.
        #[arg(value_parser = parse_id)]
        customer_id: Uuid,
        /// The address.
        email: String,
    },
    /// Switch the reminder mails of a customer on or off (on by default).
    Reminders {
        /// Customer id.
        #[arg(value_parser = parse_id)]
        customer_id: Uuid,
        /// `on` or `off`.
        switch: Switch,
    },
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
pub enum ReminderCommand {
    /// The reminders recorded for a customer's ids, newest first: threshold, the
    /// valid-until it was about, whether it was mailed (and to whom) or cancelled.
    List {
        /// Customer id.
        #[arg(value_parser = parse_id)]
        customer_id: Uuid,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Allocate a new license server id for a customer.
    Add {
        /// Customer id.
        #[arg(long = "customer", env = "MAIN_SERVER_CUSTOMER_ID")]
        #[arg(value_parser = parse_id)]
        customer_id: Uuid,
    },
    /// List ids, one page at a time (by id).
    List {
        /// Only the ids of this customer.
        #[arg(long = "customer", env = "MAIN_SERVER_CUSTOMER_ID", value_parser = parse_id)]
        customer_id: Option<Uuid>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Whether an id is marked a possible copy (two installations synchronizing with
    /// its key pair), and the requests that show it.
    PossibleCopy {
        /// License server id.
        #[arg(value_parser = parse_id)]
        server_id: Uuid,
    },
    /// Dismiss an id's possible-copy mark when it is none (a restored backup, a lost
    /// mail) or the copy is gone: the id's history of requests is forgotten, so only
    /// new evidence marks it again. Recorded in the audit log.
    DismissCopy {
        /// License server id.
        #[arg(value_parser = parse_id)]
        server_id: Uuid,
        /// Why (recorded in the audit log with the operator name).
        #[arg(long, env = "MAIN_SERVER_DISMISS_REASON")]
        reason: Option<String>,
    },
    /// Retire an id: it is kept (listed as retired, never allocated again) and its syncs
    /// are refused from now on.
    Retire {
        /// License server id.
        #[arg(value_parser = parse_id)]
        server_id: Uuid,
        /// Why (recorded in the audit log with the operator name).
        #[arg(long, env = "MAIN_SERVER_RETIRE_REASON")]
        reason: String,
        /// Retire it although a key pair is bound: the installation holding it stops
        /// synchronizing (without this such an id is refused).
        #[arg(long)]
        force: bool,
    },
    /// Move an id to another customer: its reminders and key-clear notices then go to
    /// that customer's contacts.
    Move {
        /// License server id.
        #[arg(value_parser = parse_id)]
        server_id: Uuid,
        /// The customer it belongs to from now on.
        #[arg(long = "customer", env = "MAIN_SERVER_CUSTOMER_ID")]
        #[arg(value_parser = parse_id)]
        customer_id: Uuid,
    },
    /// Set an id's failover period: how many days a promoted standby server of the id
    /// may issue seats while its primary is down (1 to 90; 14 unless set). The license
    /// files naming a standby carry it from the id's next sync on. Recorded in the
    /// audit log.
    FailoverPeriod {
        /// License server id.
        #[arg(value_parser = parse_id)]
        server_id: Uuid,
        /// Days, 1 to 90.
        #[arg(value_parser = parse_failover_days)]
        days: u32,
    },
    /// Show an id: binding, last sync and channel, days until the 366-day limit,
    /// whether its local server holds the newest revision, a possible-copy mark, its
    /// standby server and failover period, licenses.
    Show {
        /// License server id.
        #[arg(value_parser = parse_id)]
        server_id: Uuid,
    },
    /// The usage each of the id's latest syncs reported: per feature, seats, peak in
    /// use, seat-hours and refused check-outs by code (oldest sync first).
    Usage {
        /// License server id.
        #[arg(value_parser = parse_id)]
        server_id: Uuid,
        /// How many of the latest syncs to show (1 to 1000).
        #[arg(long, env = "MAIN_SERVER_USAGE_SYNCS", default_value_t = 20,
              value_parser = clap::value_parser!(u32).range(1..=1000))]
        syncs: u32,
    },
    /// Ids never synced or due (or overdue) within N days.
    Due {
        /// Window in days.
        #[arg(long, env = "MAIN_SERVER_DUE_WITHIN_DAYS", default_value_t = 30)]
        within_days: i64,
        #[command(flatten)]
        page: PageArgs,
    },
}

/// Paging of the id and customer listings: the registry may hold a million ids and
/// 100,000 customers.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct PageArgs {
    /// Entries per page (1 to 1000).
    #[arg(long, env = "MAIN_SERVER_PAGE_LIMIT", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Continue after this id (the last id or customer of the previous page, as
    /// printed).
    #[arg(long, env = "MAIN_SERVER_PAGE_AFTER")]
    pub after: Option<Uuid>,
}

#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// Add a license to an id.
    Add {
        /// License server id.
        #[arg(value_parser = parse_id)]
        server_id: Uuid,
        /// Product/feature name: 1 to 128 letters, digits, `-`, `_` or `.`.
        #[arg(long, env = "MAIN_SERVER_LICENSE_FEATURE")]
        feature: String,
        /// Number of floating seats.
        #[arg(long, env = "MAIN_SERVER_LICENSE_SEATS")]
        seats: u32,
        /// First valid day (YYYY-MM-DD or RFC 3339); default: at once.
        #[arg(long, env = "MAIN_SERVER_LICENSE_VALID_FROM")]
        #[arg(value_parser = check_date)]
        valid_from: Option<String>,
        /// Last valid moment (YYYY-MM-DD or RFC 3339); default: perpetual.
        #[arg(long, env = "MAIN_SERVER_LICENSE_VALID_UNTIL")]
        #[arg(value_parser = check_date)]
        valid_until: Option<String>,
        /// Let clients borrow a seat for offline use for up to this many hours (1 to
        /// 8784); default: not borrowable. Carried to the local server in the license file.
        #[arg(long, env = "MAIN_SERVER_LICENSE_MAX_BORROW_HOURS",
              value_parser = clap::value_parser!(u32).range(1..=8_784))]
        max_borrow_hours: Option<u32>,
        /// Add it even though --valid-until is already past (without this such a
        /// license is refused: usually a typed year).
        #[arg(long, env = "MAIN_SERVER_LICENSE_CONFIRM_ENDED")]
        confirm_ended: bool,
    },
    /// Change a license's seats or dates (`none` removes a date).
    Change {
        /// License server id.
        #[arg(value_parser = parse_id)]
        server_id: Uuid,
        /// License id.
        #[arg(value_parser = parse_id)]
        license_id: Uuid,
        /// New number of seats.
        #[arg(long, env = "MAIN_SERVER_LICENSE_SEATS")]
        seats: Option<u32>,
        /// New start (YYYY-MM-DD, RFC 3339 or `none`).
        #[arg(long, env = "MAIN_SERVER_LICENSE_VALID_FROM")]
        #[arg(value_parser = check_date)]
        valid_from: Option<String>,
        /// New end (YYYY-MM-DD, RFC 3339 or `none` for perpetual).
        #[arg(long, env = "MAIN_SERVER_LICENSE_VALID_UNTIL")]
        #[arg(value_parser = check_date)]
        valid_until: Option<String>,
        /// New longest offline borrow in hours (1 to 8784), or `none`: not borrowable.
        #[arg(long, env = "MAIN_SERVER_LICENSE_MAX_BORROW_HOURS", value_parser = parse_borrow_hours)]
        max_borrow_hours: Option<BorrowLimit>,
        /// Change it even though the new --valid-until is already past (the license
        /// ends at once).
        #[arg(long, env = "MAIN_SERVER_LICENSE_CONFIRM_ENDED")]
        confirm_ended: bool,
    },
    /// Remove a license.
    Remove {
        /// License server id.
        #[arg(value_parser = parse_id)]
        server_id: Uuid,
        /// License id.
        #[arg(value_parser = parse_id)]
        license_id: Uuid,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Clear the key pair bound to an id, so the next first sync binds a new one.
    Clear {
        /// License server id.
        #[arg(value_parser = parse_id)]
        server_id: Uuid,
        /// Why (recorded in the audit log with the operator name).
        #[arg(long, env = "MAIN_SERVER_KEY_CLEAR_REASON")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// List requests (all, or of one status).
    List {
        /// Only this status: pending, approved or rejected.
        #[arg(long, env = "MAIN_SERVER_REQUEST_STATUS")]
        status: Option<KeyClearStatus>,
    },
    /// One request in full: its text and whether its sender was authenticated.
    Show {
        /// Request id.
        #[arg(value_parser = parse_id)]
        request_id: Uuid,
    },
    /// Approve a request: clears the id's key pair.
    Approve {
        /// Request id.
        #[arg(value_parser = parse_id)]
        request_id: Uuid,
        /// Note recorded with the decision.
        #[arg(long, env = "MAIN_SERVER_REQUEST_REASON")]
        reason: Option<String>,
        /// Approve although the receiving mail server did not authenticate the
        /// sender (a forged From is possible): only after making sure otherwise,
        /// e.g. by phone, that the request is genuine. The audit log records it.
        #[arg(long)]
        override_unauthenticated_sender: bool,
    },
    /// Reject a request.
    Reject {
        /// Request id.
        #[arg(value_parser = parse_id)]
        request_id: Uuid,
        /// Why (sent to the customer).
        #[arg(long, env = "MAIN_SERVER_REQUEST_REASON")]
        reason: String,
    },
    /// Record a request by hand (the mail gateway does this for key-clear mail).
    Create {
        /// License server id.
        #[arg(long, env = "MAIN_SERVER_REQUEST_SERVER_ID")]
        #[arg(value_parser = parse_id)]
        server_id: Uuid,
        /// Registered contact address asking.
        #[arg(long, env = "MAIN_SERVER_REQUEST_SENDER")]
        sender: String,
        /// Message-ID of the mail (deduplicates).
        #[arg(long, env = "MAIN_SERVER_REQUEST_MESSAGE_ID")]
        message_id: String,
        /// Text of the request.
        #[arg(long, env = "MAIN_SERVER_REQUEST_TEXT", default_value = "")]
        text: String,
    },
}

#[derive(Debug, Args)]
pub struct MailSyncArgs {
    /// Registered contact address the sync data came from.
    #[arg(long, env = "MAIN_SERVER_MAIL_SENDER")]
    pub sender: String,
    /// Sync-data file.
    #[arg(long, env = "MAIN_SERVER_MAIL_INPUT")]
    pub input: PathBuf,
    /// Where to write the license file.
    #[arg(long, env = "MAIN_SERVER_MAIL_OUTPUT")]
    pub output: PathBuf,
}

/// Wraps a secret flag value (a database URL with its password) as soon as it is read.
fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}

/// A borrow limit given on the command line: hours, or none (not borrowable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BorrowLimit(pub Option<u32>);

/// An id on the command line, with the expected form instead of the parser's words.
fn parse_id(text: &str) -> Result<Uuid, String> {
    Uuid::try_parse(text.trim()).map_err(|_| {
        format!("{text:?} is not an id: expected one like 6f0c1a52-3b8e-4d27-9a51-0c2b7f3e9d10")
    })
}

/// A failover period in days, checked when the arguments are read (a usage mistake
/// exits 2).
fn parse_failover_days(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|days| (1..=MAX_FAILOVER_DAYS).contains(days))
        .ok_or_else(|| {
            format!("the failover period is a whole number of days from 1 to {MAX_FAILOVER_DAYS}")
        })
}

/// A date flag, checked when the flags are read (a usage mistake exits 2) and kept as
/// text for the command that sends it.
fn check_date(text: &str) -> Result<String, String> {
    // The forms the admin command reads (`admin_cli::commands::parse_date`).
    let trimmed = text.trim();
    let readable = ["none", "never"]
        .iter()
        .any(|word| trimmed.eq_ignore_ascii_case(word))
        || chrono::NaiveDate::parse_from_str(trimmed, "%Y-%m-%d").is_ok()
        || chrono::DateTime::parse_from_rfc3339(trimmed).is_ok();
    readable.then(|| text.to_owned()).ok_or_else(|| {
        format!(
            "{text:?} is not a date: expected YYYY-MM-DD (for example 2027-02-28), an \
                 RFC 3339 time such as 2027-02-28T12:00:00Z, or none"
        )
    })
}

fn parse_borrow_hours(text: &str) -> Result<BorrowLimit, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(BorrowLimit(None));
    }
    match text.parse::<u32>() {
        Ok(hours @ 1..=8_784) => Ok(BorrowLimit(Some(hours))),
        _ => Err(format!(
            "{text:?} is not a borrow limit: hours from 1 to 8784 (366 days), or none"
        )),
    }
}
