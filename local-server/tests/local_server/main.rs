//! Integration tests: they start the real `local-server` binary (and `main-server`
//! where a test needs it) on port 0 in temporary directories.

// Test code: a failed unwrap is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod availability;
mod borrowing;
mod cli_errors;
mod database_locked;
mod devtools;
mod diagnose;
mod direct_sync;
mod import_preview;
mod leases;
mod license_files;
mod license_terms;
mod manager;
mod manager_page;
mod metrics;
mod options_file;
mod page_narrow;
mod proxy;
mod queueing;
mod receipts;
mod report;
mod seats_held;
mod standby_admin;
mod support_bundle;
mod tls_words;
mod usage_chart;
mod usage_report;
