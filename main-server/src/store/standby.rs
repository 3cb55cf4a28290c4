//! The standby server of an id's pair (docs/standby.md, "Solme knows the pair"): the
//! fingerprint the id's bound key pair names in its sync requests, registered on the id
//! and audited when it first appears or changes, and the id's failover period, which
//! the license files naming a standby carry.
//!
//! Registration is a small step of its own after a sync was accepted (the sync itself,
//! and on PostgreSQL its server-side function, know nothing of standbys), run only for
//! requests that name a standby: syncs without one cost nothing more. Its write is a
//! conditional update on the fingerprint it read (and on the key that named it still
//! being bound), so concurrent syncs and a concurrent key clearing cannot register a
//! standby twice, or for a key pair that is no longer the id's.
//!
//! Deliberately absent: Solme seals the license file to the primary only; the primary
//! hands the standby the signed content, which names the standby (see
//! `shared_proto::license_file::open_standby_copy`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use shared_proto::admin_api::{AuditAction, MAX_FAILOVER_DAYS};
use shared_proto::keys::Fingerprint;
use shared_proto::messages::StandbyTerms;
use uuid::Uuid;

use super::{audit, unknown_server};
use crate::db::{to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::servers;

/// How often [`register`] reads again after a concurrent change won its update.
const ATTEMPTS: usize = 5;

/// Who named the standby: the sync that carried it.
pub struct Naming<'a> {
    pub server_id: Uuid,
    /// Fingerprint of the request's key pair (bound to the id: the sync was accepted).
    pub key: &'a str,
    /// The standby the request named.
    pub standby: &'a Fingerprint,
    pub now: DateTime<Utc>,
    /// The sync's audit actor (peer address or mail sender).
    pub actor: &'a str,
}

/// Registers the standby a request of the id's bound key pair named (audited when it
/// is new to the id or another than before) and returns the terms its license file
/// carries. `None` when the key pair was cleared since the sync was accepted: the
/// reinstalled primary pairs again, so this request's standby is not registered.
pub fn register(
    conn: &mut DbConnection,
    naming: &Naming<'_>,
) -> Result<Option<StandbyTerms>, ApiError> {
    let id = naming.server_id.to_string();
    let standby = naming.standby.as_str();
    for _ in 0..ATTEMPTS {
        let row: Option<(Option<String>, Option<String>, i32)> = servers::table
            .find(&id)
            .select((
                servers::bound_fingerprint,
                servers::standby_fingerprint,
                servers::failover_days,
            ))
            .first(conn)
            .optional()?;
        let (bound, previous, days) = row.ok_or_else(|| unknown_server(naming.server_id))?;
        if bound.as_deref() != Some(naming.key) {
            return Ok(None);
        }
        let terms = StandbyTerms {
            fingerprint: naming.standby.clone(),
            failover_days: stored_days(days)?,
        };
        if previous.as_deref() == Some(standby) {
            return Ok(Some(terms));
        }
        let registered = conn.transaction::<_, ApiError, _>(|conn| {
            let mut update = diesel::update(servers::table)
                .filter(servers::id.eq(&id))
                .filter(servers::bound_fingerprint.eq(naming.key))
                .into_boxed();
            update = match &previous {
                Some(previous) => update.filter(servers::standby_fingerprint.eq(previous.clone())),
                None => update.filter(servers::standby_fingerprint.is_null()),
            };
            let changed = update
                .set((
                    servers::standby_fingerprint.eq(standby),
                    servers::standby_registered_at.eq(to_millis(naming.now)),
                ))
                .execute(conn)?;
            if changed == 0 {
                return Ok(false);
            }
            let detail = format!(
                "standby server {standby} registered, named by key {}; {}",
                naming.key,
                previous.as_deref().map_or_else(
                    || "no standby was registered before".to_owned(),
                    |p| format!("it replaces the standby {p}")
                )
            );
            audit::record(
                conn,
                naming.now,
                naming.actor,
                AuditAction::StandbyRegistered,
                Some(naming.server_id),
                &detail,
            )?;
            Ok(true)
        })?;
        if registered {
            log::info!(
                "standby registered server_id={} standby={standby} previous={}",
                naming.server_id,
                previous.as_deref().unwrap_or("none")
            );
            return Ok(Some(terms));
        }
        // Another sync (or a key clearing) changed the row between the read and the
        // update: read again and decide on what is there now.
    }
    Err(ApiError::Internal(anyhow::anyhow!(
        "the standby of {id} kept changing under concurrent syncs"
    )))
}

