//! The durable spool: every message the gateway accepts, every reply it has
//! composed, and the at-most-once ledger.
//!
//! Layout under `DATA_DIR`:
//!
//! | path | holds |
//! |---|---|
//! | `spool/tmp/` | files being written (never read; leftovers of a crash are swept) |
//! | `spool/queue/` | accepted inbound messages waiting for the worker |
//! | `spool/outgoing/` | replies composed, waiting for the outbound transport |
//! | `spool/sent/` | replies handed to the transport (kept for the operator) |
//! | `spool/failed/` | messages and replies given up on (kept for the operator) |
//! | `ledger/` | one file per answered Message-ID, holding its owner: the dedup ledger |
//!
//! Every write is "write to `tmp/`, fsync the file, rename into place, fsync
//! the directory", so a file under `queue/` or `outgoing/` is either complete
//! and durable or absent: callers acknowledge a message (SMTP 250, exit 0,
//! move out of Maildir `new/`) only after [`Spool::accept`] returned.
//!
//! The at-most-once guarantees rest on two filesystem facts rather than on
//! checks in Rust: `link` (like O_EXCL) lets exactly one writer create a
//! ledger entry, and `rename` moves a reply from `outgoing/` to `sent/` so it
//! is at every instant in exactly one of them.
//!
//! The spool holds customers' mail: directories are created `0700` and files
//! `0600` (only the account running the gateway reads them).

use std::fs::{self, DirBuilder, File};
use std::io::Read;
#[cfg(unix)]
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared_proto::files::{self, sync_dir, Access, Existing};
use uuid::Uuid;

use crate::background::blocking;
use crate::vocabulary::{Envelope, OutgoingEnvelope};

/// The answer of [`Spool::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This entry is the first to claim the key.
    New,
    /// This entry had claimed the key before (a restart resumes it).
    Ours,
    /// Another entry claimed the key: the message is a duplicate.
    Taken(String),
}

/// Why a spool entry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file system failed (EMFILE, EIO, a permission changed, …):
    /// temporary, the entry is read again later.
    #[error("{0:#}")]
    Io(anyhow::Error),
    /// The entry was read but is not a spool entry (no envelope line, an
    /// envelope that does not decode): retrying cannot help.
    #[error("{0:#}")]
    Undecodable(anyhow::Error),
}

/// A handle on the spool, cheap to clone. Its methods are async: each runs its file
/// work on the blocking pool, so no caller has to. [`Spool::accept_blocking`] is for
/// callers that are blocking work themselves (`deliver`, the Maildir scan).
#[derive(Debug, Clone)]
pub struct Spool {
    dirs: Arc<Dirs>,
}

/// The spool's directories, and the blocking file work on them.
#[derive(Debug)]
struct Dirs {
    tmp: PathBuf,
    queue: PathBuf,
    outgoing: PathBuf,
    sent: PathBuf,
    failed: PathBuf,
    ledger: PathBuf,
}

/// Temporary files older than this are leftovers of a crash: nobody is
/// still writing them (a `deliver` in progress writes for seconds at most).
const TMP_LEFTOVER_AGE: Duration = Duration::from_secs(3600);

