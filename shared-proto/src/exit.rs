//! The exit codes every command line of the three programs uses (docs/API.md).

/// Success.
pub const SUCCESS: u8 = 0;
/// Refused or failed; the message says why.
pub const FAILED: u8 = 1;
/// Bad usage (clap's own code).
pub const USAGE: u8 = 2;
/// A temporary failure (network, a database locked by another process or full):
/// trying again later may work. `EX_TEMPFAIL` of `sysexits.h`, which MTAs retry on.
pub const TEMPORARY: u8 = 75;
