//! `main-server admin …`: a client of the admin API, so the CLI and the web console
//! can never do something the API does not allow. Reads print tables, or JSON with
//! `--json`; refusals print the server's message and exit 1; an unreachable or
//! failing (5xx) server exits 75 (temporary); bad flags are a usage error (2). There is
//! no name to type: the audit log records the account the token belongs to.
//!
//! [`client`] talks to the API (token, errors into [`CliError`]);
//! [`commands`] runs each subcommand; [`tables`] prints what it read.

mod client;
mod commands;
mod tables;

use std::process::ExitCode;

use crate::cli::AdminArgs;

pub use client::{CliError, Client};
pub use commands::parse_date;

use commands::execute;

/// Runs one admin command and maps the outcome to the exit code.
pub fn run(args: AdminArgs) -> ExitCode {
    let result = actix_web::rt::System::new().block_on(async {
        let client = Client::from_args(&args)?;
        execute(&client, &args).await
    });
    match result {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(CliError::Unreachable { url, cause }) => {
            eprintln!("error: cannot reach the admin API at {url}: {cause}");
            ExitCode::from(shared_proto::exit::TEMPORARY)
        }
        Err(CliError::ServerFailed { status, message }) => {
            eprintln!("error: the admin API failed ({status}): {message}; try again later");
            ExitCode::from(shared_proto::exit::TEMPORARY)
        }
        Err(CliError::Refused { code, message }) => {
            eprintln!("refused ({code}): {message}");
            ExitCode::FAILURE
        }
        Err(CliError::CheckFailed(output)) => {
            print!("{output}");
            ExitCode::FAILURE
        }
        Err(CliError::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
