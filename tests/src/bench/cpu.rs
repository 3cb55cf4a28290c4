//! CPU time as Linux accounts it: whole processes from `/proc/PID/stat` (clock ticks,
//! every thread, user + system) and the calling thread from
//! `/proc/thread-self/schedstat` (nanoseconds on a CPU).

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`, 100 on Linux).
pub fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The fields of `/proc/PID/stat` after the command name: index 0 is the state
/// (field 3), so field N of proc(5) is index N - 3.
fn stat_fields(pid: u32) -> Result<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no command name in /proc stat")?;
    Ok(rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect())
}

fn field(fields: &[u64], number: usize) -> u64 {
    fields.get(number - 3).copied().unwrap_or(0)
}

/// User + system ticks of one process (all its threads).
pub fn process_ticks(pid: u32) -> Result<u64> {
    let fields = stat_fields(pid)?;
    Ok(field(&fields, 14) + field(&fields, 15))
}

/// User + system ticks of a process, of its children still running, and of the
/// children it has reaped: the whole of PostgreSQL is its postmaster's tree.
pub fn tree_ticks(root: u32) -> Result<u64> {
    let fields = stat_fields(root)?;
    let mut ticks: u64 = (14..=17).map(|n| field(&fields, n)).sum();
    for entry in std::fs::read_dir("/proc").context("listing /proc")? {
        let Some(pid) = entry
            .ok()
            .and_then(|e| e.file_name().to_str()?.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may end between the listing and the read: it is simply not counted.
        if let Ok(fields) = stat_fields(pid) {
            if field(&fields, 4) == u64::from(root) {
                ticks += field(&fields, 14) + field(&fields, 15);
            }
        }
    }
    Ok(ticks)
}

/// CPU time the calling thread has run so far.
pub fn thread_time() -> Result<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")
        .context("reading /proc/thread-self/schedstat")?;
    let nanos: u64 = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("no run time in schedstat")?;
    Ok(Duration::from_nanos(nanos))
}
