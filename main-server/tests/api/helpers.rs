//! The main server for a test: in process, on the same `Application::build` the binary
//! runs (loopback port 0, a fresh data directory, a clock the test can move), and the
//! clients that talk to it. Tests of the binary itself start it through the shared
//! harness (`test_harness::MainServer`).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use awc::http::StatusCode;
use chrono::{DateTime, Utc};
use diesel::{Connection, PgConnection, RunQueryDsl};
use main_server::cli::InitArgs;
use main_server::startup::{Application, Settings};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use shared_proto::admin_api::Listening;
use shared_proto::files::read_secret;
use shared_proto::{Clock, LicenseFile, ServerIdentity, SolmePublicKey};
use tempfile::TempDir;
use uuid::Uuid;

pub const BIN: &str = env!("CARGO_BIN_EXE_main-server");
/// Env var naming a PostgreSQL server for the PostgreSQL tests (CI sets it).
pub const PG_ENV: &str = "SOLME_TEST_DATABASE_URL";

/// Runs `init` (in process, as `main-server init` does) in a fresh directory.
pub fn init_dir(database_url: Option<&str>) -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    let args = InitArgs {
        data_dir: dir.path().to_path_buf(),
        database_url: database_url.map(|url| SecretString::from(url.to_owned())),
        hostnames: Vec::new(),
    };
    main_server::init::run(&args, &Clock::system()).expect("init");
    dir
}

/// A fresh PostgreSQL database for one test, or `None` (with a notice) when no server
/// is configured.
fn fresh_pg_database() -> Option<String> {
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

/// One server running in this test's process, with its clients. Dropping it stops
/// the server.
pub struct TestApp {
    pub dir: TempDir,
    pub listening: Listening,
    /// The server's clock: `advance` moves it for the running server.
    pub clock: Clock,
    pub http: awc::Client,
    pub token: String,
    pub solme: SolmePublicKey,
    /// The PostgreSQL database it runs on; `None` for SQLite in `dir`.
    pub database_url: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<actix_rt::task::JoinHandle<()>>,
}

impl TestApp {
    /// Stops the server through its shutdown future and waits until it has drained.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.await.expect("the server task");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(None, None).await
}

/// A server on a fresh PostgreSQL database, or `None` (with a notice) when no server
/// is configured.
pub async fn spawn_pg_app() -> Option<TestApp> {
    let url = fresh_pg_database()?;
    Some(spawn_app_with(Some(url), None).await)
}

/// Defines two tests running the body `$body(&TestApp)`: `$sqlite` on SQLite, and
/// `$postgres` on PostgreSQL when one is configured (the storage code differs there).
macro_rules! on_both_backends {
    ($body:ident, $sqlite:ident, $postgres:ident) => {
        #[actix_rt::test]
        async fn $sqlite() {
            $body(&$crate::helpers::spawn_app().await).await;
        }

        #[actix_rt::test]
        async fn $postgres() {
            let Some(app) = $crate::helpers::spawn_pg_app().await else {
                return;
            };
            $body(&app).await;
        }
    };
}
pub(crate) use on_both_backends;

/// A server on `database_url` (SQLite in the data directory when None) whose clock
/// starts moved by `clock_offset` (`SOLME_CLOCK_OFFSET` syntax).
pub async fn spawn_app_with(database_url: Option<String>, clock_offset: Option<&str>) -> TestApp {
    let dir = init_dir(database_url.as_deref());
    spawn_app_on(dir, database_url, clock_offset).await
}

/// A server on an existing data directory (SQLite inside it).
pub async fn spawn_app_in(dir: TempDir) -> TestApp {
    spawn_app_on(dir, None, None).await
}

async fn spawn_app_on(
    dir: TempDir,
    database_url: Option<String>,
    clock_offset: Option<&str>,
) -> TestApp {
    let clock = match clock_offset {
        Some(offset) => {
            Clock::with_offset(shared_proto::clock::parse_offset(offset).expect("clock offset"))
        }
        None => Clock::system(),
    };
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        database_url: database_url.clone().map(SecretString::from),
        listen: vec![([127, 0, 0, 1], 0).into(); 2],
        admin_listen: ([127, 0, 0, 1], 0).into(),
        admin_plain_http: false,
        workers: Some(2),
        db_pool_size: 8,
    };
    let app = Application::build(&settings, clock.clone()).expect("build the server");
    let listening = app.listening().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = actix_rt::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = app.run_until_stopped(shutdown).await {
            panic!("the server failed: {e:#}");
        }
    });
    let http = https_client(&dir.path().join("ca.pem"));
    let token = read_secret(&dir.path().join("admin-token"))
        .expect("token")
        .expose_secret()
        .to_owned();
    let solme = SolmePublicKey::load(&dir.path().join("solme-public.pem")).expect("solme key");
    let app = TestApp {
        dir,
        listening,
        clock,
        http,
        token,
        solme,
        database_url,
        stop: Some(stop),
        running: Some(running),
    };
    // The servers start accepting once the spawned task first runs: wait for an answer
    // here, so that a test may then block its thread (running the CLI) safely.
    let health = format!(
        "https://localhost:{}/api/v1/health",
        app.listening.sync[0].port()
    );
    test_harness::wait_until_async("the server to answer", Duration::from_secs(20), || async {
        app.http.get(&health).send().await.ok().map(|_| ())
    })
    .await
    .expect("the server answers");
    app
}

