//! The installation: `init` (identity and configuration) and reading them back.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use diesel::prelude::*;
use serde::Serialize;
use shared_proto::keys::{SERVER_ENCRYPTION_KEY_FILE, SERVER_SIGNING_KEY_FILE};
use shared_proto::{Clock, ServerIdentity, SolmePublicKey};
use uuid::Uuid;

use crate::db::{self, to_ms, ConfigRow};
use crate::error::Error;
use crate::proxy::{redact_url, ProxyText, ProxyUrl};
use crate::schema::{config, sync_state};

/// The file `serve` writes with the addresses it listens on.
pub const LISTENING_FILE: &str = "listening.json";

/// The file `serve` holds an exclusive lock on while it runs: one `serve` per data
/// directory (each keeps its own in-memory seat counts).
pub const SERVE_LOCK_FILE: &str = "serve.lock";

/// The held `serve` lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct ServeLock {
    _file: fs::File,
}

/// Takes the `serve` lock of `data_dir`, or says which process holds it.
pub fn lock_serve(data_dir: &Path) -> anyhow::Result<ServeLock> {
    match try_lock_serve(data_dir)? {
        Some(lock) => Ok(lock),
        None => bail!(
            "another `local-server serve` is already running on {} (it holds {}); \
             stop it first: only one may serve a data directory",
            data_dir.display(),
            data_dir.join(SERVE_LOCK_FILE).display()
        ),
    }
}

/// Takes the `serve` lock of `data_dir` when no `serve` holds it (`None` while one runs,
/// in this process or another). A verb that holds it knows no `serve` can start meanwhile.
pub fn try_lock_serve(data_dir: &Path) -> anyhow::Result<Option<ServeLock>> {
    use rustix::fs::{flock, FlockOperation};
    let path = data_dir.join(SERVE_LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(ServeLock { _file: file })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("locking {}", path.display()))),
    }
}

/// Largest PEM file read (keys and CA certificates are a few KiB).
const MAX_PEM_BYTES: u64 = 256 * 1024;

/// One address of the main server, tried in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// The base URL (`https://host:port`).
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("https://[{}]:{}", self.host, self.port)
        } else {
            format!("https://{}:{}", self.host, self.port)
        }
    }
}

shared_proto::text_enum! {
    /// How often `serve` synchronizes by itself (`auto-sync`, the manager page).
    pub enum AutoSyncMode {
        Off => "off",
        Daily => "daily",
        Weekly => "weekly",
    }
}

impl AutoSyncMode {
    /// Time between two automatic synchronizations.
    pub fn period(self) -> Option<chrono::Duration> {
        match self {
            Self::Off => None,
            Self::Daily => Some(chrono::Duration::days(1)),
            Self::Weekly => Some(chrono::Duration::days(7)),
        }
    }
}

/// The configuration as the other modules use it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub server_id: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub solme_public_pem: String,
    pub ca_pem: String,
    pub proxy: Option<ProxyText>,
    pub auto_sync: AutoSyncMode,
}

impl Settings {
    pub fn from_row(data_dir: &Path, row: ConfigRow) -> anyhow::Result<Self> {
        let endpoints: Vec<String> = serde_json::from_str(&row.endpoints)
            .context("reading the stored main-server addresses")?;
        Ok(Self {
            data_dir: data_dir.to_owned(),
            server_id: Uuid::parse_str(&row.server_id).context("reading the stored server id")?,
            endpoints: endpoints
                .iter()
                .map(|e| parse_endpoint(e))
                .collect::<anyhow::Result<_>>()?,
            solme_public_pem: row.solme_public_pem,
            ca_pem: row.ca_pem,
            proxy: row.proxy,
            auto_sync: row.auto_sync.parse().unwrap_or(AutoSyncMode::Off),
        })
    }

    /// Reads the configuration of an initialised data directory.
    pub fn load(data_dir: &Path, conn: &mut SqliteConnection) -> anyhow::Result<Self> {
        Self::from_row(data_dir, db::load_config(conn)?)
    }

