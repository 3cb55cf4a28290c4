//! The pair as stored: one `pair` row on each server of a primary/standby pair, and the
//! primary's one-time pairing codes. Reads and writes the database only.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use shared_proto::ServerPublicKeys;

use crate::db::{from_ms, to_ms};
use crate::error::Error;
use crate::schema::{pair, pair_news, pairing_codes};

shared_proto::text_enum! {
    /// What this server is in its pair.
    pub enum Role {
        Primary => "primary",
        Standby => "standby",
    }
}

shared_proto::text_enum! {
    /// Where a server of a pair stands (docs/standby.md, "Roles and states").
    pub enum PairState {
        /// A primary that started and asks its standby first whether it was promoted.
        Waiting => "waiting",
        /// A primary that issues seats.
        Serving => "serving",
        /// A primary that learnt that its standby was promoted after it: issues nothing.
        Fenced => "fenced",
        /// A standby that keeps a copy of its primary and issues nothing.
        Following => "following",
        /// A standby a person promoted: it issues seats for the failover period.
        Promoted => "promoted",
        /// A promoted standby handing back to its primary: issues nothing.
        SteppingDown => "stepping_down",
    }
}

/// How long a pairing code is good for.
pub const PAIRING_CODE_LIFETIME: Duration = Duration::minutes(10);

/// The pair as this server knows it: its `pair` row and its `pair_news` row together.
#[derive(Debug, Clone)]
pub struct PairRow {
    pub role: String,
    pub state: String,
    pub epoch: i64,
    pub peer_keys: String,
    pub peer_address: Option<String>,
    pub paired_at: i64,
    pub interval_ms: Option<i64>,
    pub waiting_until: Option<i64>,
    pub promoted_at: Option<i64>,
    pub promoted_by: Option<String>,
    pub promoted_reason: Option<String>,
    pub failover_sequence: Option<i64>,
    pub failover_started_at: Option<i64>,
    pub failover_days: Option<i64>,
    pub license_file: Option<Vec<u8>>,
    pub last_heard_at: Option<i64>,
    pub last_heard_state: Option<String>,
    pub clock_offset_ms: Option<i64>,
    pub clock_round_trip_ms: Option<i64>,
    pub clock_measured_at: Option<i64>,
    pub peer_counter: i64,
    pub own_counter: i64,
    pub overlap_detected_at: Option<i64>,
    pub overlap_detail: Option<String>,
    pub handed_back_at: Option<i64>,
    pub handed_back_entries: Option<i64>,
}

/// The `pair` row as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pair)]
struct Core {
    id: i32,
    role: String,
    state: String,
    epoch: i64,
    peer_keys: String,
    peer_address: Option<String>,
    paired_at: i64,
    interval_ms: Option<i64>,
    waiting_until: Option<i64>,
    promoted_at: Option<i64>,
    promoted_by: Option<String>,
    promoted_reason: Option<String>,
    failover_sequence: Option<i64>,
    failover_started_at: Option<i64>,
    failover_days: Option<i64>,
    license_file: Option<Vec<u8>>,
}

/// The `pair_news` row as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pair_news)]
struct News {
    id: i32,
    last_heard_at: Option<i64>,
    last_heard_state: Option<String>,
    clock_offset_ms: Option<i64>,
    clock_round_trip_ms: Option<i64>,
    clock_measured_at: Option<i64>,
    peer_counter: i64,
    own_counter: i64,
    overlap_detected_at: Option<i64>,
    overlap_detail: Option<String>,
    handed_back_at: Option<i64>,
    handed_back_entries: Option<i64>,
}

