//! The sync core, shared by the HTTPS endpoint and the mail gateway's admin call:
//! verify the sync data, refuse stale requests, check the sender (email), run the
//! database transaction, then sign and encrypt the license file. Every attempt, refused
//! or not, lands in the audit log.

use chrono::{DateTime, Duration, Utc};
use diesel::Connection;
use shared_proto::admin_api::{AuditAction, AuditEntry, SyncAnswer, SyncChannel};
use shared_proto::borrows::InheritedBorrows;
use shared_proto::keys::Fingerprint;
use shared_proto::messages::StandbyTerms;
use shared_proto::sync_data::VerifiedSyncRequest;
use shared_proto::validity::valid_until_for;
use shared_proto::{ErrorCode, LicenseFile};
use uuid::Uuid;

use crate::db::Db;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::audit;
use crate::store::standby::{self, Naming};
use crate::store::sync::{self as tx, Attempt, Issued};
use crate::store::{customers, licenses, reported_borrows};

/// Largest sync-data text accepted on either channel.
pub const MAX_SYNC_DATA: usize = 64 * 1024;

/// How old a request may be on each channel. A direct sync is made and sent within
/// seconds, so 15 minutes covers clock skew. A sync-data file travels by mail and may
/// wait for an operator, a weekend or a holiday: 30 days. Replays inside either window
/// are caught by the request id.
pub fn stale_window(channel: SyncChannel) -> Duration {
    match channel {
        SyncChannel::Internet => Duration::minutes(15),
        // A file carried by hand to a browser, like a mailed one.
        SyncChannel::Email | SyncChannel::Portal => Duration::days(30),
    }
}

/// A request whose signature holds and that is fresh: ready for the database.
struct Checked {
    verified: VerifiedSyncRequest,
    attempt: Attempt,
    /// The standby server the request names (never its own key pair).
    standby: Option<Fingerprint>,
}

/// The sync core is a part of the application state: both channels call it there.
impl AppState {
    /// Runs one direct (internet) sync. The crypto runs on the calling async worker
    /// (a fraction of a millisecond, cheaper than a thread switch); the transaction on
    /// a writer thread, committed together with the other syncs waiting.
    pub async fn sync_direct(&self, text: &str, peer: &str) -> Result<SyncAnswer, ApiError> {
        let channel = SyncChannel::Internet;
        let now = self.clock.now();
        let mut known = Known::default();
        let result = async {
            let checked = check(text, channel, peer, None, now, &mut known)?;
            let Checked {
                verified,
                attempt,
                standby,
            } = checked;
            let (server_id, key) = (attempt.server_id, attempt.fingerprint.clone());
            let issued = self.writer.issue(attempt).await?;
            // After the commit, on its own: the sync's group transaction (on PostgreSQL
            // one call of the sync function) knows nothing of standbys.
            let standby = match standby {
                Some(standby) => {
                    self.register_standby(server_id, key.clone(), standby, now, peer)
                        .await?
                }
                None => None,
            };
            let inherited = self
                .inherited_borrows(&verified, server_id, key, now)
                .await?;
            self.answer(&verified, channel, peer, now, issued, inherited, standby)
        }
        .await;
        if let Err(error) = &result {
            let record = refusal(now, channel, peer, peer, &known, error);
            if let Err(e) = self.writer.audit(record).await {
                log::warn!(
                    "could not write the audit entry of a refused sync: {:#}",
                    anyhow::Error::new(e)
                );
            }
        }
        result
    }

    /// Runs one sync. Blocking (database and crypto): call it inside `web::block`.
    /// `peer` is the client address (internet) and `sender` the mail sender (email).
    pub fn sync(
        &self,
        text: &str,
        channel: SyncChannel,
        peer: &str,
        sender: Option<&str>,
    ) -> Result<SyncAnswer, ApiError> {
        let now = self.clock.now();
        let actor = sender.unwrap_or(peer);
        let mut known = Known::default();
        let result = check(text, channel, peer, sender, now, &mut known)
            .and_then(|checked| self.sync_checked(checked, channel, peer, sender, now));
        if let Err(error) = &result {
            let record = refusal(now, channel, peer, actor, &known, error);
            if let Err(e) = write_audit(&self.db, &record) {
                log::warn!(
                    "could not write the audit entry of a refused sync: {:#}",
                    anyhow::Error::new(e)
                );
            }
        }
        result
    }

