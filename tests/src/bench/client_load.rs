//! The load of licensed programs, made with the client library (`solme-client`): what
//! `solme-client-load` runs for `solme-bench`'s storm and load-mix cases.
//!
//! - **Storm**: N programs hold a lease each and keep it with the library's heartbeats.
//!   The benchmark kills the server (SIGKILL), keeps it down for longer than a
//!   heartbeat interval, so that every program has missed one and is retrying with
//!   back-off, and starts it again on the same address; then every program comes back
//!   at once. Measured: when each program's heartbeat is answered again, the latency of
//!   a new check-out during that time, and whether the server still counts exactly the
//!   seats the programs hold.
//! - **Mix**: RLM's published load (20 % of the check-outs held 2 h then returned for
//!   5 min, 35 % 15 min / 1 min, 45 % 2 min / 2 s, each program in a loop), with every
//!   time divided by a factor so that it runs in a minute. Measured: check-outs and
//!   check-ins per second and their latency.
//!
//! The programs are tasks of one process on one thread. They share connections as
//! programs on one machine share its library: one library client (one connection pool)
//! per [`PROGRAMS_PER_CLIENT`] programs. Latencies are those of the library's calls,
//! so a call that had to be retried counts with its back-off.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use solme_client::{Client, Identity, Lease, LeaseState, Options, Url};

/// Programs that share one library client (one machine's connection pool). Each pool
/// opens up to 100 connections, so in a storm every program still has its own.
pub const PROGRAMS_PER_CLIENT: usize = 50;

/// Check-outs in flight at once while the programs start.
const STARTING_AT_ONCE: usize = 64;

/// New check-outs that measure latency while the storm goes on (each on a client of its
/// own: a program started on another machine during the storm).
const PROBES: usize = 4;

/// How long the latency after the storm is measured.
const AFTER_STORM: Duration = Duration::from_secs(2);

/// Library clients for `programs` programs, [`PROGRAMS_PER_CLIENT`] to a client.
fn clients(server: &Url, programs: usize, name: &str) -> Result<Vec<Client>> {
    (0..programs.div_ceil(PROGRAMS_PER_CLIENT).max(1))
        .map(|n| client(server, name, n))
        .collect()
}

fn client(server: &Url, name: &str, n: usize) -> Result<Client> {
    let identity = Identity {
        client: format!("solme-bench {name}"),
        user: format!("{name}-{n}"),
        host: format!("{name}-host-{n}"),
    };
    Client::new(vec![server.clone()], identity).context("making a library client")
}

/// Latencies, sorted on demand.
#[derive(Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn push(&mut self, latency: Duration) {
        self.0.push(latency);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `q` quantile (0.99 = p99) in milliseconds; 0 with no sample.
    pub fn ms(&mut self, q: f64) -> f64 {
        self.0.sort_unstable();
        let last = self.0.len().saturating_sub(1);
        let at = ((self.0.len() as f64 * q) as usize).min(last);
        self.0.get(at).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }

    /// `p50 … ms, p99 … ms, max … ms`.
    pub fn summary(&mut self) -> String {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.ms(0.5),
            self.ms(0.99),
            self.ms(1.0)
        )
    }
}

/// Checks out `count` seats of `feature` through `clients`, [`STARTING_AT_ONCE`] at a
/// time.
async fn check_out_all(clients: &[Client], feature: &str, count: usize) -> Result<Vec<Lease>> {
    let next = Rc::new(RefCell::new(0..count));
    let mut workers = Vec::new();
    for _ in 0..STARTING_AT_ONCE.min(count) {
        let next = next.clone();
        let clients = clients.to_vec();
        let feature = feature.to_owned();
        workers.push(actix_rt::spawn(async move {
            let mut leases = Vec::new();
            loop {
                let Some(n) = next.borrow_mut().next() else {
                    return Ok::<_, anyhow::Error>(leases);
                };
                let client = clients
                    .get(n / PROGRAMS_PER_CLIENT)
                    .context("no client for a program")?;
                let lease = client
                    .checkout(&feature, Options::default())
                    .await
                    .context("checking out the storm's seats")?;
                leases.push(lease);
            }
        }));
    }
    let mut leases = Vec::with_capacity(count);
    for worker in workers {
        leases.extend(worker.await.context("a starting task failed")??);
    }
    Ok(leases)
}