impl PairRow {
    /// A new pair row of `role` in `state`, pinning `peer`.
    pub fn new(
        role: Role,
        state: PairState,
        peer: &ServerPublicKeys,
        peer_address: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
        Ok(Self {
            role: role.as_str().into(),
            state: state.as_str().into(),
            epoch: 1,
            peer_keys: serde_json::to_string(peer)
                .map_err(|e| Error::Internal(anyhow::Error::new(e)))?,
            peer_address,
            paired_at: to_ms(now),
            interval_ms: None,
            waiting_until: None,
            last_heard_at: None,
            last_heard_state: None,
            clock_offset_ms: None,
            clock_round_trip_ms: None,
            clock_measured_at: None,
            promoted_at: None,
            promoted_by: None,
            promoted_reason: None,
            failover_sequence: None,
            failover_started_at: None,
            failover_days: None,
            license_file: None,
            peer_counter: 0,
            own_counter: 0,
            overlap_detected_at: None,
            overlap_detail: None,
            handed_back_at: None,
            handed_back_entries: None,
        })
    }

    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Primary)
    }

    /// The stored state; an unknown word (a newer version's) reads as not issuing.
    pub fn state(&self) -> PairState {
        self.state.parse().unwrap_or(match self.role() {
            Role::Primary => PairState::Fenced,
            Role::Standby => PairState::Following,
        })
    }

    /// The other server's keys, pinned at pairing.
    pub fn peer_keys(&self) -> Result<ServerPublicKeys, Error> {
        serde_json::from_str(&self.peer_keys).map_err(|e| {
            Error::Internal(anyhow::Error::new(e).context("reading the paired server's keys"))
        })
    }

    /// The other server's key fingerprint, shortened for people.
    pub fn peer_fingerprint(&self) -> String {
        self.peer_keys()
            .map(|k| k.fingerprint().to_string())
            .unwrap_or_default()
    }

    /// When a promoted standby's failover period ends.
    pub fn failover_ends(&self) -> Option<DateTime<Utc>> {
        let started = from_ms(self.failover_started_at?);
        Some(started + Duration::days(self.failover_days?))
    }

    pub fn last_heard(&self) -> Option<DateTime<Utc>> {
        self.last_heard_at.map(from_ms)
    }
}

/// The pair, if this server is paired.
pub fn load(conn: &mut SqliteConnection) -> QueryResult<Option<PairRow>> {
    let Some(core) = pair::table
        .select(Core::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let news = pair_news::table
        .select(News::as_select())
        .first(conn)
        .optional()?
        .unwrap_or(News {
            id: 1,
            last_heard_at: None,
            last_heard_state: None,
            clock_offset_ms: None,
            clock_round_trip_ms: None,
            clock_measured_at: None,
            peer_counter: 0,
            own_counter: 0,
            overlap_detected_at: None,
            overlap_detail: None,
            handed_back_at: None,
            handed_back_entries: None,
        });
    Ok(Some(PairRow {
        role: core.role,
        state: core.state,
        epoch: core.epoch,
        peer_keys: core.peer_keys,
        peer_address: core.peer_address,
        paired_at: core.paired_at,
        interval_ms: core.interval_ms,
        waiting_until: core.waiting_until,
        promoted_at: core.promoted_at,
        promoted_by: core.promoted_by,
        promoted_reason: core.promoted_reason,
        failover_sequence: core.failover_sequence,
        failover_started_at: core.failover_started_at,
        failover_days: core.failover_days,
        license_file: core.license_file,
        last_heard_at: news.last_heard_at,
        last_heard_state: news.last_heard_state,
        clock_offset_ms: news.clock_offset_ms,
        clock_round_trip_ms: news.clock_round_trip_ms,
        clock_measured_at: news.clock_measured_at,
        peer_counter: news.peer_counter,
        own_counter: news.own_counter,
        overlap_detected_at: news.overlap_detected_at,
        overlap_detail: news.overlap_detail,
        handed_back_at: news.handed_back_at,
        handed_back_entries: news.handed_back_entries,
    }))
}

/// Stores a new pair (replacing the one before: a new pairing).
pub fn save_new(conn: &mut SqliteConnection, row: &PairRow) -> QueryResult<()> {
    let r = row.clone();
    diesel::delete(pair::table).execute(conn)?;
    diesel::delete(pair_news::table).execute(conn)?;
    diesel::insert_into(pair::table)
        .values(Core {
            id: 1,
            role: r.role,
            state: r.state,
            epoch: r.epoch,
            peer_keys: r.peer_keys,
            peer_address: r.peer_address,
            paired_at: r.paired_at,
            interval_ms: r.interval_ms,
            waiting_until: r.waiting_until,
            promoted_at: r.promoted_at,
            promoted_by: r.promoted_by,
            promoted_reason: r.promoted_reason,
            failover_sequence: r.failover_sequence,
            failover_started_at: r.failover_started_at,
            failover_days: r.failover_days,
            license_file: r.license_file,
        })
        .execute(conn)?;
    diesel::insert_into(pair_news::table)
        .values(News {
            id: 1,
            last_heard_at: r.last_heard_at,
            last_heard_state: r.last_heard_state,
            clock_offset_ms: r.clock_offset_ms,
            clock_round_trip_ms: r.clock_round_trip_ms,
            clock_measured_at: r.clock_measured_at,
            peer_counter: r.peer_counter,
            own_counter: r.own_counter,
            overlap_detected_at: r.overlap_detected_at,
            overlap_detail: r.overlap_detail,
            handed_back_at: r.handed_back_at,
            handed_back_entries: r.handed_back_entries,
        })
        .execute(conn)?;
    Ok(())
}

/// Makes a one-time pairing code valid for [`PAIRING_CODE_LIFETIME`]; only its hash is
/// kept. Codes are 20 letters and digits (about 100 bits), grouped for reading aloud.
pub fn new_pairing_code(conn: &mut SqliteConnection, now: DateTime<Utc>) -> Result<String, Error> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut random = [0u8; 20];
    openssl::rand::rand_bytes(&mut random).map_err(|e| Error::Internal(e.into()))?;
    let letters: String = random
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    let code = letters
        .as_bytes()
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-");
    diesel::delete(pairing_codes::table.filter(pairing_codes::expires_at.le(to_ms(now))))
        .execute(conn)?;
    diesel::insert_into(pairing_codes::table)
        .values((
            pairing_codes::code_sha256.eq(code_hash(&code)),
            pairing_codes::expires_at.eq(to_ms(now + PAIRING_CODE_LIFETIME)),
        ))
        .execute(conn)?;
    Ok(code)
}

