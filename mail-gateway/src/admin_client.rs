//! The client of the main server's admin API (docs/API.md): mail sync,
//! key-clear requests, the decided-request notices, the reminders and the customer
//! portal's sign-in links.
//!
//! Every failure is sorted here into the distinctions the worker needs: a
//! refusal (the main server answered 4xx: permanent, the customer is told),
//! an outage before the request reached the main server (retried), or a
//! failure after it may have reached it (timeout, reset, 5xx: retried too,
//! but the main server may have acted on the first try, which changes how
//! a later "already used" refusal is explained).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shared_proto::admin_api::{
    DecidedKeyClearRequest, DuePortalLink, DueReminder, KeyClearRequest, MailSync,
    NewKeyClearRequest, SyncAnswer,
};
use shared_proto::receipt::{MailReceipt, ReceiptRecorded};
use shared_proto::{ApiError, ErrorCode};
use uuid::Uuid;

use crate::classify::sender_auth::SenderCheck;

/// Largest answer body read from the main server (a license file is a few KiB).
const MAX_ANSWER: usize = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call to the main server did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum MainServerError {
    /// The main server refused the request (4xx): final, the sender is told.
    #[error("the main server refused: {}: {}", .0.code, .0.message)]
    Refused(ApiRefusal),
    /// The main server could not be reached, or refused to look at the
    /// request (401/408/429): it did not act on it. Try again later.
    #[error("the main server is unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The request may have reached the main server and been acted on, but
    /// no usable answer came back (timeout, reset, 5xx, unreadable answer).
    /// Try again later; the main server answers a repeated mail sync with
    /// the same license file (docs/API.md).
    #[error("no answer from the main server: {0:#}")]
    Uncertain(anyhow::Error),
}

/// A refusal of the main server: the HTTP status and the API's error body.
#[derive(Debug)]
pub struct ApiRefusal {
    pub status: u16,
    pub code: ErrorCode,
    pub message: String,
}

/// The admin API client. Not `Send` (awc): it lives on the gateway's
/// single-threaded runtime, and clones share one connection pool.
#[derive(Clone)]
pub struct AdminClient {
    client: awc::Client,
    base: String,
    token: SecretString,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client for the admin API at `base` (e.g. `https://main.example:8081`) that
    /// trusts only the CA certificate in `ca` (needed for `https://`). A plain
    /// `http://` base must be a loopback address: the token would cross a network in
    /// the clear.
    pub fn new(base: &str, ca: Option<&Path>, token: SecretString) -> anyhow::Result<AdminClient> {
        let base = base.trim_end_matches('/').to_owned();
        let mut connector = awc::Connector::new();
        if base.starts_with("https://") {
            let ca = ca.with_context(|| {
                format!(
                    "--main-server-ca is needed for {base}: the CA certificate of the main \
                     server (ca.pem in its data directory)"
                )
            })?;
            let pem = std::fs::read(ca)
                .with_context(|| format!("reading --main-server-ca {}", ca.display()))?;
            let tls = shared_proto::tls::pinned_connector(&pem)
                .with_context(|| format!("reading --main-server-ca {}", ca.display()))?;
            connector = connector.openssl(tls);
        } else if base.starts_with("http://") {
            anyhow::ensure!(
                shared_proto::tls::is_loopback_http_url(&base),
                "--main-server {base}: plain http:// is only for a main server on loopback \
                 (started with --admin-plain-http); use https:// and --main-server-ca"
            );
        } else {
            anyhow::bail!("--main-server must start with https:// (got {base})");
        }
        // One client for the whole process: building a connector is costly.
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(TIMEOUT)
            .finish();
        Ok(AdminClient {
            client,
            base,
            token,
        })
    }

    /// Turns sync data mailed by `sender` into a license file.
    pub async fn mail_sync(
        &self,
        sender: &str,
        sync_data: &str,
    ) -> Result<SyncAnswer, MainServerError> {
        let body = MailSync {
            sender: sender.to_owned(),
            sync_data: sync_data.to_owned(),
        };
        self.call(awc::http::Method::POST, "/admin/v1/mail/sync", Some(&body))
            .await
    }

    /// Passes on an installation receipt mailed by `sender`.
    pub async fn mail_receipt(
        &self,
        sender: &str,
        receipt: &str,
    ) -> Result<ReceiptRecorded, MainServerError> {
        let body = MailReceipt {
            sender: sender.to_owned(),
            receipt: receipt.to_owned(),
        };
        self.call(
            awc::http::Method::POST,
            "/admin/v1/mail/receipt",
            Some(&body),
        )
        .await
    }

    /// Files a key-clear request for an operator.
    pub async fn key_clear_request(
        &self,
        server_id: Uuid,
        sender: &str,
        message_id: &str,
        text: &str,
        checked: &SenderCheck,
    ) -> Result<KeyClearRequest, MainServerError> {
        let body = NewKeyClearRequest {
            server_id,
            sender: sender.to_owned(),
            message_id: message_id.to_owned(),
            text: text.to_owned(),
            sender_auth: checked.auth,
            sender_auth_detail: checked.detail.clone(),
        };
        self.call(
            awc::http::Method::POST,
            "/admin/v1/key-clear-requests",
            Some(&body),
        )
        .await
    }

    /// Decided key-clear requests whose contacts were not told yet.
    pub async fn unnotified(&self) -> Result<Vec<DecidedKeyClearRequest>, MainServerError> {
        self.call::<(), _>(
            awc::http::Method::GET,
            "/admin/v1/key-clear-requests/unnotified",
            None,
        )
        .await
    }

