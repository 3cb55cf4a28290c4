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
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    // `serve` also keeps its log lines in DIR/serve.log for `support-bundle`.
    if let Command::Serve(args) = &cli.command {
        match local_server::log_file::TeeLog::new(&args.data.data_dir) {
            Ok(tee) => {
                logger.target(env_logger::Target::Pipe(Box::new(tee)));
            }
            Err(e) => eprintln!("warning: no log file in the data directory: {e}"),
        }
    }
    logger.init();
    local_server::run(cli).await
}
