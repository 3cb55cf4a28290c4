//! `solme-license`: licenses any program with a seat of a Solme local license server.
//! `run` holds a seat while a command runs; `checkout`, `borrow`, `return` and
//! `status` are for scripts. The exit codes are in the crate's README.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use solme_client::{exit, Client, Error, Identity, LeaseInfo, LeaseState, Options, Settings, Url};
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "solme-license",
    version,
    about = "Check out seats of a Solme license server for a program or a script",
    long_about = "Check out seats of a Solme license server for a program or a script.\n\n\
        `solme-license run --feature cad -- COMMAND…` holds a seat of `cad` while COMMAND \
        runs, returns it when COMMAND ends, and exits with COMMAND's exit status. When \
        no seat is given it says why and exits 69 (refused) or 75 (no server answered)."
)]
struct Cli {
    /// The license server's address (e.g. http://licenses.example:7070). Give it again
    /// for a standby server: they are tried in order when one cannot be reached.
    #[arg(
        long = "server",
        env = "SOLME_LICENSE_SERVER",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    servers: Vec<Url>,
    /// The user name the server records (default: the logged-in user).
    #[arg(long, env = "SOLME_LICENSE_USER", global = true)]
    user: Option<String>,
    /// The host name the server records (default: this machine's name).
    #[arg(long, env = "SOLME_LICENSE_HOST", global = true)]
    host: Option<String>,
    /// The program name the server records (default: the command's name for `run`,
    /// `solme-license` otherwise).
    #[arg(long, env = "SOLME_LICENSE_CLIENT", global = true)]
    client: Option<String>,
    /// Keep trying for this many seconds while no server answers (retries are spread
    /// out at random, doubling up to 30 s apart), then give up with exit code 75.
    #[arg(
        long,
        env = "SOLME_LICENSE_RETRY_FOR",
        value_name = "SECONDS",
        default_value_t = 120,
        global = true
    )]
    retry_for: u64,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Hold a seat while COMMAND runs (heartbeats included), return it when COMMAND
    /// ends or is killed, and exit with COMMAND's exit status (128 + N when it was
    /// killed by signal N). SIGINT, SIGTERM and SIGHUP are passed on to COMMAND.
    Run {
        /// The licensed feature.
        #[arg(long, env = "SOLME_LICENSE_FEATURE")]
        feature: String,
        /// When every seat is in use, wait up to this many seconds in the queue.
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=3600))]
        wait: Option<u64>,
        /// The command and its arguments (after `--`).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<OsString>,
    },
    /// Check a seat out and print the lease as JSON. No heartbeats are sent: the seat
    /// goes back after the server's lease time, or earlier with `return`.
    Checkout {
        #[arg(long, env = "SOLME_LICENSE_FEATURE")]
        feature: String,
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=3600))]
        wait: Option<u64>,
    },
    /// Borrow a seat for offline use and print the lease, with its signed token, as
    /// JSON. It stays out until its end, or until `return`.
    Borrow {
        #[arg(long, env = "SOLME_LICENSE_FEATURE")]
        feature: String,
        /// For this many hours (the license's limit and end may cut it shorter).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8784))]
        hours: u32,
    },
    /// Return a seat checked out or borrowed earlier.
    Return {
        /// The `lease_id` that `checkout` or `borrow` printed.
        lease_id: Uuid,
    },
    /// The features of the server: seats in total, in use, free, and clients waiting.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    let code = actix_rt::System::new().block_on(run_verb(cli));
    ExitCode::from(code)
}