/// New check-outs and check-ins of `feature` in a loop until `until`: when each began
/// and how long its check-out took.
async fn probe(client: Client, feature: String, until: Instant) -> Vec<(Instant, Duration)> {
    let mut calls = Vec::new();
    while Instant::now() < until {
        let began = Instant::now();
        if let Ok(lease) = client.checkout(&feature, Options::default()).await {
            calls.push((began, began.elapsed()));
            let _ = lease.release().await;
        }
    }
    calls
}

/// What the storm case is told.
pub struct Storm {
    pub server: Url,
    /// The feature the programs hold (its seats: exactly `programs`).
    pub feature: String,
    /// A feature with free seats for the latency probes.
    pub probe_feature: String,
    pub programs: usize,
}

impl Storm {
    /// Holds the seats, calls `held` (which returns once the server was killed and
    /// started again), then measures until every program is served again and prints
    /// the figures. Fails when a seat was lost or given twice.
    pub async fn run(&self, held: impl std::future::Future<Output = Result<()>>) -> Result<()> {
        let clients = clients(&self.server, self.programs, "storm")?;
        let began = Instant::now();
        let mut leases = check_out_all(&clients, &self.feature, self.programs).await?;
        let interval = leases
            .first()
            .and_then(|l| l.info().grant.heartbeat_seconds)
            .unwrap_or(1);
        println!(
            "{} programs hold a seat each ({} library clients), checked out in {:.1} s; \
             heartbeat every {interval} s",
            leases.len(),
            clients.len(),
            began.elapsed().as_secs_f64()
        );
        let probes: Vec<Client> = (0..PROBES)
            .map(|n| client(&self.server, "probe", n))
            .collect::<Result<_>>()?;
        let mut before = Latencies::default();
        let until = Instant::now() + AFTER_STORM;
        for calls in futures_util::future::join_all(
            probes
                .iter()
                .map(|c| probe(c.clone(), self.probe_feature.clone(), until)),
        )
        .await
        {
            calls.into_iter().for_each(|(_, d)| before.push(d));
        }

        held.await?;
        let restarted = Instant::now();
        // What each program had when the server came back: a heartbeat answered after
        // this is one answered by the restarted server (it was down in between).
        let marks: Vec<(u64, u32)> = leases
            .iter()
            .map(|l| {
                let info = l.info();
                (info.heartbeats, info.recheckouts)
            })
            .collect();
        let storm_ends = restarted + Duration::from_secs(interval * 6 + 30);
        let probing = Rc::new(RefCell::new(Vec::new()));
        let stop_probes = Rc::new(std::cell::Cell::new(storm_ends));
        let probe_tasks: Vec<_> = probes
            .iter()
            .map(|c| {
                let (client, feature) = (c.clone(), self.probe_feature.clone());
                let (calls, stop) = (probing.clone(), stop_probes.clone());
                actix_rt::spawn(async move {
                    while Instant::now() < stop.get() {
                        let began = Instant::now();
                        if let Ok(lease) = client.checkout(&feature, Options::default()).await {
                            calls.borrow_mut().push((began, began.elapsed()));
                            let _ = lease.release().await;
                        }
                    }
                })
            })
            .collect();
        let watchers: Vec<_> = leases
            .drain(..)
            .zip(marks)
            .map(|(mut lease, (beats, recheckouts))| {
                actix_rt::spawn(async move {
                    loop {
                        let info = lease.info();
                        if info.heartbeats > beats
                            || info.recheckouts > recheckouts
                            || info.state != LeaseState::Held
                        {
                            return (lease, Some(restarted.elapsed()));
                        }
                        let change = tokio::time::timeout_at(storm_ends.into(), lease.changed());
                        if !matches!(change.await, Ok(Ok(_))) {
                            return (lease, None);
                        }
                    }
                })
            })
            .collect();
        let mut served = Latencies::default();
        let mut unserved = 0;
        for watcher in watchers {
            let (lease, after) = watcher.await.context("a program's task failed")?;
            match after {
                Some(after) => served.push(after),
                None => unserved += 1,
            }
            leases.push(lease);
        }
        let all_served = Instant::now();
        stop_probes.set(all_served + AFTER_STORM);
        for task in probe_tasks {
            task.await.context("a probe failed")?;
        }
        let (mut during, mut after) = (Latencies::default(), Latencies::default());
        for &(began, latency) in probing.borrow().iter() {
            if began < all_served {
                during.push(latency);
            } else {
                after.push(latency);
            }
        }

        let features = clients
            .first()
            .context("no client")?
            .features()
            .await
            .context("reading the seats in use")?;
        let in_use = features
            .iter()
            .find(|f| f.feature == self.feature)
            .map_or(0, |f| f.in_use);
        let held = leases
            .iter()
            .filter(|l| l.state() == LeaseState::Held)
            .count();
        let distinct: HashSet<_> = leases.iter().map(Lease::id).collect();
        let lost = leases
            .iter()
            .filter(|l| l.info().recheckouts > 0 || l.state() != LeaseState::Held)
            .count();
        // More seats in use than held, or one lease id held by two programs.
        let doubled = (in_use as usize).saturating_sub(held) + (leases.len() - distinct.len());
        println!(
            "every program served again {:.2} s after the restart ({} of {}; time to be \
             served: {}){}",
            served.ms(1.0) / 1000.0,
            served.len(),
            leases.len(),
            served.summary(),
            if unserved > 0 {
                format!("; {unserved} never served")
            } else {
                String::new()
            }
        );
        println!(
            "new check-outs: before the kill {} ({} calls); during the storm {} ({} calls); \
             in the {} s after it {} ({} calls)",
            before.summary(),
            before.len(),
            during.summary(),
            during.len(),
            AFTER_STORM.as_secs(),
            after.summary(),
            after.len()
        );
        println!(
            "seats after the storm: {in_use} in use on the server, {held} held by the \
             programs; {lost} lost (the server forgot the lease), {doubled} given twice"
        );

        let began = Instant::now();
        let returned = release_all(leases).await;
        println!(
            "all {returned} seats returned in {:.2} s",
            began.elapsed().as_secs_f64()
        );
        if lost > 0 || doubled > 0 || unserved > 0 || in_use as usize != held {
            bail!(
                "the storm lost {lost} seats, gave {doubled} twice and left {unserved} \
                 programs unserved"
            );
        }
        Ok(())
    }
}

