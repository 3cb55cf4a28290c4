//! The gateway's own SMTP receiver: commands parsed by `smtp-proto`, the
//! session loop here.
//!
//! Bounds: command lines of at most [`MAX_LINE`] bytes, messages of at most
//! `--max-message-size` bytes (advertised as `SIZE`, checked against the
//! `MAIL FROM` SIZE parameter and counted while the data arrives), one
//! recipient address (the licensing address), `--max-connections` sessions
//! at once and `--max-connections-per-ip` from one address,
//! `--smtp-timeout-secs` of silence, `--smtp-data-timeout-secs` for one
//! message and `--smtp-session-timeout-secs` for a whole connection (so a
//! client trickling bytes cannot hold a slot for ever), and a cap on bad
//! commands. A message gets `250` only after the spool stored it durably.
//!
//! On shutdown no connection is taken any more; a session waiting for a
//! command is told `421` and closed, a session in `DATA` may finish its
//! message (it is stored and gets its `250`) within the drain time, then is
//! told `421` too.
//!
//! It checks no SPF, DKIM or DMARC and writes no `Authentication-Results`: the
//! messages it stores carry [`Intake::Smtp`](crate::vocabulary::Intake::Smtp), and
//! [`crate::classify::sender_auth`] believes no such header of theirs (as the receiving
//! host, it would have to remove them, RFC 8601 §5), so a sender cannot vouch
//! for itself here.
//!
//! By protocol phase: [`listener`] accepts connections (limits per address, the
//! greeting, STARTTLS); [`session`] reads and answers the commands that build
//! the envelope; [`data`] receives the message after `DATA` and stores it. This
//! file holds what they share: the settings and the limits.

use std::time::Duration;

use openssl::ssl::SslAcceptor;
use shared_proto::Clock;
use tokio::sync::mpsc;

use crate::queue::spool::Spool;

mod data;
pub mod listener;
mod session;

/// Longest command line accepted (RFC 5321 asks for 512; extensions make
/// lines longer, so allow some room).
pub const MAX_LINE: usize = 2048;
/// Bad commands tolerated in one session before it is closed.
const MAX_ERRORS: usize = 10;
/// Recipients per transaction (all of them must be the licensing address).
const MAX_RECIPIENTS: usize = 10;
const READ_CHUNK: usize = 16 * 1024;

/// What the SMTP receiver needs to know.
pub struct SmtpSettings {
    pub hostname: String,
    pub own_address: String,
    pub max_message_size: usize,
    pub max_connections: usize,
    /// Sessions at once from one client address.
    pub max_connections_per_ip: usize,
    /// Longest silence (one read).
    pub timeout: Duration,
    /// Longest time for one message, from `354` to the final dot.
    pub data_timeout: Duration,
    /// Longest time for a whole connection.
    pub session_timeout: Duration,
    /// How long a stop waits for sessions in `DATA` to finish.
    pub drain_timeout: Duration,
    /// Offered as STARTTLS when present.
    pub tls: Option<SslAcceptor>,
}

/// Shared by all sessions.
pub struct Smtp {
    pub settings: SmtpSettings,
    pub spool: Spool,
    pub clock: Clock,
    /// Names of stored messages, for the worker.
    pub accepted: mpsc::UnboundedSender<String>,
}

/// How a session loop ended.
pub(super) enum End {
    Closed,
    StartTls,
}
