//! Load generator of licensed programs made with the client library, a process of its
//! own so that its CPU is not the benchmark's (`tests::bench::client_load`).
//!
//! `solme-client-load storm URL FEATURE PROBE_FEATURE PROGRAMS`: holds PROGRAMS seats,
//! prints `@held` on a line of its own and waits for a line on standard input that says
//! the server was killed and started again, then measures the storm.
//! `solme-client-load mix URL FEATURE PROGRAMS SECONDS SCALE`: RLM's load mix.

use std::io::BufRead;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tests::bench::client_load::{Mix, Storm};

const USAGE: &str = "usage: solme-client-load storm URL FEATURE PROBE_FEATURE PROGRAMS | \
                     mix URL FEATURE PROGRAMS SECONDS SCALE";

fn main() {
    if let Err(error) = actix_rt::System::new().block_on(run()) {
        eprintln!("solme-client-load: {error:#}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |n: usize| args.get(n).map(String::as_str).context(USAGE);
    let server = arg(1)?.parse().context("URL is not an address")?;
    match arg(0)? {
        "storm" => {
            let storm = Storm {
                server,
                feature: arg(2)?.to_owned(),
                probe_feature: arg(3)?.to_owned(),
                programs: arg(4)?.parse().context("PROGRAMS is not a number")?,
            };
            storm.run(restarted()).await
        }
        "mix" => {
            let mix = Mix {
                server,
                feature: arg(2)?.to_owned(),
                programs: arg(3)?.parse().context("PROGRAMS is not a number")?,
                duration: Duration::from_secs(arg(4)?.parse().context("SECONDS is not a number")?),
                scale: arg(5)?.parse().context("SCALE is not a number")?,
            };
            mix.run().await
        }
        _ => bail!(USAGE),
    }
}

/// Says that the seats are held, then waits for the line that says the server is back.
async fn restarted() -> Result<()> {
    println!("@held");
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = tx.send(std::io::stdin().lock().read_line(&mut line).map(|n| n > 0));
    });
    match rx.await {
        Ok(Ok(true)) => Ok(()),
        _ => bail!("standard input closed before the server was started again"),
    }
}
