//! Load generator for the client API: each of C connections checks out and checks in
//! a lease in a loop for D seconds; prints the pairs per second and the latency
//! percentiles of single requests.
//!
//! `cargo run --release -p local-server --example lease_bench -- URL FEATURE [CONNECTIONS] [SECONDS]`
//! against a `serve` whose license for FEATURE has at least CONNECTIONS seats.

use std::time::{Duration, Instant};

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .ok_or("usage: lease_bench URL FEATURE [CONNECTIONS] [SECONDS]")?
        .clone();
    let feature = args.get(2).ok_or("missing FEATURE")?.clone();
    let connections: usize = args.get(3).map_or(Ok(32), |s| s.parse())?;
    let seconds: u64 = args.get(4).map_or(Ok(10), |s| s.parse())?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for n in 0..connections {
        let url = url.clone();
        let feature = feature.clone();
        tasks.push(actix_rt::spawn(async move {
            // One client per task = one kept-alive connection per task.
            let client = awc::Client::default();
            let mut latencies = Vec::new();
            let mut pairs = 0u64;
            let mut refused = 0u64;
            while Instant::now() < deadline {
                let start = Instant::now();
                let Ok(mut resp) = client
                    .post(format!("{url}/api/v1/leases"))
                    .send_json(
                        &serde_json::json!({"feature": feature, "client": format!("bench-{n}")}),
                    )
                    .await
                else {
                    refused += 1;
                    continue;
                };
                latencies.push(start.elapsed());
                let Ok(body) = resp.json::<serde_json::Value>().await else {
                    refused += 1;
                    continue;
                };
                let Some(id) = body["lease_id"].as_str() else {
                    refused += 1;
                    continue;
                };
                let start = Instant::now();
                if client
                    .delete(format!("{url}/api/v1/leases/{id}"))
                    .send()
                    .await
                    .is_ok()
                {
                    latencies.push(start.elapsed());
                    pairs += 1;
                }
            }
            (pairs, refused, latencies)
        }));
    }
    let started = Instant::now();
    let mut pairs = 0;
    let mut refused = 0;
    let mut latencies = Vec::new();
    for t in tasks {
        let (p, r, l) = t.await?;
        pairs += p;
        refused += r;
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{connections} connections, {elapsed:.1} s: {pairs} check-out+check-in pairs = {:.0}/s; \
         refused/failed {refused}; request latency p50 {:?} p99 {:?} max {:?}",
        pairs as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(())
}