async fn run_verb(cli: Cli) -> u8 {
    let default_client = match &cli.verb {
        Verb::Run { command, .. } => command
            .first()
            .map(|c| {
                std::path::Path::new(c)
                    .file_name()
                    .unwrap_or(c)
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_else(|| "solme-license".into()),
        _ => "solme-license".into(),
    };
    let mut identity = Identity::from_environment(cli.client.as_deref().unwrap_or(&default_client));
    if let Some(user) = cli.user {
        identity.user = user;
    }
    if let Some(host) = cli.host {
        identity.host = host;
    }
    let client = match Settings::new(cli.servers, identity) {
        Ok(mut settings) => {
            settings.backoff.give_up_after = Duration::from_secs(cli.retry_for);
            Client::with_settings(settings)
        }
        Err(err) => return fail("", &err),
    };
    match cli.verb {
        Verb::Run {
            feature,
            wait,
            command,
        } => run(&client, &feature, wait, command).await,
        Verb::Checkout { feature, wait } => {
            let options = Options {
                wait: wait.map(Duration::from_secs),
                borrow_hours: None,
            };
            checkout(&client, &feature, options).await
        }
        Verb::Borrow { feature, hours } => {
            let options = Options {
                wait: None,
                borrow_hours: Some(hours),
            };
            checkout(&client, &feature, options).await
        }
        Verb::Return { lease_id } => match client.check_in(lease_id).await {
            Ok(()) => exit::SUCCESS,
            Err(err) => fail("the seat was not returned: ", &err),
        },
        Verb::Status { json } => status(&client, json).await,
    }
}

/// Prints `err` after `what` and gives its exit code.
fn fail(what: &str, err: &Error) -> u8 {
    eprintln!("solme-license: {what}{err}");
    exit::for_error(err)
}

async fn run(client: &Client, feature: &str, wait: Option<u64>, command: Vec<OsString>) -> u8 {
    let Some((program, args)) = command.split_first() else {
        eprintln!("solme-license: no command given");
        return exit::USAGE;
    };
    let options = Options {
        wait: wait.map(Duration::from_secs),
        borrow_hours: None,
    };
    let mut lease = match client.checkout(feature, options).await {
        Ok(lease) => lease,
        Err(err) => return fail(&format!("no seat of {feature}: "), &err),
    };
    log::info!("holding a seat feature={feature} lease_id={}", lease.id());
    let mut child = match tokio::process::Command::new(program).args(args).spawn() {
        Ok(child) => child,
        Err(err) => {
            if let Err(err) = lease.release().await {
                log::warn!(
                    "the seat was not returned, it goes back when its lease runs out: {err}"
                );
            }
            eprintln!(
                "solme-license: cannot run {}: {}",
                program.to_string_lossy(),
                io_text(&err)
            );
            return match err.kind() {
                std::io::ErrorKind::NotFound => exit::NOT_FOUND,
                _ => exit::CANNOT_EXECUTE,
            };
        }
    };
    let status = supervise(&mut child, &mut lease).await;
    if let Err(err) = lease.release().await {
        eprintln!(
            "solme-license: the seat of {feature} was not returned; it goes back when its lease runs out: {err}"
        );
    }
    match status {
        Ok(status) => exit_code(status),
        Err(err) => {
            eprintln!(
                "solme-license: lost track of the command: {}",
                io_text(&err)
            );
            shared_proto::exit::FAILED
        }
    }
}

/// Waits for the command to end, passing signals on and telling once if the seat is
/// lost meanwhile (the command goes on: ending it is the user's decision).
async fn supervise(
    child: &mut tokio::process::Child,
    lease: &mut solme_client::Lease,
) -> std::io::Result<std::process::ExitStatus> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut watching = true;
    loop {
        tokio::select! {
            status = child.wait() => return status,
            _ = interrupt.recv() => forward(child, rustix::process::Signal::INT, true),
            _ = terminate.recv() => forward(child, rustix::process::Signal::TERM, false),
            _ = hangup.recv() => forward(child, rustix::process::Signal::HUP, true),
            changed = lease.changed(), if watching => match changed {
                Ok(LeaseInfo { state: LeaseState::Lost(err), .. }) => {
                    eprintln!("solme-license: the seat is lost, the command goes on without it: {err}");
                    watching = false;
                }
                Ok(_) => {}
                Err(_) => watching = false,
            },
        }
    }
}

/// Passes `signal` on to the command. A terminal's Ctrl-C or hang-up already reached
/// the command when both are in the terminal's foreground process group (the usual
/// case): then it is not sent a second time.
fn forward(child: &tokio::process::Child, signal: rustix::process::Signal, from_terminal: bool) {
    if from_terminal && in_terminal_foreground() {
        return;
    }
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        if let Err(err) = rustix::process::kill_process(pid, signal) {
            log::warn!("could not pass a signal on to the command: {err}");
        }
    }
}

fn in_terminal_foreground() -> bool {
    rustix::termios::tcgetpgrp(std::io::stdin())
        .is_ok_and(|group| group == rustix::process::getpgrp())
}

/// The command's exit status as the wrapper's: its code, or 128 + the signal that
/// killed it (as a shell reports it).
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(shared_proto::exit::FAILED),
        (None, Some(signal)) => {
            u8::try_from((128 + signal) & 0xff).unwrap_or(shared_proto::exit::FAILED)
        }
        (None, None) => shared_proto::exit::FAILED,
    }
}

async fn checkout(client: &Client, feature: &str, options: Options) -> u8 {
    match client.checkout(feature, options).await {
        Ok(lease) => {
            let info = lease.keep();
            println!("{}", lease_json(&info));
            exit::SUCCESS
        }
        Err(err) => fail(&format!("no seat of {feature}: "), &err),
    }
}

fn lease_json(info: &LeaseInfo) -> serde_json::Value {
    let mut json = serde_json::to_value(&info.grant).unwrap_or_default();
    if let Some(object) = json.as_object_mut() {
        object.insert("server".into(), info.server.clone().into());
    }
    json
}

async fn status(client: &Client, json: bool) -> u8 {
    let features = match client.features().await {
        Ok(features) => features,
        Err(err) => return fail("", &err),
    };
    if json {
        println!("{}", serde_json::to_value(&features).unwrap_or_default());
        return exit::SUCCESS;
    }
    println!(
        "{:<24} {:>6} {:>6} {:>6} {:>6}  state",
        "feature", "seats", "in use", "free", "queued"
    );
    for f in features {
        println!(
            "{:<24} {:>6} {:>6} {:>6} {:>6}  {}",
            f.feature, f.seats_total, f.in_use, f.free, f.queued, f.state
        );
    }
    exit::SUCCESS
}

/// An I/O error's sentence without the operating system's code.
fn io_text(err: &std::io::Error) -> String {
    shared_proto::exit::error_text(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
