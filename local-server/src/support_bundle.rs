//! `local-server support-bundle FILE` and the manager page's button: one `.tar.gz` for
//! Solme's support with the status, the diagnose report, the last sync attempt and its
//! error, the report log's summary, the recent log lines and the settings, **without
//! any secret**: no private key or database file is ever read into it, the proxy
//! password is replaced by `***`, and every entry is scrubbed of the proxy passwords
//! known to this server before it is written.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use diesel::SqliteConnection;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;
use shared_proto::files::{self, Access, Existing};

use crate::config::Settings;
use crate::db::{self, from_ms};
use crate::diagnose;
use crate::error::Error;
use crate::installation::Installation;
use crate::proxy::ProxyText;

/// The folder every entry of the archive sits in.
const ROOT: &str = "support-bundle";
/// Log lines kept in the bundle.
const LOG_LINES: usize = 2_000;
/// Days of the report log summarized.
const REPORT_DAYS: i64 = 30;

/// The bundle's entries, in the order they are written (for the CLI's list too).
pub const ENTRIES: &[&str] = &[
    "README.txt",
    "status.txt",
    "status.json",
    "diagnose.txt",
    "diagnose.json",
    "sync-attempts.txt",
    "sync-attempts.json",
    "report.txt",
    "report.json",
    "usage-since-last-sync.json",
    "settings.json",
    "options.toml",
    "log.txt",
];

/// The synchronization history this server keeps: its last attempt and last success.
#[derive(Debug, Serialize)]
struct SyncAttempts {
    last_sync_at: Option<DateTime<Utc>>,
    last_sync_channel: Option<String>,
    last_attempt_at: Option<DateTime<Utc>>,
    last_attempt_error: Option<String>,
    consecutive_failures: i32,
    last_contact_at: Option<DateTime<Utc>>,
    next_auto_sync_at: Option<DateTime<Utc>>,
    license_file_sequence: Option<i64>,
    valid_until: Option<DateTime<Utc>>,
    /// The log lines about synchronizations, newest last.
    recent_log_lines: Vec<String>,
}

/// The settings, secrets left out.
#[derive(Debug, Serialize)]
struct PublicSettings {
    server_id: uuid::Uuid,
    key_fingerprint: String,
    main_server_endpoints: Vec<String>,
    /// The stored proxy with its password replaced by `***`.
    proxy: Option<String>,
    /// Proxy variables of the environment, passwords replaced by `***`.
    proxy_environment: Vec<(String, String)>,
    auto_sync: String,
    solme_public_key_pem: String,
    pinned_ca_pem: String,
}

