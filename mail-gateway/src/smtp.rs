//! The gateway's own SMTP receiver: commands parsed by `smtp-proto`, the
//! session loop here.
//!
//! Bounds: command lines of at most [`MAX_LINE`] bytes, messages of at most
//! `--max-message-size` bytes (advertised as `SIZE`, checked against the
//! `MAIL FROM` SIZE parameter and counted while the data arrives), one
//! recipient address (the licensing address), `--max-connections` sessions
//! at once and `--max-connections-per-ip` from one address,
//! `--smtp-timeout-secs` of silence, `--smtp-data-timeout-secs` for one
//! message and `--smtp-session-timeout-secs` for a whole connection (so a
//! client trickling bytes cannot hold a slot for ever), and a cap on bad
//! commands. A message gets `250` only after the spool stored it durably.
//!
//! On shutdown no connection is taken any more; a session waiting for a
//! command is told `421` and closed, a session in `DATA` may finish its
//! message (it is stored and gets its `250`) within the drain time, then is
//! told `421` too.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use openssl::ssl::{Ssl, SslAcceptor};
use shared_proto::Clock;
use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};
use smtp_proto::{EhloResponse, Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::queue::blocking;
use crate::spool::{Envelope, Intake, Spool};

/// Longest command line accepted (RFC 5321 asks for 512; extensions make
/// lines longer, so allow some room).
pub const MAX_LINE: usize = 2048;
/// Bad commands tolerated in one session before it is closed.
const MAX_ERRORS: usize = 10;
/// Recipients per transaction (all of them must be the licensing address).
const MAX_RECIPIENTS: usize = 10;
const READ_CHUNK: usize = 16 * 1024;

/// What the SMTP receiver needs to know.
pub struct SmtpSettings {
    pub hostname: String,
    pub own_address: String,
    pub max_message_size: usize,
    pub max_connections: usize,
    /// Sessions at once from one client address.
    pub max_connections_per_ip: usize,
    /// Longest silence (one read).
    pub timeout: Duration,
    /// Longest time for one message, from `354` to the final dot.
    pub data_timeout: Duration,
    /// Longest time for a whole connection.
    pub session_timeout: Duration,
    /// How long a stop waits for sessions in `DATA` to finish.
    pub drain_timeout: Duration,
    /// Offered as STARTTLS when present.
    pub tls: Option<SslAcceptor>,
}

/// Shared by all sessions.
pub struct Smtp {
    pub settings: SmtpSettings,
    pub spool: Spool,
    pub clock: Clock,
    /// Names of stored messages, for the worker.
    pub accepted: mpsc::UnboundedSender<String>,
}

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
        let (mut stream, peer) = tokio::select! {
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
            Some(_) = sessions.join_next() => continue,
            _ = shutdown.wait_for(|stopping| *stopping) => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            log::warn!(
                "smtp peer={peer} refused: {} connections already",
                smtp.settings.max_connections
            );
            let _ = stream
                .write_all(b"421 4.7.0 Too many connections, try again later\r\n")
                .await;
            continue;
        };
        let Some(slot) = per_ip.take(peer.ip(), smtp.settings.max_connections_per_ip) else {
            log::warn!(
                "smtp peer={peer} refused: {} connections from this address already",
                smtp.settings.max_connections_per_ip
            );
            let _ = stream
                .write_all(b"421 4.7.0 Too many connections from your address, try again later\r\n")
                .await;
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
        while sessions.join_next().await.is_some() {}
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

/// How a session loop ended.
enum End {
    Closed,
    StartTls,
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

struct Session<'a> {
    smtp: &'a Smtp,
    peer: SocketAddr,
    tls: bool,
    buf: Vec<u8>,
    helo: Option<String>,
    mail_from: Option<String>,
    recipients: Vec<String>,
    errors: usize,
    /// The end of the whole connection (`--smtp-session-timeout-secs`).
    deadline: Instant,
    /// The end of the message being received (`--smtp-data-timeout-secs`),
    /// while in `DATA`.
    data_deadline: Option<Instant>,
    shutdown: watch::Receiver<bool>,
}

/// Why [`Session::fill`] read nothing.
enum Cut {
    Silence,
    Message,
    Session,
    Stopping,
}

impl<'a> Session<'a> {
    fn new(
        smtp: &'a Smtp,
        peer: SocketAddr,
        tls: bool,
        deadline: Instant,
        shutdown: watch::Receiver<bool>,
    ) -> Session<'a> {
        Session {
            smtp,
            peer,
            tls,
            buf: Vec::new(),
            helo: None,
            mail_from: None,
            recipients: Vec::new(),
            errors: 0,
            deadline,
            data_deadline: None,
            shutdown,
        }
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.recipients.clear();
    }

    /// Reads more bytes into the buffer; `false` when the session must end:
    /// end of stream, a timeout or a stop (the client is told why).
    ///
    /// Waiting for a command ends at a stop; receiving a message does not
    /// (the drain time bounds it), so that it can still be accepted.
    async fn fill<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> anyhow::Result<bool> {
        let silence = Instant::now() + self.smtp.settings.timeout;
        let (until, why) = match self.data_deadline {
            Some(data) if data < silence.min(self.deadline) => (data, Cut::Message),
            _ if self.deadline < silence => (self.deadline, Cut::Session),
            _ => (silence, Cut::Silence),
        };
        let in_data = self.data_deadline.is_some();
        let mut shutdown = self.shutdown.clone();
        let mut chunk = vec![0u8; READ_CHUNK];
        let cut = tokio::select! {
            read = tokio::time::timeout_at(until, stream.read(&mut chunk)) => match read {
                Ok(read) => {
                    let n = read.context("reading from the client")?;
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n > 0);
                }
                Err(_) => why,
            },
            _ = shutdown.wait_for(|stopping| *stopping), if !in_data => Cut::Stopping,
        };
        let text: &[u8] = match cut {
            Cut::Silence => b"421 4.4.2 Timeout, closing connection\r\n",
            Cut::Message => b"421 4.4.2 The message took too long, closing connection\r\n",
            Cut::Session => b"421 4.4.2 Connection open too long, closing it\r\n",
            Cut::Stopping => b"421 4.3.2 Shutting down, try again later\r\n",
        };
        log::debug!(
            "smtp peer={} closed: {}",
            self.peer,
            String::from_utf8_lossy(text).trim_end()
        );
        let _ = stream.write_all(text).await;
        Ok(false)
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> anyhow::Result<End> {
        loop {
            let Some(newline) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_LINE {
                    reply(stream, 500, (5, 5, 2), "Line too long").await?;
                    return Ok(End::Closed);
                }
                if !self.fill(stream).await? {
                    return Ok(End::Closed);
                }
                continue;
            };
            let line: Vec<u8> = self.buf.drain(..=newline).collect();
            if line.len() > MAX_LINE {
                reply(stream, 500, (5, 5, 2), "Line too long").await?;
                return Ok(End::Closed);
            }
            match Request::parse(&mut line.iter()) {
                Ok(request) => {
                    if let Some(end) = self.command(stream, request).await? {
                        return Ok(end);
                    }
                }
                Err(err) => {
                    let (code, esc, text) = match err {
                        smtp_proto::Error::UnknownCommand => {
                            (500, (5, 5, 1), "Unknown command".to_owned())
                        }
                        smtp_proto::Error::InvalidSenderAddress => {
                            (501, (5, 1, 7), "Invalid sender address".to_owned())
                        }
                        smtp_proto::Error::InvalidRecipientAddress => {
                            (501, (5, 1, 3), "Invalid recipient address".to_owned())
                        }
                        smtp_proto::Error::UnsupportedParameter { param } => {
                            (555, (5, 5, 4), format!("Unsupported parameter {param}"))
                        }
                        other => (501, (5, 5, 4), format!("Syntax error: {other}")),
                    };
                    if self.error(stream, code, esc, &text).await? {
                        return Ok(End::Closed);
                    }
                }
            }
        }
    }

    /// Answers an error; `true` when the session must end (too many).
    async fn error<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        code: u16,
        esc: (u8, u8, u8),
        text: &str,
    ) -> anyhow::Result<bool> {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            reply(
                stream,
                421,
                (4, 7, 0),
                "Too many errors, closing connection",
            )
            .await?;
            return Ok(true);
        }
        reply(stream, code, esc, text).await?;
        Ok(false)
    }

    async fn command<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        request: Request<String>,
    ) -> anyhow::Result<Option<End>> {
        let settings = &self.smtp.settings;
        match request {
            Request::Ehlo { host } => {
                self.helo = Some(host);
                self.reset();
                let mut ehlo = EhloResponse::new(settings.hostname.as_str());
                ehlo.capabilities = smtp_proto::EXT_SIZE
                    | smtp_proto::EXT_8BIT_MIME
                    | smtp_proto::EXT_PIPELINING
                    | smtp_proto::EXT_ENHANCED_STATUS_CODES
                    | smtp_proto::EXT_SMTP_UTF8;
                if settings.tls.is_some() && !self.tls {
                    ehlo.capabilities |= smtp_proto::EXT_START_TLS;
                }
                ehlo.size = settings.max_message_size;
                let mut capabilities = Vec::new();
                ehlo.write(&mut capabilities)?;
                // The crate's first line carries a joke; ours greets plainly.
                let first_end = capabilities
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(0, |end| end + 1);
                let mut out = format!("250-{} Hello\r\n", settings.hostname).into_bytes();
                out.extend_from_slice(&capabilities[first_end..]);
                stream.write_all(&out).await?;
            }
            Request::Helo { host } => {
                self.helo = Some(host);
                self.reset();
                let text = format!("250 {}\r\n", settings.hostname);
                stream.write_all(text.as_bytes()).await?;
            }
            Request::Lhlo { .. } => {
                return self
                    .refuse(stream, 500, (5, 5, 1), "This is not an LMTP server")
                    .await;
            }
            Request::Mail { from } => {
                if self.helo.is_none() {
                    return self.refuse(stream, 503, (5, 5, 1), "Say EHLO first").await;
                }
                if self.mail_from.is_some() {
                    return self
                        .refuse(stream, 503, (5, 5, 1), "Nested MAIL command")
                        .await;
                }
                if from.size > settings.max_message_size {
                    let text = format!(
                        "Message too large: at most {} bytes accepted",
                        settings.max_message_size
                    );
                    return self.refuse(stream, 552, (5, 3, 4), &text).await;
                }
                self.mail_from = Some(from.address);
                reply(stream, 250, (2, 1, 0), "Sender OK").await?;
            }
            Request::Rcpt { to } => {
                if self.mail_from.is_none() {
                    return self.refuse(stream, 503, (5, 5, 1), "Need MAIL first").await;
                }
                if !to.address.eq_ignore_ascii_case(&settings.own_address) {
                    let text = format!(
                        "<{}>: no such mailbox here; this server only receives mail for {}",
                        to.address, settings.own_address
                    );
                    return self.refuse(stream, 550, (5, 1, 1), &text).await;
                }
                if self.recipients.len() >= MAX_RECIPIENTS {
                    return self
                        .refuse(stream, 452, (4, 5, 3), "Too many recipients")
                        .await;
                }
                self.recipients.push(to.address);
                reply(stream, 250, (2, 1, 5), "Recipient OK").await?;
            }
            Request::Data => {
                if self.recipients.is_empty() {
                    return self.refuse(stream, 503, (5, 5, 1), "Need RCPT first").await;
                }
                // Enhanced status codes are not used on 3xx replies (RFC 2034).
                stream
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                return self.data(stream).await;
            }
            Request::Bdat { .. } => {
                return self
                    .refuse(stream, 502, (5, 5, 1), "CHUNKING is not offered")
                    .await;
            }
            Request::StartTls => {
                if settings.tls.is_none() {
                    return self
                        .refuse(stream, 502, (5, 5, 1), "STARTTLS is not offered")
                        .await;
                }
                if self.tls {
                    return self
                        .refuse(stream, 503, (5, 5, 1), "TLS is already on")
                        .await;
                }
                reply(stream, 220, (2, 0, 0), "Ready to start TLS").await?;
                return Ok(Some(End::StartTls));
            }
            Request::Rset => {
                self.reset();
                reply(stream, 250, (2, 0, 0), "OK").await?;
            }
            Request::Noop { .. } => reply(stream, 250, (2, 0, 0), "OK").await?,
            Request::Vrfy { .. } => {
                reply(
                    stream,
                    252,
                    (2, 5, 0),
                    "Cannot VRFY, but will accept the message",
                )
                .await?
            }
            Request::Help { .. } => {
                reply(
                    stream,
                    214,
                    (2, 0, 0),
                    "This server receives licensing mail",
                )
                .await?
            }
            Request::Quit => {
                reply(stream, 221, (2, 0, 0), "Bye").await?;
                return Ok(Some(End::Closed));
            }
            Request::Auth { .. }
            | Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                return self
                    .refuse(stream, 502, (5, 5, 1), "Command not implemented")
                    .await;
            }
        }
        Ok(None)
    }

    async fn refuse<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        code: u16,
        esc: (u8, u8, u8),
        text: &str,
    ) -> anyhow::Result<Option<End>> {
        Ok(self
            .error(stream, code, esc, text)
            .await?
            .then_some(End::Closed))
    }

    /// Receives the message after `354`, stores it, and answers.
    async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> anyhow::Result<Option<End>> {
        self.data_deadline = Some(Instant::now() + self.smtp.settings.data_timeout);
        let result = self.receive(stream).await;
        self.data_deadline = None;
        result
    }

    async fn receive<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> anyhow::Result<Option<End>> {
        let limit = self.smtp.settings.max_message_size;
        let mut body = Body::new();
        let mut dummy: Option<DummyDataReceiver> = None;
        let mut size = 0usize;
        loop {
            let chunk = std::mem::take(&mut self.buf);
            let mut bytes = chunk.iter();
            let before = bytes.len();
            let done = match dummy.as_mut() {
                Some(dummy) => dummy.ingest(&mut bytes),
                None => body.ingest(&mut bytes),
            };
            size += before - bytes.len();
            // Pipelined commands after the end marker stay in the buffer.
            self.buf = bytes.as_slice().to_vec();
            if done {
                break;
            }
            if dummy.is_none() && body.len() > limit {
                dummy = Some(DummyDataReceiver::new_data(&body.receiver));
                body = Body::new();
            }
            if !self.fill(stream).await? {
                // The client went away mid-message: nothing was accepted.
                return Ok(Some(End::Closed));
            }
        }
        if dummy.is_none() && body.len() == 0 {
            self.reset();
            reply(stream, 554, (5, 6, 0), "Empty message").await?;
            return Ok(None);
        }
        let message = body.into_message();
        let mail_from = self.mail_from.take().unwrap_or_default();
        let recipients = std::mem::take(&mut self.recipients);
        if dummy.is_some() || message.len() > limit {
            log::info!(
                "smtp peer={} from=<{mail_from}> refused a message of about {size} bytes (limit {limit})",
                self.peer
            );
            let text = format!("Message too large: at most {limit} bytes accepted");
            reply(stream, 552, (5, 3, 4), &text).await?;
            return Ok(None);
        }
        let envelope = Envelope {
            return_path: Some(mail_from.clone()),
            recipients,
            received_at: self.smtp.clock.now(),
            intake: Intake::Smtp,
            size: message.len() as u64,
            truncated: false,
        };
        let spool = self.smtp.spool.clone();
        match blocking(move || spool.accept(&envelope, &message)).await {
            Ok(name) => {
                log::info!(
                    "smtp peer={} from=<{mail_from}> message={name} accepted",
                    self.peer
                );
                let _ = self.smtp.accepted.send(name.clone());
                reply(stream, 250, (2, 0, 0), &format!("Queued as {name}")).await?;
            }
            Err(err) => {
                log::error!(
                    "smtp peer={} from=<{mail_from}> message not stored: {err:#}",
                    self.peer
                );
                reply(
                    stream,
                    451,
                    (4, 3, 0),
                    "Cannot store the message right now, try again later",
                )
                .await?;
            }
        }
        Ok(None)
    }
}

