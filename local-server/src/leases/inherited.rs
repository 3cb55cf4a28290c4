//! Borrowed seats across a reinstall: what this installation reports of its own, and
//! what it takes over from the installation before it (`shared_proto::borrows`).
//!
//! - Each sync request reports the seats out on borrow ([`outstanding`]): the borrowed
//!   leases not ended, those ending last when there are more than a request carries.
//! - A license file may name the seats the id's previous key pair lent
//!   (`inherited_borrows`, signed by Solme). The import keeps each one once in
//!   `inherited_borrows` and writes it as a borrowed lease ([`record`]); a seat kept
//!   once is never written again, so one returned stays returned whatever later files
//!   say. The engine takes them into its index at its next reload ([`load`]): they
//!   count as taken until they end or their client returns them (by the lease id their
//!   token names, like any borrowed seat).
//!
//! Reads and writes the database only; no clock, no lock, no other file of this folder.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use shared_proto::borrows::{OutstandingBorrow, MAX_REPORTED_BORROWS};
use shared_proto::LicenseFile;
use uuid::Uuid;

use crate::db::{from_ms, to_ms, LeaseRow};
use crate::schema::leases;

/// A seat taken over from the previous installation, as kept.
#[derive(Debug, Clone, QueryableByName)]
pub struct InheritedRow {
    #[diesel(sql_type = Text)]
    pub lease_id: String,
    #[diesel(sql_type = Text)]
    pub feature: String,
    #[diesel(sql_type = Text)]
    pub user: String,
    #[diesel(sql_type = Text)]
    pub host: String,
    #[diesel(sql_type = BigInt)]
    pub until: i64,
    #[diesel(sql_type = Text)]
    pub from_key: String,
    #[diesel(sql_type = BigInt)]
    pub imported_at: i64,
}

impl InheritedRow {
    /// The borrowed lease that holds its seat here.
    pub fn lease_row(&self) -> LeaseRow {
        LeaseRow {
            id: self.lease_id.clone(),
            feature: self.feature.clone(),
            client: client_text(&self.from_key),
            granted_at: self.imported_at,
            expires_at: self.until,
            user: self.user.clone(),
            host: self.host.clone(),
            borrowed: true,
        }
    }
}

/// What the lease list shows as the client of a seat taken over.
fn client_text(from_key: &str) -> String {
    let short: String = from_key.chars().take(16).collect();
    format!("borrowed from the previous installation (key {short})")
}

/// The seats out on borrow at `now`, as a sync request reports them.
pub fn outstanding(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
) -> QueryResult<Vec<OutstandingBorrow>> {
    let limit = i64::try_from(MAX_REPORTED_BORROWS).unwrap_or(i64::MAX);
    let rows: Vec<(String, String, String, String, i64)> = leases::table
        .filter(leases::borrowed.eq(true))
        .filter(leases::expires_at.gt(to_ms(now)))
        .order(leases::expires_at.desc())
        .limit(limit)
        .select((
            leases::id,
            leases::feature,
            leases::user,
            leases::host,
            leases::expires_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, feature, user, host, until)| {
            Some(OutstandingBorrow {
                lease_id: Uuid::parse_str(&id).ok()?,
                feature,
                user,
                host,
                until: from_ms(until),
            })
        })
        .collect())
}

/// In the import's transaction: keeps the seats `file` takes over that are not kept yet
/// and have not ended, each as a borrowed lease. Returns how many it added.
pub fn record(
    conn: &mut SqliteConnection,
    file: &LicenseFile,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    match &file.inherited_borrows {
        Some(inherited) => record_borrows(
            conn,
            &inherited.borrows,
            &inherited.from_key.to_string(),
            now,
        ),
        None => Ok(0),
    }
}

/// Keeps the seats `borrows` lent by the key pair `from_key` (the previous installation,
/// or a standby's primary) that are not kept yet and have not ended, each as a
/// borrowed lease. Returns how many it added.
pub fn record_borrows(
    conn: &mut SqliteConnection,
    borrows: &[OutstandingBorrow],
    from_key: &str,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let mut added = 0;
    for borrow in borrows.iter().filter(|b| b.until > now) {
        let row = InheritedRow {
            lease_id: borrow.lease_id.to_string(),
            feature: borrow.feature.clone(),
            user: borrow.user.clone(),
            host: borrow.host.clone(),
            until: to_ms(borrow.until),
            from_key: from_key.to_owned(),
            imported_at: to_ms(now),
        };
        let kept = diesel::sql_query(
            "INSERT OR IGNORE INTO inherited_borrows \
             (lease_id, feature, user, host, until, from_key, imported_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind::<Text, _>(&row.lease_id)
        .bind::<Text, _>(&row.feature)
        .bind::<Text, _>(&row.user)
        .bind::<Text, _>(&row.host)
        .bind::<BigInt, _>(row.until)
        .bind::<Text, _>(&row.from_key)
        .bind::<BigInt, _>(row.imported_at)
        .execute(conn)?;
        if kept == 0 {
            continue;
        }
        diesel::insert_or_ignore_into(leases::table)
            .values(row.lease_row())
            .execute(conn)?;
        added += 1;
    }
    Ok(added)
}

/// Every seat taken over (a few: one installation's borrows).
pub fn load(conn: &mut SqliteConnection) -> QueryResult<Vec<InheritedRow>> {
    diesel::sql_query(
        "SELECT lease_id, feature, user, host, until, from_key, imported_at \
         FROM inherited_borrows ORDER BY imported_at",
    )
    .load(conn)
}
