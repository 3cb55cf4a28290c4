//! Licenses of an id. Every change moves the id's revision in the same transaction,
//! with the revision update first: it takes the row's write lock, so concurrent
//! changes to one id are ordered and each gets its own revision.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use shared_proto::admin_api::AuditAction;
use shared_proto::ErrorCode;
use uuid::Uuid;

use super::audit;
use super::{parse_uuid, unknown_server, MAX_FEATURE, MAX_SEATS};
use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::{licenses, servers};

/// Licenses of many ids at once, keyed by stored id text.
pub(crate) type LicensesByServer = HashMap<String, Vec<shared_proto::admin_api::License>>;
use shared_proto::admin_api::{License, LicenseChange, NewLicense};

/// One stored license, as read.
#[derive(Queryable, Selectable)]
#[diesel(table_name = licenses)]
struct LicenseRow {
    id: String,
    server_id: String,
    feature: String,
    seats: i32,
    valid_from: Option<i64>,
    valid_until: Option<i64>,
    max_borrow_hours: Option<i32>,
}

fn to_view(row: LicenseRow) -> Result<License, ApiError> {
    Ok(License {
        id: parse_uuid(&row.id)?,
        feature: row.feature,
        seats: u32::try_from(row.seats).unwrap_or(0),
        valid_from: row.valid_from.map(from_millis),
        valid_until: row.valid_until.map(from_millis),
        max_borrow_hours: row.max_borrow_hours.and_then(|h| u32::try_from(h).ok()),
    })
}

/// The licenses of one id, by feature name.
pub fn list_for(conn: &mut DbConnection, server_id: Uuid) -> Result<Vec<License>, ApiError> {
    let rows: Vec<LicenseRow> = licenses::table
        .filter(licenses::server_id.eq(server_id.to_string()))
        .select(LicenseRow::as_select())
        .order(licenses::feature)
        .load(conn)?;
    rows.into_iter().map(to_view).collect()
}

/// The licenses of the given ids (one page of a listing), keyed by stored id text.
pub(crate) fn list_for_many(
    conn: &mut DbConnection,
    server_ids: &[String],
) -> Result<LicensesByServer, ApiError> {
    if server_ids.is_empty() {
        return Ok(LicensesByServer::new());
    }
    let rows: Vec<LicenseRow> = licenses::table
        .filter(licenses::server_id.eq_any(server_ids))
        .select(LicenseRow::as_select())
        .order(licenses::feature)
        .load(conn)?;
    let mut map = LicensesByServer::new();
    for row in rows {
        let server = row.server_id.clone();
        map.entry(server).or_default().push(to_view(row)?);
    }
    Ok(map)
}

fn check_seats(seats: u32) -> Result<i32, ApiError> {
    if seats == 0 || seats > MAX_SEATS {
        return Err(ApiError::malformed(format!(
            "seats must be between 1 and {MAX_SEATS}"
        )));
    }
    i32::try_from(seats).map_err(|_| ApiError::malformed("too many seats"))
}

/// A borrow limit is 1 hour to 366 days (no borrow outlives a sync period anyway).
fn check_borrow(hours: Option<u32>) -> Result<Option<i32>, ApiError> {
    match hours {
        None => Ok(None),
        Some(h @ 1..=8_784) => Ok(i32::try_from(h).ok()),
        Some(_) => Err(ApiError::malformed(
            "max_borrow_hours must be between 1 and 8784 (366 days)",
        )),
    }
}

/// A feature name is what client programs ask for and what the license file and the
/// local server's pages carry: 1 to [`MAX_FEATURE`] letters, digits, `-`, `_` and `.`,
/// so a slip (a space, a stray quote, a pasted line) is refused here and not found
/// later as a feature nobody can check out.
fn check_feature(feature: &str) -> Result<String, ApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if feature.is_empty() || feature.len() > MAX_FEATURE || !feature.chars().all(allowed) {
        return Err(ApiError::malformed(format!(
            "a feature name is 1 to {MAX_FEATURE} letters, digits, '-', '_' or '.' \
             (no spaces); {} is not",
            shown(feature)
        )));
    }
    Ok(feature.to_owned())
}

/// A refused value as people read it: quoted, cut after 40 characters.
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(40).collect();
    if cut.len() < value.len() {
        format!("\"{cut}…\"")
    } else {
        format!("\"{cut}\"")
    }
}

/// A license that has already ended when it is written is usually a typed year;
/// `CONFIRMATION_REQUIRED` unless the operator said it is meant.
fn refuse_ended(
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    confirmed: bool,
) -> Result<(), ApiError> {
    match until {
        Some(until) if until <= now && !confirmed => Err(ApiError::refused(
            ErrorCode::ConfirmationRequired,
            format!(
                "the license would end on {}, which is already past: no seat of it could \
                 be checked out; if that is meant, confirm the ended license",
                until.format("%Y-%m-%d %H:%M UTC")
            ),
        )),
        _ => Ok(()),
    }
}

