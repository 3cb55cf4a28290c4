//! Integration tests of `main-server`: each test starts the real binary on port 0 in a
//! temporary data directory and talks HTTPS/HTTP to it.

mod admin;
#[expect(
    clippy::expect_used,
    reason = "test set-up helpers fail the test with a message"
)]
mod cli;
#[expect(
    clippy::expect_used,
    reason = "test set-up helpers fail the test with a message"
)]
mod console;
mod error_bodies;
#[expect(
    clippy::expect_used,
    reason = "test set-up helpers fail the test with a message"
)]
mod helpers;
mod race;
mod sync;
mod temporary;