/// Returns every seat, [`STARTING_AT_ONCE`] at a time; how many the server took back.
async fn release_all(leases: Vec<Lease>) -> usize {
    let leases = Rc::new(RefCell::new(leases));
    let mut workers = Vec::new();
    for _ in 0..STARTING_AT_ONCE {
        let leases = leases.clone();
        workers.push(actix_rt::spawn(async move {
            let mut returned = 0;
            loop {
                let Some(lease) = leases.borrow_mut().pop() else {
                    return returned;
                };
                returned += usize::from(lease.release().await.is_ok());
            }
        }));
    }
    let mut returned = 0;
    for worker in workers {
        returned += worker.await.unwrap_or(0);
    }
    returned
}

/// One class of RLM's load: the share of the programs, how long each holds its seat
/// and how long it then runs without one (real times, before the scaling).
struct Class {
    share: f64,
    held: Duration,
    idle: Duration,
}

const RLM_MIX: [Class; 3] = [
    Class {
        share: 0.20,
        held: Duration::from_secs(2 * 3600),
        idle: Duration::from_secs(5 * 60),
    },
    Class {
        share: 0.35,
        held: Duration::from_secs(15 * 60),
        idle: Duration::from_secs(60),
    },
    Class {
        share: 0.45,
        held: Duration::from_secs(2 * 60),
        idle: Duration::from_secs(2),
    },
];

/// What the mix case is told.
pub struct Mix {
    pub server: Url,
    /// The feature (its seats: at least `programs`).
    pub feature: String,
    pub programs: usize,
    pub duration: Duration,
    /// Every hold and idle time of RLM's mix is divided by this.
    pub scale: u32,
}

/// One program's figures.
#[derive(Default)]
struct Tally {
    checkouts: Latencies,
    checkins: Latencies,
    heartbeats: u64,
    failed: u64,
}

