#![doc = include_str!("../README.md")]
//!
//! ## Modules
//! - [`cli`]: the command line; [`run`] dispatches it.
//! - [`config`]: `init`, the stored configuration and identity.
//! - [`db`], [`schema`]: the SQLite database shared by all processes.
//! - [`leases`]: the lease engine of `serve` (in-memory index, queue, write-through,
//!   one job per file); [`report_log`] is what it records.
//! - [`startup`]: `serve`'s start-up (listener, background tasks, shutdown); [`state`]:
//!   what its workers share.
//! - [`routes`]: the HTTP routes (client API, manager API); [`metrics`]: `/metrics`.
//! - [`manager_page`]: the web manager page and the guard of the manager API.
//! - [`installation`]: the data directory opened for use (identity, database, clock),
//!   shared by `serve`, synchronizations and the reports.
//! - [`sync`], [`proxy`]: direct synchronization over HTTPS, directly or via a proxy.
//! - [`import`]: installing a license file in one transaction.
//! - [`options`]: the options file (reservations and limits).
//! - [`scheduler`]: automatic synchronization.
//! - [`lease_list`]: who holds what (`leases`, the manager page's table);
//!   [`take_back`]: taking a seat back, and how it reaches a running engine.
//! - [`status`], [`diagnose`], [`report`]: the reports; [`support_bundle`] packs them
//!   (with [`log_file`]'s recent lines) for Solme's support; [`destination`] checks
//!   where a verb will write its result before the verb runs; [`wording`]: how counts
//!   are said to people.
//! - [`error`]: the boundary error type and its mapping to HTTP and exit codes.
//!
//! ## Architecture invariants
//! - **The domain never imports the command line.** Only `main.rs` and the dispatch in
//!   this file use [`cli`]; [`cli`] turns flags into the domain's types
//!   ([`config::InitOptions`], [`startup::ServeOptions`], [`config::AutoSyncMode`]).
//!   Checked by a test below.
//! - The lease engine's files import only the files below them, and the options rules
//!   know no lease engine (checked in [`leases`]).
//! - No two files import each other: what two rooms both need lives in a leaf
//!   ([`state`], [`wording`]) rather than in one of them.

pub mod cli;
pub mod config;
pub mod db;
pub mod destination;
pub mod diagnose;
pub mod error;
pub mod import;
pub mod installation;
pub mod lease_list;
pub mod leases;
pub mod log_file;
pub mod manager_page;
pub mod metrics;
pub mod options;
pub mod pair;
pub mod proxy;
pub mod receipt;
pub mod report;
pub mod report_log;
pub mod routes;
pub mod scheduler;
pub mod schema;
pub mod startup;
pub mod state;
pub mod status;
pub mod support_bundle;
pub mod sync;
pub mod take_back;
pub mod wording;

use std::process::ExitCode;

use anyhow::Context;
use shared_proto::Clock;

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::import::Channel;
use crate::installation::Installation;

/// Runs one command line; returns the process exit code (docs/API.md, "Conventions").
pub async fn run(cli: Cli) -> ExitCode {
    let clock = match Clock::from_settings(cli.clock_file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(shared_proto::exit::USAGE);
        }
    };
    match dispatch(cli.command, clock).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // The one place a verb's failure is told: once, each cause once.
            match &e {
                Error::Refused { code, message } => eprintln!("refused ({code}): {message}"),
                other => eprintln!("error: {}", shared_proto::exit::error_text(other)),
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// `println!`/`print!` without the panic on a closed pipe (`local-server status | head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write;
        drop(writeln!(std::io::stdout().lock(), $($arg)*));
    }};
}
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write;
        drop(write!(std::io::stdout().lock(), $($arg)*));
    }};
}

/// Prints a verb's report: as pretty JSON with `--json`, else as text for people.
fn print_report(
    report: &(impl serde::Serialize + std::fmt::Display),
    json: bool,
    what: &str,
) -> anyhow::Result<()> {
    if json {
        let text =
            serde_json::to_string_pretty(report).with_context(|| format!("encoding {what}"))?;
        out!("{text}");
    } else {
        out_raw!("{report}");
    }
    Ok(())
}

