//! Customers and their registered contact addresses.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use shared_proto::admin_api::AuditAction;
use uuid::Uuid;

use super::audit;
use super::{normalize_email, parse_uuid, required_line, MAX_EMAILS_PER_CUSTOMER, MAX_NAME};
use crate::db::{to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::{customer_emails, customers};
use shared_proto::admin_api::{Customer, NewCustomer};

pub fn create(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    operator: &str,
    new: &NewCustomer,
) -> Result<Customer, ApiError> {
    let name = required_line("name", &new.name, MAX_NAME)?;
    if new.emails.len() > MAX_EMAILS_PER_CUSTOMER {
        return Err(ApiError::malformed(format!(
            "at most {MAX_EMAILS_PER_CUSTOMER} addresses per customer"
        )));
    }
    let mut emails = new
        .emails
        .iter()
        .map(|e| normalize_email(e))
        .collect::<Result<Vec<_>, _>>()?;
    emails.sort();
    emails.dedup();
    let id = Uuid::new_v4();
    conn.transaction::<_, ApiError, _>(|conn| {
        diesel::insert_into(customers::table)
            .values((
                customers::id.eq(id.to_string()),
                customers::name.eq(&name),
                customers::created_at.eq(to_millis(now)),
            ))
            .execute(conn)?;
        for email in &emails {
            diesel::insert_into(customer_emails::table)
                .values((
                    customer_emails::customer_id.eq(id.to_string()),
                    customer_emails::email.eq(email),
                ))
                .execute(conn)?;
        }
        let detail = format!(
            "customer {id} named {name}, contacts {}",
            if emails.is_empty() {
                "none".to_owned()
            } else {
                emails.join(", ")
            }
        );
        audit::record(
            conn,
            now,
            operator,
            AuditAction::CustomerCreate,
            None,
            &detail,
        )
    })?;
    Ok(Customer {
        id,
        name,
        emails,
        reminders_enabled: true,
    })
}

pub fn get(conn: &mut DbConnection, id: Uuid) -> Result<Customer, ApiError> {
    let row: Option<(String, bool)> = customers::table
        .find(id.to_string())
        .select((customers::name, customers::reminders_enabled))
        .first(conn)
        .optional()?;
    let (name, reminders_enabled) =
        row.ok_or_else(|| ApiError::not_found(format!("no customer {id}")))?;
    let emails = customer_emails::table
        .filter(customer_emails::customer_id.eq(id.to_string()))
        .select(customer_emails::email)
        .order(customer_emails::email)
        .load(conn)?;
    Ok(Customer {
        id,
        name,
        emails,
        reminders_enabled,
    })
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<Customer>, ApiError> {
    let rows: Vec<(String, String, bool)> = customers::table
        .select((customers::id, customers::name, customers::reminders_enabled))
        .order((customers::name, customers::id))
        .load(conn)?;
    let mut emails = emails_by_customer(conn, None)?;
    rows.into_iter()
        .map(|(id, name, reminders_enabled)| {
            Ok(Customer {
                id: parse_uuid(&id)?,
                emails: emails.remove(&id).unwrap_or_default(),
                name,
                reminders_enabled,
            })
        })
        .collect()
}

/// The contacts of the customers `only` names (of every customer with `None`), by
/// customer id, each customer's sorted.
pub(super) fn emails_by_customer(
    conn: &mut DbConnection,
    only: Option<&[String]>,
) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let mut query = customer_emails::table
        .select((customer_emails::customer_id, customer_emails::email))
        .order(customer_emails::email)
        .into_boxed();
    if let Some(ids) = only {
        query = query.filter(customer_emails::customer_id.eq_any(ids));
    }
    let mut emails: HashMap<String, Vec<String>> = HashMap::new();
    for (customer, email) in query.load::<(String, String)>(conn)? {
        emails.entry(customer).or_default().push(email);
    }
    Ok(emails)
}

pub fn add_email(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    operator: &str,
    id: Uuid,
    email: &str,
) -> Result<Customer, ApiError> {
    let email = normalize_email(email)?;
    // The row and its audit entry commit together: a crash between them cannot leave
    // an unaudited address that a retry then finds present and returns silently.
    conn.transaction::<_, ApiError, _>(|conn| {
        let customer = get(conn, id)?;
        if customer.emails.contains(&email) {
            return Ok(customer);
        }
        if customer.emails.len() >= MAX_EMAILS_PER_CUSTOMER {
            return Err(ApiError::malformed(format!(
                "at most {MAX_EMAILS_PER_CUSTOMER} addresses per customer"
            )));
        }
        // Added concurrently by another request: nothing inserted and nothing to audit
        // (that request audits it).
        let inserted = super::insert_unless_present(conn, |conn| {
            diesel::insert_into(customer_emails::table)
                .values((
                    customer_emails::customer_id.eq(id.to_string()),
                    customer_emails::email.eq(&email),
                ))
                .execute(conn)
        })?;
        if inserted {
            let detail = format!("customer {id}, contact {email} added");
            audit::record(
                conn,
                now,
                operator,
                AuditAction::CustomerAddEmail,
                None,
                &detail,
            )?;
        }
        get(conn, id)
    })
}

/// Every registered contact address of the customer owning `server_id`, sorted
/// (none for an unknown id).
pub fn contacts_of_server(
    conn: &mut DbConnection,
    server_id: Uuid,
) -> Result<Vec<String>, ApiError> {
    use crate::schema::servers;
    let customer = servers::table
        .find(server_id.to_string())
        .select(servers::customer_id);
    Ok(customer_emails::table
        .filter(customer_emails::customer_id.eq_any(customer))
        .select(customer_emails::email)
        .order(customer_emails::email)
        .load(conn)?)
}

/// Whether `email` is a registered contact of the customer owning `server_id`.
/// Unknown id → `UNKNOWN_SERVER_ID`; known id, other sender → `UNAUTHORIZED`.
pub fn check_contact(
    conn: &mut DbConnection,
    server_id: Uuid,
    email: &str,
) -> Result<(), ApiError> {
    use crate::schema::servers;
    let email = normalize_email(email).map_err(|_| {
        ApiError::SenderNotRegistered(format!(
            "{email:?} is not a registered contact address of this license server's customer"
        ))
    })?;
    let customer: Option<String> = servers::table
        .find(server_id.to_string())
        .select(servers::customer_id)
        .first(conn)
        .optional()?;
    let customer = customer.ok_or_else(|| super::unknown_server(server_id))?;
    let registered: i64 = customer_emails::table
        .filter(customer_emails::customer_id.eq(&customer))
        .filter(customer_emails::email.eq(&email))
        .count()
        .get_result(conn)?;
    if registered == 0 {
        return Err(ApiError::SenderNotRegistered(format!(
            "{email} is not a registered contact address of the customer that owns license \
             server id {server_id}; send from a registered address, or ask Solme to register this one"
        )));
    }
    Ok(())
}
