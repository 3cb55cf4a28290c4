//! The worker: the job of the inbound queue (see [`crate::queue::runner`]). It takes each
//! message from the spool, asks the main server and stages the reply; the queue
//! runner retries with back-off when the main server is away.
//!
//! Each queued message goes through these durable steps:
//!
//! 1. If a reply with the message's name already exists (`outgoing/` or
//!    `sent/`), a crash came between staging and removal: just remove it.
//! 2. Automatic mail is dropped (no reply, no ledger entry).
//! 3. The dedup key (sender + Message-ID) is claimed in the ledger. Another
//!    entry holding it means a duplicate: dropped. This entry holding it
//!    means a restart resumed it.
//! 4. The main server is asked (sync or key-clear request). If it is away
//!    the message stays queued and is tried again after the runner's back-off;
//!    it is never dropped.
//!    A sync whose earlier try may have reached the main server (a restart
//!    found the ledger entry ours, or a timeout, reset or 5xx) is
//!    *resumed*: the main server answers it with the same license file
//!    again, and an "already used" refusal of it is explained as our
//!    interruption, not as the customer's re-send.
//! 5. The reply is staged in `outgoing/`, then the message leaves `queue/`.
//!
//! A spool entry that cannot be read for a file-system reason is retried
//! like an outage; only one that cannot be decoded goes to `failed/`.
//!
//! Runs on the gateway's single-threaded runtime (the awc client is not
//! `Send`); file I/O goes to the blocking pool.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use shared_proto::{hex, Clock};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::admin_client::{AdminClient, ApiRefusal, MainServerError};
use crate::classify::message::{classify, Request, Verdict};
use crate::classify::sender_auth;
use crate::outgoing::replies::{Composer, Refusal, Reply};
use crate::queue::runner::{Attempt, Backoff, Job};
use crate::queue::spool::{Claim, ReadError, Spool};
use crate::status::counters::Stats;
use crate::vocabulary::{Envelope, Intake, Sender};

/// What the spool holds for a queued name.
enum Stored {
    Queued(Envelope, Vec<u8>),
    /// Its reply is staged or sent: only the removal was missing.
    Replied,
    /// No longer queued.
    Gone,
}

/// What one message's earlier tries in this process left behind.
#[derive(Debug, Default)]
pub struct Progress {
    /// An earlier try (of this process or of one before a restart) may have
    /// reached the main server with this message's sync data.
    uncertain: bool,
    /// The ledger was already claimed by an earlier try of this process.
    claimed: bool,
}

/// Counts each queued message once as `received`, whether the gateway
/// learnt of it from its own intake (SMTP, Maildir) or by scanning the
/// queue (`deliver`, leftovers of a restart), and however often a scan
/// lists it again.
#[derive(Debug, Default)]
pub struct ReceivedCounter {
    /// Names already counted that may still turn up in a listing.
    counted: HashSet<String>,
    /// The names of the previous listing.
    previous: HashSet<String>,
}

impl ReceivedCounter {
    /// A name announced by an intake: true when it was not counted yet.
    pub fn announced(&mut self, name: &str) -> bool {
        self.counted.insert(name.to_owned())
    }

    /// A listing of the queue, taken before `in_progress` was looked at;
    /// returns how many of its names were not counted yet.
    pub fn listed(&mut self, names: &[String], in_progress: &HashSet<String>) -> usize {
        let new = names
            .iter()
            .filter(|name| self.counted.insert((*name).clone()))
            .count();
        let listing: HashSet<String> = names.iter().cloned().collect();
        // A name can be forgotten once it is in no listing and not being
        // processed. It is kept for one more listing because an intake
        // announces a message just after storing it: a listing can see the
        // file before the announcement arrives.
        let previous = std::mem::replace(&mut self.previous, listing);
        self.counted.retain(|name| {
            self.previous.contains(name) || previous.contains(name) || in_progress.contains(name)
        });
        new
    }
}

/// Everything the worker needs, shared by its per-message tasks.
pub struct Worker {
    pub spool: Spool,
    pub main: AdminClient,
    pub composer: Composer,
    pub clock: Clock,
    pub stats: Arc<Stats>,
    /// For the one retry loop inside an attempt (staging a reply).
    pub backoff: Backoff,
    pub limit: usize,
    /// The mail server's authserv-id: whose `Authentication-Results` is believed.
    pub authserv_id: Option<String>,
    /// Names of staged replies, for the sender.
    pub replies: mpsc::UnboundedSender<String>,
    pub counter: RefCell<ReceivedCounter>,
    pub complaints: RefCell<Complaints>,
}

