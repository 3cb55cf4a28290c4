//! The load generator of the main server's sync endpoint (formerly the main-server
//! crate's `main-server-bench`): ids registered straight into the database, sync
//! requests signed before the clock starts, then `concurrency` clients posting them on
//! new TLS connections (`new`) or kept-alive ones (`keep-alive`).
//!
//! The generator must stay cheap so that it measures the server: one client thread
//! with one TLS context (a new context costs milliseconds with OpenSSL 3), the
//! listener's IP rather than a name (no lookup per connection), and TCP_NODELAY (awc
//! leaves Nagle on, and a request body would then wait for the server's delayed ACK,
//! ~40 ms per new connection).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_service::Service;
use actix_tls::connect::{ConnectError, ConnectInfo, ConnectorService};
use anyhow::{Context, Result};
use awc::http::Uri;
use chrono::Utc;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};
use openssl::ssl::{SslConnector, SslMethod};
use shared_proto::{ServerIdentity, SyncRequest};
use uuid::Uuid;

/// Where the main server under test keeps its registry.
pub enum Registry<'a> {
    Sqlite(&'a Path),
    Postgres(&'a str),
}

/// Registers `ids` ids (with a license each for the first `active`) under one
/// customer, in batches of multi-row inserts; returns the active ids.
pub fn register(registry: Registry<'_>, ids: usize, active: usize) -> Result<Vec<Uuid>> {
    enum Conn {
        Sqlite(SqliteConnection),
        Postgres(PgConnection),
    }
    let mut conn = match registry {
        Registry::Sqlite(path) => Conn::Sqlite(
            SqliteConnection::establish(&path.display().to_string())
                .context("opening the SQLite registry")?,
        ),
        Registry::Postgres(url) => {
            Conn::Postgres(PgConnection::establish(url).context("connecting to PostgreSQL")?)
        }
    };
    let mut execute = |sql: &str| -> Result<()> {
        match &mut conn {
            Conn::Sqlite(conn) => conn.batch_execute(sql),
            Conn::Postgres(conn) => conn.batch_execute(sql),
        }
        .context("registering ids")
    };
    let customer = Uuid::new_v4();
    execute(&format!(
        "INSERT INTO customers (id, name, created_at) VALUES ('{customer}', 'Bench AB', 0)"
    ))?;
    let mut active_ids = Vec::new();
    let mut made = 0;
    while made < ids {
        let n = 500.min(ids - made);
        let mut servers = Vec::with_capacity(n);
        let mut licenses = Vec::new();
        for _ in 0..n {
            let id = Uuid::new_v4();
            servers.push(format!("('{id}', '{customer}', 1, 0, 0)"));
            if active_ids.len() < active {
                active_ids.push(id);
                licenses.push(format!("('{}', '{id}', 'cad', 10, 0)", Uuid::new_v4()));
            }
        }
        let mut sql = format!(
            "BEGIN; INSERT INTO servers (id, customer_id, revision, sequence, created_at) VALUES {};",
            servers.join(",")
        );
        if !licenses.is_empty() {
            sql += &format!(
                "INSERT INTO licenses (id, server_id, feature, seats, created_at) VALUES {};",
                licenses.join(",")
            );
        }
        sql += "COMMIT;";
        execute(&sql)?;
        made += n;
    }
    Ok(active_ids)
}

/// The active ids with a key pair each, signing fresh requests.
pub struct Clients {
    ids: Vec<Uuid>,
    identities: Vec<ServerIdentity>,
}

impl Clients {
    pub fn new(ids: Vec<Uuid>) -> Result<Self> {
        let identities = ids
            .iter()
            .map(|_| ServerIdentity::generate())
            .collect::<Result<_, _>>()?;
        Ok(Self { ids, identities })
    }

    /// `count` signed sync requests, round-robin over the ids, created now.
    pub fn sync_data(&self, count: usize) -> Result<Vec<String>> {
        let now = Utc::now();
        (0..count)
            .map(|i| {
                let k = i % self.ids.len();
                let request = SyncRequest {
                    version: shared_proto::messages::MESSAGE_VERSION,
                    server_id: self.ids[k],
                    request_id: Uuid::new_v4(),
                    created_at: now,
                    public_keys: self.identities[k].public_keys(),
                    held_revision: None,
                    held_sequence: None,
                    software_version: "bench".into(),
                    usage: Vec::new(),
                    usage_since: None,
                    held_file_sha256: None,
                    request_counter: None,
                    borrows: None,
                    standby_keys: None,
                };
                Ok(shared_proto::sync_data::seal(
                    &self.identities[k],
                    &request,
                )?)
            })
            .collect()
    }
}

/// What one run measured.
pub struct Run {
    /// Sorted, in microseconds.
    pub latencies: Vec<u64>,
    pub failures: usize,
    pub wall: Duration,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The latency at `p` (0..=1), in milliseconds.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(index).copied().unwrap_or(0) as f64 / 1000.0
    }
}