/// An awc client that trusts only the server's CA (the TLS context is built once).
pub fn https_client(ca: &Path) -> awc::Client {
    let tls = test_harness::tls::pinned(ca).expect("trust the CA");
    let connector = awc::Connector::new()
        .openssl(tls)
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
        test_harness::sync_data::sync_data_at(&self.identity, self.server_id, created_at)
            .expect("seal")
    }

    pub fn sync_data(&self) -> String {
        self.sync_data_at(Utc::now())
    }

    /// Sync data as a real local server makes it: its `request_counter`, the sequence
    /// of the license file it holds, made at `created_at`.
    pub fn sync_data_as(
        &self,
        request_counter: u64,
        held_sequence: Option<i64>,
        created_at: DateTime<Utc>,
    ) -> String {
        let request = shared_proto::SyncRequest {
            version: shared_proto::messages::MESSAGE_VERSION,
            server_id: self.server_id,
            request_id: Uuid::new_v4(),
            created_at,
            public_keys: self.identity.public_keys(),
            held_revision: held_sequence,
            held_sequence,
            software_version: "test".into(),
            usage: Vec::new(),
            usage_since: None,
            held_file_sha256: held_sequence.map(|s| format!("{s:064x}")),
            request_counter: Some(request_counter),
            borrows: None,
            standby_keys: None,
        };
        shared_proto::sync_data::seal(&self.identity, &request).expect("seal")
    }

    pub fn open(&self, app: &TestApp, license_file: &str) -> LicenseFile {
        shared_proto::license_file::open(license_file, &self.identity, &app.solme, self.server_id)
            .expect("open license file")
    }
}

/// A second main-server process (the real binary) on the same PostgreSQL database
/// as a [`TestApp`], with the same keys: a scaled-out deployment.
pub struct Replica {
    pub server: test_harness::MainServer,
    _dir: TempDir,
}

impl Replica {
    /// Its sync endpoint (HTTPS, by the certificate's `localhost` name).
    pub fn sync_url(&self) -> String {
        format!(
            "https://localhost:{}/api/v1/sync",
            self.server.sync[0].port()
        )
    }
}

/// A server on a fresh PostgreSQL database and a [`Replica`] on the same database, or
/// `None` (with a notice) when no PostgreSQL server is configured.
pub async fn spawn_pg_app_and_replica() -> Option<(TestApp, Replica)> {
    let app = spawn_pg_app().await?;
    let dir = TempDir::new().expect("dir");
    test_harness::programs::copy_keys(app.dir.path(), dir.path()).expect("copy the keys");
    let options = test_harness::MainOptions {
        database_url: app.database_url.clone(),
        workers: Some(2),
        ..test_harness::MainOptions::default()
    };
    let server = test_harness::MainServer::start(dir.path(), options).expect("a second process");
    Some((app, Replica { server, _dir: dir }))
}

impl TestApp {
    pub fn sync_url(&self, index: usize) -> String {
        format!(
            "https://localhost:{}/api/v1/sync",
            self.listening.sync[index].port()
        )
    }