/// Replies about bad mail allowed per sender address and hour. An
/// autoresponder that marks nothing as automatic would otherwise answer our
/// "no sync data" forever; a person never needs this many in an hour.
pub const MAX_COMPLAINTS_PER_HOUR: usize = 10;

/// Recent replies about bad mail, per sender (in memory: a restart forgets).
#[derive(Debug, Default)]
pub struct Complaints {
    sent: HashMap<String, VecDeque<DateTime<Utc>>>,
}

impl Complaints {
    /// Records a reply to `address` at `now` if it is within the limit.
    pub fn allow(&mut self, address: &str, now: DateTime<Utc>) -> bool {
        let hour_ago = now - chrono::Duration::hours(1);
        self.sent.retain(|_, times| {
            while times.front().is_some_and(|t| *t < hour_ago) {
                times.pop_front();
            }
            !times.is_empty()
        });
        let times = self.sent.entry(address.to_ascii_lowercase()).or_default();
        if times.len() >= MAX_COMPLAINTS_PER_HOUR {
            return false;
        }
        times.push_back(now);
        true
    }
}

impl Job for Worker {
    type Progress = Progress;
    const ENTRY: &'static str = "message";

    async fn list(spool: &Spool) -> anyhow::Result<Vec<String>> {
        spool.queued().await
    }

    async fn fail(spool: &Spool, name: &str) -> anyhow::Result<()> {
        spool.fail_inbound(name).await
    }

    fn announced(&self, name: &str) {
        if self.counter.borrow_mut().announced(name) {
            Stats::add(&self.stats.received);
        }
    }

    fn listed(&self, names: &[String], in_progress: &HashSet<String>) {
        let new = self.counter.borrow_mut().listed(names, in_progress);
        for _ in 0..new {
            Stats::add(&self.stats.received);
        }
    }

    async fn attempt(&self, name: &str, progress: &mut Progress) -> Attempt {
        self.try_message(name, progress).await
    }
}

impl Worker {
    async fn try_message(&self, name: &str, progress: &mut Progress) -> Attempt {
        let (envelope, raw) = match read_stored(&self.spool, name).await {
            Ok(Stored::Queued(envelope, raw)) => (envelope, raw),
            // An earlier task finished it.
            Ok(Stored::Gone) => return Attempt::Done,
            Ok(Stored::Replied) => {
                log::info!("message={name} was answered before a restart; removing it");
                return self.finish(name).await;
            }
            // EMFILE, EIO and the like pass: the entry is read again later.
            Err(ReadError::Io(err)) => return Attempt::Retry(err),
            Err(ReadError::Undecodable(err)) => return Attempt::GiveUp(err),
        };

        let verdict = classify(&raw, &envelope, &self.composer.address(), self.limit);
        let (sender, request) = match verdict {
            Verdict::Drop(reason) => {
                log::info!(
                    "message={name} dropped without reply: {} ({reason:?})",
                    reason.label()
                );
                Stats::add(&self.stats.dropped);
                return self.finish(name).await;
            }
            Verdict::Answer { sender, request } => (sender, request),
        };

        let key = dedup_key(&sender, &raw);
        let claim = match self.spool.claim(&key, name).await {
            Ok(claim) => claim,
            Err(err) => return Attempt::Retry(err),
        };
        match claim {
            Claim::New => {}
            // Claimed before this process's first try: a run before a
            // restart may have asked the main server already.
            Claim::Ours if !progress.claimed => progress.uncertain = true,
            Claim::Ours => {}
            Claim::Taken(first) => {
                log::info!(
                    "message={name} from={} is a duplicate of message={first}: no second reply",
                    sender.address
                );
                Stats::add(&self.stats.dropped);
                return self.finish(name).await;
            }
        }
        progress.claimed = true;

        match self
            .answer(name, &sender, &request, &raw, envelope.intake, progress)
            .await
        {
            Ok(()) => self.finish(name).await,
            Err(attempt) => attempt,
        }
    }

