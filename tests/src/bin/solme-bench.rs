//! The benchmarks of the quality bars, in one command: the main server's syncs (its
//! own load generator), the local server's lease check-outs and memory, and the mail
//! gateway's sync mails per second. Release builds; figures are printed, not asserted.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::Parser;
use shared_proto::{ServerIdentity, SyncRequest};
use test_harness::mail::send_sync_mail;
use test_harness::{binary, wait_until, LocalServer, MailGateway, MainOptions, MainServer};
use uuid::Uuid;

/// Measure the three programs against their quality bars on this machine.
#[derive(Debug, Parser)]
#[command(name = "solme-bench", version)]
struct Args {
    /// Also run the main server's benchmark with 1,000,000 registered ids (slow to set up).
    #[arg(long, env = "SOLME_BENCH_MILLION")]
    million: bool,
    /// Seconds of lease load on the local server.
    #[arg(long, env = "SOLME_BENCH_SECONDS", default_value_t = 10)]
    seconds: u64,
    /// Sync mails sent to the gateway.
    #[arg(long, env = "SOLME_BENCH_MAILS", default_value_t = 300)]
    mails: usize,
    /// Which parts to run.
    #[arg(long, env = "SOLME_BENCH_PARTS", value_delimiter = ',', default_values_t = ["main".to_string(), "local".to_string(), "mail".to_string()])]
    parts: Vec<String>,
}

fn main() {
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
    test_harness::process::cargo_build(&["-p", "local-server", "--example", "lease_bench"])?;
    let dir = tempfile::Builder::new()
        .prefix("solme-bench-")
        .tempdir()
        .context("making a temporary directory")?;
    let part = |name: &str| args.parts.iter().any(|p| p == name);
    if part("main") {
        main_server(&args)?;
    }
    if part("local") {
        local_server(&args, dir.path())?;
    }
    if part("mail") {
        mail_gateway(&args, dir.path())?;
    }
    Ok(())
}

/// The main server: its own load generator (new TLS connections and kept-alive ones).
fn main_server(args: &Args) -> Result<()> {
    println!("\n== Main server: full syncs (bars: ≤ 0.5 ms server CPU per sync, ≥ 1,200/s on new TLS connections, ≥ 3,000/s kept alive, p99 < 25 ms at 64 clients)");
    let bench = binary("main-server-bench")?;
    let mut id_counts = vec!["1000"];
    if args.million {
        id_counts.push("1000000");
    }
    for ids in id_counts {
        println!("-- {ids} registered ids");
        let status = Command::new(&bench)
            .args(["--ids", ids, "--concurrency", "64"])
            .status()
            .context("running main-server-bench")?;
        if !status.success() {
            bail!("main-server-bench failed");
        }
    }
    Ok(())
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

    let load = binary("examples/lease_bench")?;
    let lease_load = |extra: &[&str]| -> Result<()> {
        for connections in ["8", "32"] {
            let status = Command::new(&load)
                .arg(local.api_url()?)
                .arg("bench")
                .arg(connections)
                .arg(args.seconds.to_string())
                .args(extra)
                .status()
                .context("running lease_bench")?;
            if !status.success() {
                bail!("lease_bench failed");
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