impl Mix {
    /// Runs the mix and prints its figures; fails when a seat is left in use after
    /// every program returned its own.
    pub async fn run(&self) -> Result<()> {
        let clients = clients(&self.server, self.programs, "mix")?;
        let began = Instant::now();
        // The programs start spread over a ramp (RLM staggers its simulators); the
        // figures count from its end.
        let ramp = (self.duration / 6).min(Duration::from_secs(5));
        let measured_from = began + ramp;
        let ends = began + self.duration;
        let mut programs = Vec::new();
        let mut classes = RLM_MIX
            .iter()
            .map(|class| (class, 0usize))
            .collect::<Vec<_>>();
        for n in 0..self.programs {
            // Each program's class by its share, in the order of the list.
            let position = (n as f64 + 0.5) / self.programs as f64;
            let mut acc = 0.0;
            let index = RLM_MIX
                .iter()
                .position(|c| {
                    acc += c.share;
                    position < acc
                })
                .unwrap_or(RLM_MIX.len() - 1);
            let Some((class, count)) = classes.get_mut(index) else {
                continue;
            };
            *count += 1;
            let held = class.held / self.scale;
            let idle = class.idle / self.scale;
            let client = clients
                .get(n / PROGRAMS_PER_CLIENT)
                .context("no client for a program")?
                .clone();
            let feature = self.feature.clone();
            let start = began + ramp.mul_f64(spread(n));
            // Start anywhere in the cycle, so that the load is steady from the start.
            let phase = (held + idle).mul_f64(spread(n + self.programs));
            programs.push(actix_rt::spawn(program(
                client,
                feature,
                held,
                idle,
                start,
                phase,
                measured_from,
                ends,
            )));
        }
        let mut total = Tally::default();
        for task in programs {
            let tally = task.await.context("a program's task failed")?;
            total.checkouts.0.extend(tally.checkouts.0);
            total.checkins.0.extend(tally.checkins.0);
            total.heartbeats += tally.heartbeats;
            total.failed += tally.failed;
        }
        let seconds = ends.saturating_duration_since(measured_from).as_secs_f64();
        let in_use = clients
            .first()
            .context("no client")?
            .features()
            .await
            .context("reading the seats in use")?
            .iter()
            .find(|f| f.feature == self.feature)
            .map_or(0, |f| f.in_use);
        println!(
            "RLM mix, every time ÷{} (held/idle: {}): {} programs ({} library clients), \
             {seconds:.1} s measured after a {:.1} s ramp",
            self.scale,
            RLM_MIX
                .iter()
                .zip(&classes)
                .map(|(c, (_, count))| format!(
                    "{count} × {:.1} s / {:.2} s",
                    (c.held / self.scale).as_secs_f64(),
                    (c.idle / self.scale).as_secs_f64()
                ))
                .collect::<Vec<_>>()
                .join(", "),
            self.programs,
            clients.len(),
            ramp.as_secs_f64()
        );
        println!(
            "mix throughput: {:.0} check-outs/s, {:.0} check-ins/s, {:.0} heartbeats/s; \
             check-out {}; check-in {}; {} failed; {in_use} seats in use after every \
             program returned its own",
            total.checkouts.len() as f64 / seconds,
            total.checkins.len() as f64 / seconds,
            total.heartbeats as f64 / self.duration.as_secs_f64(),
            total.checkouts.summary(),
            total.checkins.summary(),
            total.failed
        );
        if in_use > 0 {
            bail!("{in_use} seats are still in use after every program returned its own");
        }
        Ok(())
    }
}

/// A number in `[0, 1)` that depends only on `n` (SplitMix64): the same spread in
/// every run.
fn spread(n: usize) -> f64 {
    let mut z = (n as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// One licensed program of the mix: check out, hold, return, run without a seat,
/// again, until `ends`; it starts at `start`, `phase` into its cycle.
#[expect(clippy::too_many_arguments, reason = "one program's whole description")]
async fn program(
    client: Client,
    feature: String,
    held: Duration,
    idle: Duration,
    start: Instant,
    phase: Duration,
    measured_from: Instant,
    ends: Instant,
) -> Tally {
    let mut tally = Tally::default();
    actix_rt::time::sleep_until(start.into()).await;
    // Where in its cycle the program starts: holding (for what is left of it) or idle.
    let (mut hold, mut rest) = if phase < held {
        (held - phase, idle)
    } else {
        (Duration::ZERO, held + idle - phase)
    };
    loop {
        if !hold.is_zero() {
            let began = Instant::now();
            match client.checkout(&feature, Options::default()).await {
                Ok(lease) => {
                    if began >= measured_from {
                        tally.checkouts.push(began.elapsed());
                    }
                    let until = (Instant::now() + hold).min(ends);
                    actix_rt::time::sleep_until(until.into()).await;
                    let heartbeats = lease.info().heartbeats;
                    let returning = Instant::now();
                    tally.heartbeats += heartbeats;
                    match lease.release().await {
                        // The seats still held at the end all go back at once: that
                        // burst is not the mix.
                        Ok(()) if returning >= measured_from && returning < ends => {
                            tally.checkins.push(returning.elapsed());
                        }
                        Ok(()) => {}
                        Err(_) => tally.failed += 1,
                    }
                }
                Err(_) => tally.failed += 1,
            }
        }
        let until = Instant::now() + rest;
        if until >= ends {
            return tally;
        }
        actix_rt::time::sleep_until(until.into()).await;
        (hold, rest) = (held, idle);
    }
}
