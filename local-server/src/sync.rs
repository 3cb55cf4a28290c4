//! Synchronization with the main server: building the signed sync request (for both
//! channels), the direct exchange over HTTPS with fallback between endpoints, the lock
//! that keeps two synchronizations from running at once, and the record of attempts.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use openssl::ssl::SslConnector;
use serde::Serialize;
use shared_proto::files::{self, Access, Existing};
use shared_proto::messages::MESSAGE_VERSION;
use shared_proto::{sync_data, ApiError, ErrorCode, FeatureUsage, ServerIdentity, SyncRequest};
use uuid::Uuid;

use crate::config::{Endpoint, Settings};
use crate::db::{self, to_ms};
use crate::error::Error;
use crate::import::{self, Changes, Channel};
use crate::installation::Installation;
use crate::leases::{license_from_row, seats_valid_now};
use crate::pair::store::Role;
use crate::proxy::{ProxySettings, TunnelConnector, TunnelError};
use crate::schema::{sync_history, sync_state, usage_reported};

/// A synchronization that has not released its lock after this long is taken to have
/// died with its process.
const SYNC_LOCK_MINUTES: i64 = 5;
/// Largest answer read from the main server.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Time allowed for one request to the main server once connected.
pub const REQUEST_TIMEOUT: StdDuration = StdDuration::from_secs(30);

/// The TLS context pinned to the configured CA: only certificates it issued are
/// accepted. Built once per process (OpenSSL 3 makes each new context costly).
pub fn tls_connector(ca_pem: &str) -> anyhow::Result<SslConnector> {
    shared_proto::tls::pinned_connector(ca_pem.as_bytes()).context("reading the pinned CA")
}

/// An HTTPS client for the main server (TLS pinned, proxy-aware). awc clients live on
/// one thread: build one per thread that needs it, from a shared [`SslConnector`].
pub fn http_client(tls: SslConnector, proxy: ProxySettings) -> awc::Client {
    let connector = awc::Connector::new()
        .connector(TunnelConnector::new(proxy))
        .openssl(tls)
        .timeout(crate::proxy::CONNECT_TIMEOUT * 3)
        .handshake_timeout(StdDuration::from_secs(10));
    awc::Client::builder()
        .connector(connector)
        .timeout(REQUEST_TIMEOUT)
        .disable_redirects()
        .finish()
}

/// What a successful direct synchronization did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub endpoint: String,
    pub changes: Changes,
}