    /// Asks the main server if needed, then stages the reply.
    async fn answer(
        &self,
        name: &str,
        sender: &Sender,
        request: &Request,
        raw: &[u8],
        intake: Intake,
        progress: &mut Progress,
    ) -> Result<(), Attempt> {
        let answer;
        let recorded;
        let reply = match request {
            Request::Sync {
                sync_data,
                server_id,
                ..
            } => match self.main.mail_sync(&sender.address, sync_data).await {
                Ok(ok) => {
                    answer = ok;
                    log::info!(
                        "message={name} from={} server_id={server_id} answered with a license file valid until {}",
                        sender.address,
                        answer.valid_until
                    );
                    Reply::License(&answer)
                }
                Err(MainServerError::Refused(refused)) => refused_reply(
                    name,
                    sender,
                    *server_id,
                    &refused,
                    false,
                    progress.uncertain,
                ),
                Err(err @ MainServerError::Unavailable(_)) => {
                    return Err(Attempt::Retry(err.into()))
                }
                // It may have issued the license file: the next try is a
                // resumption, which the main server answers with the same file.
                Err(err @ MainServerError::Uncertain(_)) => {
                    progress.uncertain = true;
                    return Err(Attempt::Retry(err.into()));
                }
            },
            Request::KeyClear { server_id, text } => {
                let message_id = sender
                    .message_id
                    .clone()
                    .unwrap_or_else(|| format!("{name}@gateway.invalid"));
                // Which headers can be believed depends on who received the mail.
                let checked =
                    sender_auth::check(raw, intake, self.authserv_id.as_deref(), &sender.address);
                match self
                    .main
                    .key_clear_request(*server_id, &sender.address, &message_id, text, &checked)
                    .await
                {
                    Ok(filed) => {
                        log::info!(
                            "message={name} from={} server_id={server_id} key-clear request {} filed, sender {}",
                            sender.address,
                            filed.id,
                            checked.describe()
                        );
                        Reply::KeyClearAck {
                            server_id: *server_id,
                            request_id: filed.id,
                            sender_auth: filed.sender_auth,
                        }
                    }
                    Err(MainServerError::Refused(refused)) => {
                        refused_reply(name, sender, *server_id, &refused, true, false)
                    }
                    // Filing is idempotent by Message-ID: a retry finds
                    // the request filed by a try that lost its answer.
                    Err(err) => return Err(Attempt::Retry(err.into())),
                }
            }
            Request::Receipt { receipt, server_id } => {
                match self.main.mail_receipt(&sender.address, receipt).await {
                    Ok(ok) => {
                        recorded = ok;
                        log::info!(
                            "message={name} from={} server_id={server_id} receipt of license file {} recorded",
                            sender.address,
                            recorded.sequence
                        );
                        Reply::Receipt(&recorded)
                    }
                    Err(MainServerError::Refused(refused)) => {
                        receipt_refused(name, sender, *server_id, &refused)
                    }
                    // Recording is idempotent: a retry finds the receipt recorded.
                    Err(err) => return Err(Attempt::Retry(err.into())),
                }
            }
            Request::Problem(problem) => {
                log::info!(
                    "message={name} from={} answered: {}",
                    sender.address,
                    problem.label()
                );
                Reply::Problem(problem)
            }
        };
        let now = self.clock.now();
        if !matches!(
            reply,
            Reply::License(_) | Reply::KeyClearAck { .. } | Reply::Receipt(_)
        ) && !self.complaints.borrow_mut().allow(&sender.address, now)
        {
            log::warn!(
                "message={name} from={} no reply: more than {MAX_COMPLAINTS_PER_HOUR} \
                 replies about bad mail to this address within an hour (mail loop?)",
                sender.address
            );
            Stats::add(&self.stats.dropped);
            return Ok(());
        }
        let (envelope, bytes) = self
            .composer
            .compose(&reply, sender, name, now)
            .map_err(Attempt::GiveUp)?;
        // The main server's answer exists only in memory now: a disk error
        // is retried here, holding on to it, rather than asking again (the
        // main server would refuse the sync data as already used).
        let mut failures = 0;
        loop {
            match self
                .spool
                .stage_reply(name, envelope.clone(), bytes.clone())
                .await
            {
                Ok(()) => return Ok(()),
                Err(err) => {
                    failures += 1;
                    let delay = self.backoff.failed(failures);
                    log::warn!("message={name} reply not staged, next try in {delay:?}: {err:#}");
                    // At a stop the message stays queued: the next start resumes
                    // its sync (the main server answers it again).
                    if !self.backoff.wait(delay).await {
                        return Err(Attempt::Retry(err));
                    }
                }
            }
        }
    }

    /// Removes the message from the queue and hands its reply (if any) on.
    async fn finish(&self, name: &str) -> Attempt {
        if let Err(err) = self.spool.finish(name).await {
            return Attempt::Retry(err);
        }
        // The sender also scans `outgoing/`, so a reply left there by a
        // crash is not lost when this notification never happens.
        let _ = self.replies.send(name.to_owned());
        Attempt::Done
    }
}

