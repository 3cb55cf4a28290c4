//! Installing a license file (from a direct sync or from `import-license-file`): the
//! checks, the one transaction that replaces licenses and sync state, and the report of
//! what changed.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use shared_proto::validity::CLOCK_ROLLBACK_TOLERANCE;
use shared_proto::{license_file, ErrorCode, License, LicenseFile, ServerIdentity};

use crate::config::Settings;
use crate::db::{self, from_ms, to_ms};
use crate::error::Error;
use crate::leases::{license_from_row, seats_valid_now};
use crate::schema::{leases, licenses, sync_history, sync_state, usage_peaks};
use crate::wording::{plural_returned, seats_text};

/// Largest license file accepted (a file with hundreds of licenses is a few tens of KiB).
pub const MAX_LICENSE_FILE_BYTES: u64 = 1024 * 1024;

shared_proto::text_enum! {
    /// How the license file arrived.
    pub enum Channel {
        /// Answer of a direct synchronization.
        Internet => "internet",
        /// Imported from a file (the email channel).
        File => "file",
        /// A standby's copy of its primary's file, handed on by the primary.
        Primary => "primary",
    }
}

/// One feature's licenses before or after.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FeatureChange {
    pub feature: String,
    pub seats_before: Option<u32>,
    pub seats_after: Option<u32>,
    pub licenses_before: Vec<License>,
    pub licenses_after: Vec<License>,
}

/// What an import changed.
#[derive(Debug, Clone, Serialize)]
pub struct Changes {
    pub sequence: i64,
    pub revision: i64,
    pub customer: String,
    pub valid_until: DateTime<Utc>,
    pub previous_valid_until: Option<DateTime<Utc>>,
    pub added: Vec<FeatureChange>,
    pub removed: Vec<FeatureChange>,
    pub changed: Vec<FeatureChange>,
    /// Features whose seats (valid now) drop below the seats in use now.
    pub seats_below_use: Vec<SeatShortfall>,
    /// Hex SHA-256 of the file's signed content (what a receipt and the next sync
    /// requests name as the file held).
    #[serde(skip)]
    pub file_sha256: String,
    /// Seats the previous installation of this id lent that this import counts as
    /// taken from now on (see `crate::leases::inherited`); absent from the JSON when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub borrowed_seats_taken_over: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A feature that has more seats in use than the license file gives it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SeatShortfall {
    pub feature: String,
    pub seats_after: u32,
    pub in_use: u32,
}

/// What importing a license file would change, found by the same checks as the import
/// and applying nothing (`import-license-file --dry-run`, the manager page's preview).
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub changes: Changes,
}

impl fmt::Display for Preview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.changes;
        let date = |d: DateTime<Utc>| d.format("%Y-%m-%d").to_string();
        writeln!(
            f,
            "Preview of license file #{} for {} (revision {}): nothing was changed.",
            c.sequence, c.customer, c.revision
        )?;
        writeln!(
            f,
            "Valid until: {}{}.",
            date(c.valid_until),
            c.previous_valid_until
                .map(|d| format!(" (now {})", date(d)))
                .unwrap_or_else(|| " (this server holds no license file yet)".into())
        )?;
        c.write_licenses(f, "would be ")?;
        Ok(())
    }
}

