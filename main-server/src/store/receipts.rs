//! Which license file each id's local server holds: from installation receipts (the
//! local server's signed statement, uploaded in the portal or mailed to licensing@,
//! recorded here) and from the held sequence every sync request carries (the history
//! of copies keeps it, `sync_history`). [`held`] is the one function that answers
//! "what does this server hold": the portal, the console's installations list and the
//! id's page read it.
//!
//! A receipt is trusted only once its signature holds for the key pair bound to its
//! id, and it may only name a license file Solme issued to that id. The same receipt
//! again changes nothing (one row per id and file, kept by the primary key).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use shared_proto::admin_api::{AuditAction, SyncChannel};
use shared_proto::receipt::{self, Installation, ReceiptRecorded};
use shared_proto::ErrorCode;
use uuid::Uuid;

use super::{audit, customers, insert_unless_present, parse_uuid, unknown_server};
use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::{
    audit_log, installation_receipts, licenses, servers, sync_history, sync_usage,
};

/// The audit actions that change an id's licenses (each moves its revision).
const LICENSE_CHANGES: [AuditAction; 3] = [
    AuditAction::LicenseAdd,
    AuditAction::LicenseChange,
    AuditAction::LicenseRemove,
];

/// Most ids one installations listing returns.
pub const MAX_LIMIT: i64 = 1_000;

/// How Solme knows the server holds a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeldBy {
    /// The server's receipt (uploaded or mailed).
    Receipt,
    /// A later sync request named it as the file held.
    Sync,
}

impl HeldBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receipt => "receipt",
            Self::Sync => "sync",
        }
    }
}

/// The newest license file an id's local server confirmed holding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub sequence: i64,
    /// When the server installed it (a receipt says; a sync request does not).
    pub installed_at: Option<DateTime<Utc>>,
    /// When Solme learned it: the receipt's arrival, or when the request was made.
    pub confirmed_at: DateTime<Utc>,
    pub by: HeldBy,
}

/// What the id's local server holds: the newest file named by a receipt or by a sync
/// request (on a tie, the receipt, which says when it was installed). `None` when the
/// server never confirmed holding any.
pub fn held(conn: &mut DbConnection, id: Uuid) -> Result<Option<Held>, ApiError> {
    let by_receipt: Option<(i64, i64, i64)> = installation_receipts::table
        .filter(installation_receipts::server_id.eq(id.to_string()))
        .order(installation_receipts::sequence.desc())
        .select((
            installation_receipts::sequence,
            installation_receipts::installed_at,
            installation_receipts::received_at,
        ))
        .first(conn)
        .optional()?;
    // The first request that named the newest file held: since then it is known.
    let by_sync: Option<(Option<i64>, i64)> = sync_history::table
        .filter(sync_history::server_id.eq(id.to_string()))
        .filter(sync_history::held_sequence.is_not_null())
        .order((
            sync_history::held_sequence.desc(),
            sync_history::created_at.asc(),
        ))
        .select((sync_history::held_sequence, sync_history::created_at))
        .first(conn)
        .optional()?;
    let receipt = by_receipt.map(|(sequence, installed_at, received_at)| Held {
        sequence,
        installed_at: Some(from_millis(installed_at)),
        confirmed_at: from_millis(received_at),
        by: HeldBy::Receipt,
    });
    let sync = by_sync.and_then(|(sequence, created_at)| {
        sequence.map(|sequence| Held {
            sequence,
            installed_at: None,
            confirmed_at: from_millis(created_at),
            by: HeldBy::Sync,
        })
    });
    Ok(match (receipt, sync) {
        (Some(r), Some(s)) if s.sequence > r.sequence => Some(s),
        (Some(r), _) => Some(r),
        (None, s) => s,
    })
}

/// When license file `sequence` of `id` was issued (its sync's time).
fn issued_at(
    conn: &mut DbConnection,
    id: Uuid,
    sequence: i64,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let at: Option<i64> = sync_usage::table
        .filter(sync_usage::server_id.eq(id.to_string()))
        .filter(sync_usage::sequence.eq(sequence))
        .select(sync_usage::synced_at)
        .first(conn)
        .optional()?;
    Ok(at.map(from_millis))
}

