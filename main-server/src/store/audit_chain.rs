//! The audit log's hash chain: sealing entries into it, reading its head, and walking
//! it to find the first entry that was changed, removed or inserted.
//!
//! Writers (the store transactions and, on PostgreSQL, `solme_issue_syncs`) insert
//! entries unsealed, as they always did, so no sync waits for the chain. The sealer
//! appends unsealed entries in id order in one short transaction: on PostgreSQL under a
//! transaction-scoped advisory lock taken with `pg_try_advisory_xact_lock` (one replica
//! seals at a time; the others skip the round), on SQLite after taking the write lock.
//! An entry that commits late (a lower id committed after a higher one was sealed) is
//! sealed in a later round: the chain order is the sealing order, the same for every
//! replica.
//!
//! Canonical bytes of an entry (format version 1), each field as a 4-byte big-endian
//! length followed by its bytes:
//!
//! ```text
//! "solme audit entry v1"
//! chain_seq   8 bytes, big-endian
//! id          8 bytes, big-endian
//! at          8 bytes, big-endian Unix milliseconds
//! actor, action            UTF-8
//! server_id   one byte 0 (none) or 1, then when 1 the field (UTF-8)
//! outcome, detail          UTF-8
//! prev_hash   32 bytes: the previous entry's hash, all zeros for the first entry
//! ```
//!
//! `entry_hash` = SHA-256 of those bytes, stored as lower-case hex.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::audit;
use crate::db::{from_millis, to_millis, DbConnection, Pool};
use crate::error::ApiError;
use crate::schema::{audit_log, audit_verified};
use shared_proto::admin_api::{AuditProblem, AuditProblemKind, AuditVerification};
use shared_proto::audit_head::AuditHead;
use shared_proto::audit_log::{AuditChainStatus, AuditVerifyReport, ChainBreak};
use shared_proto::hex;

/// Arbitrary constant naming the advisory lock held by the replica that seals.
const SEAL_LOCK_KEY: i64 = 0x5017_e11c_0000_0002;
/// Most entries one sealing transaction takes on PostgreSQL: it locks nothing a
/// writer needs, so only its length matters.
const SEAL_BATCH_PG: usize = 1_000;
/// On SQLite a round holds the one write lock that syncs need too: about 20 µs an
/// entry, so 200 keep the pause of the sync writer to a few milliseconds.
const SEAL_BATCH_SQLITE: usize = 200;
/// Most sealing rounds one call of [`seal_pending`] runs (sealing a big log after an
/// upgrade continues on the next call, a second later).
const MAX_SEAL_ROUNDS: usize = 100;
/// Entries read per query while walking the chain.
const WALK_BATCH: i64 = 1_000;
/// An entry dated this much before the entry sealed ahead of it cannot have been
/// written by a running server (entries are sealed within seconds; this leaves room
/// for replicas' clocks to differ): it is reported as backdated.
pub const BACKDATE_LIMIT_MS: i64 = 10 * 60 * 1000;

const CANONICAL_TAG: &[u8] = b"solme audit entry v1";
/// The `prev_hash` of the first entry.
const ZERO_HASH: [u8; 32] = [0; 32];

/// What an entry's hash covers.
pub struct Canonical<'a> {
    pub chain_seq: i64,
    pub id: i64,
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub server_id: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: &'a str,
    pub prev_hash: &'a [u8; 32],
}

impl Canonical<'_> {
    /// The byte layout of the module documentation.
    pub fn bytes(&self) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, bytes: &[u8]) {
            // Text columns are bounded on input (kilobytes), far below 4 GiB.
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
        }
        let mut out = Vec::with_capacity(
            128 + self.actor.len() + self.action.len() + self.outcome.len() + self.detail.len(),
        );
        field(&mut out, CANONICAL_TAG);
        field(&mut out, &self.chain_seq.to_be_bytes());
        field(&mut out, &self.id.to_be_bytes());
        field(&mut out, &self.at.to_be_bytes());
        field(&mut out, self.actor.as_bytes());
        field(&mut out, self.action.as_bytes());
        match self.server_id {
            None => out.push(0),
            Some(server_id) => {
                out.push(1);
                field(&mut out, server_id.as_bytes());
            }
        }
        field(&mut out, self.outcome.as_bytes());
        field(&mut out, self.detail.as_bytes());
        field(&mut out, self.prev_hash);
        out
    }

    pub fn hash(&self) -> [u8; 32] {
        openssl::sha::sha256(&self.bytes())
    }
}

