//! Starting the programs, waiting for them, and talking to them.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use openssl::asn1::Asn1Time;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509NameBuilder, X509};
use serde_json::Value;
use shared_proto::{License, LicenseFile, ServerIdentity, SolmeSigningKey};
use tempfile::TempDir;
use uuid::Uuid;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// How long to wait for a program to come up.
const STARTUP_DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);

pub fn local_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_local-server"))
}

/// The main server's binary, built beside ours by `cargo test --workspace`.
/// A tool a test needs is missing: outside CI the test is skipped with a notice; in CI
/// (the `CI` environment variable set), which installs them all, it fails.
pub fn missing(what: &str, how: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is missing in CI ({how})");
    }
    eprintln!("NOTICE: {what} not found ({how}); skipping this test");
}

pub fn main_bin() -> Option<PathBuf> {
    let path = local_bin().with_file_name("main-server");
    if path.exists() {
        Some(path)
    } else {
        missing(&path.display().to_string(), "run `cargo test --workspace`");
        None
    }
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.0.kill());
        drop(self.0.wait());
    }
}

/// A TCP port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits for `path` to appear and parse as JSON.
pub fn wait_for_json(path: &Path, child: &mut Child) -> Value {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(v) = serde_json::from_str(&text) {
                return v;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the program exited ({status}) before writing {}",
                path.display()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear in time",
            path.display()
        );
        std::thread::sleep(POLL);
    }
}

/// Polls `check` until it returns `Some`, or fails the test after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(POLL).await;
    }
}

/// A self-signed CA certificate (PEM), enough for `init` when no main server runs.
pub fn throwaway_ca_pem() -> Vec<u8> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "test CA").unwrap();
    let name = name.build();
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    cert.build().to_pem().unwrap()
}