fn day(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "an unrecorded day".to_owned(),
        |at| at.format("%Y-%m-%d").to_string(),
    )
}

/// "installed on 2026-12-02" (a receipt) or "installed by 2026-12-02" (a sync request
/// made then named it).
fn installed_words(held: &Held) -> String {
    match held.installed_at {
        Some(at) => format!("installed on {}", day(Some(at))),
        None => format!("installed by {}", day(Some(held.confirmed_at))),
    }
}

/// Which file the id's server holds against the newest issued, and whether licenses
/// changed after the file it holds was issued.
pub fn installation(conn: &mut DbConnection, id: Uuid) -> Result<Installation, ApiError> {
    let row: Option<(String, String, i64)> = servers::table
        .inner_join(crate::schema::customers::table)
        .filter(servers::id.eq(id.to_string()))
        .select((
            servers::customer_id,
            crate::schema::customers::name,
            servers::sequence,
        ))
        .first(conn)
        .optional()?;
    let (customer_id, customer_name, issued_sequence) = row.ok_or_else(|| unknown_server(id))?;
    let issued = if issued_sequence > 0 {
        issued_at(conn, id, issued_sequence)?
    } else {
        None
    };
    let held = held(conn, id)?;
    let held_issued_at = match &held {
        Some(h) => issued_at(conn, id, h.sequence)?,
        None => None,
    };
    let last_change: Option<i64> = audit_log::table
        .filter(audit_log::server_id.eq(id.to_string()))
        .filter(audit_log::action.eq_any(LICENSE_CHANGES.map(|a| a.as_str())))
        .select(diesel::dsl::max(audit_log::at))
        .first(conn)?;
    let changes_not_installed = match (&held, held_issued_at) {
        (Some(_), Some(issued)) => last_change.is_some_and(|at| at > to_millis(issued)),
        // Held, but when it was issued is not recorded: nothing to compare.
        (Some(_), None) => false,
        (None, _) => {
            let licensed: i64 = licenses::table
                .filter(licenses::server_id.eq(id.to_string()))
                .count()
                .get_result(conn)?;
            licensed > 0 || last_change.is_some()
        }
    };
    let summary = match (&held, issued_sequence) {
        (_, 0) => "no license file issued yet".to_owned(),
        (Some(h), n) if h.sequence >= n => format!(
            "license file #{n} issued on {}, {}",
            day(issued),
            installed_words(h)
        ),
        (Some(h), n) => format!(
            "license file #{n} issued on {}, not yet installed (the server holds #{}, {})",
            day(issued),
            h.sequence,
            installed_words(h)
        ),
        (None, n) => format!(
            "license file #{n} issued on {}, not yet installed",
            day(issued)
        ),
    };
    Ok(Installation {
        server_id: id,
        customer_id: parse_uuid(&customer_id)?,
        customer_name,
        issued_sequence,
        issued_at: issued,
        held_sequence: held.as_ref().map(|h| h.sequence),
        held_issued_at,
        installed_at: held.as_ref().and_then(|h| h.installed_at),
        confirmed_at: held.as_ref().map(|h| h.confirmed_at),
        confirmed_by: held.as_ref().map(|h| h.by.as_str().to_owned()),
        changes_not_installed,
        summary,
    })
}