/// Forgets the id's standby, inside a key clearing (the caller's transaction): the
/// reinstalled primary names its standby again. Returns the one forgotten.
pub(crate) fn clear(conn: &mut DbConnection, server_id: Uuid) -> Result<Option<String>, ApiError> {
    let id = server_id.to_string();
    let previous: Option<Option<String>> = servers::table
        .find(&id)
        .select(servers::standby_fingerprint)
        .first(conn)
        .optional()?;
    // Unconditional, like the key clearing itself: whatever was registered meanwhile
    // goes too.
    diesel::update(servers::table.find(&id))
        .set((
            servers::standby_fingerprint.eq(None::<String>),
            servers::standby_registered_at.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(previous.flatten())
}

/// Sets the id's failover period (1–90 days; audited when it changes).
pub fn set_failover_days(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    operator: &str,
    server_id: Uuid,
    days: u32,
) -> Result<(), ApiError> {
    let days = check_days(days)?;
    conn.transaction::<_, ApiError, _>(|conn| {
        let id = server_id.to_string();
        let before: Option<i32> = servers::table
            .find(&id)
            .select(servers::failover_days)
            .first(conn)
            .optional()?;
        let before = before.ok_or_else(|| unknown_server(server_id))?;
        if before == days {
            return Ok(());
        }
        diesel::update(servers::table.find(&id))
            .set(servers::failover_days.eq(days))
            .execute(conn)?;
        let detail = format!(
            "failover period set to {} (was {})",
            days_words(days),
            days_words(before)
        );
        audit::record(
            conn,
            now,
            operator,
            AuditAction::FailoverPeriodSet,
            Some(server_id),
            &detail,
        )
    })?;
    log::info!("failover period set server_id={server_id} days={days} operator={operator:?}");
    Ok(())
}

/// A failover period as given, in range, as the column holds it.
fn check_days(days: u32) -> Result<i32, ApiError> {
    match i32::try_from(days) {
        Ok(d) if (1..=i64::from(MAX_FAILOVER_DAYS)).contains(&i64::from(d)) => Ok(d),
        _ => Err(ApiError::malformed(format!(
            "the failover period must be a whole number of days from 1 to {MAX_FAILOVER_DAYS}, \
             not {days}"
        ))),
    }
}

/// The column's value as the license file and the view carry it; out of range means
/// the database was edited by hand (the column's check forbids it).
pub(crate) fn stored_days(days: i32) -> Result<u32, ApiError> {
    u32::try_from(days)
        .ok()
        .filter(|d| (1..=MAX_FAILOVER_DAYS).contains(d))
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "stored failover period {days} is not 1 to {MAX_FAILOVER_DAYS} days"
            ))
        })
}

fn days_words(days: i32) -> String {
    if days == 1 {
        "1 day".to_owned()
    } else {
        format!("{days} days")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_periods_are_one_to_ninety_days() {
        assert!(check_days(0).is_err());
        assert_eq!(check_days(1).ok(), Some(1));
        assert_eq!(check_days(90).ok(), Some(90));
        assert!(check_days(91).is_err());
        assert!(check_days(u32::MAX).is_err());
        assert!(stored_days(0).is_err());
        assert_eq!(stored_days(14).ok(), Some(14));
    }
}