/// The reply to a sync (or key-clear request) the main server refused, logged. `resumed`:
/// the sync data may have reached the main server before (a try before a restart, or one
/// whose answer was lost), so the customer may never have had its first answer.
fn refused_reply(
    name: &str,
    sender: &Sender,
    server_id: Uuid,
    refused: &ApiRefusal,
    for_key_clear: bool,
    resumed: bool,
) -> Reply<'static> {
    let what = if for_key_clear {
        "key-clear request"
    } else {
        "sync"
    };
    log::info!(
        "message={name} from={} server_id={server_id} {what} refused: {}: {}",
        sender.address,
        refused.code,
        refused.message
    );
    Reply::Refused {
        server_id,
        refusal: Refusal::from_code(refused.status, refused.code, &refused.message, resumed),
        for_key_clear,
    }
}

/// The reply to a refused receipt: the main server's words, except that an unknown id
/// and an unregistered sender are told alike (a stranger learns nothing of which ids
/// exist).
fn receipt_refused(
    name: &str,
    sender: &Sender,
    server_id: Uuid,
    refused: &ApiRefusal,
) -> Reply<'static> {
    log::info!(
        "message={name} from={} server_id={server_id} receipt refused: {}: {}",
        sender.address,
        refused.code,
        refused.message
    );
    let message = match refused.code {
        shared_proto::ErrorCode::UnknownServerId | shared_proto::ErrorCode::Unauthorized => {
            "Solme does not know this id, or the address is not registered as a contact \
             of its customer"
                .to_owned()
        }
        _ => refused.message.clone(),
    };
    Reply::Refused {
        server_id,
        refusal: Refusal::Other {
            code: refused.code,
            message,
        },
        for_key_clear: false,
    }
}

/// What the spool holds for `name`.
async fn read_stored(spool: &Spool, name: &str) -> Result<Stored, ReadError> {
    if spool.reply_exists(name).await.map_err(ReadError::Io)? {
        return Ok(Stored::Replied);
    }
    Ok(match spool.read(name).await? {
        Some((envelope, raw)) => Stored::Queued(envelope, raw),
        None => Stored::Gone,
    })
}

/// The ledger key of a message: its sender and Message-ID, or its bytes
/// when it has no Message-ID. The sender is part of the key so that nobody
/// can suppress another customer's answer by reusing their Message-ID.
pub fn dedup_key(sender: &Sender, raw: &[u8]) -> String {
    let material = match &sender.message_id {
        Some(id) => format!("{}\n{}", sender.address.to_ascii_lowercase(), id.trim()),
        None => format!("raw\n{}", hex::encode(&openssl::sha::sha256(raw))),
    };
    hex::encode(&openssl::sha::sha256(material.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_is_received_once() {
        let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let none = HashSet::new();
        let mut counter = ReceivedCounter::default();
        // SMTP announces `a`; a listing taken meanwhile sees `a` and `d`
        // (from `deliver`).
        assert!(counter.announced("a"));
        assert_eq!(counter.listed(&names(&["a", "d"]), &none), 1);
        // A listing taken before `b` was announced sees it first.
        assert_eq!(counter.listed(&names(&["a", "b", "d"]), &none), 1);
        assert!(!counter.announced("b"));
        // Listed again and again while being processed: still once.
        let busy: HashSet<String> = ["a".to_string()].into();
        assert_eq!(counter.listed(&names(&["a"]), &busy), 0);
        assert_eq!(counter.listed(&[], &busy), 0);
        assert_eq!(counter.listed(&[], &none), 0);
        assert!(counter.counted.is_empty(), "{:?}", counter.counted);
    }

    #[test]
    fn complaints_are_limited_per_sender_and_hour() {
        let mut complaints = Complaints::default();
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for _ in 0..MAX_COMPLAINTS_PER_HOUR {
            assert!(complaints.allow("a@x.example", start));
        }
        assert!(!complaints.allow("A@x.example", start));
        assert!(complaints.allow("b@x.example", start));
        let later = start + chrono::Duration::minutes(61);
        assert!(complaints.allow("a@x.example", later));
    }

    #[test]
    fn dedup_key_depends_on_sender_and_id() {
        let sender = |address: &str, id: Option<&str>| Sender {
            address: address.into(),
            name: None,
            message_id: id.map(str::to_owned),
            references: vec![],
            subject: String::new(),
        };
        let a = dedup_key(&sender("a@x.example", Some("1@x")), b"one");
        assert_eq!(a, dedup_key(&sender("A@x.example", Some("1@x")), b"two"));
        assert_ne!(a, dedup_key(&sender("b@x.example", Some("1@x")), b"one"));
        assert_ne!(
            dedup_key(&sender("a@x.example", None), b"one"),
            dedup_key(&sender("a@x.example", None), b"two")
        );
    }
}