/// The usage summary since the previous sync (or since the report log began), from
/// the report log: per feature, peak in use, seat-hours and refusals by code, with the
/// seats held now. Features without any report row are left out, so a server whose log
/// is empty sends an empty summary. Bounded as `shared_proto::messages::check_usage`
/// demands (the busiest features first when there are too many).
pub fn usage_since(
    conn: &mut SqliteConnection,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Vec<FeatureUsage>, Error> {
    use shared_proto::messages::{MAX_USAGE_CODES, MAX_USAGE_FEATURES, MAX_USAGE_FEATURE_LEN};
    let from = since.unwrap_or(DateTime::UNIX_EPOCH).min(now);
    let report = crate::report::build(conn, from, now)?;
    let mut by_feature: HashMap<String, Vec<shared_proto::License>> = HashMap::new();
    for row in &db::load_licenses(conn)? {
        by_feature
            .entry(row.feature.clone())
            .or_default()
            .push(license_from_row(row));
    }
    let mut usage: Vec<FeatureUsage> = report
        .features
        .into_iter()
        .filter(|f| f.feature.len() <= MAX_USAGE_FEATURE_LEN && !f.feature.is_empty())
        .map(|f| {
            let seats_total = by_feature
                .get(&f.feature)
                .and_then(|ls| seats_valid_now(ls, now))
                .unwrap_or(0);
            let refusals = f
                .refusals
                .into_iter()
                .filter(|(code, _)| shared_proto::messages::check_usage_code(code))
                .take(MAX_USAGE_CODES)
                .collect();
            FeatureUsage {
                feature: f.feature,
                seats_total,
                peak_in_use: f.peak_in_use,
                seat_hours: f.seat_hours,
                refusals,
            }
        })
        .collect();
    if usage.len() > MAX_USAGE_FEATURES {
        usage.sort_by(|a, b| b.seat_hours.total_cmp(&a.seat_hours));
        usage.truncate(MAX_USAGE_FEATURES);
    }
    usage.sort_by(|a, b| a.feature.cmp(&b.feature));
    Ok(usage)
}

/// Where the usage of the next sync request begins: where the period of the last
/// request that left for Solme ended (an exported file, or a direct sync Solme answered).
/// Consecutive requests thus carry consecutive periods, whichever channel each takes and
/// however long a mail is on its way: use made between an export and the import of its
/// answer goes with the next request, and none goes with two. `None`: no request left
/// yet, the period begins with the report log.
pub fn usage_period_start(conn: &mut SqliteConnection) -> Result<Option<DateTime<Utc>>, Error> {
    let until: Option<i64> = usage_reported::table
        .select(usage_reported::until)
        .first(conn)
        .optional()?;
    Ok(until.map(db::from_ms))
}

/// Records that a request carrying the usage up to `until` left for Solme, so the next
/// request's period begins there. Never moves back (two answers may arrive out of order).
pub fn mark_usage_reported(conn: &mut SqliteConnection, until: DateTime<Utc>) -> Result<(), Error> {
    diesel::sql_query(
        "INSERT INTO usage_reported (id, until) VALUES (1, ?1) \
         ON CONFLICT (id) DO UPDATE SET until = MAX(until, excluded.until)",
    )
    .bind::<diesel::sql_types::BigInt, _>(to_ms(until))
    .execute(conn)?;
    Ok(())
}

/// Builds the signed sync request (a new request id each time). Its usage period is
/// marked as reported by the caller once the request has left ([`mark_usage_reported`]).
pub fn build_request(
    conn: &mut SqliteConnection,
    settings: &Settings,
    identity: &ServerIdentity,
    now: DateTime<Utc>,
) -> Result<(SyncRequest, String), Error> {
    // The counter moves in the transaction that reads what the request carries: two
    // requests built at once (a direct sync and an export) never share a number.
    let (counter, held_file_sha256, state, since, usage, borrows, standby_keys) = conn
        .immediate_transaction(|c| {
            let standby_keys = match crate::pair::store::load(c)? {
                Some(pair) if pair.role() == Role::Standby => {
                    return Err(Error::refused(
                        ErrorCode::WrongServer,
                        "this is a standby server: it holds a copy of its primary's license \
                         file, handed on by the primary; synchronize the primary",
                    ))
                }
                // The primary names its standby to Solme in every request.
                Some(pair) => Some(pair.peer_keys()?),
                None => None,
            };
            let (counter, held_file_sha256) = next_request_counter(c)?;
            let state = db::load_sync_state(c)?;
            let since = usage_period_start(c)?;
            let usage = usage_since(c, since, now)?;
            let borrows = crate::leases::inherited::outstanding(c, now)?;
            Ok::<_, Error>((
                counter,
                held_file_sha256,
                state,
                since,
                usage,
                borrows,
                standby_keys,
            ))
        })?;
    let request = SyncRequest {
        version: MESSAGE_VERSION,
        server_id: settings.server_id,
        request_id: Uuid::new_v4(),
        created_at: now,
        public_keys: identity.public_keys(),
        held_revision: state.revision,
        held_sequence: state.sequence,
        software_version: env!("CARGO_PKG_VERSION").to_owned(),
        usage_since: since,
        usage,
        held_file_sha256: state.sequence.and(held_file_sha256),
        request_counter: Some(counter),
        borrows: Some(borrows),
        standby_keys,
    };
    let text = sync_data::seal(identity, &request)?;
    Ok((request, text))
}

/// Counts one more request made by this installation and returns its number, with the
/// hash of the license file held.
fn next_request_counter(conn: &mut SqliteConnection) -> Result<(u64, Option<String>), Error> {
    let (made, held): (i64, Option<String>) = diesel::update(sync_history::table)
        .set(sync_history::requests_made.eq(sync_history::requests_made + 1))
        .returning((sync_history::requests_made, sync_history::held_file_sha256))
        .get_result(conn)?;
    let made = u64::try_from(made)
        .map_err(|_| anyhow::anyhow!("the database holds a negative request counter"))?;
    Ok((made, held))
}

/// `export-sync-data`: writes the sync data for the email channel.
pub fn export(ctx: &Installation, path: &Path) -> Result<String, Error> {
    // Before the request is built: a file that cannot be written must not mark its
    // period as reported.
    crate::destination::check(path, "the sync data")?;
    let mut conn = ctx.pool.get().context("opening the database")?;
    let settings = Settings::load(&ctx.data_dir, &mut conn)?;
    let now = ctx.clock.now();
    let (request, text) = build_request(&mut conn, &settings, &ctx.identity, now)?;
    files::write(path, text.as_bytes(), Access::Public, Existing::Replace)?;
    // The file may be mailed at any time from now on: its period is spoken for.
    mark_usage_reported(&mut conn, request.created_at)?;
    log::info!(
        "sync data exported server_id={} request_id={}",
        settings.server_id,
        request.request_id
    );
    Ok(format!(
        "Sync data for license server {} written to {}.\n\
         Email it as an attachment to {} from an address registered with Solme;\n\
         import the license file you get back with `local-server import-license-file FILE`.",
        settings.server_id,
        path.display(),
        crate::wording::licensing_address()
    ))
}

/// Takes the synchronization lock (shared by all processes on the data directory) and
/// returns the token that releases it.
fn acquire_lock(conn: &mut SqliteConnection, now: DateTime<Utc>) -> Result<String, Error> {
    let now_ms = to_ms(now);
    let token = Uuid::new_v4().to_string();
    let taken = diesel::update(sync_state::table)
        .filter(
            sync_state::sync_lock_until
                .is_null()
                .or(sync_state::sync_lock_until.lt(now_ms)),
        )
        .set((
            sync_state::sync_lock_until.eq(to_ms(now + Duration::minutes(SYNC_LOCK_MINUTES))),
            sync_state::sync_lock_owner.eq(&token),
        ))
        .execute(conn)?;
    if taken == 1 {
        Ok(token)
    } else {
        Err(Error::SyncBusy)
    }
}

/// Records the end of an attempt and releases the lock, if `token` still holds it (a
/// synchronization that outlived its lock must not release the next holder's).
fn finish_attempt(
    conn: &mut SqliteConnection,
    token: &str,
    now: DateTime<Utc>,
    error: Option<&str>,
    contacted: bool,
) -> Result<(), Error> {
    let now_ms = to_ms(now);
    conn.immediate_transaction(|c| {
        diesel::update(sync_state::table)
            .filter(sync_state::sync_lock_owner.eq(token))
            .set((
                sync_state::sync_lock_until.eq(None::<i64>),
                sync_state::sync_lock_owner.eq(None::<String>),
            ))
            .execute(c)?;
        diesel::update(sync_state::table)
            .set((
                sync_state::last_attempt_at.eq(now_ms),
                sync_state::last_attempt_error.eq(error),
            ))
            .execute(c)?;
        if error.is_some() {
            diesel::update(sync_state::table)
                .set(sync_state::consecutive_failures.eq(sync_state::consecutive_failures + 1))
                .execute(c)?;
        } else {
            diesel::update(sync_state::table)
                .set(sync_state::consecutive_failures.eq(0))
                .execute(c)?;
        }
        if contacted {
            diesel::update(sync_state::table)
                .set(sync_state::last_contact_at.eq(now_ms))
                .execute(c)?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(())
}

/// How one endpoint attempt ended.
enum Attempt {
    /// The main server answered with a license file.
    Answer(String),
    /// The main server answered with a refusal: no other endpoint will say otherwise.
    Refused(Error),
    /// Could not talk to it: try the next endpoint. `may_have_reached` is true when the
    /// request may have been delivered (and committed) before the exchange failed: the
    /// main server then rejects the same request id as a replay, so the next endpoint
    /// must get a fresh request.
    Unreachable { why: String, may_have_reached: bool },
    /// The main server answered with an error of its own (`INTERNAL` and the like): it
    /// may have committed the request, and another endpoint may fare better.
    ServerProblem(String),
}

impl Attempt {
    fn unreachable(why: impl Into<String>, may_have_reached: bool) -> Self {
        Self::Unreachable {
            why: why.into(),
            may_have_reached,
        }
    }
}

async fn post_sync(client: &awc::Client, endpoint: &Endpoint, body: String) -> Attempt {
    let url = format!("{}/api/v1/sync", endpoint.url());
    let sent = client
        .post(&url)
        .insert_header((awc::http::header::CONTENT_TYPE, "text/plain"))
        .send_body(body)
        .await;
    let mut response = match sent {
        Ok(r) => r,
        // A failure to connect never delivered the request; any later one (a timeout
        // waiting for the answer, a dropped connection) may have. The HTTP client also
        // reports a connection closed while waiting for the answer as a connect error
        // ("disconnected"): by then the request was sent.
        Err(e) => {
            use awc::error::{ConnectError, SendRequestError};
            let delivered = !matches!(
                e,
                SendRequestError::Connect(ref c)
                    if !matches!(c, ConnectError::Disconnected | ConnectError::H2(_))
            );
            return Attempt::unreachable(describe_send_error(&e), delivered);
        }
    };
    let status = response.status();
    let bytes = match response.body().limit(MAX_ANSWER_BYTES).await {
        Ok(b) => b,
        Err(e) => return Attempt::unreachable(format!("the answer was cut off: {e}"), true),
    };
    if status.is_success() {
        return match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Attempt::Answer(text),
            Err(_) => Attempt::Refused(Error::refused(
                ErrorCode::Malformed,
                "the main server's answer is not a license file",
            )),
        };
    }
    if let Ok(api) = serde_json::from_slice::<ApiError>(&bytes) {
        return match api.code {
            // The main server answered but has a problem of its own. It may have
            // committed part of the work, and another endpoint may be healthier.
            ErrorCode::Internal | ErrorCode::Unavailable => {
                Attempt::ServerProblem(format!("answered HTTP {status} {}", api.code))
            }
            _ => Attempt::Refused(Error::refused(api.code, refusal_text(api))),
        };
    }
    // Not our protocol's answer (a gateway or another program on the port): the main
    // server itself may or may not have been reached behind it.
    Attempt::unreachable(
        format!("answered HTTP {status}, not as Solme's main server"),
        status.is_server_error(),
    )
}

/// The main server's refusal, with what to do about it where its message does not say.
/// Decided on the code alone: the main server's message is for people, not a protocol
/// (its `ID_IN_USE` message already tells the customer to ask licensing@).
fn refusal_text(api: ApiError) -> String {
    let hint = match api.code {
        ErrorCode::UnknownServerId => {
            " — check the id given to `init` against the one Solme sent you"
        }
        ErrorCode::StaleRequest => " — this computer's clock is too far from Solme's; correct it",
        // On the internet channel a replay means an earlier attempt of ours reached the
        // main server without its answer coming back: a new attempt sends a new request.
        ErrorCode::ReplayedRequest => {
            return "the main server had already received this request (an earlier answer \
                    was lost on the way); synchronize again"
                .to_owned()
        }
        _ => "",
    };
    format!("{}{hint}", api.message)
}

/// Plain words for a failed request to one endpoint.
pub fn describe_send_error(err: &awc::error::SendRequestError) -> String {
    use awc::error::{ConnectError, SendRequestError as E};
    match err {
        E::Connect(ConnectError::Io(io)) => {
            // Our connector's typed failure travels inside the io::Error; any other
            // I/O failure at connect time happened in the TLS handshake.
            match io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<TunnelError>())
            {
                Some(tunnel) => tunnel.to_string(),
                None => shared_proto::tls::describe_tls_failure(chrono::Utc::now()),
            }
        }
        // OpenSSL's text names its source files: the words come from the verify code.
        E::Connect(ConnectError::SslError(_)) => {
            shared_proto::tls::describe_tls_failure(chrono::Utc::now())
        }
        E::Connect(ConnectError::Timeout) => "no answer in time".into(),
        E::Connect(ConnectError::Disconnected) => {
            "the connection was closed before the answer came".into()
        }
        E::Connect(ConnectError::Resolver(_) | ConnectError::NoRecords) => {
            "the server's name could not be resolved".into()
        }
        E::Connect(_) => "the connection could not be made".into(),
        E::Timeout => "no answer in time".into(),
        other => other.to_string(),
    }
}

/// A direct synchronization: one request tried on each endpoint in order until one
/// answers. The caller gives the client (built once per thread).
pub async fn sync_now(
    ctx: &Installation,
    client: &awc::Client,
    trigger: &str,
) -> Result<SyncReport, Error> {
    let now = ctx.clock.now();
    let settings = ctx.load_settings().await?;
    let token = ctx.db(move |c| acquire_lock(c, now)).await?;
    let result = exchange(ctx, client, &settings).await;
    let now = ctx.clock.now();
    let (error, contacted) = match &result {
        Ok(_) => (None, true),
        Err(e @ (Error::Network(_) | Error::SyncBusy)) => (Some(e.to_string()), false),
        Err(e) => (Some(e.to_string()), true),
    };
    let recorded = ctx
        .db(move |c| finish_attempt(c, &token, now, error.as_deref(), contacted))
        .await;
    if let Err(e) = recorded {
        log::error!("could not record the synchronization attempt: {e:#}");
    }
    match &result {
        Ok(report) => log::info!(
            "synchronized server_id={} trigger={trigger} endpoint={} sequence={}",
            settings.server_id,
            report.endpoint,
            report.changes.sequence
        ),
        Err(e) => log::warn!(
            "synchronization failed server_id={} trigger={trigger}: {e}",
            settings.server_id
        ),
    }
    result
}

async fn exchange(
    ctx: &Installation,
    client: &awc::Client,
    settings: &Settings,
) -> Result<SyncReport, Error> {
    let mut failures = Vec::new();
    let mut server_problem = false;
    let mut request = None;
    for endpoint in &settings.endpoints {
        // One request serves every endpoint until an attempt may have delivered it: the
        // main server accepts a request id once, so the next attempt needs a new one.
        let (request_id, created_at, text) = match request.take() {
            Some(built) => built,
            None => {
                let now = ctx.clock.now();
                let identity = ctx.identity.clone();
                let request_settings = settings.clone();
                let (req, text) = ctx
                    .db(move |c| build_request(c, &request_settings, &identity, now))
                    .await?;
                (req.request_id, req.created_at, text)
            }
        };
        match post_sync(client, endpoint, text.clone()).await {
            Attempt::Unreachable {
                why,
                may_have_reached,
            } => {
                log::info!("main server endpoint {} not reached: {why}", endpoint.url());
                failures.push(format!("{}: {why}", endpoint.url()));
                if !may_have_reached {
                    request = Some((request_id, created_at, text));
                }
            }
            Attempt::ServerProblem(why) => {
                log::warn!(
                    "main server endpoint {} has a problem: {why}",
                    endpoint.url()
                );
                failures.push(format!("{}: {why}", endpoint.url()));
                server_problem = true;
            }
            Attempt::Refused(e) => return Err(e),
            Attempt::Answer(answer) => {
                let identity = ctx.identity.clone();
                let settings = settings.clone();
                let clock = ctx.clock.clone();
                let changes = ctx
                    .db(move |c| {
                        let file = shared_proto::license_file::open(
                            &answer,
                            &identity,
                            &settings.solme_key()?,
                            settings.server_id,
                        )?;
                        if file.answers_request != request_id {
                            return Err(Error::refused(
                                ErrorCode::Malformed,
                                "the main server answered another request; synchronize again",
                            ));
                        }
                        // Solme stored this request's usage with the file it issued.
                        let changes = import::apply(c, &file, Channel::Internet, clock.now())?;
                        crate::pair::store::keep_primary_file(
                            c,
                            &shared_proto::license_file::signed_content(&answer, &identity)?,
                        )?;
                        mark_usage_reported(c, created_at)?;
                        Ok(changes)
                    })
                    .await?;
                return Ok(SyncReport {
                    endpoint: endpoint.url(),
                    changes,
                });
            }
        }
    }
    if server_problem {
        return Err(Error::Network(format!(
            "Solme's server has a problem; try again later ({})",
            failures.join("; ")
        )));
    }
    Err(Error::Network(format!(
        // Where to diagnose is said by the caller: a command on the command line, a
        // button on the manager page.
        "the main server could not be reached ({})",
        failures.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_state(conn: &mut SqliteConnection) -> anyhow::Result<(Option<i64>, Option<String>)> {
        let state = db::load_sync_state(conn)?;
        Ok((state.sync_lock_until, state.sync_lock_owner))
    }

    #[test]
    fn only_the_holder_releases_the_sync_lock() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut conn = db::connect(dir.path())?;
        diesel::insert_into(sync_state::table)
            .values((sync_state::id.eq(1), sync_state::consecutive_failures.eq(0)))
            .execute(&mut conn)?;
        let start = Utc::now();
        let first = acquire_lock(&mut conn, start)?;
        assert!(matches!(
            acquire_lock(&mut conn, start),
            Err(Error::SyncBusy)
        ));
        // The first holder outlives its lock; a second synchronization takes it over.
        let later = start + Duration::minutes(SYNC_LOCK_MINUTES + 1);
        let second = acquire_lock(&mut conn, later)?;
        finish_attempt(&mut conn, &first, later, Some("late"), false)?;
        assert_eq!(lock_state(&mut conn)?.1.as_deref(), Some(second.as_str()));
        assert!(matches!(
            acquire_lock(&mut conn, later),
            Err(Error::SyncBusy)
        ));
        finish_attempt(&mut conn, &second, later, None, true)?;
        assert_eq!(lock_state(&mut conn)?, (None, None));
        acquire_lock(&mut conn, later)?;
        Ok(())
    }
}
