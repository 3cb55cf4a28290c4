#![doc = include_str!("../README.md")]
//!
//! # Modules, by side
//!
//! - [`cli`]: the command line (`serve`, `deliver`); [`startup`]: binding,
//!   `listening.json`, running and stopping.
//! - [`intake`]: how mail comes in: [`intake::smtp`] (own receiver), [`intake::pipe`]
//!   (`deliver`, an MTA's pipe transport), [`intake::maildir`].
//! - [`classify`]: what a message asks for ([`classify::message`]) and whether a
//!   key-clear request's sender was authenticated ([`classify::sender_auth`]).
//! - [`queue`]: the durable [`queue::spool`] and the at-most-once ledger, the
//!   [`queue::runner`] of both spool queues, and their jobs: [`queue::worker`] (ask the
//!   main server, stage the reply) and [`queue::dispatch`] (hand replies over).
//! - [`outgoing`]: composing mails ([`outgoing::replies`]) and sending them
//!   ([`outgoing::transport`]: SMTP relay or a folder).
//! - [`own_mail`]: mail the gateway writes on its own: key-clear decision notices
//!   ([`own_mail::notices`]), reminders of the 366-day limit
//!   ([`own_mail::reminders`]) and the customer portal's sign-in links
//!   ([`own_mail::portal_links`]).
//! - [`admin_client`]: the client of the main server's admin API.
//! - [`status`]: the status page, its counters and its Prometheus metrics.
//! - [`vocabulary`]: the types every side speaks (envelopes, sender, reply kinds,
//!   armor markers); [`background`]: running work off the single-threaded runtime.
//!
//! # Architecture invariants
//!
//! - No module imports one that imports it back: the sides depend on each other in
//!   one direction (intake → queue → classify, outgoing, admin client), and what
//!   they share lives in the leaves [`vocabulary`] and [`background`], which import
//!   no module of this crate.
//! - The classifier does no I/O: [`classify`] reads bytes it is given and returns a
//!   verdict (no spool, no network, no clock), so the golden `.eml` tests and the fuzz
//!   target run it without a server.
//! - Only the spool touches the spool's files, and its methods are async: they run
//!   the file work on the blocking pool themselves, so no caller wraps a spool call.
//! - Nothing is acknowledged (SMTP `250`, exit 0, a move out of Maildir `new/`) before
//!   the spool stored it durably.

pub mod admin_client;
pub mod background;
pub mod classify;
pub mod cli;
pub mod intake;
pub mod outgoing;
pub mod own_mail;
pub mod queue;
pub mod startup;
pub mod status;
pub mod vocabulary;

use std::process::ExitCode;

use shared_proto::Clock;

use clap::Parser;

use crate::cli::{Cli, Command, ServeArgs};
use crate::startup::Application;

/// Parses the command line. A usage error exits 2, except for `deliver`:
/// an MTA bounces a message for good on any exit code but 75, so a broken
/// pipe-transport line must defer the mail (75) until it is fixed.
pub fn parse_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Cli, ExitCode> {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => Ok(cli),
        Err(err) => {
            let _ = err.print();
            let deliver = args.get(1).is_some_and(|arg| arg == "deliver");
            Err(if !err.use_stderr() {
                // --help, --version
                ExitCode::SUCCESS
            } else if deliver {
                ExitCode::from(shared_proto::exit::TEMPORARY)
            } else {
                ExitCode::from(shared_proto::exit::USAGE)
            })
        }
    }
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let clock = match Clock::from_settings(cli.clock_file.as_deref()) {
        Ok(clock) => clock,
        Err(err) => {
            eprintln!("mail-gateway: {err}");
            // Any start-up failure of `deliver` is temporary for the MTA.
            return match cli.command {
                Command::Deliver(_) => ExitCode::from(shared_proto::exit::TEMPORARY),
                Command::Serve(_) => ExitCode::from(shared_proto::exit::USAGE),
            };
        }
    };
    match cli.command {
        Command::Serve(args) => match serve(*args, clock) {
            Ok(()) => ExitCode::SUCCESS,
            // Said once, on standard error (the log goes there too), each cause once.
            Err(err) => {
                eprintln!(
                    "mail-gateway: error: {}",
                    shared_proto::exit::error_text(err.as_ref())
                );
                ExitCode::FAILURE
            }
        },
        Command::Deliver(args) => intake::pipe::run(&args, &clock, &mut std::io::stdin().lock()),
    }
}

fn serve(args: ServeArgs, clock: Clock) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        // The handlers exist before `listening.json` does: a SIGTERM sent as soon as
        // the gateway says it listens stops it cleanly instead of killing it.
        let stop = stop_signal()?;
        let app = Application::build(args, clock)?;
        app.run_until_stopped(stop).await
    })
}

/// Registers for Ctrl-C and SIGTERM now; the future completes on either.
#[cfg(unix)]
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use anyhow::Context as _;
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
