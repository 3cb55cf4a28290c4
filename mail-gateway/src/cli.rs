//! The command line: `serve` and `deliver`. Every flag can also be given as
//! an environment variable, so a container or a systemd unit needs no
//! wrapper script.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The Solme mail gateway: answers mail sent to the licensing address.
#[derive(Debug, Parser)]
#[command(name = "mail-gateway", version, about, long_about = None)]
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
    /// Run the gateway: take mail in, answer it, mail key-clear notices.
    Serve(Box<ServeArgs>),
    /// Store one message read on standard input in the spool (for an MTA's
    /// pipe transport). Exits 0 once the message is stored durably, 75 when it
    /// could not be stored (the MTA keeps it and tries again).
    Deliver(DeliverArgs),
}

/// Where the gateway listens for SMTP: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpListen {
    Off,
    On(SocketAddr),
}

impl FromStr for SmtpListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(SmtpListen::Off);
        }
        s.parse()
            .map(SmtpListen::On)
            .map_err(|err| format!("expected HOST:PORT or `off`: {err}"))
    }
}

/// How the connection to the SMTP relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RelayTls {
    /// Plain text: only for a relay on the same host or a trusted network.
    None,
    /// STARTTLS when the relay offers it, plain text otherwise.
    Opportunistic,
    /// STARTTLS, and refuse to send when the relay does not offer it.
    Required,
    /// TLS from the first byte (SMTPS, usually port 465).
    Wrapper,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("outbound").required(true).args(["smtp_relay", "outbox"])))]
pub struct ServeArgs {
    #[command(flatten)]
    pub spool: SpoolArgs,

    /// The licensing address the gateway answers for (mail to any other
    /// recipient is refused at SMTP time); also the From of every reply.
    #[arg(long, env = "MAIL_GATEWAY_ADDRESS")]
    pub address: String,

