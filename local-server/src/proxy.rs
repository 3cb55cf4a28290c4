//! Reaching the main server: directly or through an HTTP proxy (`CONNECT`), as a TCP
//! stream that awc then runs TLS over.
//!
//! awc has no proxy support, so [`TunnelConnector`] is the TCP connector handed to
//! `awc::Connector::connector`: it opens the stream itself (directly, or to the proxy
//! followed by the `CONNECT` handshake of `async-http-proxy`), and awc does TLS to the
//! main server through it, so the proxy never sees inside. Failures are typed
//! ([`TunnelError`]) and travel inside the `io::Error` awc requires, so a caller can tell
//! a DNS failure from a refused port from a proxy asking for credentials.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use actix_service::Service;
use actix_tls::connect::{ConnectError as TcpConnectError, ConnectInfo, Connection};
use anyhow::{anyhow, bail};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use diesel::sqlite::{Sqlite, SqliteValue};
use futures_util::future::LocalBoxFuture;
use tokio::net::TcpStream;

/// Time allowed for name resolution plus the TCP connection (per address).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A proxy address as given (flag, environment or configuration), before parsing. It
/// may carry a password: `Debug` and `Display` hide it, [`ProxyText::expose`] gives the
/// text to the one place that parses it. The configuration row stores it as text.
#[derive(Clone, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub struct ProxyText(String);

impl ProxyText {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A proxy address given on the command line (or in its environment variable) is
/// checked when the flags are read: a usage mistake, told with the expected form.
/// Empty text stands for "no override".
impl std::str::FromStr for ProxyText {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if !text.trim().is_empty() {
            ProxyUrl::parse(text).map_err(|e| {
                anyhow!("{e}; expected http://host:port or http://user:password@host:port")
            })?;
        }
        Ok(Self(text.to_owned()))
    }
}

impl FromSql<Text, Sqlite> for ProxyText {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        <String as FromSql<Text, Sqlite>>::from_sql(value).map(Self)
    }
}

impl ToSql<Text, Sqlite> for ProxyText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        <str as ToSql<Text, Sqlite>>::to_sql(&self.0, out)
    }
}

impl fmt::Debug for ProxyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyText({:?})", redact_url(&self.0))
    }
}

impl fmt::Display for ProxyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// A URL with its password (if any) replaced by `***`; text that is not a URL loses
/// everything before its last `@`.
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            if url.set_password(Some("***")).is_ok() {
                url.to_string()
            } else {
                redact(text)
            }
        }
        Ok(_) => text.to_owned(),
        Err(_) => redact(text),
    }
}

/// A proxy address with optional credentials. `Debug` and `Display` hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    password: Option<String>,
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.username {
            Some(user) => write!(f, "http://{user}:***@{}:{}", self.host, self.port),
            None => write!(f, "http://{}:{}", self.host, self.port),
        }
    }
}

impl ProxyUrl {
    /// Parses `http://[user:password@]host[:port]` (port 3128 when absent, the usual
    /// proxy port; a bare `host:port` is accepted as environment variables often hold).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let with_scheme = if text.contains("://") {
            text.to_owned()
        } else {
            format!("http://{text}")
        };
        let url = url::Url::parse(&with_scheme)
            .map_err(|_| anyhow!("the proxy address {:?} is not understood", redact(text)))?;
        if url.scheme() != "http" {
            bail!(
                "the proxy address must start with http:// (the connection to the main \
                 server is encrypted end to end through the proxy)"
            );
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => bail!("the proxy address has no host name"),
        };
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| anyhow!("the proxy credentials are not valid UTF-8"))
        };
        let username = match url.username() {
            "" => None,
            user => Some(decode(user)?),
        };
        let password = url.password().map(decode).transpose()?;
        Ok(Self {
            host,
            port: url.port().unwrap_or(3128),
            username,
            password,
        })
    }

    pub fn has_credentials(&self) -> bool {
        self.username.is_some()
    }

    /// The password, for the support bundle to scrub it out of what it writes.
    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

/// Hides the credentials of a proxy address that failed to parse.
fn redact(text: &str) -> String {
    match text.rfind('@') {
        Some(at) => format!("***{}", &text[at..]),
        None => text.to_owned(),
    }
}

