//! The admin API client of the CLI: where to send requests, with which token, and how
//! answers and failures come back.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use shared_proto::{ApiError, ErrorCode};

use crate::cli::AdminArgs;
use crate::data_dir::DataDir;
use crate::tokens::read_token_file;
use shared_proto::admin_api::Listening;

/// Largest answer accepted from the admin API (listings of many ids can be big).
const MAX_ANSWER: usize = 256 * 1024 * 1024;

/// Why a command failed, deciding the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with a refusal.
    #[error("{code}: {message}")]
    Refused { code: ErrorCode, message: String },
    /// The server could not be reached: worth retrying.
    #[error("cannot reach the admin API at {url}: {cause}")]
    Unreachable { url: String, cause: String },
    /// The server failed (5xx: database down, overload, …): worth retrying too.
    #[error("the admin API failed ({status}): {message}")]
    ServerFailed { status: u16, message: String },
    /// A check ran and found a problem (a broken audit chain): its report is the
    /// output, and the command exits 1.
    #[error("{0}")]
    CheckFailed(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Where to send requests and with which token.
pub struct Client {
    base: String,
    token: SecretString,
    /// Where the token came from, for the advice when the server refuses it.
    token_path: PathBuf,
    http: awc::Client,
    /// The pinned CA file, for the error when the server's certificate is not its;
    /// `None` for a plain-HTTP URL.
    ca: Option<PathBuf>,
}

impl Client {
    /// The URL from `--admin-url` or `DATA_DIR/listening.json`, the token from
    /// `--token-file` or `DATA_DIR/admin-token`, the CA the server's certificate must
    /// come from from `--ca` or `DATA_DIR/ca.pem` (the system's CAs are never trusted).
    pub fn from_args(args: &AdminArgs) -> anyhow::Result<Self> {
        let dir = args.data_dir.as_ref().map(DataDir::new);
        let base = match (&args.admin_url, &dir) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, Some(dir)) => {
                let path = dir.listening();
                let text = std::fs::read(&path).with_context(|| {
                    format!(
                        "reading {} (is `main-server serve` running?)",
                        path.display()
                    )
                })?;
                let listening: Listening = serde_json::from_slice(&text)
                    .with_context(|| format!("reading {}", path.display()))?;
                listening.admin.to_string()
            }
            (None, None) => anyhow::bail!("give --data-dir or --admin-url"),
        };
        let ca = if base.starts_with("https://") {
            let ca = match (&args.ca, &dir) {
                (Some(path), _) => path.clone(),
                (None, Some(dir)) => dir.ca_cert(),
                (None, None) => anyhow::bail!(
                    "give --ca FILE (ca.pem of the main server's data directory) or --data-dir"
                ),
            };
            Some(ca)
        } else if base.starts_with("http://") {
            anyhow::ensure!(
                shared_proto::tls::is_loopback_http_url(&base),
                "refusing to send a token in the clear to {base}: the admin API speaks \
                 HTTPS (https://…); http:// is only for a server on loopback started with \
                 --admin-plain-http"
            );
            None
        } else {
            anyhow::bail!("the admin URL must start with https:// (got {base})");
        };
        let token_path: PathBuf = match (&args.token_file, &dir) {
            (Some(path), _) => path.clone(),
            (None, Some(dir)) => dir.admin_token(),
            (None, None) => anyhow::bail!("give --data-dir or --token-file"),
        };
        let token = read_token_file(&token_path)?;
        let mut connector = awc::Connector::new();
        if let Some(ca) = &ca {
            let pem = std::fs::read(ca)
                .with_context(|| format!("reading the CA certificate {}", ca.display()))?;
            let tls = shared_proto::tls::pinned_connector(&pem)
                .with_context(|| format!("reading the CA certificate {}", ca.display()))?;
            connector = connector.openssl(tls);
        }
        let http = awc::Client::builder()
            .connector(connector)
            .timeout(Duration::from_secs(60));
        Ok(Self {
            base,
            token,
            token_path,
            http: http.finish(),
            ca,
        })
    }

    /// How a failure to talk to the server reads: a certificate from another CA is a
    /// set-up mistake (not worth retrying), anything else the server being away.
    fn unreachable(&self, failure: &dyn std::fmt::Display) -> CliError {
        let cause = failure.to_string();
        // The verify code the pinned connector kept decides, never OpenSSL's text.
        let refusal = shared_proto::tls::take_certificate_refusal();
        match (&self.ca, refusal) {
            (Some(ca), Some(refusal)) => {
                let why = match refusal {
                    shared_proto::tls::CertificateRefusal::UntrustedIssuer => {
                        "presented a certificate that is not from the expected CA".to_owned()
                    }
                    other => format!("was refused: {}", other.describe(chrono::Utc::now())),
                };
                CliError::Other(anyhow::anyhow!(
                    "the admin API at {} {why} (the CA trusted: {}; give the server's ca.pem \
                     with --ca)",
                    self.base,
                    ca.display()
                ))
            }
            (Some(_), None) => CliError::Unreachable {
                url: self.base.clone(),
                cause,
            },
            (None, _) => CliError::Unreachable {
                url: self.base.clone(),
                cause: format!("{cause} (if the server serves HTTPS, use https://)"),
            },
        }
    }

    pub(super) async fn send<B: Serialize>(
        &self,
        method: awc::http::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base);
        // A refusal kept from an earlier handshake on this thread is not this call's.
        let _ = shared_proto::tls::take_certificate_refusal();
        let request = self.http.request(method, &url).insert_header((
            "Authorization",
            format!("Bearer {}", self.token.expose_secret()),
        ));
        let unreachable = |e: &dyn std::fmt::Display| self.unreachable(e);
        let mut response = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        }
        .map_err(|e| unreachable(&e))?;
        let bytes = response
            .body()
            .limit(MAX_ANSWER)
            .await
            .map_err(|e| unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes)
                .context("the admin API answered something that is not JSON")
                .map_err(CliError::Other);
        }
        let error = serde_json::from_slice::<ApiError>(&bytes).ok();
        if status.is_server_error() {
            // Not a refusal of this command: the server could not do it right now.
            let message = error.map_or_else(
                || String::from_utf8_lossy(&bytes).chars().take(500).collect(),
                |e| e.message,
            );
            return Err(CliError::ServerFailed {
                status: status.as_u16(),
                message,
            });
        }
        match error {
            // The server's words are for API callers (they name the header); a person
            // at the command line is told where the refused token came from.
            Some(error) if error.code == ErrorCode::Unauthorized => Err(CliError::Refused {
                code: error.code,
                message: format!(
                    "the admin API does not accept the token in {} (unknown, rotated away \
                     or revoked): check that file, or ask an admin for a new token",
                    self.token_path.display()
                ),
            }),
            Some(error) => Err(CliError::Refused {
                code: error.code,
                message: error.message,
            }),
            // Not the admin API's answer (a wrong URL, a proxy in the way).
            None => Err(CliError::Other(anyhow::anyhow!(
                "the admin API answered {status} without an error body: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(500)
                    .collect::<String>()
            ))),
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let value = self.send::<()>(awc::http::Method::GET, path, None).await?;
        decode(value)
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        decode(self.send(awc::http::Method::POST, path, Some(body)).await?)
    }
}

pub(super) fn decode<T: DeserializeOwned>(value: Value) -> Result<T, CliError> {
    serde_json::from_value(value)
        .context("the admin API answered in an unexpected shape")
        .map_err(CliError::Other)
}
