//! Reminder mails before the 366-day limit: which are due, what the mail gateway took,
//! and the per-customer switch.
//!
//! A reminder is due for a bound id (one with a valid-until) when the most urgent
//! threshold it has reached (30 days, 7 days, 1 day before valid-until, or valid-until
//! passed) has no row yet for that valid-until. [`claim`] records it, and the unique key
//! `(server_id, threshold, valid_until)` makes a second row impossible, even when two
//! processes claim at once. Nothing is kept in process memory: whichever replica the
//! gateway asks computes the same rows from the database and the clock.
//!
//! A pending row stops being due when the id synchronized (its valid-until moved), when
//! a more urgent threshold was reached before the gateway took it, or when the
//! customer's reminders were switched off: it is then `cancelled`, never mailed.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use shared_proto::admin_api::{
    AuditAction, Customer, DueReminder, Reminder, ReminderState, ReminderThreshold,
};
use shared_proto::validity::days_left;
use uuid::Uuid;

use super::audit;
use super::{customers as customer_store, parse_uuid, parse_word};
use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::{customer_emails, customers, reminders, servers};

/// Most reminders one claim returns; the rest come with the next claim.
pub const MAX_CLAIM: i64 = 100;

const PENDING: &str = ReminderState::Pending.as_str();
const HANDED: &str = ReminderState::Handed.as_str();
const CANCELLED: &str = ReminderState::Cancelled.as_str();

/// One stored reminder, as read.
#[derive(Queryable, Selectable)]
#[diesel(table_name = reminders)]
struct Row {
    id: String,
    server_id: String,
    threshold: String,
    valid_until: i64,
    state: String,
    created_at: i64,
    handed_at: Option<i64>,
    recipients: String,
}