async fn dispatch(command: Command, clock: Clock) -> Result<u8, Error> {
    match command {
        Command::Init(args) => match args.plan() {
            cli::InitPlan::Server(options) => out!("{}", config::init(&options, &clock)?),
            cli::InitPlan::Standby(options) => {
                out!("{}", pair::standby::init(&options, &clock).await?)
            }
        },
        Command::Standby { data_dir, command } => {
            let Some(data_dir) = data_dir else {
                eprintln!("error: `standby` needs --data-dir DIR (or LOCAL_SERVER_DATA_DIR)");
                return Ok(shared_proto::exit::USAGE);
            };
            let mut conn = db::connect_existing(&data_dir)?;
            db::load_config(&mut conn)?;
            match command {
                cli::StandbyCommand::Pair => {
                    out!("{}", pair::standby::pairing_code(&mut conn, clock.now())?);
                }
                cli::StandbyCommand::Leave => out!("{}", pair::standby::leave(&mut conn)?),
            }
        }

        Command::Promote { data, reason, json } => {
            let installation = Installation::open(&data.data_dir, clock)?;
            let promoted =
                pair::standby::promote(&installation, take_back::command_line_actor(), reason)
                    .await?;
            print_report(&promoted, json, "the promotion")?;
        }
        Command::Serve(args) => {
            let app = startup::Application::build(&args.options(), clock)?;
            app.run_until_stopped(std::future::pending()).await?;
        }
        Command::Sync { data, proxy } => {
            let ctx = Installation::open(&data.data_dir, clock)?;
            let settings = ctx.settings()?;
            let proxy =
                proxy::ProxySettings::resolve(proxy.proxy.as_ref(), settings.proxy.as_ref())?;
            let client = sync::http_client(sync::tls_connector(&settings.ca_pem)?, proxy);
            let report = sync::sync_now(&ctx, &client, "manual")
                .await
                .map_err(|e| match e {
                    Error::Network(why) => Error::Network(format!(
                        "{why}; run `local-server diagnose` to find out why"
                    )),
                    other => other,
                })?;
            out!("Synchronized through {}.", report.endpoint);
            out_raw!("{}", report.changes);
        }
        Command::AutoSync { data, mode } => {
            let mut conn = db::connect_existing(&data.data_dir)?;
            db::load_config(&mut conn)?;
            let next = scheduler::set_mode(&mut conn, mode, clock.now())?;
            match next {
                Some(next) => out!(
                    "Automatic synchronization: {} (next run {}; `serve` runs it).",
                    mode.as_str(),
                    next.format("%Y-%m-%d %H:%M UTC")
                ),
                None => out!("Automatic synchronization: off."),
            }
        }
        Command::ExportSyncData { data, file } => {
            let ctx = Installation::open(&data.data_dir, clock)?;
            out!("{}", sync::export(&ctx, &file)?);
        }
        Command::ImportLicenseFile {
            data,
            file,
            dry_run,
            receipt,
        } => {
            if let Some(path) = &receipt {
                // Before the import: a receipt that cannot be written is said now.
                crate::destination::check(path, "the receipt")?;
            }
            let identity = config::load_identity(&data.data_dir)?;
            let mut conn = db::connect_existing(&data.data_dir)?;
            let settings = config::Settings::load(&data.data_dir, &mut conn)?;
            let text = import::read_license_file(&file)?;
            if dry_run {
                let preview =
                    import::preview_text(&mut conn, &settings, &identity, &text, clock.now())?;
                out_raw!("{preview}");
                out!(
                    "To import it: local-server import-license-file --data-dir {} {}",
                    data.data_dir.display(),
                    file.display()
                );
                return Ok(0);
            }
            let changes = import::import_text(
                &mut conn,
                &settings,
                &identity,
                &text,
                Channel::File,
                clock.now(),
            )?;
            out_raw!("{changes}");
            out!("Imported {}.", file.display());
            if let Some(path) = receipt {
                out!(
                    "{}",
                    crate::receipt::write(&path, &identity, &settings, &changes, clock.now())?
                );
            }
        }
        Command::Status { data, json } => {
            let identity = config::load_identity(&data.data_dir)?;
            let mut conn = db::connect_existing(&data.data_dir)?;
            let settings = config::Settings::load(&data.data_dir, &mut conn)?;
            let mut report = status::report(
                &mut conn,
                &settings,
                identity.fingerprint(),
                clock.now(),
                None,
            )?;
            report.clock = clock.describe();
            print_report(&report, json, "the status")?;
        }
        Command::Leases {
            data,
            feature,
            json,
        } => {
            let mut conn = db::connect_existing(&data.data_dir)?;
            db::load_config(&mut conn)?;
            let list = lease_list::list(&mut conn, clock.now(), feature.as_deref())?;
            print_report(&list, json, "the lease list")?;
        }
        Command::TakeBack {
            data,
            lease_id,
            reason,
            json,
        } => {
            let mut conn = db::connect_existing(&data.data_dir)?;
            db::load_config(&mut conn)?;
            let done = take_back::take_back(
                &mut conn,
                &data.data_dir,
                &lease_id,
                &take_back::command_line_actor(),
                reason.as_deref(),
                clock.now(),
            )?;
            print_report(&done, json, "the take-back")?;
        }
        Command::Diagnose { data, proxy, json } => {
            let report = diagnose::run(&data.data_dir, clock, proxy.proxy.as_ref()).await;
            print_report(&report, json, "the diagnosis")?;
            return Ok(report.exit_code());
        }
        Command::SupportBundle { data, proxy, file } => {
            let text =
                support_bundle::write(&data.data_dir, clock, proxy.proxy.as_ref(), &file).await?;
            out!("{text}");
        }
        Command::Report {
            data,
            from,
            to,
            json,
            csv,
        } => {
            let to = to.unwrap_or_else(|| clock.now());
            let from = from.unwrap_or(to - chrono::Duration::days(30));
            // A usage mistake, told before anything is opened.
            if from >= to {
                eprintln!(
                    "error: --from ({}) must be before --to ({}); expected for example \
                     `--from 2027-01-01 --to 2027-02-01` (dates YYYY-MM-DD, or RFC 3339 times)",
                    from.format("%Y-%m-%d %H:%M UTC"),
                    to.format("%Y-%m-%d %H:%M UTC")
                );
                return Ok(shared_proto::exit::USAGE);
            }
            let mut conn = db::connect_existing(&data.data_dir)?;
            let report = report::build(&mut conn, from, to)?;
            if csv && !json {
                out_raw!("{}", report.to_csv());
            } else {
                print_report(&report, json, "the report")?;
            }
        }
        Command::Options {
            data_dir,
            command: cli::OptionsCommand::Check { file },
        } => {
            let (_, parsed) = options::read_checked(&file)?;
            if let Some(dir) = data_dir {
                let mut conn = db::connect_existing(&dir)?;
                let licensed: std::collections::HashSet<String> = db::load_licenses(&mut conn)?
                    .into_iter()
                    .map(|l| l.feature)
                    .collect();
                for feature in parsed.features() {
                    if !licensed.contains(feature) {
                        out!("note: this server holds no license for {feature:?}; its rules apply once it does.");
                    }
                }
            }
            out!(
                "{} is good: {} rules. Nothing was changed; `local-server options apply` puts it in force.",
                file.display(),
                parsed.rule_count()
            );
        }
        Command::Options {
            data_dir,
            command: cli::OptionsCommand::Apply { file },
        } => {
            let Some(data_dir) = data_dir else {
                eprintln!("error: `options apply` needs --data-dir DIR (or LOCAL_SERVER_DATA_DIR)");
                return Ok(shared_proto::exit::USAGE);
            };
            let (text, parsed) = options::read_checked(&file)?;
            let mut conn = db::connect_existing(&data_dir)?;
            db::load_config(&mut conn)?;
            options::apply(&data_dir, &mut conn, &text, clock.now())?;
            out!(
                "Applied {} ({} rules): in force now, for new check-outs (a running `serve` needs no restart).",
                file.display(),
                parsed.rule_count()
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `.rs` file under `dir`, with its text before its tests.
    fn sources(dir: &Path, found: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or("").to_owned();
                found.push((path.display().to_string(), code));
            }
        }
    }

    /// Whether `code` names the `cli` module in a path (`crate::cli::…`, `super::cli`,
    /// `use crate::{cli, …}`), not merely a word ending in `cli`.
    fn names_the_cli_module(code: &str) -> bool {
        let bytes = code.as_bytes();
        code.match_indices("cli").any(|(at, _)| {
            let before = at.checked_sub(1).and_then(|i| bytes.get(i)).copied();
            let after = bytes.get(at + 3).copied();
            let word_start = !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
            let word_end = !after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
            let in_path = code[..at].ends_with("::")
                || code[at..].starts_with("cli::")
                || code[..at].trim_end().ends_with("::{")
                || (code[..at].trim_end().ends_with(',') && code[..at].contains("use crate::{"));
            word_start && word_end && in_path
        })
    }

    #[test]
    fn names_the_cli_module_finds_every_form_of_import() {
        assert!(names_the_cli_module("use crate::cli::ServeArgs;"));
        assert!(names_the_cli_module("use super::cli;"));
        assert!(names_the_cli_module("use crate::{cli, config};"));
        assert!(names_the_cli_module("fn f(a: &crate::cli::InitArgs) {}"));
        assert!(!names_the_cli_module("use crate::admin_cli::Command;"));
        assert!(!names_the_cli_module(
            "// the command line (cli) is elsewhere"
        ));
    }

    #[test]
    fn the_domain_never_imports_the_command_line() {
        let mut found = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(found.len() > 20, "{} files", found.len());
        let allowed = ["main.rs", "lib.rs", "cli.rs"];
        let offending: Vec<&str> = found
            .iter()
            .filter(|(path, _)| !allowed.iter().any(|a| path.ends_with(&format!("/src/{a}"))))
            .filter(|(_, code)| names_the_cli_module(code))
            .map(|(path, _)| path.as_str())
            .collect();
        assert!(
            offending.is_empty(),
            "these import the command line: {offending:?}"
        );
    }
}
