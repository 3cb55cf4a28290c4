//! Integration tests of `main-server`: each test runs the server in process on the
//! same `Application::build` the binary runs (port 0, a temporary data directory, a
//! clock it can move) and talks HTTPS/HTTP to it; the CLI tests and the scale-out race
//! run the real binary through the shared `test-harness`.

#![expect(
    clippy::expect_used,
    reason = "test set-up helpers fail the test with a message"
)]

mod admin;
mod audit_chain;
mod audit_console;
mod audit_log;
mod borrows;
mod cli;
mod console;
mod copies;
mod customers;
mod error_bodies;
mod helpers;
mod https;
mod licenses;
mod metrics;
mod openapi;
mod operator_views;
mod operators;
mod portal;
mod race;
mod reminders;
mod retire;
mod retire_race;
mod roles;
mod sessions;
mod standby;
mod sync;
mod temporary;
mod usage;
mod usage_chart;
