//! Scenarios: journeys written as TOML files and `solme-sim run FILE…` over them.
//!
//! - [`format`]: the file, read and checked whole before anything starts; every refusal
//!   names its line.
//! - [`runner`]: a fresh simulation per scenario (a child `solme-sim --no-journeys` in a
//!   temporary directory, on ephemeral ports), driven only through its control API, each
//!   wait a condition with a deadline.
//! - [`report`]: the results as JUnit XML, JSON and a Markdown report.
//! - [`driver`]: a simulation started and driven from Rust through the same API, for
//!   the end-to-end journeys in `tests/`.
//!
//! Architecture invariant: the runner knows the simulation only through the control API
//! (and the files its status names), so it drives any simulation the same way.

pub mod driver;
pub mod format;
pub mod report;
pub mod runner;
