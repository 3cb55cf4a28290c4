//! Setting a simulation's world up: fresh (Solme's main server, one or two replicas of
//! it, a customer with its ids and licenses, the mail gateway and the local servers,
//! each on ephemeral ports), or resumed from the record a run left in
//! `DIR/world.json` (the same ids, keys, customers and data, on the same ports where
//! they are free). The one place local servers are installed, so that `servers add`
//! and `servers reinstall` install them as the set-up does.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use shared_proto::admin_api::AdminUrl;
use test_harness::{LocalServer, MailGateway, MainOptions, MainServer};
use uuid::Uuid;

use super::events::{EventLog, What};
use super::world::{
    replica_name, CustomerRecord, GatewayRecord, Program, ProgramKind, ReplicaRecord, ServerRecord,
    SyncMode, WorldFile,
};

/// The demo customer every simulation starts with.
pub const CUSTOMER_NAME: &str = "Acme Engineering AB";
pub const CUSTOMER_EMAIL: &str = "ops@acme.example";
/// The licenses each local server of the set-up (and each one added) gets.
pub const LICENSES: [(&str, u32); 2] = [("solme-cad", 5), ("solme-cam", 2)];
/// Where a local server that syncs by mail only is pointed: a loopback port nothing
/// listens on, so its direct syncs are refused at once, as on a site with no way out.
pub const NO_WAY_OUT: &str = "https://127.0.0.1:1";
/// An address that picks a free port.
const ANY_PORT: &str = "127.0.0.1:0";

fn step(text: &str) {
    println!("\n==> {text}");
}

fn say(text: &str) {
    println!("    {text}");
}

/// How a fresh world is set up.
#[derive(Debug, Clone)]
pub struct Plan {
    pub local_servers: usize,
    pub replicas: usize,
    pub database_url: Option<String>,
    /// The local servers' `serve` flags beyond the data directory and the address.
    pub local_flags: Vec<String>,
    /// The gateway's `serve` flags beyond the harness's defaults.
    pub gateway_flags: Vec<String>,
}

/// The programs of a world, running.
pub struct Started {
    pub world: WorldFile,
    /// The first main-server replica (`main-server`).
    pub main: MainServer,
    /// The second and later ones (`main-server-2`, …).
    pub replicas: Vec<MainServer>,
    pub gateway: MailGateway,
    /// In the order of `world.servers`.
    pub locals: Vec<LocalServer>,
}

fn main_options(world_database: Option<&String>, clock_file: &Path) -> MainOptions {
    MainOptions {
        database_url: world_database.cloned(),
        clock_file: Some(clock_file.to_path_buf()),
        ..MainOptions::default()
    }
}

fn replica_record(name: String, main: &MainServer) -> ReplicaRecord {
    ReplicaRecord {
        name,
        dir: main.dir.clone(),
        sync: main.sync.iter().map(ToString::to_string).collect(),
        admin: main.admin_url(),
    }
}

fn started(events: &EventLog, program: &str, pid: Option<u32>) {
    if let Some(pid) = pid {
        events.record(What::ProgramStarted {
            program: program.to_string(),
            pid,
        });
    }
}

/// How the local servers of a world are installed and run: the main server whose keys
/// they trust, the clock file they follow and the flags of their `serve`.
pub struct LocalSetup<'a> {
    pub main: &'a MainServer,
    pub clock_file: &'a Path,
    pub flags: &'a [String],
}

impl LocalSetup<'_> {
    /// Installs a local server for `id` in `dir` (`init`, then `auto-sync` for a daily
    /// or weekly one) pointed at `endpoints` (or nowhere, for one that syncs by mail),
    /// and starts its `serve` on `listen` (or a free port when that is taken).
    pub fn install(
        &self,
        dir: &Path,
        id: Uuid,
        endpoints: &[String],
        sync: SyncMode,
        listen: &str,
    ) -> Result<LocalServer> {
        let endpoints = match sync {
            SyncMode::Email => vec![NO_WAY_OUT.to_string()],
            _ => endpoints.to_vec(),
        };
        let mut local = LocalServer::init_with(dir, id, self.main, &endpoints, &[])?;
        local.set_clock_file(Some(self.clock_file));
        if matches!(sync, SyncMode::Daily | SyncMode::Weekly) {
            local
                .succeed("auto-sync", &[sync.name()])
                .context("turning automatic synchronization on")?;
        }
        serve_local(&mut local, listen, self.flags)?;
        Ok(local)
    }
}

/// Starts a local server's `serve` on `listen`, or on a free port when that is taken.
pub fn serve_local(local: &mut LocalServer, listen: &str, flags: &[String]) -> Result<()> {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    if local.serve_at(listen, &flags).is_ok() {
        return Ok(());
    }
    if listen == ANY_PORT {
        bail!("the local server in {} did not start", local.dir.display());
    }
    say(&format!(
        "{listen} is taken: {} serves on another port",
        local.dir.display()
    ));
    local.serve_at(ANY_PORT, &flags)
}