impl Spool {
    /// Opens (creating if needed) the spool under `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Spool> {
        let root = data_dir.join("spool");
        let spool = Dirs {
            tmp: root.join("tmp"),
            queue: root.join("queue"),
            outgoing: root.join("outgoing"),
            sent: root.join("sent"),
            failed: root.join("failed"),
            ledger: data_dir.join("ledger"),
        };
        for dir in [
            &spool.tmp,
            &spool.queue,
            &spool.outgoing,
            &spool.sent,
            &spool.failed,
            &spool.ledger,
        ] {
            create_private_dir(dir)
                .with_context(|| format!("creating spool directory {}", dir.display()))?;
        }
        Ok(Spool {
            dirs: Arc::new(spool),
        })
    }

    /// Removes temporary files that a crash left behind (at start, before anything
    /// runs: blocking).
    pub fn sweep_tmp(&self) -> anyhow::Result<usize> {
        remove_older(&self.dirs.tmp, TMP_LEFTOVER_AGE)
    }

    /// [`Spool::accept`] for a caller that is blocking work itself.
    pub fn accept_blocking(&self, envelope: &Envelope, raw: &[u8]) -> anyhow::Result<String> {
        self.dirs.accept(envelope, raw)
    }

    /// Runs `work` on the spool's directories on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Dirs) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let dirs = self.dirs.clone();
        blocking(move || work(&dirs)).await
    }

    /// Forgets sent replies and ledger entries older than `age`; returns how
    /// many files went. A duplicate arriving later than that is answered
    /// again, which is why the retention is far longer than any MTA's retry
    /// window (five days for Postfix).
    pub async fn prune(&self, age: Duration) -> anyhow::Result<usize> {
        self.run(move |dirs| dirs.prune(age)).await?
    }

    /// Stores an inbound message durably and returns its entry name. Only
    /// after this returns may the message be acknowledged.
    pub async fn accept(&self, envelope: Envelope, raw: Vec<u8>) -> anyhow::Result<String> {
        self.run(move |dirs| dirs.accept(&envelope, &raw)).await?
    }

    /// The names of the queued inbound messages, oldest first.
    pub async fn queued(&self) -> anyhow::Result<Vec<String>> {
        self.run(|dirs| list(&dirs.queue)).await?
    }

    /// The names of the replies waiting for the transport, oldest first.
    pub async fn outgoing(&self) -> anyhow::Result<Vec<String>> {
        self.run(|dirs| list(&dirs.outgoing)).await?
    }

    /// How many files each directory holds: `(queue, outgoing, failed)`.
    pub async fn counts(&self) -> anyhow::Result<(usize, usize, usize)> {
        self.run(|dirs| dirs.counts()).await?
    }

    /// Reads a queued inbound message (`None`: no longer queued).
    pub async fn read(&self, name: &str) -> Result<Option<(Envelope, Vec<u8>)>, ReadError> {
        let name = name.to_owned();
        self.run(move |dirs| dirs.read(&name))
            .await
            .map_err(ReadError::Io)?
    }

    /// Reads a reply waiting for the transport (`None`: not waiting).
    pub async fn read_outgoing(
        &self,
        name: &str,
    ) -> Result<Option<(OutgoingEnvelope, Vec<u8>)>, ReadError> {
        let name = name.to_owned();
        self.run(move |dirs| dirs.read_outgoing(&name))
            .await
            .map_err(ReadError::Io)?
    }

    /// Claims `key` (a Message-ID digest, or `notice-<id>`) for the entry `name`;
    /// the filesystem decides the winner (see [`Claim`]).
    pub async fn claim(&self, key: &str, name: &str) -> anyhow::Result<Claim> {
        let (key, name) = (key.to_owned(), name.to_owned());
        self.run(move |dirs| dirs.claim(&key, &name)).await?
    }

    /// True when a reply named `name` was already composed (waiting or sent).
    pub async fn reply_exists(&self, name: &str) -> anyhow::Result<bool> {
        let name = name.to_owned();
        self.run(move |dirs| dirs.reply_exists(&name)).await?
    }

    /// Stores a composed reply durably under `name`.
    pub async fn stage_reply(
        &self,
        name: &str,
        envelope: OutgoingEnvelope,
        message: Vec<u8>,
    ) -> anyhow::Result<()> {
        let name = name.to_owned();
        self.run(move |dirs| dirs.stage_reply(&name, &envelope, &message))
            .await?
    }

    /// Removes an inbound message the worker is done with.
    pub async fn finish(&self, name: &str) -> anyhow::Result<()> {
        let name = name.to_owned();
        self.run(move |dirs| dirs.finish(&name)).await?
    }

    /// Moves a reply the transport accepted from `outgoing/` to `sent/`.
    pub async fn mark_sent(&self, name: &str) -> anyhow::Result<()> {
        let name = name.to_owned();
        self.run(move |dirs| dirs.mark_sent(&name)).await?
    }

    /// Moves an inbound message the worker gave up on to `failed/`.
    pub async fn fail_inbound(&self, name: &str) -> anyhow::Result<()> {
        let name = name.to_owned();
        self.run(move |dirs| dirs.fail_inbound(&name)).await?
    }

    /// Moves a reply the transport refused for good to `failed/`.
    pub async fn fail_outgoing(&self, name: &str) -> anyhow::Result<()> {
        let name = name.to_owned();
        self.run(move |dirs| dirs.fail_outgoing(&name)).await?
    }
}

impl Dirs {
    fn prune(&self, age: Duration) -> anyhow::Result<usize> {
        let mut removed = 0;
        for dir in [&self.sent, &self.ledger] {
            removed += remove_older(dir, age)?;
        }
        Ok(removed)
    }