/// The proxy variables a synchronization may read.
const PROXY_VARIABLES: &[&str] = &[
    "LOCAL_SERVER_PROXY",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The password of the proxy a caller resolved (`--proxy`, or what `serve` uses).
pub fn password_of(proxy: &crate::proxy::ProxySettings) -> Vec<String> {
    proxy
        .proxy
        .as_ref()
        .and_then(|p| p.password())
        .map(|p| vec![p.to_owned()])
        .unwrap_or_default()
}

/// Every proxy password this process knows of (stored, environment, and `extra` from
/// the caller), as typed and percent-decoded: the strings no entry may contain.
fn proxy_passwords(settings: &Settings, extra: &[String]) -> Vec<String> {
    let mut texts: Vec<String> = PROXY_VARIABLES
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .collect();
    texts.extend(settings.proxy.iter().map(|p| p.expose().to_owned()));
    let mut secrets: Vec<String> = extra.to_vec();
    for text in texts {
        let Ok(url) = url::Url::parse(&text) else {
            continue;
        };
        if let Some(password) = url.password().filter(|p| !p.is_empty()) {
            secrets.push(password.to_owned());
            let decoded = percent_encoding::percent_decode_str(password)
                .decode_utf8_lossy()
                .into_owned();
            secrets.push(decoded);
        }
    }
    secrets.sort();
    secrets.dedup();
    secrets
}

fn json<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>, Error> {
    let mut text = serde_json::to_vec_pretty(value).with_context(|| format!("encoding {what}"))?;
    text.push(b'\n');
    Ok(text)
}

/// Reads everything but the diagnosis (which the caller ran) and packs the archive.
pub fn build(
    conn: &mut SqliteConnection,
    ctx: &Installation,
    diagnosis: &diagnose::Report,
    extra_secrets: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<u8>, Error> {
    let settings = Settings::load(&ctx.data_dir, conn)?;
    let fingerprint = ctx.identity.fingerprint();
    let status = crate::status::report(conn, &settings, fingerprint.clone(), now, None)?;
    let state = db::load_sync_state(conn)?;
    let log = crate::log_file::recent_lines(&ctx.data_dir, LOG_LINES);
    let attempts = SyncAttempts {
        last_sync_at: state.last_sync_at.map(from_ms),
        last_sync_channel: state.last_sync_channel.clone(),
        last_attempt_at: state.last_attempt_at.map(from_ms),
        last_attempt_error: state.last_attempt_error.clone(),
        consecutive_failures: state.consecutive_failures,
        last_contact_at: state.last_contact_at.map(from_ms),
        next_auto_sync_at: state.next_auto_sync_at.map(from_ms),
        license_file_sequence: state.sequence,
        valid_until: state.valid_until.map(from_ms),
        recent_log_lines: log
            .iter()
            .filter(|l| l.contains("synchroniz") || l.contains("main server"))
            .cloned()
            .collect(),
    };
    let report = crate::report::build(conn, now - Duration::days(REPORT_DAYS), now)?;
    let since = crate::sync::usage_period_start(conn)?;
    let usage = crate::sync::usage_since(conn, since, now)?;
    let settings_view = PublicSettings {
        server_id: settings.server_id,
        key_fingerprint: fingerprint.to_string(),
        main_server_endpoints: settings.endpoints.iter().map(|e| e.url()).collect(),
        proxy: settings.proxy.as_ref().map(ToString::to_string),
        proxy_environment: PROXY_VARIABLES
            .iter()
            .filter_map(|name| {
                let value = std::env::var(name).ok()?;
                Some(((*name).to_owned(), crate::proxy::redact_url(&value)))
            })
            .collect(),
        auto_sync: settings.auto_sync.as_str().to_owned(),
        solme_public_key_pem: settings.solme_public_pem.clone(),
        pinned_ca_pem: settings.ca_pem.clone(),
    };
    let options = db::load_options(conn)?.unwrap_or_else(|| "# no options file applied\n".into());
    let readme = format!(
        "Support bundle of Solme license server {id}\n\
         Made at {now} by local-server {version}.\n\n\
         It holds the status, the diagnose report, the last synchronization attempt and\n\
         its error, the report log's summary of the last {REPORT_DAYS} days, the usage the next\n\
         sync will report, the recent log lines and the settings. It holds no private key\n\
         and no password (the proxy password reads ***). Send it to your Solme support\n\
         contact with a few words on what goes wrong.\n\n\
         Files: {files}\n",
        id = settings.server_id,
        now = now.to_rfc3339(),
        version = env!("CARGO_PKG_VERSION"),
        files = ENTRIES.join(", "),
    );
    let attempts_text = format!(
        "Last successful synchronization: {}\n\
         Last attempt: {}\n\
         Its error: {}\n\
         Failures in a row: {}\n\
         Last contact with the main server: {}\n\
         Next automatic synchronization: {}\n\n\
         Log lines about synchronizations (newest last):\n{}\n",
        describe(attempts.last_sync_at, attempts.last_sync_channel.as_deref()),
        describe(attempts.last_attempt_at, None),
        attempts.last_attempt_error.as_deref().unwrap_or("none"),
        attempts.consecutive_failures,
        describe(attempts.last_contact_at, None),
        describe(attempts.next_auto_sync_at, None),
        if attempts.recent_log_lines.is_empty() {
            "  (none: `serve` has not logged any here)".to_owned()
        } else {
            attempts.recent_log_lines.join("\n")
        }
    );
    let log_text = if log.is_empty() {
        "(no log file: `local-server serve` has not run in this data directory)\n".to_owned()
    } else {
        log.join("\n") + "\n"
    };
    let contents: Vec<Vec<u8>> = vec![
        readme.into_bytes(),
        status.to_string().into_bytes(),
        json(&status, "the status")?,
        diagnosis.to_string().into_bytes(),
        json(diagnosis, "the diagnosis")?,
        attempts_text.into_bytes(),
        json(&attempts, "the sync attempts")?,
        report.to_string().into_bytes(),
        json(&report, "the report")?,
        json(&usage, "the usage")?,
        json(&settings_view, "the settings")?,
        options.into_bytes(),
        log_text.into_bytes(),
    ];
    let secrets = proxy_passwords(&settings, extra_secrets);
    pack(now, ENTRIES.iter().copied().zip(contents), &secrets)
}

fn describe(at: Option<DateTime<Utc>>, channel: Option<&str>) -> String {
    match (at, channel) {
        (None, _) => "never".to_owned(),
        (Some(at), None) => at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        (Some(at), Some(channel)) => {
            format!("{} ({channel})", at.format("%Y-%m-%d %H:%M:%S UTC"))
        }
    }
}

/// Replaces every occurrence of each secret by `***`.
fn scrub(mut bytes: Vec<u8>, secrets: &[String]) -> Vec<u8> {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let needle = secret.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut rest = bytes.as_slice();
        while let Some(pos) = rest.windows(needle.len()).position(|w| w == needle) {
            out.extend_from_slice(&rest[..pos]);
            out.extend_from_slice(b"***");
            rest = &rest[pos + needle.len()..];
        }
        out.extend_from_slice(rest);
        bytes = out;
    }
    bytes
}

/// Writes the entries as `support-bundle/NAME` into a gzip-compressed tar archive.
fn pack<'a>(
    now: DateTime<Utc>,
    entries: impl Iterator<Item = (&'a str, Vec<u8>)>,
    secrets: &[String],
) -> Result<Vec<u8>, Error> {
    let mut archive = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    let mtime = u64::try_from(now.timestamp()).unwrap_or(0);
    for (name, bytes) in entries {
        let bytes = scrub(bytes, secrets);
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        archive
            .append_data(&mut header, format!("{ROOT}/{name}"), bytes.as_slice())
            .with_context(|| format!("adding {name} to the support bundle"))?;
    }
    let mut gz = archive
        .into_inner()
        .context("finishing the support bundle")?;
    gz.flush().context("compressing the support bundle")?;
    Ok(gz.finish().context("compressing the support bundle")?)
}

/// The file name the manager page offers: `support-bundle-<id>.tar.gz`.
pub fn file_name(server_id: uuid::Uuid) -> String {
    format!("support-bundle-{server_id}.tar.gz")
}

/// `support-bundle FILE`: diagnoses (which synchronizes when it can), packs, writes FILE.
pub async fn write(
    data_dir: &Path,
    clock: shared_proto::Clock,
    flag: Option<&ProxyText>,
    path: &Path,
) -> Result<String, Error> {
    // Before the diagnosis: it synchronizes, which must not happen for a bundle that
    // cannot be written.
    crate::destination::check(path, "the support bundle")?;
    let diagnosis = diagnose::run(data_dir, clock.clone(), flag).await;
    let ctx = Installation::open(data_dir, clock)?;
    let mut extra = Vec::new();
    if let Some(flag) = flag {
        // A flag that does not parse has no password to hide beyond its text's.
        if let Ok(proxy) = crate::proxy::ProxySettings::resolve(Some(flag), None) {
            extra = password_of(&proxy);
        }
    }
    let inner = ctx.clone();
    let bytes = ctx
        .db(move |c| build(c, &inner, &diagnosis, &extra, inner.clock.now()))
        .await?;
    files::write(path, &bytes, Access::Private, Existing::Replace)?;
    Ok(format!(
        "Support bundle written to {} ({} bytes): {}.\n\
         It holds no private key and no password. Send it to your Solme support contact\n\
         with a few words on what goes wrong.",
        path.display(),
        bytes.len(),
        ENTRIES.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_every_occurrence() {
        let out = scrub(
            b"a s3cret b s3cret".to_vec(),
            &["s3cret".to_owned(), String::new()],
        );
        assert_eq!(out, b"a *** b ***");
    }
}