    /// Records that the sender of request `id` was told.
    pub async fn mark_notified(&self, id: Uuid) -> Result<(), MainServerError> {
        self.record(&format!("/admin/v1/key-clear-requests/{id}/notified"))
            .await
    }

    /// Records the reminders that became due and returns those to mail.
    pub async fn claim_reminders(&self) -> Result<Vec<DueReminder>, MainServerError> {
        self.call::<(), _>(awc::http::Method::POST, "/admin/v1/reminders/claim", None)
            .await
    }

    /// Records that reminder `id` is in the outgoing spool (idempotent).
    pub async fn reminder_handed(&self, id: Uuid) -> Result<(), MainServerError> {
        self.record(&format!("/admin/v1/reminders/{id}/handed"))
            .await
    }

    /// The customer portal's sign-in links to mail (each holds its single-use secret in
    /// `path`: never log it).
    pub async fn claim_portal_links(&self) -> Result<Vec<DuePortalLink>, MainServerError> {
        self.call::<(), _>(
            awc::http::Method::POST,
            "/admin/v1/portal-links/claim",
            None,
        )
        .await
    }

    /// Records that sign-in link `id` is in the outgoing spool (idempotent).
    pub async fn portal_link_handed(&self, id: Uuid) -> Result<(), MainServerError> {
        self.record(&format!("/admin/v1/portal-links/{id}/handed"))
            .await
    }

    /// POSTs to `path` without a body, for a call whose answer only says it was
    /// recorded.
    async fn record(&self, path: &str) -> Result<(), MainServerError> {
        let _: serde_json::Value = self
            .call::<(), _>(awc::http::Method::POST, path, None)
            .await?;
        Ok(())
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: awc::http::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, MainServerError> {
        let url = format!("{}{}", self.base, path);
        // A refusal kept from an earlier handshake on this thread is not this call's.
        let _ = shared_proto::tls::take_certificate_refusal();
        let request = self.client.request(method, &url).insert_header((
            "Authorization",
            format!("Bearer {}", self.token.expose_secret()),
        ));
        let sent = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        };
        let mut response = sent.map_err(|err| {
            use awc::error::{ConnectError, SendRequestError};
            // Only a failure to connect proves that the request never left;
            // after that (sending, waiting, a reset) it may have arrived. awc
            // reports a connection closed while waiting for the answer as
            // "disconnected", which is no proof.
            let connect = matches!(
                err,
                SendRequestError::Connect(ref cause) if !matches!(cause, ConnectError::Disconnected)
            );
            // The verify code the pinned connector kept (never OpenSSL's text).
            let err = match shared_proto::tls::take_certificate_refusal() {
                Some(shared_proto::tls::CertificateRefusal::UntrustedIssuer) => anyhow::anyhow!(
                    "calling {url}: the main server's certificate is not from the CA in \
                     --main-server-ca"
                ),
                Some(refusal) => {
                    anyhow::anyhow!("calling {url}: {}", refusal.describe(chrono::Utc::now()))
                }
                None => anyhow::anyhow!("calling {url}: {err}"),
            };
            if connect {
                MainServerError::Unavailable(err)
            } else {
                MainServerError::Uncertain(err)
            }
        })?;
        let status = response.status();
        let bytes = response.body().limit(MAX_ANSWER).await.map_err(|err| {
            MainServerError::Uncertain(anyhow::anyhow!("reading the answer of {url}: {err}"))
        })?;
        if status.is_success() {
            // 204 has no body: read it as JSON null.
            let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(bytes).map_err(|err| {
                MainServerError::Uncertain(anyhow::anyhow!(
                    "the answer of {url} is not what docs/API.md says: {err}"
                ))
            });
        }
        // A 5xx may come after the main server acted (a failure while
        // answering): the request may have had its effect.
        if status.is_server_error() || !status.is_client_error() {
            return Err(MainServerError::Uncertain(anyhow::anyhow!(
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            )));
        }
        // 401 means our own token is wrong, 408/429 ask us to come back: all
        // are the gateway's problem, not the customer's, so they are
        // retried; the main server refused them before acting.
        if matches!(status.as_u16(), 401 | 408 | 429) {
            return Err(MainServerError::Unavailable(anyhow::anyhow!(
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            )));
        }
        // A 4xx without the API's error body did not come from the admin
        // API (a wrong URL, a proxy in the way): the gateway's problem, retried.
        let Ok(body) = serde_json::from_slice::<ApiError>(&bytes) else {
            return Err(MainServerError::Unavailable(anyhow::anyhow!(
                "{url} answered {status} without an API error body: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            )));
        };
        Err(MainServerError::Refused(ApiRefusal {
            status: status.as_u16(),
            code: body.code,
            message: body.message,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(base: &str, ca: Option<&Path>) -> String {
        let token = SecretString::from("not-a-real-token".to_owned());
        match AdminClient::new(base, ca, token) {
            Ok(_) => panic!("{base} was accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn the_admin_api_is_called_over_https_with_a_pinned_ca_or_on_loopback() {
        assert!(refusal("https://main.example:8081", None).contains("--main-server-ca is needed"));
        let missing = Path::new("/nonexistent/ca.pem");
        assert!(refusal("https://main.example:8081", Some(missing)).contains("reading"));
        assert!(refusal("http://main.example:8081", None).contains("plain http:// is only"));
        assert!(refusal("ftp://main.example", None).contains("must start with https://"));
    }
}
