//! The recent mails of the status page, read from the spool's folders: replies handed
//! to the mail server (`sent/`), replies waiting (`outgoing/`), mails waiting for the
//! worker (`queue/`) and what was given up (`failed/`). Only each file's first line
//! (its envelope) is read, at most [`ENVELOPE_BYTES`] of it; the newest
//! [`RECENT_MAILS`] by modification time are shown.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::vocabulary::{Envelope, OutgoingEnvelope};

/// How many mails the page lists.
pub const RECENT_MAILS: usize = 20;
/// Most files looked at per folder (the newest are kept; a huge spool costs no more).
const MOST_LISTED: usize = 5_000;
/// The envelope line is short; more than this is not read.
const ENVELOPE_BYTES: u64 = 4_096;

/// Where a mail stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailState {
    /// A reply was handed to the mail server.
    Answered,
    /// A reply is composed and waits for the mail server.
    ReplyWaiting,
    /// A received mail waits for the worker.
    Queued,
    /// Given up on (a mail or a reply), kept for an operator.
    Failed,
}

impl MailState {
    pub fn words(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::ReplyWaiting => "reply waiting to be sent",
            Self::Queued => "received, waiting to be read",
            Self::Failed => "given up (kept in spool/failed/)",
        }
    }
}

/// One mail of the list.
#[derive(Debug, Clone, Serialize)]
pub struct RecentMail {
    pub at: DateTime<Utc>,
    pub state: MailState,
    /// The customer's address: the reply's recipient, or the mail's sender.
    pub address: Option<String>,
    /// What the reply was (`license`, `no-sync-data`, …), for replies.
    pub reply: Option<String>,
}

impl RecentMail {
    /// What the reply said, in words.
    pub fn reply_words(&self) -> Option<&'static str> {
        let kind = self.reply.as_deref()?;
        Some(match kind {
            "license" => "license file sent",
            "key-clear-ack" => "key-clear request received",
            "key-clear-approved" => "key pair cleared",
            "key-clear-rejected" => "key-clear request refused",
            "no-sync-data" => "no sync data found in the mail",
            "damaged" => "sync data damaged or unreadable",
            "license-file-sent" => "a license file was sent back to us",
            "key-clear-without-id" => "key-clear request without an id",
            "several-ids" => "several ids in one mail",
            "too-large" => "mail too large",
            "support-bundle" => "a support bundle, not sync data",
            "unknown-id" => "unknown license server id",
            "id-in-use" => "id in use by another key pair",
            "not-registered" => "sender not registered",
            "replayed" => "sync data already answered",
            "stale" => "sync data too old",
            "refused" => "sync refused",
            "receipt-recorded" => "installation receipt recorded",
            "reminder" => "synchronization reminder",
            "portal-link" => "portal sign-in link",
            _ => "other reply",
        })
    }
}

/// The newest mails of the spool under `spool_dir`, newest first. A folder that
/// cannot be read is skipped (the page shows what it can).
pub fn recent(spool_dir: &Path) -> Vec<RecentMail> {
    let mut found: Vec<(std::time::SystemTime, PathBuf, MailState)> = Vec::new();
    for (folder, state) in [
        ("sent", MailState::Answered),
        ("outgoing", MailState::ReplyWaiting),
        ("queue", MailState::Queued),
        ("failed", MailState::Failed),
    ] {
        let Ok(entries) = fs::read_dir(spool_dir.join(folder)) else {
            continue;
        };
        for entry in entries.flatten().take(MOST_LISTED) {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            if let Ok(modified) = meta.modified() {
                found.push((modified, entry.path(), state));
            }
        }
    }
    found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    found
        .into_iter()
        .take(RECENT_MAILS)
        .map(|(modified, path, state)| describe(&path, state, modified.into()))
        .collect()
}

fn describe(path: &Path, state: MailState, modified: DateTime<Utc>) -> RecentMail {
    let line = first_line(path).unwrap_or_default();
    let mut mail = RecentMail {
        at: modified,
        state,
        address: None,
        reply: None,
    };
    if let Ok(reply) = serde_json::from_slice::<OutgoingEnvelope>(&line) {
        mail.address = Some(reply.to);
        mail.reply = Some(reply.kind.as_str().to_owned());
    } else if let Ok(received) = serde_json::from_slice::<Envelope>(&line) {
        mail.at = received.received_at;
        mail.address = received.return_path.filter(|p| !p.is_empty());
    }
    mail
}

fn first_line(path: &Path) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .ok()?
        .take(ENVELOPE_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    let end = bytes.iter().position(|&b| b == b'\n')?;
    bytes.truncate(end);
    Some(bytes)
}
