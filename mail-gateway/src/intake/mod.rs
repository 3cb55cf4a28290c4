//! Intake: the three ways mail reaches the gateway. Each stores a message in the
//! spool before acknowledging it, and marks it with its [`Intake`](crate::vocabulary::Intake),
//! which decides whose `Authentication-Results` headers are believed.
//!
//! - [`smtp`]: the gateway's own SMTP receiver (`--smtp-listen`).
//! - [`pipe`]: `mail-gateway deliver`, one message on standard input from an MTA's
//!   pipe transport.
//! - [`maildir`]: a Maildir an MTA delivers to (`--maildir`).

pub mod maildir;
pub mod pipe;
pub mod smtp;
