//! The standby's side: pairing with a primary (`init --standby-of`), the regular call
//! that keeps its copy of the primary (license file, options, borrowed seats) and
//! measures the two clocks, promotion by a person, and the hand-back when the primary
//! is back.

use std::path::PathBuf;
use std::time::Duration as StdDuration;

use anyhow::{anyhow, Context};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde::Serialize;
use shared_proto::validity::CLOCK_ROLLBACK_TOLERANCE;
use shared_proto::{license_file, Clock, ErrorCode, ServerIdentity, ServerPublicKeys};
use url::Url;

use super::messages::{
    self, Attachment, HandBack, HandedEntry, Join, Joined, Replicate, Replicated, Taken, Wire,
};
use super::store::{self, PairRow, PairState, Role};
use crate::config::{self, AutoSyncMode, Settings};
use crate::db::{self, from_ms, to_ms, ConfigRow};
use crate::error::Error;
use crate::import::{self, Channel};
use crate::installation::Installation;
use crate::leases::inherited;
use crate::report_log::ReportRow;
use crate::schema::{config as config_table, pair, pair_news, report_log, sync_state, taken_back};

/// How long one call to the other server may take.
const CALL_TIMEOUT: StdDuration = StdDuration::from_secs(5);
/// A standby promotes only after this many pair intervals without word from the
/// primary (2 minutes at the default 10 s)…
const SILENT_INTERVALS: i64 = 12;
/// …and never after less than this.
const MIN_SILENCE: Duration = Duration::seconds(5);
/// The clocks of the two differ by more than this: both say so.
pub const CLOCK_WARNING: Duration = Duration::minutes(2);

/// `init --standby-of`: what pairing needs.
#[derive(Debug, Clone)]
pub struct StandbyInit {
    pub data_dir: PathBuf,
    /// The primary's client address (`http://host:port`).
    pub primary: String,
    /// The code `local-server standby pair` showed on the primary.
    pub pairing_code: String,
}

/// Sets up a standby: its own key pair and data directory, paired with the primary.
pub async fn init(args: &StandbyInit, clock: &Clock) -> Result<String, Error> {
    let primary = primary_url(&args.primary)?;
    let dir = &args.data_dir;
    if dir.join(db::DB_FILE).exists() {
        return Err(anyhow!(
            "{} already holds a license server installation; a standby needs a data \
             directory of its own",
            dir.display()
        )
        .into());
    }
    let identity = ServerIdentity::generate()?;
    let code_hash = store::code_hash(&args.pairing_code);
    let join = Join {
        sent_at: clock.now(),
        proof: messages::proof(&code_hash, &identity.public_keys())?,
    };
    let wire = messages::wire(&identity, &join, None, Some(identity.public_keys()))?;
    let answer = call(&http_client(), &primary, "join", &wire).await?;
    let primary_keys = answer.keys.clone().ok_or_else(|| {
        Error::refused(
            ErrorCode::Malformed,
            "the primary's answer presents no keys",
        )
    })?;
    let joined: Joined = messages::open(&answer, &primary_keys)?;
    // The primary proves it knew the code too: not a server in the middle.
    if !messages::proof_holds(&code_hash, &primary_keys, &joined.proof) {
        return Err(Error::refused(
            ErrorCode::BadSignature,
            "the server at that address does not know the pairing code: it is not the \
             primary that showed it",
        ));
    }
    config::make_private_dir(dir)?;
    identity
        .save(dir)
        .with_context(|| format!("saving the key pair in {}", dir.display()))?;
    let now = clock.now();
    let mut conn = db::connect(dir)?;
    let row = ConfigRow {
        id: 1,
        server_id: joined.server_id.to_string(),
        endpoints: serde_json::to_string(&joined.endpoints).context("encoding the addresses")?,
        solme_public_pem: joined.solme_public_pem,
        ca_pem: joined.ca_pem,
        proxy: None,
        auto_sync: AutoSyncMode::Off.as_str().into(),
        created_at: to_ms(now),
    };
    let mut pair_row = PairRow::new(
        Role::Standby,
        PairState::Following,
        &primary_keys,
        Some(primary.to_string()),
        now,
    )?;
    pair_row.epoch = joined.epoch;
    pair_row.last_heard_at = Some(to_ms(now));
    conn.immediate_transaction(|c| {
        diesel::insert_into(config_table::table)
            .values(&row)
            .execute(c)?;
        diesel::insert_into(sync_state::table)
            .values((
                sync_state::id.eq(1),
                sync_state::clock_high_water.eq(to_ms(now)),
                sync_state::consecutive_failures.eq(0),
            ))
            .execute(c)?;
        store::save_new(c, &pair_row)?;
        Ok::<_, Error>(())
    })?;
    log::info!(
        "initialised as standby server_id={} fingerprint={} primary={}",
        joined.server_id,
        identity.fingerprint(),
        primary_keys.fingerprint()
    );
    Ok(format!(
        "Standby license server for id {} initialised in {}.\n\
         This server's key fingerprint: {}\n\
         The primary's key fingerprint:  {}\n\
         Compare both with what the primary shows (`local-server status` there).\n\
         Next: run `local-server serve` here. The primary names this server to Solme with \
         its next synchronization; until then this server holds no copy of the license.",
        joined.server_id,
        dir.display(),
        identity.fingerprint(),
        primary_keys.fingerprint()
    ))
}

