//! The benchmarks of the quality bars, in one command: the main server's syncs (its
//! own load generator), the local server's lease check-outs and memory, and the mail
//! gateway's sync mails per second. Release builds; figures are printed, not asserted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::Parser;
use shared_proto::{ServerIdentity, SyncRequest};
use test_harness::mail::send_sync_mail;
use test_harness::{binary, wait_until, LocalServer, MailGateway, MainOptions, MainServer};
use tests::bench::sync_load::{self, Clients, Load, Registry};
use tests::bench::{admin_scale, cpu, floor, options_file, postgres};
use uuid::Uuid;

/// Measure the three programs against their quality bars on this machine.
#[derive(Debug, Parser)]
#[command(name = "solme-bench", version)]
struct Args {
    /// Also run the main server's benchmark with 1,000,000 registered ids (slow to set up).
    #[arg(long, env = "SOLME_BENCH_MILLION")]
    million: bool,
    /// Syncs per main-server measurement (each mode of each database).
    #[arg(long, env = "SOLME_BENCH_SYNCS", default_value_t = 10_000)]
    syncs: usize,
    /// License server ids registered before the main server's syncs.
    #[arg(long, env = "SOLME_BENCH_IDS", default_value_t = 1_000)]
    ids: usize,
    /// Ids that take part in the syncs (each with its own key pair).
    #[arg(long, env = "SOLME_BENCH_ACTIVE_IDS", default_value_t = 1_000)]
    active_ids: usize,
    /// Concurrent sync clients.
    #[arg(long, env = "SOLME_BENCH_CONCURRENCY", default_value_t = 64)]
    concurrency: usize,
    /// Paced load on new connections: syncs started per second (0: as fast as answers
    /// come). Use it for latency at a given load; unpaced p99 only says how long the
    /// queue of `--concurrency` clients is.
    #[arg(long, env = "SOLME_BENCH_RATE_NEW", default_value_t = 0)]
    rate_new: u64,
    /// Paced load on kept-alive connections (0: unpaced).
    #[arg(long, env = "SOLME_BENCH_RATE_KEPT_ALIVE", default_value_t = 0)]
    rate_kept_alive: u64,
    /// Repetitions of each operation of the crypto floor.
    #[arg(long, env = "SOLME_BENCH_FLOOR_ITERATIONS", default_value_t = 3_000)]
    floor_iterations: u32,
    /// Skip the PostgreSQL measurements even when PostgreSQL is installed.
    #[arg(long, env = "SOLME_BENCH_NO_POSTGRES")]
    no_postgres: bool,
    /// Seconds of lease load on the local server.
    #[arg(long, env = "SOLME_BENCH_SECONDS", default_value_t = 10)]
    seconds: u64,
    /// Sync mails sent to the gateway.
    #[arg(long, env = "SOLME_BENCH_MAILS", default_value_t = 300)]
    mails: usize,
    /// Programs holding a seat when the local server is killed and started again.
    #[arg(long, env = "SOLME_BENCH_STORM_CLIENTS", default_value_t = 5_000)]
    storm_clients: usize,
    /// The local server's lease time in the storm and mix cases (`--lease-seconds`; the
    /// programs send a heartbeat every third of it). The server stays down for one
    /// heartbeat interval and a second, so that every program has missed one, and comes
    /// back well before the leases run out (at least 6).
    #[arg(long, env = "SOLME_BENCH_STORM_LEASE_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(6..=86_400))]
    storm_lease_seconds: u32,
    /// Programs running RLM's load mix.
    #[arg(long, env = "SOLME_BENCH_MIX_CLIENTS", default_value_t = 5_000)]
    mix_clients: usize,
    /// Seconds the load mix runs.
    #[arg(long, env = "SOLME_BENCH_MIX_SECONDS", default_value_t = 60)]
    mix_seconds: u64,
    /// Every hold and idle time of RLM's mix is divided by this (2 h held becomes 2 min
    /// at 60).
    #[arg(long, env = "SOLME_BENCH_MIX_SCALE", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..))]
    mix_scale: u32,
    /// Which parts to run: main, local, storm (a reconnect storm and RLM's load mix,
    /// both made with the client library), mail; and, only when named, admin-scale
    /// (the operators' views on a PostgreSQL filled with --scale-ids, --scale-customers
    /// and --scale-audit-entries).
    #[arg(long, env = "SOLME_BENCH_PARTS", value_delimiter = ',', default_values_t = ["main".to_string(), "local".to_string(), "storm".to_string(), "mail".to_string()])]
    parts: Vec<String>,
    /// admin-scale: license server ids in the filled registry (one license each).
    #[arg(long, env = "SOLME_BENCH_SCALE_IDS", default_value_t = 1_000_000)]
    scale_ids: u64,
    /// admin-scale: customers the ids belong to.
    #[arg(long, env = "SOLME_BENCH_SCALE_CUSTOMERS", default_value_t = 100_000)]
    scale_customers: u64,
    /// admin-scale: audit entries, a year of them.
    #[arg(
        long,
        env = "SOLME_BENCH_SCALE_AUDIT_ENTRIES",
        default_value_t = 10_000_000
    )]
    scale_audit_entries: u64,
    /// admin-scale: requests per view measured.
    #[arg(long, env = "SOLME_BENCH_SCALE_REQUESTS", default_value_t = 100)]
    scale_requests: usize,
}

