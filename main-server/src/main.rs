//! `main-server`: see the crate README.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    main_server::run(main_server::cli::Cli::parse())
}