/// The address a serving local server listens on (`127.0.0.1:PORT`).
pub fn listen_of(local: &LocalServer) -> Result<String> {
    Ok(local.api_url()?.trim_start_matches("http://").to_string())
}

/// Sets a new world up in `root`.
pub fn fresh(root: &Path, plan: &Plan, clock_file: &Path, events: &EventLog) -> Result<Started> {
    step("Starting Solme's main license server");
    let options = main_options(plan.database_url.as_ref(), clock_file);
    let main = MainServer::start(&root.join("main-server"), options)?;
    say(&format!(
        "sync API on {} (the \"443\" port) and {} (the \"8080\" port); admin API on {}",
        main.sync[0], main.sync[1], main.admin
    ));
    started(events, "main-server", Some(main.pid()));
    let mut replicas = Vec::new();
    for n in 2..=plan.replicas {
        let name = replica_name(n);
        let replica = main.another_process(&root.join(&name))?;
        say(&format!(
            "{name}: a second process on the same PostgreSQL database, sync API on {} and {}, admin API on {}",
            replica.sync[0], replica.sync[1], replica.admin
        ));
        started(events, &name, Some(replica.pid()));
        replicas.push(replica);
    }
    let admin = main.admin()?;

    step("Registering the demo customer, its license server ids and licenses");
    let customer = admin.customer(CUSTOMER_NAME, &[CUSTOMER_EMAIL])?;
    let mut ids = Vec::new();
    for _ in 0..plan.local_servers {
        let id = admin.server(&customer)?;
        for (feature, seats) in LICENSES {
            admin.add_license(id, feature, seats)?;
        }
        ids.push(id);
        say(&format!(
            "license server id {id}: solme-cad × 5 seats, solme-cam × 2 seats"
        ));
    }
    say(&format!(
        "customer {CUSTOMER_NAME}, contact {CUSTOMER_EMAIL}"
    ));

    step("Starting the licensing@ mail gateway");
    let flags: Vec<&str> = plan.gateway_flags.iter().map(String::as_str).collect();
    let gateway = MailGateway::start_with(&root.join("mail-gateway"), &main, &flags)?;
    started(events, "mail-gateway", Some(gateway.pid()));
    say(&format!(
        "SMTP on {} for {}; status page on http://{}/ ; replies are written to {}",
        gateway.smtp,
        gateway.address,
        gateway.http,
        gateway.outbox().display()
    ));

    let mut world = WorldFile {
        version: 1,
        database_url: plan.database_url.clone(),
        replicas: std::iter::once(replica_record(replica_name(1), &main))
            .chain(
                replicas
                    .iter()
                    .enumerate()
                    .map(|(i, r)| replica_record(replica_name(i + 2), r)),
            )
            .collect(),
        gateway: GatewayRecord {
            dir: gateway.dir.clone(),
            smtp: gateway.smtp.to_string(),
            http: gateway.http.to_string(),
        },
        customers: vec![CustomerRecord {
            name: CUSTOMER_NAME.to_string(),
            id: customer.clone(),
            contacts: vec![CUSTOMER_EMAIL.to_string()],
        }],
        servers: Vec::new(),
        local_flags: plan.local_flags.clone(),
        gateway_flags: plan.gateway_flags.clone(),
    };

    step("Installing the customer's local license servers");
    let mut locals = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let name = format!("local-server-{}", n + 1);
        let setup = LocalSetup {
            main: &main,
            clock_file,
            flags: &plan.local_flags,
        };
        let local = setup.install(
            &root.join(&name),
            *id,
            &world.endpoints_for(n),
            SyncMode::Direct,
            ANY_PORT,
        )?;
        started(events, &name, local.pid());
        say(&format!(
            "{name} (id {id}) serving clients on {}",
            local.api_url()?
        ));
        world.servers.push(ServerRecord {
            name,
            id: *id,
            customer: Some(customer.clone()),
            sync: SyncMode::Direct,
            dir: local.dir.clone(),
            listen: listen_of(&local)?,
            reinstalls: 0,
        });
        locals.push(local);
    }
    world.save(root)?;
    Ok(Started {
        world,
        main,
        replicas,
        gateway,
        locals,
    })
}

