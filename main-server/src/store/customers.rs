//! Customers and their registered contact addresses.
//!
//! An address belongs to one customer (a unique key on `customer_emails.email`):
//! reminders and key-clear notices go to every contact of an id's customer, so an
//! address on two customers would carry one company's notices to another. A customer
//! that has contacts keeps at least one. A second customer of the same name is
//! usually a slip (the same company typed twice) and needs the operator's
//! confirmation.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::expression::SqlLiteral;
use diesel::prelude::*;
use diesel::sql_types::Text;
use shared_proto::admin_api::AuditAction;
use uuid::Uuid;

use super::audit;
use super::{
    normalize_email, parse_uuid, parse_word, required_line, MAX_EMAILS_PER_CUSTOMER, MAX_NAME,
};
use crate::db::{to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::{customer_emails, customers};
use shared_proto::admin_api::{CopyPolicy, Customer, CustomerRename, NewCustomer};
use shared_proto::ErrorCode;

diesel::define_sql_function! {
    /// Lower-case text (SQLite's and PostgreSQL's `lower`), to compare names.
    fn lower(text: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

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
        if !new.confirm_duplicate_name {
            refuse_duplicate_name(conn, &name, None)?;
        }
        for email in &emails {
            refuse_contact_of_another(conn, email, None)?;
        }
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
                .execute(conn)
                // Registered for another customer since the check above.
                .map_err(|e| contact_conflict(e, email))?;
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
        copy_policy: CopyPolicy::default_policy(),
    })
}

pub fn get(conn: &mut DbConnection, id: Uuid) -> Result<Customer, ApiError> {
    let row: Option<(String, bool, String)> = customers::table
        .find(id.to_string())
        .select((
            customers::name,
            customers::reminders_enabled,
            customers::copy_policy,
        ))
        .first(conn)
        .optional()?;
    let (name, reminders_enabled, copy_policy) =
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
        copy_policy: parse_word(&copy_policy)?,
    })
}

/// Customers per page of the list when the caller names no limit (as the id lists).
pub const DEFAULT_PAGE: u32 = 100;
/// Largest page of the list (as the id lists): the registry may hold 100,000 customers.
pub const MAX_PAGE: u32 = 1_000;

/// What [`list`] returns: at most `limit` customers (default [`DEFAULT_PAGE`], at most
/// [`MAX_PAGE`]) after the customer `after` (the last of the previous page), only those
/// whose name starts with `name` (ignoring case) if given.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub limit: Option<u32>,
    pub after: Option<Uuid>,
    pub name: Option<String>,
}