fn percent_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// Which proxy to use for which host.
#[derive(Debug, Clone, Default)]
pub struct ProxySettings {
    pub proxy: Option<ProxyUrl>,
    /// Where the proxy setting came from, for reports.
    pub source: &'static str,
    /// NO_PROXY entries, lower-case.
    pub no_proxy: Vec<String>,
}

impl ProxySettings {
    /// The proxy in force: the `--proxy` flag, else the stored one, else `HTTPS_PROXY`
    /// (or `https_proxy`). `NO_PROXY` (or `no_proxy`) applies to all of them.
    pub fn resolve(flag: Option<&ProxyText>, stored: Option<&ProxyText>) -> anyhow::Result<Self> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let (text, source) = if let Some(flag) = flag.filter(|f| !f.expose().trim().is_empty()) {
            (Some(flag.expose().to_owned()), "--proxy")
        } else if let Some(stored) = stored {
            (Some(stored.expose().to_owned()), "configuration")
        } else if let Some(v) = env("HTTPS_PROXY") {
            (Some(v), "HTTPS_PROXY")
        } else if let Some(v) = env("https_proxy") {
            (Some(v), "https_proxy")
        } else {
            (None, "none")
        };
        let no_proxy = env("NO_PROXY")
            .or_else(|| env("no_proxy"))
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            proxy: text.as_deref().map(ProxyUrl::parse).transpose()?,
            source,
            no_proxy,
        })
    }

    /// The proxy to use for `host`, or `None` to connect directly.
    pub fn for_host(&self, host: &str) -> Option<&ProxyUrl> {
        let proxy = self.proxy.as_ref()?;
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        let bypass = self.no_proxy.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.trim_start_matches('.');
            // An entry may carry a port (`host:443`); compare the host part only.
            let entry = match entry.rsplit_once(':') {
                Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
                _ => entry,
            };
            host == entry || host.ends_with(&format!(".{entry}"))
        });
        (!bypass).then_some(proxy)
    }
}

/// Why a stream to the main server could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("the name {host} could not be resolved: {reason}")]
    Dns { host: String, reason: String },
    #[error("nothing answers on {target}: {reason}")]
    Refused { target: String, reason: String },
    #[error("no answer from {target} within {}s", CONNECT_TIMEOUT.as_secs())]
    Timeout { target: String },
    #[error("the proxy {proxy} refused the connection to {target} with HTTP {status}")]
    ProxyStatus {
        proxy: String,
        target: String,
        status: u16,
    },
    /// 407, or 401 as some proxies (tinyproxy) answer `CONNECT`.
    #[error("the proxy {proxy} {} (HTTP {status})", if *.had_credentials { "rejected the user name and password" } else { "asks for a user name and password" })]
    ProxyAuth {
        proxy: String,
        status: u16,
        had_credentials: bool,
    },
    #[error("the proxy {proxy} gave an answer that is not HTTP: {reason}")]
    ProxyProtocol { proxy: String, reason: String },
}

/// Resolves `host:port` (the proxy's, or the main server's when direct).
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, TunnelError> {
    let dns = |reason: String| TunnelError::Dns {
        host: host.to_owned(),
        reason,
    };
    let lookup = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| dns("no answer from the name server".into()))?
        .map_err(|e| dns(e.to_string()))?;
    let addrs: Vec<SocketAddr> = lookup.collect();
    if addrs.is_empty() {
        return Err(dns("no address found".into()));
    }
    Ok(addrs)
}

/// Opens a TCP connection to one of `addrs` (the first that answers).
pub async fn connect_tcp(addrs: &[SocketAddr], target: &str) -> Result<TcpStream, TunnelError> {
    let mut last = TunnelError::Timeout {
        target: target.to_owned(),
    };
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // Small request/answer exchanges: do not wait for Nagle.
                drop(stream.set_nodelay(true));
                return Ok(stream);
            }
            Ok(Err(e)) => {
                last = TunnelError::Refused {
                    target: target.to_owned(),
                    reason: e.to_string(),
                }
            }
            Err(_) => {
                last = TunnelError::Timeout {
                    target: target.to_owned(),
                }
            }
        }
    }
    Err(last)
}

