//! Who holds what: every live lease with its user, host, client program, since when and
//! until when (a borrowed seat: when it comes back), as `local-server leases` and the
//! manager page's "Seats held" table show it.
//!
//! Read from the database, like `status`, so it is the same whether or not `serve` runs:
//! the engine stores a grant before it answers it and a renewal before it confirms it,
//! so the rows are the leases clients hold (a seat returned in the last instant may
//! still be listed until its row is deleted).

use std::fmt;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::db::{from_ms, to_ms, LeaseRow};
use crate::schema::leases;

/// One held seat.
#[derive(Debug, Clone, Serialize)]
pub struct HeldLease {
    pub lease_id: String,
    pub feature: String,
    pub user: String,
    pub host: String,
    /// The client program's name, as it gave it.
    pub client: String,
    /// When the seat was granted.
    pub since: DateTime<Utc>,
    /// When the lease runs out without a heartbeat; for a borrowed seat, the date it
    /// comes back by itself.
    pub expires_at: DateTime<Utc>,
    /// Lent for offline use (no heartbeats; comes back at `expires_at`).
    pub borrowed: bool,
}

/// The live leases at `now`, by feature, then oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseList {
    pub now: DateTime<Utc>,
    /// The feature asked for (`--feature`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    pub leases: Vec<HeldLease>,
}

/// The leases live at `now`, of `feature` only when given.
pub fn list(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
    feature: Option<&str>,
) -> QueryResult<LeaseList> {
    let mut query = leases::table
        .filter(leases::expires_at.gt(to_ms(now)))
        .order((leases::feature, leases::granted_at, leases::id))
        .select(LeaseRow::as_select())
        .into_boxed();
    if let Some(feature) = feature {
        query = query.filter(leases::feature.eq(feature.to_owned()));
    }
    let leases = query
        .load(conn)?
        .into_iter()
        .map(|row| HeldLease {
            lease_id: row.id,
            feature: row.feature,
            user: row.user,
            host: row.host,
            client: row.client,
            since: from_ms(row.granted_at),
            expires_at: from_ms(row.expires_at),
            borrowed: row.borrowed,
        })
        .collect();
    Ok(LeaseList {
        now,
        feature: feature.map(str::to_owned),
        leases,
    })
}

impl fmt::Display for LeaseList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = |d: DateTime<Utc>| d.format("%Y-%m-%d %H:%M UTC").to_string();
        if self.leases.is_empty() {
            return match &self.feature {
                Some(feature) => writeln!(f, "No seat of {feature} is held right now."),
                None => writeln!(f, "No seat is held right now."),
            };
        }
        let rows: Vec<[String; 7]> = self
            .leases
            .iter()
            .map(|l| {
                let until = if l.borrowed {
                    format!("borrowed, back by {}", date(l.expires_at))
                } else {
                    date(l.expires_at)
                };
                [
                    l.feature.clone(),
                    l.user.clone(),
                    l.host.clone(),
                    l.client.clone(),
                    date(l.since),
                    until,
                    l.lease_id.clone(),
                ]
            })
            .collect();
        let head = [
            "FEATURE", "USER", "HOST", "CLIENT", "SINCE", "EXPIRES", "LEASE ID",
        ];
        let mut widths = head.map(|h| h.chars().count());
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| -> fmt::Result {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    text.push_str(&format!("{cell:<width$}  "));
                }
            }
            writeln!(f, "{}", text.trim_end())
        };
        line(f, &head)?;
        for row in &rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            line(f, &cells)?;
        }
        let borrowed = self.leases.iter().filter(|l| l.borrowed).count();
        let held = self.leases.len();
        let seats = if held == 1 { "seat" } else { "seats" };
        if borrowed > 0 {
            writeln!(f, "{held} {seats} held, {borrowed} of them borrowed.")
        } else {
            writeln!(f, "{held} {seats} held.")
        }
    }
}
