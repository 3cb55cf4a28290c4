//! The `mail-gateway` binary: parses the command line, starts logging, runs.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = mail_gateway::cli::Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    mail_gateway::run(cli)
}