fn primary_url(text: &str) -> Result<Url, Error> {
    let usage = |why: &str| {
        Error::refused(
            ErrorCode::Malformed,
            format!("the primary's address {text:?} {why}; give it as http://HOST:PORT"),
        )
    };
    let url = Url::parse(text).map_err(|_| usage("is not an address"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(usage("is not an http address"));
    }
    Ok(url)
}

fn http_client() -> awc::Client {
    awc::Client::builder().timeout(CALL_TIMEOUT).finish()
}

/// Sends `wire` to the primary's `/pair/v1/{what}`; the primary's signed answer, or why
/// there is none.
async fn call(client: &awc::Client, primary: &Url, what: &str, wire: &Wire) -> Result<Wire, Error> {
    let url = format!("{}/pair/v1/{what}", primary.as_str().trim_end_matches('/'));
    let mut response =
        client.post(&url).send_json(wire).await.map_err(|e| {
            Error::Network(format!("the primary at {primary} does not answer ({e})"))
        })?;
    let body = response
        .body()
        .limit(messages::MAX_PAIR_BODY)
        .await
        .map_err(|e| Error::Network(format!("the primary's answer was cut off ({e})")))?;
    if !response.status().is_success() {
        return Err(
            match serde_json::from_slice::<shared_proto::ApiError>(&body) {
                Ok(refusal) => Error::refused(
                    refusal.code,
                    format!("the primary refused: {}", refusal.message),
                ),
                Err(_) => Error::Network(format!(
                    "the primary at {primary} answered with status {}",
                    response.status().as_u16()
                )),
            },
        );
    }
    serde_json::from_slice(&body).map_err(|e| {
        Error::refused(
            ErrorCode::Malformed,
            format!("the primary's answer is not a pair message: {e}"),
        )
    })
}

/// The standby's regular work, every `interval` while `serve` runs: call the primary,
/// install what it sends, and hand back when it asks.
pub async fn follow(installation: Installation, interval: StdDuration) {
    let client = http_client();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reachable = true;
    loop {
        ticker.tick().await;
        match follow_once(&installation, &client).await {
            Ok(()) => {
                if !reachable {
                    log::info!("the primary answers again");
                }
                reachable = true;
            }
            Err(e) => {
                if reachable {
                    log::warn!("the primary does not answer: {e}");
                }
                reachable = false;
            }
        }
    }
}

/// One call to the primary (none when this server is not a standby).
pub async fn follow_once(installation: &Installation, client: &awc::Client) -> Result<(), Error> {
    let Some((pair_row, call_wire, t1)) = replicate_call(installation).await? else {
        return Ok(());
    };
    let primary = primary_url(pair_row.peer_address.as_deref().unwrap_or_default())?;
    let answer = call(client, &primary, "replicate", &call_wire).await?;
    let t4 = installation.clock.now();
    let replicated: Replicated = messages::open(&answer, &pair_row.peer_keys()?)?;
    let attachment = messages::attachment(&answer, replicated.attachment_sha256.as_deref())?;
    // The answer must be to this call, not a replay of an older one.
    if replicated.answers != pair_row.own_counter {
        return Err(Error::refused(
            ErrorCode::Malformed,
            "the primary answered another call",
        ));
    }
    let hand_back_asked = replicated.hand_back;
    let this = installation.clone();
    installation
        .db_with_settings(move |c, settings| {
            take_copy(c, &this, settings, &replicated, attachment, t1, t4)
        })
        .await?;
    if hand_back_asked {
        hand_back(installation, client, &primary).await?;
    }
    Ok(())
}

/// The regular call as signed now, with the pair row it was made from.
async fn replicate_call(
    installation: &Installation,
) -> Result<Option<(PairRow, Wire, DateTime<Utc>)>, Error> {
    let identity = installation.identity.clone();
    let clock = installation.clock.clone();
    installation
        .db(move |c| {
            let Some(row) = store::load(c)? else {
                return Ok(None);
            };
            if row.role() != Role::Standby {
                return Ok(None);
            }
            let counter = store::next_own_counter(c)?;
            let held = db::load_sync_state(c)?.sequence;
            let options = db::load_options(c)?.map(|t| messages::sha256_hex(t.as_bytes()));
            let now = clock.now();
            let message = Replicate {
                counter,
                epoch: row.epoch,
                state: row.state().as_str().into(),
                held_sequence: held,
                options_sha256: options,
                sent_at: now,
                clock_offset_ms: row.clock_offset_ms,
                promoted_at: row.promoted_at.map(from_ms),
            };
            let wire = messages::wire(&identity, &message, None, None)?;
            // The row as of this call: its own counter is this call's number.
            let mut row = row;
            row.own_counter = counter;
            Ok(Some((row, wire, now)))
        })
        .await
}

/// Installs what the primary sent, in one transaction, and records the clock measure.
fn take_copy(
    c: &mut SqliteConnection,
    installation: &Installation,
    settings: &Settings,
    answer: &Replicated,
    attachment: Attachment,
    t1: DateTime<Utc>,
    t4: DateTime<Utc>,
) -> Result<(), Error> {
    use base64::Engine;
    // NTP's estimate: the primary's clock minus ours, within half the round trip.
    let (t2, t3) = (answer.received_at, answer.sent_at);
    let offset = ((t2 - t1) + (t3 - t4)).num_milliseconds() / 2;
    let round_trip = ((t4 - t1) - (t3 - t2)).num_milliseconds().max(0);
    let own = installation.identity.fingerprint();
    let primary_key = store::load(c)?
        .map(|row| row.peer_fingerprint())
        .unwrap_or_default();
    // Each step stands on its own (the import is a transaction of its own): a step
    // left undone is done again at the next call.
    if let Some(encoded) = &attachment.license_file {
        let signed = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| {
                Error::refused(
                    ErrorCode::Malformed,
                    "the primary's license file is damaged",
                )
            })?;
        let file = license_file::open_standby_copy(
            &signed,
            &own,
            &settings.solme_key()?,
            settings.server_id,
        )?;
        let held = db::load_sync_state(c)?.sequence;
        if held.is_none_or(|h| h < file.sequence) {
            import::apply(c, &file, Channel::Primary, t4)?;
            let days = file.standby.as_ref().map(|t| i64::from(t.failover_days));
            diesel::update(pair::table)
                .set((pair::license_file.eq(&signed), pair::failover_days.eq(days)))
                .execute(c)?;
            log::info!(
                "copy of the primary's license file {} installed (failover period {} days)",
                file.sequence,
                days.unwrap_or(0)
            );
        }
    }
    if let Some(text) = &attachment.options {
        db::store_options(c, text, to_ms(t4))?;
    }
    inherited::record_borrows(c, &attachment.borrows, &primary_key, t4)?;
    diesel::update(pair_news::table)
        .set((
            pair_news::last_heard_at.eq(to_ms(t4)),
            pair_news::last_heard_state.eq(&answer.state),
            pair_news::clock_offset_ms.eq(offset),
            pair_news::clock_round_trip_ms.eq(round_trip),
            pair_news::clock_measured_at.eq(to_ms(t4)),
        ))
        .execute(c)?;
    // A following standby learns the primary's epoch (a promoted one keeps its own
    // until the hand-back).
    diesel::update(
        pair::table
            .filter(pair::state.eq(PairState::Following.as_str()))
            .filter(pair::epoch.lt(answer.epoch)),
    )
    .set(pair::epoch.eq(answer.epoch))
    .execute(c)?;
    Ok(())
}