/// What [`list`] returns: ids in service by id, after `after`, of `customer` if given,
/// only those with changes not installed if `not_installed`; at most `limit`.
pub struct ListFilter {
    pub not_installed: bool,
    pub customer: Option<Uuid>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// The installations of the ids in service, by id (see [`ListFilter`]).
pub fn list(conn: &mut DbConnection, filter: &ListFilter) -> Result<Vec<Installation>, ApiError> {
    if !(1..=MAX_LIMIT).contains(&filter.limit) {
        return Err(ApiError::malformed(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let limit = usize::try_from(filter.limit).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut after = filter.after.map(|a| a.to_string());
    loop {
        let mut query = servers::table
            .filter(servers::retired_at.is_null())
            .select(servers::id)
            .order(servers::id.asc())
            .limit(500)
            .into_boxed();
        if let Some(after) = &after {
            query = query.filter(servers::id.gt(after.clone()));
        }
        if let Some(customer) = filter.customer {
            query = query.filter(servers::customer_id.eq(customer.to_string()));
        }
        let ids: Vec<String> = query.load(conn)?;
        let Some(last) = ids.last().cloned() else {
            return Ok(out);
        };
        for id in &ids {
            let installation = installation(conn, parse_uuid(id)?)?;
            if !filter.not_installed || installation.changes_not_installed {
                out.push(installation);
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        after = Some(last);
    }
}

/// Where a receipt came from and who handed it over.
pub struct Source<'a> {
    pub channel: SyncChannel,
    /// The contact: signed in to the portal, or the mail's sender.
    pub sender: &'a str,
    /// The audit actor (the contact, or the gateway's account).
    pub actor: &'a str,
    /// The signed-in contact's customer (portal): another customer's id is refused as
    /// unknown.
    pub customer: Option<Uuid>,
}

/// Verifies an armored receipt against the key pair bound to its id and records it,
/// audited; the same receipt again is answered alike and changes nothing.
pub fn record(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    text: &str,
    source: &Source<'_>,
) -> Result<ReceiptRecorded, ApiError> {
    let verified = receipt::open(text)?;
    let r = &verified.receipt;
    let id = r.server_id;
    conn.transaction::<_, ApiError, _>(|conn| {
        let row: Option<(String, Option<String>, i64)> = servers::table
            .find(id.to_string())
            .select((
                servers::customer_id,
                servers::bound_fingerprint,
                servers::sequence,
            ))
            .first(conn)
            .optional()?;
        let (customer_id, bound, issued) = row.ok_or_else(|| unknown_server(id))?;
        match source.customer {
            Some(customer) if customer.to_string() != customer_id => {
                return Err(unknown_server(id))
            }
            Some(_) => {}
            None => customers::check_contact(conn, id, source.sender)?,
        }
        if bound.as_deref() != Some(verified.fingerprint.as_str()) {
            return Err(ApiError::refused(
                ErrorCode::IdInUse,
                format!(
                    "this receipt was signed by a key pair that is not the one bound to license \
                     server id {id}; make it on the license server that synchronizes as {id}"
                ),
            ));
        }
        if r.sequence > issued {
            return Err(ApiError::malformed(format!(
                "this receipt names license file #{}, which Solme never issued to license \
                 server id {id}",
                r.sequence
            )));
        }
        let inserted = insert_unless_present(conn, |conn| {
            diesel::insert_into(installation_receipts::table)
                .values((
                    installation_receipts::server_id.eq(id.to_string()),
                    installation_receipts::sequence.eq(r.sequence),
                    installation_receipts::revision.eq(r.revision),
                    installation_receipts::file_sha256.eq(&r.license_file_sha256),
                    installation_receipts::installed_at.eq(to_millis(r.installed_at)),
                    installation_receipts::received_at.eq(to_millis(now)),
                    installation_receipts::channel.eq(source.channel.as_str()),
                    installation_receipts::sender.eq(source.sender),
                    installation_receipts::fingerprint.eq(verified.fingerprint.as_str()),
                ))
                .execute(conn)
        })?;
        if inserted {
            let how = match source.channel {
                SyncChannel::Portal => format!("uploaded in the portal by {}", source.sender),
                SyncChannel::Email => format!("mailed by {}", source.sender),
                SyncChannel::Internet => format!("sent by {}", source.sender),
            };
            audit::record(
                conn,
                now,
                source.actor,
                AuditAction::ReceiptRecorded,
                Some(id),
                &format!(
                    "license file #{} (revision {}) installed {}, receipt {how}",
                    r.sequence,
                    r.revision,
                    audit::date_or(Some(r.installed_at), "-")
                ),
            )?;
            log::info!(
                "installation receipt recorded server_id={id} sequence={} channel={}",
                r.sequence,
                source.channel.as_str()
            );
        }
        let installed_at: i64 = installation_receipts::table
            .find((id.to_string(), r.sequence))
            .select(installation_receipts::installed_at)
            .first(conn)?;
        Ok(ReceiptRecorded {
            server_id: id,
            sequence: r.sequence,
            installed_at: from_millis(installed_at),
            newly_recorded: inserted,
        })
    })
}
