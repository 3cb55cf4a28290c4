//! The three programs as the harness drives them: start, stop, restart with a moved
//! clock, and talk to them the way an operator, a customer or a client program would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use shared_proto::admin_api::AdminUrl;
use shared_proto::ApiError;
use uuid::Uuid;

use crate::process::{binary, run, spawn_listening, Child, Output};

/// The clock-offset variable every program reads.
const CLOCK_ENV: &str = shared_proto::clock::CLOCK_OFFSET_ENV;

/// A refusal over HTTP: the status and the `{code, message}` body.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: u16,
    pub error: ApiError,
}

fn agent() -> ureq::Agent {
    crate::tls::plain_agent().build()
}

/// Turns a ureq result into the JSON answer, or the refusal with its code.
fn answer(result: Result<ureq::Response, ureq::Error>) -> Result<Result<Value, Refusal>> {
    match result {
        Ok(response) => {
            let text = response.into_string().context("reading an answer")?;
            if text.trim().is_empty() {
                return Ok(Ok(Value::Null));
            }
            Ok(Ok(
                serde_json::from_str(&text).context("an answer was not JSON")?
            ))
        }
        Err(ureq::Error::Status(status, response)) => {
            let text = response.into_string().unwrap_or_default();
            let error: ApiError = serde_json::from_str(&text).with_context(|| {
                format!("status {status} without a {{code, message}} body: {text}")
            })?;
            Ok(Err(Refusal { status, error }))
        }
        Err(e) => Err(anyhow!(e).context("HTTP request failed")),
    }
}

fn ok(result: Result<Value, Refusal>) -> Result<Value> {
    result.map_err(|r| anyhow!("refused with {}: {}", r.error.code, r.error.message))
}

/// How to start a main server.
#[derive(Debug, Clone, Default)]
pub struct MainOptions {
    /// `postgres://…`; SQLite in the data directory when None.
    pub database_url: Option<String>,
    /// `SOLME_CLOCK_OFFSET` for the process.
    pub clock_offset: Option<String>,
    /// `--clock-file`: a live simulated clock (instead of `clock_offset`).
    pub clock_file: Option<PathBuf>,
    /// `--workers` for the sync listeners (the program's default when None).
    pub workers: Option<usize>,
    /// `--admin-plain-http`: the admin API over plain HTTP (on loopback) instead of
    /// HTTPS.
    pub admin_plain_http: bool,
}

/// A running `main-server serve`, with the addresses it reported.
#[derive(Debug)]
pub struct MainServer {
    pub dir: PathBuf,
    /// The "443" and the "8080" listener, in that order.
    pub sync: Vec<SocketAddr>,
    /// The admin API's address and scheme, as listening.json says them.
    pub admin: AdminUrl,
    options: MainOptions,
    child: Child,
}

impl MainServer {
    /// `main-server init` then `serve` on loopback port 0 (two sync listeners and admin).
    pub fn start(dir: &Path, options: MainOptions) -> Result<Self> {
        std::fs::create_dir_all(dir).context("creating the main server's directory")?;
        if !dir.join("admin-token").exists() {
            let mut init = Command::new(binary("main-server")?);
            init.arg("init").arg("--data-dir").arg(dir);
            if let Some(url) = &options.database_url {
                init.arg("--database-url").arg(url);
            }
            run(init)?.assert_success().context("main-server init")?;
        }
        Self::serve(dir, options, None)
    }

    /// A second `serve` process with the same keys on the same database (scale-out).
    pub fn another_process(&self, dir: &Path) -> Result<Self> {
        copy_keys(&self.dir, dir)?;
        Self::serve(dir, self.options.clone(), None)
    }

    /// `serve` on a data directory set up before (by [`MainServer::start`] or
    /// [`MainServer::another_process`]) on the addresses it had, e.g. when a simulation
    /// is resumed: fails when one of them is taken.
    pub fn start_at(
        dir: &Path,
        options: MainOptions,
        sync: &[SocketAddr],
        admin: AdminUrl,
    ) -> Result<Self> {
        Self::serve(dir, options, Some((sync, admin)))
    }