/// What `promote` reports.
#[derive(Debug, Serialize)]
pub struct Promoted {
    pub promoted_at: DateTime<Utc>,
    pub failover_ends: DateTime<Utc>,
    pub epoch: i64,
}

impl std::fmt::Display for Promoted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "This standby server issues seats now, until the primary is back or until {} \
             at the latest (the failover period Solme allows).",
            self.failover_ends.format("%Y-%m-%d %H:%M UTC")
        )?;
        writeln!(
            f,
            "Client programs reach it through their list of servers. When the primary runs \
             again, this server hands back to it by itself."
        )
    }
}

/// `standby leave`: this standby leaves its pair for good (its primary is lost), to
/// become the id's server once Solme cleared the primary's key pair. The copy of the
/// primary's license file goes with the pair: the server issues nothing until it holds
/// a file of its own, so leaving never makes a second server of the id.
pub fn leave(c: &mut SqliteConnection) -> Result<String, Error> {
    use crate::schema::licenses;
    c.immediate_transaction(|c| {
        match store::load(c)? {
            Some(row) if row.role() == Role::Standby => {}
            _ => {
                return Err(Error::refused(
                    ErrorCode::WrongServer,
                    "this license server is not a standby: there is no pair to leave",
                ))
            }
        }
        diesel::delete(pair::table).execute(c)?;
        diesel::delete(pair_news::table).execute(c)?;
        diesel::delete(licenses::table).execute(c)?;
        diesel::update(sync_state::table)
            .set((
                sync_state::sequence.eq(None::<i64>),
                sync_state::revision.eq(None::<i64>),
                sync_state::issued_at.eq(None::<i64>),
                sync_state::valid_until.eq(None::<i64>),
                sync_state::last_sync_at.eq(None::<i64>),
                sync_state::last_sync_channel.eq(None::<String>),
            ))
            .execute(c)?;
        log::warn!(
            "left the pair: this server issues nothing until it holds a license file of its own"
        );
        Ok::<_, Error>(())
    })?;
    Ok(format!(
        "This server is no longer a standby, and issues nothing until it holds a license \
         file of its own.\n\
         Next: ask Solme to clear the id's key pair (the lost primary's), then run \
         `local-server sync` ({}) or `local-server export-sync-data FILE` ({}). Its report \
         log, the failover period's use included, goes to Solme with that synchronization.",
        crate::wording::OVER_THE_INTERNET,
        crate::wording::BY_EMAIL
    ))
}