fn check_dates(from: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Result<(), ApiError> {
    match (from, until) {
        (Some(from), Some(until)) if until <= from => Err(ApiError::malformed(
            "valid_until must be later than valid_from",
        )),
        _ => Ok(()),
    }
}

/// Moves the revision of `server_id`; refuses an unknown id.
fn bump_revision(conn: &mut DbConnection, server_id: Uuid) -> Result<(), ApiError> {
    let updated = diesel::update(servers::table.find(server_id.to_string()))
        .set(servers::revision.eq(servers::revision + 1))
        .execute(conn)?;
    if updated == 0 {
        return Err(unknown_server(server_id));
    }
    Ok(())
}

pub fn add(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    operator: &str,
    server_id: Uuid,
    new: &NewLicense,
) -> Result<License, ApiError> {
    let feature = check_feature(&new.feature)?;
    let seats = check_seats(new.seats)?;
    check_dates(new.valid_from, new.valid_until)?;
    refuse_ended(new.valid_until, now, new.confirm_ended)?;
    let max_borrow_hours = check_borrow(new.max_borrow_hours)?;
    let id = Uuid::new_v4();
    conn.transaction::<_, ApiError, _>(|conn| {
        bump_revision(conn, server_id)?;
        let inserted = diesel::insert_into(licenses::table)
            .values((
                licenses::id.eq(id.to_string()),
                licenses::server_id.eq(server_id.to_string()),
                licenses::feature.eq(&feature),
                licenses::seats.eq(seats),
                licenses::valid_from.eq(new.valid_from.map(to_millis)),
                licenses::valid_until.eq(new.valid_until.map(to_millis)),
                licenses::created_at.eq(to_millis(now)),
                licenses::max_borrow_hours.eq(max_borrow_hours),
            ))
            .execute(conn);
        match inserted {
            Err(e) if super::is_unique_violation(&e) => {
                return Err(ApiError::malformed(format!(
                    "license server id {server_id} already has a license for {feature:?}; change that one instead"
                )))
            }
            other => other?,
        };
        let detail = format!("license {id}: {feature}, {seats} seats");
        audit::record(conn, now, operator, AuditAction::LicenseAdd, Some(server_id), &detail)
    })?;
    Ok(License {
        id,
        feature,
        seats: new.seats,
        valid_from: new.valid_from,
        valid_until: new.valid_until,
        max_borrow_hours: new.max_borrow_hours,
    })
}

pub fn change(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    operator: &str,
    server_id: Uuid,
    license_id: Uuid,
    change: &LicenseChange,
) -> Result<License, ApiError> {
    conn.transaction::<_, ApiError, _>(|conn| {
        bump_revision(conn, server_id)?;
        let row: Option<LicenseRow> = licenses::table
            .filter(licenses::id.eq(license_id.to_string()))
            .filter(licenses::server_id.eq(server_id.to_string()))
            .select(LicenseRow::as_select())
            .first(conn)
            .optional()?;
        let mut license = to_view(row.ok_or_else(|| {
            ApiError::not_found(format!(
                "license server id {server_id} has no license {license_id}"
            ))
        })?)?;
        if let Some(seats) = change.seats {
            check_seats(seats)?;
            license.seats = seats;
        }
        if let Some(from) = change.valid_from {
            license.valid_from = from;
        }
        if let Some(until) = change.valid_until {
            refuse_ended(until, now, change.confirm_ended)?;
            license.valid_until = until;
        }
        if let Some(hours) = change.max_borrow_hours {
            check_borrow(hours)?;
            license.max_borrow_hours = hours;
        }
        check_dates(license.valid_from, license.valid_until)?;
        diesel::update(licenses::table.find(license_id.to_string()))
            .set((
                licenses::seats.eq(check_seats(license.seats)?),
                licenses::valid_from.eq(license.valid_from.map(to_millis)),
                licenses::valid_until.eq(license.valid_until.map(to_millis)),
                licenses::max_borrow_hours.eq(check_borrow(license.max_borrow_hours)?),
            ))
            .execute(conn)?;
        let detail = format!(
            "license {license_id}: {}, {} seats, valid from {} until {}, {}",
            license.feature,
            license.seats,
            audit::date_or(license.valid_from, "the start"),
            audit::date_or(license.valid_until, "no end (perpetual)"),
            license.max_borrow_hours.map_or_else(
                || "not borrowable".to_owned(),
                |h| format!("borrowable for up to {h} hours")
            )
        );
        audit::record(
            conn,
            now,
            operator,
            AuditAction::LicenseChange,
            Some(server_id),
            &detail,
        )?;
        Ok(license)
    })
}

pub fn remove(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    operator: &str,
    server_id: Uuid,
    license_id: Uuid,
) -> Result<(), ApiError> {
    conn.transaction::<_, ApiError, _>(|conn| {
        bump_revision(conn, server_id)?;
        let deleted = diesel::delete(
            licenses::table
                .filter(licenses::id.eq(license_id.to_string()))
                .filter(licenses::server_id.eq(server_id.to_string())),
        )
        .execute(conn)?;
        if deleted == 0 {
            return Err(ApiError::not_found(format!(
                "license server id {server_id} has no license {license_id}"
            )));
        }
        let detail = format!("license {license_id}");
        audit::record(
            conn,
            now,
            operator,
            AuditAction::LicenseRemove,
            Some(server_id),
            &detail,
        )
    })
}

/// The licenses as they go into a license file.
pub fn to_proto(licenses: &[License]) -> Vec<shared_proto::License> {
    licenses
        .iter()
        .map(|l| shared_proto::License {
            feature: l.feature.clone(),
            seats: l.seats,
            valid_from: l.valid_from,
            valid_until: l.valid_until,
            max_borrow_hours: l.max_borrow_hours,
        })
        .collect()
}
