//! The `mail-gateway` binary: parses the command line, starts logging, runs.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match mail_gateway::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    mail_gateway::run(cli)
}