/// A local server installation in a temporary directory.
pub struct Local {
    pub dir: TempDir,
    pub id: Uuid,
    /// The Solme key the installation trusts, when the test made it.
    pub solme: Option<SolmeSigningKey>,
    serve: Option<Proc>,
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
        std::fs::write(&ca_path, throwaway_ca_pem()).unwrap();
        let id = Uuid::new_v4();
        let local = Self {
            dir,
            id,
            solme: Some(solme),
            serve: None,
            addr: None,
            env: Vec::new(),
        };
        let url = format!("https://127.0.0.1:{}", closed_port());
        let out = local.cli(&[
            "init",
            "--id",
            &id.to_string(),
            "--main-server",
            &url,
            "--solme-key",
            key_path.to_str().unwrap(),
            "--ca-cert",
            ca_path.to_str().unwrap(),
        ]);
        assert_success(&out);
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
        let solme = main.dir.path().join("solme-public.pem");
        let ca = main.dir.path().join("ca.pem");
        let mut args = vec![
            "init".to_owned(),
            "--id".to_owned(),
            id.to_string(),
            "--solme-key".to_owned(),
            solme.to_str().unwrap().to_owned(),
            "--ca-cert".to_owned(),
            ca.to_str().unwrap().to_owned(),
        ];
        for e in endpoints {
            args.push("--main-server".into());
            args.push(e.clone());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_success(&local.cli(&refs));
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
            "SOLME_CLOCK_OFFSET",
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

    /// Runs a verb (the data directory is added) and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_env(args, &[])
    }

    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().unwrap()
    }

    /// Starts `serve` on a free port and waits until it listens; returns the base URL.
    pub fn serve(&mut self, extra: &[&str], env: &[(&str, &str)]) -> String {
        self.stop();
        let listening = self.data_dir().join("listening.json");
        drop(std::fs::remove_file(&listening));
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--workers", "2"];
        args.extend_from_slice(extra);
        let mut child = self
            .command(&args, env)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let v = wait_for_json(&listening, &mut child);
        let addr = format!("http://{}", v["api"].as_str().unwrap());
        self.serve = Some(Proc(child));
        self.addr = Some(addr.clone());
        addr
    }

    /// Kills `serve` (as a crash would).
    pub fn stop(&mut self) {
        self.serve = None;
        self.addr = None;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr.as_deref().expect("serve is running"))
    }

    pub fn status(&self) -> Value {
        self.status_env(&[])
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
        let file = LicenseFile {
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
        };
        shared_proto::license_file::seal(solme, &file, &identity.public_keys()).unwrap()
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

pub fn license(feature: &str, seats: u32) -> License {
    License {
        feature: feature.into(),
        seats,
        valid_from: None,
        valid_until: None,
        max_borrow_hours: None,
    }
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
    let mut resp = match body {
        Some(b) => req.send_json(&b).await.unwrap(),
        None => req.send().await.unwrap(),
    };
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

/// The `in_use` of `feature` in `GET /api/v1/features`.
pub async fn in_use(client: &awc::Client, local: &Local, feature: &str) -> u64 {
    let (status, list) = call(client, "GET", &local.url("/api/v1/features"), None, None).await;
    assert_eq!(status, 200);
    list.as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == feature)
        .map(|f| f["in_use"].as_u64().unwrap())
        .unwrap_or(0)
}

/// A running main server in a temporary directory.
pub struct Main {
    pub dir: TempDir,
    proc: Option<Proc>,
    pub sync: Vec<String>,
    pub admin: String,
    pub token: String,
}

impl Main {
    /// Initialises and starts a main server; `None` (with a notice) when not built.
    pub fn start() -> Option<Self> {
        let bin = main_bin()?;
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(&bin)
            .args(["init", "--data-dir"])
            .arg(dir.path())
            .env_remove("SOLME_CLOCK_OFFSET")
            .output()
            .unwrap();
        assert_success(&out);
        let token = std::fs::read_to_string(dir.path().join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        let mut main = Self {
            dir,
            proc: None,
            sync: Vec::new(),
            admin: String::new(),
            token,
        };
        main.restart();
        Some(main)
    }

    /// (Re)starts `serve`, on new ports.
    pub fn restart(&mut self) {
        self.restart_env(&[]);
    }

    /// (Re)starts `serve` with extra environment (e.g. a moved clock).
    pub fn restart_env(&mut self, env: &[(&str, &str)]) {
        self.proc = None;
        let listening = self.dir.path().join("listening.json");
        drop(std::fs::remove_file(&listening));
        // A restart keeps the ports, so installed local servers still find it.
        let addr = |url: &str| url.rsplit("://").next().unwrap_or("127.0.0.1:0").to_owned();
        let (first, second, admin) = match self.sync.as_slice() {
            [a, b] => (addr(a), addr(b), addr(&self.admin)),
            _ => (
                "127.0.0.1:0".into(),
                "127.0.0.1:0".into(),
                "127.0.0.1:0".into(),
            ),
        };
        let mut child = Command::new(main_bin().unwrap())
            .args(["serve", "--data-dir"])
            .arg(self.dir.path())
            .args([
                "--listen",
                &first,
                "--listen",
                &second,
                "--admin-listen",
                &admin,
            ])
            .env_remove("SOLME_CLOCK_OFFSET")
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let v = wait_for_json(&listening, &mut child);
        self.sync = v["sync"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| format!("https://{}", a.as_str().unwrap()))
            .collect();
        self.admin = format!("http://{}", v["admin"].as_str().unwrap());
        self.proc = Some(Proc(child));
    }

    pub fn stop(&mut self) {
        self.proc = None;
    }

    pub async fn admin(
        &self,
        client: &awc::Client,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        call(
            client,
            method,
            &format!("{}{path}", self.admin),
            body,
            Some(&self.token),
        )
        .await
    }

    /// A customer with one license server id holding `feature` × `seats`.
    pub async fn new_server(&self, client: &awc::Client, feature: &str, seats: u32) -> Uuid {
        let (s, customer) = self
            .admin(
                client,
                "POST",
                "/admin/v1/customers",
                Some(serde_json::json!({"name": "Acme", "emails": ["ops@acme.example"]})),
            )
            .await;
        assert_eq!(s, 201, "{customer}");
        let (s, server) = self
            .admin(
                client,
                "POST",
                "/admin/v1/servers",
                Some(serde_json::json!({"customer_id": customer["id"]})),
            )
            .await;
        assert_eq!(s, 201, "{server}");
        let id: Uuid = server["server_id"].as_str().unwrap().parse().unwrap();
        let (s, lic) = self
            .admin(
                client,
                "POST",
                &format!("/admin/v1/servers/{id}/licenses"),
                Some(serde_json::json!({"feature": feature, "seats": seats})),
            )
            .await;
        assert_eq!(s, 201, "{lic}");
        id
    }
}

/// A manager API call as the manager page makes it (with the `X-Solme-Manager` header).
pub async fn manager_call(
    client: &awc::Client,
    local: &Local,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let req = client
        .request(method, local.url(&format!("/manager/v1/{path}")))
        .insert_header(("X-Solme-Manager", "1"));
    let mut resp = match body {
        Some(b) => req.send_json(&b).await.unwrap(),
        None => req.send().await.unwrap(),
    };
    let bytes = resp.body().limit(10 * 1024 * 1024).await.unwrap();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (resp.status().as_u16(), value)
}