    /// Starts `serve`: on loopback port 0, or on the addresses of a previous run, so
    /// that local servers configured for it find it again after a restart.
    fn serve(
        dir: &Path,
        options: MainOptions,
        previous: Option<(&[SocketAddr], AdminUrl)>,
    ) -> Result<Self> {
        let (sync, admin) = match previous {
            Some((sync, admin)) => (
                sync.iter().map(|a| a.to_string()).collect(),
                admin.addr.to_string(),
            ),
            None => (
                vec!["127.0.0.1:0".to_string(); 2],
                "127.0.0.1:0".to_string(),
            ),
        };
        let mut serve = Command::new(binary("main-server")?);
        serve.arg("serve").arg("--data-dir").arg(dir);
        for address in &sync {
            serve.arg("--listen").arg(address);
        }
        serve.arg("--admin-listen").arg(&admin);
        if let Some(url) = &options.database_url {
            serve.arg("--database-url").arg(url);
        }
        if let Some(workers) = options.workers {
            serve.arg("--workers").arg(workers.to_string());
        }
        if options.admin_plain_http {
            serve.arg("--admin-plain-http");
        }
        match &options.clock_offset {
            Some(offset) => serve.env(CLOCK_ENV, offset),
            None => serve.env_remove(CLOCK_ENV),
        };
        if let Some(file) = &options.clock_file {
            serve.arg("--clock-file").arg(file);
        }
        let (child, listening) = spawn_listening("main-server", serve, dir)?;
        let sync = listening["sync"]
            .as_array()
            .context("listening.json has no sync addresses")?
            .iter()
            .filter_map(|a| a.as_str()?.parse().ok())
            .collect::<Vec<SocketAddr>>();
        let admin = listening["admin"]
            .as_str()
            .and_then(|a| a.parse::<AdminUrl>().ok())
            .context("listening.json has no admin URL")?;
        if sync.len() != 2 {
            bail!("expected two sync listeners, got {sync:?}");
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            sync,
            admin,
            options,
            child,
        })
    }

    /// Stops the process and starts it again, on the same ports, with its clock moved
    /// by `offset`.
    pub fn restart_with_clock(&mut self, offset: Option<&str>) -> Result<()> {
        self.child.stop()?;
        let mut options = self.options.clone();
        options.clock_offset = offset.map(str::to_string);
        *self = Self::serve(&self.dir.clone(), options, Some((&self.sync, self.admin)))?;
        Ok(())
    }

    /// Stops the process (the data stays).
    pub fn stop(&mut self) -> Result<()> {
        self.child.stop()
    }

    /// Kills the process at once (SIGKILL), as a crash would (the data stays).
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Starts a stopped server again, on the same ports.
    pub fn start_again(&mut self) -> Result<()> {
        *self = Self::serve(
            &self.dir.clone(),
            self.options.clone(),
            Some((&self.sync, self.admin)),
        )?;
        Ok(())
    }

    /// `https://127.0.0.1:PORT` of the "443" and the "8080" listener.
    pub fn sync_urls(&self) -> Vec<String> {
        self.sync.iter().map(|a| format!("https://{a}")).collect()
    }

    /// `https://127.0.0.1:PORT` (`http://` with `admin_plain_http`).
    pub fn admin_url(&self) -> String {
        self.admin.to_string()
    }

    /// The CA certificate clients of this server pin (`DATA_DIR/ca.pem`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.join("admin-token")
    }

    /// The mail gateway's token `init` made (role `gateway`: the mail endpoints only).
    pub fn gateway_token_file(&self) -> PathBuf {
        self.dir.join("gateway-token")
    }

    /// The operator token `init` made.
    pub fn token(&self) -> Result<String> {
        let token = shared_proto::files::read_secret(&self.token_file())?;
        Ok(token.expose_secret().to_owned())
    }

    pub fn log(&self) -> String {
        self.child.log()
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// An operator's client of the admin API (trusting only this server's CA).
    pub fn admin(&self) -> Result<Admin> {
        Admin::new(&self.admin_url(), &self.token()?, &self.ca_file())
    }

    /// Runs `main-server admin …` against this server.
    pub fn admin_cli(&self, args: &[&str]) -> Result<Output> {
        let mut command = Command::new(binary("main-server")?);
        command
            .arg("admin")
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args);
        run(command)
    }
}

