//! `solme-sim run FILE…`: every file is checked first (nothing starts when one is
//! refused), then each scenario gets a fresh simulation — a child `solme-sim
//! --no-journeys` in a temporary directory, on ephemeral ports, in a process group of its
//! own so that nothing outlives it — and its steps run through the control API.
//!
//! A child process rather than the world started in this one: the child is exactly what
//! a QA team starts by hand, a scenario that kills or hangs a program cannot take the
//! runner with it, and `--jobs` runs scenarios side by side without sharing a clock.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};

use super::format::{self, Database, Expect, Scenario, StepBody};
use super::report;
use crate::sim::clock::parse_span;
use crate::sim::control_api::ControlFile;
use test_harness::process::{signal, signal_group, Signal};

/// `solme-sim run`'s arguments.
#[derive(Debug, Args)]
pub struct RunScenarios {
    /// The scenario files (TOML; see docs/scenarios.md).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Write the results as JUnit XML here (one test case per scenario).
    #[arg(long, env = "SOLME_SIM_JUNIT")]
    pub junit: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a Markdown report here: each scenario's timeline in simulated and real
    /// time, the mails exchanged and the refusals seen.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Run every scenario on this database, whatever its world says: `postgres` gives
    /// each scenario a fresh database on the server in SOLME_TEST_DATABASE_URL.
    #[arg(long, value_enum)]
    pub database: Option<Database>,
    /// Run the scenarios one after the other on the running simulation in DIR instead
    /// of starting one each (it stays up afterwards; each scenario must fit its state).
    #[arg(long, value_name = "DIR", conflicts_with = "database")]
    pub attach: Option<PathBuf>,
    /// Run every scenario with this many main-server replicas (2 needs `--database
    /// postgres`: they share one database), whatever its world says.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub main_replicas: Option<u8>,
    /// How many scenarios run at once, each in its own simulation.
    #[arg(long, default_value_t = 1, env = "SOLME_SIM_JOBS")]
    pub jobs: usize,
}

/// How long a simulation may take to come up.
const START: Duration = Duration::from_secs(180);
/// How long a clock move may take to reach every program.
const CLOCK_REACH: Duration = Duration::from_secs(10);
/// How long an import waits for the reply to its mail unless `within` says otherwise.
const REPLY_WAIT: Duration = Duration::from_secs(60);
/// How often a step with `within` is tried again.
const RETRY: Duration = Duration::from_millis(250);

/// One step's result.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub line: usize,
    pub what: String,
    pub note: Option<String>,
    /// The simulated time after the step.
    pub simulated: Option<String>,
    /// Seconds since the scenario's simulation was up.
    pub real_seconds: f64,
    pub passed: bool,
    /// One sentence per broken expectation: what was expected, what was seen.
    pub failures: Vec<String>,
    /// What the step saw last (the answer, the output, the status, the inbox).
    pub observed: Value,
}

/// One scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub file: PathBuf,
    pub rule: Option<String>,
    pub passed: bool,
    /// Why the scenario could not run at all (the simulation did not come up, …).
    pub error: Option<String>,
    pub seconds: f64,
    pub steps: Vec<StepResult>,
    /// Mails sent to licensing@ by the scenario and mails Solme sent.
    pub mails: Vec<Value>,
    /// Every refusal seen: line, code, message.
    pub refusals: Vec<Value>,
    /// Why the scenario was not run (it needs what this run does not have); nothing
    /// failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The simulation's directory (kept when the scenario failed).
    pub data_dir: Option<PathBuf>,
}

/// Turns the results into one of the written forms.
type Render = fn(&[ScenarioResult]) -> Result<String>;

