//! The customer portal's storage: sign-in links, portal sessions, the rate limits of
//! link requests, and what a signed-in contact may read and ask for.
//!
//! No secret is stored. A link's token is derived from Solme's signing key and the
//! link's id ([`link_token`]); the database keeps its SHA-256 only, and the claim of the
//! mail gateway derives the same token again, so a gateway that crashed after staging a
//! mail and claims again stages nothing new and loses nothing. A session's secret is
//! random and kept as its SHA-256, like the console's.
//!
//! Invariants held by the database, not by checks in Rust: a link is used once (one
//! conditional `UPDATE … WHERE used_at IS NULL AND expires_at > now`), a link is handed
//! over and audited once (`WHERE handed_at IS NULL`), and the rate limits count rows
//! that every replica writes, so they hold across replicas.
//!
//! Deliberately absent: anything that tells a caller whether an address is registered.
//! A link request for an unknown address is counted by the limits like any other and
//! answered the same; only a known address gets a link row.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use shared_proto::admin_api::{
    AuditAction, DuePortalLink, KeyClearRequest, NewKeyClearRequest, SenderAuth, Server,
};
use shared_proto::{ErrorCode, SolmeSigningKey};
use uuid::Uuid;

use super::{audit, key_clear, normalize_email, parse_uuid, servers, unknown_server};
use crate::db::{from_millis, to_millis, DbConnection};
use crate::error::ApiError;
use crate::schema::{
    customer_emails, customers, key_clear_requests, portal_link_requests, portal_links,
    portal_sessions, servers as servers_table,
};

/// How long a mailed sign-in link works.
pub const LINK_MINUTES: i64 = 15;
/// How long a portal session lasts from sign-in (a working day).
pub const SESSION_HOURS: i64 = 8;
/// Link requests one address may make per [`ADDRESS_WINDOW_MINUTES`].
pub const MAX_LINKS_PER_ADDRESS: i64 = 3;
pub const ADDRESS_WINDOW_MINUTES: i64 = 15;
/// Link requests one client address may make per hour (a whole office behind one
/// address may sign in at once; a script trying addresses may not).
pub const MAX_LINKS_PER_PEER: i64 = 20;
/// Links one claim returns at most; the rest come with the next claim.
const MAX_CLAIM: i64 = 100;
/// The label of link tokens derived from Solme's key (never reused for anything else).
const LINK_LABEL: &str = "solme portal sign-in link";
/// Longest presented secret worth hashing.
const MAX_SECRET: usize = 256;
/// What the detail of a portal key-clear request says its sender's proof is.
pub const SIGNED_IN_DETAIL: &str = "signed in to the portal";

/// A signed-in contact, as every portal page knows them.
#[derive(Clone, Debug)]
pub struct Contact {
    pub email: String,
    pub customer_id: Uuid,
    pub customer_name: String,
    /// The stored form of the session's secret (for sign-out).
    pub secret_hash: String,
}

/// Lower-case hex SHA-256 of a secret: what is stored of tokens and session secrets.
pub fn secret_hash(secret: &str) -> String {
    shared_proto::hex::encode(&openssl::sha::sha256(secret.as_bytes()))
}

/// The sign-in token of link `id`: the same in every process holding Solme's key.
pub fn link_token(key: &SolmeSigningKey, id: Uuid) -> Result<String, ApiError> {
    let secret = key
        .derive_secret(LINK_LABEL, id.as_bytes())
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("deriving a link token")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret))
}