/// One page of customers, by name ignoring case, then id (see [`ListFilter`]). Each page
/// is a keyset query on the index `customers_name (lower(name), id)`, and a name search
/// is a range of it, so neither grows with the registry; a page shorter than the limit
/// is the last.
pub fn list(conn: &mut DbConnection, filter: &ListFilter) -> Result<Vec<Customer>, ApiError> {
    let limit = match filter.limit.unwrap_or(DEFAULT_PAGE) {
        0 => return Err(ApiError::malformed("limit must be at least 1")),
        n if n > MAX_PAGE => {
            return Err(ApiError::malformed(format!(
                "limit must be at most {MAX_PAGE}; page with `after`"
            )))
        }
        n => i64::from(n),
    };
    // No name starts with a space; one at the end is part of the prefix.
    let search = match filter.name.as_deref().map(str::trim_start) {
        None | Some("") => None,
        Some(text) if text.chars().count() > MAX_NAME => {
            return Err(ApiError::malformed(format!(
                "a name search has at most {MAX_NAME} characters"
            )))
        }
        Some(text) if text.chars().any(char::is_control) => {
            return Err(ApiError::malformed("a name search is one line of text"))
        }
        // Lower-cased by the database, as the names in the index are.
        Some(text) => Some(diesel::select(lower(text)).get_result::<String>(conn)?),
    };
    let cursor = match filter.after {
        None => None,
        Some(after) => {
            let key: Option<String> = customers::table
                .find(after.to_string())
                .select(name_key(conn))
                .first(conn)
                .optional()?;
            let key = key.ok_or_else(|| {
                ApiError::not_found(format!("no customer {after} to continue the list after"))
            })?;
            Some((key, after.to_string()))
        }
    };
    let mut query = customers::table
        .select((
            customers::id,
            customers::name,
            customers::reminders_enabled,
            customers::copy_policy,
        ))
        .order((name_key(conn).asc(), customers::id.asc()))
        .limit(limit)
        .into_boxed();
    if let Some(prefix) = search {
        if let Some(end) = prefix_end(&prefix) {
            query = query.filter(name_key(conn).lt(end));
        }
        query = query.filter(name_key(conn).ge(prefix));
    }
    if let Some((key, id)) = cursor {
        // `key >=` starts the index range; the rest skips the few rows of that key
        // the previous page showed.
        query = query
            .filter(name_key(conn).ge(key.clone()))
            .filter(name_key(conn).gt(key).or(customers::id.gt(id)));
    }
    let rows: Vec<(String, String, bool, String)> = query.load(conn)?;
    let ids: Vec<String> = rows.iter().map(|row| row.0.clone()).collect();
    let mut emails = emails_by_customer(conn, Some(&ids))?;
    rows.into_iter()
        .map(|(id, name, reminders_enabled, copy_policy)| {
            Ok(Customer {
                id: parse_uuid(&id)?,
                emails: emails.remove(&id).unwrap_or_default(),
                name,
                reminders_enabled,
                copy_policy: parse_word(&copy_policy)?,
            })
        })
        .collect()
}