/// Runs the files; 0 only when every expectation of every scenario held, 2 when a
/// file was refused before anything started.
pub fn run(args: RunScenarios) -> ExitCode {
    let mut scenarios = Vec::new();
    let mut refused = false;
    if args.main_replicas.is_some_and(|n| n > 1) && args.database != Some(Database::Postgres) {
        eprintln!(
            "solme-sim: --main-replicas 2 runs two main-server processes on one PostgreSQL \
             database: add --database postgres"
        );
        return ExitCode::from(2);
    }
    for file in &args.files {
        match format::load(file) {
            Ok(mut scenario) => {
                if let Some(database) = args.database {
                    scenario.world.database = database;
                }
                if let Some(replicas) = args.main_replicas {
                    scenario.world.main_replicas = usize::from(replicas);
                }
                scenarios.push(scenario);
            }
            Err(error) => {
                eprintln!("solme-sim: {error}");
                refused = true;
            }
        }
    }
    if refused {
        eprintln!("solme-sim: nothing was run");
        return ExitCode::from(2);
    }
    if std::env::var_os("CARGO").is_some() {
        if let Err(error) = test_harness::process::build_programs(&[]) {
            eprintln!("solme-sim: building the programs: {error:#}");
            return ExitCode::FAILURE;
        }
    }
    let started = Instant::now();
    let attach = args.attach.as_deref();
    let jobs = if attach.is_some() {
        1
    } else {
        args.jobs.clamp(1, scenarios.len().max(1))
    };
    println!(
        "Running {} scenario(s), {jobs} at a time, each in a fresh simulation",
        scenarios.len()
    );
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ScenarioResult>>> = Mutex::new(vec![None; scenarios.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Some(scenario) = scenarios.get(n) else {
                    break;
                };
                let result = run_scenario(scenario, attach);
                if let Ok(mut results) = results.lock() {
                    if let Some(slot) = results.get_mut(n) {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    let results: Vec<ScenarioResult> = results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    let skipped = results.iter().filter(|r| r.skipped.is_some()).count();
    let passed = results
        .iter()
        .filter(|r| r.passed && r.skipped.is_none())
        .count();
    println!(
        "\n{passed} of {} scenario(s) passed in {:.1} s{}",
        results.len(),
        started.elapsed().as_secs_f64(),
        if skipped > 0 {
            format!(" ({skipped} skipped: see above why)")
        } else {
            String::new()
        }
    );
    for result in results.iter().filter(|r| !r.passed) {
        println!("FAILED {} ({})", result.name, result.file.display());
        if let Some(error) = &result.error {
            println!("    {error}");
        }
        for step in result.steps.iter().filter(|s| !s.passed) {
            for failure in &step.failures {
                println!("    {}:{}: {failure}", result.file.display(), step.line);
            }
        }
    }
    let mut ok = true;
    let writes: [(&Option<PathBuf>, Render); 3] = [
        (&args.junit, report::junit),
        (&args.json, report::json),
        (&args.report, report::markdown),
    ];
    for (path, render) in writes {
        if let Some(path) = path {
            let written = render(&results).and_then(|text| {
                std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
            });
            if let Err(error) = written {
                eprintln!("solme-sim: {error:#}");
                ok = false;
            }
        }
    }
    if ok && passed + skipped == results.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A simulation started for one scenario (dropping it stops every program), or one
/// attached to (left running).
struct Sim {
    child: Option<std::process::Child>,
    url: String,
    token: String,
    agent: ureq::Agent,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let Some(child) = &mut self.child else {
            return;
        };
        // SIGTERM lets the simulation stop its programs; SIGKILL to the whole group
        // afterwards leaves nothing behind when it could not.
        signal(child.id(), Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group(child.id(), Signal::KILL);
        let _ = child.wait();
    }
}

impl Sim {
    fn start(scenario: &Scenario, dir: &Path) -> Result<Self> {
        let data_dir = dir.join("sim");
        let output = std::fs::File::create(dir.join("sim-output.txt"))
            .context("creating the simulation's output file")?;
        let mut command = Command::new(this_program()?);
        command
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--no-journeys")
            .arg("--local-servers")
            .arg(scenario.world.local_servers.to_string());
        if scenario.world.main_replicas > 1 {
            command
                .arg("--main-replicas")
                .arg(scenario.world.main_replicas.to_string());
        }
        if let Some(days) = scenario.world.clock_offset_days {
            command.arg("--clock-offset-days").arg(days.to_string());
        }
        if scenario.world.customer_proxy {
            command.arg("--customer-proxy");
        }
        if scenario.world.database == Database::Postgres {
            command.arg("--database-url").arg(fresh_database()?);
        }
        let mut child = command
            // The programs are built already (the runner built them when run by cargo).
            .env_remove("CARGO")
            .env_remove("SOLME_SIM_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(output.try_clone().context("sharing the output file")?)
            .stderr(output)
            .process_group(0)
            .spawn()
            .context("starting solme-sim")?;
        let control = data_dir.join(crate::sim::control_api::CONTROL_FILE);
        let deadline = Instant::now() + START;
        let info: ControlFile = loop {
            if let Some(status) = child.try_wait().context("watching the simulation")? {
                bail!(
                    "the simulation stopped while starting ({status}); its output is in {}",
                    dir.join("sim-output.txt").display()
                );
            }
            if let Some(info) = std::fs::read_to_string(&control)
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok())
            {
                break info;
            }
            if Instant::now() > deadline {
                signal_group(child.id(), Signal::KILL);
                let _ = child.wait();
                bail!(
                    "the simulation did not come up within {} s",
                    START.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        Self::connect(Some(child), &info)
    }

    /// The simulation already running in `data_dir`.
    fn attach(data_dir: &Path) -> Result<Self> {
        let control = data_dir.join(crate::sim::control_api::CONTROL_FILE);
        let text = std::fs::read_to_string(&control).with_context(|| {
            format!(
                "no running simulation in {} ({} cannot be read)",
                data_dir.display(),
                control.display()
            )
        })?;
        let info: ControlFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged", control.display()))?;
        Self::connect(None, &info)
    }

    fn connect(child: Option<std::process::Child>, info: &ControlFile) -> Result<Self> {
        let token = std::fs::read_to_string(&info.token_file)
            .context("reading the control API's token")?
            .trim()
            .to_string();
        Ok(Self {
            child,
            url: info.url.clone(),
            token,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(700))
                .build(),
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let request = self
            .agent
            .request(method, &format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {}", self.token));
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match result {
            Ok(response) => response.into_json().context("the control API's answer"),
            Err(ureq::Error::Status(status, response)) => {
                let body: Value = response.into_json().unwrap_or(Value::Null);
                Err(anyhow!(
                    "the control API refused {path} ({status}): {}",
                    body["message"].as_str().unwrap_or("no reason given")
                ))
            }
            Err(error) => Err(anyhow!(error).context("the control API cannot be reached")),
        }
    }

    fn status(&self) -> Result<Value> {
        self.call("GET", "/v1/status", None)
    }

    fn program(&self, name: &str) -> Result<Value> {
        let status = self.status()?;
        status["programs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .cloned()
            .ok_or_else(|| anyhow!("no program {name} in the simulation"))
    }

    fn exec(&self, program: &str, args: &[String]) -> Result<Value> {
        self.call(
            "POST",
            "/v1/exec",
            Some(json!({"program": program, "args": args, "timeout_seconds": 120})),
        )
    }

    /// Waits until every program's /metrics shows the clock's offset.
    fn wait_for_clock(&self, offset_ms: i64) -> Result<()> {
        let expected = offset_ms as f64 / 1000.0;
        let status = self.status()?;
        let mut urls = Vec::new();
        let mut admin = None;
        for program in status["programs"].as_array().into_iter().flatten() {
            // A program a fault keeps down (a lost replica, a killed local server)
            // follows the clock when it is back; the others must follow it now.
            if program["state"] != "running" {
                continue;
            }
            let addresses = &program["addresses"];
            if let Some(api) = addresses["api"].as_str().or(addresses["http"].as_str()) {
                urls.push(format!("{api}/metrics"));
            }
            if let (Some(url), Some(dir)) =
                (addresses["admin"].as_str(), program["data_dir"].as_str())
            {
                let dir = PathBuf::from(dir);
                let token = std::fs::read_to_string(dir.join("admin-token")).unwrap_or_default();
                admin = test_harness::Admin::new(url, token.trim(), &dir.join("ca.pem")).ok();
            }
        }
        let near = |text: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix("solme_clock_offset_seconds "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|seen| (seen - expected).abs() < 1.0)
        };
        test_harness::wait_until("every program to follow the clock", CLOCK_REACH, || {
            let locals = urls.iter().all(|url| {
                ureq::get(url)
                    .call()
                    .ok()
                    .and_then(|r| r.into_string().ok())
                    .is_some_and(|text| near(&text))
            });
            let main = admin.as_ref().is_none_or(|admin| {
                matches!(admin.call("GET", "/metrics", None), Ok((200, Value::String(text))) if near(&text))
            });
            (locals && main).then_some(())
        })
    }
}

/// This very `solme-sim`, to start each scenario's simulation with. On Linux through
/// `/proc/self/exe`, which still names it when a build has replaced the file meanwhile
/// (the path `current_exe` gives then no longer exists).
fn this_program() -> Result<PathBuf> {
    let proc_exe = Path::new("/proc/self/exe");
    if proc_exe.exists() {
        return Ok(proc_exe.to_path_buf());
    }
    std::env::current_exe().context("locating solme-sim")
}

/// A new, empty database on the PostgreSQL server of SOLME_TEST_DATABASE_URL, so that
/// scenarios running side by side share nothing; its URL.
fn fresh_database() -> Result<String> {
    let url = std::env::var("SOLME_TEST_DATABASE_URL")
        .map_err(|_| anyhow!("the world asks for PostgreSQL: set SOLME_TEST_DATABASE_URL"))?;
    let (base, _) = url
        .rsplit_once('/')
        .context("SOLME_TEST_DATABASE_URL has no database name")?;
    let name = format!("solme_scenario_{}", uuid::Uuid::new_v4().simple());
    let output = Command::new("psql")
        .arg(&url)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .context("running psql")?;
    if !output.status.success() {
        bail!(
            "creating the scenario's database failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(format!("{base}/{name}"))
}

/// What one try of a step gave.
struct Tried {
    what: String,
    observed: Value,
    saved: Option<String>,
}

fn run_scenario(scenario: &Scenario, attach: Option<&Path>) -> ScenarioResult {
    let started = Instant::now();
    let name = scenario.name.clone();
    match attach {
        Some(dir) => println!(
            "\n[{name}] on the running simulation in {} ({})",
            dir.display(),
            scenario.file.display()
        ),
        None => println!(
            "\n[{name}] starting a simulation ({})",
            scenario.file.display()
        ),
    }
    let mut result = ScenarioResult {
        name: name.clone(),
        file: scenario.file.clone(),
        rule: scenario.rule.clone(),
        passed: false,
        error: None,
        seconds: 0.0,
        steps: Vec::new(),
        mails: Vec::new(),
        refusals: Vec::new(),
        data_dir: None,
        skipped: None,
    };
    if attach.is_none()
        && scenario.world.main_replicas > 1
        && scenario.world.database != Database::Postgres
    {
        let why = "it needs two main-server replicas, which share one PostgreSQL database, and \
                   this run is on SQLite (run it with --database postgres)";
        println!("[{name}] skipped: {why}");
        result.passed = true;
        result.skipped = Some(why.to_string());
        return result;
    }
    let dir = match tempfile::Builder::new().prefix("solme-scenario-").tempdir() {
        Ok(dir) => dir,
        Err(error) => {
            result.error = Some(format!("making a temporary directory: {error}"));
            return result;
        }
    };
    let started_sim = match attach {
        Some(running) => Sim::attach(running),
        None => Sim::start(scenario, dir.path()),
    };
    let sim = match started_sim {
        Ok(sim) => sim,
        Err(error) => {
            result.error = Some(format!("{error:#}"));
            result.data_dir = Some(dir.keep());
            return result;
        }
    };
    let up = Instant::now();
    println!(
        "[{name}] simulation up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut saved: BTreeMap<String, String> = BTreeMap::new();
    let mut failed = false;
    for step in &scenario.steps {
        if failed {
            break;
        }
        let outcome = run_step(&sim, scenario, &step.body, step.line, &saved, &mut result);
        let simulated = sim
            .status()
            .ok()
            .and_then(|s| s["clock"]["now"].as_str().map(short_time));
        let (what, observed, failures) = match outcome {
            Ok((tried, failures)) => {
                let field = step.body.save_field.as_deref().map(|path| {
                    let value = lookup(&tried.observed, path);
                    value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_string)
                });
                if let (Some(name), Some(value)) =
                    (&step.body.save, field.as_ref().or(tried.saved.as_ref()))
                {
                    saved.insert(name.clone(), value.clone());
                }
                (tried.what, tried.observed, failures)
            }
            Err(error) => (
                step.body.action().unwrap_or("step").to_string(),
                Value::Null,
                vec![format!("the step could not run: {error:#}")],
            ),
        };
        let passed = failures.is_empty();
        failed = !passed;
        println!(
            "[{name}] line {:>3}  {:<48} {}  (simulated {}, +{:.1} s)",
            step.line,
            what,
            if passed { "ok" } else { "FAILED" },
            simulated.as_deref().unwrap_or("?"),
            up.elapsed().as_secs_f64()
        );
        for failure in &failures {
            println!("[{name}]           {failure}");
        }
        result.steps.push(StepResult {
            line: step.line,
            what,
            note: step.body.note.clone(),
            simulated,
            real_seconds: up.elapsed().as_secs_f64(),
            passed,
            failures,
            observed,
        });
    }
    // Solme's side of the mail: everything the gateway sent.
    if let Some(outbox) = sim
        .status()
        .ok()
        .and_then(|s| s["outbox"].as_str().map(PathBuf::from))
    {
        for mail in test_harness::mail::read_outbox(&outbox).unwrap_or_default() {
            result.mails.push(json!({
                "direction": "from Solme",
                "to": mail.to,
                "subject": mail.subject,
                "date": mail.date,
                "license_file": mail.license_file().is_some(),
            }));
        }
    }
    result.passed = !failed;
    result.seconds = started.elapsed().as_secs_f64();
    drop(sim);
    if result.passed {
        println!("[{name}] passed in {:.1} s", result.seconds);
    } else {
        let kept = attach.map_or_else(|| dir.keep(), Path::to_path_buf);
        println!(
            "[{name}] FAILED; the simulation's files are kept in {}",
            kept.display()
        );
        result.data_dir = Some(kept);
    }
    result
}

/// Runs one step (again and again within its `within`) and checks its expectations.
fn run_step(
    sim: &Sim,
    scenario: &Scenario,
    written: &StepBody,
    line: usize,
    saved: &BTreeMap<String, String>,
    result: &mut ScenarioResult,
) -> Result<(Tried, Vec<String>)> {
    let step = written.substitute(saved).map_err(|e| anyhow!(e))?;
    let expect = step.expect.clone().unwrap_or_default();
    let within = step.within();
    if expect.no_new_mail == Some(true) {
        return no_new_mail(sim, &step, within.unwrap_or_default());
    }
    let hold = step.hold();
    let hold_started = Instant::now();
    let deadline = Instant::now() + within.or(hold).unwrap_or_default();
    loop {
        let tried = try_step(sim, scenario, &step, line, result)?;
        let mut failures = check(sim, &expect, &tried.observed, step.action().unwrap_or(""))?;
        if let (Some(hold), false) = (&step.hold, failures.is_empty()) {
            failures.insert(
                0,
                format!(
                    "expected this to stay so for {hold}; it changed after {:.1} s",
                    hold_started.elapsed().as_secs_f64()
                ),
            );
        }
        let done = if hold.is_some() {
            !failures.is_empty()
        } else {
            failures.is_empty()
        };
        if done || Instant::now() >= deadline {
            if let Some(code) = tried.observed["body"]["code"].as_str() {
                result.refusals.push(json!({
                    "line": line,
                    "code": code,
                    "message": tried.observed["body"]["message"],
                }));
            }
            return Ok((tried, failures));
        }
        std::thread::sleep(RETRY);
    }
}

fn no_new_mail(sim: &Sim, step: &StepBody, window: Duration) -> Result<(Tried, Vec<String>)> {
    let contact = step.inbox.clone().unwrap_or_default();
    let inbox = |sim: &Sim| -> Result<Vec<Value>> {
        Ok(sim
            .call(
                "GET",
                &format!("/v1/mail/inbox?address={}", percent(&contact)),
                None,
            )?
            .as_array()
            .cloned()
            .unwrap_or_default())
    };
    let before = inbox(sim)?.len();
    let until = Instant::now() + window;
    let what = format!(
        "no new mail to {contact} for {}",
        step.within.as_deref().unwrap_or("0s")
    );
    while Instant::now() < until {
        let now = inbox(sim)?;
        if now.len() > before {
            let new: Vec<Value> = now.into_iter().skip(before).collect();
            let failure = format!(
                "expected no new mail to {contact}; saw {}",
                new.iter()
                    .map(|m| format!(
                        "{} \"{}\"",
                        m["kind"].as_str().unwrap_or("?"),
                        m["subject"].as_str().unwrap_or("")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Ok((
                Tried {
                    what,
                    observed: Value::Array(new),
                    saved: None,
                },
                vec![failure],
            ));
        }
        std::thread::sleep(RETRY);
    }
    Ok((
        Tried {
            what,
            observed: json!({"mails": before}),
            saved: None,
        },
        Vec::new(),
    ))
}

fn percent(text: &str) -> String {
    text.replace('+', "%2B")
}

fn outbox(sim: &Sim) -> Result<PathBuf> {
    sim.status()?["outbox"]
        .as_str()
        .map(PathBuf::from)
        .context("the simulation names no outbox")
}

fn data_dir(sim: &Sim, program: &str) -> Result<PathBuf> {
    sim.program(program)?["data_dir"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("{program} has no data directory"))
}

fn try_step(
    sim: &Sim,
    scenario: &Scenario,
    step: &StepBody,
    line: usize,
    result: &mut ScenarioResult,
) -> Result<Tried> {
    let verb = |program: &str, args: Vec<String>, what: String| -> Result<Tried> {
        let mut output = sim.exec(program, &args)?;
        let saved = output["stdout"].as_str().map(|s| s.trim().to_string());
        // A verb run with --json: its answer parsed, for save_field = "json.…".
        if let Some(parsed) = saved
            .as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
        {
            output["json"] = parsed;
        }
        Ok(Tried {
            what,
            observed: output,
            saved,
        })
    };
    let client = |body: Value, what: String| -> Result<Tried> {
        let answer = sim.call("POST", "/v1/client", Some(body))?;
        let saved = answer["body"]["lease_id"]
            .as_str()
            .or(answer["body"]["ticket"].as_str())
            .map(str::to_string);
        Ok(Tried {
            what,
            observed: answer,
            saved,
        })
    };
    if let Some(clock) = &step.clock {
        let body = serde_json::to_value(clock)?;
        let moved = sim.call("POST", "/v1/clock", Some(body))?;
        sim.wait_for_clock(moved["offset_ms"].as_i64().unwrap_or_default())?;
        let what = clock
            .iter()
            .map(|(k, v)| format!("clock {k} {v}"))
            .collect::<Vec<_>>()
            .join(" ");
        return Ok(Tried {
            what,
            observed: moved,
            saved: None,
        });
    }
    if let Some(exec) = &step.exec {
        return verb(
            &exec.program,
            exec.args.clone(),
            format!("{} {}", exec.program, exec.args.join(" ")),
        );
    }
    if let Some(args) = &step.admin {
        let mut all = vec!["admin".to_string()];
        all.extend(args.iter().cloned());
        return verb(
            "main-server",
            all,
            format!("operator: admin {}", args.join(" ")),
        );
    }
    if let Some(server) = &step.sync {
        return verb(server, vec!["sync".into()], format!("{server} sync"));
    }
    if let Some(server) = &step.export {
        let file = data_dir(sim, server)?.join(format!("scenario-export-line-{line}.txt"));
        let mut tried = verb(
            server,
            vec![
                "export-sync-data".into(),
                file.to_string_lossy().into_owned(),
            ],
            format!("{server} export-sync-data"),
        )?;
        tried.saved = Some(file.to_string_lossy().into_owned());
        return Ok(tried);
    }
    if let Some(mail) = &step.mail {
        let mut body = json!({"from": mail.from});
        for (key, value) in [
            ("sync_data", &mail.sync_data),
            ("subject", &mail.subject),
            ("text", &mail.text),
        ] {
            if let Some(value) = value {
                body[key] = json!(value);
            }
        }
        let sent = sim.call("POST", "/v1/mail/send", Some(body))?;
        let what = if mail.sync_data.is_some() {
            format!("mail sync data from {}", mail.from)
        } else {
            format!(
                "mail \"{}\" from {}",
                mail.subject.as_deref().unwrap_or(""),
                mail.from
            )
        };
        result.mails.push(json!({
            "direction": "to Solme",
            "from": mail.from,
            "to": sent["to"],
            "subject": mail.subject.clone().unwrap_or_else(|| "Sync data".to_string()),
            "message_id": sent["message_id"],
        }));
        let saved = sent["message_id"].as_str().map(str::to_string);
        return Ok(Tried {
            what,
            observed: sent,
            saved,
        });
    }
    if let Some(import) = &step.import {
        let (file, from) = match (&import.reply_to, &import.file) {
            (Some(message), _) => {
                let wait = step.within().unwrap_or(REPLY_WAIT);
                let reply = test_harness::mail::wait_for_reply(&outbox(sim)?, message, wait)?;
                let license = reply.license_file().with_context(|| {
                    format!("the reply \"{}\" carries no license file", reply.subject)
                })?;
                let file =
                    data_dir(sim, &import.server)?.join(format!("scenario-import-line-{line}.lic"));
                if !file.exists() {
                    std::fs::write(&file, license).context("saving the license file")?;
                }
                (file, "the reply")
            }
            (None, Some(saved)) => (PathBuf::from(saved), "a saved file"),
            (None, None) => bail!("the import names no license file"),
        };
        let mut tried = verb(
            &import.server,
            vec![
                "import-license-file".into(),
                file.to_string_lossy().into_owned(),
            ],
            format!("{} import-license-file ({from})", import.server),
        )?;
        tried.saved = Some(file.to_string_lossy().into_owned());
        return Ok(tried);
    }
    if let Some(write) = &step.write {
        let file = data_dir(sim, &write.program)?.join(&write.file);
        // Never over a program's own file (its database, keys, settings).
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, write.text.as_bytes()))
            .with_context(|| {
                format!("writing {} (a write never replaces a file)", file.display())
            })?;
        return Ok(Tried {
            what: format!(
                "write {} into {}'s data directory",
                write.file, write.program
            ),
            observed: json!({"file": file, "bytes": write.text.len()}),
            saved: Some(file.to_string_lossy().into_owned()),
        });
    }
    if let Some(c) = &step.checkout {
        let mut body = json!({"action": "checkout", "server": c.server, "feature": c.feature});
        if let Some(user) = &c.user {
            body["user"] = json!(user);
        }
        if let Some(host) = &c.host {
            body["host"] = json!(host);
        }
        if let Some(wait) = c.wait_seconds {
            body["wait_seconds"] = json!(wait);
        }
        return client(body, format!("{} checkout {}", c.server, c.feature));
    }
    if let Some(b) = &step.borrow {
        return client(
            json!({"action": "checkout", "server": b.server, "feature": b.feature, "borrow_hours": b.hours}),
            format!("{} borrow {} for {} h", b.server, b.feature, b.hours),
        );
    }
    if let Some(l) = &step.heartbeat {
        return client(
            json!({"action": "heartbeat", "server": l.server, "lease": l.lease}),
            format!("{} heartbeat", l.server),
        );
    }
    if let Some(l) = &step.checkin {
        return client(
            json!({"action": "checkin", "server": l.server, "lease": l.lease}),
            format!("{} checkin", l.server),
        );
    }
    if let Some(t) = &step.poll {
        return client(
            json!({"action": "poll", "server": t.server, "ticket": t.ticket}),
            format!("{} poll the queue", t.server),
        );
    }
    if let Some(fault) = &step.fault {
        let answer = sim.call("POST", "/v1/faults", Some(serde_json::to_value(fault)?))?;
        let what = format!(
            "fault {} switched {} ({})",
            fault.fault,
            if fault.on { "on" } else { "off" },
            fault.program
        );
        return Ok(Tried {
            what,
            observed: answer,
            saved: None,
        });
    }
    if let Some(server) = &step.status {
        let output = sim.exec(server, &["status".into(), "--json".into()])?;
        let status: Value = serde_json::from_str(output["stdout"].as_str().unwrap_or_default())
            .with_context(|| {
                format!(
                    "{server} status --json did not answer JSON: {}",
                    output["stderr"]
                )
            })?;
        return Ok(Tried {
            what: format!("{server} status"),
            observed: status,
            saved: None,
        });
    }
    if let Some(contact) = &step.inbox {
        let mails = sim.call(
            "GET",
            &format!("/v1/mail/inbox?address={}", percent(contact)),
            None,
        )?;
        return Ok(Tried {
            what: format!("inbox of {contact}"),
            observed: mails,
            saved: None,
        });
    }
    if let Some(add) = &step.customer_add {
        let answer = sim.call(
            "POST",
            "/v1/customers",
            Some(json!({"name": add.name, "contacts": add.contacts})),
        )?;
        let saved = answer["id"].as_str().map(str::to_string);
        return Ok(Tried {
            what: format!("customer {} added", add.name),
            observed: answer,
            saved,
        });
    }
    if let Some(add) = &step.server_add {
        let mut body = json!({"name": add.name});
        for (key, value) in [
            ("customer", &add.customer),
            ("id", &add.id),
            ("sync", &add.sync),
        ] {
            if let Some(value) = value {
                body[key] = json!(value);
            }
        }
        let answer = sim.call("POST", "/v1/servers", Some(body))?;
        let saved = answer["server"]["id"].as_str().map(str::to_string);
        return Ok(Tried {
            what: match &add.id {
                Some(id) => format!("{} installed on the existing id {id}", add.name),
                None => format!("server {} added", add.name),
            },
            observed: answer,
            saved,
        });
    }
    if let Some(server) = &step.reinstall {
        let answer = sim.call("POST", &format!("/v1/servers/{server}/reinstall"), None)?;
        return Ok(Tried {
            what: format!("{server} reinstalled (a new key pair)"),
            observed: answer,
            saved: None,
        });
    }
    let _ = scenario;
    bail!("the step names no action")
}

/// The body of a mail of the inbox, read from the gateway's outbox by its file name.
fn mail_text(sim: &Sim, mail: &Value) -> Option<String> {
    let file = mail["file"].as_str()?;
    test_harness::mail::read_outbox(&outbox(sim).ok()?)
        .ok()?
        .into_iter()
        .find(|m| m.file == file)
        .map(|m| m.text)
}

/// A short form of what was seen, for a failure's sentence.
fn seen(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}

fn lookup<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(value, |value, key| match key.parse::<usize>() {
            Ok(index) if value.is_array() => &value[index],
            _ => &value[key],
        })
}

fn check(sim: &Sim, expect: &Expect, observed: &Value, action: &str) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    let client =
        observed.get("status").is_some_and(Value::is_u64) && observed.get("body").is_some();
    let output = format!(
        "{}{}",
        observed["stdout"].as_str().unwrap_or_default(),
        observed["stderr"].as_str().unwrap_or_default()
    );
    if let Some(code) = &expect.code {
        if client {
            let seen_code = if observed["status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s))
            {
                "granted"
            } else {
                observed["body"]["code"].as_str().unwrap_or("?")
            };
            if seen_code != code {
                failures.push(format!(
                    "expected code {code}, saw {seen_code} (HTTP {}: {})",
                    observed["status"],
                    seen(&observed["body"])
                ));
            }
        } else if !output.contains(code.as_str()) {
            failures.push(format!(
                "expected code {code} in the output, saw exit {} and {}",
                observed["exit_code"],
                seen(&Value::String(output.trim().to_string()))
            ));
        }
    }
    if let Some(http) = expect.http {
        if observed["status"].as_u64() != Some(u64::from(http)) {
            failures.push(format!(
                "expected HTTP {http}, saw {} {}",
                observed["status"],
                seen(&observed["body"])
            ));
        }
    }
    if let Some(exit) = expect.exit {
        if observed["exit_code"].as_i64() != Some(i64::from(exit)) {
            failures.push(format!(
                "expected exit {exit}, saw exit {}: {}",
                observed["exit_code"],
                seen(&Value::String(output.trim().to_string()))
            ));
        }
    }
    if let Some(text) = &expect.output_contains {
        if !output.contains(text.as_str()) {
            failures.push(format!(
                "expected {text:?} in the output, saw {}",
                seen(&Value::String(output.trim().to_string()))
            ));
        }
    }
    for (path, wanted) in expect.status.iter().flatten() {
        let wanted = serde_json::to_value(wanted)?;
        let got = lookup(observed, path);
        if *got != wanted {
            failures.push(format!("expected status {path} = {wanted}, saw {got}"));
        }
    }
    if let Some(mail) = &expect.mail {
        let matching = observed
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["kind"] == mail.kind.as_str())
            .filter(|m| {
                mail.subject_contains.as_ref().is_none_or(|s| {
                    m["subject"]
                        .as_str()
                        .is_some_and(|subject| subject.contains(s.as_str()))
                })
            })
            .filter(|m| mail.license_file.is_none_or(|l| m["license_file"] == l))
            .filter(|m| {
                mail.text_contains.as_ref().is_none_or(|wanted| {
                    mail_text(sim, m).is_some_and(|text| text.contains(wanted.as_str()))
                })
            })
            .count();
        let wanted = mail.count.unwrap_or(1);
        if matching < wanted {
            let inbox: Vec<String> = observed
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    format!(
                        "{} \"{}\"",
                        m["kind"].as_str().unwrap_or("?"),
                        m["subject"].as_str().unwrap_or("")
                    )
                })
                .collect();
            let text = mail
                .text_contains
                .as_ref()
                .map(|t| format!(" saying {t:?}"))
                .unwrap_or_default();
            failures.push(format!(
                "expected {wanted} {} mail(s){text}, saw {matching}; the inbox holds [{}]",
                mail.kind,
                inbox.join(", ")
            ));
        }
    }
    if let Some(span) = &expect.ends_within {
        let limit = parse_span(span).map_err(|e| anyhow!(e))?;
        let now = sim.status()?["clock"]["now"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .context("the simulated time")?;
        let body = &observed["body"];
        let end = body["borrowed_until"]
            .as_str()
            .or(body["expires_at"].as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        match end {
            Some(end) if end.signed_duration_since(now) <= limit => {}
            Some(end) => failures.push(format!(
                "expected the {action} to end within {span} of {now}, it ends {end}"
            )),
            None => failures.push(format!(
                "expected a lease ending within {span}, saw {}",
                seen(observed)
            )),
        }
    }
    Ok(failures)
}

/// `2027-11-10 09:00:00` from an RFC 3339 time.
fn short_time(time: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(time).map_or_else(
        |_| time.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}