    /// `https://127.0.0.1:PORT` of the admin listener.
    pub fn admin_base(&self) -> String {
        self.listening.admin.to_string()
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

    /// A GET on the sync listener `index`: status and JSON body.
    pub async fn sync_get(&self, index: usize, path: &str) -> (StatusCode, Value) {
        let port = self.listening.sync[index].port();
        let mut response = self
            .http
            .get(format!("https://localhost:{port}{path}"))
            .send()
            .await
            .expect("sync listener request");
        let value = response.json().await.expect("sync listener JSON");
        (response.status(), value)
    }

    /// A mailed sync as the gateway hands it on: status and JSON body.
    pub async fn mail_sync(&self, sender: &str, sync_data: &str) -> (StatusCode, Value) {
        let body = json!({"sender": sender, "sync_data": sync_data});
        self.post("/admin/v1/mail/sync", body).await
    }

    /// Adds a license to `server_id` with the admin API: status and JSON body.
    pub async fn post_license(&self, server_id: Uuid, body: Value) -> (StatusCode, Value) {
        self.post(&format!("/admin/v1/servers/{server_id}/licenses"), body)
            .await
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
            .request(method, format!("{}{path}", self.admin_base()));
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

    /// Fetches an admin-listener page (console, metrics) without any token; returns
    /// status, headers and body.
    pub async fn get_page(&self, path: &str) -> (StatusCode, awc::http::header::HeaderMap, String) {
        let mut response = self
            .http
            .get(format!("{}{path}", self.admin_base()))
            .send()
            .await
            .expect("page request");
        let body = response.body().limit(1 << 20).await.expect("page body");
        (
            response.status(),
            response.headers().clone(),
            String::from_utf8(body.to_vec()).expect("UTF-8 body"),
        )
    }

    /// How many of the newest 1000 audit entries record `action` with a detail that
    /// contains `part`.
    pub async fn audit_count(&self, action: &str, part: &str) -> usize {
        let (_, audit) = self.get("/admin/v1/audit?limit=1000").await;
        audit
            .as_array()
            .expect("audit")
            .iter()
            .filter(|e| {
                e["action"] == action && e["detail"].as_str().is_some_and(|d| d.contains(part))
            })
            .count()
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

    /// Records a key-clear request for `server_id` from `ops@acme.example`, as the
    /// gateway does; `fields` adds to or overrides the request's fields (`text`,
    /// `sender_auth`, …). Returns the created request.
    pub async fn key_clear_request(
        &self,
        server_id: Uuid,
        message_id: &str,
        fields: Value,
    ) -> Value {
        let mut body = json!({"server_id": server_id, "sender": "ops@acme.example",
                              "message_id": message_id});
        if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
            body.extend(fields);
        }
        let (status, created) = self.post("/admin/v1/key-clear-requests", body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }

    /// [`TestApp::register`], and a [`TestApp::key_clear_request`] for the new id.
    /// Returns the id and the request.
    pub async fn register_with_key_clear_request(
        &self,
        message_id: &str,
        fields: Value,
    ) -> (Uuid, Value) {
        let (_, server_id) = self.register().await;
        let request = self.key_clear_request(server_id, message_id, fields).await;
        (server_id, request)
    }

    /// [`TestApp::register`], and a simulated local server for the new id.
    pub async fn register_local(&self) -> (Uuid, Local) {
        let (_, server_id) = self.register().await;
        (server_id, Local::new(server_id))
    }

    /// A customer with one registered contact and one id holding a 10-seat license.
    /// Called again, it allocates another id for the same customer (Acme, contact
    /// ops@acme.example): an address belongs to one customer.
    pub async fn register(&self) -> (Uuid, Uuid) {
        let (_, customers) = self.get("/admin/v1/customers?name=Acme").await;
        let existing = customers
            .as_array()
            .and_then(|list| list.iter().find(|c| c["name"] == "Acme"))
            .and_then(|c| c["id"].as_str())
            .map(str::to_owned);
        let customer_id = match existing {
            Some(id) => id,
            None => {
                let (status, customer) = self
                    .post(
                        "/admin/v1/customers",
                        json!({"name": "Acme", "emails": ["ops@acme.example"]}),
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{customer}");
                customer["id"].as_str().expect("id").to_owned()
            }
        };
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
            .post_license(server_id, json!({"feature": "cad", "seats": 10}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{license}");
        (customer_id.parse().expect("uuid"), server_id)
    }
}

/// Asserts that a command exited 0 (showing what it wrote otherwise); returns its
/// standard output.
pub fn succeeded(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Asserts that a command exited with `code` and said `part` on its standard error.
pub fn failed_saying(out: &Output, code: i32, part: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(part), "{stderr}");
}

/// Asserts that an admin answer is a refusal with `status` and the error `code`.
pub fn assert_refused(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(
        (status, body["code"].as_str()),
        (expected, Some(code)),
        "{body}"
    );
}

/// [`assert_refused`], and the error message says `part`.
pub fn assert_refused_saying(
    status: StatusCode,
    body: &Value,
    expected: StatusCode,
    code: &str,
    part: &str,
) {
    assert_refused(status, body, expected, code);
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains(part)),
        "{body}"
    );
}

/// A bare key pair's raw public key (sync requests carry them so).
pub fn raw_public_key(key: &openssl::pkey::PKey<openssl::pkey::Private>) -> [u8; 32] {
    key.raw_public_key()
        .expect("raw key")
        .try_into()
        .expect("32 bytes")
}

/// Sync data signed by hand with the bare Ed25519 key `signing`: for requests that
/// `sync_data::seal`, which signs only with a whole identity, cannot make.
pub fn hand_signed_sync_data(
    request: &impl serde::Serialize,
    signing: &openssl::pkey::PKey<openssl::pkey::Private>,
) -> String {
    use shared_proto::armor::{self, ArmorKind};
    use shared_proto::envelope::{self, Kind};
    let payload = serde_json::to_vec(request).expect("json");
    let signed = envelope::sign(Kind::SyncRequest, &payload, signing).expect("sign");
    armor::encode(ArmorKind::SyncData, &[], &signed)
}

/// The newest entry of `action` in an audit listing (newest first, as the API and
/// `admin audit --json` give it); fails the test when there is none.
pub fn newest_audit_entry<'a>(audit: &'a Value, action: &str) -> &'a Value {
    audit
        .as_array()
        .and_then(|entries| entries.iter().find(|e| e["action"] == action))
        .unwrap_or_else(|| panic!("no {action} entry in the audit log: {audit}"))
}