    pub fn solme_key(&self) -> Result<SolmePublicKey, Error> {
        SolmePublicKey::from_pem(self.solme_public_pem.as_bytes())
            .map_err(|e| Error::Internal(anyhow!("the stored Solme public key is unreadable: {e}")))
    }
}

/// Reads the server's private keys.
pub fn load_identity(data_dir: &Path) -> anyhow::Result<ServerIdentity> {
    ServerIdentity::load(data_dir).with_context(|| {
        format!(
            "reading this server's key pair in {} (was `local-server init` run?)",
            data_dir.display()
        )
    })
}

/// Parses one main-server address: `https://host[:port][/]`.
pub fn parse_endpoint(text: &str) -> anyhow::Result<Endpoint> {
    let url = url::Url::parse(text.trim()).with_context(|| {
        format!(
            "{:?} is not a URL like https://licensing.solme.example",
            redact_url(text)
        )
    })?;
    if url.scheme() != "https" {
        bail!("the main server address {text:?} must start with https://");
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => bail!("the main server address {text:?} has no host name"),
    };
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        bail!(
            "the main server address {:?} must not carry credentials or a query",
            redact_url(text)
        );
    }
    Ok(Endpoint {
        host,
        port: url.port().unwrap_or(443),
    })
}

/// The endpoints to try: each address as given, except that a single address without
/// a port means port 443 and then port 8080 (local-server/README.md).
pub fn expand_endpoints(addresses: &[String]) -> anyhow::Result<Vec<Endpoint>> {
    let mut out = Vec::new();
    for address in addresses {
        out.push(parse_endpoint(address)?);
    }
    if let [only] = addresses {
        let has_port = url::Url::parse(only.trim())
            .ok()
            .and_then(|u| u.port())
            .is_some();
        if !has_port {
            if let Some(first) = out.first().cloned() {
                out.push(Endpoint {
                    port: 8080,
                    ..first
                });
            }
        }
    }
    if out.is_empty() {
        bail!("give at least one --main-server address");
    }
    Ok(out)
}

fn read_pem(path: &Path, what: &str) -> anyhow::Result<String> {
    use std::io::Read;
    let file =
        fs::File::open(path).with_context(|| format!("opening {what} {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    if text.len() as u64 > MAX_PEM_BYTES {
        bail!("{what} {} is too large to be a PEM file", path.display());
    }
    Ok(text)
}

/// Creates the data directory readable by the owner only (0700: it holds the private
/// keys and the proxy credentials), or restricts an existing one.
pub(crate) fn make_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private", dir.display()))?;
    Ok(())
}

/// The database files of a data directory (removed by a reinstall).
fn db_files(data_dir: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| data_dir.join(format!("{}{suffix}", db::DB_FILE)))
        .collect()
}

/// What `init` is asked to set up.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    /// The license server id Solme allocated.
    pub id: Uuid,
    /// Main-server addresses as given, tried in order (see [`expand_endpoints`]).
    pub main_servers: Vec<String>,
    /// PEM file of Solme's public key.
    pub solme_key: PathBuf,
    /// PEM file of the only CA trusted for synchronization.
    pub ca_cert: PathBuf,
    pub proxy: Option<ProxyText>,
    /// Replace an existing installation (new key pairs, empty state).
    pub force: bool,
}