impl Changes {
    /// The license lines; `tense` is "" for an import and "would be " for a preview.
    fn write_licenses(&self, f: &mut fmt::Formatter<'_>, tense: &str) -> fmt::Result {
        let date = |d: DateTime<Utc>| d.format("%Y-%m-%d").to_string();
        let dates = |ls: &[License]| {
            ls.iter()
                .map(|l| match (l.valid_from, l.valid_until) {
                    (None, None) => "perpetual".to_owned(),
                    (from, until) => format!(
                        "{} to {}",
                        from.map_or("now".into(), date),
                        until.map_or("no end".into(), date)
                    ),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty() {
            writeln!(f, "Licenses: no change.")?;
        }
        for c in &self.added {
            writeln!(
                f,
                "  {tense}added    {}: {} ({})",
                c.feature,
                seats_text(c.seats_after.unwrap_or(0)),
                dates(&c.licenses_after)
            )?;
        }
        for c in &self.removed {
            writeln!(
                f,
                "  {tense}removed  {}: had {}",
                c.feature,
                seats_text(c.seats_before.unwrap_or(0))
            )?;
        }
        for c in &self.changed {
            if c.seats_before != c.seats_after {
                writeln!(
                    f,
                    "  {tense}changed  {}: {} -> {} ({})",
                    c.feature,
                    c.seats_before.unwrap_or(0),
                    seats_text(c.seats_after.unwrap_or(0)),
                    dates(&c.licenses_after)
                )?;
            } else {
                writeln!(
                    f,
                    "  {tense}changed  {}: dates now {}",
                    c.feature,
                    dates(&c.licenses_after)
                )?;
            }
        }
        if !self.seats_below_use.is_empty() {
            writeln!(
                f,
                "Features with more seats in use than the file gives them:"
            )?;
            for short in &self.seats_below_use {
                writeln!(
                    f,
                    "  {}: {}, {} in use now (no new check-outs until {} returned)",
                    short.feature,
                    seats_text(short.seats_after),
                    short.in_use,
                    // Check-outs resume once fewer seats are in use than there are.
                    plural_returned(short.in_use.saturating_sub(short.seats_after) + 1)
                )?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = |d: DateTime<Utc>| d.format("%Y-%m-%d").to_string();
        writeln!(
            f,
            "License file #{} for {} (revision {}): synchronized until {}{}.",
            self.sequence,
            self.customer,
            self.revision,
            date(self.valid_until),
            self.previous_valid_until
                .map(|d| format!(" (was {})", date(d)))
                .unwrap_or_default()
        )?;
        self.write_licenses(f, "")?;
        if self.borrowed_seats_taken_over > 0 {
            writeln!(
                f,
                "Borrowed by clients of the previous installation of this server and not \
                 returned yet: {}, counted as in use until returned or ended.",
                seats_text(self.borrowed_seats_taken_over)
            )?;
        }
        Ok(())
    }
}

fn by_feature(list: Vec<License>) -> BTreeMap<String, Vec<License>> {
    let mut map: BTreeMap<String, Vec<License>> = BTreeMap::new();
    for l in list {
        map.entry(l.feature.clone()).or_default().push(l);
    }
    map
}

fn total(list: &[License]) -> u32 {
    list.iter().map(|l| l.seats).fold(0u32, u32::saturating_add)
}

fn diff(
    before: Vec<License>,
    after: Vec<License>,
) -> (Vec<FeatureChange>, Vec<FeatureChange>, Vec<FeatureChange>) {
    let before = by_feature(before);
    let after = by_feature(after);
    let (mut added, mut removed, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    for (feature, new) in &after {
        let change = |old: Option<&Vec<License>>| FeatureChange {
            feature: feature.clone(),
            seats_before: old.map(|o| total(o)),
            seats_after: Some(total(new)),
            licenses_before: old.cloned().unwrap_or_default(),
            licenses_after: new.clone(),
        };
        match before.get(feature) {
            None => added.push(change(None)),
            Some(old) if old != new => changed.push(change(Some(old))),
            Some(_) => {}
        }
    }
    for (feature, old) in &before {
        if !after.contains_key(feature) {
            removed.push(FeatureChange {
                feature: feature.clone(),
                seats_before: Some(total(old)),
                seats_after: None,
                licenses_before: old.clone(),
                licenses_after: Vec::new(),
            });
        }
    }
    (added, removed, changed)
}

/// The checks an opened, verified license file must pass against what is installed, and
/// what installing it changes: one function for the import and its preview, so that the
/// preview refuses exactly what the import refuses. Reads only; the caller holds the
/// transaction.
fn plan(
    c: &mut SqliteConnection,
    file: &LicenseFile,
    now: DateTime<Utc>,
) -> Result<Changes, Error> {
    let state = db::load_sync_state(c)?;
    if let Some(held) = state.sequence {
        if file.sequence <= held {
            return Err(Error::refused(
                ErrorCode::OlderLicenseFile,
                format!(
                    "this license file (number {}) is not newer than the one installed \
                     (number {held}); nothing was changed. Import the newest file Solme sent",
                    file.sequence
                ),
            ));
        }
    }
    let before: Vec<License> = db::load_licenses(c)?.iter().map(license_from_row).collect();
    let in_use: Vec<(String, i64)> = leases::table
        .filter(leases::expires_at.gt(to_ms(now)))
        .group_by(leases::feature)
        .select((leases::feature, diesel::dsl::count_star()))
        .load(c)?;
    let after = by_feature(file.licenses.clone());
    let seats_below_use = in_use
        .into_iter()
        .filter_map(|(feature, n)| {
            let in_use = u32::try_from(n).unwrap_or(u32::MAX);
            let seats_after = after
                .get(&feature)
                .and_then(|ls| seats_valid_now(ls, now))
                .unwrap_or(0);
            (seats_after < in_use).then_some(SeatShortfall {
                feature,
                seats_after,
                in_use,
            })
        })
        .collect();
    let (added, removed, changed) = diff(before, file.licenses.clone());
    Ok(Changes {
        sequence: file.sequence,
        revision: file.revision,
        customer: file.customer.clone(),
        valid_until: file.valid_until,
        previous_valid_until: state.valid_until.map(from_ms),
        added,
        removed,
        changed,
        seats_below_use,
        file_sha256: held_file_sha256(file)?,
        borrowed_seats_taken_over: 0,
    })
}

/// What installing `file` would change, with the import's checks; changes nothing.
pub fn preview(
    conn: &mut SqliteConnection,
    file: &LicenseFile,
    now: DateTime<Utc>,
) -> Result<Preview, Error> {
    let changes = conn.transaction(|c| plan(c, file, now))?;
    Ok(Preview { changes })
}

/// Installs an opened, verified license file in one transaction. Refuses a file not
/// newer than the one held (`OLDER_LICENSE_FILE`), changing nothing.
pub fn apply(
    conn: &mut SqliteConnection,
    file: &LicenseFile,
    channel: Channel,
    now: DateTime<Utc>,
) -> Result<Changes, Error> {
    let now_ms = to_ms(now);
    conn.immediate_transaction(|c| {
        let mut changes = plan(c, file, now)?;
        diesel::delete(licenses::table).execute(c)?;
        for l in &file.licenses {
            diesel::insert_into(licenses::table)
                .values((
                    licenses::feature.eq(&l.feature),
                    licenses::seats.eq(i32::try_from(l.seats).unwrap_or(i32::MAX)),
                    licenses::valid_from.eq(l.valid_from.map(to_ms)),
                    licenses::valid_until.eq(l.valid_until.map(to_ms)),
                    licenses::max_borrow_hours
                        .eq(l.max_borrow_hours.and_then(|h| i32::try_from(h).ok())),
                ))
                .execute(c)?;
        }
        diesel::update(sync_state::table)
            .set((
                sync_state::sequence.eq(file.sequence),
                sync_state::revision.eq(file.revision),
                sync_state::customer.eq(&file.customer),
                sync_state::issued_at.eq(to_ms(file.issued_at)),
                sync_state::valid_until.eq(to_ms(file.valid_until)),
                sync_state::last_sync_at.eq(now_ms),
                sync_state::last_sync_channel.eq(channel.as_str()),
            ))
            .execute(c)?;
        // What the next requests present as the file held (see `sync_history`).
        diesel::update(sync_history::table)
            .set(sync_history::held_file_sha256.eq(held_file_sha256(file)?))
            .execute(c)?;
        if channel == Channel::Internet && (file.issued_at - now).abs() <= CLOCK_ROLLBACK_TOLERANCE
        {
            // A direct answer to our own request carries the main server's time, and the
            // local clock agrees with it: the clock is right now, so a mark left by a clock
            // that was wrongly in the future is wrong, and is set back (CLOCK_ROLLBACK
            // would otherwise never clear).
            db::reset_high_water(c, now_ms.max(to_ms(file.issued_at)))?;
        } else {
            db::raise_high_water(c, now_ms)?;
        }
        // Seats the previous installation lent, counted as taken from now on (before the
        // peaks below, which count them).
        let taken_over = crate::leases::inherited::record(c, file, now)?;
        changes.borrowed_seats_taken_over = u32::try_from(taken_over).unwrap_or(u32::MAX);
        // Usage peaks are reported per synchronization period: start the new one from
        // the seats in use right now.
        diesel::delete(usage_peaks::table).execute(c)?;
        diesel::sql_query(
            "INSERT INTO usage_peaks (feature, peak_in_use) \
             SELECT feature, COUNT(*) FROM leases WHERE expires_at > ? GROUP BY feature",
        )
        .bind::<diesel::sql_types::BigInt, _>(now_ms)
        .execute(c)?;
        Ok(changes)
    })
}

/// Hex SHA-256 of a license file's signed content (its JSON, as the main server
/// serializes it), the hash sync requests present as the file held.
pub fn held_file_sha256(file: &LicenseFile) -> anyhow::Result<String> {
    let json = serde_json::to_vec(file).context("encoding the license file to hash it")?;
    Ok(shared_proto::hex::encode(&openssl::sha::sha256(&json)))
}

/// Reads a license file from disk, bounded in size.
pub fn read_license_file(path: &Path) -> Result<String, Error> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_LICENSE_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|_| {
            Error::refused(
                ErrorCode::Malformed,
                format!("{} is not a license file (not text)", path.display()),
            )
        })?;
    if text.len() as u64 > MAX_LICENSE_FILE_BYTES {
        return Err(Error::refused(
            ErrorCode::Malformed,
            format!("{} is too large to be a license file", path.display()),
        ));
    }
    Ok(text)
}

/// Opens (decrypts, verifies) an armored license file for this server: Solme's
/// signature, encrypted to this server's key, for this id. Bounded in size.
fn open_text(
    settings: &Settings,
    identity: &ServerIdentity,
    text: &str,
) -> Result<LicenseFile, Error> {
    if text.len() as u64 > MAX_LICENSE_FILE_BYTES {
        return Err(Error::refused(
            ErrorCode::Malformed,
            "the license file is too large",
        ));
    }
    Ok(license_file::open(
        text,
        identity,
        &settings.solme_key()?,
        settings.server_id,
    )?)
}

/// Opens an armored license file as [`import_text`] does and previews its import.
pub fn preview_text(
    conn: &mut SqliteConnection,
    settings: &Settings,
    identity: &ServerIdentity,
    text: &str,
    now: DateTime<Utc>,
) -> Result<Preview, Error> {
    let file = open_text(settings, identity, text)?;
    preview(conn, &file, now)
}

/// Opens (decrypts, verifies) and installs an armored license file.
pub fn import_text(
    conn: &mut SqliteConnection,
    settings: &Settings,
    identity: &ServerIdentity,
    text: &str,
    channel: Channel,
    now: DateTime<Utc>,
) -> Result<Changes, Error> {
    let file = open_text(settings, identity, text)?;
    let changes = apply(conn, &file, channel, now)?;
    // What a primary hands on to its standby.
    crate::pair::store::keep_primary_file(conn, &license_file::signed_content(text, identity)?)?;
    log::info!(
        "license file installed server_id={} sequence={} channel={} valid_until={}",
        settings.server_id,
        file.sequence,
        channel.as_str(),
        file.valid_until
    );
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lic(feature: &str, seats: u32) -> License {
        License::perpetual(feature, seats)
    }

    #[test]
    fn diff_names_added_removed_and_changed_features() {
        let (added, removed, changed) = diff(
            vec![lic("cad", 5), lic("cam", 2), lic("sim", 1)],
            vec![lic("cad", 3), lic("sim", 1), lic("viz", 4)],
        );
        assert_eq!(
            added.iter().map(|c| c.feature.as_str()).collect::<Vec<_>>(),
            ["viz"]
        );
        assert_eq!(
            removed
                .iter()
                .map(|c| c.feature.as_str())
                .collect::<Vec<_>>(),
            ["cam"]
        );
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].seats_before, Some(5));
        assert_eq!(changed[0].seats_after, Some(3));
    }
}
