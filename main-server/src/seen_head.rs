//! The newest audit head this server has seen, kept in its data directory
//! (`last-audit-head.json`), outside the database. It works as a saved head that
//! keeps itself: the sealer moves it forward only while the chain still holds it, and
//! `verify` checks it, so entries removed from the end of the chain, or the chain
//! rewritten and sealed again, are found even when no operator saved a head.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use chrono::{DateTime, Utc};
use shared_proto::audit_head::AuditHead;
use shared_proto::files::{self, Access, Existing};

use crate::db::DbConnection;
use crate::error::ApiError;
use crate::store::audit_chain::{self, HeadOf};

/// Largest file read back (the head is about two hundred bytes).
const MAX_FILE: u64 = 16 * 1024;

pub struct SeenHead {
    path: PathBuf,
    /// Whether the break was logged already (once, not every second).
    warned: AtomicBool,
}

impl SeenHead {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            warned: AtomicBool::new(false),
        }
    }

    /// The head in the file; `None` before the first one was seen.
    pub fn load(&self) -> anyhow::Result<Option<AuditHead>> {
        let len = match std::fs::metadata(&self.path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        anyhow::ensure!(len <= MAX_FILE, "{} is too large", self.path.display());
        let bytes = std::fs::read(&self.path)
            .with_context(|| format!("reading {}", self.path.display()))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading {}", self.path.display()))
    }

    /// Moves the file to the chain's current head, if the chain still holds the head
    /// in the file (else the file stays: `verify` reports the break). The file is read
    /// each time, so removing it (after restoring a database backup) takes effect at
    /// once.
    pub fn advance(&self, conn: &mut DbConnection, now: DateTime<Utc>) -> Result<(), ApiError> {
        let current = audit_chain::head(conn, now)?;
        if let Some(seen) = self.load().map_err(ApiError::Internal)? {
            if seen.chain_seq == current.chain_seq && seen.entry_hash == current.entry_hash {
                return Ok(());
            }
            if let Some(problem) = audit_chain::check_head(conn, &seen, HeadOf::Server)? {
                if self.warned.swap(true, Ordering::Relaxed) {
                    return Ok(());
                }
                log::warn!(
                    "the audit chain no longer holds the head this server saw last \
                     (position {}): {}; run `main-server admin audit verify`",
                    seen.chain_seq,
                    problem.message
                );
                return Ok(());
            }
        }
        let json = serde_json::to_vec_pretty(&current)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("encoding the seen head: {e}")))?;
        files::write(&self.path, &json, Access::Public, Existing::Replace)?;
        self.warned.store(false, Ordering::Relaxed);
        Ok(())
    }
}