    /// The database part of [`Self::sync`], for a request that passed [`check`].
    fn sync_checked(
        &self,
        Checked {
            verified,
            attempt,
            standby,
        }: Checked,
        channel: SyncChannel,
        peer: &str,
        sender: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SyncAnswer, ApiError> {
        if let Some(sender) = sender {
            let mut conn = self.db.read.get()?;
            customers::check_contact(&mut conn, verified.request.server_id, sender)?;
        }
        let mut conn = self.db.write.get()?;
        if channel.carries_files() {
            // The same file asked again (the gateway lost our first answer, or a download
            // was lost): the same license file, not a refusal and not a new sequence
            // number.
            if let Some(kept) = self.resend(&mut conn, &attempt)? {
                return Ok(kept);
            }
        }
        let issued = conn.transaction::<_, ApiError, _>(|conn| {
            let issued = tx::issue_in(conn, &attempt)?;
            let inherited = match verified.request.held_sequence {
                Some(_) => None,
                None => {
                    reported_borrows::inherited(conn, attempt.server_id, &attempt.fingerprint, now)?
                }
            };
            let standby = match &standby {
                Some(standby) => standby::register(
                    conn,
                    &Naming {
                        server_id: attempt.server_id,
                        key: &attempt.fingerprint,
                        standby,
                        now,
                        actor: &attempt.actor,
                    },
                )?,
                None => None,
            };
            let answer = self.answer(&verified, channel, peer, now, issued, inherited, standby)?;
            if channel.carries_files() {
                let kept = serde_json::to_string(&answer).map_err(|e| {
                    ApiError::Internal(anyhow::Error::new(e).context("keeping an answer"))
                })?;
                tx::keep_answer(conn, &attempt, &kept)?;
            }
            Ok(answer)
        });
        match issued {
            // Two deliveries of one mail raced: the other committed the request id (and
            // its answer) between our look-up above and our insert. Now that our
            // transaction is rolled back, its kept answer is visible: same answer.
            Err(ApiError::Refused {
                code: ErrorCode::ReplayedRequest,
                ..
            }) if channel.carries_files() => match self.resend(&mut conn, &attempt)? {
                Some(kept) => Ok(kept),
                None => issued,
            },
            other => other,
        }
    }

    /// The answer kept for an email request the same key already had answered, if any.
    fn resend(
        &self,
        conn: &mut crate::db::DbConnection,
        attempt: &Attempt,
    ) -> Result<Option<SyncAnswer>, ApiError> {
        let Some(kept) = tx::resend(conn, attempt)? else {
            return Ok(None);
        };
        log::info!(
            "sync answered again server_id={} channel={} request_id={}",
            attempt.server_id,
            attempt.channel.as_str(),
            attempt.request_id
        );
        serde_json::from_str(&kept)
            .map(Some)
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("reading a kept answer")))
    }

    /// The borrowed seats a license file to a new installation carries over (see
    /// [`reported_borrows`]): read only for a request holding no license file, so
    /// syncs of installations holding one cost nothing more.
    async fn inherited_borrows(
        &self,
        verified: &VerifiedSyncRequest,
        server_id: Uuid,
        key: String,
        now: DateTime<Utc>,
    ) -> Result<Option<InheritedBorrows>, ApiError> {
        if verified.request.held_sequence.is_some() {
            return Ok(None);
        }
        let pool = self.db.read.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            reported_borrows::inherited(&mut conn, server_id, &key, now)
        })
        .await
        .map_err(|e| {
            ApiError::Internal(anyhow::Error::new(e).context("reading reported borrows"))
        })?
    }

    /// Registers the standby a direct sync named (see [`standby::register`]), on a
    /// writing connection, after the sync's commit.
    async fn register_standby(
        &self,
        server_id: Uuid,
        key: String,
        standby: Fingerprint,
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<Option<StandbyTerms>, ApiError> {
        let pool = self.db.write.clone();
        let actor = actor.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            let naming = Naming {
                server_id,
                key: &key,
                standby: &standby,
                now,
                actor: &actor,
            };
            standby::register(&mut conn, &naming)
        })
        .await
        .map_err(|e| {
            ApiError::Internal(anyhow::Error::new(e).context("registering a standby server"))
        })?
    }

    /// Signs and encrypts the license file for a committed sync.
    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one answer, each from a different step of the sync"
    )]
    fn answer(
        &self,
        verified: &VerifiedSyncRequest,
        channel: SyncChannel,
        peer: &str,
        now: DateTime<Utc>,
        issued: Issued,
        inherited_borrows: Option<InheritedBorrows>,
        standby: Option<StandbyTerms>,
    ) -> Result<SyncAnswer, ApiError> {
        let request = &verified.request;
        let valid_until = valid_until_for(now);
        let file = LicenseFile {
            version: shared_proto::messages::MESSAGE_VERSION,
            server_id: request.server_id,
            answers_request: request.request_id,
            recipient: verified.fingerprint.clone(),
            sequence: issued.sequence,
            revision: issued.revision,
            issued_at: now,
            valid_until,
            customer: issued.customer,
            licenses: licenses::to_proto(&issued.licenses),
            inherited_borrows,
            standby,
        };
        let license_file =
            shared_proto::license_file::seal(&self.signing_key, &file, &request.public_keys)
                .map_err(|e| {
                    ApiError::Internal(anyhow::Error::new(e).context("sealing a license file"))
                })?;
        if issued.marked_copy {
            log::warn!(
                "possible copy server_id={}: two installations seem to synchronize with \
                 one key pair; the evidence is in the audit log",
                request.server_id
            );
        }
        log::info!(
            "sync ok server_id={} channel={} peer={peer} sequence={} revision={}{}",
            request.server_id,
            channel.as_str(),
            issued.sequence,
            issued.revision,
            if issued.bound_now {
                " (key pair bound)"
            } else {
                ""
            }
        );
        Ok(SyncAnswer {
            server_id: request.server_id,
            license_file,
            valid_until,
            licenses: issued.licenses,
            usage: request.usage.clone(),
        })
    }

    /// Forgets request ids old enough to be refused as stale anyway.
    pub fn prune(&self) -> Result<usize, ApiError> {
        let mut conn = self.db.write.get()?;
        tx::prune_used_requests(&mut conn, self.clock.now() - tx::REQUEST_ID_RETENTION)
    }
}