/// The pairing codes still valid at `now`, as the secrets the join proofs are checked
/// against (their hashes: the codes themselves are not kept).
pub fn valid_code_hashes(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
) -> QueryResult<Vec<String>> {
    pairing_codes::table
        .filter(pairing_codes::expires_at.gt(to_ms(now)))
        .select(pairing_codes::code_sha256)
        .load(conn)
}

/// Uses a pairing code up.
pub fn spend_code(conn: &mut SqliteConnection, hash: &str) -> QueryResult<usize> {
    diesel::delete(pairing_codes::table.filter(pairing_codes::code_sha256.eq(hash))).execute(conn)
}

/// The hex SHA-256 of a code as typed (spaces, dashes and case do not count).
pub fn code_hash(code: &str) -> String {
    shared_proto::hex::encode(&openssl::sha::sha256(normalized_code(code).as_bytes()))
}

fn normalized_code(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Takes the next message number of this server (each message it sends has a higher
/// one than the last, so the other refuses a replay).
pub fn next_own_counter(conn: &mut SqliteConnection) -> QueryResult<i64> {
    diesel::update(pair_news::table)
        .set(pair_news::own_counter.eq(pair_news::own_counter + 1))
        .execute(conn)?;
    pair_news::table.select(pair_news::own_counter).first(conn)
}

/// Accepts message number `counter` from the other server when it is higher than the
/// last one accepted; false for a replayed or reordered message.
pub fn accept_peer_counter(conn: &mut SqliteConnection, counter: i64) -> QueryResult<bool> {
    let updated = diesel::update(pair_news::table.filter(pair_news::peer_counter.lt(counter)))
        .set(pair_news::peer_counter.eq(counter))
        .execute(conn)?;
    Ok(updated == 1)
}

/// Keeps the signed content of the license file the primary installed, to hand on to
/// its standby. Does nothing on a server without a standby.
pub fn keep_primary_file(conn: &mut SqliteConnection, signed: &[u8]) -> QueryResult<usize> {
    diesel::update(pair::table.filter(pair::role.eq(Role::Primary.as_str())))
        .set(pair::license_file.eq(signed))
        .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_reads_the_same_however_it_is_typed() {
        assert_eq!(code_hash("ABCDE-FGHJK"), code_hash("abcde fghjk"));
        assert_ne!(code_hash("ABCDE-FGHJK"), code_hash("ABCDE-FGHJL"));
    }
}
