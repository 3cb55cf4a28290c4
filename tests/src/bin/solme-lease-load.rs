//! Load generator for the client API: each of C connections checks out and checks in
//! a lease in a loop for D seconds; prints the pairs per second and the latency
//! percentiles of single requests.
//!
//! `solme-lease-load URL FEATURE [CONNECTIONS] [SECONDS] [QUEUED QUEUE_FEATURE]`, run by
//! `solme-bench` against a `serve` whose license for FEATURE has at least CONNECTIONS
//! seats. With QUEUED, that many more clients wait in the queue of QUEUE_FEATURE (whose
//! seats are all taken) during the run, each on its own connection, polling as clients
//! do.

use std::time::{Duration, Instant};

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .ok_or(
            "usage: solme-lease-load URL FEATURE [CONNECTIONS] [SECONDS] [QUEUED QUEUE_FEATURE]",
        )?
        .clone();
    let feature = args.get(2).ok_or("missing FEATURE")?.clone();
    let connections: usize = args.get(3).map_or(Ok(32), |s| s.parse())?;
    let seconds: u64 = args.get(4).map_or(Ok(10), |s| s.parse())?;
    let queued: usize = args.get(5).map_or(Ok(0), |s| s.parse())?;
    let queue_feature = args.get(6).cloned().unwrap_or_default();
    let waiting_until = Instant::now() + Duration::from_secs(seconds + 30);
    // One client (one TLS context: each new one costs milliseconds) with no limit on
    // its connections, so that every waiter holds a connection of its own.
    let waiting_client = awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(Duration::from_secs(60))
        .finish();
    let mut waiters = Vec::new();
    for n in 0..queued {
        let url = url.clone();
        let feature = queue_feature.clone();
        let client = waiting_client.clone();
        waiters.push(actix_web::rt::spawn(async move {
            let body = serde_json::json!({
                "feature": feature, "client": "waiting", "user": format!("waiter-{n}"),
                "host": "bench", "wait_seconds": 3600,
            });
            let Ok(mut resp) = client
                .post(format!("{url}/api/v1/leases"))
                .send_json(&body)
                .await
            else {
                return;
            };
            while resp.status().as_u16() == 202 && Instant::now() < waiting_until {
                let Ok(place) = resp.json::<serde_json::Value>().await else {
                    return;
                };
                let ticket = place["ticket"].as_str().unwrap_or_default().to_owned();
                match client
                    .get(format!("{url}/api/v1/queue/{ticket}"))
                    .send()
                    .await
                {
                    Ok(next) => resp = next,
                    Err(_) => return,
                }
            }
        }));
    }
    if queued > 0 {
        // Start measuring once they all wait.
        let client = awc::Client::default();
        let wait_from = Instant::now();
        loop {
            let list: serde_json::Value = client
                .get(format!("{url}/api/v1/features"))
                .send()
                .await?
                .json()
                .await?;
            let waiting = list
                .as_array()
                .and_then(|l| l.iter().find(|f| f["feature"] == queue_feature.as_str()))
                .and_then(|f| f["queued"].as_u64())
                .unwrap_or(0);
            if waiting as usize >= queued {
                println!("{waiting} clients wait in the queue of {queue_feature}");
                break;
            }
            if wait_from.elapsed() > Duration::from_secs(60) {
                return Err(
                    format!("only {waiting} of {queued} clients got into the queue").into(),
                );
            }
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for n in 0..connections {
        let url = url.clone();
        let feature = feature.clone();
        tasks.push(actix_web::rt::spawn(async move {
            // One client per task = one kept-alive connection per task.
            let client = awc::Client::default();
            let mut latencies = Vec::new();
            let mut pairs = 0u64;
            let mut refused = 0u64;
            while Instant::now() < deadline {
                let start = Instant::now();
                let Ok(mut resp) = client
                    .post(format!("{url}/api/v1/leases"))
                    .send_json(&serde_json::json!({
                        "feature": feature, "client": "bench",
                        "user": format!("bench-{n}"), "host": "bench-host",
                    }))
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
    for w in waiters {
        w.abort();
    }
    Ok(())
}