/// One entry with its chain columns, as read.
#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_log)]
struct ChainRow {
    id: i64,
    #[diesel(embed)]
    entry: audit::Row,
    chain_seq: Option<i64>,
    entry_hash: Option<String>,
    prev_hash: Option<String>,
}

impl ChainRow {
    fn canonical<'a>(&'a self, chain_seq: i64, prev_hash: &'a [u8; 32]) -> Canonical<'a> {
        Canonical {
            chain_seq,
            id: self.id,
            at: self.entry.at,
            actor: &self.entry.actor,
            action: &self.entry.action,
            server_id: self.entry.server_id.as_deref(),
            outcome: &self.entry.outcome,
            detail: &self.entry.detail,
            prev_hash,
        }
    }
}

/// The newest sealed entry: position, hash, time written.
struct Head {
    chain_seq: i64,
    entry_hash: [u8; 32],
    at: i64,
}

fn read_head(conn: &mut DbConnection) -> Result<Option<Head>, ApiError> {
    let row: Option<(Option<i64>, Option<String>, i64)> = audit_log::table
        .filter(audit_log::chain_seq.is_not_null())
        .order(audit_log::chain_seq.desc())
        .select((audit_log::chain_seq, audit_log::entry_hash, audit_log::at))
        .first(conn)
        .optional()?;
    let Some((Some(chain_seq), entry_hash, at)) = row else {
        return Ok(None);
    };
    // A head whose hash was damaged by hand cannot be extended; the walk names it.
    let entry_hash = entry_hash.as_deref().and_then(parse_hash).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "the audit chain's newest entry (position {chain_seq}) has no valid hash: \
             run `main-server admin audit verify`"
        ))
    })?;
    Ok(Some(Head {
        chain_seq,
        entry_hash,
        at,
    }))
}

/// Whether this connection may seal now: on PostgreSQL, the advisory lock of the
/// transaction (another replica holding it seals instead); on SQLite, the write lock,
/// taken before reading so that what is read is what gets extended.
fn take_seal_lock(conn: &mut DbConnection) -> Result<bool, ApiError> {
    match conn {
        DbConnection::Postgres(_) => {
            #[derive(QueryableByName)]
            struct Locked {
                #[diesel(sql_type = diesel::sql_types::Bool)]
                locked: bool,
            }
            let locked: Locked = diesel::sql_query(format!(
                "SELECT pg_try_advisory_xact_lock({SEAL_LOCK_KEY}) AS locked"
            ))
            .get_result(conn)?;
            Ok(locked.locked)
        }
        DbConnection::Sqlite(_) => {
            // A write that changes nothing starts the write transaction (waiting on
            // the busy timeout) before the first read.
            diesel::sql_query("UPDATE audit_log SET chain_seq = chain_seq WHERE 0")
                .execute(conn)?;
            Ok(true)
        }
    }
}

fn seal_batch(conn: &DbConnection) -> usize {
    match conn {
        DbConnection::Postgres(_) => SEAL_BATCH_PG,
        DbConnection::Sqlite(_) => SEAL_BATCH_SQLITE,
    }
}