fn main() {
    // The programs' per-request log lines would be measured as server cost.
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    if let Err(error) = run(Args::parse()) {
        eprintln!("\nThe benchmark stopped: {error:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("note: this is a debug build; run `cargo run --release -p tests --bin solme-bench` for real figures");
    }
    test_harness::process::build_programs(&["--bins"])?;
    test_harness::process::cargo_build(&["-p", "tests", "--bin", "solme-lease-load"])?;
    test_harness::process::cargo_build(&["-p", "tests", "--bin", "solme-client-load"])?;
    let dir = tempfile::Builder::new()
        .prefix("solme-bench-")
        .tempdir()
        .context("making a temporary directory")?;
    let part = |name: &str| args.parts.iter().any(|p| p == name);
    if part("main") {
        main_server(&args, dir.path())?;
    }
    if part("local") {
        local_server(&args, dir.path())?;
    }
    if part("storm") {
        storm(&args, dir.path())?;
    }
    if part("mail") {
        mail_gateway(&args, dir.path())?;
    }
    if part("admin-scale") {
        admin_scale(&args, dir.path())?;
    }
    Ok(())
}

/// The operators' views at scale: a throw-away PostgreSQL filled in SQL, then every
/// console view and admin list through the admin API, p50/p99 each (bar: p99 100 ms).
fn admin_scale(args: &Args, dir: &Path) -> Result<()> {
    println!(
        "\n== Operators' views at scale (bar: p99 <= 100 ms for every console view and admin list)"
    );
    let Some(bin) = postgres::find() else {
        println!("-- skipped: no initdb found; install PostgreSQL to measure it");
        return Ok(());
    };
    let pg = postgres::Postgres::start(&bin, 50)?;
    let url = pg.database("admin_scale")?;
    let main = MainServer::start(
        &dir.join("admin-scale"),
        MainOptions {
            database_url: Some(url.clone()),
            clock_offset: None,
            workers: Some(2),
            ..MainOptions::default()
        },
    )?;
    let sizes = admin_scale::Sizes {
        ids: args.scale_ids.max(1),
        customers: args.scale_customers.clamp(1, args.scale_ids.max(1)),
        audit_entries: args.scale_audit_entries.max(1),
        requests: args.scale_requests.max(1),
    };
    println!(
        "-- PostgreSQL (same machine, default settings), 1 main-server process: filling {} ids, {} customers, {} audit entries",
        sizes.ids, sizes.customers, sizes.audit_entries
    );
    let started_ms = Utc::now().timestamp_millis();
    let took = admin_scale::fill(&url, sizes)?;
    println!("filled in {:.1} s", took.as_secs_f64());
    let admin = main.admin()?;
    admin_scale::measure_views(&admin, sizes, started_ms)?;
    Ok(())
}

/// The main server: the crypto floor of one sync, then full syncs on new TLS
/// connections and kept-alive ones, on SQLite and on a throw-away PostgreSQL with one
/// and two `main-server` processes, with the CPU time of every process involved.
fn main_server(args: &Args, dir: &Path) -> Result<()> {
    println!(
        "\n== Main server: full syncs, durable commits (bars: ≤ 0.5 ms server CPU per sync, \
         ≥ 1,200/s on new TLS connections, ≥ 3,000/s kept alive, p99 < 25 ms at 64 clients; \
         server CPU per new-connection sync ≤ 2.0 × the crypto floor; PostgreSQL ≥ 0.8 × SQLite)"
    );
    let sqlite = Scenario::start(args, &dir.join("sqlite"), None, 1, args.ids)?;
    let floor = floor::measure(&sqlite.servers[0].dir, args.floor_iterations)?;
    println!("crypto floor of one sync: {floor}");
    let floor = floor.total().as_secs_f64() * 1000.0;
    let sqlite_figures = sqlite.measure(args, floor, None)?;
    drop(sqlite);
    if args.million {
        Scenario::start(args, &dir.join("sqlite-million"), None, 1, 1_000_000)?
            .measure(args, floor, None)?;
    }

    let mut postgres_figures = Vec::new();
    match postgres::find().filter(|_| !args.no_postgres) {
        None => println!(
            "-- PostgreSQL: skipped ({})",
            if args.no_postgres {
                "--no-postgres"
            } else {
                "no initdb found; install PostgreSQL to measure the scale-out path"
            }
        ),
        Some(bin) => {
            let pg = postgres::Postgres::start(&bin, 200)?;
            for processes in [1, 2] {
                let url = pg.database(&format!("bench_{processes}"))?;
                let scenario = Scenario::start(
                    args,
                    &dir.join(format!("postgres-{processes}")),
                    Some(url),
                    processes,
                    args.ids,
                )?;
                postgres_figures.push((processes, scenario.measure(args, floor, Some(&pg))?));
            }
        }
    }

    println!("-- Against the targets");
    println!(
        "main-server CPU per new-connection sync on SQLite: {:.3} ms = {:.2} × the crypto floor (target ≤ 2.0)",
        sqlite_figures.new.server_ms,
        sqlite_figures.new.server_ms / floor
    );
    for (processes, figures) in &postgres_figures {
        println!(
            "PostgreSQL / SQLite syncs/s with {processes} main-server process{}: new connections {:.2}, kept alive {:.2} (target ≥ 0.8)",
            if *processes == 1 { "" } else { "es" },
            figures.new.per_second / sqlite_figures.new.per_second,
            figures.kept_alive.per_second / sqlite_figures.kept_alive.per_second,
        );
    }
    Ok(())
}

/// Main-server processes on one registry, with the clients of its active ids.
struct Scenario {
    label: String,
    servers: Vec<MainServer>,
    clients: Clients,
    ca: PathBuf,
}

/// One mode's figures.
struct Figures {
    per_second: f64,
    server_ms: f64,
}

struct ModeFigures {
    new: Figures,
    kept_alive: Figures,
}

impl Scenario {
    fn start(
        args: &Args,
        dir: &Path,
        database_url: Option<String>,
        processes: usize,
        ids: usize,
    ) -> Result<Self> {
        let label = format!(
            "{}, {} main-server process{}, {ids} registered ids",
            if database_url.is_some() {
                "PostgreSQL (same machine, fsync on)"
            } else {
                "SQLite"
            },
            processes,
            if processes == 1 { "" } else { "es" }
        );
        let first = MainServer::start(
            &dir.join("main-1"),
            MainOptions {
                database_url: database_url.clone(),
                clock_offset: None,
                // Two sync workers, as every figure in BENCHMARKS.md was measured.
                workers: Some(2),
                ..MainOptions::default()
            },
        )?;
        let db_path = first.dir.join("main.db");
        let registry = match &database_url {
            Some(url) => Registry::Postgres(url),
            None => Registry::Sqlite(&db_path),
        };
        let began = Instant::now();
        let active = sync_load::register(registry, ids, args.active_ids.clamp(1, ids))?;
        let registered = began.elapsed();
        let mut servers = vec![first];
        for n in 2..=processes {
            let another = servers[0].another_process(&dir.join(format!("main-{n}")))?;
            servers.push(another);
        }
        println!(
            "-- {label} ({} active, registered in {:.1} s)",
            active.len(),
            registered.as_secs_f64()
        );
        let ca = servers[0].dir.join("ca.pem");
        Ok(Self {
            label,
            servers,
            clients: Clients::new(active)?,
            ca,
        })
    }

    /// Runs both modes and prints a line each.
    fn measure(
        &self,
        args: &Args,
        floor_ms: f64,
        pg: Option<&postgres::Postgres>,
    ) -> Result<ModeFigures> {
        // The IP address, not `localhost`: no name lookup per connection.
        let urls: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("https://{}/api/v1/sync", s.sync[0]))
            .collect();
        let ticks = cpu::ticks_per_second();
        let own = std::process::id();
        let mut measured = Vec::new();
        for (mode, new_connection) in [("new connections", true), ("kept alive", false)] {
            let texts = self.clients.sync_data(args.syncs)?;
            let servers_ticks = || -> Result<u64> {
                self.servers
                    .iter()
                    .map(|s| cpu::process_ticks(s.pid()))
                    .sum()
            };
            let pg_ticks = || -> Result<u64> { pg.map_or(Ok(0), |pg| cpu::tree_ticks(pg.pid()?)) };
            let (server_before, pg_before, own_before) =
                (servers_ticks()?, pg_ticks()?, cpu::process_ticks(own)?);
            let load = Load {
                concurrency: args.concurrency,
                new_connection,
                rate: if new_connection {
                    args.rate_new
                } else {
                    args.rate_kept_alive
                },
            };
            let run = sync_load::run(texts, &urls, &self.ca, load)?;
            let mode = if load.rate > 0 {
                format!("{mode} (paced, {}/s)", load.rate)
            } else {
                mode.to_owned()
            };
            let per_sync = |before: u64, after: u64| {
                after.saturating_sub(before) as f64 / ticks * 1000.0
                    / run.latencies.len().max(1) as f64
            };
            let server_ms = per_sync(server_before, servers_ticks()?);
            let pg_ms = per_sync(pg_before, pg_ticks()?);
            let own_ms = per_sync(own_before, cpu::process_ticks(own)?);
            println!(
                "{mode:>16}: {:.0} syncs/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
                 main-server CPU {server_ms:.3} ms/sync ({:.2} × floor){}, load generator CPU \
                 {own_ms:.3} ms/sync; {} failed of {}",
                run.per_second(),
                run.percentile(0.50),
                run.percentile(0.90),
                run.percentile(0.99),
                run.percentile(1.0),
                server_ms / floor_ms,
                if pg.is_some() {
                    format!(", PostgreSQL CPU {pg_ms:.3} ms/sync")
                } else {
                    String::new()
                },
                run.failures,
                run.latencies.len(),
            );
            if run.failures > 0 {
                // Reported, not fatal: on a starved machine a client can time out.
                println!(
                    "{:>16}  note: {} syncs failed (timed out or refused) in {}",
                    "", run.failures, self.label
                );
            }
            measured.push(Figures {
                per_second: run.per_second(),
                server_ms,
            });
        }
        let kept_alive = measured.pop().context("no kept-alive figures")?;
        let new = measured.pop().context("no new-connection figures")?;
        Ok(ModeFigures { new, kept_alive })
    }
}

