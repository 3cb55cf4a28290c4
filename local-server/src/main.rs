use std::process::ExitCode;

use clap::Parser;
use local_server::cli::{Cli, Command};

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon logs its activity; a manager verb prints its result and logs only
    // warnings, so its output stays readable.
    let level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    local_server::run(cli).await
}
