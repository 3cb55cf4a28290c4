//! Child processes of the harness: finding the binaries, starting them with their
//! output in a log file, waiting for a condition with a deadline, and stopping them
//! (always: a `Child` kills its process when dropped).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::process::Pid;
pub use rustix::process::Signal;

/// How long a program may take to start and write its `listening.json`.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The path of a workspace binary built by cargo, found next to the running program
/// (a binary in `target/<profile>/`, or a test in `target/<profile>/deps/`).
pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running program")?;
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "the `{name}` binary was not found near {}; build the workspace first (`cargo build --workspace`)",
        exe.display()
    )
}

/// Sends `signal` to the process `pid`; whether it was delivered (a process that
/// already ended on its own is not an error for the callers that ignore it).
pub fn signal(pid: u32, signal: Signal) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .is_some_and(|pid| rustix::process::kill_process(pid, signal).is_ok())
}

/// Sends `signal` to every process of the group `group` (a child started in a group of
/// its own, with the children it started); whether it was delivered.
pub fn signal_group(group: u32, signal: Signal) -> bool {
    i32::try_from(group)
        .ok()
        .and_then(Pid::from_raw)
        .is_some_and(|group| rustix::process::kill_process_group(group, signal).is_ok())
}

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(25);

/// Polls `probe` every 25 ms until it yields a value or `timeout` passes.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_until`] for an asynchronous probe, sleeping on the test's runtime (tokio's
/// timer, which actix's runtime is) so servers running in the same test keep going.
pub async fn wait_until_async<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A tool a test needs is missing. Outside CI the test is skipped with a notice
/// (returns false); in CI (the `CI` variable set), which installs every tool, it fails.
pub fn tool_present(present: bool, what: &str, how: &str) -> bool {
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} is missing in CI ({how})"
        );
        eprintln!("NOTICE: {what} not found ({how}); skipping this test");
    }
    present
}

/// A running program. Dropping it kills the process.
#[derive(Debug)]
pub struct Child {
    name: String,
    child: std::process::Child,
    log: PathBuf,
}

impl Child {
    /// Starts `command`, appending its stdout and stderr to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self> {
        // The output goes to a file, so the programs' own default level serves;
        // `TEST_LOG` sets another one for a run being debugged.
        if let Some(level) = std::env::var_os("TEST_LOG") {
            command.env("RUST_LOG", level);
        }
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file handle")?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// Starts `command` with the output it was given (for a program whose stdout is
    /// the result).
    pub fn spawn_with_output(name: &str, mut command: Command) -> Result<Self> {
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log: PathBuf::new(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The program's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// How the process ended, once it has.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Asks the program to stop (SIGTERM) and waits for it; kills it after 10 s.
    pub fn stop(&mut self) -> Result<()> {
        if self.has_exited() {
            return Ok(());
        }
        signal(self.child.id(), Signal::TERM);
        let stopped = wait_until(
            &format!("{} to stop", self.name),
            Duration::from_secs(10),
            || self.has_exited().then_some(()),
        );
        if stopped.is_err() {
            self.kill();
        }
        Ok(())
    }

    /// Kills the program at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The file beside a program's data that holds what it printed (stdout and stderr).
/// A name of the harness's own: a program may write a log of its own (the local
/// server's `serve.log`), and capturing into that file would put each line in twice.
pub const OUTPUT_FILE: &str = "serve.output";

/// Starts `command` (what it prints in `dir/serve.output`) and waits for the
/// `dir/listening.json` it writes once its listeners are bound. A stale file from an
/// earlier run is removed before the start, so only the new process's answer counts.
pub fn spawn_listening(
    name: &str,
    command: Command,
    dir: &Path,
) -> Result<(Child, serde_json::Value)> {
    let path = dir.join("listening.json");
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    let mut child = Child::spawn(name, command, &dir.join(OUTPUT_FILE))?;
    let found = wait_until(&format!("{name}'s listening.json"), START_TIMEOUT, || {
        if child.has_exited() {
            return Some(None);
        }
        let text = std::fs::read_to_string(&path).ok()?;
        serde_json::from_str(&text).ok().map(Some)
    })?;
    match found {
        Some(listening) => Ok((child, listening)),
        None => bail!("{name} exited at start-up:\n{}", child.log()),
    }
}

/// Runs a command to completion and returns its exit code and output.
pub fn run(mut command: Command) -> Result<Output> {
    let output = command.output().context("running a command")?;
    Ok(Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Both streams, for assertions on what the user sees.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Fails with the output when the exit code is not 0.
    pub fn assert_success(self) -> Result<Self> {
        if self.code != 0 {
            bail!(
                "command failed with exit code {}:\n{}",
                self.code,
                self.text()
            );
        }
        Ok(self)
    }
}

/// Under `cargo run`, brings the three programs (`main-server`, `local-server`,
/// `mail-gateway`) up to date, with `extra` arguments for `cargo build`.
pub fn build_programs(extra: &[&str]) -> Result<()> {
    let mut args = vec![
        "-p",
        "main-server",
        "-p",
        "local-server",
        "-p",
        "mail-gateway",
    ];
    args.extend_from_slice(extra);
    cargo_build(&args)
}

/// Under `cargo run`, builds more of the workspace (`cargo build ARGS`) in the running
/// program's own profile, so one command brings everything it starts up to date.
/// Outside cargo (no `CARGO` variable) it does nothing.
pub fn cargo_build(args: &[&str]) -> Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let mut command = Command::new(cargo);
    command.arg("build").arg("-q").args(args);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let status = command.status().context("running cargo build")?;
    if !status.success() {
        bail!("`cargo build {}` failed", args.join(" "));
    }
    Ok(())
}
