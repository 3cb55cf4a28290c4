//! The primary's side of the pair channel: it answers the standby's join, its regular
//! calls and its hand-back. Each function runs in one database transaction and returns
//! the signed answer.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use shared_proto::{ErrorCode, ServerIdentity};

use super::messages::{
    self, Attachment, HandBack, Join, Joined, Replicate, Replicated, Taken, Wire,
};
use super::store::{self, PairRow, PairState, Role};
use crate::config::Settings;
use crate::db::{self, to_ms};
use crate::error::Error;
use crate::leases::inherited;
use crate::report_log::ReportRow;
use crate::schema::{pair, pair_news, report_log};

/// Who the primary's report log names for the entries its standby handed back.
pub const HANDED_BACK_ACTOR: &str = "standby server";

/// A standby asks to pair with the code this server showed.
pub fn join(
    c: &mut SqliteConnection,
    identity: &ServerIdentity,
    settings: &Settings,
    wire: &Wire,
    now: DateTime<Utc>,
) -> Result<Wire, Error> {
    let keys = wire.keys.clone().ok_or_else(|| {
        Error::refused(
            ErrorCode::Malformed,
            "a pairing request must present its keys",
        )
    })?;
    let join: Join = messages::open(wire, &keys)?;
    if keys.fingerprint() == identity.fingerprint() {
        return Err(Error::refused(
            ErrorCode::Malformed,
            "a server cannot be its own standby",
        ));
    }
    c.immediate_transaction(|c| {
        let before = store::load(c)?;
        if before.as_ref().is_some_and(|p| p.role() == Role::Standby) {
            return Err(Error::refused(
                ErrorCode::WrongServer,
                "this server is itself a standby: pair the new standby with the primary",
            ));
        }
        let code = store::valid_code_hashes(c, now)?
            .into_iter()
            .find(|hash| messages::proof_holds(hash, &keys, &join.proof))
            .ok_or_else(|| {
                Error::refused(
                    ErrorCode::Unauthorized,
                    "the pairing code is wrong or no longer valid (a code lasts 10 minutes \
                     and is used once); make a new one on the primary with `local-server \
                     standby pair`",
                )
            })?;
        store::spend_code(c, &code)?;
        let mut row = PairRow::new(Role::Primary, PairState::Serving, &keys, None, now)?;
        // A replaced standby: the file to hand on stays, the epoch goes on.
        if let Some(before) = before {
            row.license_file = before.license_file;
            row.epoch = before.epoch + 1;
        }
        row.last_heard_at = Some(to_ms(now));
        let epoch = row.epoch;
        store::save_new(c, &row)?;
        log::info!(
            "standby paired fingerprint={} (a new pairing replaces any standby before)",
            keys.fingerprint()
        );
        let joined = Joined {
            proof: messages::proof(&code, &identity.public_keys())?,
            server_id: settings.server_id,
            endpoints: settings.endpoints.iter().map(|e| e.url()).collect(),
            solme_public_pem: settings.solme_public_pem.clone(),
            ca_pem: settings.ca_pem.clone(),
            epoch,
        };
        messages::wire(identity, &joined, None, Some(identity.public_keys()))
    })
}

/// The standby's regular call: its news in, the primary's copy out.
pub fn replicate(
    c: &mut SqliteConnection,
    identity: &ServerIdentity,
    wire: &Wire,
    now: DateTime<Utc>,
) -> Result<Wire, Error> {
    c.immediate_transaction(|c| {
        let row = paired_primary(c)?;
        let call: Replicate = messages::open(wire, &row.peer_keys()?)?;
        if !store::accept_peer_counter(c, call.counter)? {
            return Err(replayed());
        }
        let standby_state: PairState = call.state.parse().unwrap_or(PairState::Following);
        let mut state = row.state();
        let mut epoch = row.epoch;
        let hand_back = match standby_state {
            PairState::Promoted | PairState::SteppingDown => {
                // Granted here after its promotion, the seats are counted at the
                // hand-back (`note_overlap`).
                if state != PairState::Fenced {
                    log::info!("fenced: the standby was promoted; it hands back now");
                }
                state = PairState::Fenced;
                epoch = epoch.max(call.epoch);
                true
            }
            _ => {
                if state != PairState::Serving {
                    log::info!("the standby follows: this server issues seats");
                }
                state = PairState::Serving;
                false
            }
        };
        let received_at = now;
        let attachment = if hand_back {
            None
        } else {
            Some(copy_for_standby(c, &row, &call, now)?)
        };
        let (attachment, attachment_sha256) = match attachment {
            Some(a) => {
                let (text, hash) = messages::attach(&a)?;
                (Some(text), Some(hash))
            }
            None => (None, None),
        };
        diesel::update(pair::table)
            .set((
                pair::state.eq(state.as_str()),
                pair::epoch.eq(epoch),
                pair::waiting_until.eq(None::<i64>),
            ))
            .execute(c)?;
        diesel::update(pair_news::table)
            .set((
                pair_news::last_heard_at.eq(to_ms(now)),
                pair_news::last_heard_state.eq(standby_state.as_str()),
                pair_news::clock_offset_ms.eq(call.clock_offset_ms.map(|o| -o)),
                pair_news::clock_measured_at.eq(call.clock_offset_ms.map(|_| to_ms(now))),
            ))
            .execute(c)?;
        let answer = Replicated {
            answers: call.counter,
            epoch,
            state: state.as_str().into(),
            received_at,
            sent_at: now,
            hand_back,
            attachment_sha256,
        };
        messages::wire(identity, &answer, attachment, None)
    })
}

