//! `main-server-bench`: load generator for the sync endpoint.
//!
//! Starts `main-server serve` (the binary next to this one) on a fresh data directory,
//! registers `--ids` license server ids straight into its database, then runs
//! `--syncs` full syncs from `--concurrency` clients, once on a new TLS connection per
//! sync and once on kept-alive connections. Prints syncs/s, latency percentiles and the
//! server's own CPU time per sync (utime+stime from /proc/PID/stat before and after).
//!
//! Sync data is signed before the clock starts, and each client thread builds its TLS
//! context once, so the generator's own cost stays small.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_service::Service;
use actix_tls::connect::{ConnectError, ConnectInfo, ConnectorService};
use anyhow::Context;
use awc::http::Uri;
use clap::Parser;
use diesel::RunQueryDsl;
use main_server::db::{Db, DbTarget};
use openssl::ssl::{SslConnector, SslMethod};
use shared_proto::admin_api::Listening;
use shared_proto::{Clock, ServerIdentity, SyncRequest};
use uuid::Uuid;

/// Load generator for the main server's sync endpoint.
#[derive(Debug, Parser)]
#[command(name = "main-server-bench", version, about)]
struct Args {
    /// Concurrent clients.
    #[arg(long, env = "BENCH_CONCURRENCY", default_value_t = 64)]
    concurrency: usize,
    /// License server ids registered before the run.
    #[arg(long, env = "BENCH_IDS", default_value_t = 1000)]
    ids: usize,
    /// Ids that take part in the syncs (each with its own key pair).
    #[arg(long, env = "BENCH_ACTIVE_IDS", default_value_t = 1000)]
    active_ids: usize,
    /// Syncs per mode.
    #[arg(long, env = "BENCH_SYNCS", default_value_t = 10_000)]
    syncs: usize,
    /// Client threads (each runs its own event loop).
    #[arg(long, env = "BENCH_THREADS", default_value_t = 1)]
    threads: usize,
    /// Server worker threads.
    #[arg(long, env = "BENCH_SERVER_WORKERS", default_value_t = 2)]
    server_workers: usize,
    /// Database URL (default: SQLite in the temporary data directory).
    #[arg(long, env = "BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// The `main-server` binary (default: next to this one).
    #[arg(long, env = "BENCH_SERVER_BINARY")]
    server_binary: Option<PathBuf>,
    /// Paced load: total syncs per second the clients start (0: as fast as the
    /// server answers). Latency is measured from each sync's scheduled start, so a
    /// server that falls behind is charged for the queue it builds.
    #[arg(long, env = "BENCH_RATE", default_value_t = 0)]
    rate: u64,
    /// Modes to run.
    #[arg(long, env = "BENCH_MODES", value_delimiter = ',', default_values_t = ["new".to_owned(), "keepalive".to_owned()])]
    modes: Vec<String>,
}

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc stat")?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    Ok(utime + stime)
}

