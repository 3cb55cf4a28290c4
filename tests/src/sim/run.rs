//! The one-command run: a main server with a demo customer, a mail gateway and local
//! servers on loopback, all on one simulated clock (`DIR/clock.json`); a direct sync,
//! an email sync and a license checkout; then everything stays up, driven through the
//! control API, until Ctrl-C. Given the directory of a simulation that was stopped,
//! it resumes it instead ([`super::world_setup::resume`]).

use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use solme_client::Options;
use test_harness::mail::{send_sync_mail, wait_for_reply};
use test_harness::{LocalServer, MailGateway};

use super::clock::SimClock;
use super::control_api::ControlServer;
use super::events::{watch_outbox, EventLog, What};
use super::faults::{Faults, Local, Processes};
use super::world::{Programs, Simulation, WorldFile, MAX_REPLICAS};
use super::world_setup::{self, Plan, CUSTOMER_EMAIL};

/// How the one-command run sets the world up.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// How many customer license servers to start (the first syncs over HTTPS, the
    /// second by email; more only sync over HTTPS).
    #[arg(long, env = "SOLME_SIM_LOCAL_SERVERS", default_value_t = 2)]
    pub local_servers: usize,
    /// Where to keep every program's files; a new temporary directory when not given
    /// (kept after the run so you can look at it). The directory of a simulation that
    /// was stopped resumes it (the same ids, keys and data). The other commands find the
    /// running simulation through it.
    #[arg(long, global = true, env = "SOLME_SIM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Use this PostgreSQL database for the main server instead of SQLite.
    #[arg(long, env = "SOLME_SIM_DATABASE_URL")]
    pub database_url: Option<String>,
    /// How many main-server processes to run on the one PostgreSQL database (1 or 2;
    /// 2 needs --database-url). The second is `main-server-2`; the local servers try
    /// every replica's ports in turn.
    #[arg(long, env = "SOLME_SIM_MAIN_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=MAX_REPLICAS as i64))]
    pub main_replicas: u8,
    /// Start the simulated clock this many days in the future (or the past, if
    /// negative).
    #[arg(long, env = "SOLME_SIM_CLOCK_OFFSET_DAYS", allow_hyphen_values = true)]
    pub clock_offset_days: Option<i64>,
    /// Skip the demonstration journeys (syncs, an email sync, a checkout): the world is
    /// handed over with every local server installed but never synchronized, as the
    /// scenario runner wants it.
    #[arg(long, env = "SOLME_SIM_NO_JOURNEYS")]
    pub no_journeys: bool,
    /// Put the customer's HTTP proxy (demanding credentials) between the local servers
    /// and Solme, so that its faults can be switched (`fault proxy-auth customer-proxy`).
    #[arg(long, env = "SOLME_SIM_CUSTOMER_PROXY")]
    pub customer_proxy: bool,
}

/// The local servers' `serve` flags: the automatic-sync scheduler looks at the clock
/// twice a second.
const LOCAL_FLAGS: [&str; 2] = ["--scheduler-tick-ms", "500"];

fn step(text: &str) {
    println!("\n==> {text}");
}

fn say(text: &str) {
    println!("    {text}");
}