/// What the standby lacks of this server's state.
fn copy_for_standby(
    c: &mut SqliteConnection,
    row: &PairRow,
    call: &Replicate,
    now: DateTime<Utc>,
) -> Result<Attachment, Error> {
    use base64::Engine;
    let held = db::load_sync_state(c)?.sequence;
    let license_file = match (&row.license_file, held) {
        (Some(signed), Some(held)) if call.held_sequence.is_none_or(|s| s < held) => {
            Some(base64::engine::general_purpose::STANDARD.encode(signed))
        }
        _ => None,
    };
    let options = db::load_options(c)?
        .filter(|text| Some(messages::sha256_hex(text.as_bytes())) != call.options_sha256);
    Ok(Attachment {
        license_file,
        options,
        borrows: inherited::outstanding(c, now)?,
        report: Vec::new(),
    })
}

/// A promoted standby hands back its report entries; the last part moves the epoch and
/// this server issues again.
pub fn hand_back(
    c: &mut SqliteConnection,
    identity: &ServerIdentity,
    wire: &Wire,
    now: DateTime<Utc>,
) -> Result<Wire, Error> {
    c.immediate_transaction(|c| {
        let row = paired_primary(c)?;
        let part: HandBack = messages::open(wire, &row.peer_keys()?)?;
        if !store::accept_peer_counter(c, part.counter)? {
            return Err(replayed());
        }
        let attachment = messages::attachment(wire, part.attachment_sha256.as_deref())?;
        if attachment.report.len() > messages::MAX_ROWS_PER_HAND_BACK {
            return Err(Error::refused(
                ErrorCode::Malformed,
                "a hand-back part carries too many report entries",
            ));
        }
        // Entries are numbered in the standby's log: one sent again is skipped.
        let last_stored = row.handed_back_entries.unwrap_or(0);
        let mut stored = 0u64;
        let mut newest = last_stored;
        for entry in attachment.report.iter().filter(|e| e.number > last_stored) {
            let Some(event) = entry.event() else { continue };
            diesel::insert_into(report_log::table)
                .values(ReportRow {
                    at: to_ms(entry.at),
                    event,
                    feature: entry.feature.clone(),
                    user: entry.user.clone(),
                    host: entry.host.clone(),
                    lease_id: entry.lease_id.clone(),
                    code: entry.code.clone(),
                    in_use: entry.in_use,
                    wait_ms: entry.wait_ms,
                    actor: Some(HANDED_BACK_ACTOR.into()),
                    reason: None,
                })
                .execute(c)?;
            stored += 1;
            newest = newest.max(entry.number);
        }
        let mut epoch = row.epoch.max(part.epoch);
        if part.last {
            epoch += 1;
            if let Some(promoted_at) = part.promoted_at {
                note_overlap(c, promoted_at, now)?;
            }
            log::info!("the standby handed back: this server issues seats again (epoch {epoch})");
        }
        diesel::update(pair_news::table)
            .set((
                pair_news::handed_back_entries.eq(newest),
                pair_news::last_heard_at.eq(to_ms(now)),
            ))
            .execute(c)?;
        diesel::update(pair::table)
            .set(pair::epoch.eq(epoch))
            .execute(c)?;
        if part.last {
            diesel::update(pair::table)
                .set(pair::state.eq(PairState::Serving.as_str()))
                .execute(c)?;
            diesel::update(pair_news::table)
                .set((
                    pair_news::handed_back_at.eq(to_ms(now)),
                    pair_news::last_heard_state.eq(PairState::Following.as_str()),
                ))
                .execute(c)?;
        }
        let taken = Taken {
            answers: part.counter,
            epoch,
            entries_stored: stored,
        };
        messages::wire(identity, &taken, None, None)
    })
}

/// Checks this server's own log for seats it granted while the standby was promoted
/// (before it learnt of the promotion): the two issued together. Recorded for status,
/// the manager page and the log.
fn note_overlap(
    c: &mut SqliteConnection,
    promoted_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    use crate::report_log::Event;
    // Once fenced this server granted nothing: its grants up to now are the overlap.
    let fenced_at = now;
    let granted_here: i64 = report_log::table
        .filter(report_log::at.ge(to_ms(promoted_at)))
        .filter(report_log::at.le(to_ms(fenced_at)))
        .filter(report_log::actor.is_null())
        .filter(report_log::event.eq_any([Event::CheckOut, Event::Borrow, Event::QueueGranted]))
        .count()
        .get_result(c)?;
    if granted_here > 0 {
        let detail = format!(
            "both servers issued seats between {} and {}: this server granted {granted_here} \
             while the standby was promoted (both report logs hold the details)",
            promoted_at.format("%Y-%m-%d %H:%M:%S UTC"),
            fenced_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
        log::warn!("pair overlap: {detail}");
        diesel::update(pair_news::table)
            .set((
                pair_news::overlap_detected_at.eq(to_ms(now)),
                pair_news::overlap_detail.eq(detail),
            ))
            .execute(c)?;
    }
    Ok(())
}

fn paired_primary(c: &mut SqliteConnection) -> Result<PairRow, Error> {
    match store::load(c)? {
        Some(row) if row.role() == Role::Primary => Ok(row),
        _ => Err(Error::refused(
            ErrorCode::NotFound,
            "this license server has no standby paired",
        )),
    }
}

fn replayed() -> Error {
    Error::refused(
        ErrorCode::ReplayedRequest,
        "this message of the standby was received before (a replay, or the standby's \
         data was restored from a backup: pair it again)",
    )
}
