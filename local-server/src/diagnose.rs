//! `diagnose`: finds out, step by step, why synchronization does not work, and says in
//! plain words what to do.
//!
//! The checks run in the order a connection is built, and the first failure names the
//! cause: identity and configuration; DNS; TCP to each endpoint (or to the proxy); the
//! proxy's answer to `CONNECT`; the TLS handshake against the pinned CA; the main
//! server's answer for this id (a real synchronization: when it succeeds the new
//! license file is installed, exactly as `sync` would); clock skew against the main
//! server; days since the last synchronization.
//!
//! A standby server does not synchronize with Solme (its primary does, and passes the
//! license file on): on a standby the checks are its primary instead, whether it
//! answers, how far apart the two clocks are, and the copy of the license file it holds.
//! A primary with a standby adds what it knows of its standby.
//!
//! "Nothing answers" is ambiguous on the wire: a firewall and a stopped main server
//! both look like a refused or silent port. The server remembers when it last reached
//! the main server: if it never did, a firewall (or a wrong address) is the likely
//! cause; if it did, the main server (or the network on the way) is down now.

use std::fmt;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use shared_proto::tls::CertificateRefusal;
use shared_proto::validity::{self, SyncState, CLOCK_ROLLBACK_TOLERANCE};
use shared_proto::{Clock, ErrorCode};

use crate::config::{Endpoint, Settings};
use crate::db::{self, from_ms};
use crate::error::Error;
use crate::installation::Installation;
use crate::pair::standby::CLOCK_WARNING;
use crate::pair::store::{self as pair_store, PairRow, PairState, Role};
use crate::proxy::{self, ProxySettings, ProxyText, TunnelError};
use crate::status::PairStatus;
use crate::sync;
use crate::wording::{day_text, duration_text, time_text};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Warn,
    Fail,
}

/// The causes `diagnose` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Cause {
    NotInitialised,
    ProxyConfiguration,
    DnsFailure,
    PortsBlocked,
    MainServerDown,
    ProxyUnreachable,
    ProxyRefused,
    ProxyCredentials,
    TlsCertificate,
    IdInUse,
    UnknownServerId,
    MainServerRefused,
    ClockSkew,
    SyncOverdue,
    /// Another synchronization held the lock, so the main server was not asked.
    SyncBusy,
    /// A standby cannot reach its primary.
    PrimaryUnreachable,
    /// A standby's primary refuses its calls.
    PrimaryRefused,
    /// The clocks of a primary and its standby are too far apart for a promotion.
    PairClocksApart,
    /// A standby holds no valid copy of its primary's license file.
    StandbyCopyMissing,
    /// A promoted standby's failover period is over.
    FailoverEnded,
}

impl Cause {
    /// What to do about it, for the customer.
    /// What to do, naming Solme's full licensing address where it says to mail Solme.
    pub fn remedy(self) -> String {
        self.remedy_text()
            .replace("licensing@", &crate::wording::licensing_address())
    }

