//! Classification: what an inbound message asks for ([`message`]: a sync, a key-clear
//! request, a reply saying what was wrong, or no reply at all) and whether a key-clear
//! request's sender was authenticated by the MTA in front ([`sender_auth`]).
//!
//! Invariant: nothing here does I/O. Both take the bytes and the envelope they are
//! given and return a value (no spool, no network, no clock), which is what lets the
//! golden `.eml` tests, the property tests and the fuzz target run them alone.

pub mod message;
pub mod sender_auth;