/// Starts the world recorded in `root` again: every replica on its ports (they must be
/// free: the local servers are configured for them), the gateway and each local server
/// on theirs where free, with the data each left.
pub fn resume(
    root: &Path,
    mut world: WorldFile,
    clock_file: &Path,
    events: &EventLog,
) -> Result<Started> {
    step("Starting Solme's main license server again");
    let mut mains = Vec::new();
    for record in &world.replicas {
        let sync: Vec<SocketAddr> = record
            .sync
            .iter()
            .map(|a| a.parse())
            .collect::<Result<_, _>>()
            .with_context(|| {
                format!(
                    "{} names a damaged address of {}",
                    super::world::WORLD_FILE,
                    record.name
                )
            })?;
        let admin: AdminUrl = record.admin.parse().map_err(|_| {
            anyhow::anyhow!(
                "{} names a damaged admin address of {}",
                super::world::WORLD_FILE,
                record.name
            )
        })?;
        let options = main_options(world.database_url.as_ref(), clock_file);
        let main = MainServer::start_at(&record.dir, options, &sync, admin).with_context(|| {
            format!(
                "starting {} again on {} and {} (the local servers are configured for these \
                 ports: free them, or start a new simulation in another directory)",
                record.name,
                record.sync.join(", "),
                record.admin
            )
        })?;
        say(&format!(
            "{}: sync API on {} and {}, admin API on {}",
            record.name, main.sync[0], main.sync[1], main.admin
        ));
        started(events, &record.name, Some(main.pid()));
        mains.push(main);
    }
    if mains.is_empty() {
        bail!("{} names no main server", super::world::WORLD_FILE);
    }
    let main = mains.remove(0);

    step("Starting the licensing@ mail gateway again");
    let flags: Vec<&str> = world.gateway_flags.iter().map(String::as_str).collect();
    let (smtp, http) = (world.gateway.smtp.clone(), world.gateway.http.clone());
    let mut same_ports = flags.clone();
    same_ports.extend(["--smtp-listen", &smtp, "--http-listen", &http]);
    let gateway = match MailGateway::start_with(&world.gateway.dir, &main, &same_ports) {
        Ok(gateway) => gateway,
        Err(_) => {
            say(&format!(
                "{smtp} or {http} is taken: the gateway listens on other ports"
            ));
            MailGateway::start_with(&world.gateway.dir, &main, &flags)?
        }
    };
    started(events, "mail-gateway", Some(gateway.pid()));
    say(&format!(
        "SMTP on {}; status page on http://{}/",
        gateway.smtp, gateway.http
    ));
    world.gateway.smtp = gateway.smtp.to_string();
    world.gateway.http = gateway.http.to_string();

    step("Starting the local license servers again");
    let mut locals = Vec::new();
    for record in &mut world.servers {
        let mut local = LocalServer::existing(&record.dir, record.id);
        local.set_clock_file(Some(clock_file));
        serve_local(&mut local, &record.listen, &world.local_flags)?;
        started(events, &record.name, local.pid());
        record.listen = listen_of(&local)?;
        say(&format!(
            "{} (id {}) serving clients on {}",
            record.name,
            record.id,
            local.api_url()?
        ));
        locals.push(local);
    }
    world.save(root)?;
    Ok(Started {
        world,
        main,
        replicas: mains,
        gateway,
        locals,
    })
}

/// A local server as the control API lists it.
pub fn local_program(name: &str, local: &LocalServer) -> Result<Program> {
    Ok(Program {
        name: name.to_string(),
        kind: ProgramKind::LocalServer,
        data_dir: local.dir.clone(),
        pid: local.pid(),
        addresses: [("api".to_string(), local.api_url()?)].into(),
    })
}

fn main_program(name: String, main: &MainServer) -> Program {
    Program {
        name,
        kind: ProgramKind::MainServer,
        data_dir: main.dir.clone(),
        pid: Some(main.pid()),
        addresses: [
            ("sync-443".to_string(), format!("https://{}", main.sync[0])),
            ("sync-8080".to_string(), format!("https://{}", main.sync[1])),
            ("admin".to_string(), main.admin_url()),
        ]
        .into(),
    }
}

impl Started {
    /// The programs as the control API lists them: the replicas, the gateway, the local
    /// servers.
    pub fn programs(&self) -> Result<Vec<Program>> {
        let mut programs = vec![main_program(replica_name(1), &self.main)];
        programs.extend(
            self.replicas
                .iter()
                .enumerate()
                .map(|(i, r)| main_program(replica_name(i + 2), r)),
        );
        programs.push(Program {
            name: "mail-gateway".to_string(),
            kind: ProgramKind::MailGateway,
            data_dir: self.gateway.dir.clone(),
            pid: Some(self.gateway.pid()),
            addresses: [
                ("smtp".to_string(), self.gateway.smtp.to_string()),
                ("http".to_string(), format!("http://{}", self.gateway.http)),
            ]
            .into(),
        });
        for (record, local) in self.world.servers.iter().zip(&self.locals) {
            programs.push(local_program(&record.name, local)?);
        }
        Ok(programs)
    }
}
