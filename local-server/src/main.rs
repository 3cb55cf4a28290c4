use std::process::ExitCode;

use clap::Parser;
use local_server::cli::{Cli, Command};

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon logs its activity. A manager verb prints its result, and its failure
    // once (`run`): by default it logs only errors it does not report itself, since the
    // warnings of the work it ran (a failed synchronization, an endpoint's problem) are
    // what it reports. RUST_LOG=warn or info shows them.
    let level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "error"
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
