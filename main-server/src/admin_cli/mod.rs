//! `main-server admin …`: a client of the admin API, so the CLI and the web console
//! can never do something the API does not allow. Reads print tables, or JSON with
//! `--json`; refusals print the server's message and exit 1; an unreachable or
//! failing (5xx) server exits 75 (temporary); bad flags are a usage error (2). There is
//! no name to type: the audit log records the account the token belongs to.
//!
//! [`client`] talks to the API (token, errors into [`CliError`]);
//! [`commands`] runs each subcommand ([`audit`] the audit log's); [`tables`] prints
//! what it read.

mod audit;
mod client;
mod commands;
mod tables;

use std::process::ExitCode;

use shared_proto::ErrorCode;

use crate::cli::AdminArgs;

pub use client::{CliError, Client};
pub use commands::parse_date;

use commands::execute;

/// Runs one admin command and maps the outcome to the exit code. Under `--json` a
/// failure is one JSON object on standard error too, `{"code", "message"}` like the
/// API's own error bodies (`code` is null for a failure on this side, such as an
/// unreadable token file), so a script never has to parse a sentence.
pub fn run(args: AdminArgs) -> ExitCode {
    let result = actix_web::rt::System::new().block_on(async {
        let client = Client::from_args(&args)?;
        execute(&client, &args).await
    });
    // What the failure is, and the sentence a person reads (`--json` aside).
    let (code, message, sentence, exit) = match result {
        Ok(output) => {
            print!("{output}");
            return ExitCode::SUCCESS;
        }
        Err(CliError::CheckFailed(output)) => {
            print!("{output}");
            return ExitCode::FAILURE;
        }
        Err(CliError::Refused { code, message }) => {
            let sentence = format!("refused ({code}): {message}");
            (Some(code), message, sentence, ExitCode::FAILURE)
        }
        Err(failure) => {
            let (code, message, exit) = match failure {
                CliError::Unreachable { url, cause } => (
                    Some(ErrorCode::Unavailable),
                    format!("cannot reach the admin API at {url}: {cause}"),
                    ExitCode::from(shared_proto::exit::TEMPORARY),
                ),
                CliError::ServerFailed { status, message } => (
                    Some(ErrorCode::Unavailable),
                    format!("the admin API failed ({status}): {message}; try again later"),
                    ExitCode::from(shared_proto::exit::TEMPORARY),
                ),
                CliError::Other(e) => (
                    None,
                    shared_proto::exit::error_text(e.as_ref()),
                    ExitCode::FAILURE,
                ),
                // Refusals and failed checks were answered above.
                other => (None, other.to_string(), ExitCode::FAILURE),
            };
            let sentence = format!("error: {message}");
            (code, message, sentence, exit)
        }
    };
    if args.json {
        eprintln!(
            "{}",
            serde_json::json!({ "code": code, "message": message })
        );
    } else {
        eprintln!("{sentence}");
    }
    exit
}
