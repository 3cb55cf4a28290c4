//! Watching a Maildir an MTA delivers to: every message in `new/` is stored
//! in the spool, and only then moved to `cur/` (marked seen). A crash
//! between the two stores the message again on restart; the Message-ID
//! ledger makes sure it is still answered once.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use shared_proto::Clock;
use tokio::sync::{mpsc, watch};

use crate::background::{self, blocking};
use crate::queue::spool::{read_bounded, Spool};
use crate::vocabulary::{Envelope, Intake};
use shared_proto::files::sync_dir;

/// Polls `dir/new` every `every` until `shutdown` changes.
pub async fn watch(
    dir: PathBuf,
    spool: Spool,
    clock: Clock,
    limit: usize,
    accepted: mpsc::UnboundedSender<String>,
    every: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let what = format!("the scan of the Maildir {}", dir.display());
    background::every(&what, every, shutdown, || {
        let (dir, spool, clock) = (dir.clone(), spool.clone(), clock.clone());
        let accepted = accepted.clone();
        async move {
            let names = blocking(move || collect(&dir, &spool, &clock, limit)).await??;
            for name in names {
                let _ = accepted.send(name);
            }
            Ok(())
        }
    })
    .await;
}

/// Creates the Maildir folders if the MTA has not yet.
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    Ok(())
}

/// Moves every message of `new/` into the spool; returns the entry names.
pub fn collect(
    dir: &Path,
    spool: &Spool,
    clock: &Clock,
    limit: usize,
) -> anyhow::Result<Vec<String>> {
    let new = dir.join("new");
    let cur = dir.join("cur");
    let mut names = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(&new)
        .with_context(|| format!("listing {}", new.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let file_name = entry.file_name();
        let Some(base) = file_name.to_str() else {
            continue;
        };
        if base.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let mut file = match fs::File::open(&path) {
            Ok(file) => file,
            // Taken by someone else between listing and opening.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("opening {}", path.display())),
        };
        let (raw, size, truncated) = read_bounded(&mut file, limit)
            .with_context(|| format!("reading {}", path.display()))?;
        let envelope = Envelope {
            return_path: None,
            recipients: Vec::new(),
            received_at: clock.now(),
            intake: Intake::Maildir,
            size,
            truncated,
        };
        let name = spool.accept_blocking(&envelope, &raw)?;
        // Maildir: a message in cur/ carries its flags after ":2,"; S = seen.
        let target = cur.join(if base.contains(":2,") {
            base.to_owned()
        } else {
            format!("{base}:2,S")
        });
        fs::rename(&path, &target)
            .with_context(|| format!("moving {} to {}", path.display(), target.display()))?;
        log::info!("maildir file={base} message={name} accepted");
        names.push(name);
    }
    if !names.is_empty() {
        sync_dir(&new)?;
        sync_dir(&cur)?;
    }
    Ok(names)
}