/// Sets the world up (or resumes the one in `--data-dir`), serves the control API, and
/// waits for Ctrl-C.
pub fn run(args: RunArgs) -> Result<()> {
    if args.local_servers == 0 {
        bail!("--local-servers must be at least 1");
    }
    if args.main_replicas > 1 && args.database_url.is_none() {
        // A usage error (exit 2), refused before anything starts.
        clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            "--main-replicas 2 runs two main-server processes on one PostgreSQL database: \
             give it with --database-url postgres://… (SQLite is a file of one process)\n",
        )
        .exit();
    }
    // `cargo run` builds only this binary: bring the three programs up to date too.
    println!("Building the programs (main-server, local-server, mail-gateway)…");
    test_harness::process::build_programs(&[])?;
    let mut resumed: Option<WorldFile> = None;
    let root = match &args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            resumed = WorldFile::read(dir)?;
            let used = std::fs::read_dir(dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .next()
                .is_some();
            if used && resumed.is_none() {
                bail!(
                    "{} is not empty and holds no simulation to resume (no {}): give an \
                     empty or new directory, or the directory of a simulation",
                    dir.display(),
                    super::world::WORLD_FILE
                );
            }
            if let Some(info) = std::fs::read_to_string(dir.join(super::control_api::CONTROL_FILE))
                .ok()
                .and_then(|t| serde_json::from_str::<super::control_api::ControlFile>(&t).ok())
            {
                let answers = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(2))
                    .build()
                    .get(&format!("{}/v1/openapi.json", info.url))
                    .call()
                    .is_ok();
                if answers {
                    bail!(
                        "the simulation in {} is running (process {}): drive it with \
                         `solme-sim --data-dir {} status`, or stop it first",
                        dir.display(),
                        info.pid,
                        dir.display()
                    );
                }
            }
            dir.clone()
        }
        None => tempfile::Builder::new()
            .prefix("solme-sim-")
            .tempdir()
            .context("making a temporary directory")?
            .keep(),
    };
    // The network between the local servers and Solme: relays in front of the main
    // server's sync ports (and the customer's proxy), where the network faults are made.
    super::fault_net::install(&root, args.customer_proxy)?;
    // One clock for every program, moved by the control API while they run; a resumed
    // simulation keeps the distance its clock file had from the system clock.
    let clock_path = root.join("clock.json");
    let offset = match &resumed {
        Some(_) => shared_proto::clock::read_clock_file(&clock_path)
            .with_context(|| format!("reading {}", clock_path.display()))?,
        None => chrono::Duration::try_days(args.clock_offset_days.unwrap_or(0))
            .context("--clock-offset-days is too large")?,
    };
    let events = Arc::new(match &resumed {
        Some(_) => EventLog::resume(&root, offset)?,
        None => EventLog::create(&root, offset)?,
    });
    let clock = SimClock::create(&clock_path, offset, events.clone())?;
    let clock_file = clock.path().to_path_buf();
    let clock_arg = clock_file.to_string_lossy().into_owned();
    println!("Solme licensing simulation — files in {}", root.display());
    say(&format!(
        "simulated clock: {} ({} from the system clock), in {}",
        clock.state().now.format("%Y-%m-%d %H:%M UTC"),
        clock.state().offset,
        clock_file.display()
    ));

    // It asks the main server for due reminders and decided key-clear requests every
    // second, so a moved clock shows in the customer's inbox within a second or two.
    let gateway_flags = [
        "--clock-file",
        &clock_arg,
        "--reminder-interval-seconds",
        "1",
        "--notice-interval-ms",
        "1000",
    ];
    let fresh = resumed.is_none();
    let world_started = match resumed {
        Some(world) => {
            say("resuming: the ids, keys, customers and data of the simulation stopped here");
            let started = world_setup::resume(&root, world, &clock_file, &events)?;
            events.record(What::World {
                change: "resumed".to_string(),
                name: root.display().to_string(),
                detail: format!(
                    "{} local server(s), {} customer(s), {} main-server replica(s)",
                    started.world.servers.len(),
                    started.world.customers.len(),
                    started.world.replicas.len()
                ),
            });
            started
        }
        None => world_setup::fresh(
            &root,
            &Plan {
                local_servers: args.local_servers,
                replicas: usize::from(args.main_replicas),
                database_url: args.database_url.clone(),
                // The automatic-sync scheduler looks at the clock twice a second.
                local_flags: LOCAL_FLAGS.map(String::from).to_vec(),
                gateway_flags: gateway_flags.map(String::from).to_vec(),
            },
            &clock_file,
            &events,
        )?,
    };
    let stop_watching = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_outbox(
        events.clone(),
        world_started.gateway.outbox(),
        stop_watching.clone(),
    )?;

    if !fresh {
        say("resumed: no journeys run");
    } else if args.no_journeys {
        say("no journeys run (--no-journeys): every local server is still unsynchronized");
    } else {
        demo_journeys(&world_started.locals, &world_started.gateway)?;
    }

    let programs = world_started.programs()?;
    let world_setup::Started {
        world,
        main,
        replicas,
        gateway,
        locals,
    } = world_started;
    let local_api = locals[0].api_url()?;
    let (admin_url, ca_file) = (main.admin_url(), main.ca_file());
    let (gateway_http, outbox) = (gateway.http, gateway.outbox());
    let locals = world
        .servers
        .iter()
        .zip(locals)
        .map(|(record, server)| Local {
            name: record.name.clone(),
            listen: record.listen.clone(),
            flags: world.local_flags.clone(),
            server,
        })
        .collect();
    let processes = Processes {
        main,
        gateway,
        gateway_flags: world.gateway_flags.clone(),
        locals,
        replicas,
    };
    let sim = Arc::new(Simulation {
        root: root.clone(),
        clock,
        programs: Programs::new(programs),
        outbox: outbox.clone(),
        events: events.clone(),
        faults: Faults::new(processes, events.clone()),
        world: std::sync::Mutex::new(world),
    });
    let control = ControlServer::start(sim.clone())?;

    step("Everything is up. Drive it (from another terminal):");
    let sim_bin = std::env::current_exe().context("locating solme-sim")?;
    let sim_cmd = format!("{} --data-dir {}", sim_bin.display(), root.display());
    say(&format!("{sim_cmd} status"));
    say(&format!("{sim_cmd} clock advance 340d"));
    say(&format!("{sim_cmd} mail inbox {CUSTOMER_EMAIL}"));
    say(&format!("{sim_cmd} exec local-server-1 -- status"));
    say(&format!("{sim_cmd} exec main-server -- admin audit"));
    say(&format!(
        "control API: {} (bearer token in {}; see control.json)",
        control.url,
        root.join(super::control_api::TOKEN_FILE).display()
    ));
    say(&format!(
        "curl -X POST -H 'content-type: application/json' -d '{{\"feature\":\"solme-cad\",\"client\":\"me\"}}' {}/api/v1/leases",
        local_api
    ));
    say(&format!("manager page of local-server-1: {local_api}/"));
    say(&format!(
        "operator console: {}/ (its certificate is from the simulation CA {}: \
         trust that in the browser, or accept the warning)",
        admin_url,
        ca_file.display()
    ));
    say(&format!("mail gateway status: http://{gateway_http}/"));
    say(&format!("mails sent by the gateway: {}", outbox.display()));
    println!("\nPress Ctrl-C to stop every program.");

    let (stop_tx, stop_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C handler")?;
    let _ = stop_rx.recv();
    println!("\nStopping…");
    control.stop();
    stop_watching.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watcher.join();
    sim.faults.stop_all()?;
    println!("Stopped. The files stay in {}", root.display());
    Ok(())
}