/// `standby pair` on the primary: a new one-time pairing code, with what to do with it.
pub fn pairing_code(c: &mut SqliteConnection, now: DateTime<Utc>) -> Result<String, Error> {
    if store::load(c)?.is_some_and(|row| row.role() == Role::Standby) {
        return Err(Error::refused(
            ErrorCode::WrongServer,
            "this server is itself a standby: make the pairing code on the primary",
        ));
    }
    let code = store::new_pairing_code(c, now)?;
    Ok(format!(
        "Pairing code: {code}\n\
         Valid for 10 minutes, once. On the standby's machine run:\n  \
         local-server init --data-dir DIR --standby-of http://THIS-SERVER:PORT --pairing-code {code}\n\
         (THIS-SERVER:PORT: the address client programs use for this server.) A new \
         standby replaces the one paired before."
    ))
}

/// Promotes this standby, by a person: only when the primary has been silent, does not
/// answer a last call, the clocks agreed, and the failover period is not used up.
pub async fn promote(
    installation: &Installation,
    by: String,
    reason: Option<String>,
) -> Result<Promoted, Error> {
    let reason = crate::take_back::checked_reason(reason.as_deref())?;
    let now = installation.clock.now();
    let row = installation
        .db(|c| store::load(c).map_err(Error::from))
        .await?
        .filter(|row| row.role() == Role::Standby)
        .ok_or_else(|| {
            Error::refused(
                ErrorCode::WrongServer,
                "this license server is not a standby: only a standby can be promoted",
            )
        })?;
    match row.state() {
        PairState::Following => {}
        PairState::Promoted => {
            return Err(Error::refused(
                ErrorCode::AlreadyDecided,
                "this standby server is promoted already",
            ))
        }
        _ => {
            return Err(Error::refused(
                ErrorCode::Unavailable,
                "this standby server is handing back to the primary; try again in a moment",
            ))
        }
    }
    let silence = silence(&row);
    if let Some(heard) = row.last_heard() {
        if now - heard < silence {
            return Err(Error::refused(
                ErrorCode::ServingElsewhere,
                format!(
                    "the primary answered {} ago: a primary that answers is not down. \
                     Promotion is possible once it has been silent for {}",
                    crate::wording::duration_text(now - heard),
                    crate::wording::duration_text(silence)
                ),
            ));
        }
    }
    // A last call: a primary that answers now is not down.
    if follow_once(installation, &http_client()).await.is_ok() {
        return Err(Error::refused(
            ErrorCode::ServingElsewhere,
            "the primary answers: promoting now would make two servers issue seats",
        ));
    }
    if let Some(offset) = row.clock_offset_ms {
        if Duration::milliseconds(offset.abs()) > CLOCK_ROLLBACK_TOLERANCE {
            return Err(Error::refused(
                ErrorCode::ClockRollback,
                format!(
                    "at the last measure this server's clock was {} {} the primary's: \
                     set the right time on the server whose clock is wrong first",
                    crate::wording::duration_text(Duration::milliseconds(offset.abs())),
                    if offset > 0 { "behind" } else { "ahead of" }
                ),
            ));
        }
    }
    let clock = installation.clock.clone();
    installation
        .db(move |c| {
            c.immediate_transaction(|c| {
                let row = store::load(c)?
                    .ok_or_else(|| Error::refused(ErrorCode::NotFound, "the pair is gone"))?;
                let state = db::load_sync_state(c)?;
                let now = clock.now();
                let (Some(sequence), Some(valid_until), Some(days)) =
                    (state.sequence, state.valid_until, row.failover_days)
                else {
                    return Err(Error::refused(
                        ErrorCode::NotSynchronized,
                        "this standby holds no copy of the primary's license file naming it: \
                         the primary must synchronize with Solme once after pairing, while \
                         this server runs",
                    ));
                };
                if from_ms(valid_until) <= now {
                    return Err(Error::refused(
                        ErrorCode::SyncExpired,
                        "the copy of the primary's license file this standby holds has ended",
                    ));
                }
                // The budget is per license file of the primary: promoting again before a
                // newer one continues the count.
                let started = match (row.failover_sequence, row.failover_started_at) {
                    (Some(s), Some(at)) if s == sequence => from_ms(at),
                    _ => now,
                };
                let ends = started + Duration::days(days);
                if ends <= now {
                    return Err(Error::refused(
                        ErrorCode::FailoverEnded,
                        format!(
                            "the failover period of this license file ended on {}: bring the \
                             primary back",
                            ends.format("%Y-%m-%d %H:%M UTC")
                        ),
                    ));
                }
                let epoch = row.epoch + 1;
                diesel::update(pair::table)
                    .set((
                        pair::state.eq(PairState::Promoted.as_str()),
                        pair::epoch.eq(epoch),
                        pair::promoted_at.eq(to_ms(now)),
                        pair::promoted_by.eq(&by),
                        pair::promoted_reason.eq(&reason),
                        pair::failover_sequence.eq(sequence),
                        pair::failover_started_at.eq(to_ms(started)),
                    ))
                    .execute(c)?;
                log::warn!(
                    "standby promoted by={by} reason={} epoch={epoch}: it issues seats until {}",
                    reason.as_deref().unwrap_or("-"),
                    ends
                );
                Ok(Promoted {
                    promoted_at: now,
                    failover_ends: ends,
                    epoch,
                })
            })
        })
        .await
}