/// `init`: makes the identity and stores the configuration. Returns a summary to print.
pub fn init(args: &InitOptions, clock: &Clock) -> Result<String, Error> {
    let dir = &args.data_dir;
    let endpoints = expand_endpoints(&args.main_servers)?;
    let solme_pem = read_pem(&args.solme_key, "Solme's public key")?;
    SolmePublicKey::from_pem(solme_pem.as_bytes()).map_err(|e| {
        anyhow!(
            "{} is not Solme's public key: {e}",
            args.solme_key.display()
        )
    })?;
    let ca_pem = read_pem(&args.ca_cert, "the CA certificate")?;
    let cas = openssl::x509::X509::stack_from_pem(ca_pem.as_bytes())
        .map_err(|e| anyhow!("{} is not a PEM certificate: {e}", args.ca_cert.display()))?;
    if cas.is_empty() {
        return Err(anyhow!("{} holds no certificate", args.ca_cert.display()).into());
    }
    if let Some(proxy) = &args.proxy {
        ProxyUrl::parse(proxy.expose())?;
    }

    make_private_dir(dir)?;
    let key_files = [
        dir.join(SERVER_SIGNING_KEY_FILE),
        dir.join(SERVER_ENCRYPTION_KEY_FILE),
    ];
    let installed = key_files.iter().any(|p| p.exists()) || dir.join(db::DB_FILE).exists();
    if installed && !args.force {
        return Err(anyhow!(
            "{} already holds a license server installation; a reinstall makes a new key \
             pair, which Solme's main server refuses until Solme clears the old one. \
             Run again with --force if that is what you want",
            dir.display()
        )
        .into());
    }
    // Held until the reinstall is done, so that no `serve` starts on a half-made
    // installation; refused while one runs on the old one.
    let _serve_lock = if installed {
        Some(lock_serve(dir).context("refusing to reinstall while `serve` runs")?)
    } else {
        None
    };
    if installed {
        for path in key_files.iter().chain(db_files(dir).iter()) {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("removing {}", path.display()))
                        .into())
                }
            }
        }
        log::info!(
            "reinstalling: the old key pair and state in {} were removed",
            dir.display()
        );
    }
    // Told in the output: a manager verb's log shows only errors by default.
    let reinstalled = if installed {
        "Reinstalled: the old key pair and state were removed; the main server refuses \
         the new key pair until Solme clears the old one.\n"
    } else {
        ""
    };

    let identity = ServerIdentity::generate()?;
    identity
        .save(dir)
        .with_context(|| format!("saving the key pair in {}", dir.display()))?;
    let mut conn = db::connect(dir)?;
    let now = to_ms(clock.now());
    let endpoint_urls: Vec<String> = endpoints.iter().map(Endpoint::url).collect();
    let row = ConfigRow {
        id: 1,
        server_id: args.id.to_string(),
        endpoints: serde_json::to_string(&endpoint_urls).context("encoding the addresses")?,
        solme_public_pem: solme_pem,
        ca_pem,
        proxy: args.proxy.clone(),
        auto_sync: AutoSyncMode::Off.as_str().into(),
        created_at: now,
    };
    conn.immediate_transaction(|c| {
        diesel::insert_into(config::table).values(&row).execute(c)?;
        diesel::insert_into(sync_state::table)
            .values((
                sync_state::id.eq(1),
                sync_state::clock_high_water.eq(now),
                sync_state::consecutive_failures.eq(0),
            ))
            .execute(c)?;
        Ok::<_, diesel::result::Error>(())
    })?;
    log::info!(
        "initialised server_id={} fingerprint={}",
        args.id,
        identity.fingerprint()
    );
    Ok(format!(
        "{reinstalled}License server {} initialised in {}.\nKey fingerprint: {}\nMain server: {}\n\
         Next: `local-server sync` ({}) or `local-server export-sync-data FILE` ({}).",
        args.id,
        dir.display(),
        identity.fingerprint(),
        endpoint_urls.join(", then "),
        crate::wording::OVER_THE_INTERNET,
        crate::wording::BY_EMAIL
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_without_port_means_443_then_8080() -> anyhow::Result<()> {
        let eps = expand_endpoints(&["https://licensing.solme.example".into()])?;
        assert_eq!(
            eps.iter().map(Endpoint::url).collect::<Vec<_>>(),
            [
                "https://licensing.solme.example:443",
                "https://licensing.solme.example:8080"
            ]
        );
        let eps = expand_endpoints(&["https://a.example:9443".into()])?;
        assert_eq!(eps.len(), 1);
        let eps = expand_endpoints(&["https://a.example".into(), "https://b.example:8080".into()])?;
        assert_eq!(eps[0].port, 443);
        assert_eq!(eps[1].host, "b.example");
        assert!(expand_endpoints(&["http://a.example".into()]).is_err());
        assert!(expand_endpoints(&["https://u:p@a.example".into()]).is_err());
        Ok(())
    }
}