fn own_cpu_ticks() -> anyhow::Result<u64> {
    server_cpu_ticks(std::process::id())
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn register(target: DbTarget, ids: usize, active: usize) -> anyhow::Result<Vec<Uuid>> {
    let db = Db::open(target, 1)?;
    let mut conn = db.write.get()?;
    let customer = Uuid::new_v4();
    diesel::sql_query(format!(
        "INSERT INTO customers (id, name, created_at) VALUES ('{customer}', 'Bench', 0)"
    ))
    .execute(&mut conn)?;
    let mut active_ids = Vec::new();
    let batch = 500;
    let mut made = 0;
    while made < ids {
        let n = batch.min(ids - made);
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
        diesel::sql_query(format!(
            "INSERT INTO servers (id, customer_id, revision, sequence, created_at) VALUES {}",
            servers.join(",")
        ))
        .execute(&mut conn)?;
        if !licenses.is_empty() {
            diesel::sql_query(format!(
                "INSERT INTO licenses (id, server_id, feature, seats, created_at) VALUES {}",
                licenses.join(",")
            ))
            .execute(&mut conn)?;
        }
        made += n;
    }
    Ok(active_ids)
}

fn start_server(bin: &Path, dir: &Path, args: &Args) -> anyhow::Result<(Server, Listening)> {
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--workers", &args.server_workers.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(url) = &args.database_url {
        cmd.args(["--database-url", url]);
    }
    let child = cmd.spawn().context("starting main-server")?;
    let server = Server { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read(dir.join("listening.json")) {
            if let Ok(listening) = serde_json::from_slice::<Listening>(&text) {
                return Ok((server, listening));
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "main-server did not start");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Runs one mode; returns (latencies in µs, failures, wall time).
fn run_mode(
    texts: Arc<Vec<String>>,
    url: &str,
    ca: &Path,
    args: &Args,
    new_connection: bool,
) -> anyhow::Result<(Vec<u64>, usize, Duration)> {
    let next = Arc::new(AtomicUsize::new(0));
    let threads = args.threads.max(1);
    let per_thread = args.concurrency.div_ceil(threads);
    let start = Instant::now();
    let rate = args.rate;
    let mut handles = Vec::new();
    for _ in 0..threads {
        let texts = texts.clone();
        let next = next.clone();
        let url = url.to_owned();
        let ca = ca.to_owned();
        handles.push(std::thread::spawn(
            move || -> anyhow::Result<(Vec<u64>, usize)> {
                actix_web::rt::System::new().block_on(async move {
                    let mut tls = SslConnector::builder(SslMethod::tls())?;
                    tls.set_ca_file(&ca)?;
                    // awc leaves Nagle on: the request body would wait for the ACK of
                    // its headers, i.e. the server's delayed ACK (~40 ms on a new
                    // connection), and the bench would measure that, not the server.
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
                        .limit(per_thread * 2)
                        .timeout(Duration::from_secs(10));
                    let client = awc::Client::builder()
                        .connector(connector)
                        .timeout(Duration::from_secs(30))
                        .finish();
                    let tasks = (0..per_thread).map(|_| {
                        let client = client.clone();
                        let texts = texts.clone();
                        let next = next.clone();
                        let url = url.clone();
                        async move {
                            let mut latencies = Vec::new();
                            let mut failures = 0;
                            loop {
                                let i = next.fetch_add(1, Ordering::Relaxed);
                                let Some(text) = texts.get(i) else { break };
                                let began = if rate > 0 {
                                    let at =
                                        start + Duration::from_secs_f64(i as f64 / rate as f64);
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
                    let results = futures_util::future::join_all(tasks).await;
                    let mut all = Vec::new();
                    let mut failures = 0;
                    for (latencies, f) in results {
                        all.extend(latencies);
                        failures += f;
                    }
                    Ok((all, failures))
                })
            },
        ));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for handle in handles {
        let (l, f) = handle
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        latencies.extend(l);
        failures += f;
    }
    Ok((latencies, failures, start.elapsed()))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or(0) as f64 / 1000.0
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let bin = match &args.server_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("main-server"),
    };
    let dir = tempfile::TempDir::new()?;
    let status = Command::new(&bin)
        .args(["init", "--data-dir"])
        .arg(dir.path())
        .args(
            args.database_url
                .iter()
                .flat_map(|u| ["--database-url", u.as_str()]),
        )
        .stdout(Stdio::null())
        .status()
        .context("running main-server init")?;
    anyhow::ensure!(status.success(), "main-server init failed");

    let target = DbTarget::from_options(dir.path(), args.database_url.as_deref())?;
    let began = Instant::now();
    let active = register(target, args.ids, args.active_ids.min(args.ids).max(1))?;
    println!(
        "registered {} ids ({} active) in {:.1}s",
        args.ids,
        active.len(),
        began.elapsed().as_secs_f64()
    );
    let identities: Vec<ServerIdentity> = active
        .iter()
        .map(|_| ServerIdentity::generate())
        .collect::<Result<_, _>>()?;

    let (server, listening) = start_server(&bin, dir.path(), &args)?;
    let pid = server.child.id();
    // The address, not `localhost`: awc would resolve the name on a blocking thread for
    // every new connection, which is load-generator cost, not server cost. The
    // certificate names 127.0.0.1 too.
    let addr = listening.sync.first().context("no sync listener")?;
    let url = format!("https://{addr}/api/v1/sync");
    let ca = dir.path().join("ca.pem");
    let ticks = clock_ticks_per_second();
    let clock = Clock::from_env()?;

    println!(
        "concurrency {} client threads {} server workers {} syncs per mode {} rate {}",
        args.concurrency,
        args.threads,
        args.server_workers,
        args.syncs,
        if args.rate == 0 {
            "unpaced".to_owned()
        } else {
            format!("{}/s", args.rate)
        }
    );
    for mode in &args.modes {
        let new_connection = match mode.as_str() {
            "new" => true,
            "keepalive" => false,
            other => anyhow::bail!("unknown mode {other:?} (new, keepalive)"),
        };
        let now = clock.now();
        let texts: Vec<String> = (0..args.syncs)
            .map(|i| {
                let k = i % active.len();
                let request = SyncRequest {
                    version: shared_proto::messages::MESSAGE_VERSION,
                    server_id: active[k],
                    request_id: Uuid::new_v4(),
                    created_at: now,
                    public_keys: identities[k].public_keys(),
                    held_revision: None,
                    held_sequence: None,
                    software_version: "bench".into(),
                    usage: Vec::new(),
                };
                shared_proto::sync_data::seal(&identities[k], &request)
            })
            .collect::<Result<_, _>>()?;
        let cpu_before = server_cpu_ticks(pid)?;
        let own_before = own_cpu_ticks()?;
        let (mut latencies, failures, wall) =
            run_mode(Arc::new(texts), &url, &ca, &args, new_connection)?;
        let cpu_after = server_cpu_ticks(pid)?;
        let own_ms = (own_cpu_ticks()? - own_before) as f64 / ticks * 1000.0;
        latencies.sort_unstable();
        let done = latencies.len();
        let cpu_ms = (cpu_after - cpu_before) as f64 / ticks * 1000.0;
        println!(
            "{mode:>9}: {:.0} syncs/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, \
             server CPU {:.3} ms/sync, client CPU {:.3} ms/sync, {failures} failed of {done}",
            done as f64 / wall.as_secs_f64(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.90),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
            cpu_ms / done.max(1) as f64,
            own_ms / done.max(1) as f64,
        );
    }
    drop(server);
    Ok(())
}