    fn remedy_text(self) -> &'static str {
        match self {
            Self::NotInitialised => "Run `local-server init` with the id Solme sent you.",
            Self::ProxyConfiguration => {
                "Correct the proxy address (http://user:password@host:port) in --proxy or HTTPS_PROXY."
            }
            Self::DnsFailure => {
                "Check the computer's DNS settings and the main server address given to `init`; \
                 if this network resolves names only through a proxy, configure the proxy."
            }
            Self::PortsBlocked => {
                "Ask your network administrator to allow outgoing HTTPS connections to the main \
                 server on port 443 or 8080 (or give the proxy to use with --proxy). Until then, \
                 synchronize by email: export-sync-data, mail it to licensing@, import the answer."
            }
            Self::MainServerDown => {
                "Solme's main server, or the network on the way to it, is down. Try again later; \
                 if it lasts, synchronize by email (export-sync-data, then import-license-file) \
                 and tell licensing@."
            }
            Self::ProxyUnreachable => {
                "The proxy does not answer: check its address and port with your network administrator."
            }
            Self::ProxyRefused => {
                "The proxy does not let this server through to the main server: ask your network \
                 administrator to allow HTTPS (CONNECT) to the main server on port 443 or 8080."
            }
            Self::ProxyCredentials => {
                "The proxy wants a user name and password, or rejected the ones given: put the right \
                 ones in the proxy address (http://user:password@host:port)."
            }
            Self::TlsCertificate => {
                "The main server's certificate was not issued by the CA given to `init`: a network \
                 device may be inspecting HTTPS (exempt the main server from it), or the CA file is \
                 the wrong one (reinstall with the CA file Solme supplied)."
            }
            Self::IdInUse => {
                "Another key pair is bound to this license server id (for example from an earlier \
                 installation). Email licensing@ naming the id and ask Solme to clear the key pair, \
                 then synchronize again."
            }
            Self::UnknownServerId => {
                "Solme does not know this license server id: check it against the one Solme sent \
                 and reinstall with `init --force --id …` if it is wrong."
            }
            Self::MainServerRefused => "Read the main server's message above; if unclear, ask licensing@.",
            Self::ClockSkew => {
                "Correct this computer's clock (enable NTP): synchronization is refused when it is \
                 more than 15 minutes off."
            }
            Self::SyncOverdue => "Synchronize now: `local-server sync`, or by email.",
            Self::SyncBusy => {
                "Another synchronization (automatic, or started elsewhere) was running: wait a \
                 minute and run the diagnosis again."
            }
            Self::PrimaryUnreachable => {
                "If the primary runs, check the network between the two servers (this standby \
                 calls the address given to `init --standby-of`). If the primary is down, make \
                 sure it is off, then promote this standby (`local-server promote`, or Promote \
                 Standby on the manager page): it issues seats until the primary is back."
            }
            Self::PrimaryRefused => {
                "Read the primary's message above. A primary that no longer knows this standby \
                 (paired with another one since, or restored from a backup) needs a new \
                 pairing: make a code on the primary with `local-server standby pair`, then set \
                 this standby up again with `init --standby-of` in an empty data directory."
            }
            Self::PairClocksApart => {
                "Check the clocks of both servers against a reliable time source (enable NTP \
                 on both) and correct the one that is wrong: a standby whose clock is far off \
                 its primary's cannot be promoted."
            }
            Self::StandbyCopyMissing => {
                "The primary passes its license file on after its own synchronization with \
                 Solme: synchronize the primary (`local-server sync` there) while this standby \
                 runs `serve`. Until then this standby cannot be promoted."
            }
            Self::FailoverEnded => {
                "Bring the primary back (this standby hands back to it by itself once it \
                 answers), or ask licensing@ to make this server the id's primary by a key \
                 clearing."
            }
        }
    }

    /// One line naming the cause.
    pub fn title(self) -> &'static str {
        match self {
            Self::NotInitialised => "this license server is not set up",
            Self::ProxyConfiguration => "the proxy setting is not understood",
            Self::DnsFailure => "the main server's name cannot be looked up (DNS)",
            Self::PortsBlocked => "ports 443/8080 of the main server cannot be reached (firewall?)",
            Self::MainServerDown => {
                "the main server does not answer (it is down, or the network is)"
            }
            Self::ProxyUnreachable => "the proxy cannot be reached",
            Self::ProxyRefused => "the proxy refuses the connection to the main server",
            Self::ProxyCredentials => "the proxy asks for credentials (missing or wrong)",
            Self::TlsCertificate => "the main server's certificate is not the expected one",
            Self::IdInUse => "this id is in use by another key pair",
            Self::UnknownServerId => "the main server does not know this id",
            Self::MainServerRefused => "the main server refused the synchronization",
            Self::ClockSkew => "this computer's clock is off",
            Self::SyncOverdue => "the last synchronization is too old",
            Self::SyncBusy => {
                "the diagnosis could not ask the main server (a synchronization was running)"
            }
            Self::PrimaryUnreachable => "this standby cannot reach its primary",
            Self::PrimaryRefused => "the primary refuses this standby's calls",
            Self::PairClocksApart => "the clocks of the primary and this standby are too far apart",
            Self::StandbyCopyMissing => {
                "this standby holds no valid copy of the primary's license file"
            }
            Self::FailoverEnded => "this standby's failover period has ended",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub outcome: Outcome,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// The cause in words (`Cause::title`), for the manager page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause_title: Option<&'static str>,
    /// What to do about the cause (`Cause::remedy`), for the manager page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

/// The whole diagnosis.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub server_id: Option<uuid::Uuid>,
    pub checks: Vec<Check>,
    /// The first problem found; `null` when everything works.
    pub cause: Option<Cause>,
    pub summary: String,
    pub remedy: Option<String>,
}

