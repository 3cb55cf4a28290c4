//! Running one verb of a program of the simulation (`POST /v1/exec`), bounded in time
//! and in output, on the simulation's data directory and clock.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use super::events::{EventLog, What};
use super::world::{Program, ProgramKind};

/// Most bytes kept of each of stdout and stderr; the rest is read and dropped.
pub const MAX_OUTPUT: u64 = 1024 * 1024;
/// How long a verb may run unless the request says otherwise, and the most it may ask.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// How a verb ended.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExecOutput {
    /// The exit code; None when it was killed (timed out, or by a signal).
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Whether an output went past [`MAX_OUTPUT`] and was cut.
    pub truncated: bool,
    pub timed_out: bool,
    pub elapsed_ms: u64,
}

/// Verbs the control API does not run: the simulation runs `serve` itself, and `init`
/// would set up a program the simulation already set up.
pub fn refused_verb(verb: &str) -> Option<&'static str> {
    match verb {
        "serve" => Some("the simulation runs serve itself"),
        "init" => Some("the simulation already set this program up"),
        _ => None,
    }
}

/// The command line: the program's binary on the simulation's clock, then `args`
/// with `--data-dir` of the program added after the verb (unless given, or the verb
/// takes none).
pub fn command(binary: &Path, program: &Program, clock_file: &Path, args: &[String]) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("--clock-file")
        .arg(clock_file)
        .env_remove(shared_proto::clock::CLOCK_OFFSET_ENV)
        .env_remove(shared_proto::clock::CLOCK_FILE_ENV);
    let Some((verb, rest)) = args.split_first() else {
        return command;
    };
    command.arg(verb);
    let takes_none = matches!(
        (program.kind, verb.as_str()),
        (_, "help") | (ProgramKind::MainServer, "openapi") | (ProgramKind::MailGateway, "deliver")
    );
    let takes_data_dir = !verb.starts_with('-') && !takes_none;
    if takes_data_dir && !args.iter().any(|a| a.starts_with("--data-dir")) {
        command.arg("--data-dir").arg(&program.data_dir);
    }
    command.args(rest);
    command
}

/// [`run`], recorded in the event log as an `exec` of `program` with `args` and how it
/// ended (a program that could not be started is not an event: the caller is told).
pub fn run_logged(
    events: &EventLog,
    program: &str,
    args: &[String],
    command: Command,
    timeout: Duration,
) -> Result<ExecOutput> {
    let output = run(command, timeout)?;
    events.record(What::Exec {
        program: program.to_string(),
        args: args.to_vec(),
        exit_code: output.exit_code,
        timed_out: output.timed_out,
        elapsed_ms: output.elapsed_ms,
    });
    Ok(output)
}

/// Runs `command` to its end or `timeout` (then kills it), keeping at most
/// [`MAX_OUTPUT`] bytes of each output.
pub fn run(mut command: Command, timeout: Duration) -> Result<ExecOutput> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the program")?;
    let stdout = child.stdout.take().map(reader);
    let stderr = child.stderr.take().map(reader);
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the program")? {
            break status;
        }
        if started.elapsed() >= timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().context("waiting for the killed program")?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let collect = |handle: Option<std::thread::JoinHandle<(String, bool)>>| {
        handle
            .and_then(|h| h.join().ok())
            .unwrap_or_else(|| (String::new(), false))
    };
    let (stdout, cut_out) = collect(stdout);
    let (stderr, cut_err) = collect(stderr);
    Ok(ExecOutput {
        exit_code: status.code(),
        stdout,
        stderr,
        truncated: cut_out || cut_err,
        timed_out,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Reads a pipe to its end on a thread of its own (so a full pipe never blocks the
/// program), keeping the first [`MAX_OUTPUT`] bytes.
fn reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<(String, bool)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let _ = (&mut pipe).take(MAX_OUTPUT).read_to_end(&mut kept);
        let rest = std::io::copy(&mut pipe, &mut std::io::sink()).unwrap_or(0);
        (String::from_utf8_lossy(&kept).into_owned(), rest > 0)
    })
}