    fn accept(&self, envelope: &Envelope, raw: &[u8]) -> anyhow::Result<String> {
        let name = entry_name(envelope.received_at);
        let bytes = encode(envelope, raw)?;
        write_durably(&self.tmp, &self.queue.join(&name), &bytes)?;
        Ok(name)
    }

    fn counts(&self) -> anyhow::Result<(usize, usize, usize)> {
        Ok((
            list(&self.queue)?.len(),
            list(&self.outgoing)?.len(),
            list(&self.failed)?.len(),
        ))
    }

    fn read(&self, name: &str) -> Result<Option<(Envelope, Vec<u8>)>, ReadError> {
        read_entry(
            &self
                .queue
                .join(checked(name).map_err(ReadError::Undecodable)?),
        )
    }

    fn read_outgoing(&self, name: &str) -> Result<Option<(OutgoingEnvelope, Vec<u8>)>, ReadError> {
        read_entry(
            &self
                .outgoing
                .join(checked(name).map_err(ReadError::Undecodable)?),
        )
    }

    /// Claims `key` (a Message-ID digest, or `notice-<id>`) for the entry
    /// `name`. The filesystem decides the winner: the owner's name is
    /// written to a temporary file and fsync'd, then hard-linked to
    /// `ledger/<key>`; `link` fails for everyone but the first, and the
    /// entry appears with its owner already in it, so a crash can never
    /// leave an entry without one.
    fn claim(&self, key: &str, name: &str) -> anyhow::Result<Claim> {
        let path = self.ledger.join(checked(key)?);
        let linked = match files::write_staged(
            &self.tmp,
            &path,
            name.as_bytes(),
            Access::Private,
            Existing::Refuse,
        ) {
            Ok(()) => true,
            Err(err) if err.is_already_exists() => false,
            Err(err) => {
                return Err(anyhow::Error::new(err)
                    .context(format!("creating ledger entry {}", path.display())))
            }
        };
        if linked {
            return Ok(Claim::New);
        }
        let owner = fs::read_to_string(&path)
            .with_context(|| format!("reading ledger entry {}", path.display()))?;
        if owner == name {
            Ok(Claim::Ours)
        } else {
            // An empty owner can only be an entry of an older version that
            // crashed between creating and writing it: whoever that was, the
            // message may have been answered, so it counts as taken.
            Ok(Claim::Taken(owner))
        }
    }

    fn reply_exists(&self, name: &str) -> anyhow::Result<bool> {
        let name = checked(name)?;
        Ok(self.outgoing.join(name).exists() || self.sent.join(name).exists())
    }

    fn stage_reply(
        &self,
        name: &str,
        envelope: &OutgoingEnvelope,
        message: &[u8],
    ) -> anyhow::Result<()> {
        let bytes = encode(envelope, message)?;
        write_durably(&self.tmp, &self.outgoing.join(checked(name)?), &bytes)
    }

    fn finish(&self, name: &str) -> anyhow::Result<()> {
        let path = self.queue.join(checked(name)?);
        match fs::remove_file(&path) {
            Ok(()) => Ok(sync_dir(&self.queue)?),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err).with_context(|| format!("removing {}", path.display())),
        }
    }

    fn mark_sent(&self, name: &str) -> anyhow::Result<()> {
        let name = checked(name)?;
        move_durably(&self.outgoing.join(name), &self.sent.join(name))
    }

    fn fail_inbound(&self, name: &str) -> anyhow::Result<()> {
        let name = checked(name)?;
        move_durably(
            &self.queue.join(name),
            &self.failed.join(format!("in-{name}")),
        )
    }

    fn fail_outgoing(&self, name: &str) -> anyhow::Result<()> {
        let name = checked(name)?;
        move_durably(
            &self.outgoing.join(name),
            &self.failed.join(format!("out-{name}")),
        )
    }
}

/// Removes the files of `dir` last modified more than `age` ago.
fn remove_older(dir: &Path, age: Duration) -> anyhow::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        // A file's age is measured with the operating system's clock on
        // purpose: the gateway clock may be moved for licensing tests, but
        // housekeeping of files is a question about real time.
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|elapsed| elapsed > age);
        if old {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(err).with_context(|| format!("removing {}", entry.path().display()))
                }
            }
        }
    }
    Ok(removed)
}

/// How much of an oversized message is kept: enough for its headers, so
/// that the sender can be told the message was too large.
pub const OVERSIZE_HEAD: usize = 64 * 1024;