/// The demonstration run before the world is handed over: a refusal before any sync, a
/// direct sync, an email sync and a checkout.
fn demo_journeys(locals: &[LocalServer], gateway: &MailGateway) -> Result<()> {
    // The designer's program asks for seats with the client library, as licensed
    // programs do.
    let server: solme_client::Url = locals[0]
        .api_url()?
        .parse()
        .context("the local server's address")?;
    let program = solme_client::blocking::Client::new(
        vec![server],
        solme_client::Identity {
            client: "solme-cad".into(),
            user: "designer".into(),
            host: "designer-laptop".into(),
        },
    )?;
    step("A client asks local-server-1 for a seat before any sync");
    match program.checkout("solme-cad", Options::default()) {
        Ok(lease) => bail!("an unsynchronized server issued lease {}", lease.id()),
        Err(solme_client::Error::Refused { code, message, .. }) => {
            say(&format!("refused as it must be: {code} — {message}"))
        }
        Err(other) => return Err(other).context("asking local-server-1 for a seat"),
    }

    step("Direct synchronization of local-server-1 over HTTPS");
    let output = locals[0].succeed("sync", &[])?;
    print_indented(&output.stdout);
    for (n, local) in locals.iter().enumerate().skip(2) {
        local.succeed("sync", &[])?;
        say(&format!("local-server-{} synchronized too", n + 1));
    }

    let email_local = locals.get(1).unwrap_or(&locals[0]);
    step(&format!(
        "Email synchronization of {} through licensing@",
        email_local
            .dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("the local server")
    ));
    let sync_file = email_local.dir.join("sync-data.txt");
    email_local.succeed("export-sync-data", &[&sync_file.to_string_lossy()])?;
    say(&format!(
        "exported the sync data to {}",
        sync_file.display()
    ));
    let sync_data = std::fs::read_to_string(&sync_file).context("reading the sync data")?;
    let message_id = send_sync_mail(gateway.smtp, CUSTOMER_EMAIL, &gateway.address, &sync_data)?;
    say(&format!(
        "mailed it from {CUSTOMER_EMAIL} to {} (Message-ID <{message_id}>)",
        gateway.address
    ));
    let reply = wait_for_reply(&gateway.outbox(), &message_id, Duration::from_secs(60))?;
    say(&format!("reply to {}: \"{}\"", reply.to, reply.subject));
    let license_text = reply
        .license_file()
        .context("the reply carries no license file")?;
    let license_path = email_local.dir.join("license-from-mail.lic");
    std::fs::write(&license_path, license_text).context("saving the license file")?;
    let output = email_local.succeed("import-license-file", &[&license_path.to_string_lossy()])?;
    print_indented(&output.stdout);

    step("A client checks out a seat of solme-cad from local-server-1, then returns it");
    let lease = program
        .checkout("solme-cad", Options::default())
        .context("checking out a seat of solme-cad")?;
    say(&format!(
        "lease {} granted until {} (heartbeats keep it)",
        lease.id(),
        lease
            .expires_at()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    ));
    for feature in program.features()? {
        say(&format!(
            "{}: {} of {} seats in use",
            feature.feature, feature.in_use, feature.seats_total
        ));
    }
    lease.release().context("returning the seat")?;
    say("lease returned; the seat is free again");
    Ok(())
}

fn print_indented(text: &str) {
    for line in text.lines() {
        say(line);
    }
}