/// One sealing round: appends up to [`seal_batch`] unsealed entries to the chain, in
/// id order. Returns how many it sealed (0 also when another replica is sealing).
pub fn seal_round(conn: &mut DbConnection) -> Result<usize, ApiError> {
    let batch = i64::try_from(seal_batch(conn)).unwrap_or(i64::MAX);
    conn.transaction::<_, ApiError, _>(|conn| {
        if !take_seal_lock(conn)? {
            return Ok(0);
        }
        let head = read_head(conn)?;
        let rows: Vec<ChainRow> = audit_log::table
            .filter(audit_log::chain_seq.is_null())
            .order(audit_log::id.asc())
            .limit(batch)
            .select(ChainRow::as_select())
            .load(conn)?;
        let (mut seq, mut prev) = head.map_or((0, ZERO_HASH), |h| (h.chain_seq, h.entry_hash));
        let mut sealed = Sealing::default();
        for row in &rows {
            seq = seq.checked_add(1).ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!(
                    "the audit chain's newest position is the largest there is: \
                     run `main-server admin audit verify`"
                ))
            })?;
            let hash = row.canonical(seq, &prev).hash();
            sealed.ids.push(row.id);
            sealed.seqs.push(seq);
            sealed.hashes.push(hex::encode(&hash));
            sealed.prevs.push(hex::encode(&prev));
            prev = hash;
        }
        let updated = sealed.write(conn)?;
        if updated != rows.len() {
            // Only the lock holder seals, so this means a hand edit in between: roll
            // the round back rather than leave a hole.
            return Err(ApiError::Internal(anyhow::anyhow!(
                "audit entries changed while being sealed ({updated} of {} updated)",
                rows.len()
            )));
        }
        Ok(rows.len())
    })
}

/// The chain columns of one round, entry by entry.
#[derive(Default)]
struct Sealing {
    ids: Vec<i64>,
    seqs: Vec<i64>,
    hashes: Vec<String>,
    prevs: Vec<String>,
}

/// PostgreSQL: the whole round in one statement (one round trip, however many
/// entries), only where an entry is still unsealed.
const SEAL_STATEMENT_PG: &str = "UPDATE audit_log SET chain_seq = v.seq, \
         entry_hash = v.entry_hash, prev_hash = v.prev_hash \
     FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[]) \
         AS v(id, seq, entry_hash, prev_hash) \
     WHERE audit_log.id = v.id AND audit_log.chain_seq IS NULL";

impl Sealing {
    /// Stores the columns; returns how many entries were updated.
    fn write(&self, conn: &mut DbConnection) -> Result<usize, ApiError> {
        use diesel::sql_types::{Array, BigInt, Text};
        match conn {
            DbConnection::Postgres(pg) => Ok(diesel::sql_query(SEAL_STATEMENT_PG)
                .bind::<Array<BigInt>, _>(&self.ids)
                .bind::<Array<BigInt>, _>(&self.seqs)
                .bind::<Array<Text>, _>(&self.hashes)
                .bind::<Array<Text>, _>(&self.prevs)
                .execute(pg)?),
            // In-process statements cost no round trip: one per entry.
            DbConnection::Sqlite(_) => {
                let mut updated = 0;
                let entries = self
                    .ids
                    .iter()
                    .zip(&self.seqs)
                    .zip(&self.hashes)
                    .zip(&self.prevs);
                for (((id, seq), hash), prev) in entries {
                    updated += diesel::update(
                        audit_log::table
                            .filter(audit_log::id.eq(id))
                            .filter(audit_log::chain_seq.is_null()),
                    )
                    .set((
                        audit_log::chain_seq.eq(seq),
                        audit_log::entry_hash.eq(hash),
                        audit_log::prev_hash.eq(prev),
                    ))
                    .execute(conn)?;
                }
                Ok(updated)
            }
        }
    }
}

/// Seals every entry waiting (in rounds of [`seal_batch`], at most
/// [`MAX_SEAL_ROUNDS`]); returns how many. Each round checks out its own connection,
/// so that on SQLite (one write connection) other writes get their turn in between.
pub fn seal_pending(pool: &Pool) -> Result<usize, ApiError> {
    let mut total = 0;
    for _ in 0..MAX_SEAL_ROUNDS {
        let mut conn = pool.get()?;
        let sealed = seal_round(&mut conn)?;
        total += sealed;
        if sealed < seal_batch(&conn) {
            break;
        }
    }
    Ok(total)
}

/// The newest sealed entry, for signing (seal what is waiting first).
pub fn head(conn: &mut DbConnection, now: DateTime<Utc>) -> Result<AuditHead, ApiError> {
    Ok(match read_head(conn)? {
        Some(head) => AuditHead {
            chain_seq: to_u64(head.chain_seq),
            entry_hash: hex::encode(&head.entry_hash),
            at: Some(from_millis(head.at)),
            signed_at: now,
        },
        None => AuditHead {
            chain_seq: 0,
            entry_hash: hex::encode(&ZERO_HASH),
            at: None,
            signed_at: now,
        },
    })
}