/// How long the primary must have been silent before a promotion.
pub fn silence(row: &PairRow) -> Duration {
    let interval = Duration::milliseconds(row.interval_ms.unwrap_or(10_000));
    (interval * i32::try_from(SILENT_INTERVALS).unwrap_or(12)).max(MIN_SILENCE)
}

/// The hand-back: stop issuing, end the seats held here, send the report entries since
/// the promotion in parts, then follow again.
async fn hand_back(
    installation: &Installation,
    client: &awc::Client,
    primary: &Url,
) -> Result<(), Error> {
    let clock = installation.clock.clone();
    // First of all, this server stops issuing (the gate refuses from this commit on).
    let promoted_at = installation
        .db(move |c| {
            c.immediate_transaction(|c| {
                let row = store::load(c)?
                    .ok_or_else(|| Error::refused(ErrorCode::NotFound, "the pair is gone"))?;
                if row.state() == PairState::Promoted {
                    diesel::update(pair::table)
                        .set(pair::state.eq(PairState::SteppingDown.as_str()))
                        .execute(c)?;
                    end_live_leases(c, clock.now())?;
                    log::info!("stepping down: the primary is back; handing back to it");
                }
                Ok(row.promoted_at)
            })
        })
        .await?;
    let primary_keys: ServerPublicKeys = installation
        .db(|c| Ok(store::load(c)?.map(|r| r.peer_keys())))
        .await?
        .ok_or_else(|| Error::refused(ErrorCode::NotFound, "the pair is gone"))??;
    let mut after = 0i64;
    let mut handed = 0i64;
    loop {
        let since = promoted_at.unwrap_or(i64::MAX);
        let entries = installation
            .db(move |c| report_since(c, since, after))
            .await?;
        let last = entries.len() < messages::MAX_ROWS_PER_HAND_BACK;
        handed += i64::try_from(entries.len()).unwrap_or(0);
        after = entries.last().map_or(after, |e| e.number);
        let identity = installation.identity.clone();
        let wire = installation
            .db(move |c| {
                let row = store::load(c)?
                    .ok_or_else(|| Error::refused(ErrorCode::NotFound, "the pair is gone"))?;
                let (text, hash) = messages::attach(&Attachment {
                    report: entries,
                    ..Attachment::default()
                })?;
                let part = HandBack {
                    counter: store::next_own_counter(c)?,
                    epoch: row.epoch,
                    promoted_at: row.promoted_at.map(from_ms),
                    last,
                    attachment_sha256: Some(hash),
                };
                messages::wire(&identity, &part, Some(text), None)
            })
            .await?;
        let answer = call(client, primary, "hand-back", &wire).await?;
        let taken: Taken = messages::open(&answer, &primary_keys)?;
        if last {
            let now = installation.clock.now();
            installation
                .db(move |c| {
                    diesel::update(pair::table)
                        .set((
                            pair::state.eq(PairState::Following.as_str()),
                            pair::epoch.eq(taken.epoch),
                        ))
                        .execute(c)?;
                    diesel::update(pair_news::table)
                        .set((
                            pair_news::handed_back_at.eq(to_ms(now)),
                            pair_news::handed_back_entries.eq(handed),
                            pair_news::last_heard_at.eq(to_ms(now)),
                        ))
                        .execute(c)?;
                    Ok(())
                })
                .await?;
            log::info!("handed back to the primary: this server follows again");
            return Ok(());
        }
    }
}