/// The checks that need no database: size, signature, freshness.
fn check(
    text: &str,
    channel: SyncChannel,
    peer: &str,
    sender: Option<&str>,
    now: DateTime<Utc>,
    known: &mut Known,
) -> Result<Checked, ApiError> {
    if text.len() > MAX_SYNC_DATA {
        return Err(ApiError::malformed(format!(
            "sync data is larger than {MAX_SYNC_DATA} bytes"
        )));
    }
    let verified = shared_proto::sync_data::open(text)?;
    let request = &verified.request;
    known.server_id = Some(request.server_id);
    known.request_id = Some(request.request_id);
    known.fingerprint = Some(verified.fingerprint.to_string());

    let standby = request.standby_keys.as_ref().map(|keys| keys.fingerprint());
    if standby.as_ref() == Some(&verified.fingerprint) {
        return Err(ApiError::malformed(
            "the sync data names this server's own key pair as its standby server: a \
             standby is a second installation with a key pair of its own; pair the two \
             servers again",
        ));
    }

    let age = now - request.created_at;
    if age.abs() > stale_window(channel) {
        return Err(ApiError::refused(
            ErrorCode::StaleRequest,
            format!(
                "the sync data was created at {} but it is now {} here: {} syncs must be \
                 used within {} of their creation; check the server's clock and make a new one",
                request.created_at.to_rfc3339(),
                now.to_rfc3339(),
                channel.as_str(),
                describe(stale_window(channel))
            ),
        ));
    }

    let request_counter = match request.request_counter.map(i64::try_from) {
        None => None,
        Some(Ok(counter)) => Some(counter),
        Some(Err(_)) => {
            return Err(ApiError::malformed(
                "the request counter of the sync data is out of range",
            ))
        }
    };
    if let Some(hash) = &request.held_file_sha256 {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::malformed(
                "the hash of the license file held is not a SHA-256 in hex",
            ));
        }
    }
    let detail = format!(
        "channel {}, peer {peer}, key {}, request {}, software {}, {}{}{}",
        channel.as_str(),
        verified.fingerprint,
        request.request_id,
        request
            .software_version
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect::<String>(),
        request.held_sequence.map_or_else(
            || "holds no license file".to_owned(),
            |held| format!("held sequence {held}")
        ),
        request_counter.map_or_else(String::new, |c| format!(", request counter {c}")),
        standby
            .as_ref()
            .map_or_else(String::new, |s| format!(", names standby server {s}")),
    );
    let attempt = Attempt {
        server_id: request.server_id,
        request_id: request.request_id,
        created_at: request.created_at,
        fingerprint: verified.fingerprint.to_string(),
        channel,
        now,
        actor: sender.unwrap_or(peer).to_owned(),
        detail,
        usage: serde_json::to_string(&request.usage).map_err(|e| {
            ApiError::Internal(anyhow::Error::new(e).context("encoding a usage summary"))
        })?,
        usage_since: request.usage_since,
        request_counter,
        held_sequence: request.held_sequence,
        held_file_sha256: request
            .held_file_sha256
            .as_ref()
            .map(|h| h.to_ascii_lowercase()),
        borrows: reported_borrows::to_store(request.held_sequence, request.borrows.as_deref())?,
    };
    Ok(Checked {
        verified,
        attempt,
        standby,
    })
}