/// Reads a whole message from `reader`, keeping at most `limit` bytes. A
/// larger message is read to its end (so the writer never sees a broken
/// pipe) but only its first [`OVERSIZE_HEAD`] bytes are kept. Returns the
/// bytes kept, the full size and whether it was cut.
pub fn read_bounded(reader: &mut impl Read, limit: usize) -> std::io::Result<(Vec<u8>, u64, bool)> {
    let mut kept = Vec::new();
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    reader
        .take(limit_u64.saturating_add(1))
        .read_to_end(&mut kept)?;
    if kept.len() <= limit {
        let size = kept.len() as u64;
        return Ok((kept, size, false));
    }
    let rest = std::io::copy(reader, &mut std::io::sink())?;
    let size = kept.len() as u64 + rest;
    kept.truncate(OVERSIZE_HEAD.min(limit));
    Ok((kept, size, true))
}

/// A name that sorts by arrival and never collides: time, then a random UUID.
fn entry_name(received_at: DateTime<Utc>) -> String {
    format!(
        "{}-{}",
        received_at.format("%Y%m%dT%H%M%S%.6fZ"),
        Uuid::new_v4().simple()
    )
}

/// Refuses names that could leave the spool directory.
fn checked(name: &str) -> anyhow::Result<&str> {
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        bail!("invalid spool entry name {name:?}");
    }
    Ok(name)
}

/// One JSON line with the envelope, then the message bytes.
fn encode<E: Serialize>(envelope: &E, message: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(envelope).context("encoding spool envelope")?;
    bytes.push(b'\n');
    bytes.extend_from_slice(message);
    Ok(bytes)
}

fn read_entry<E: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<Option<(E, Vec<u8>)>, ReadError> {
    let mut bytes = Vec::new();
    match File::open(path).and_then(|mut file| file.read_to_end(&mut bytes)) {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(ReadError::Io(
                anyhow::Error::new(err).context(format!("reading {}", path.display())),
            ))
        }
    }
    let Some(newline) = bytes.iter().position(|&b| b == b'\n') else {
        return Err(ReadError::Undecodable(anyhow::anyhow!(
            "spool entry {} has no envelope line",
            path.display()
        )));
    };
    let envelope = serde_json::from_slice(&bytes[..newline])
        .with_context(|| format!("decoding the envelope of {}", path.display()))
        .map_err(ReadError::Undecodable)?;
    let message = bytes.split_off(newline + 1);
    Ok(Some((envelope, message)))
}