/// How the clients send.
#[derive(Clone, Copy)]
pub struct Load {
    pub concurrency: usize,
    pub new_connection: bool,
    /// Syncs started per second in total (0: each client sends as soon as its previous
    /// answer came). Paced latencies count from each sync's scheduled start, so a server
    /// that falls behind is charged for the queue it builds.
    pub rate: u64,
}

/// Posts every text once, from `load.concurrency` clients spread over `urls`. Runs on
/// the calling thread.
pub fn run(texts: Vec<String>, urls: &[String], ca: &Path, load: Load) -> Result<Run> {
    let texts: Arc<[String]> = texts.into();
    let next = Arc::new(AtomicUsize::new(0));
    let urls = urls.to_vec();
    let ca = ca.to_owned();
    let start = Instant::now();
    let (mut latencies, failures) = actix_web::rt::System::new()
        .block_on(async move { drive(texts, next, &urls, &ca, load, start).await })?;
    let wall = start.elapsed();
    latencies.sort_unstable();
    Ok(Run {
        latencies,
        failures,
        wall,
    })
}

async fn drive(
    texts: Arc<[String]>,
    next: Arc<AtomicUsize>,
    urls: &[String],
    ca: &Path,
    load: Load,
    start: Instant,
) -> Result<(Vec<u64>, usize)> {
    let Load {
        concurrency,
        new_connection,
        rate,
    } = load;
    let mut tls = SslConnector::builder(SslMethod::tls())?;
    tls.set_ca_file(ca)
        .with_context(|| format!("trusting {}", ca.display()))?;
    let tcp = ConnectorService::default();
    let nodelay = actix_service::fn_service(move |info: ConnectInfo<Uri>| {
        let connecting = tcp.call(info);
        async move {
            let connection = connecting.await?;
            connection
                .io_ref()
                .set_nodelay(true)
                .map_err(ConnectError::Io)?;
            Ok::<_, ConnectError>(connection)
        }
    });
    let connector = awc::Connector::new()
        .connector(nodelay)
        .openssl(tls.build())
        .limit(concurrency * 2)
        .timeout(Duration::from_secs(10));
    let client = awc::Client::builder()
        .connector(connector)
        .timeout(Duration::from_secs(30))
        .finish();
    let tasks = (0..concurrency.max(1)).map(|n| {
        let client = client.clone();
        let texts = texts.clone();
        let next = next.clone();
        let url = urls[n % urls.len()].clone();
        async move {
            let mut latencies = Vec::new();
            let mut failures = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(text) = texts.get(i) else { break };
                let began = if rate > 0 {
                    let at = start + Duration::from_secs_f64(i as f64 / rate as f64);
                    actix_web::rt::time::sleep_until(at.into()).await;
                    at
                } else {
                    Instant::now()
                };
                let mut request = client.post(&url).content_type("text/plain");
                if new_connection {
                    request = request.force_close();
                }
                let ok = match request.send_body(text.clone()).await {
                    Ok(mut response) => {
                        let body = response.body().limit(1 << 20).await;
                        response.status().is_success() && body.is_ok()
                    }
                    Err(_) => false,
                };
                latencies.push(began.elapsed().as_micros() as u64);
                if !ok {
                    failures += 1;
                }
            }
            (latencies, failures)
        }
    });
    let mut all = Vec::new();
    let mut failures = 0;
    for (latencies, failed) in futures_util::future::join_all(tasks).await {
        all.extend(latencies);
        failures += failed;
    }
    Ok((all, failures))
}