/// The audit entry of a refused sync (and its log line).
fn refusal(
    now: DateTime<Utc>,
    channel: SyncChannel,
    peer: &str,
    actor: &str,
    known: &Known,
    error: &ApiError,
) -> AuditEntry {
    let detail = format!(
        "channel {}, peer {peer}, key {}, request {}: {}",
        channel.as_str(),
        known.fingerprint.as_deref().unwrap_or("-"),
        known
            .request_id
            .map_or_else(|| "-".to_owned(), |r| r.to_string()),
        match error {
            ApiError::Refused { message, .. } | ApiError::SenderNotRegistered(message) => {
                message.chars().take(200).collect()
            }
            ApiError::Internal(_) | ApiError::Unavailable(_) => "internal error".to_owned(),
        }
    );
    log::info!(
        "sync refused server_id={} channel={} peer={peer} outcome={}",
        known
            .server_id
            .map_or_else(|| "-".to_owned(), |s| s.to_string()),
        channel.as_str(),
        error.outcome()
    );
    AuditEntry {
        at: now,
        actor: actor.to_owned(),
        action: AuditAction::Sync,
        server_id: known.server_id,
        outcome: error.outcome(),
        detail,
    }
}

fn write_audit(db: &Db, record: &AuditEntry) -> Result<(), ApiError> {
    let mut conn = db.write.get()?;
    audit::record_entry(&mut conn, record)
}

/// What was learnt about a request before it was refused (for the audit entry).
#[derive(Default)]
struct Known {
    server_id: Option<Uuid>,
    request_id: Option<Uuid>,
    fingerprint: Option<String>,
}

fn describe(window: Duration) -> String {
    if window.num_days() >= 1 {
        format!("{} days", window.num_days())
    } else {
        format!("{} minutes", window.num_minutes())
    }
}
