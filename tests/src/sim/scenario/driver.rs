//! A running `solme-sim` driven from Rust, as the end-to-end journeys in `tests/` drive
//! it: started as a process of its own (in a process group, so that nothing outlives
//! it), then moved, questioned and acted on only through its control API. Clock moves
//! wait until every program follows; the operator's admin API is reached with the
//! token and CA file the simulation's status names.
//!
//! The scenario runner keeps its own small client ([`super::runner`]) because it also
//! attaches to simulations it did not start.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tempfile::TempDir;
use test_harness::process::{signal, signal_group, Signal};

use crate::sim::control_api::{ControlFile, CONTROL_FILE};

/// How long a simulation may take to come up.
const START: Duration = Duration::from_secs(180);
/// How long a clock move may take to reach every program.
const CLOCK_REACH: Duration = Duration::from_secs(10);

/// What the simulation is started with (`solme-sim --no-journeys …`).
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The `solme-sim` binary (in a test: `env!("CARGO_BIN_EXE_solme-sim")`).
    pub binary: PathBuf,
    pub local_servers: usize,
    /// The main server on this PostgreSQL database instead of SQLite.
    pub database_url: Option<String>,
    /// Main-server processes on that database (1 or 2).
    pub main_replicas: u8,
    /// The customer's proxy between the local servers and Solme.
    pub customer_proxy: bool,
}

impl SimOptions {
    pub fn new(binary: impl Into<PathBuf>, local_servers: usize) -> Self {
        Self {
            binary: binary.into(),
            local_servers,
            database_url: None,
            main_replicas: 1,
            customer_proxy: false,
        }
    }

    /// Two main-server processes on a fresh database of the PostgreSQL server in
    /// SOLME_TEST_DATABASE_URL; None when that is not set.
    pub fn on_postgres(mut self) -> Result<Option<Self>> {
        if std::env::var_os("SOLME_TEST_DATABASE_URL").is_none() {
            return Ok(None);
        }
        self.database_url = Some(fresh_database()?);
        self.main_replicas = 2;
        Ok(Some(self))
    }
}

