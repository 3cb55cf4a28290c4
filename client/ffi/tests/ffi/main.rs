//! The C interface: its header against the source, the C example compiled with `cc`
//! and run against a real local server, and the functions called through the C ABI.

// Test code: a failed unwrap is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The client library's own servers for tests (an offline installation with an
// imported license file), shared rather than copied.
#[path = "../../../tests/client/helpers.rs"]
mod helpers;

mod calls;
mod example;
mod header;