    /// Display name used in the From of the replies.
    #[arg(
        long,
        env = "MAIL_GATEWAY_FROM_NAME",
        default_value = "Solme Licensing"
    )]
    pub from_name: String,

    /// Base URL of the main server's admin API, e.g. `https://main.example:8081`
    /// (`http://` only for a main server on loopback started with
    /// `--admin-plain-http`).
    #[arg(long, env = "MAIL_GATEWAY_MAIN_SERVER")]
    pub main_server: String,

    /// CA certificate the main server's admin API certificate must come from
    /// (`ca.pem` of its data directory); needed for an `https://` main server.
    /// The system's CAs are never trusted.
    #[arg(long, env = "MAIL_GATEWAY_MAIN_SERVER_CA")]
    pub main_server_ca: Option<PathBuf>,

    /// File holding the main server's operator token.
    #[arg(long, env = "MAIL_GATEWAY_TOKEN_FILE")]
    pub token_file: PathBuf,

    /// Address of the gateway's own SMTP receiver (port 0 picks a free
    /// port), or `off` when mail comes only through `--maildir` or `deliver`.
    #[arg(
        long,
        env = "MAIL_GATEWAY_SMTP_LISTEN",
        default_value = "127.0.0.1:2525"
    )]
    pub smtp_listen: SmtpListen,

    /// Address of the status page (`/` as HTML, `/status` as JSON).
    #[arg(
        long,
        env = "MAIL_GATEWAY_HTTP_LISTEN",
        default_value = "127.0.0.1:8025"
    )]
    pub http_listen: SocketAddr,

    /// A Maildir that an MTA delivers licensing mail to: the gateway takes
    /// every message from its `new/` folder, then moves it to `cur/`.
    #[arg(long, env = "MAIL_GATEWAY_MAILDIR")]
    pub maildir: Option<PathBuf>,

    /// How often the Maildir is looked at, in milliseconds.
    #[arg(long, env = "MAIL_GATEWAY_MAILDIR_POLL_MS", default_value_t = 1000)]
    pub maildir_poll_ms: u64,

    /// Send replies through this SMTP relay: `smtp://host:port`.
    #[arg(long, env = "MAIL_GATEWAY_SMTP_RELAY")]
    pub smtp_relay: Option<String>,

    /// Protection of the relay connection.
    #[arg(long, env = "MAIL_GATEWAY_SMTP_RELAY_TLS", value_enum, default_value_t = RelayTls::Required)]
    pub smtp_relay_tls: RelayTls,

    /// User name for the relay (with `--smtp-relay-password-file`).
    #[arg(
        long,
        env = "MAIL_GATEWAY_SMTP_RELAY_USER",
        requires = "smtp_relay_password_file"
    )]
    pub smtp_relay_user: Option<String>,

    /// File holding the relay password.
    #[arg(
        long,
        env = "MAIL_GATEWAY_SMTP_RELAY_PASSWORD_FILE",
        requires = "smtp_relay_user"
    )]
    pub smtp_relay_password_file: Option<PathBuf>,

    /// Write replies as `.eml` files into this directory instead of sending
    /// them (offline runs and tests).
    #[arg(long, env = "MAIL_GATEWAY_OUTBOX")]
    pub outbox: Option<PathBuf>,

    /// Host name the SMTP receiver announces (default: the licensing
    /// address's domain).
    #[arg(long, env = "MAIL_GATEWAY_HOSTNAME")]
    pub hostname: Option<String>,

    /// Most SMTP connections served at once; more are told to come back later.
    #[arg(long, env = "MAIL_GATEWAY_MAX_CONNECTIONS", default_value_t = 64)]
    pub max_connections: usize,

    /// Most SMTP connections served at once for one client address. With an
    /// MTA in front that relays to this receiver, raise it to
    /// `--max-connections`.
    #[arg(
        long,
        env = "MAIL_GATEWAY_MAX_CONNECTIONS_PER_IP",
        default_value_t = 16
    )]
    pub max_connections_per_ip: usize,

    /// Seconds an SMTP client may stay silent before it is disconnected.
    #[arg(long, env = "MAIL_GATEWAY_SMTP_TIMEOUT_SECS", default_value_t = 300)]
    pub smtp_timeout_secs: u64,

    /// Seconds a client may take to send one message, from `DATA` to the
    /// final dot, however steadily it sends.
    #[arg(
        long,
        env = "MAIL_GATEWAY_SMTP_DATA_TIMEOUT_SECS",
        default_value_t = 600
    )]
    pub smtp_data_timeout_secs: u64,

    /// Seconds one SMTP connection may last in all, however busy it is.
    #[arg(
        long,
        env = "MAIL_GATEWAY_SMTP_SESSION_TIMEOUT_SECS",
        default_value_t = 1800
    )]
    pub smtp_session_timeout_secs: u64,

    /// PEM certificate (chain) for STARTTLS on the SMTP receiver; with
    /// `--tls-key`. Without them STARTTLS is not offered.
    #[arg(long, env = "MAIL_GATEWAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for STARTTLS.
    #[arg(long, env = "MAIL_GATEWAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Messages processed at the same time.
    #[arg(long, env = "MAIL_GATEWAY_WORKERS", default_value_t = 4)]
    pub workers: usize,

    /// First retry delay after a temporary failure, in milliseconds; it
    /// doubles with every failure up to `--retry-max-ms`.
    #[arg(long, env = "MAIL_GATEWAY_RETRY_INITIAL_MS", default_value_t = 1000)]
    pub retry_initial_ms: u64,

    /// Longest retry delay, in milliseconds.
    #[arg(long, env = "MAIL_GATEWAY_RETRY_MAX_MS", default_value_t = 300_000)]
    pub retry_max_ms: u64,

    /// Days that sent replies and the Message-ID ledger are kept. A copy of
    /// a message arriving later than that is answered again.
    #[arg(long, env = "MAIL_GATEWAY_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u64,

    /// How often the main server is asked for decided key-clear requests,
    /// in milliseconds.
    #[arg(
        long,
        env = "MAIL_GATEWAY_NOTICE_INTERVAL_MS",
        default_value_t = 10_000
    )]
    pub notice_interval_ms: u64,

    /// How often the main server is asked for reminder mails that became due (an id
    /// 30, 7 or 1 day before its 366-day limit, or past it), in seconds.
    #[arg(
        long,
        env = "MAIL_GATEWAY_REMINDER_INTERVAL_SECONDS",
        default_value_t = 300
    )]
    pub reminder_interval_seconds: u64,

    /// The authserv-id that the receiving mail server writes into the
    /// `Authentication-Results` header it adds (its SPF, DKIM and DMARC results),
    /// e.g. `mx.solme.example`. Only that server's header is believed; any other
    /// copy (which a sender can write) is ignored. It is read only from mail the
    /// MTA hands over (`deliver`, `--maildir`): mail on the gateway's own SMTP
    /// listener, which checks nobody, is always "not checked". Without it every
    /// key-clear request is recorded with its sender "not checked", and approving
    /// one needs an explicit override.
    #[arg(long, env = "MAIL_GATEWAY_AUTHSERV_ID", value_parser = authserv_id)]
    pub authserv_id: Option<String>,

    /// The public address of Solme's customer portal as customers reach it, e.g.
    /// `https://licensing.solme.example` (the main server's sync address, or the front
    /// before it). Sign-in links are mailed as this address followed by
    /// `/portal/link?token=…`, and replies and reminders name `ADDRESS/portal/` as a
    /// way to synchronize. Without it no sign-in link is mailed.
    #[arg(long, env = "MAIL_GATEWAY_PORTAL_URL", value_parser = portal_url)]
    pub portal_url: Option<String>,

    /// How often the main server is asked for portal sign-in links to mail, in
    /// milliseconds. A link works for 15 minutes, so keep this short.
    #[arg(
        long,
        env = "MAIL_GATEWAY_PORTAL_LINK_INTERVAL_MS",
        default_value_t = 5_000
    )]
    pub portal_link_interval_ms: u64,
}

#[derive(Debug, Args)]
pub struct DeliverArgs {
    #[command(flatten)]
    pub spool: SpoolArgs,

    /// The envelope sender (Postfix: `${sender}`; empty for a bounce).
    /// Without it the message's Return-Path header is used.
    #[arg(long, env = "MAIL_GATEWAY_SENDER", allow_hyphen_values = true)]
    pub sender: Option<String>,