fn list(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if let Some(name) = entry.file_name().to_str() {
            if checked(name).is_ok() {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Writes `bytes` to `target` whole or not at all, staged in `tmp_dir` (same
/// filesystem) so that scanners of `target`'s directory never meet half a file.
pub fn write_durably(tmp_dir: &Path, target: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    files::write_staged(tmp_dir, target, bytes, Access::Private, Existing::Replace)?;
    Ok(())
}

/// Creates `dir` and its missing parents, each readable by the owner only
/// (an existing directory keeps its permissions: the operator may have
/// opened it to an MTA's account on purpose).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir)
}

fn move_durably(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::rename(from, to)
        .with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
    if let Some(dir) = to.parent() {
        sync_dir(dir)?;
    }
    if let Some(dir) = from.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::{Intake, ReplyKind};

    fn envelope() -> Envelope {
        Envelope {
            return_path: Some("ops@acme.example".into()),
            recipients: vec!["licensing@solme.example".into()],
            received_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            intake: Intake::Smtp,
            size: 5,
            truncated: false,
        }
    }

    #[tokio::test]
    async fn accept_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let name = spool
            .accept(envelope(), b"hello\nworld".to_vec())
            .await
            .unwrap();
        assert_eq!(spool.queued().await.unwrap(), vec![name.clone()]);
        let (env, raw) = spool.read(&name).await.unwrap().unwrap();
        assert_eq!(env, envelope_with_time(env.received_at));
        assert_eq!(raw, b"hello\nworld");
        spool.finish(&name).await.unwrap();
        assert!(spool.queued().await.unwrap().is_empty());
        assert!(fs::read_dir(&spool.dirs.tmp).unwrap().next().is_none());
    }

    fn envelope_with_time(at: DateTime<Utc>) -> Envelope {
        Envelope {
            received_at: at,
            ..envelope()
        }
    }

    #[tokio::test]
    async fn a_key_is_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        assert_eq!(spool.claim("abc", "one").await.unwrap(), Claim::New);
        assert_eq!(spool.claim("abc", "one").await.unwrap(), Claim::Ours);
        assert_eq!(
            spool.claim("abc", "two").await.unwrap(),
            Claim::Taken("one".into())
        );
    }

    #[tokio::test]
    async fn a_reply_is_in_outgoing_or_sent() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let env = OutgoingEnvelope {
            from: None,
            to: "ops@acme.example".into(),
            kind: ReplyKind::License,
        };
        assert!(!spool.reply_exists("r1").await.unwrap());
        spool
            .stage_reply("r1", env.clone(), b"reply".to_vec())
            .await
            .unwrap();
        assert!(spool.reply_exists("r1").await.unwrap());
        assert_eq!(
            spool.read_outgoing("r1").await.unwrap(),
            Some((env, b"reply".to_vec()))
        );
        spool.mark_sent("r1").await.unwrap();
        assert!(spool.reply_exists("r1").await.unwrap());
        assert!(spool.outgoing().await.unwrap().is_empty());
    }

    #[test]
    fn oversized_input_is_cut_and_counted() {
        let big = vec![b'x'; OVERSIZE_HEAD * 2];
        let (kept, size, cut) = read_bounded(&mut &big[..], OVERSIZE_HEAD + 10).unwrap();
        assert!(cut);
        assert_eq!(size, big.len() as u64);
        assert_eq!(kept.len(), OVERSIZE_HEAD);
        let (kept, size, cut) = read_bounded(&mut &b"small"[..], 100).unwrap();
        assert_eq!((kept, size, cut), (b"small".to_vec(), 5, false));
    }

    #[tokio::test]
    async fn prune_keeps_recent_files() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        spool.claim("k", "one").await.unwrap();
        assert_eq!(spool.prune(Duration::from_secs(3600)).await.unwrap(), 0);
        assert_eq!(spool.prune(Duration::ZERO).await.unwrap(), 1);
        assert_eq!(spool.claim("k", "two").await.unwrap(), Claim::New);
    }

    #[tokio::test]
    async fn a_ledger_entry_is_never_seen_without_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        assert_eq!(spool.claim("k", "one").await.unwrap(), Claim::New);
        assert_eq!(
            fs::read_to_string(spool.dirs.ledger.join("k")).unwrap(),
            "one"
        );
        // No temporary file is left behind, won or lost.
        assert_eq!(
            spool.claim("k", "two").await.unwrap(),
            Claim::Taken("one".into())
        );
        assert!(fs::read_dir(&spool.dirs.tmp).unwrap().next().is_none());
        // An empty entry (left by an older version's crash) is nobody's:
        // the message may have been answered, so it is not answered again.
        fs::write(spool.dirs.ledger.join("old"), "").unwrap();
        assert_eq!(
            spool.claim("old", "one").await.unwrap(),
            Claim::Taken(String::new())
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_spool_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let spool = Spool::open(&data).unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        for sub in [
            "spool",
            "spool/tmp",
            "spool/queue",
            "spool/outgoing",
            "ledger",
        ] {
            assert_eq!(mode(&data.join(sub)), 0o700, "{sub}");
        }
        let name = spool.accept(envelope(), b"x".to_vec()).await.unwrap();
        assert_eq!(mode(&spool.dirs.queue.join(&name)), 0o600);
        spool.claim("k", &name).await.unwrap();
        assert_eq!(mode(&spool.dirs.ledger.join("k")), 0o600);
    }

    #[test]
    fn a_huge_limit_does_not_overflow() {
        let (kept, size, cut) = read_bounded(&mut &b"small"[..], usize::MAX).unwrap();
        assert_eq!((kept, size, cut), (b"small".to_vec(), 5, false));
    }

    #[tokio::test]
    async fn undecodable_entries_are_told_apart_from_io_errors() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        fs::write(spool.dirs.queue.join("junk"), b"no envelope line").unwrap();
        assert!(matches!(
            spool.read("junk").await,
            Err(ReadError::Undecodable(_))
        ));
        fs::write(spool.dirs.queue.join("bad"), b"{not json\nbody").unwrap();
        assert!(matches!(
            spool.read("bad").await,
            Err(ReadError::Undecodable(_))
        ));
        // A directory where a file should be: the read itself fails.
        fs::create_dir(spool.dirs.queue.join("dir")).unwrap();
        assert!(matches!(spool.read("dir").await, Err(ReadError::Io(_))));
    }

    #[tokio::test]
    async fn names_that_escape_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        assert!(spool.read("../etc").await.is_err());
        assert_eq!(spool.read("absent").await.unwrap(), None);
        assert!(spool.claim("a/b", "x").await.is_err());
        assert!(spool.read(".hidden").await.is_err());
    }
}
