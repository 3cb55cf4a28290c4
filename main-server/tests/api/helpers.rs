//! Starting the real `main-server` binary for a test, and the clients that talk to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use chrono::{DateTime, Utc};
use diesel::{Connection, PgConnection, RunQueryDsl};
use openssl::ssl::{SslConnector, SslMethod};
use serde_json::{json, Value};
use shared_proto::admin_api::Listening;
use shared_proto::{LicenseFile, ServerIdentity, SolmePublicKey, SyncRequest};
use tempfile::TempDir;
use uuid::Uuid;

pub const BIN: &str = env!("CARGO_BIN_EXE_main-server");
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Env var naming a PostgreSQL server for the PostgreSQL tests (CI sets it).
pub const PG_ENV: &str = "SOLME_TEST_DATABASE_URL";

/// Runs `main-server init` in a fresh directory.
pub fn init_dir(database_url: Option<&str>) -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = Command::new(BIN);
    cmd.args(["init", "--data-dir"]).arg(dir.path());
    if let Some(url) = database_url {
        cmd.args(["--database-url", url]);
    }
    let out = cmd.output().expect("run init");
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// A running `serve` process, killed on drop.
pub struct ServeProcess {
    child: Child,
    pub listening: Listening,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` on port 0 for `dir` and waits for its `listening.json`.
pub fn serve(dir: &Path, database_url: Option<&str>, clock_offset: Option<&str>) -> ServeProcess {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--data-dir"])
        .arg(dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--workers",
            "2",
        ])
        .env("RUST_LOG", "warn")
        .env_remove("SOLME_CLOCK_OFFSET")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(url) = database_url {
        cmd.args(["--database-url", url]);
    }
    if let Some(offset) = clock_offset {
        cmd.env("SOLME_CLOCK_OFFSET", offset);
    }
    let mut child = cmd.spawn().expect("start serve");
    let path = dir.join("listening.json");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(text) = std::fs::read(&path) {
            if let Ok(listening) = serde_json::from_slice::<Listening>(&text) {
                return ServeProcess { child, listening };
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "serve did not start within {START_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A fresh PostgreSQL database for one test, or `None` (with a notice) when no server
/// is configured.
pub fn fresh_pg_database() -> Option<String> {
    let Ok(base) = std::env::var(PG_ENV) else {
        eprintln!("notice: {PG_ENV} is not set; skipping the PostgreSQL part of this test");
        return None;
    };
    let mut conn = PgConnection::establish(&base).expect("connect to PostgreSQL");
    let name = format!("test_{}", Uuid::new_v4().simple());
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .expect("create test database");
    let (scheme, rest) = base.split_once("://").expect("URL with scheme");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let query = path
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    Some(format!("{scheme}://{authority}/{name}{query}"))
}

/// One started server with its clients.
pub struct TestApp {
    pub dir: TempDir,
    pub process: ServeProcess,
    pub http: awc::Client,
    pub token: String,
    pub solme: SolmePublicKey,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(None, None).await
}

pub async fn spawn_app_with(database_url: Option<String>, clock_offset: Option<&str>) -> TestApp {
    let dir = init_dir(database_url.as_deref());
    let process = serve(dir.path(), database_url.as_deref(), clock_offset);
    let http = https_client(&dir.path().join("ca.pem"));
    let token = std::fs::read_to_string(dir.path().join("admin-token"))
        .expect("token")
        .trim()
        .to_owned();
    let solme = SolmePublicKey::load(&dir.path().join("solme-public.pem")).expect("solme key");
    TestApp {
        dir,
        process,
        http,
        token,
        solme,
    }
}

/// An awc client that trusts only the server's CA (the TLS context is built once).
pub fn https_client(ca: &Path) -> awc::Client {
    let mut tls = SslConnector::builder(SslMethod::tls()).expect("tls builder");
    tls.set_ca_file(ca).expect("trust CA");
    let connector = awc::Connector::new()
        .openssl(tls.build())
        .timeout(Duration::from_secs(10));
    awc::Client::builder()
        .connector(connector)
        .timeout(Duration::from_secs(30))
        .finish()
}

/// A sync answer: status and body text.
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

impl Answer {
    pub fn code(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// A simulated local server: an identity for one id.
pub struct Local {
    pub identity: ServerIdentity,
    pub server_id: Uuid,
}

impl Local {
    pub fn new(server_id: Uuid) -> Self {
        Self {
            identity: ServerIdentity::generate().expect("identity"),
            server_id,
        }
    }

    pub fn sync_data_at(&self, created_at: DateTime<Utc>) -> String {
        let request = SyncRequest {
            version: shared_proto::messages::MESSAGE_VERSION,
            server_id: self.server_id,
            request_id: Uuid::new_v4(),
            created_at,
            public_keys: self.identity.public_keys(),
            held_revision: None,
            held_sequence: None,
            software_version: "test-1.0".into(),
            usage: Vec::new(),
        };
        shared_proto::sync_data::seal(&self.identity, &request).expect("seal")
    }

    pub fn sync_data(&self) -> String {
        self.sync_data_at(Utc::now())
    }

    pub fn open(&self, app: &TestApp, license_file: &str) -> LicenseFile {
        shared_proto::license_file::open(license_file, &self.identity, &app.solme, self.server_id)
            .expect("open license file")
    }
}

impl TestApp {
    pub fn sync_url(&self, index: usize) -> String {
        format!(
            "https://localhost:{}/api/v1/sync",
            self.process.listening.sync[index].port()
        )
    }

    pub fn admin_base(&self) -> String {
        format!("http://{}", self.process.listening.admin)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub async fn post_sync_to(&self, url: &str, text: &str) -> Answer {
        let mut response = self
            .http
            .post(url)
            .content_type("text/plain")
            .send_body(text.to_owned())
            .await
            .expect("sync request");
        let body = response.body().limit(1 << 20).await.expect("sync body");
        Answer {
            status: response.status(),
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn post_sync(&self, text: &str) -> Answer {
        self.post_sync_to(&self.sync_url(0), text).await
    }

    pub async fn admin(
        &self,
        method: awc::http::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.admin_base()))
            .insert_header(("X-Operator", "alice"));
        if let Some(token) = token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let mut response = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        }
        .expect("admin request");
        let bytes = response.body().limit(1 << 24).await.expect("admin body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("admin JSON")
        };
        (response.status(), value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.admin(
            awc::http::Method::GET,
            path,
            None,
            Some(&self.token.clone()),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.admin(
            awc::http::Method::POST,
            path,
            Some(body),
            Some(&self.token.clone()),
        )
        .await
    }

    /// A customer with one registered contact and one id holding a 10-seat license.
    pub async fn register(&self) -> (Uuid, Uuid) {
        let (status, customer) = self
            .post(
                "/admin/v1/customers",
                json!({"name": "Acme", "emails": ["ops@acme.example"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{customer}");
        let customer_id = customer["id"].as_str().expect("id").to_owned();
        let (status, server) = self
            .post("/admin/v1/servers", json!({"customer_id": customer_id}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{server}");
        let server_id: Uuid = server["server_id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid");
        let (status, license) = self
            .post(
                &format!("/admin/v1/servers/{server_id}/licenses"),
                json!({"feature": "cad", "seats": 10}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{license}");
        (customer_id.parse().expect("uuid"), server_id)
    }
}
