#![doc = include_str!("../README.md")]
//!
//! # Modules
//!
//! - [`cli`]: the command line (clap).
//! - [`init`]: `main-server init`, making keys, certificates, token and database.
//! - [`startup`]: `main-server serve`, binding listeners and running the servers.
//! - [`tls`]: the CA, the server certificate and its renewal, the TLS settings.
//! - [`state`]: the application state the handlers and loops share; [`sync`]: the
//!   sync core on it, shared by the HTTPS and email channels.
//! - [`store`]: every database query, by concern; [`db`] and [`schema`]: the
//!   connection, pools and migrations for SQLite and PostgreSQL; [`writer`]: the
//!   SQLite thread that group-commits direct syncs.
//! - [`routes`]: the HTTP endpoints; [`error`]: how failures become responses;
//!   [`metrics`]: the Prometheus metrics at `/metrics`.
//! - [`auth`]: who is calling the admin API and what their role lets them do;
//!   [`tokens`]: making, hashing and reading secret tokens (a leaf the stores use too).
//! - [`admin_cli`]: `main-server admin …`, a client of the admin API.
//! - [`openapi`]: the OpenAPI document of both APIs, generated from the handlers.
//! - [`seen_head`]: the newest audit chain head this server saw, kept outside the
//!   database.

pub mod admin_cli;
pub mod auth;
pub mod cli;
pub mod data_dir;
pub mod db;
pub mod error;
pub mod init;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod schema;
pub mod seen_head;
pub mod startup;
pub mod state;
pub mod store;
pub mod sync;
pub mod tls;
pub mod tokens;
pub mod wording;
pub mod writer;

use std::process::ExitCode;

use shared_proto::error::is_temporary_database_failure;
use shared_proto::{exit, Clock};

use crate::cli::{Cli, Command};

/// Runs a parsed command line; what `main` calls.
pub fn run(cli: Cli) -> ExitCode {
    let clock = match Clock::from_settings(cli.clock_file.as_deref()) {
        Ok(clock) => clock,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match cli.command {
        Command::Init(args) => match init::run(&args, &clock) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}", exit::error_text(e.as_ref()));
                failure_exit_code(&e)
            }
        },
        Command::Serve(args) => {
            let settings = startup::Settings {
                data_dir: args.data_dir,
                database_url: args.database_url,
                listen: args.listen,
                admin_listen: args.admin_listen,
                admin_plain_http: args.admin_plain_http,
                workers: args.workers,
                db_pool_size: args.db_pool_size,
            };
            if let Some(refusal) = settings.plain_http_refusal() {
                eprintln!("error: {refusal}");
                return ExitCode::from(exit::USAGE);
            }
            let result = actix_web::rt::System::new().block_on(async move {
                startup::Application::build(&settings, clock)?
                    .run_until_stopped(std::future::pending())
                    .await
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // Told once, on stderr (where the log goes too): a log line would
                    // repeat the sentence.
                    eprintln!("error: {}", exit::error_text(e.as_ref()));
                    failure_exit_code(&e)
                }
            }
        }
        Command::RenewCertificate(args) => {
            let dir = data_dir::DataDir::new(&args.data_dir);
            // By the system's clock, the one TLS clients check certificates against.
            match tls::server_certificate(&dir, chrono::Utc::now(), args.force) {
                Ok(certificate) => {
                    match certificate.renewed {
                        Some(reason) => println!(
                            "renewed  {} ({reason}); valid until {}\n\
                             Restart the servers on this data directory to present it.",
                            dir.tls_cert().display(),
                            certificate.not_after
                        ),
                        None => println!(
                            "kept     {} (valid until {}; renewed when fewer than {} days are left)",
                            dir.tls_cert().display(),
                            certificate.not_after,
                            tls::RENEW_BEFORE.num_days()
                        ),
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}", exit::error_text(e.as_ref()));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Admin(args) => admin_cli::run(args),
        Command::Openapi => match openapi::document_json() {
            Ok(json) => {
                print!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}", exit::error_text(e.as_ref()));
                ExitCode::FAILURE
            }
        },
    }
}

/// 75 when the database was only locked by another process or full (trying again may
/// work), 1 otherwise.
fn failure_exit_code(err: &anyhow::Error) -> ExitCode {
    if is_temporary_database_failure(err.as_ref()) {
        ExitCode::from(exit::TEMPORARY)
    } else {
        ExitCode::FAILURE
    }
}