/// Copies what `serve` needs from the data directory `from` made by `init` to `to`, so
/// that a second process on the same database is the same server (scale-out).
pub fn copy_keys(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).context("creating a directory")?;
    for file in [
        "solme-signing.pem",
        "solme-public.pem",
        "ca.pem",
        "tls-cert.pem",
        "tls-key.pem",
        "admin-token",
        "gateway-token",
    ] {
        std::fs::copy(from.join(file), to.join(file)).with_context(|| format!("copying {file}"))?;
    }
    Ok(())
}

/// The admin API, as the operator CLI and console use it.
#[derive(Clone, Debug)]
pub struct Admin {
    base: String,
    /// `Debug` prints it redacted.
    token: SecretString,
    agent: ureq::Agent,
}

impl Admin {
    /// A client of the admin API at `base` with `token`, whose HTTPS trusts only the
    /// CA certificate in `ca_file`: the one way the tests call an admin API.
    pub fn new(base: &str, token: &str, ca_file: &Path) -> Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            token: SecretString::from(token.to_string()),
            agent: crate::tls::agent(ca_file)?,
        })
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("{}{path}", self.base))
            .set(
                "Authorization",
                &format!("Bearer {}", self.token.expose_secret()),
            )
    }

    pub fn get(&self, path: &str) -> Result<Result<Value, Refusal>> {
        answer(self.request("GET", path).call())
    }

    pub fn send(&self, method: &str, path: &str, body: Value) -> Result<Result<Value, Refusal>> {
        answer(self.request(method, path).send_json(body))
    }

    /// Any call, for tests of the status codes: `(status, JSON body or null)`.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let request = self.request(method, path);
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let (status, response) = match result {
            Ok(response) => (response.status(), response),
            Err(ureq::Error::Status(status, response)) => (status, response),
            Err(e) => return Err(anyhow!(e).context("HTTP request failed")),
        };
        let text = response.into_string().context("reading an answer")?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// A customer with contact addresses; returns its id.
    pub fn customer(&self, name: &str, emails: &[&str]) -> Result<String> {
        let customer = ok(self.send(
            "POST",
            "/admin/v1/customers",
            json!({"name": name, "emails": emails}),
        )?)?;
        customer["id"]
            .as_str()
            .map(str::to_string)
            .or_else(|| customer["id"].as_i64().map(|i| i.to_string()))
            .context("the customer has no id")
    }

    /// Allocates a license server id to a customer.
    pub fn server(&self, customer_id: &str) -> Result<Uuid> {
        let id: Value = customer_id
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(customer_id));
        let server = ok(self.send("POST", "/admin/v1/servers", json!({"customer_id": id}))?)?;
        server["server_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .context("the server has no server_id")
    }

    /// Adds a license; returns its id.
    pub fn add_license(&self, server: Uuid, feature: &str, seats: u32) -> Result<Value> {
        let license = ok(self.send(
            "POST",
            &format!("/admin/v1/servers/{server}/licenses"),
            json!({"feature": feature, "seats": seats}),
        )?)?;
        Ok(license["id"].clone())
    }

    pub fn change_seats(&self, server: Uuid, license: &Value, seats: u32) -> Result<()> {
        ok(self.send(
            "PATCH",
            &format!("/admin/v1/servers/{server}/licenses/{}", id_text(license)),
            json!({"seats": seats}),
        )?)?;
        Ok(())
    }

    pub fn remove_license(&self, server: Uuid, license: &Value) -> Result<()> {
        ok(answer(
            self.request(
                "DELETE",
                &format!("/admin/v1/servers/{server}/licenses/{}", id_text(license)),
            )
            .call(),
        )?)?;
        Ok(())
    }

    pub fn show(&self, server: Uuid) -> Result<Value> {
        ok(self.get(&format!("/admin/v1/servers/{server}"))?)
    }

    pub fn clear_key(&self, server: Uuid, reason: &str) -> Result<Value> {
        ok(self.send(
            "POST",
            &format!("/admin/v1/servers/{server}/key-clear"),
            json!({"reason": reason}),
        )?)
    }

    pub fn key_clear_requests(&self, status: &str) -> Result<Vec<Value>> {
        let list = ok(self.get(&format!("/admin/v1/key-clear-requests?status={status}"))?)?;
        Ok(list.as_array().cloned().unwrap_or_default())
    }

    pub fn approve(&self, request: &Value) -> Result<Value> {
        ok(self.send(
            "POST",
            &format!(
                "/admin/v1/key-clear-requests/{}/approve",
                id_text(&request["id"])
            ),
            // No mail server in front of these gateways writes Authentication-Results,
            // so every request's sender is "not checked": the operator overrides.
            json!({"reason": "customer reinstalled the server", "override_unauthenticated": true}),
        )?)
    }

    pub fn audit(&self) -> Result<Vec<Value>> {
        let list = ok(self.get("/admin/v1/audit?limit=1000")?)?;
        Ok(list.as_array().cloned().unwrap_or_default())
    }
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A local license server: its data directory, and `serve` when running.
#[derive(Debug)]
pub struct LocalServer {
    pub dir: PathBuf,
    pub id: Uuid,
    clock_offset: Option<String>,
    /// `--clock-file`: a live simulated clock.
    clock_file: Option<PathBuf>,
    /// A `faketime -f` offset: the operating system's clock as this server sees it.
    faketime: Option<String>,
    serve: Option<(Child, SocketAddr)>,
}

