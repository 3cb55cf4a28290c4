//! `local-server report` and the manager page's usage chart, read from the report log
//! ([`crate::report_log`]).
//!
//! Each lease event stores the feature's seats in use right after it, so the seats in
//! use over time are a step function of the rows: peak use is its maximum, seat-hours its
//! integral over the period (starting from the level the last earlier row left). Busiest
//! users are ranked by the seat-hours of their leases within the period.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::db::to_ms;
use crate::error::Error;
use crate::report_log::{Event, ReportRow};
use crate::schema::report_log;

/// How many users the report names per feature.
const BUSIEST_USERS: usize = 5;

/// The report for one period.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub features: Vec<FeatureReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureReport {
    pub feature: String,
    pub peak_in_use: u32,
    pub seat_hours: f64,
    pub check_outs: u64,
    pub borrows: u64,
    /// Check-outs that waited in the queue and got a seat.
    pub queue_granted: u64,
    /// Refusals by code (`NO_SEATS`, `OPTIONS_DENIED`, …); a wait that ended without a
    /// seat counts as `NO_SEATS`.
    pub refusals: BTreeMap<String, u64>,
    pub busiest_users: Vec<UserHours>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserHours {
    pub user: String,
    pub seat_hours: f64,
}

/// Seats in use over time for the manager page's chart.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub bucket_minutes: i64,
    /// Per feature, the highest seats in use in each bucket (oldest first).
    pub series: BTreeMap<String, Vec<u32>>,
    /// Refusals in the period, per feature and code.
    pub refusals: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Parses `--from`/`--to`: a day (`2026-11-01`, its start) or an RFC 3339 time.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, crate::wording::DAY_FORMAT)
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .ok_or_else(|| format!("{text:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))
}

/// The report log rows of the period, and the seats in use each feature had when it
/// began.
fn load(
    conn: &mut SqliteConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueryResult<(Vec<ReportRow>, HashMap<String, u32>)> {
    let rows = report_log::table
        .filter(report_log::at.ge(to_ms(from)))
        .filter(report_log::at.lt(to_ms(to)))
        .order((report_log::at, report_log::id))
        .select(ReportRow::as_select())
        .load(conn)?;
    // The last row before the period of each feature holds its level then.
    let last_ids: Vec<Option<i32>> = report_log::table
        .filter(report_log::at.lt(to_ms(from)))
        .group_by(report_log::feature)
        .select(diesel::dsl::max(report_log::id))
        .load(conn)?;
    let last_ids: Vec<i32> = last_ids.into_iter().flatten().collect();
    let before: Vec<(String, i32)> = report_log::table
        .filter(report_log::id.eq_any(last_ids))
        .select((report_log::feature, report_log::in_use))
        .load(conn)?;
    let before = before
        .into_iter()
        .map(|(f, n)| (f, u32::try_from(n).unwrap_or(0)))
        .collect();
    Ok((rows, before))
}

fn hours(ms: i64) -> f64 {
    ms as f64 / 3_600_000.0
}

/// Builds the report of `[from, to)`.
pub fn build(
    conn: &mut SqliteConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Report, Error> {
    let (rows, before) = load(conn, from, to)?;
    let (from_ms, to_ms) = (to_ms(from), to_ms(to));
    struct Acc {
        level: u32,
        since: i64,
        report: FeatureReport,
        open: HashMap<String, (String, i64)>,
        users: HashMap<String, i64>,
    }
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    let new_acc = |feature: &str, level: u32| Acc {
        level,
        since: from_ms,
        report: FeatureReport {
            feature: feature.to_owned(),
            peak_in_use: level,
            seat_hours: 0.0,
            check_outs: 0,
            borrows: 0,
            queue_granted: 0,
            refusals: BTreeMap::new(),
            busiest_users: Vec::new(),
        },
        open: HashMap::new(),
        users: HashMap::new(),
    };
    for (feature, level) in &before {
        acc.insert(feature.clone(), new_acc(feature, *level));
    }
    for row in rows {
        let a = acc
            .entry(row.feature.clone())
            .or_insert_with(|| new_acc(&row.feature, 0));
        let in_use = u32::try_from(row.in_use).unwrap_or(0);
        if row.event.moves_seats() {
            a.report.seat_hours += f64::from(a.level) * hours(row.at - a.since);
            a.level = in_use;
            a.since = row.at;
            a.report.peak_in_use = a.report.peak_in_use.max(in_use);
        }
        let lease = row.lease_id.clone().unwrap_or_default();
        match row.event {
            Event::CheckOut | Event::Borrow | Event::QueueGranted => {
                match row.event {
                    Event::Borrow => a.report.borrows += 1,
                    Event::QueueGranted => a.report.queue_granted += 1,
                    _ => a.report.check_outs += 1,
                }
                a.open.insert(lease, (row.user.clone(), row.at));
            }
            Event::CheckIn | Event::Expiry | Event::Return | Event::TakeBack => {
                let (user, start) = a.open.remove(&lease).unwrap_or((row.user.clone(), from_ms));
                *a.users.entry(user).or_insert(0) += row.at - start;
            }
            Event::Refusal | Event::QueueTimeout => {
                let code = row.code.clone().unwrap_or_else(|| "UNKNOWN".into());
                *a.report.refusals.entry(code).or_insert(0) += 1;
            }
        }
    }
    let features = acc
        .into_values()
        .map(|mut a| {
            a.report.seat_hours += f64::from(a.level) * hours(to_ms - a.since);
            for (_, (user, start)) in a.open.drain() {
                *a.users.entry(user).or_insert(0) += to_ms - start;
            }
            let mut users: Vec<UserHours> = a
                .users
                .into_iter()
                .map(|(user, ms)| UserHours {
                    user,
                    seat_hours: round2(hours(ms)),
                })
                .collect();
            users.sort_by(|x, y| {
                y.seat_hours
                    .total_cmp(&x.seat_hours)
                    .then_with(|| x.user.cmp(&y.user))
            });
            users.truncate(BUSIEST_USERS);
            a.report.busiest_users = users;
            a.report.seat_hours = round2(a.report.seat_hours);
            a.report
        })
        .collect();
    Ok(Report { from, to, features })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The longest period the manager page reports on (the report log keeps 400 days by
/// default).
pub const MAX_PERIOD_DAYS: i64 = 800;

/// Most slots a usage chart has: hourly up to 10 days, then whole hours per slot.
const MAX_SLOTS: i64 = 240;

/// Checks a period asked for on the manager page (the CLI checks its own flags): the
/// start before the end, and at most [`MAX_PERIOD_DAYS`] long. The refusal is in words.
pub fn check_period(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), String> {
    let day = crate::wording::time_text;
    if from >= to {
        return Err(format!(
            "the period must start before it ends: from {} to {} is empty (choose a start \
             date before the end date)",
            day(from),
            day(to)
        ));
    }
    if to - from > Duration::days(MAX_PERIOD_DAYS) {
        return Err(format!(
            "the period from {} to {} is longer than {MAX_PERIOD_DAYS} days; choose a shorter one",
            day(from),
            day(to)
        ));
    }
    Ok(())
}

/// Seats in use per feature over the last `days`, in `buckets` slots, for the chart.
pub fn usage(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
    days: i64,
    buckets: i64,
) -> Result<Usage, Error> {
    let from = now - Duration::days(days);
    usage_in(conn, from, now, (days * 86_400_000 / buckets).max(1))
}

/// Seats in use per feature over `[from, to)`: hourly slots up to 10 days, longer
/// periods in whole hours per slot so that there are at most 240.
pub fn usage_between(
    conn: &mut SqliteConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Usage, Error> {
    let span_hours = ((to - from).num_milliseconds() + 3_599_999) / 3_600_000;
    let hours_per_slot = ((span_hours + MAX_SLOTS - 1) / MAX_SLOTS).max(1);
    usage_in(conn, from, to, hours_per_slot * 3_600_000)
}

fn usage_in(
    conn: &mut SqliteConnection,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    bucket_ms: i64,
) -> Result<Usage, Error> {
    let (rows, before) = load(conn, from, now)?;
    let span = (to_ms(now) - to_ms(from)).max(1);
    let slots = usize::try_from((span + bucket_ms - 1) / bucket_ms)
        .unwrap_or(1)
        .max(1);
    let slot_of = |at: i64| {
        usize::try_from((at - to_ms(from)) / bucket_ms)
            .unwrap_or(0)
            .min(slots - 1)
    };
    let mut levels: BTreeMap<String, (u32, usize)> = BTreeMap::new();
    let mut series: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (feature, level) in before {
        series.insert(feature.clone(), vec![level; slots]);
        levels.insert(feature, (level, 0));
    }
    let mut refusals: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for row in rows {
        if !row.event.moves_seats() {
            let code = row.code.unwrap_or_else(|| "UNKNOWN".into());
            *refusals
                .entry(row.feature)
                .or_default()
                .entry(code)
                .or_insert(0) += 1;
            continue;
        }
        let slot = slot_of(row.at);
        let in_use = u32::try_from(row.in_use).unwrap_or(0);
        let line = series
            .entry(row.feature.clone())
            .or_insert_with(|| vec![0; slots]);
        let (level, since) = levels.entry(row.feature).or_insert((0, 0));
        // The level held from its slot up to this one; then this event's level.
        for value in line.iter_mut().take(slot).skip(*since) {
            *value = *level;
        }
        line[slot] = line[slot].max(*level).max(in_use);
        *level = in_use;
        *since = slot + 1;
    }
    for (feature, (level, since)) in levels {
        if let Some(line) = series.get_mut(&feature) {
            for value in line.iter_mut().skip(since) {
                *value = level;
            }
        }
    }
    Ok(Usage {
        from,
        to: now,
        bucket_minutes: bucket_ms / 60_000,
        series,
        refusals,
    })
}

impl Usage {
    /// The chart of these seats in use (the manager page's), with each feature's seats
    /// now as its seat line: an SVG document.
    pub fn chart_svg(&self, seats: &BTreeMap<String, u32>) -> Result<String, Error> {
        let bucket = Duration::minutes(self.bucket_minutes.max(1));
        let mut names: Vec<&String> = self.series.keys().collect();
        // Features licensed but never used still show their seat line.
        names.extend(seats.keys().filter(|f| !self.series.contains_key(*f)));
        names.sort();
        let series: Vec<solme_charts::Series> = names
            .into_iter()
            .map(|name| {
                let values = self.series.get(name).cloned().unwrap_or_else(|| vec![0]);
                solme_charts::Series {
                    name: name.clone(),
                    points: (0i32..)
                        .zip(values)
                        .map(|(k, value)| solme_charts::Point {
                            at: self.from + bucket * k,
                            value,
                            seats: seats.get(name).copied(),
                        })
                        .collect(),
                }
            })
            .collect();
        let mut chart = solme_charts::Chart::new(self.from, self.to, &series);
        chart.value_words = "in use at most";
        solme_charts::render(&chart)
            .map_err(|e| Error::Internal(anyhow::anyhow!("drawing the usage chart: {e}")))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = crate::wording::time_text;
        writeln!(f, "Usage from {} to {}", day(self.from), day(self.to))?;
        if self.features.is_empty() {
            return writeln!(f, "  nothing was checked out or refused in this period");
        }
        for feat in &self.features {
            writeln!(f)?;
            writeln!(f, "{}", feat.feature)?;
            writeln!(f, "  peak in use:   {}", feat.peak_in_use)?;
            writeln!(f, "  seat-hours:    {:.2}", feat.seat_hours)?;
            writeln!(
                f,
                "  check-outs:    {} ({} after waiting in the queue), borrows: {}",
                feat.check_outs + feat.queue_granted,
                feat.queue_granted,
                feat.borrows
            )?;
            if feat.refusals.is_empty() {
                writeln!(f, "  refusals:      none")?;
            } else {
                let list: Vec<String> = feat
                    .refusals
                    .iter()
                    .map(|(code, n)| format!("{code} {n}"))
                    .collect();
                writeln!(f, "  refusals:      {}", list.join(", "))?;
            }
            if !feat.busiest_users.is_empty() {
                let list: Vec<String> = feat
                    .busiest_users
                    .iter()
                    .map(|u| format!("{} ({:.2} h)", u.user, u.seat_hours))
                    .collect();
                writeln!(f, "  busiest users: {}", list.join(", "))?;
            }
        }
        Ok(())
    }
}

impl Report {
    /// One line per feature, for spreadsheets.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "feature,peak_in_use,seat_hours,check_outs,borrows,queue_granted,refusals,busiest_users\n",
        );
        for feat in &self.features {
            let refusals: Vec<String> = feat
                .refusals
                .iter()
                .map(|(code, n)| format!("{code}={n}"))
                .collect();
            let users: Vec<String> = feat
                .busiest_users
                .iter()
                .map(|u| format!("{}={:.2}", u.user, u.seat_hours))
                .collect();
            out.push_str(&format!(
                "{},{},{:.2},{},{},{},{},{}\n",
                csv_field(&feat.feature),
                feat.peak_in_use,
                feat.seat_hours,
                feat.check_outs + feat.queue_granted,
                feat.borrows,
                feat.queue_granted,
                csv_field(&refusals.join(" ")),
                csv_field(&users.join(" ")),
            ));
        }
        out
    }
}

/// Quotes a CSV field when it needs it.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// Deletes report log rows older than `keep_days` and beyond the newest `keep_rows`.
pub fn prune(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
    keep_days: i64,
    keep_rows: i64,
) -> QueryResult<usize> {
    let old = diesel::delete(
        report_log::table.filter(report_log::at.lt(to_ms(now - Duration::days(keep_days)))),
    )
    .execute(conn)?;
    let newest: Option<i32> = report_log::table
        .select(diesel::dsl::max(report_log::id))
        .first(conn)?;
    let extra = match newest {
        Some(newest) if i64::from(newest) > keep_rows => {
            diesel::delete(report_log::table.filter(
                report_log::id.le(i32::try_from(i64::from(newest) - keep_rows).unwrap_or(0)),
            ))
            .execute(conn)?
        }
        _ => 0,
    };
    Ok(old + extra)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(at: i64, event: Event, in_use: i32) -> ReportRow {
        ReportRow {
            at,
            event,
            feature: "cad".into(),
            user: "alice".into(),
            host: "ws".into(),
            lease_id: Some("l1".into()),
            code: None,
            in_use,
            wait_ms: None,
            actor: None,
            reason: None,
        }
    }

    #[test]
    fn the_log_is_pruned_by_age_and_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::db::connect(dir.path()).unwrap();
        let now = Utc::now();
        let old = to_ms(now - Duration::days(10));
        let rows: Vec<ReportRow> = (0..10)
            .map(|i| row(old + i, Event::CheckOut, 1))
            .chain((0..10).map(|i| row(to_ms(now) + i, Event::CheckIn, 0)))
            .collect();
        diesel::insert_into(report_log::table)
            .values(&rows)
            .execute(&mut conn)
            .unwrap();
        assert_eq!(prune(&mut conn, now, 5, 1_000).unwrap(), 10, "the old ten");
        assert_eq!(
            prune(&mut conn, now, 5, 4).unwrap(),
            6,
            "all but the newest four"
        );
        let left: i64 = report_log::table.count().get_result(&mut conn).unwrap();
        assert_eq!(left, 4);
    }
}