fn to_view(row: Row) -> Result<Reminder, ApiError> {
    Ok(Reminder {
        id: parse_uuid(&row.id)?,
        server_id: parse_uuid(&row.server_id)?,
        threshold: parse_word(&row.threshold)?,
        valid_until: from_millis(row.valid_until),
        state: parse_word(&row.state)?,
        created_at: from_millis(row.created_at),
        handed_at: row.handed_at.map(from_millis),
        recipients: row
            .recipients
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Records the reminders that became due, cancels those no longer due, and returns the
/// pending ones (oldest first, at most [`MAX_CLAIM`]) with what their mails say.
pub fn claim(conn: &mut DbConnection, now: DateTime<Utc>) -> Result<Vec<DueReminder>, ApiError> {
    let now_ms = to_millis(now);
    let cutoff = to_millis(now + Duration::days(30));
    conn.transaction::<_, ApiError, _>(|conn| {
        // Bound ids within 30 days of their limit (or past it), of customers who want
        // reminders, with the thresholds already recorded for their current validity.
        let candidates: Vec<(String, i64)> = servers::table
            .inner_join(customers::table)
            .filter(customers::reminders_enabled.eq(true))
            .filter(servers::retired_at.is_null())
            .filter(servers::valid_until.le(cutoff))
            .select((servers::id, servers::valid_until.assume_not_null()))
            .load(conn)?;
        let recorded: HashSet<(String, String)> = reminders::table
            .inner_join(servers::table)
            .filter(servers::valid_until.le(cutoff))
            .filter(servers::valid_until.eq(reminders::valid_until.nullable()))
            .select((reminders::server_id, reminders::threshold))
            .load::<(String, String)>(conn)?
            .into_iter()
            .collect();
        for (server_id, valid_until) in candidates {
            let Some(threshold) = ReminderThreshold::most_urgent(valid_until, now_ms) else {
                continue;
            };
            if recorded.contains(&(server_id.clone(), threshold.as_str().to_owned())) {
                continue;
            }
            // Another process may record the same reminder at this moment: the unique
            // key keeps one, and the other insert changes nothing.
            let inserted = super::insert_unless_present(conn, |conn| {
                diesel::insert_into(reminders::table)
                    .values((
                        reminders::id.eq(Uuid::new_v4().to_string()),
                        reminders::server_id.eq(&server_id),
                        reminders::threshold.eq(threshold.as_str()),
                        reminders::valid_until.eq(valid_until),
                        reminders::state.eq(PENDING),
                        reminders::created_at.eq(now_ms),
                    ))
                    .execute(conn)
            })?;
            if inserted {
                log::info!(
                    "reminder due server_id={server_id} threshold={threshold} valid_until={}",
                    from_millis(valid_until).to_rfc3339()
                );
            }
        }

        // Every pending reminder with what decides whether it is still due.
        let pending: Vec<(Row, String, Option<i64>, String, bool)> = reminders::table
            .inner_join(servers::table.inner_join(customers::table))
            .filter(reminders::state.eq(PENDING))
            .select((
                Row::as_select(),
                servers::customer_id,
                servers::valid_until,
                customers::name,
                customers::reminders_enabled,
            ))
            .order((reminders::created_at.asc(), reminders::id.asc()))
            .load(conn)?;
        let mut due = Vec::new();
        for (row, customer_id, current_until, customer_name, enabled) in pending {
            let threshold: ReminderThreshold = parse_word(&row.threshold)?;
            let superseded = ReminderThreshold::most_urgent(row.valid_until, now_ms)
                .is_some_and(|reached| reached.urgency() > threshold.urgency());
            let why = if current_until != Some(row.valid_until) {
                Some("the id synchronized since")
            } else if !enabled {
                Some("the customer's reminders are switched off")
            } else if superseded {
                Some("a more urgent reminder replaced it")
            } else {
                None
            };
            if let Some(why) = why {
                let cancelled = diesel::update(
                    reminders::table
                        .filter(reminders::id.eq(&row.id))
                        .filter(reminders::state.eq(PENDING)),
                )
                .set(reminders::state.eq(CANCELLED))
                .execute(conn)?;
                if cancelled > 0 {
                    log::info!(
                        "reminder cancelled reminder={} server_id={} threshold={threshold}: {why}",
                        row.id,
                        row.server_id
                    );
                }
                continue;
            }
            if due.len() < usize::try_from(MAX_CLAIM).unwrap_or(100) {
                due.push((row, threshold, customer_id, customer_name));
            }
        }

        let customer_ids: Vec<String> = due.iter().map(|(_, _, c, _)| c.clone()).collect();
        let contacts = if customer_ids.is_empty() {
            HashMap::new()
        } else {
            customer_store::emails_by_customer(conn, Some(&customer_ids))?
        };
        due.into_iter()
            .map(|(row, threshold, customer_id, customer_name)| {
                Ok(DueReminder {
                    id: parse_uuid(&row.id)?,
                    server_id: parse_uuid(&row.server_id)?,
                    customer_id: parse_uuid(&customer_id)?,
                    contacts: contacts.get(&customer_id).cloned().unwrap_or_default(),
                    customer_name,
                    threshold,
                    valid_until: from_millis(row.valid_until),
                    days_left: days_left(from_millis(row.valid_until), now),
                })
            })
            .collect()
    })
}

/// Records that the mail gateway took reminder `id` into its outgoing spool, with the
/// audit entry. Marking it again changes nothing (the gateway retries after a crash).
/// A reminder cancelled after the gateway had claimed it is marked too: its mail left.
pub fn mark_handed(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    actor: &str,
    id: Uuid,
) -> Result<Reminder, ApiError> {
    conn.transaction::<_, ApiError, _>(|conn| {
        let row = get_row(conn, id)?;
        if row.state == HANDED {
            return to_view(row);
        }
        let customer_id: String = servers::table
            .find(&row.server_id)
            .select(servers::customer_id)
            .first(conn)?;
        let recipients: Vec<String> = customer_emails::table
            .filter(customer_emails::customer_id.eq(&customer_id))
            .select(customer_emails::email)
            .order(customer_emails::email)
            .load(conn)?;
        let recipients = recipients.join(",");
        // Conditional: two calls at once audit it once.
        let updated = diesel::update(
            reminders::table
                .filter(reminders::id.eq(id.to_string()))
                .filter(reminders::state.ne(HANDED)),
        )
        .set((
            reminders::state.eq(HANDED),
            reminders::handed_at.eq(Some(to_millis(now))),
            reminders::recipients.eq(&recipients),
        ))
        .execute(conn)?;
        let server_id = parse_uuid(&row.server_id)?;
        if updated > 0 {
            audit::record(conn, now, actor, AuditAction::ReminderHanded, Some(server_id), &format!(
                        "reminder {id}, {} before the limit of {}, mailed to {}",
                        row.threshold,
                        audit::date_or(Some(from_millis(row.valid_until)), "-"),
                        if recipients.is_empty() {
                            "no contact".to_owned()
                        } else {
                            recipients.replace(',', ", ")
                        }
                    ))?;
            log::info!(
                "reminder handed to the mail gateway reminder={id} server_id={server_id} threshold={}",
                row.threshold
            );
        }
        to_view(get_row(conn, id)?)
    })
}

fn get_row(conn: &mut DbConnection, id: Uuid) -> Result<Row, ApiError> {
    let row: Option<Row> = reminders::table
        .find(id.to_string())
        .select(Row::as_select())
        .first(conn)
        .optional()?;
    row.ok_or_else(|| ApiError::not_found(format!("no reminder {id}")))
}

/// The reminders recorded for the ids of a customer, newest first.
pub fn list_for_customer(
    conn: &mut DbConnection,
    customer_id: Uuid,
) -> Result<Vec<Reminder>, ApiError> {
    customer_store::get(conn, customer_id)?;
    let rows: Vec<Row> = reminders::table
        .inner_join(servers::table)
        .filter(servers::customer_id.eq(customer_id.to_string()))
        .select(Row::as_select())
        .order((reminders::created_at.desc(), reminders::id.asc()))
        .limit(1_000)
        .load(conn)?;
    rows.into_iter().map(to_view).collect()
}

/// Switches a customer's reminder mails on or off, with the audit entry; switching off
/// cancels the reminders not yet taken by the mail gateway.
pub fn set_enabled(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    operator: &str,
    customer_id: Uuid,
    enabled: bool,
) -> Result<Customer, ApiError> {
    conn.transaction::<_, ApiError, _>(|conn| {
        let customer = customer_store::get(conn, customer_id)?;
        if customer.reminders_enabled == enabled {
            return Ok(customer);
        }
        diesel::update(customers::table.find(customer_id.to_string()))
            .set(customers::reminders_enabled.eq(enabled))
            .execute(conn)?;
        let mut cancelled = 0;
        if !enabled {
            let ids: Vec<String> = servers::table
                .filter(servers::customer_id.eq(customer_id.to_string()))
                .select(servers::id)
                .load(conn)?;
            if !ids.is_empty() {
                cancelled = diesel::update(
                    reminders::table
                        .filter(reminders::server_id.eq_any(&ids))
                        .filter(reminders::state.eq(PENDING)),
                )
                .set(reminders::state.eq(CANCELLED))
                .execute(conn)?;
            }
        }
        let detail = if enabled {
            format!("customer {customer_id}, reminder mails switched on")
        } else {
            format!(
                "customer {customer_id}, reminder mails switched off, {cancelled} pending cancelled"
            )
        };
        audit::record(
            conn,
            now,
            operator,
            AuditAction::CustomerReminders,
            None,
            &detail,
        )?;
        customer_store::get(conn, customer_id)
    })
}
