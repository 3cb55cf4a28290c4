//! `solme-sim`: the Solme licensing simulation. Without a command it sets up and runs
//! the world (see `tests::sim::run`); with one, it drives a running simulation through
//! its control API (`tests::sim::control_cli`).

use std::process::ExitCode;

use clap::Parser;
use tests::sim::control_cli::{self, SimCommand};
use tests::sim::run::{self, RunArgs};
use tests::sim::scenario::runner::{self as scenarios, RunScenarios};

/// Run the whole Solme licensing story on this machine: Solme's main server, the
/// licensing@ mail gateway and customer license servers, on loopback ports, all on one
/// simulated clock.
///
/// Without a command, `solme-sim` sets the world up, runs a direct sync, an email sync
/// and a checkout, and stays up until Ctrl-C, serving a control API for QA: HTTP/JSON
/// on 127.0.0.1, its address in DIR/control.json, a bearer token in DIR/control-token.
/// The commands below are a client of that API; give them the same --data-dir:
///
///   solme-sim --data-dir /tmp/sim                      # start (keep it running)
///   solme-sim --data-dir /tmp/sim clock advance 340d   # every program, within a second
///   solme-sim --data-dir /tmp/sim mail inbox ops@acme.example
///   solme-sim --data-dir /tmp/sim exec local-server-1 -- status
///   solme-sim --data-dir /tmp/sim clock set 2027-11-10T09:00:00Z
///   solme-sim --data-dir /tmp/sim clock back 2d        # local servers: CLOCK_ROLLBACK
///   solme-sim --data-dir /tmp/sim status
///
/// `solme-sim run FILE…` runs scenario files instead (docs/scenarios.md), each in a
/// fresh simulation of its own:
///
///   solme-sim run scenarios/*.toml --junit results.xml --report report.md
#[derive(Debug, Parser)]
#[command(name = "solme-sim", version, verbatim_doc_comment)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run scenario files (TOML), each in a fresh simulation; exits 0 only when every
    /// expectation held, 2 when a file is refused (nothing is run then).
    Run(RunScenarios),
    /// Print the control API's OpenAPI document (JSON), as a running simulation serves
    /// it at GET /v1/openapi.json; no simulation needed.
    Openapi,
    #[command(flatten)]
    Control(SimCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Run(files)) => scenarios::run(files),
        Some(Command::Openapi) => match tests::sim::openapi::document_json() {
            Ok(json) => {
                print!("{json}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("solme-sim: the OpenAPI document could not be made: {error:#}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Control(command)) => control_cli::run(command, cli.run.data_dir.as_deref()),
        None => match run::run(cli.run) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("\nThe simulation stopped: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod cli {
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        super::Cli::command().debug_assert();
    }
}
