//! The local server for a test, and the main server it talks to, both started through
//! the shared `test-harness`; and the clients that talk to them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use shared_proto::clock::CLOCK_OFFSET_ENV;
use shared_proto::{License, LicenseFile, ServerIdentity, SolmeSigningKey};
use tempfile::TempDir;
use test_harness::process::spawn_listening;
use test_harness::{Child, MainOptions, MainServer};
use uuid::Uuid;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub use test_harness::net::closed_port;
pub use test_harness::tool_present;

pub fn local_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_local-server"))
}

/// A local server installation in a temporary directory.
pub struct Local {
    pub dir: TempDir,
    pub id: Uuid,
    /// The Solme key the installation trusts, when the test made it.
    pub solme: Option<SolmeSigningKey>,
    serve: Option<Child>,
    pub addr: Option<String>,
    /// Extra environment for every command (proxy variables are always cleared).
    pub env: Vec<(String, String)>,
}

impl Local {
    /// Installs with a test Solme key and CA; the main-server address answers nothing.
    pub fn offline() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let solme = SolmeSigningKey::generate().unwrap();
        let key_path = dir.path().join("solme-public.pem");
        solme.public_key().save(&key_path).unwrap();
        let ca_path = dir.path().join("ca.pem");
        let ca = test_harness::certs::self_signed("test CA", 30).unwrap();
        std::fs::write(&ca_path, ca.cert_pem).unwrap();
        let id = Uuid::new_v4();
        let local = Self {
            dir,
            id,
            solme: Some(solme),
            serve: None,
            addr: None,
            env: Vec::new(),
        };
        let url = format!("https://127.0.0.1:{}", closed_port().unwrap());
        assert_success(&local.init(&[&url], local.data_dir(), &[]));
        local
    }

    /// An offline installation with `serve` running and nothing imported.
    pub fn offline_serving() -> Self {
        let mut local = Self::offline();
        local.serve(&[], &[]);
        local
    }

    /// An offline installation that imported a license file (sequence 1, issued now)
    /// holding `licenses`; `serve` is not running.
    pub fn imported(licenses: Vec<License>) -> Self {
        let local = Self::offline();
        assert_success(&local.import(&local.license_file(1, Utc::now(), licenses)));
        local
    }

    /// An installation as [`Local::imported`] makes it, with `serve` running with the
    /// `extra` arguments.
    pub fn serving(licenses: Vec<License>, extra: &[&str]) -> Self {
        let mut local = Self::imported(licenses);
        local.serve(extra, &[]);
        local
    }

    /// Installs against a running main server, with the given endpoints.
    pub fn for_main(main: &Main, id: Uuid, endpoints: &[String], extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let local = Self {
            dir,
            id,
            solme: None,
            serve: None,
            addr: None,
            env: Vec::new(),
        };
        let endpoints: Vec<&str> = endpoints.iter().map(String::as_str).collect();
        assert_success(&local.init(&endpoints, main.dir.path(), extra));
        local
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(local_bin());
        let (verb, rest) = args.split_first().unwrap();
        cmd.arg(verb)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(rest)
            .env("RUST_LOG", "warn");
        for var in [
            "HTTPS_PROXY",
            "https_proxy",
            "NO_PROXY",
            "no_proxy",
            "LOCAL_SERVER_PROXY",
            CLOCK_OFFSET_ENV,
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `init` for this installation's id against `main_servers`, trusting the
    /// Solme key and the CA kept in `trust_dir` (`solme-public.pem`, `ca.pem`); `extra`
    /// adds flags such as `--force`.
    pub fn init(&self, main_servers: &[&str], trust_dir: &Path, extra: &[&str]) -> Output {
        let id = self.id.to_string();
        let solme = trust_dir.join("solme-public.pem");
        let ca = trust_dir.join("ca.pem");
        let mut args = vec![
            "init",
            "--id",
            &id,
            "--solme-key",
            solme.to_str().unwrap(),
            "--ca-cert",
            ca.to_str().unwrap(),
        ];
        for url in main_servers {
            args.extend(["--main-server", url]);
        }
        args.extend_from_slice(extra);
        self.cli(&args)
    }

    /// Runs a verb (the data directory is added) and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_env(args, &[])
    }

    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().unwrap()
    }

    /// Starts `serve` on a free port and waits until it listens; returns the base URL.
    pub fn serve(&mut self, extra: &[&str], env: &[(&str, &str)]) -> String {
        // A running server is killed, as in a crash: what it answered must survive.
        self.kill();
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--workers", "2"];
        args.extend_from_slice(extra);
        let (child, listening) =
            spawn_listening("local-server", self.command(&args, env), self.data_dir()).unwrap();
        let addr = format!("http://{}", listening["api"].as_str().unwrap());
        self.serve = Some(child);
        self.addr = Some(addr.clone());
        addr
    }

    /// Stops `serve` as an administrator does (SIGTERM): it stores what it queued
    /// before it exits.
    pub fn stop(&mut self) {
        if let Some(mut serve) = self.serve.take() {
            serve.stop().unwrap();
        }
        self.addr = None;
    }

    /// Kills `serve` (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.serve = None;
        self.addr = None;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr.as_deref().expect("serve is running"))
    }

    pub fn status(&self) -> Value {
        self.status_env(&[])
    }

    /// The `keys` of `status --json` alone, to compare before and after a step.
    pub fn status_fields(&self, keys: &[&str]) -> Value {
        let status = self.status();
        let fields = keys.iter().map(|&k| (k.to_owned(), status[k].clone()));
        Value::Object(fields.collect())
    }

    pub fn status_env(&self, env: &[(&str, &str)]) -> Value {
        let out = self.cli_env(&["status", "--json"], env);
        assert_success(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A license file for this server made with the test Solme key.
    pub fn license_file(
        &self,
        sequence: i64,
        issued_at: DateTime<Utc>,
        licenses: Vec<License>,
    ) -> String {
        let identity = ServerIdentity::load(self.data_dir()).unwrap();
        let solme = self.solme.as_ref().expect("offline installation");
        let file = self.license_file_contents(sequence, issued_at, licenses);
        seal(solme, &file, &identity)
    }

    /// What [`Local::license_file`] seals, for a test that changes it first.
    pub fn license_file_contents(
        &self,
        sequence: i64,
        issued_at: DateTime<Utc>,
        licenses: Vec<License>,
    ) -> LicenseFile {
        let identity = ServerIdentity::load(self.data_dir()).unwrap();
        LicenseFile {
            version: shared_proto::messages::MESSAGE_VERSION,
            server_id: self.id,
            answers_request: Uuid::new_v4(),
            recipient: identity.fingerprint(),
            sequence,
            revision: sequence,
            issued_at,
            valid_until: shared_proto::validity::valid_until_for(issued_at),
            customer: "Acme Engineering".into(),
            licenses,
            inherited_borrows: None,
            standby: None,
        }
    }

    /// Writes `text` to a file and imports it.
    pub fn import(&self, text: &str) -> Output {
        self.import_env(text, &[])
    }

    pub fn import_env(&self, text: &str, env: &[(&str, &str)]) -> Output {
        let path = self
            .data_dir()
            .join(format!("license-{}.txt", Uuid::new_v4()));
        std::fs::write(&path, text).unwrap();
        self.cli_env(&["import-license-file", path.to_str().unwrap()], env)
    }
}

/// `file` signed by `solme` and encrypted for `recipient`.
pub fn seal(solme: &SolmeSigningKey, file: &LicenseFile, recipient: &ServerIdentity) -> String {
    shared_proto::license_file::seal(solme, file, &recipient.public_keys()).unwrap()
}

pub fn license(feature: &str, seats: u32) -> License {
    License::perpetual(feature, seats)
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that `out` exited with `code` and that its stdout holds `words`.
pub fn assert_stdout(out: &Output, code: i32, words: &str) {
    assert_exit_and_text(out, code, "stdout", &stdout(out), words);
}

/// Asserts that `out` exited with `code` and that its stderr holds `words`.
pub fn assert_stderr(out: &Output, code: i32, words: &str) {
    assert_exit_and_text(out, code, "stderr", &stderr(out), words);
}

fn assert_exit_and_text(out: &Output, code: i32, stream: &str, text: &str, words: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    assert!(
        text.contains(words),
        "expected {words:?} in {stream}:\n{text}"
    );
}

/// The text of a license file with one character of its signed body changed.
pub fn tampered(text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let body_line = lines
        .iter()
        .position(|l| l.len() > 40 && !l.contains(':'))
        .unwrap();
    let mut chars: Vec<char> = lines[body_line].chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    lines[body_line] = chars.into_iter().collect();
    lines.join("\n")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An HTTP client for the tests.
pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

/// Sends a request with an optional JSON body; returns status and JSON body (Null when empty).
pub async fn call(
    client: &awc::Client,
    method: &str,
    url: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client.request(method, url);
    if let Some(token) = token {
        req = req.insert_header(("Authorization", format!("Bearer {token}")));
    }
    send(req, body).await
}

/// Sends `req`; returns status and JSON body (Null when empty, a string when not JSON).
async fn send(req: awc::ClientRequest, body: Option<Value>) -> (u16, Value) {
    let resp = match body {
        Some(b) => req.send_json(&b).await.unwrap(),
        None => req.send().await.unwrap(),
    };
    read(resp).await
}

/// The status and JSON body of `resp` (Null when empty, a string when not JSON).
async fn read(
    mut resp: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
            + Unpin,
    >,
) -> (u16, Value) {
    let bytes = resp.body().limit(10 * 1024 * 1024).await.unwrap();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (resp.status().as_u16(), value)
}

/// Checks out `feature`; returns (status, body).
pub async fn check_out(client: &awc::Client, local: &Local, feature: &str) -> (u16, Value) {
    call(
        client,
        "POST",
        &local.url("/api/v1/leases"),
        Some(serde_json::json!({"feature": feature, "client": "test-client"})),
        None,
    )
    .await
}

/// Checks out `feature`, asserting that a seat was granted (201); returns the grant.
pub async fn checked_out(client: &awc::Client, local: &Local, feature: &str) -> Value {
    let (status, grant) = check_out(client, local, feature).await;
    assert_eq!(status, 201, "{grant}");
    grant
}

/// Renews a lease; returns (status, body).
pub async fn heartbeat(client: &awc::Client, local: &Local, lease: &str) -> (u16, Value) {
    let url = local.url(&format!("/api/v1/leases/{lease}/heartbeat"));
    call(client, "POST", &url, None, None).await
}

/// Checks a lease in; returns (status, body).
pub async fn check_in(client: &awc::Client, local: &Local, lease: &str) -> (u16, Value) {
    let url = local.url(&format!("/api/v1/leases/{lease}"));
    call(client, "DELETE", &url, None, None).await
}

/// The `in_use` of `feature` in `GET /api/v1/features`.
pub async fn in_use(client: &awc::Client, local: &Local, feature: &str) -> u64 {
    feature_count(client, local, feature, "in_use").await
}

/// The count `field` of `feature` in `GET /api/v1/features` (0 when it is not listed).
pub async fn feature_count(client: &awc::Client, local: &Local, feature: &str, field: &str) -> u64 {
    let (status, list) = call(client, "GET", &local.url("/api/v1/features"), None, None).await;
    assert_eq!(status, 200);
    list.as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == feature)
        .map(|f| f[field].as_u64().unwrap())
        .unwrap_or(0)
}

/// A running main server (the real binary) in a temporary directory.
pub struct Main {
    pub dir: TempDir,
    server: MainServer,
    /// `https://…` of the "443" and the "8080" listener.
    pub sync: Vec<String>,
}

impl Main {
    /// Initialises and starts a main server; `None` (with a notice) when not built.
    pub fn start() -> Option<Self> {
        let built = test_harness::binary("main-server").is_ok();
        if !tool_present(
            built,
            "the main-server binary",
            "run `cargo test --workspace`",
        ) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let options = MainOptions {
            workers: Some(2),
            ..MainOptions::default()
        };
        let server = MainServer::start(dir.path(), options).unwrap();
        Some(Self {
            sync: server.sync_urls(),
            server,
            dir,
        })
    }

    /// A main server as [`Main::start`] starts it, with a new license server id holding
    /// `feature` × `seats`, and an installation for that id against both endpoints.
    pub fn start_with_local(feature: &str, seats: u32) -> Option<(Self, Local)> {
        let main = Self::start()?;
        let id = main.new_server(feature, seats);
        let local = Local::for_main(&main, id, &main.sync, &[]);
        Some((main, local))
    }

    /// Restarts `serve` on the same ports (installed local servers still find it).
    pub fn restart(&mut self) {
        self.restart_with_clock(None);
    }

    /// Restarts `serve` on the same ports with its clock moved by `offset`.
    pub fn restart_with_clock(&mut self, offset: Option<&str>) {
        self.server.restart_with_clock(offset).unwrap();
    }

    pub fn stop(&mut self) {
        self.server.stop().unwrap();
    }

    /// One admin API call (HTTPS, trusting only the main server's CA): status and
    /// JSON body.
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.server
            .admin()
            .unwrap()
            .call(method, path, body)
            .unwrap()
    }

    /// A customer with one license server id holding `feature` × `seats`.
    pub fn new_server(&self, feature: &str, seats: u32) -> Uuid {
        let admin = self.server.admin().unwrap();
        let customer = admin.customer("Acme", &["ops@acme.example"]).unwrap();
        let id = admin.server(&customer).unwrap();
        admin.add_license(id, feature, seats).unwrap();
        id
    }
}

/// A request to the manager API (`path` below `/manager/v1/`) with the
/// `X-Solme-Manager` header the manager page sends.
pub fn manager_request(
    client: &awc::Client,
    local: &Local,
    method: &str,
    path: &str,
) -> awc::ClientRequest {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    client
        .request(method, local.url(&format!("/manager/v1/{path}")))
        .insert_header(("X-Solme-Manager", "1"))
}

/// A manager API call as the manager page makes it (with the `X-Solme-Manager` header).
pub async fn manager_call(
    client: &awc::Client,
    local: &Local,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    send(manager_request(client, local, method, path), body).await
}

/// Imports a license file through the manager API as the page does (raw text with the
/// manager header); returns (status, body).
pub async fn manager_import(client: &awc::Client, local: &Local, text: String) -> (u16, Value) {
    let resp = manager_request(client, local, "POST", "license-file")
        .send_body(text)
        .await
        .unwrap();
    read(resp).await
}