impl LocalServer {
    /// `local-server init` for `id`, pointed at the main server's two listeners.
    pub fn init(dir: &Path, id: Uuid, main: &MainServer) -> Result<Self> {
        Self::init_with(dir, id, main, &main.sync_urls(), &[])
    }

    /// `init` with explicit endpoints and extra flags (e.g. `--force`, `--proxy`).
    pub fn init_with(
        dir: &Path,
        id: Uuid,
        main: &MainServer,
        endpoints: &[String],
        extra: &[&str],
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).context("creating the local server's directory")?;
        let mut init = Command::new(binary("local-server")?);
        init.arg("init")
            .arg("--data-dir")
            .arg(dir)
            .arg("--id")
            .arg(id.to_string())
            .arg("--solme-key")
            .arg(main.dir.join("solme-public.pem"))
            .arg("--ca-cert")
            .arg(main.dir.join("ca.pem"))
            .args(extra);
        for endpoint in endpoints {
            init.arg("--main-server").arg(endpoint);
        }
        run(init)?.assert_success().context("local-server init")?;
        Ok(Self {
            dir: dir.to_path_buf(),
            id,
            clock_offset: None,
            clock_file: None,
            faketime: None,
            serve: None,
        })
    }

    /// A data directory `init` made before (e.g. by a simulation being resumed), not
    /// serving yet.
    pub fn existing(dir: &Path, id: Uuid) -> Self {
        Self {
            dir: dir.to_path_buf(),
            id,
            clock_offset: None,
            clock_file: None,
            faketime: None,
            serve: None,
        }
    }

    /// Moves this server's clock for its next commands and `serve` (restart to apply).
    pub fn set_clock(&mut self, offset: Option<&str>) {
        self.clock_offset = offset.map(str::to_string);
    }

    /// Runs this server's next commands and `serve` on the simulated clock that
    /// follows `file` (`--clock-file`); restart to apply.
    pub fn set_clock_file(&mut self, file: Option<&Path>) {
        self.clock_file = file.map(Path::to_path_buf);
    }

    /// Runs this server's next commands and `serve` with the operating system's clock
    /// moved by `offset` (libfaketime, e.g. `+367d`); restart to apply. The library is
    /// preloaded into the server itself (not run through the `faketime` wrapper, which
    /// forks), so stopping the process stops the server.
    pub fn set_faketime(&mut self, offset: Option<&str>) {
        self.faketime = offset.map(str::to_string);
    }

    fn command(&self) -> Result<Command> {
        let mut command = Command::new(binary("local-server")?);
        if let Some(offset) = &self.faketime {
            let library =
                libfaketime().context("libfaketime is not installed (Debian package faketime)")?;
            command.env("LD_PRELOAD", library).env("FAKETIME", offset);
        }
        match &self.clock_offset {
            Some(offset) => command.env(CLOCK_ENV, offset),
            None => command.env_remove(CLOCK_ENV),
        };
        if let Some(file) = &self.clock_file {
            // A global flag: it stands before the verb.
            command.arg("--clock-file").arg(file);
        }
        command.env_remove("HTTPS_PROXY").env_remove("https_proxy");
        Ok(command)
    }

    /// Runs a manager verb: `local-server VERB --data-dir DIR ARGS…`.
    pub fn cli(&self, verb: &str, args: &[&str]) -> Result<Output> {
        let mut command = self.command()?;
        command
            .arg(verb)
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args);
        run(command)
    }

    /// Runs a manager verb and fails unless it exits 0.
    pub fn succeed(&self, verb: &str, args: &[&str]) -> Result<Output> {
        self.cli(verb, args)?
            .assert_success()
            .with_context(|| format!("local-server {verb}"))
    }

    /// `status --json`.
    pub fn status(&self) -> Result<Value> {
        let output = self.cli("status", &["--json"])?.assert_success()?;
        serde_json::from_str(&output.stdout).context("status --json was not JSON")
    }

    /// Starts `serve` on a loopback port 0.
    pub fn serve(&mut self) -> Result<()> {
        self.serve_with(&[])
    }

    pub fn serve_with(&mut self, extra: &[&str]) -> Result<()> {
        self.serve_at("127.0.0.1:0", extra)
    }

    /// Starts `serve` listening on `listen`: port 0, or the address of an earlier run so
    /// that its clients find it again after a restart.
    pub fn serve_at(&mut self, listen: &str, extra: &[&str]) -> Result<()> {
        self.stop()?;
        let mut command = self.command()?;
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--listen", listen])
            .args(extra);
        let (child, listening) = spawn_listening("local-server", command, &self.dir)?;
        let api = listening["api"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .context("listening.json has no api address")?;
        self.serve = Some((child, api));
        Ok(())
    }

    pub fn stop(&mut self) -> Result<()> {
        if let Some((mut child, _)) = self.serve.take() {
            child.stop()?;
        }
        Ok(())
    }

    /// Kills `serve` at once (SIGKILL), as a crash would (the data stays).
    pub fn kill(&mut self) {
        if let Some((mut child, _)) = self.serve.take() {
            child.kill();
        }
    }

    /// The process id of `serve`, when running.
    pub fn pid(&self) -> Option<u32> {
        self.serve.as_ref().map(|(child, _)| child.pid())
    }

    pub fn api_url(&self) -> Result<String> {
        let (_, api) = self
            .serve
            .as_ref()
            .context("the local server is not serving")?;
        Ok(format!("http://{api}"))
    }

    pub fn log(&self) -> String {
        self.serve
            .as_ref()
            .map(|(c, _)| c.log())
            .unwrap_or_default()
    }

    /// A client program checks out a seat of `feature`.
    pub fn checkout(&self, feature: &str, client: &str) -> Result<Result<Value, Refusal>> {
        answer(
            agent()
                .post(&format!("{}/api/v1/leases", self.api_url()?))
                .send_json(json!({"feature": feature, "client": client})),
        )
    }

    /// Checks a lease back in.
    pub fn checkin(&self, lease_id: &str) -> Result<Result<Value, Refusal>> {
        answer(
            agent()
                .delete(&format!("{}/api/v1/leases/{lease_id}", self.api_url()?))
                .call(),
        )
    }

    pub fn heartbeat(&self, lease_id: &str) -> Result<Result<Value, Refusal>> {
        answer(
            agent()
                .post(&format!(
                    "{}/api/v1/leases/{lease_id}/heartbeat",
                    self.api_url()?
                ))
                .send_json(json!({})),
        )
    }

    /// `GET /api/v1/features`.
    pub fn features(&self) -> Result<Value> {
        ok(answer(
            agent()
                .get(&format!("{}/api/v1/features", self.api_url()?))
                .call(),
        )?)
    }
}