    /// The envelope recipient (Postfix: `${recipient}`), kept for the log.
    #[arg(long, env = "MAIL_GATEWAY_RECIPIENT")]
    pub recipient: Vec<String>,
}

/// What `serve` and `deliver` must agree on: the spool they share and the largest
/// message either takes in.
#[derive(Debug, Args)]
pub struct SpoolArgs {
    /// Directory of the gateway's spool, ledger and `listening.json` (`deliver` takes
    /// the one `serve` runs on).
    #[arg(long, env = "MAIL_GATEWAY_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Largest message accepted, in bytes, from 1 KiB to 1 GiB: `serve` advertises it
    /// as SMTP SIZE, `deliver` answers a larger one with "message too large".
    #[arg(long, env = "MAIL_GATEWAY_MAX_MESSAGE_SIZE", default_value_t = 2 * 1024 * 1024,
          value_parser = message_size)]
    pub max_message_size: usize,
}

/// Smallest and largest `--max-message-size`: below 1 KiB not even the
/// headers of a mail fit; above 1 GiB a message is held in memory whole.
const MESSAGE_SIZE_RANGE: std::ops::RangeInclusive<usize> = 1024..=1024 * 1024 * 1024;

fn message_size(text: &str) -> Result<usize, String> {
    let size: usize = text
        .parse()
        .map_err(|err| format!("expected a number of bytes: {err}"))?;
    if MESSAGE_SIZE_RANGE.contains(&size) {
        Ok(size)
    } else {
        Err(format!(
            "must be from {} to {} bytes",
            MESSAGE_SIZE_RANGE.start(),
            MESSAGE_SIZE_RANGE.end()
        ))
    }
}

/// Longest authserv-id accepted (a domain name is at most 253 characters).
const MAX_AUTHSERV_ID: usize = 253;

/// An authserv-id as the header writes it: one word, no separators.
fn authserv_id(text: &str) -> Result<String, String> {
    let id = text.trim();
    let word = id
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, ';' | '(' | ')' | '"' | '=' | '\\'));
    if id.is_empty() || id.len() > MAX_AUTHSERV_ID || !word {
        return Err(format!(
            "expected the mail server's authserv-id, one word of at most {MAX_AUTHSERV_ID} \
             characters such as mx.solme.example"
        ));
    }
    Ok(id.to_owned())
}

/// The portal's public address: `https://`, a host, no user, query or fragment;
/// returned without a trailing `/`, ready for a path to be appended.
fn portal_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let expected = "expected the portal's public https:// address, such as \
                    https://licensing.solme.example";
    let url = url::Url::parse(text).map_err(|err| format!("{expected}: {err}"))?;
    if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) {
        return Err(expected.to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{expected}, without a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{expected}, without ? or #"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn smtp_listen_parses_off_and_addresses() {
        assert_eq!("off".parse::<SmtpListen>().unwrap(), SmtpListen::Off);
        assert_eq!(
            "127.0.0.1:0".parse::<SmtpListen>().unwrap(),
            SmtpListen::On("127.0.0.1:0".parse().unwrap())
        );
        assert!("nowhere".parse::<SmtpListen>().is_err());
    }

    #[test]
    fn message_sizes_are_bounded() {
        assert_eq!(message_size("2097152"), Ok(2_097_152));
        assert!(message_size("100").is_err());
        assert!(message_size("18446744073709551615").is_err());
        assert!(message_size("lots").is_err());
    }

    #[test]
    fn authserv_ids_are_one_word() {
        assert_eq!(
            authserv_id(" mx.solme.example "),
            Ok("mx.solme.example".into())
        );
        assert!(authserv_id("").is_err());
        assert!(authserv_id("mx; spf=pass").is_err());
        assert!(authserv_id(&"a".repeat(300)).is_err());
    }

    #[test]
    fn portal_urls_are_https_bases() {
        assert_eq!(
            portal_url(" https://licensing.solme.example/ "),
            Ok("https://licensing.solme.example".into())
        );
        assert_eq!(
            portal_url("https://127.0.0.1:8443"),
            Ok("https://127.0.0.1:8443".into())
        );
        assert_eq!(
            portal_url("https://solme.example/licensing/"),
            Ok("https://solme.example/licensing".into())
        );
        for bad in [
            "http://licensing.solme.example",
            "licensing.solme.example",
            "https://user:pw@licensing.solme.example",
            "https://licensing.solme.example/?a=b",
            "https://licensing.solme.example/#top",
        ] {
            assert!(portal_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serve_needs_an_outbound_path() {
        let args = [
            "mail-gateway",
            "serve",
            "--data-dir",
            "d",
            "--address",
            "licensing@solme.example",
            "--main-server",
            "http://127.0.0.1:1",
            "--token-file",
            "t",
        ];
        assert!(Cli::try_parse_from(args).is_err());
        let with_outbox = args.iter().copied().chain(["--outbox", "o"]);
        assert!(Cli::try_parse_from(with_outbox).is_ok());
    }
}
