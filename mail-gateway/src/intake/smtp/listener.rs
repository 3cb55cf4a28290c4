//! Accepting connections for the SMTP receiver: the limits on sessions (at once and
//! per client address), the greeting, STARTTLS, and the drain at a stop (see
//! [`super`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use openssl::ssl::Ssl;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::session::Session;
use super::{End, Smtp};
use crate::background;

/// Sessions per client address, shared by the sessions (which run on any
/// thread of the runtime).
#[derive(Default)]
struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One session's place in [`PerIp`]; given back when dropped.
struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<IpSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            per_ip: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self
            .per_ip
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections until `shutdown` becomes true, then drains: waits
/// up to the drain time for the sessions (see the module doc).
pub async fn serve(smtp: Arc<Smtp>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(smtp.settings.max_connections));
    let per_ip = Arc::new(PerIp::default());
    let mut sessions = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Running out of file descriptors and the like: wait a
                    // little instead of spinning.
                    log::warn!("smtp accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            // Reap finished sessions as they end.
            Some(joined) = sessions.join_next() => {
                background::log_abnormal_end("an SMTP session", joined);
                continue;
            }
            _ = shutdown.wait_for(|stopping| *stopping) => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            let count = smtp.settings.max_connections;
            let why = format!("{count} connections already");
            turn_away(stream, peer, &why, "Too many connections").await;
            continue;
        };
        let Some(slot) = per_ip.take(peer.ip(), smtp.settings.max_connections_per_ip) else {
            let count = smtp.settings.max_connections_per_ip;
            let why = format!("{count} connections from this address already");
            turn_away(stream, peer, &why, "Too many connections from your address").await;
            continue;
        };
        let smtp = smtp.clone();
        let shutdown = shutdown.clone();
        sessions.spawn(async move {
            if let Err(err) = connection(&smtp, stream, peer, shutdown).await {
                log::debug!("smtp peer={peer} session ended: {err:#}");
            }
            drop(slot);
            drop(permit);
        });
    }
    drop(listener);
    if !sessions.is_empty() {
        log::info!(
            "smtp: waiting up to {:?} for {} sessions to finish",
            smtp.settings.drain_timeout,
            sessions.len()
        );
    }
    let drained = tokio::time::timeout(smtp.settings.drain_timeout, async {
        while let Some(joined) = sessions.join_next().await {
            background::log_abnormal_end("an SMTP session", joined);
        }
    })
    .await;
    if drained.is_err() {
        log::warn!(
            "smtp: {} sessions cut short at the stop (their messages were not accepted)",
            sessions.len()
        );
        sessions.shutdown().await;
    }
}

/// Tells a connection beyond a limit to come back later, and closes it; `why` is
/// for the log, `reply` for the client.
async fn turn_away(mut stream: TcpStream, peer: SocketAddr, why: &str, reply: &str) {
    log::warn!("smtp peer={peer} refused: {why}");
    let line = format!("421 4.7.0 {reply}, try again later\r\n");
    let _ = stream.write_all(line.as_bytes()).await;
}

async fn connection(
    smtp: &Smtp,
    mut stream: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    let greeting = format!(
        "220 {} ESMTP Solme mail gateway ready\r\n",
        smtp.settings.hostname
    );
    stream.write_all(greeting.as_bytes()).await?;
    let deadline = Instant::now() + smtp.settings.session_timeout;
    let mut session = Session::new(smtp, peer, false, deadline, shutdown.clone());
    match session.run(&mut stream).await? {
        End::Closed => Ok(()),
        End::StartTls => {
            let Some(acceptor) = &smtp.settings.tls else {
                return Ok(());
            };
            let ssl = Ssl::new(acceptor.context()).context("starting TLS")?;
            let mut tls = tokio_openssl::SslStream::new(ssl, stream).context("starting TLS")?;
            let handshake_deadline = deadline.min(Instant::now() + smtp.settings.timeout);
            tokio::time::timeout_at(handshake_deadline, Pin::new(&mut tls).accept())
                .await
                .context("TLS handshake timed out")?
                .context("TLS handshake failed")?;
            // RFC 3207: the session starts over, and nothing the client sent
            // before the handshake is kept; the connection's deadline stays.
            let mut session = Session::new(smtp, peer, true, deadline, shutdown);
            session.run(&mut tls).await.map(|_| ())
        }
    }
}