/// The message being received after `354`, dot-unstuffed and its end found
/// by smtp-proto's `DataReceiver`. The receiver recognises the final dot (and
/// a dot to remove) only after a CRLF it has read itself, but the data starts
/// right after the CRLF of the `DATA` command: so it is primed with one,
/// which is not part of the message. This way a message is found the same
/// however the client's writes are cut: an empty message (`.` CRLF at once),
/// a first line starting with a dot, a final dot arriving alone.
struct Body {
    receiver: DataReceiver,
    bytes: Vec<u8>,
}

const PRIMER: &[u8] = b"\r\n";

impl Body {
    fn new() -> Body {
        let mut receiver = DataReceiver::new();
        let mut bytes = Vec::new();
        receiver.ingest(&mut PRIMER.iter(), &mut bytes);
        Body { receiver, bytes }
    }

    /// Takes bytes up to the end marker; true once it was seen.
    fn ingest(&mut self, bytes: &mut std::slice::Iter<'_, u8>) -> bool {
        self.receiver.ingest(bytes, &mut self.bytes)
    }

    /// The size of the message so far.
    fn len(&self) -> usize {
        self.bytes.len().saturating_sub(PRIMER.len())
    }

    fn into_message(mut self) -> Vec<u8> {
        let primer = PRIMER.len().min(self.bytes.len());
        self.bytes.split_off(primer)
    }
}