/// The multi-threaded libfaketime library, where Debian installs it.
pub fn libfaketime() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("faketime/libfaketimeMT.so.1"))
        .find(|path| path.is_file())
}

/// The address every test gateway serves.
pub const LICENSING: &str = "licensing@solme.example";

/// Where a test gateway keeps its files and finds its main server.
pub struct GatewayArgs<'a> {
    pub data_dir: &'a Path,
    /// The main server's admin API (it need not be up).
    pub main_url: &'a str,
    /// The CA of an `https://` main server's certificate.
    pub main_ca: Option<&'a Path>,
    pub token_file: &'a Path,
    pub outbox: &'a Path,
    /// The customer portal's address (`--portal-url`): with it the gateway mails the
    /// portal's sign-in links.
    pub portal_url: Option<&'a str>,
}

impl GatewayArgs<'_> {
    /// The `mail-gateway serve` command line: [`LICENSING`], SMTP and HTTP on free
    /// loopback ports, replies to the outbox unless `extra` names `--smtp-relay`. A flag
    /// in `extra` replaces the default of the same name; `extra` ends the line.
    pub fn serve(&self, extra: &[&str]) -> Vec<String> {
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut defaults: Vec<(&str, String)> = vec![
            ("--data-dir", path(self.data_dir)),
            ("--address", LICENSING.to_owned()),
            ("--main-server", self.main_url.to_owned()),
            ("--token-file", path(self.token_file)),
            ("--smtp-listen", "127.0.0.1:0".to_owned()),
            ("--http-listen", "127.0.0.1:0".to_owned()),
        ];
        if let Some(ca) = self.main_ca {
            defaults.push(("--main-server-ca", path(ca)));
        }
        if let Some(portal) = self.portal_url {
            defaults.push(("--portal-url", portal.to_owned()));
        }
        if !extra.contains(&"--smtp-relay") {
            defaults.push(("--outbox", path(self.outbox)));
        }
        let mut args = vec!["serve".to_owned()];
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                args.extend([flag.to_owned(), value]);
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

/// A running `mail-gateway serve` writing its replies to an outbox directory.
#[derive(Debug)]
pub struct MailGateway {
    pub dir: PathBuf,
    pub smtp: SocketAddr,
    pub http: SocketAddr,
    pub address: String,
    child: Child,
}

impl MailGateway {
    /// Starts the gateway for `licensing@solme.example` on loopback, outbox in `dir/outbox`.
    pub fn start(dir: &Path, main: &MainServer) -> Result<Self> {
        Self::start_with(dir, main, &[])
    }

    /// [`MailGateway::start`] with `extra` flags; with `--smtp-relay` among them the
    /// mails go to that relay instead of the outbox. The customer portal is the main
    /// server's first sync listener, so contacts who ask get their sign-in links.
    pub fn start_with(dir: &Path, main: &MainServer, extra: &[&str]) -> Result<Self> {
        std::fs::create_dir_all(dir.join("outbox")).context("creating the outbox")?;
        let args = GatewayArgs {
            data_dir: dir,
            main_url: &main.admin_url(),
            main_ca: Some(&main.ca_file()),
            // Its own token (role gateway), as an installation runs it: not the first
            // admin's, which would give every email sync full admin rights.
            token_file: &main.gateway_token_file(),
            outbox: &dir.join("outbox"),
            portal_url: main.sync_urls().first().map(String::as_str),
        }
        .serve(extra);
        let mut command = Command::new(binary("mail-gateway")?);
        command.args(args);
        let (child, listening) = spawn_listening("mail-gateway", command, dir)?;
        let parse = |key: &str| -> Result<SocketAddr> {
            listening[key]
                .as_str()
                .and_then(|a| a.parse().ok())
                .with_context(|| format!("listening.json has no {key} address"))
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            smtp: parse("smtp")?,
            http: parse("http")?,
            address: LICENSING.to_owned(),
            child,
        })
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.join("outbox")
    }

    /// Stops the gateway cleanly (SIGTERM, then wait).
    pub fn stop(&mut self) -> Result<()> {
        self.child.stop()
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Kills the gateway at once (SIGKILL), as a crash would (the spool stays).
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// The status page's JSON (`/status`).
    pub fn status(&self) -> Result<Value> {
        let text = agent()
            .get(&format!("http://{}/status", self.http))
            .call()
            .context("reading the gateway's status")?
            .into_string()
            .context("reading the gateway's status")?;
        serde_json::from_str(&text).context("the gateway's status is not JSON")
    }

    pub fn log(&self) -> String {
        self.child.log()
    }
}