impl Report {
    pub fn exit_code(&self) -> u8 {
        match self.cause {
            None => 0,
            // Incomplete rather than failed: running it again later may succeed.
            Some(Cause::SyncBusy) => shared_proto::exit::TEMPORARY,
            Some(_) => shared_proto::exit::FAILED,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.server_id {
            Some(id) => writeln!(f, "Diagnosis of license server {id}")?,
            None => writeln!(f, "Diagnosis of this license server")?,
        }
        for c in &self.checks {
            let tag = match c.outcome {
                Outcome::Ok => "ok  ",
                Outcome::Warn => "WARN",
                Outcome::Fail => "FAIL",
            };
            writeln!(f, "  [{tag}] {:<13} {}", c.check, c.detail)?;
        }
        writeln!(f)?;
        writeln!(f, "{}", self.summary)?;
        if let Some(remedy) = &self.remedy {
            writeln!(f, "What to do: {remedy}")?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Builder {
    checks: Vec<Check>,
    cause: Option<Cause>,
    /// The summary when nothing is wrong, when it is not the usual one (a standby's).
    all_well: Option<String>,
}

impl Builder {
    fn ok(&mut self, check: &'static str, detail: impl Into<String>) {
        self.push(check, Outcome::Ok, detail.into(), None);
    }
    fn warn(&mut self, check: &'static str, detail: impl Into<String>) {
        self.push(check, Outcome::Warn, detail.into(), None);
    }
    fn fail(&mut self, check: &'static str, detail: impl Into<String>, cause: Cause) {
        self.push(check, Outcome::Fail, detail.into(), Some(cause));
        self.cause.get_or_insert(cause);
    }
    fn push(
        &mut self,
        check: &'static str,
        outcome: Outcome,
        detail: String,
        cause: Option<Cause>,
    ) {
        self.checks.push(Check {
            check,
            outcome,
            detail,
            cause,
            cause_title: cause.map(Cause::title),
            remedy: cause.map(Cause::remedy),
        });
    }
    fn finish(self, server_id: Option<uuid::Uuid>) -> Report {
        let (summary, remedy) = match self.cause {
            Some(cause) => (
                format!("Cause: {} ({}).", cause.title(), serde_plain(cause)),
                Some(cause.remedy()),
            ),
            None => (
                self.all_well.unwrap_or_else(|| {
                    "No problem found: this server reaches the main server and is synchronized."
                        .to_owned()
                }),
                None,
            ),
        };
        Report {
            server_id,
            checks: self.checks,
            cause: self.cause,
            summary,
            remedy,
        }
    }
}

fn serde_plain(cause: Cause) -> String {
    serde_json::to_string(&cause)
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned()
}

/// Runs every check (the `diagnose` verb). Never fails: a failure is a finding.
pub async fn run(data_dir: &Path, clock: Clock, proxy_flag: Option<&ProxyText>) -> Report {
    let ctx = match Installation::open(data_dir, clock) {
        Ok(ctx) => ctx,
        Err(e) => {
            let mut b = Builder::default();
            b.fail("configuration", format!("{e:#}"), Cause::NotInitialised);
            return b.finish(None);
        }
    };
    run_in(&ctx, |settings| {
        ProxySettings::resolve(proxy_flag, settings.proxy.as_ref())
    })
    .await
}

/// Runs every check on an open installation (shared with `serve`, which passes the proxy
/// it resolved at start-up). `proxy` picks the proxy settings from the configuration.
pub async fn run_in(
    ctx: &Installation,
    proxy: impl FnOnce(&Settings) -> anyhow::Result<ProxySettings>,
) -> Report {
    let mut b = Builder::default();
    // 1. Identity and configuration.
    let settings = match ctx.load_settings().await {
        Ok(s) => s,
        Err(e) => {
            b.fail("configuration", e.to_string(), Cause::NotInitialised);
            return b.finish(None);
        }
    };
    b.ok(
        "configuration",
        format!(
            "id {}, key pair {}, main server {}",
            settings.server_id,
            ctx.identity.fingerprint(),
            settings
                .endpoints
                .iter()
                .map(Endpoint::url)
                .collect::<Vec<_>>()
                .join(", then ")
        ),
    );
    let pair = ctx.db(|c| Ok(pair_store::load(c)?)).await.ok().flatten();
    // A standby's synchronization is its primary's: the pair is what to check.
    if pair.as_ref().is_some_and(|row| row.role() == Role::Standby) {
        standby_checks(&mut b, ctx).await;
        return b.finish(Some(settings.server_id));
    }
    let proxy = match proxy(&settings) {
        Ok(p) => p,
        Err(e) => {
            b.fail("proxy", format!("{e:#}"), Cause::ProxyConfiguration);
            return b.finish(Some(settings.server_id));
        }
    };
    let state = match ctx.db(|c| Ok(db::load_sync_state(c)?)).await {
        Ok(s) => s,
        Err(e) => {
            b.fail(
                "configuration",
                format!("database: {e}"),
                Cause::NotInitialised,
            );
            return b.finish(Some(settings.server_id));
        }
    };
    let reached_before = state.last_contact_at.map(from_ms);

    let reachable = network_checks(&mut b, &settings, &proxy, reached_before).await;
    if let Some(endpoint) = reachable {
        main_server_checks(&mut b, ctx, &settings, &proxy, &endpoint).await;
    }
    sync_age_check(&mut b, ctx).await;
    if let Some(row) = pair {
        standby_finding(&mut b, &row, state.sequence, ctx.clock.now());
    }
    b.finish(Some(settings.server_id))
}

/// On a primary: what it knows of its standby. Warnings only: a standby that is away
/// does not keep the primary from synchronizing or issuing.
fn standby_finding(b: &mut Builder, row: &PairRow, held: Option<i64>, now: DateTime<Utc>) {
    let pair = PairStatus::new(row, held, now);
    let text = pair.text.join("; ");
    if pair.state == PairState::Fenced || !pair.peer_reachable {
        b.warn("standby", text);
    } else {
        b.ok("standby", text);
    }
    for warning in pair.warnings {
        b.warn("standby", warning);
    }
}

/// On a standby: its primary (a real call, as `serve` makes it, while it follows), the
/// two clocks, and the copy of the license file it holds.
async fn standby_checks(b: &mut Builder, ctx: &Installation) {
    let load = || async { ctx.db(|c| Ok(pair_store::load(c)?)).await.ok().flatten() };
    let Some(before) = load().await else {
        return;
    };
    let primary = before
        .peer_address
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    match before.state() {
        PairState::Following => {
            let client = awc::Client::builder()
                .timeout(StdDuration::from_secs(5))
                .finish();
            let heard = before
                .last_heard()
                .map(|at| {
                    format!(
                        "; last heard {} ({} ago)",
                        time_text(at),
                        duration_text(ctx.clock.now() - at)
                    )
                })
                .unwrap_or_else(|| "; never heard from".to_owned());
            match crate::pair::standby::follow_once(ctx, &client).await {
                Ok(()) => b.ok(
                    "primary",
                    format!(
                        "the primary at {primary} answers (key {})",
                        before.peer_fingerprint()
                    ),
                ),
                Err(Error::Refused { message, .. }) => {
                    b.fail("primary", message, Cause::PrimaryRefused)
                }
                Err(e) => {
                    log::warn!("diagnose: the primary at {primary} does not answer: {e}");
                    b.fail(
                        "primary",
                        format!("the primary at {primary} does not answer{heard}"),
                        Cause::PrimaryUnreachable,
                    )
                }
            }
        }
        // Not called: a call could start the hand-back, which is `serve`'s to run.
        PairState::Promoted => {
            let now = ctx.clock.now();
            let pair = PairStatus::new(&before, None, now);
            let text = pair.text.join("; ");
            match pair.failover_ends {
                Some(ends) if now < ends => b.warn("standby", text),
                _ => b.fail("standby", text, Cause::FailoverEnded),
            }
            b.all_well = Some(
                "No problem found: this standby is promoted and issues seats in place of its \
                 primary."
                    .to_owned(),
            );
        }
        _ => b.warn(
            "standby",
            format!("handing back to the primary at {primary}: this server issues no seats"),
        ),
    }
    let now = ctx.clock.now();
    let row = load().await.unwrap_or(before);
    pair_clock_check(b, &row, now);
    copy_check(b, ctx, &row, now).await;
    if b.all_well.is_none() {
        b.all_well = Some(
            "No problem found: this standby follows its primary and holds a copy of its \
             license file; it can be promoted if the primary goes down."
                .to_owned(),
        );
    }
}

/// How far apart the standby's clock and its primary's were at the last measure.
fn pair_clock_check(b: &mut Builder, row: &PairRow, now: DateTime<Utc>) {
    let Some(offset) = row.clock_offset_ms else {
        b.warn(
            "clock",
            "not measured yet: the two clocks are compared with each call to the primary",
        );
        return;
    };
    let span = Duration::milliseconds(offset.abs());
    let measured = row
        .clock_measured_at
        .map(|at| format!(" (measured {})", crate::status::ago_text(now - from_ms(at))))
        .unwrap_or_default();
    let side = if offset > 0 { "behind" } else { "ahead of" };
    let text = format!(
        "this server's clock is {} {side} the primary's{measured}",
        crate::status::clock_span(offset)
    );
    if span > CLOCK_ROLLBACK_TOLERANCE {
        b.fail("clock", text, Cause::PairClocksApart);
    } else if span > CLOCK_WARNING {
        b.warn("clock", format!("{text}: check both clocks (NTP)"));
    } else {
        b.ok("clock", text);
    }
}

/// The copy of the primary's license file this standby holds.
async fn copy_check(b: &mut Builder, ctx: &Installation, row: &PairRow, now: DateTime<Utc>) {
    let Ok(state) = ctx.db(|c| Ok(db::load_sync_state(c)?)).await else {
        return;
    };
    let failover = row
        .failover_days
        .map(|days| format!("; failover period {days} days"))
        .unwrap_or_default();
    match (state.sequence, state.valid_until.map(from_ms)) {
        (Some(sequence), Some(until)) if now < until => b.ok(
            "license copy",
            format!(
                "license file #{sequence} copied from the primary, valid until {}{failover}",
                day_text(until)
            ),
        ),
        (Some(sequence), Some(until)) => b.fail(
            "license copy",
            format!(
                "the copy of license file #{sequence} ran out on {}",
                day_text(until)
            ),
            Cause::StandbyCopyMissing,
        ),
        _ => b.fail(
            "license copy",
            "no copy of the primary's license file yet",
            Cause::StandbyCopyMissing,
        ),
    }
}

/// DNS, TCP, proxy and TLS; returns the first endpoint that passed them all.
async fn network_checks(
    b: &mut Builder,
    settings: &Settings,
    proxy: &ProxySettings,
    reached_before: Option<DateTime<Utc>>,
) -> Option<Endpoint> {
    let unreachable_cause = |timeout: bool| {
        if reached_before.is_some() && !timeout {
            Cause::MainServerDown
        } else {
            Cause::PortsBlocked
        }
    };
    let since = reached_before
        .map(|at| {
            format!(
                " It answered on {} before.",
                at.format("%Y-%m-%d %H:%M UTC")
            )
        })
        .unwrap_or_else(|| " This server has never reached it.".to_owned());
    let tls = match sync::tls_connector(&settings.ca_pem) {
        Ok(t) => t,
        Err(e) => {
            b.fail(
                "tls",
                format!("the stored CA is unusable: {e:#}"),
                Cause::TlsCertificate,
            );
            return None;
        }
    };
    let mut usable = None;
    let mut failures = Vec::new();
    let mut any_timeout = false;
    let mut dns_checked = Vec::new();
    let mut dns_failures = 0;
    for endpoint in &settings.endpoints {
        let via = proxy.for_host(&endpoint.host).cloned();
        // DNS: the proxy's name when going through it (it resolves the main server).
        let (name, port) = match &via {
            Some(p) => (p.host.clone(), p.port),
            None => (endpoint.host.clone(), endpoint.port),
        };
        // A name that does not resolve is one endpoint's failure: the next one may have
        // another name (or the proxy may be bypassed for it).
        let addrs = match proxy::resolve(&name, port).await {
            Ok(a) => a,
            Err(e) => {
                b.warn("dns", e.to_string());
                failures.push(endpoint.url());
                dns_failures += 1;
                continue;
            }
        };
        if !dns_checked.contains(&name) {
            b.ok(
                "dns",
                format!(
                    "{name} is {}",
                    addrs
                        .iter()
                        .map(|a| a.ip().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            dns_checked.push(name.clone());
        }
        // TCP (to the main server, or to the proxy).
        let target = match &via {
            Some(p) => format!("the proxy {p}"),
            None => endpoint.url(),
        };
        let mut stream = match proxy::connect_tcp(&addrs, &target).await {
            Ok(s) => s,
            Err(e) => {
                any_timeout |= matches!(e, TunnelError::Timeout { .. });
                if let Some(p) = &via {
                    b.fail("proxy", format!("{e}"), Cause::ProxyUnreachable);
                    let _ = p;
                    return None;
                }
                b.warn("connection", e.to_string());
                failures.push(endpoint.url());
                continue;
            }
        };
        b.ok("connection", format!("{target} accepts connections"));
        // The proxy's answer.
        if let Some(p) = &via {
            match proxy::proxy_connect(&mut stream, p, &endpoint.host, endpoint.port).await {
                Ok(()) => b.ok(
                    "proxy",
                    format!("{p} opened a tunnel to {}", endpoint.url()),
                ),
                Err(e @ TunnelError::ProxyAuth { .. }) => {
                    b.fail("proxy", e.to_string(), Cause::ProxyCredentials);
                    return None;
                }
                Err(TunnelError::ProxyStatus {
                    status: status @ (500 | 502..=504),
                    ..
                }) => {
                    any_timeout |= status == 504;
                    b.warn(
                        "proxy",
                        format!(
                            "the proxy {p} could not reach {} (HTTP {status})",
                            endpoint.url()
                        ),
                    );
                    failures.push(endpoint.url());
                    continue;
                }
                Err(e @ TunnelError::ProxyStatus { .. }) => {
                    b.fail("proxy", e.to_string(), Cause::ProxyRefused);
                    return None;
                }
                Err(e) => {
                    b.fail("proxy", e.to_string(), Cause::ProxyUnreachable);
                    return None;
                }
            }
        }
        // TLS against the pinned CA.
        match tls_handshake(&tls, &endpoint.host, stream).await {
            Ok(subject) => {
                b.ok(
                    "tls",
                    format!(
                        "{} presents a valid certificate ({subject})",
                        endpoint.url()
                    ),
                );
                usable.get_or_insert_with(|| endpoint.clone());
                break;
            }
            Err((why, cause)) => {
                b.fail("tls", format!("{}: {why}", endpoint.url()), cause);
                return None;
            }
        }
    }
    if usable.is_none() {
        if dns_failures > 0 && dns_failures == failures.len() {
            b.fail(
                "dns",
                format!(
                    "none of the names of {} can be looked up",
                    failures.join(", ")
                ),
                Cause::DnsFailure,
            );
        } else {
            let cause = unreachable_cause(any_timeout);
            b.fail(
                "connection",
                format!("none of {} can be reached.{since}", failures.join(", ")),
                cause,
            );
        }
    }
    usable
}

async fn tls_handshake(
    tls: &openssl::ssl::SslConnector,
    host: &str,
    stream: tokio::net::TcpStream,
) -> Result<String, (String, Cause)> {
    let set_up_failed = |e: openssl::error::ErrorStack| {
        log::warn!("TLS set-up for {host} failed: {e}");
        (
            "this computer could not set up a secure connection (TLS); see the log".to_owned(),
            Cause::TlsCertificate,
        )
    };
    let ssl = tls
        .configure()
        .and_then(|c| c.into_ssl(host))
        .map_err(set_up_failed)?;
    let mut tls_stream = tokio_openssl::SslStream::new(ssl, stream).map_err(set_up_failed)?;
    let handshake = tokio::time::timeout(
        StdDuration::from_secs(10),
        Pin::new(&mut tls_stream).connect(),
    )
    .await;
    let verify = tls_stream.ssl().verify_result();
    // The connector also keeps the code aside for the HTTP client's sake: read here.
    let _ = shared_proto::tls::take_certificate_refusal();
    match handshake {
        // Something took the connection and then said nothing: a hung server or a
        // device on the way holding it, not a certificate to blame.
        Err(_) => Err((
            "the connection was accepted but nothing answered within 10 s".into(),
            Cause::MainServerDown,
        )),
        Ok(Err(e)) => {
            if closed_before_answering(&e) {
                // A front whose server behind it is gone, or a server stopping.
                Err((
                    "the connection was closed before any secure (TLS) answer".into(),
                    Cause::MainServerDown,
                ))
            } else if verify.as_raw() != 0 {
                let refusal = CertificateRefusal::from_code(verify.as_raw(), verify.error_string());
                // OpenSSL compares the dates with this computer's clock, not the
                // installation's.
                let cause = match refusal {
                    CertificateRefusal::NotYetValid => Cause::ClockSkew,
                    _ => Cause::TlsCertificate,
                };
                Err((refusal.describe(Utc::now()), cause))
            } else {
                Err((
                    "the secure connection (TLS) could not be set up: the other side did not \
                     complete a TLS handshake (is it an HTTPS server?)"
                        .into(),
                    Cause::TlsCertificate,
                ))
            }
        }
        Ok(Ok(())) => Ok(tls_stream
            .ssl()
            .peer_certificate()
            .and_then(|c| {
                c.subject_name()
                    .entries()
                    .next()
                    .and_then(|e| e.data().to_string().ok())
            })
            .unwrap_or_else(|| "no subject".into())),
    }
}

/// Whether a failed handshake is the other side closing the connection without a word
/// (no TLS record came back), rather than an answer that was not acceptable.
fn closed_before_answering(e: &openssl::ssl::Error) -> bool {
    match e.code() {
        openssl::ssl::ErrorCode::ZERO_RETURN => true,
        openssl::ssl::ErrorCode::SYSCALL => e.io_error().is_none_or(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            )
        }),
        _ => false,
    }
}

/// How this computer's clock compares with the main server's: decided once, on the
/// measured difference, and told in words from that decision.
#[derive(Debug, Clone, PartialEq)]
enum ClockFinding {
    /// Within [`CLOCK_ROLLBACK_TOLERANCE`]: `skew` is the measured difference.
    Within { skew: Duration },
    /// Further off than the tolerance (positive: this computer is ahead).
    Off { skew: Duration },
    /// The main server's time could not be read; why.
    Unknown(String),
}

impl ClockFinding {
    /// The finding for a measured difference (this computer's time minus the server's).
    fn measured(skew: Duration) -> Self {
        if skew.abs() > CLOCK_ROLLBACK_TOLERANCE {
            Self::Off { skew }
        } else {
            Self::Within { skew }
        }
    }
}

impl std::fmt::Display for ClockFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Within { skew } => write!(
                f,
                "within {:.0} s of the main server's",
                skew.num_milliseconds().abs() as f64 / 1000.0
            ),
            Self::Off { skew } => write!(
                f,
                "this computer's clock is {:+.0} minutes off the main server's",
                skew.num_seconds() as f64 / 60.0
            ),
            Self::Unknown(why) => f.write_str(why),
        }
    }
}

#[derive(Deserialize)]
struct TimeAnswer {
    now: DateTime<Utc>,
}

/// The main server's answer for this id, and clock skew.
async fn main_server_checks(
    b: &mut Builder,
    ctx: &Installation,
    settings: &Settings,
    proxy: &ProxySettings,
    endpoint: &Endpoint,
) {
    let tls = match sync::tls_connector(&settings.ca_pem) {
        Ok(t) => t,
        Err(_) => return,
    };
    let client = sync::http_client(tls, proxy.clone());
    // Clock skew first: a large one explains a refused synchronization.
    let before = ctx.clock.now();
    let answer = client
        .get(format!("{}/api/v1/time", endpoint.url()))
        .send()
        .await;
    let clock = match answer {
        Ok(mut r) if r.status().is_success() => match r.json::<TimeAnswer>().limit(4096).await {
            Ok(t) => {
                let after = ctx.clock.now();
                ClockFinding::measured(before + (after - before) / 2 - t.now)
            }
            Err(e) => ClockFinding::Unknown(format!("unreadable time answer: {e}")),
        },
        Ok(r) => ClockFinding::Unknown(format!("time not available (HTTP {})", r.status())),
        Err(e) => ClockFinding::Unknown(format!(
            "time not available: {}",
            sync::describe_send_error(&e)
        )),
    };

    match sync::sync_now(ctx, &client, "diagnose").await {
        Ok(report) => b.ok(
            "main server",
            format!(
                "accepted this id and key pair; synchronized (license file #{}, valid until {})",
                report.changes.sequence,
                report.changes.valid_until.format("%Y-%m-%d")
            ),
        ),
        Err(Error::Refused { code, message }) => {
            let cause = match code {
                ErrorCode::IdInUse => Cause::IdInUse,
                ErrorCode::UnknownServerId => Cause::UnknownServerId,
                ErrorCode::StaleRequest => Cause::ClockSkew,
                _ => Cause::MainServerRefused,
            };
            b.fail("main server", format!("{code}: {message}"), cause);
        }
        // The main server was not asked: the diagnosis is incomplete, not clean.
        Err(Error::SyncBusy) => b.fail(
            "main server",
            "not asked: another synchronization is running right now",
            Cause::SyncBusy,
        ),
        Err(Error::Network(m)) => b.fail("main server", m, Cause::MainServerDown),
        Err(e) => b.fail("main server", e.to_string(), Cause::MainServerRefused),
    }
    let text = clock.to_string();
    match clock {
        ClockFinding::Off { .. } => b.fail("clock", text, Cause::ClockSkew),
        ClockFinding::Within { .. } => b.ok("clock", text),
        ClockFinding::Unknown(_) => b.warn("clock", text),
    }
}

async fn sync_age_check(b: &mut Builder, ctx: &Installation) {
    let now = ctx.clock.now();
    let Ok(state) = ctx.db(|c| Ok(db::load_sync_state(c)?)).await else {
        return;
    };
    let date = |d: DateTime<Utc>| d.format("%Y-%m-%d").to_string();
    if validity::check_clock(now, state.clock_high_water.map(from_ms)).is_err() {
        b.fail(
            "last sync",
            "the system clock is behind a time this server has already seen: no licenses are \
             issued. If the clock is right and that time was wrong, a successful direct \
             synchronization sets it back (it failed or was not possible above)",
            Cause::ClockSkew,
        );
        return;
    }
    let since = state
        .last_sync_at
        .map(|l| format!("{} days ago", (now - from_ms(l)).num_days()))
        .unwrap_or_default();
    match validity::sync_state(state.valid_until.map(from_ms), now) {
        SyncState::NeverSynced => b.fail(
            "last sync",
            "never synchronized: no licenses are issued",
            Cause::SyncOverdue,
        ),
        SyncState::Synchronized {
            valid_until,
            days_left,
        } => b.ok(
            "last sync",
            format!(
                "{since}; valid until {} ({days_left} days left)",
                date(valid_until)
            ),
        ),
        SyncState::Warning {
            valid_until,
            days_left,
        } => b.warn(
            "last sync",
            format!(
                "{since}; only {days_left} days left (until {}): synchronize soon",
                date(valid_until)
            ),
        ),
        SyncState::Expired { valid_until } => b.fail(
            "last sync",
            format!(
                "{since}; ran out on {}: no licenses are issued",
                date(valid_until)
            ),
            Cause::SyncOverdue,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_finding_is_decided_on_the_difference_not_on_its_words() {
        let off = ClockFinding::measured(Duration::minutes(11));
        assert!(matches!(off, ClockFinding::Off { .. }));
        assert_eq!(
            off.to_string(),
            "this computer's clock is +11 minutes off the main server's"
        );
        let behind = ClockFinding::measured(-Duration::minutes(30));
        assert!(matches!(behind, ClockFinding::Off { .. }), "{behind}");
        let near = ClockFinding::measured(-Duration::seconds(2));
        assert_eq!(near.to_string(), "within 2 s of the main server's");
        assert!(matches!(
            ClockFinding::measured(CLOCK_ROLLBACK_TOLERANCE),
            ClockFinding::Within { .. }
        ));
    }
}