/// The local server: check-out+check-in pairs per second, then memory idle and with
/// The lease load at 8 and 32 connections, then again with an options file of 100
/// rules, 1,000 clients waiting in a queue and 10,000 live leases.
fn local_server(args: &Args, dir: &Path) -> Result<()> {
    println!("\n== Local server (bars: ≥ 5,000 check-out+check-in pairs/s, p99 < 5 ms at 8 and 32 connections, also with 100 option rules, 1,000 queued clients and 10,000 live leases; idle RSS < 30 MiB)");
    let main = MainServer::start(&dir.join("local-main"), MainOptions::default())?;
    let admin = main.admin()?;
    let customer = admin.customer("Bench AB", &["bench@bench.example"])?;
    let id = admin.server(&customer)?;
    admin.add_license(id, "bench", 20_000)?;
    admin.add_license(id, "queued", 1)?;
    let mut local = LocalServer::init(&dir.join("local"), id, &main)?;
    local.cli("sync", &[])?.assert_success()?;
    local.serve()?;
    let pid = local.pid().context("the local server is not running")?;
    println!("idle resident memory: {:.1} MiB", rss_mib(pid)?);

    let load = binary("solme-lease-load")?;
    let lease_load = |extra: &[&str]| -> Result<()> {
        for connections in ["8", "32"] {
            let status = Command::new(&load)
                .arg(local.api_url()?)
                .arg("bench")
                .arg(connections)
                .arg(args.seconds.to_string())
                .args(extra)
                .status()
                .context("running solme-lease-load")?;
            if !status.success() {
                bail!("solme-lease-load failed");
            }
        }
        Ok(())
    };
    lease_load(&[])?;

    let options = dir.join("bench-options.toml");
    std::fs::write(&options, hundred_rules()).context("writing the options file")?;
    let path = options.to_str().context("temporary path is not UTF-8")?;
    local.cli("options", &["apply", path])?.assert_success()?;
    // The queue's only seat is taken, so its clients wait.
    local
        .checkout("queued", "holder")?
        .map_err(|r| anyhow::anyhow!("taking the queue's seat: {r:?}"))?;
    let started = Instant::now();
    let leases: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|n| {
                let local = &local;
                scope.spawn(move || {
                    (0..1250)
                        .filter(|i| {
                            matches!(
                                local.checkout("bench", &format!("client-{n}-{i}")),
                                Ok(Ok(_))
                            )
                        })
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    println!(
        "{leases} live leases checked out in {:.1} s; resident memory now {:.1} MiB",
        started.elapsed().as_secs_f64(),
        rss_mib(pid)?
    );
    println!("with 100 option rules, 1,000 queued clients and {leases} live leases:");
    lease_load(&["1000", "queued"])?;
    println!(
        "resident memory after the loaded run: {:.1} MiB",
        rss_mib(pid)?
    );
    options_file::measure(&local, dir, "bench")?;
    local.stop()?;
    Ok(())
}

/// The local server under programs made with the client library: a reconnect storm
/// (the server killed and started again under held seats), then RLM's load mix.
fn storm(args: &Args, dir: &Path) -> Result<()> {
    println!(
        "\n== Local server under the client library: reconnect storm and RLM's load mix \
         (bars: every program served again, no seat lost or given twice, latency back to \
         normal within seconds)"
    );
    let main = MainServer::start(&dir.join("storm-main"), MainOptions::default())?;
    let admin = main.admin()?;
    let customer = admin.customer("Storm AB", &["storm@bench.example"])?;
    let id = admin.server(&customer)?;
    let seats = |n: usize| u32::try_from(n).context("too many programs");
    // Exactly as many seats as programs: a seat given twice leaves one program without.
    admin.add_license(id, "storm", seats(args.storm_clients.max(1))?)?;
    admin.add_license(id, "probe", 100)?;
    admin.add_license(id, "mix", seats(args.mix_clients.max(1))?)?;
    let mut local = LocalServer::init(&dir.join("storm-local"), id, &main)?;
    local.cli("sync", &[])?.assert_success()?;
    let lease_seconds = args.storm_lease_seconds.to_string();
    let serve_args = ["--lease-seconds", lease_seconds.as_str()];
    local.serve_with(&serve_args)?;
    let url = local.api_url()?;
    let listen = url.trim_start_matches("http://").to_owned();
    let load = binary("solme-client-load")?;

    let mut generator = Command::new(&load)
        .args(["storm", &url, "storm", "probe"])
        .arg(args.storm_clients.max(1).to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running solme-client-load")?;
    let mut to_generator = generator
        .stdin
        .take()
        .context("no input to the generator")?;
    let from_generator = generator
        .stdout
        .take()
        .context("no output of the generator")?;
    for line in std::io::BufRead::lines(std::io::BufReader::new(from_generator)) {
        let line = line.context("reading the generator's output")?;
        if line != "@held" {
            println!("{line}");
            continue;
        }
        // Down for one heartbeat interval and a second: every program has missed a
        // heartbeat and is retrying with back-off when the server comes back.
        let down = Duration::from_secs(u64::from(args.storm_lease_seconds / 3) + 1);
        local.kill();
        std::thread::sleep(down);
        let starting = Instant::now();
        local.serve_at(&listen, &serve_args)?;
        println!(
            "server killed (SIGKILL), down {:.1} s, started again on the same address in {:.2} s",
            down.as_secs_f64(),
            starting.elapsed().as_secs_f64()
        );
        std::io::Write::write_all(&mut to_generator, b"restarted\n")
            .context("telling the generator")?;
    }
    if !generator
        .wait()
        .context("waiting for the generator")?
        .success()
    {
        bail!("the storm failed (solme-client-load)");
    }

    let status = Command::new(&load)
        .args(["mix", &url, "mix"])
        .arg(args.mix_clients.max(1).to_string())
        .arg(args.mix_seconds.max(1).to_string())
        .arg(args.mix_scale.to_string())
        .status()
        .context("running solme-client-load")?;
    if !status.success() {
        bail!("the load mix failed (solme-client-load)");
    }
    local.stop()?;
    Ok(())
}

/// An options file of 100 rules on the benchmarked feature: 40 reservations of one seat
/// for 20 groups of 5 users, 40 per-user limits, 20 host exclusions. The load's own
/// clients belong to none of them, so every check-out evaluates them all.
fn hundred_rules() -> String {
    let mut text = String::from("[groups]\n");
    for g in 0..20 {
        let members: Vec<String> = (0..5).map(|m| format!("\"user-{g}-{m}\"")).collect();
        text.push_str(&format!("team-{g} = [{}]\n", members.join(", ")));
    }
    for r in 0..40 {
        text.push_str(&format!(
            "\n[[reserve]]\nfeature = \"bench\"\nseats = 1\ngroup = \"team-{}\"\n",
            r % 20
        ));
    }
    for r in 0..40 {
        text.push_str(&format!(
            "\n[[max]]\nfeature = \"bench\"\nseats = 2\nuser = \"user-{}-{}\"\n",
            r % 20,
            r % 5
        ));
    }
    for r in 0..20 {
        text.push_str(&format!(
            "\n[[exclude]]\nfeature = \"bench\"\nhost = \"kiosk-{r}\"\n"
        ));
    }
    text
}

/// The mail gateway: sync mails received over SMTP, answered and delivered per second.
fn mail_gateway(args: &Args, dir: &Path) -> Result<()> {
    println!(
        "\n== Mail gateway (bar: ≥ 100 sync mails per second received, answered and delivered)"
    );
    let main = MainServer::start(&dir.join("mail-main"), MainOptions::default())?;
    let admin = main.admin()?;
    let contact = "bench@bench.example";
    let customer = admin.customer("Bench AB", &[contact])?;
    let mut sync_data = Vec::with_capacity(args.mails);
    for _ in 0..args.mails {
        let id = admin.server(&customer)?;
        admin.add_license(id, "bench", 5)?;
        let identity = ServerIdentity::generate()?;
        let request = SyncRequest {
            version: shared_proto::messages::MESSAGE_VERSION,
            server_id: id,
            request_id: Uuid::new_v4(),
            created_at: Utc::now(),
            public_keys: identity.public_keys(),
            held_revision: None,
            held_sequence: None,
            software_version: env!("CARGO_PKG_VERSION").to_string(),
            usage: vec![],
            usage_since: None,
            held_file_sha256: None,
            request_counter: None,
            borrows: None,
            standby_keys: None,
        };
        sync_data.push(shared_proto::sync_data::seal(&identity, &request)?);
    }
    let gateway = MailGateway::start(&dir.join("gateway"), &main)?;
    let outbox = gateway.outbox();

    let started = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let chunks: Vec<_> = sync_data.chunks(args.mails.div_ceil(8).max(1)).collect();
        let senders: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let gateway = &gateway;
                scope.spawn(move || -> Result<()> {
                    for text in chunk {
                        send_sync_mail(gateway.smtp, contact, &gateway.address, text)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for sender in senders {
            sender
                .join()
                .map_err(|_| anyhow::anyhow!("a sender thread panicked"))??;
        }
        Ok(())
    })?;
    let accepted = started.elapsed();
    wait_until("every reply", Duration::from_secs(600), || {
        let replies = std::fs::read_dir(&outbox)
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
            .count();
        (replies >= args.mails).then_some(())
    })?;
    let answered = started.elapsed();
    println!(
        "{} sync mails over 8 SMTP connections: all accepted in {:.2} s, all answered into the outbox in {:.2} s = {:.0} mails/s",
        args.mails,
        accepted.as_secs_f64(),
        answered.as_secs_f64(),
        args.mails as f64 / answered.as_secs_f64()
    );
    Ok(())
}

/// Resident memory of a process, from `/proc/PID/status`.
fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading the process status")?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")?;
    Ok(kib / 1024.0)
}
