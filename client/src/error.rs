//! What a request to the license servers can end in, besides success: one typed enum
//! for the whole library, and the exit code the wrapper gives each.

use shared_proto::ErrorCode;

/// Why a check-out, heartbeat, check-in or query did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The license server answered and refused (no seat free, an unknown feature, the
    /// options file, …): its stable code and its message, written for people.
    #[error("the license server at {server} refused: {message} ({code})")]
    Refused {
        code: ErrorCode,
        message: String,
        server: String,
    },
    /// No server answered (connection refused, timed out, cut), or every answer was a
    /// temporary failure, until the retries ran out.
    #[error("no license server answered ({tried}): {last}")]
    Unreachable {
        /// The servers tried, in order.
        tried: String,
        /// What the last attempt met.
        last: String,
    },
    /// A server answered something this client does not understand (an older or newer
    /// server, or not a license server at all).
    #[error("the answer of {server} was not understood: {detail}")]
    Protocol { server: String, detail: String },
    /// A borrow token that does not verify, or a public key that is not one.
    #[error("the borrow token is not valid: {0}")]
    Token(String),
    /// The arguments cannot make a request (no server given, a URL that is not one).
    #[error("{0}")]
    Usage(String),
    /// The blocking interface's background thread is gone (the process is ending).
    #[error("the license client's background thread has stopped")]
    Stopped,
}

impl Error {
    /// Whether the refusal says that the other server of a primary/standby pair issues
    /// seats now (or may): a client with a list of servers tries the next one.
    pub fn is_other_server_turn(&self) -> bool {
        matches!(
            self.code(),
            Some(
                ErrorCode::StandbyFollowing
                    | ErrorCode::ServingElsewhere
                    | ErrorCode::FailoverEnded
            )
        )
    }

    /// The refusal's code, when a server refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether trying again later may succeed without anything changing on this side.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

/// The wrapper's exit codes (`sysexits.h` values), documented in the README.
pub mod exit {
    use super::Error;

    /// Success.
    pub const SUCCESS: u8 = shared_proto::exit::SUCCESS;
    /// A server answered and gave no seat (`EX_UNAVAILABLE`).
    pub const REFUSED: u8 = 69;
    /// A server answered something the client does not understand (`EX_PROTOCOL`).
    pub const PROTOCOL: u8 = 76;
    /// No server answered: try again later (`EX_TEMPFAIL`).
    pub const UNREACHABLE: u8 = shared_proto::exit::TEMPORARY;
    /// Bad usage (clap's own code).
    pub const USAGE: u8 = shared_proto::exit::USAGE;
    /// The command could not be run: not executable (the shell's code).
    pub const CANNOT_EXECUTE: u8 = 126;
    /// The command was not found (the shell's code).
    pub const NOT_FOUND: u8 = 127;

    /// The exit code for a request that ended in `err`.
    pub fn for_error(err: &Error) -> u8 {
        match err {
            Error::Refused { .. } => REFUSED,
            Error::Unreachable { .. } => UNREACHABLE,
            Error::Protocol { .. } | Error::Token(_) => PROTOCOL,
            Error::Usage(_) => USAGE,
            Error::Stopped => shared_proto::exit::FAILED,
        }
    }
}