/// Reads a stored hash (64 hex digits).
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn to_u64(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

/// What the walk carries from one entry to the next.
struct Walk {
    checked: u64,
    /// The position the next entry must have.
    expected: i64,
    /// The previous entry's stored hash and id, and the one before it.
    prev_hash: [u8; 32],
    prev_id: Option<i64>,
    prev_prev_hash: Option<[u8; 32]>,
    prev_at: Option<i64>,
}

impl Walk {
    /// Checks one entry against what came before: its hash, or the first problem.
    fn check(&self, row: &ChainRow, seq: i64) -> Result<[u8; 32], AuditProblem> {
        let problem = |kind, chain_seq: i64, entry_id, message: String| AuditProblem {
            kind,
            chain_seq: to_u64(chain_seq),
            entry_id,
            message,
        };
        if seq < self.expected {
            // Positions are unique and walked in order: only one below 1 gets here.
            return Err(problem(
                AuditProblemKind::Inserted,
                seq,
                Some(row.id),
                format!(
                    "the entry id {} claims position {seq}, which the chain does not have (it starts at position 1): it was inserted",
                    row.id
                ),
            ));
        }
        if seq != self.expected {
            let missing = if seq - self.expected == 1 {
                format!("the entry at position {} is missing", self.expected)
            } else {
                format!(
                    "the entries at positions {} to {} are missing",
                    self.expected,
                    seq - 1
                )
            };
            return Err(problem(
                AuditProblemKind::Removed,
                self.expected,
                None,
                format!(
                    "{missing}: removed from the database (the chain goes on at position {seq}, entry id {})",
                    row.id
                ),
            ));
        }
        let stored_prev = row.prev_hash.as_deref().and_then(parse_hash);
        if stored_prev != Some(self.prev_hash) {
            if let (Some(stored), Some(prev_id)) = (stored_prev, self.prev_id) {
                if Some(stored) == self.prev_prev_hash {
                    return Err(problem(
                        AuditProblemKind::Inserted,
                        seq - 1,
                        Some(prev_id),
                        format!(
                            "the entry at position {} (id {prev_id}) was inserted: the entry after it (id {}) still links to the one before it",
                            seq - 1,
                            row.id
                        ),
                    ));
                }
            }
            return Err(problem(
                AuditProblemKind::Unlinked,
                seq,
                Some(row.id),
                format!(
                    "the entry at position {seq} (id {}) does not link to the entry before it: entries before it were rewritten, inserted or reordered",
                    row.id
                ),
            ));
        }
        let computed = row.canonical(seq, &self.prev_hash).hash();
        if row.entry_hash.as_deref().and_then(parse_hash) != Some(computed) {
            return Err(problem(
                AuditProblemKind::Changed,
                seq,
                Some(row.id),
                format!(
                    "the entry at position {seq} (id {}) was changed after it was sealed: its content no longer matches its hash",
                    row.id
                ),
            ));
        }
        if let Some(prev_at) = self.prev_at {
            if row.entry.at < prev_at - BACKDATE_LIMIT_MS {
                return Err(problem(
                    AuditProblemKind::Backdated,
                    seq,
                    Some(row.id),
                    format!(
                        "the entry at position {seq} (id {}) is dated {}, {} minutes before the entry sealed ahead of it ({}): it was written into the database outside the server",
                        row.id,
                        from_millis(row.entry.at).format("%Y-%m-%d %H:%M:%S UTC"),
                        (prev_at - row.entry.at) / 60_000,
                        from_millis(prev_at).format("%Y-%m-%d %H:%M:%S UTC"),
                    ),
                ));
            }
        }
        Ok(computed)
    }

    fn step(&mut self, row: &ChainRow, hash: [u8; 32]) {
        self.checked += 1;
        self.expected += 1;
        self.prev_prev_hash = Some(self.prev_hash);
        self.prev_hash = hash;
        self.prev_id = Some(row.id);
        self.prev_at = Some(row.entry.at);
    }
}

/// The head up to which the chain was last walked intact, as stored, and whether a
/// walk found a problem since.
struct Verified {
    seq: i64,
    hash: String,
    broken: bool,
}

fn read_verified(conn: &mut DbConnection) -> Result<Option<Verified>, ApiError> {
    let row: Option<(i64, String, Option<i64>)> = audit_verified::table
        .find(VERIFIED_ROW)
        .select((
            audit_verified::verified_seq,
            audit_verified::verified_hash,
            audit_verified::broken_seq,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(seq, hash, broken)| Verified {
        seq,
        hash,
        broken: broken.is_some(),
    }))
}

/// Walks the chain and reports the first problem. `full`: from its first position;
/// otherwise from the head stored by the last intact walk, after checking that that
/// entry still has the hash it had (entries before it were walked then; `full` walks
/// them again). Once a walk has found a problem every walk is full, until one finds
/// the chain intact again: a walk of the newest entries alone must not report intact
/// over a known break. With a `saved` head (already checked to be signed by Solme's key) and
/// the head this server `seen` last, also whether their entries are still in the chain
/// with the same hash; the stored verified head is checked the same way. Seal what is
/// waiting first; the walk only reads (entries sealed meanwhile are walked too). Store
/// the outcome with [`record_verification`].
pub fn verify(
    conn: &mut DbConnection,
    saved: Option<AuditHead>,
    seen: Option<AuditHead>,
    full: bool,
) -> Result<AuditVerifyReport, ApiError> {
    let mut walk = Walk {
        checked: 0,
        expected: 1,
        prev_hash: ZERO_HASH,
        prev_id: None,
        prev_prev_hash: None,
        prev_at: None,
    };
    let mut problem = None;
    // The first query of a full walk has no lower bound: a forged position below 1 is
    // walked too.
    let mut after = i64::MIN;
    let verified = read_verified(conn)?;
    let full = full || verified.as_ref().is_some_and(|v| v.broken);
    // A stored head at position 0 is a problem stored before any intact walk.
    let verified = verified.filter(|v| v.seq > 0);
    let mut started_after = 0;
    if let (false, Some(verified)) = (full, &verified) {
        started_after = verified.seq;
        let row: Option<(i64, Option<String>, i64)> = audit_log::table
            .filter(audit_log::chain_seq.eq(verified.seq))
            .select((audit_log::id, audit_log::entry_hash, audit_log::at))
            .first(conn)
            .optional()?;
        match row
            .and_then(|(id, hash, at)| Some((id, hash.as_deref().and_then(parse_hash)?, hash, at)))
        {
            Some((id, parsed, hash, at)) if hash.as_deref() == Some(verified.hash.as_str()) => {
                walk.expected = verified.seq + 1;
                walk.prev_hash = parsed;
                walk.prev_id = Some(id);
                walk.prev_at = Some(at);
                after = verified.seq;
            }
            _ => {
                problem = Some(AuditProblem {
                    kind: AuditProblemKind::Rewritten,
                    chain_seq: to_u64(verified.seq),
                    entry_id: None,
                    message: format!(
                        "the entry at position {}, where the last verification ended intact, \
                         is gone or has another hash: the chain was rewritten up to there \
                         (a full verification names the first changed entry)",
                        verified.seq
                    ),
                });
            }
        }
    }
    if problem.is_none() {
        problem = walk_from(conn, &mut walk, after)?;
    }
    let heads = [
        (saved.as_ref(), HeadOf::Operator),
        (seen.as_ref(), HeadOf::Server),
    ];
    for (head, of) in heads {
        if let (None, Some(head)) = (&problem, head) {
            problem = check_head(conn, head, of)?;
        }
    }
    if let (None, Some(verified), true) = (&problem, &verified, full) {
        let head = AuditHead {
            chain_seq: to_u64(verified.seq),
            entry_hash: verified.hash.clone(),
            at: None,
            signed_at: from_millis(0),
        };
        problem = check_head(conn, &head, HeadOf::Verified)?;
    }
    let unsealed: i64 = audit_log::table
        .filter(audit_log::chain_seq.is_null())
        .count()
        .get_result(conn)?;
    let incremental = !full && verified.is_some();
    Ok(AuditVerifyReport {
        report: AuditVerification {
            intact: problem.is_none(),
            checked: walk.checked,
            head_seq: to_u64(walk.expected - 1),
            head_hash: hex::encode(&walk.prev_hash),
            unsealed: u64::try_from(unsealed).unwrap_or(0),
            saved_head: saved,
            problem,
        },
        incremental,
        started_after: if incremental {
            to_u64(started_after)
        } else {
            0
        },
    })
}

/// Walks the sealed entries after position `after`, in order, and returns the first
/// problem.
fn walk_from(
    conn: &mut DbConnection,
    walk: &mut Walk,
    mut after: i64,
) -> Result<Option<AuditProblem>, ApiError> {
    loop {
        let rows: Vec<ChainRow> = audit_log::table
            .filter(audit_log::chain_seq.gt(after))
            .order(audit_log::chain_seq.asc())
            .limit(WALK_BATCH)
            .select(ChainRow::as_select())
            .load(conn)?;
        if rows.is_empty() {
            return Ok(None);
        }
        for row in &rows {
            let Some(seq) = row.chain_seq else { continue };
            after = seq;
            match walk.check(row, seq) {
                Ok(hash) => walk.step(row, hash),
                Err(found) => return Ok(Some(found)),
            }
        }
    }
}

/// The one row of `audit_verified` (the migration writes it).
const VERIFIED_ROW: i32 = 1;

/// Stores what a walk found (on a writing connection): an intact chain moves the
/// verified head forward (never back: a slower walk finishing after a newer one leaves
/// the newer head) and clears a stored problem; a problem is stored for the console.
pub fn record_verification(
    conn: &mut DbConnection,
    report: &AuditVerification,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let now = to_millis(now);
    let row = audit_verified::table.find(VERIFIED_ROW);
    match &report.problem {
        None => {
            let seq = i64::try_from(report.head_seq).unwrap_or(i64::MAX);
            diesel::update(row.filter(audit_verified::verified_seq.le(seq)))
                .set((
                    audit_verified::verified_seq.eq(seq),
                    audit_verified::verified_hash.eq(&report.head_hash),
                    audit_verified::verified_at.eq(now),
                    audit_verified::broken_seq.eq(None::<i64>),
                    audit_verified::broken_message.eq(None::<String>),
                    audit_verified::broken_at.eq(None::<i64>),
                ))
                .execute(conn)?;
        }
        Some(problem) => {
            diesel::update(row)
                .set((
                    audit_verified::broken_seq
                        .eq(i64::try_from(problem.chain_seq).unwrap_or(i64::MAX)),
                    audit_verified::broken_message.eq(&problem.message),
                    audit_verified::broken_at.eq(now),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Where the chain's verification stands: the newest sealed position, the stored
/// verified head and the problem the last walk found.
pub fn status(conn: &mut DbConnection) -> Result<AuditChainStatus, ApiError> {
    let head: Option<Option<i64>> = audit_log::table
        .filter(audit_log::chain_seq.is_not_null())
        .order(audit_log::chain_seq.desc())
        .select(audit_log::chain_seq)
        .first(conn)
        .optional()?;
    type StatusRow = (i64, String, i64, Option<i64>, Option<String>, Option<i64>);
    let row: Option<StatusRow> = audit_verified::table
        .find(VERIFIED_ROW)
        .select((
            audit_verified::verified_seq,
            audit_verified::verified_hash,
            audit_verified::verified_at,
            audit_verified::broken_seq,
            audit_verified::broken_message,
            audit_verified::broken_at,
        ))
        .first(conn)
        .optional()?;
    let mut status = AuditChainStatus {
        head_seq: to_u64(head.flatten().unwrap_or(0)),
        verified_seq: 0,
        verified_hash: None,
        verified_at: None,
        broken: None,
    };
    if let Some((seq, hash, at, broken_seq, broken_message, broken_at)) = row {
        if seq > 0 {
            status.verified_seq = to_u64(seq);
            status.verified_hash = Some(hash);
            status.verified_at = Some(from_millis(at));
        }
        if let (Some(seq), Some(message), Some(at)) = (broken_seq, broken_message, broken_at) {
            status.broken = Some(ChainBreak {
                chain_seq: to_u64(seq),
                message,
                found_at: from_millis(at),
            });
        }
    }
    Ok(status)
}

/// Whose head [`check_head`] checks, for its message.
#[derive(Clone, Copy)]
pub enum HeadOf {
    /// A head an operator saved (signed).
    Operator,
    /// The head this server saw last (its data directory's copy).
    Server,
    /// The head up to which the last verification walked the chain intact.
    Verified,
}

impl HeadOf {
    fn describe(self) -> &'static str {
        match self {
            Self::Operator => "the saved head",
            Self::Server => "the head this server saw last",
            Self::Verified => "the last verification",
        }
    }
}

/// Whether `head`'s entry is still in the chain with the same hash.
pub fn check_head(
    conn: &mut DbConnection,
    head: &AuditHead,
    of: HeadOf,
) -> Result<Option<AuditProblem>, ApiError> {
    if head.chain_seq == 0 {
        return Ok(None);
    }
    let whose = of.describe();
    let rewritten = |entry_id, message: String| AuditProblem {
        kind: AuditProblemKind::Rewritten,
        chain_seq: head.chain_seq,
        entry_id,
        message,
    };
    let Ok(seq) = i64::try_from(head.chain_seq) else {
        return Ok(Some(rewritten(
            None,
            format!(
                "{whose} names position {}, which the chain cannot have",
                head.chain_seq
            ),
        )));
    };
    let row: Option<(i64, Option<String>)> = audit_log::table
        .filter(audit_log::chain_seq.eq(seq))
        .select((audit_log::id, audit_log::entry_hash))
        .first(conn)
        .optional()?;
    Ok(match row {
        None => Some(rewritten(
            None,
            format!(
                "the chain ends before position {seq}, where {whose} is: entries were removed from its end, or it was rewritten"
            ),
        )),
        Some((id, hash)) if hash.as_deref() != Some(head.entry_hash.as_str()) => {
            Some(rewritten(
                Some(id),
                format!(
                    "the entry at position {seq} (id {id}) has another hash than {whose}: the chain was rewritten up to there"
                ),
            ))
        }
        Some(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(actor: &'a str, action: &'a str, server_id: Option<&'a str>) -> Canonical<'a> {
        Canonical {
            chain_seq: 1,
            id: 7,
            at: 1_700_000_000_000,
            actor,
            action,
            server_id,
            outcome: "OK",
            detail: "channel internet",
            prev_hash: &ZERO_HASH,
        }
    }

    #[test]
    fn field_boundaries_and_absent_fields_change_the_hash() {
        let base = entry("ab", "c", None).hash();
        assert_ne!(base, entry("a", "bc", None).hash());
        assert_ne!(base, entry("ab", "c", Some("")).hash());
        let mut moved = entry("ab", "c", None);
        moved.chain_seq = 2;
        assert_ne!(base, moved.hash());
        let other_prev = [1u8; 32];
        moved = entry("ab", "c", None);
        moved.prev_hash = &other_prev;
        assert_ne!(base, moved.hash());
        assert_eq!(base, entry("ab", "c", None).hash(), "deterministic");
    }

    #[test]
    fn the_canonical_layout_is_the_documented_one() {
        let bytes = entry("a", "sync", None).bytes();
        assert_eq!(&bytes[..4], &20u32.to_be_bytes());
        assert_eq!(&bytes[4..24], b"solme audit entry v1");
        assert_eq!(&bytes[24..28], &8u32.to_be_bytes());
        assert_eq!(&bytes[28..36], &1i64.to_be_bytes());
        assert_eq!(
            &bytes[bytes.len() - 36..bytes.len() - 32],
            &32u32.to_be_bytes()
        );
    }

    #[test]
    fn hashes_parse_only_as_64_hex_digits() {
        let hash = [0xabu8; 32];
        assert_eq!(parse_hash(&hex::encode(&hash)), Some(hash));
        assert_eq!(parse_hash("ab"), None);
        assert_eq!(parse_hash(&"zz".repeat(32)), None);
    }
}
