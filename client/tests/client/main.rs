//! The client library and the `solme-license` wrapper against real local servers
//! (the `local-server` binary on loopback ports, in temporary directories).

// Test code: a failed unwrap is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod library;
mod wrapper;