/// A new random session secret (32 bytes, URL-safe base64).
fn new_session_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    openssl::rand::rand_bytes(&mut bytes).map_err(|e| {
        ApiError::Internal(anyhow::Error::new(e).context("drawing a session secret"))
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn rate_limited(message: &str) -> ApiError {
    ApiError::refused(ErrorCode::RateLimited, message)
}

/// Records a request for a sign-in link for `address` from client address `peer`, and
/// when the address is a registered contact, a link for the gateway to mail. Refuses
/// with `RATE_LIMITED` beyond the limits, whether or not the address is known.
pub fn request_link(
    conn: &mut DbConnection,
    key: &SolmeSigningKey,
    now: DateTime<Utc>,
    address: &str,
    peer: &str,
) -> Result<(), ApiError> {
    let email = normalize_email(address)?;
    let address_hash = secret_hash(&email);
    let now_ms = to_millis(now);
    let created = conn.transaction::<_, ApiError, _>(|conn| {
        // Rows older than the longest window count for nothing any more.
        diesel::delete(
            portal_link_requests::table
                .filter(portal_link_requests::at.lt(to_millis(now - Duration::hours(1)))),
        )
        .execute(conn)?;
        let by_peer: i64 = portal_link_requests::table
            .filter(portal_link_requests::peer.eq(peer))
            .count()
            .get_result(conn)?;
        if by_peer >= MAX_LINKS_PER_PEER {
            return Err(rate_limited(
                "too many sign-in links were asked for from your network in the last hour; \
                 try again later",
            ));
        }
        let since = to_millis(now - Duration::minutes(ADDRESS_WINDOW_MINUTES));
        let by_address: i64 = portal_link_requests::table
            .filter(portal_link_requests::address_hash.eq(&address_hash))
            .filter(portal_link_requests::at.ge(since))
            .count()
            .get_result(conn)?;
        if by_address >= MAX_LINKS_PER_ADDRESS {
            return Err(rate_limited(
                "too many sign-in links were asked for this address in the last 15 minutes; \
                 use the newest link you received, or try again later",
            ));
        }
        diesel::insert_into(portal_link_requests::table)
            .values((
                portal_link_requests::id.eq(Uuid::new_v4().to_string()),
                portal_link_requests::address_hash.eq(&address_hash),
                portal_link_requests::peer.eq(peer),
                portal_link_requests::at.eq(now_ms),
            ))
            .execute(conn)?;
        let customer: Option<String> = customer_emails::table
            .filter(customer_emails::email.eq(&email))
            .select(customer_emails::customer_id)
            .first(conn)
            .optional()?;
        let Some(customer_id) = customer else {
            return Ok(None);
        };
        let id = Uuid::new_v4();
        // The token's hash only; the gateway's claim derives the token again.
        let token_hash = secret_hash(&link_token(key, id)?);
        diesel::insert_into(portal_links::table)
            .values((
                portal_links::id.eq(id.to_string()),
                portal_links::customer_id.eq(&customer_id),
                portal_links::email.eq(&email),
                portal_links::token_hash.eq(token_hash),
                portal_links::created_at.eq(now_ms),
                portal_links::expires_at.eq(to_millis(now + Duration::minutes(LINK_MINUTES))),
            ))
            .execute(conn)?;
        Ok(Some(id))
    })?;
    if let Some(id) = created {
        log::info!("portal sign-in link recorded link={id} to={email}");
    }
    Ok(())
}

/// The links the mail gateway is to mail: not handed over yet, not used, not expired
/// (oldest first, at most 100), each with its token derived again.
pub fn claim_links(
    conn: &mut DbConnection,
    key: &SolmeSigningKey,
    now: DateTime<Utc>,
) -> Result<Vec<DuePortalLink>, ApiError> {
    let rows: Vec<(String, String, String, i64)> = portal_links::table
        .inner_join(customers::table)
        .filter(portal_links::handed_at.is_null())
        .filter(portal_links::used_at.is_null())
        .filter(portal_links::expires_at.gt(to_millis(now)))
        .select((
            portal_links::id,
            portal_links::email,
            customers::name,
            portal_links::expires_at,
        ))
        .order((portal_links::created_at.asc(), portal_links::id.asc()))
        .limit(MAX_CLAIM)
        .load(conn)?;
    rows.into_iter()
        .map(|(id, to, customer_name, expires_at)| {
            let id = parse_uuid(&id)?;
            Ok(DuePortalLink {
                id,
                to,
                customer_name,
                path: format!("/portal/link?token={}", link_token(key, id)?),
                expires_at: from_millis(expires_at),
            })
        })
        .collect()
}

/// Records that the mail gateway staged link `id`'s mail, with the audit entry (once:
/// marking it again changes nothing).
pub fn mark_link_handed(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    actor: &str,
    id: Uuid,
) -> Result<(), ApiError> {
    conn.transaction::<_, ApiError, _>(|conn| {
        let row: Option<(String, i64)> = portal_links::table
            .find(id.to_string())
            .select((portal_links::email, portal_links::expires_at))
            .first(conn)
            .optional()?;
        let (email, expires_at) =
            row.ok_or_else(|| ApiError::not_found(format!("no portal link {id}")))?;
        let updated = diesel::update(
            portal_links::table
                .filter(portal_links::id.eq(id.to_string()))
                .filter(portal_links::handed_at.is_null()),
        )
        .set(portal_links::handed_at.eq(Some(to_millis(now))))
        .execute(conn)?;
        if updated > 0 {
            audit::record(
                conn,
                now,
                actor,
                AuditAction::PortalLinkHanded,
                None,
                &format!(
                    "portal sign-in link {id} mailed to {email}, valid until {}",
                    audit::date_or(Some(from_millis(expires_at)), "-")
                ),
            )?;
            log::info!("portal sign-in link handed to the mail gateway link={id} to={email}");
        }
        Ok(())
    })
}

/// Why a sign-in link did not sign anybody in (the page says which, with no secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// No link has this token (mistyped, or never issued).
    Unknown,
    /// It was used before: a link signs in once.
    Used,
    /// Its 15 minutes are over.
    Expired,
    /// Its address is no longer a registered contact.
    NotContact,
}

/// Uses the link whose token is `token` and opens a session for its contact; returns
/// the session's secret and until when it lasts. Audited (the contact is the actor).
pub fn sign_in(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    token: &str,
    peer: &str,
) -> Result<Result<(String, DateTime<Utc>), LinkRefusal>, ApiError> {
    if token.len() > MAX_SECRET {
        return Ok(Err(LinkRefusal::Unknown));
    }
    let hash = secret_hash(token);
    let now_ms = to_millis(now);
    let secret = new_session_secret()?;
    let expires_at = from_millis(to_millis(now + Duration::hours(SESSION_HOURS)));
    conn.transaction::<_, ApiError, _>(|conn| {
        let row: Option<(String, String, String, i64, Option<i64>)> = portal_links::table
            .filter(portal_links::token_hash.eq(&hash))
            .select((
                portal_links::id,
                portal_links::customer_id,
                portal_links::email,
                portal_links::expires_at,
                portal_links::used_at,
            ))
            .first(conn)
            .optional()?;
        let Some((id, customer_id, email, link_expires, used_at)) = row else {
            return Ok(Err(LinkRefusal::Unknown));
        };
        if used_at.is_some() {
            return Ok(Err(LinkRefusal::Used));
        }
        if link_expires <= now_ms {
            return Ok(Err(LinkRefusal::Expired));
        }
        // Conditional: of two uses at once, one signs in.
        let used = diesel::update(
            portal_links::table
                .filter(portal_links::id.eq(&id))
                .filter(portal_links::used_at.is_null())
                .filter(portal_links::expires_at.gt(now_ms)),
        )
        .set(portal_links::used_at.eq(Some(now_ms)))
        .execute(conn)?;
        if used == 0 {
            return Ok(Err(LinkRefusal::Used));
        }
        if !is_contact(conn, &customer_id, &email)? {
            return Ok(Err(LinkRefusal::NotContact));
        }
        diesel::delete(portal_sessions::table.filter(portal_sessions::expires_at.le(now_ms)))
            .execute(conn)?;
        diesel::insert_into(portal_sessions::table)
            .values((
                portal_sessions::secret_hash.eq(secret_hash(&secret)),
                portal_sessions::customer_id.eq(&customer_id),
                portal_sessions::email.eq(&email),
                portal_sessions::created_at.eq(now_ms),
                portal_sessions::expires_at.eq(to_millis(expires_at)),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            now,
            &email,
            AuditAction::PortalSignIn,
            None,
            &format!(
                "portal session of {email} (customer {customer_id}) by link {id} from {peer}, \
                 until {}",
                expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )?;
        log::info!("portal sign-in to={email} customer_id={customer_id} link={id}");
        Ok(Ok((secret.clone(), expires_at)))
    })
}

fn is_contact(conn: &mut DbConnection, customer_id: &str, email: &str) -> Result<bool, ApiError> {
    let n: i64 = customer_emails::table
        .filter(customer_emails::customer_id.eq(customer_id))
        .filter(customer_emails::email.eq(email))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// The contact a presented session secret belongs to, while the session lasts and its
/// address is still a registered contact of its customer.
pub fn authenticate(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    presented: &str,
) -> Result<Option<Contact>, ApiError> {
    if presented.len() > MAX_SECRET {
        return Ok(None);
    }
    let hash = secret_hash(presented);
    let row: Option<(String, String, String, String)> = portal_sessions::table
        .inner_join(customers::table)
        .filter(portal_sessions::secret_hash.eq(&hash))
        .filter(portal_sessions::expires_at.gt(to_millis(now)))
        .select((
            portal_sessions::email,
            portal_sessions::customer_id,
            customers::name,
            portal_sessions::secret_hash,
        ))
        .first(conn)
        .optional()?;
    let Some((email, customer_id, customer_name, stored)) = row else {
        return Ok(None);
    };
    // Found by equality already; what decides is a constant-time comparison.
    if stored.len() != hash.len() || !openssl::memcmp::eq(stored.as_bytes(), hash.as_bytes()) {
        return Ok(None);
    }
    if !is_contact(conn, &customer_id, &email)? {
        return Ok(None);
    }
    Ok(Some(Contact {
        email,
        customer_id: parse_uuid(&customer_id)?,
        customer_name,
        secret_hash: stored,
    }))
}

/// Ends the contact's session (sign-out), audited.
pub fn sign_out(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    contact: &Contact,
) -> Result<(), ApiError> {
    conn.transaction(|conn| {
        diesel::delete(portal_sessions::table.find(&contact.secret_hash)).execute(conn)?;
        audit::record(
            conn,
            now,
            &contact.email,
            AuditAction::PortalSignOut,
            None,
            &format!("portal session of {} signed out", contact.email),
        )
    })
}

/// The customer's ids with their licenses and validity, by id.
pub fn servers_of(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    contact: &Contact,
) -> Result<Vec<Server>, ApiError> {
    let ids: Vec<String> = servers_table::table
        .filter(servers_table::customer_id.eq(contact.customer_id.to_string()))
        .select(servers_table::id)
        .order(servers_table::id.asc())
        .limit(1_000)
        .load(conn)?;
    ids.iter()
        .map(|id| servers::get(conn, now, parse_uuid(id)?))
        .collect()
}

/// One of the customer's ids; another customer's id is refused exactly like an
/// unknown one, so that ids cannot be probed.
pub fn server_of(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    contact: &Contact,
    id: Uuid,
) -> Result<Server, ApiError> {
    match servers::get(conn, now, id) {
        Ok(server) if server.customer_id == contact.customer_id => Ok(server),
        Ok(_) => Err(unknown_server(id)),
        Err(e) => Err(e),
    }
}

/// The key-clear requests of the customer's ids (by mail or from the portal), newest
/// first.
pub fn key_clear_requests_of(
    conn: &mut DbConnection,
    contact: &Contact,
) -> Result<Vec<KeyClearRequest>, ApiError> {
    let ids: Vec<String> = key_clear_requests::table
        .inner_join(servers_table::table)
        .filter(servers_table::customer_id.eq(contact.customer_id.to_string()))
        .select(key_clear_requests::id)
        .order((
            key_clear_requests::created_at.desc(),
            key_clear_requests::id.asc(),
        ))
        .limit(200)
        .load(conn)?;
    ids.iter()
        .map(|id| key_clear::get(conn, parse_uuid(id)?))
        .collect()
}

/// Records a key-clear request for one of the customer's ids, from the signed-in
/// contact: an authenticated sender (the mailed link proved the address), so an
/// operator may approve it without the override.
pub fn request_key_clear(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    contact: &Contact,
    server_id: Uuid,
    reason: &str,
) -> Result<KeyClearRequest, ApiError> {
    server_of(conn, now, contact, server_id)?;
    let reason = super::required_line("reason", reason, super::MAX_REASON)?;
    let request = NewKeyClearRequest {
        server_id,
        sender: contact.email.clone(),
        // Unique like a mail's Message-ID, and says where the request came from.
        message_id: format!("<portal-{}@portal.solme.invalid>", Uuid::new_v4()),
        text: reason,
        sender_auth: SenderAuth::Authenticated,
        sender_auth_detail: SIGNED_IN_DETAIL.to_owned(),
    };
    key_clear::create(conn, now, &request).map(|(request, _)| request)
}

/// A mail Solme sent to the customer's contacts about one of its ids: a reminder of the
/// 366-day limit, or the notice of a decided key-pair clearing.
#[derive(Clone, Debug)]
pub struct SentMail {
    pub at: DateTime<Utc>,
    pub server_id: Uuid,
    /// What it said, in words.
    pub what: String,
    /// The addresses it went to (empty: every contact, not recorded one by one).
    pub to: Vec<String>,
}

/// The reminders and notices mailed to the customer's contacts, newest first (at most
/// 200).
pub fn mails_of(conn: &mut DbConnection, contact: &Contact) -> Result<Vec<SentMail>, ApiError> {
    use crate::schema::reminders;
    let customer = contact.customer_id.to_string();
    let reminders: Vec<(String, String, i64, Option<i64>, String)> = reminders::table
        .inner_join(servers_table::table)
        .filter(servers_table::customer_id.eq(&customer))
        .filter(reminders::handed_at.is_not_null())
        .select((
            reminders::server_id,
            reminders::threshold,
            reminders::valid_until,
            reminders::handed_at,
            reminders::recipients,
        ))
        .order(reminders::handed_at.desc())
        .limit(200)
        .load(conn)?;
    let notices: Vec<(String, String, Option<i64>, Option<String>)> = key_clear_requests::table
        .inner_join(servers_table::table)
        .filter(servers_table::customer_id.eq(&customer))
        .filter(key_clear_requests::notified.eq(true))
        .select((
            key_clear_requests::server_id,
            key_clear_requests::status,
            key_clear_requests::decided_at,
            key_clear_requests::reason,
        ))
        .order(key_clear_requests::decided_at.desc())
        .limit(200)
        .load(conn)?;
    let mut mails = Vec::with_capacity(reminders.len() + notices.len());
    for (server_id, threshold, valid_until, handed_at, recipients) in reminders {
        let until = from_millis(valid_until).format("%Y-%m-%d");
        let what = if threshold == "passed" {
            format!("Reminder: synchronization was due by {until}; its licenses have stopped")
        } else {
            format!("Reminder: synchronize before {until} to keep the licenses working")
        };
        mails.push(SentMail {
            at: from_millis(handed_at.unwrap_or(valid_until)),
            server_id: parse_uuid(&server_id)?,
            what,
            to: recipients
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        });
    }
    for (server_id, status, decided_at, reason) in notices {
        let Some(decided_at) = decided_at else {
            continue;
        };
        let what = match status.as_str() {
            "approved" => "Notice: the key-pair clearing was approved".to_owned(),
            _ => format!(
                "Notice: the key-pair clearing was rejected ({})",
                reason.as_deref().unwrap_or("no reason given")
            ),
        };
        mails.push(SentMail {
            at: from_millis(decided_at),
            server_id: parse_uuid(&server_id)?,
            what,
            to: Vec::new(),
        });
    }
    mails.sort_by_key(|mail| std::cmp::Reverse(mail.at));
    mails.truncate(200);
    Ok(mails)
}