/// Asks `proxy` (already connected on `stream`) to tunnel to `host:port`.
pub async fn proxy_connect(
    stream: &mut TcpStream,
    proxy: &ProxyUrl,
    host: &str,
    port: u16,
) -> Result<(), TunnelError> {
    use async_http_proxy::HttpError;
    let target = format!("{host}:{port}");
    let handshake = async {
        match (&proxy.username, &proxy.password) {
            (Some(user), pass) => {
                async_http_proxy::http_connect_tokio_with_basic_auth(
                    stream,
                    host,
                    port,
                    user,
                    pass.as_deref().unwrap_or(""),
                )
                .await
            }
            (None, _) => async_http_proxy::http_connect_tokio(stream, host, port).await,
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT * 2, handshake).await {
        Err(_) => Err(TunnelError::Timeout { target }),
        Ok(Ok(())) => Ok(()),
        Ok(Err(HttpError::HttpCode200(status @ (401 | 407)))) => Err(TunnelError::ProxyAuth {
            proxy: proxy.to_string(),
            status,
            had_credentials: proxy.has_credentials(),
        }),
        Ok(Err(HttpError::HttpCode200(status))) => Err(TunnelError::ProxyStatus {
            proxy: proxy.to_string(),
            target,
            status,
        }),
        Ok(Err(e)) => Err(TunnelError::ProxyProtocol {
            proxy: proxy.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Opens a stream to `host:port`, through the proxy when one applies.
pub async fn open_stream(
    settings: &ProxySettings,
    host: &str,
    port: u16,
) -> Result<TcpStream, TunnelError> {
    match settings.for_host(host) {
        None => {
            let addrs = resolve(host, port).await?;
            connect_tcp(&addrs, &format!("{host}:{port}")).await
        }
        Some(proxy) => {
            let addrs = resolve(&proxy.host, proxy.port).await?;
            let mut stream =
                connect_tcp(&addrs, &format!("the proxy {}:{}", proxy.host, proxy.port)).await?;
            proxy_connect(&mut stream, proxy, host, port).await?;
            Ok(stream)
        }
    }
}

/// The TCP connector given to awc: direct or through the proxy, per host.
#[derive(Clone)]
pub struct TunnelConnector {
    settings: Rc<ProxySettings>,
}

impl TunnelConnector {
    pub fn new(settings: ProxySettings) -> Self {
        Self {
            settings: Rc::new(settings),
        }
    }
}

impl Service<ConnectInfo<awc::http::Uri>> for TunnelConnector {
    type Response = Connection<awc::http::Uri, TcpStream>;
    type Error = TcpConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_service::always_ready!();

    fn call(&self, req: ConnectInfo<awc::http::Uri>) -> Self::Future {
        let settings = self.settings.clone();
        let host = req.hostname().trim_matches(['[', ']']).to_owned();
        let port = req.port();
        let uri = req.request().clone();
        Box::pin(async move {
            let stream = open_stream(&settings, &host, port)
                .await
                .map_err(|e| TcpConnectError::Io(io::Error::other(e)))?;
            Ok(Connection::new(uri, stream))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_and_hide_passwords() -> anyhow::Result<()> {
        let p = ProxyUrl::parse("http://alice:s%40cret@proxy.example:8888")?;
        assert_eq!(p.host, "proxy.example");
        assert_eq!(p.port, 8888);
        assert_eq!(p.username.as_deref(), Some("alice"));
        assert_eq!(p.password.as_deref(), Some("s@cret"));
        assert!(!format!("{p} {p:?}").contains("cret"));
        assert_eq!(ProxyUrl::parse("proxy.example")?.port, 3128);
        assert!(ProxyUrl::parse("https://proxy.example").is_err());
        let err = ProxyUrl::parse("http://bob:pw@")
            .err()
            .map(|e| e.to_string());
        assert!(!err.unwrap_or_default().contains("pw"));
        Ok(())
    }

    #[test]
    fn no_proxy_bypasses_listed_hosts() {
        let settings = ProxySettings {
            proxy: ProxyUrl::parse("http://proxy:3128").ok(),
            source: "test",
            no_proxy: vec![
                "solme.example".into(),
                "10.0.0.1".into(),
                ".corp:443".into(),
            ],
        };
        assert!(settings.for_host("licensing.solme.example").is_none());
        assert!(settings.for_host("solme.example").is_none());
        assert!(settings.for_host("10.0.0.1").is_none());
        assert!(settings.for_host("x.corp").is_none());
        assert!(settings.for_host("notsolme.example").is_some());
        assert!(settings.for_host("127.0.0.1").is_some());
    }
}