/// A verb's end, as `POST /v1/exec` answers it.
#[derive(Debug, Clone)]
pub struct Verb {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Verb {
    /// Both streams, for messages and searches.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A licensed program's answer through `POST /v1/client`: the HTTP status (0: no
/// answer) and the local server's body.
#[derive(Debug, Clone)]
pub struct ClientAnswer {
    pub status: u16,
    pub body: Value,
}

impl ClientAnswer {
    pub fn granted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The refusal's code (`SYNC_EXPIRED`), or `granted`.
    pub fn code(&self) -> &str {
        if self.granted() {
            "granted"
        } else {
            self.body["code"].as_str().unwrap_or("?")
        }
    }
}

/// A simulation started for a test; dropping it stops every program.
pub struct RunningSim {
    child: std::process::Child,
    dir: TempDir,
    url: String,
    token: String,
    agent: ureq::Agent,
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        // SIGTERM lets the simulation stop its programs; SIGKILL to the whole group
        // afterwards leaves nothing behind when it could not.
        signal(self.child.id(), Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group(self.child.id(), Signal::KILL);
        let _ = self.child.wait();
    }
}

impl RunningSim {
    /// Starts `solme-sim --no-journeys` in a new temporary directory and waits for its
    /// control API.
    pub fn start(options: &SimOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("solme-journey-")
            .tempdir()
            .context("making a temporary directory")?;
        let data_dir = dir.path().join("sim");
        let log = dir.path().join("sim-output.txt");
        let output = std::fs::File::create(&log).context("creating the output file")?;
        let mut command = Command::new(&options.binary);
        command
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--no-journeys")
            .arg("--local-servers")
            .arg(options.local_servers.to_string());
        if let Some(url) = &options.database_url {
            command.arg("--database-url").arg(url);
            command
                .arg("--main-replicas")
                .arg(options.main_replicas.to_string());
        }
        if options.customer_proxy {
            command.arg("--customer-proxy");
        }
        let mut child = command
            // The programs are built already: no `cargo build` from inside.
            .env_remove("CARGO")
            .env_remove("SOLME_SIM_DATA_DIR")
            .env_remove("SOLME_SIM_CUSTOMER_PROXY")
            .stdin(Stdio::null())
            .stdout(output.try_clone().context("sharing the output file")?)
            .stderr(output)
            .process_group(0)
            .spawn()
            .context("starting solme-sim")?;
        let control = data_dir.join(CONTROL_FILE);
        let deadline = Instant::now() + START;
        let info: ControlFile = loop {
            if let Some(status) = child.try_wait().context("watching the simulation")? {
                bail!(
                    "the simulation stopped while starting ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
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
                    "the simulation did not come up within {} s:\n{}",
                    START.as_secs(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let token = std::fs::read_to_string(&info.token_file)
            .context("reading the control API's token")?
            .trim()
            .to_string();
        Ok(Self {
            child,
            dir,
            url: info.url,
            token,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(700))
                .build(),
        })
    }

    /// The simulation's directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("sim")
    }

    /// A control API call: (HTTP status, JSON body), refusals included.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let request = self
            .agent
            .request(method, &format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {}", self.token));
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => return Err(anyhow!(error).context("the control API cannot be reached")),
        };
        let status = response.status();
        let body = response.into_json().unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// A control API call that must succeed: its body.
    pub fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let (status, answer) = self.call(method, path, body)?;
        if status != 200 {
            bail!("the control API refused {method} {path} ({status}): {answer}");
        }
        Ok(answer)
    }

    pub fn status(&self) -> Result<Value> {
        self.ok("GET", "/v1/status", None)
    }

    /// One program as the status lists it.
    pub fn program(&self, name: &str) -> Result<Value> {
        let status = self.status()?;
        status["programs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .cloned()
            .ok_or_else(|| anyhow!("no program {name} in the simulation: {status}"))
    }

    /// Runs a verb of a program on its data directory and the simulated clock.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Verb> {
        let answer = self.ok(
            "POST",
            "/v1/exec",
            Some(json!({"program": program, "args": args, "timeout_seconds": 120})),
        )?;
        Ok(Verb {
            code: answer["exit_code"]
                .as_i64()
                .and_then(|c| i32::try_from(c).ok())
                .unwrap_or(-1),
            stdout: answer["stdout"].as_str().unwrap_or_default().to_string(),
            stderr: answer["stderr"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// Runs a verb that must end with exit 0.
    pub fn succeed(&self, program: &str, args: &[&str]) -> Result<Verb> {
        let verb = self.exec(program, args)?;
        if verb.code != 0 {
            bail!(
                "{program} {} ended with exit {}:\n{}",
                args.join(" "),
                verb.code,
                verb.text()
            );
        }
        Ok(verb)
    }

    /// `status --json` of a local server.
    pub fn local_status(&self, server: &str) -> Result<Value> {
        let verb = self.exec(server, &["status", "--json"])?;
        serde_json::from_str(&verb.stdout)
            .with_context(|| format!("{server} status --json: {}", verb.text()))
    }

    /// Moves the clock (`{"advance": "340d"}`, `{"set": …}`, `{"back": …}`) and waits
    /// until every program follows; the clock after the move.
    pub fn clock(&self, change: Value) -> Result<Value> {
        let moved = self.ok("POST", "/v1/clock", Some(change))?;
        self.wait_for_clock(moved["offset_ms"].as_i64().unwrap_or_default())?;
        Ok(moved)
    }

    pub fn advance(&self, by: &str) -> Result<Value> {
        self.clock(json!({ "advance": by }))
    }

    /// Waits until every running program's /metrics shows the clock's offset.
    fn wait_for_clock(&self, offset_ms: i64) -> Result<()> {
        let expected = offset_ms as f64 / 1000.0;
        let near = |text: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix("solme_clock_offset_seconds "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|seen| (seen - expected).abs() < 1.0)
        };
        let status = self.status()?;
        let mut urls = Vec::new();
        let mut admins = Vec::new();
        for program in status["programs"].as_array().into_iter().flatten() {
            if program["state"].as_str().is_some_and(|s| s != "running") {
                continue;
            }
            let addresses = &program["addresses"];
            if let Some(api) = addresses["api"].as_str().or(addresses["http"].as_str()) {
                urls.push(format!("{api}/metrics"));
            }
            if let (Some(url), Some(dir)) =
                (addresses["admin"].as_str(), program["data_dir"].as_str())
            {
                admins.push(admin_of(url, Path::new(dir))?);
            }
        }
        test_harness::wait_until("every program to follow the clock", CLOCK_REACH, || {
            let locals = urls.iter().all(|url| {
                ureq::get(url)
                    .call()
                    .ok()
                    .and_then(|r| r.into_string().ok())
                    .is_some_and(|text| near(&text))
            });
            let mains = admins.iter().all(|admin| {
                matches!(admin.call("GET", "/metrics", None), Ok((200, Value::String(text))) if near(&text))
            });
            (locals && mains).then_some(())
        })
    }

    /// The operator's admin API on the main server (`main-server`, its first admin).
    pub fn admin(&self) -> Result<test_harness::Admin> {
        let main = self.program("main-server")?;
        let url = main["addresses"]["admin"]
            .as_str()
            .context("the main server lists no admin address")?;
        let dir = main["data_dir"]
            .as_str()
            .context("the main server lists no data directory")?;
        admin_of(url, Path::new(dir))
    }

    /// A licensed program's request (`POST /v1/client`).
    pub fn client(&self, action: Value) -> Result<ClientAnswer> {
        let answer = self.ok("POST", "/v1/client", Some(action))?;
        Ok(ClientAnswer {
            status: answer["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(0),
            body: answer["body"].clone(),
        })
    }

    pub fn checkout(&self, server: &str, feature: &str, host: &str) -> Result<ClientAnswer> {
        self.client(
            json!({"action": "checkout", "server": server, "feature": feature, "host": host}),
        )
    }

    pub fn heartbeat(&self, server: &str, lease: &str) -> Result<ClientAnswer> {
        self.client(json!({"action": "heartbeat", "server": server, "lease": lease}))
    }

    /// Mails licensing@ (`POST /v1/mail/send`); the Message-ID.
    pub fn mail(&self, mail: Value) -> Result<String> {
        let sent = self.ok("POST", "/v1/mail/send", Some(mail))?;
        sent["message_id"]
            .as_str()
            .map(str::to_string)
            .context("the mail was taken without a Message-ID")
    }

    /// The customer's side of an email sync: exports the server's sync data and mails
    /// it from `from`; the Message-ID.
    pub fn mail_sync_data(&self, server: &str, from: &str) -> Result<String> {
        let dir = self.program(server)?["data_dir"]
            .as_str()
            .map(PathBuf::from)
            .context("the local server lists no data directory")?;
        let file = dir.join(format!("sync-data-{}.txt", uuid::Uuid::new_v4().simple()));
        let file = file.to_string_lossy().into_owned();
        self.succeed(server, &["export-sync-data", &file])?;
        self.mail(json!({"from": from, "sync_data": file}))
    }

    /// Where the gateway writes the mails it sends.
    pub fn outbox(&self) -> Result<PathBuf> {
        self.status()?["outbox"]
            .as_str()
            .map(PathBuf::from)
            .context("the simulation names no outbox")
    }

    /// The mails the gateway sent `address`, as the control API lists them.
    pub fn inbox(&self, address: &str) -> Result<Vec<Value>> {
        let path = format!("/v1/mail/inbox?address={}", address.replace('+', "%2B"));
        Ok(self
            .ok("GET", &path, None)?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Saves the license file of the reply to `message_id` (waited for up to
    /// `wait`) into the server's data directory and imports it.
    pub fn import_reply(&self, server: &str, message_id: &str, wait: Duration) -> Result<Verb> {
        let reply = test_harness::mail::wait_for_reply(&self.outbox()?, message_id, wait)?;
        let license = reply
            .license_file()
            .with_context(|| format!("the reply \"{}\" carries no license file", reply.subject))?;
        let dir = self.program(server)?["data_dir"]
            .as_str()
            .map(PathBuf::from)
            .context("the local server lists no data directory")?;
        let file = dir.join(format!("license-{}.lic", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, license).context("saving the license file")?;
        self.succeed(server, &["import-license-file", &file.to_string_lossy()])
    }

    /// Switches a fault (`POST /v1/faults`); its answer.
    pub fn fault(&self, fault: Value) -> Result<Value> {
        self.ok("POST", "/v1/faults", Some(fault))
    }
}

fn admin_of(url: &str, dir: &Path) -> Result<test_harness::Admin> {
    let token = std::fs::read_to_string(dir.join("admin-token"))
        .with_context(|| format!("reading the admin token in {}", dir.display()))?;
    test_harness::Admin::new(url, token.trim(), &dir.join("ca.pem"))
}

/// A new, empty database on the PostgreSQL server of SOLME_TEST_DATABASE_URL; its URL.
pub fn fresh_database() -> Result<String> {
    let url = std::env::var("SOLME_TEST_DATABASE_URL")
        .map_err(|_| anyhow!("set SOLME_TEST_DATABASE_URL for PostgreSQL"))?;
    let (base, _) = url
        .rsplit_once('/')
        .context("SOLME_TEST_DATABASE_URL has no database name")?;
    let name = format!("solme_journey_{}", uuid::Uuid::new_v4().simple());
    let output = Command::new("psql")
        .arg(&url)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .context("running psql")?;
    if !output.status.success() {
        bail!(
            "creating a database failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(format!("{base}/{name}"))
}
