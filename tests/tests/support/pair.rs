//! A primary and a standby license server for the standby journeys
//! (`tests/standby.rs`, `tests/standby_partition.rs`): setting the pair up, the clients
//! that list both servers, and the pair's state as the servers stored it.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use solme_client::blocking::{Client, Lease};
use solme_client::{Identity, Settings};
use test_harness::process::wait_until;
use test_harness::LocalServer;

use super::World;

/// The feature the journeys license.
pub const FEATURE: &str = "solme-cad";
/// Fast pair calls and short leases, so that every move takes seconds.
pub const SERVE: [&str; 4] = ["--pair-interval-ms", "300", "--lease-seconds", "3"];
/// The longest any one move may take.
pub const WAIT: Duration = Duration::from_secs(60);

/// A new id with `seats` seats of [`FEATURE`], its primary installed, serving and
/// synchronized.
pub fn serving_primary(world: &World, seats: u32) -> LocalServer {
    let admin = world.admin();
    let id = admin.server(world.customer()).unwrap();
    admin.add_license(id, FEATURE, seats).unwrap();
    let mut primary = LocalServer::init_with(
        &world.dir().join("primary"),
        id,
        &world.mains()[0],
        &world.sync_urls(),
        &[],
    )
    .unwrap();
    primary.serve_with(&SERVE).unwrap();
    primary.succeed("sync", &[]).unwrap();
    primary
}

/// A new pairing code shown by `standby pair` on `primary`.
pub fn pairing_code(primary: &LocalServer) -> String {
    let shown = primary.succeed("standby", &["pair"]).unwrap().stdout;
    shown
        .lines()
        .find_map(|l| l.strip_prefix("Pairing code: "))
        .expect("a pairing code")
        .to_owned()
}

/// Serves a paired `standby`, lets the primary's sync name it to Solme, and waits for
/// its copy of the primary's license file.
pub fn serve_standby(primary: &LocalServer, standby: &mut LocalServer) {
    standby.serve_with(&SERVE).unwrap();
    primary.succeed("sync", &[]).unwrap();
    let held = primary.status().unwrap()["license_file_sequence"].clone();
    wait_until("the standby's copy of the license file", WAIT, || {
        (standby.status().unwrap()["license_file_sequence"] == held).then_some(())
    })
    .unwrap();
}

/// Pairs a standby with `primary` through `primary_address` (the primary's own address
/// or a relay's), serves it and waits for its copy (see [`serve_standby`]).
pub fn pair_standby(world: &World, primary: &LocalServer, primary_address: &str) -> LocalServer {
    let code = pairing_code(primary);
    let mut standby = LocalServer::existing(&world.dir().join("standby"), primary.id);
    standby
        .succeed(
            "init",
            &["--standby-of", primary_address, "--pairing-code", &code],
        )
        .unwrap();
    serve_standby(primary, &mut standby);
    standby
}

/// A client program listing `servers` in that order, as `user`; it gives up after
/// `give_up` when no server serves it.
pub fn client(servers: &[&str], user: &str, give_up: Duration) -> Client {
    let identity = Identity {
        client: "cad-suite".into(),
        user: user.into(),
        host: format!("{user}-pc"),
    };
    let servers = servers.iter().map(|s| s.parse().unwrap()).collect();
    let mut settings = Settings::new(servers, identity).unwrap();
    settings.backoff.first = Duration::from_millis(100);
    settings.backoff.cap = Duration::from_millis(500);
    settings.backoff.give_up_after = give_up;
    settings.connect_timeout = Duration::from_secs(1);
    Client::with_settings(settings).unwrap()
}

/// Whether `lease` is held at the server at `server`.
pub fn held_at(lease: &Lease, server: &str) -> bool {
    lease.info().server.trim_end_matches('/') == server.trim_end_matches('/')
}

/// The server's database, read beside the running server.
pub fn database(local: &LocalServer) -> SqliteConnection {
    SqliteConnection::establish(local.dir.join("local.db").to_str().unwrap()).unwrap()
}

#[derive(QueryableByName)]
struct PairRow {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
}

/// The server's state in its pair and its epoch.
pub fn pair(local: &LocalServer) -> (String, i64) {
    diesel::sql_query("SELECT state, epoch FROM pair")
        .load::<PairRow>(&mut database(local))
        .unwrap()
        .pop()
        .map(|p| (p.state, p.epoch))
        .expect("a paired server")
}

/// The server's state in its pair.
pub fn pair_state(local: &LocalServer) -> String {
    pair(local).0
}
