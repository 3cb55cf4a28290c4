//! The local server's largest options file: how long checking it takes, and what a
//! check-out pays right after it is applied to a running server (nothing: the serving
//! process reads a new file off the request path and keeps the old rules until then).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use test_harness::LocalServer;

/// The largest options file the local server accepts (its `MAX_OPTIONS_BYTES`).
pub const MAX_OPTIONS_BYTES: usize = 1024 * 1024;

/// Writes an options file of exactly [`MAX_OPTIONS_BYTES`], times `options check` on
/// it (the whole process; a near-empty file's time is printed beside it), applies it to
/// the running `local` and times the next check-out of `feature`.
pub fn measure(local: &LocalServer, dir: &Path, feature: &str) -> Result<()> {
    let (text, rules) = largest_file();
    let big = dir.join("largest-options.toml");
    std::fs::write(&big, &text).context("writing the options file")?;
    let small = dir.join("small-options.toml");
    std::fs::write(&small, "[groups]\n").context("writing the options file")?;
    let path = |p: &Path| {
        p.to_str()
            .map(str::to_owned)
            .context("temporary path is not UTF-8")
    };
    let (big, small) = (path(&big)?, path(&small)?);

    let check = |file: &str| -> Result<Duration> {
        let started = Instant::now();
        local.cli("options", &["check", file])?.assert_success()?;
        Ok(started.elapsed())
    };
    // The best of three: the figure is the parse, not the machine's hiccups.
    let best = |file: &str| -> Result<Duration> {
        (0..3)
            .map(|_| check(file))
            .try_fold(Duration::MAX, |a, b| Ok(a.min(b?)))
    };
    let (big_time, small_time) = (best(&big)?, best(&small)?);
    println!(
        "options file of 1 MiB ({rules} rules): parse time {:.0} ms (`options check`, whole process; a one-line file takes {:.0} ms)",
        ms(big_time),
        ms(small_time)
    );

    local.cli("options", &["apply", &big])?.assert_success()?;
    let started = Instant::now();
    let lease = local
        .checkout(feature, "after-options-apply")?
        .map_err(|r| anyhow::anyhow!("checking out after applying the options: {r:?}"))?;
    let first = started.elapsed();
    if let Some(id) = lease["lease_id"].as_str() {
        local
            .checkin(id)?
            .map_err(|r| anyhow::anyhow!("checking in: {r:?}"))?;
    }
    println!(
        "first check-out after applying it to the running server: {:.1} ms",
        ms(first)
    );
    Ok(())
}

/// An options file of exactly [`MAX_OPTIONS_BYTES`] bytes and its number of rules:
/// groups, then `max`, `reserve`, `include` and `exclude` rules in turn on features no
/// client uses, padded with a comment to the last byte.
pub fn largest_file() -> (String, usize) {
    let mut text = String::from("[groups]\n");
    for g in 0..100 {
        let members: Vec<String> = (0..5).map(|m| format!("\"user-{g}-{m}\"")).collect();
        text.push_str(&format!("team-{g} = [{}]\n", members.join(", ")));
    }
    let mut rules = 0;
    loop {
        let feature = format!("feature-{}", rules % 500);
        let rule = match rules % 4 {
            0 => {
                format!("\n[[max]]\nfeature = \"{feature}\"\nseats = 2\nuser = \"user-{rules}\"\n")
            }
            1 => format!(
                "\n[[reserve]]\nfeature = \"{feature}\"\nseats = 1\ngroup = \"team-{}\"\n",
                rules % 100
            ),
            2 => format!("\n[[include]]\nfeature = \"{feature}\"\nhost = \"host-{rules}\"\n"),
            _ => format!("\n[[exclude]]\nfeature = \"{feature}\"\nhost = \"kiosk-{rules}\"\n"),
        };
        // Room for the padding comment's "#" and newline.
        if text.len() + rule.len() + 2 > MAX_OPTIONS_BYTES {
            break;
        }
        text.push_str(&rule);
        rules += 1;
    }
    let pad = MAX_OPTIONS_BYTES - text.len() - 2;
    text.push('#');
    text.push_str(&" ".repeat(pad));
    text.push('\n');
    (text, rules)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_largest_file_is_exactly_the_largest_allowed() {
        let (text, rules) = super::largest_file();
        assert_eq!(text.len(), super::MAX_OPTIONS_BYTES);
        assert!(rules > 10_000, "{rules}");
    }
}