async fn reply<S: AsyncWrite + Unpin>(
    stream: &mut S,
    code: u16,
    esc: (u8, u8, u8),
    text: &str,
) -> anyhow::Result<()> {
    let mut out = Vec::new();
    Response::new(code, esc.0, esc.1, esc.2, text).write(&mut out)?;
    stream
        .write_all(&out)
        .await
        .context("writing to the client")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `writes` one after the other, as separate reads would.
    fn receive(writes: &[&[u8]]) -> Option<Vec<u8>> {
        let mut body = Body::new();
        for write in writes {
            if body.ingest(&mut write.iter()) {
                return Some(body.into_message());
            }
        }
        None
    }

    #[test]
    fn the_end_is_found_however_the_writes_are_cut() {
        assert_eq!(receive(&[b".\r\n"]), Some(vec![]));
        assert_eq!(receive(&[b".", b"\r", b"\n"]), Some(vec![]));
        assert_eq!(
            receive(&[b"Subject: x\r\n\r\nhi\r\n", b".", b"\r\n"]),
            Some(b"Subject: x\r\n\r\nhi".to_vec())
        );
        assert_eq!(receive(&[b"Subject: x\r\n\r\nhi\r", b"\n.\r"]), None);
    }

    #[test]
    fn dots_are_unstuffed_from_the_first_line_on() {
        assert_eq!(
            receive(&[b"..first\r\n..second\r\n.\r\n"]),
            Some(b".first\r\n.second".to_vec())
        );
        assert_eq!(
            receive(&[b".", b".first\r\n", b".\r\n"]),
            Some(b".first".to_vec())
        );
    }
}