/// The customer list's order and search key: the name in lower case, compared byte by
/// byte, as the index `customers_name` holds it (SQLite compares so by default;
/// PostgreSQL is told to, whatever the database's locale, see its migration
/// `customer_names_bytewise`).
fn name_key(conn: &DbConnection) -> SqlLiteral<Text> {
    match conn {
        DbConnection::Postgres(_) => sql(r#"lower(customers.name) COLLATE "C""#),
        DbConnection::Sqlite(_) => sql("lower(customers.name)"),
    }
}

/// The least text above every text starting with `prefix`, byte by byte (UTF-8 orders
/// as its code points do): `prefix` with its last character replaced by the next one.
/// None when there is none (an empty prefix, or only the last possible characters).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next character, past the surrogates (no characters) if need be.
        if let Some(next) = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
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
        refuse_contact_of_another(conn, &email, Some(id))?;
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
        if !inserted {
            // The unique key holds it: added to this customer by a concurrent request
            // (that request audits it), or to another one since the check above.
            refuse_contact_of_another(conn, &email, Some(id))?;
        }
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

/// Gives the customer `id` a new name; audited with the old and the new one.
pub fn rename(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    operator: &str,
    id: Uuid,
    change: &CustomerRename,
) -> Result<Customer, ApiError> {
    let name = required_line("name", &change.name, MAX_NAME)?;
    conn.transaction::<_, ApiError, _>(|conn| {
        let customer = get(conn, id)?;
        if customer.name == name {
            return Ok(customer);
        }
        if !change.confirm_duplicate_name {
            refuse_duplicate_name(conn, &name, Some(id))?;
        }
        diesel::update(customers::table.find(id.to_string()))
            .set(customers::name.eq(&name))
            .execute(conn)?;
        let detail = format!("customer {id} renamed from {} to {name}", customer.name);
        audit::record(
            conn,
            now,
            operator,
            AuditAction::CustomerRename,
            None,
            &detail,
        )?;
        get(conn, id)
    })
}

/// Removes the contact address `email` of the customer `id`; refused for its last one.
/// Removing an address the customer does not have is `NOT_FOUND`.
pub fn remove_email(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    operator: &str,
    id: Uuid,
    email: &str,
) -> Result<Customer, ApiError> {
    let email = normalize_email(email)?;
    conn.transaction::<_, ApiError, _>(|conn| {
        // Writing the customer's row first takes its lock on PostgreSQL (SQLite has
        // one writer anyway), so two removals at once cannot each see the other's
        // address still there and leave the customer with none.
        let found = diesel::update(customers::table.find(id.to_string()))
            .set(customers::name.eq(customers::name))
            .execute(conn)?;
        if found == 0 {
            return Err(ApiError::not_found(format!("no customer {id}")));
        }
        let customer = get(conn, id)?;
        if !customer.emails.contains(&email) {
            return Err(ApiError::not_found(format!(
                "{email} is not a contact address of {} ({id})",
                customer.name
            )));
        }
        if customer.emails.len() == 1 {
            return Err(ApiError::refused(
                ErrorCode::LastContact,
                format!(
                    "{email} is the last contact address of {}: its reminders and key-clear \
                     notices would reach nobody; add another address first",
                    customer.name
                ),
            ));
        }
        diesel::delete(
            customer_emails::table
                .filter(customer_emails::customer_id.eq(id.to_string()))
                .filter(customer_emails::email.eq(&email)),
        )
        .execute(conn)?;
        let detail = format!("customer {id}, contact {email} removed");
        audit::record(
            conn,
            now,
            operator,
            AuditAction::CustomerRemoveEmail,
            None,
            &detail,
        )?;
        get(conn, id)
    })
}

/// `CONFIRMATION_REQUIRED` when a customer other than `except` has `name` (ignoring
/// case).
fn refuse_duplicate_name(
    conn: &mut DbConnection,
    name: &str,
    except: Option<Uuid>,
) -> Result<(), ApiError> {
    let mut query = customers::table
        .filter(lower(customers::name).eq(name.to_lowercase()))
        .select(customers::id)
        .into_boxed();
    if let Some(except) = except {
        query = query.filter(customers::id.ne(except.to_string()));
    }
    let others: Vec<String> = query.limit(1).load(conn)?;
    match others.first() {
        None => Ok(()),
        Some(other) => Err(ApiError::refused(
            ErrorCode::ConfirmationRequired,
            format!(
                "a customer named {name} exists already ({other}); if this is another \
                 company of the same name, confirm the duplicate name"
            ),
        )),
    }
}

/// `CONTACT_IN_USE` when `email` is a contact of a customer other than `except`.
fn refuse_contact_of_another(
    conn: &mut DbConnection,
    email: &str,
    except: Option<Uuid>,
) -> Result<(), ApiError> {
    let owner: Option<(String, String)> = customer_emails::table
        .inner_join(customers::table)
        .filter(customer_emails::email.eq(email))
        .select((customers::id, customers::name))
        .first(conn)
        .optional()?;
    match owner {
        Some((owner, _)) if Some(owner.as_str()) == except.map(|id| id.to_string()).as_deref() => {
            Ok(())
        }
        Some((owner, name)) => Err(contact_in_use(email, &name, &owner)),
        None => Ok(()),
    }
}

fn contact_in_use(email: &str, owner_name: &str, owner_id: &str) -> ApiError {
    ApiError::refused(
        ErrorCode::ContactInUse,
        format!(
            "{email} is already a contact address of {owner_name} ({owner_id}); one address \
             belongs to one customer, or reminders and key-clear notices would reach the \
             wrong company"
        ),
    )
}

/// A contact insert's failure: the unique key on the address is `CONTACT_IN_USE`.
fn contact_conflict(error: diesel::result::Error, email: &str) -> ApiError {
    if super::is_unique_violation(&error) {
        ApiError::refused(
            ErrorCode::ContactInUse,
            format!("{email} was registered for another customer at the same moment"),
        )
    } else {
        error.into()
    }
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
