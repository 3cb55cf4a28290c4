//! Where replies go: one backend enum, an SMTP relay (lettre) or a directory
//! of `.eml` files.
//!
//! The outbox writes `<name>.eml` atomically under a name fixed by the
//! reply, so writing the same reply twice (a crash between the write and the
//! spool bookkeeping) leaves one file: delivery is exactly once there. Over
//! SMTP a crash between the relay's `250` and the bookkeeping can send a
//! reply twice; that window is the usual one of any MTA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use crate::background::blocking;
use crate::cli::RelayTls;
use crate::queue::spool::write_durably;
use crate::vocabulary::OutgoingEnvelope;

/// Why a reply could not be handed over.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The relay refused the reply for good (5xx): retrying cannot help.
    #[error("refused for good: {0}")]
    Permanent(String),
    /// Anything else: try again later.
    #[error("temporarily failed: {0:#}")]
    Transient(anyhow::Error),
}

/// The outbound backend.
#[derive(Clone)]
pub enum Outbound {
    /// An SMTP relay.
    Relay(AsyncSmtpTransport<Tokio1Executor>),
    /// A directory of `.eml` files.
    Outbox(PathBuf),
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outbound::Relay(_) => f.write_str("Outbound::Relay"),
            Outbound::Outbox(dir) => write!(f, "Outbound::Outbox({})", dir.display()),
        }
    }
}

/// The relay settings from the command line.
#[derive(Debug)]
pub struct RelaySettings {
    /// `smtp://host:port` or `smtps://host:port`.
    pub url: String,
    pub tls: RelayTls,
    /// User name and password.
    pub credentials: Option<(String, SecretString)>,
}

impl Outbound {
    /// An outbox directory, created (owner only) if needed.
    pub fn outbox(dir: &Path) -> anyhow::Result<Outbound> {
        crate::queue::spool::create_private_dir(dir)
            .with_context(|| format!("creating the outbox {}", dir.display()))?;
        Ok(Outbound::Outbox(dir.to_owned()))
    }

    /// An SMTP relay; nothing is connected until the first reply.
    pub fn relay(settings: &RelaySettings) -> anyhow::Result<Outbound> {
        let (host, port, wrapper) = parse_relay_url(&settings.url)?;
        let tls_for = |host: &str| {
            TlsParameters::new(host.to_owned())
                .with_context(|| format!("setting up TLS for the relay {host}"))
        };
        let tls = match (settings.tls, wrapper) {
            (_, true) | (RelayTls::Wrapper, _) => Tls::Wrapper(tls_for(&host)?),
            (RelayTls::None, false) => Tls::None,
            (RelayTls::Opportunistic, false) => Tls::Opportunistic(tls_for(&host)?),
            (RelayTls::Required, false) => Tls::Required(tls_for(&host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(60)));
        if let Some((user, password)) = &settings.credentials {
            if settings.tls == RelayTls::None && !wrapper {
                log::warn!("sending relay credentials over a connection without TLS");
            }
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Outbound::Relay(builder.build()))
    }

    /// Hands the reply `name` over.
    pub async fn send(
        &self,
        name: &str,
        envelope: &OutgoingEnvelope,
        message: Vec<u8>,
    ) -> Result<(), SendError> {
        match self {
            Outbound::Relay(transport) => {
                let to = envelope.to.parse().map_err(|err| {
                    SendError::Permanent(format!("bad recipient {:?}: {err}", envelope.to))
                })?;
                let from = match &envelope.from {
                    Some(from) => Some(from.parse().map_err(|err| {
                        SendError::Permanent(format!("bad sender {from:?}: {err}"))
                    })?),
                    None => None,
                };
                let smtp_envelope = Envelope::new(from, vec![to])
                    .map_err(|err| SendError::Permanent(format!("bad envelope: {err}")))?;
                match transport.send_raw(&smtp_envelope, &message).await {
                    Ok(_) => Ok(()),
                    Err(err) if err.is_permanent() => Err(SendError::Permanent(err.to_string())),
                    Err(err) => Err(SendError::Transient(
                        anyhow::Error::new(err).context("sending through the relay"),
                    )),
                }
            }
            Outbound::Outbox(dir) => {
                let dir = dir.clone();
                let target = dir.join(format!("{name}.eml"));
                blocking(move || write_durably(&dir, &target, &message))
                    .await
                    .and_then(|written| written)
                    .map_err(SendError::Transient)
            }
        }
    }
}

/// `smtp://host[:port]` (port 25) or `smtps://host[:port]` (port 465).
fn parse_relay_url(text: &str) -> anyhow::Result<(String, u16, bool)> {
    let url =
        url::Url::parse(text).with_context(|| format!("the relay URL {text:?} is invalid"))?;
    let wrapper = match url.scheme() {
        "smtp" => false,
        "smtps" => true,
        other => bail!("the relay URL must start with smtp:// or smtps://, not {other}://"),
    };
    if !url.username().is_empty() || url.password().is_some() {
        bail!("put the relay credentials in --smtp-relay-user and --smtp-relay-password-file, not in the URL");
    }
    let Some(host) = url.host_str() else {
        bail!("the relay URL {text:?} names no host");
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port().unwrap_or(if wrapper { 465 } else { 25 });
    Ok((host, port, wrapper))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls() {
        assert_eq!(
            parse_relay_url("smtp://127.0.0.1:2526").unwrap(),
            ("127.0.0.1".into(), 2526, false)
        );
        assert_eq!(
            parse_relay_url("smtps://mail.example").unwrap(),
            ("mail.example".into(), 465, true)
        );
        assert!(parse_relay_url("http://mail.example").is_err());
        assert!(parse_relay_url("smtp://u:p@mail.example").is_err());
    }
}