/// Report entries at or after `since` with a number above `after`, oldest first, one
/// part's worth.
fn report_since(
    c: &mut SqliteConnection,
    since: i64,
    after: i64,
) -> Result<Vec<HandedEntry>, Error> {
    let rows: Vec<(i32, ReportRow)> = report_log::table
        .filter(report_log::at.ge(since))
        .filter(report_log::id.gt(i32::try_from(after).unwrap_or(i32::MAX)))
        .order(report_log::id)
        .limit(i64::try_from(messages::MAX_ROWS_PER_HAND_BACK).unwrap_or(i64::MAX))
        .select((report_log::id, ReportRow::as_select()))
        .load(c)?;
    Ok(rows
        .into_iter()
        .map(|(id, row)| HandedEntry {
            number: i64::from(id),
            at: from_ms(row.at),
            event: row.event.as_str().into(),
            feature: row.feature,
            user: row.user,
            host: row.host,
            lease_id: row.lease_id,
            code: row.code,
            in_use: row.in_use,
            wait_ms: row.wait_ms,
        })
        .collect())
}

/// Ends the seats this standby lent while promoted (not the primary's borrows it
/// counts): taken back, so their clients are told at their next heartbeat and check
/// out again from the primary.
fn end_live_leases(c: &mut SqliteConnection, now: DateTime<Utc>) -> Result<(), Error> {
    use crate::schema::leases;
    let counted: std::collections::HashSet<String> = inherited::load(c)?
        .into_iter()
        .map(|row| row.lease_id)
        .collect();
    let held: Vec<crate::db::LeaseRow> = leases::table
        .filter(leases::expires_at.gt(to_ms(now)))
        .select(crate::db::LeaseRow::as_select())
        .load(c)?
        .into_iter()
        .filter(|lease| !counted.contains(&lease.id))
        .collect();
    for lease in held {
        diesel::delete(leases::table.filter(leases::id.eq(&lease.id))).execute(c)?;
        diesel::insert_or_ignore_into(taken_back::table)
            .values(crate::take_back::TakenBackRow {
                lease_id: lease.id,
                feature: lease.feature,
                user: lease.user,
                host: lease.host,
                borrowed: lease.borrowed,
                taken_at: to_ms(now),
                actor: "standby server".into(),
                reason: Some("handed back to the primary, which issues seats again".into()),
                applied_at: None,
            })
            .execute(c)?;
    }
    Ok(())
}
