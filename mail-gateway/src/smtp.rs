//! The gateway's own SMTP receiver: commands parsed by `smtp-proto`, the
//! session loop here.
//!
//! Bounds: command lines of at most [`MAX_LINE`] bytes, messages of at most
//! `--max-message-size` bytes (advertised as `SIZE`, checked against the
//! `MAIL FROM` SIZE parameter and counted while the data arrives), one
//! recipient address (the licensing address), `--max-connections` sessions
//! at once, `--smtp-timeout-secs` of silence, and a cap on bad commands.
//! A message gets `250` only after the spool stored it durably.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use openssl::ssl::{Ssl, SslAcceptor};
use shared_proto::Clock;
use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};
use smtp_proto::{EhloResponse, Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::spool::{Envelope, Intake, Spool};
use crate::worker::blocking;

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
    pub timeout: Duration,
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

/// Accepts connections until `shutdown` changes.
pub async fn serve(smtp: Arc<Smtp>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(smtp.settings.max_connections));
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
            _ = shutdown.changed() => break,
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
        let smtp = smtp.clone();
        tokio::spawn(async move {
            if let Err(err) = connection(&smtp, stream, peer).await {
                log::debug!("smtp peer={peer} session ended: {err:#}");
            }
            drop(permit);
        });
    }
}

/// How a session loop ended.
enum End {
    Closed,
    StartTls,
}

async fn connection(smtp: &Smtp, mut stream: TcpStream, peer: SocketAddr) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    let greeting = format!(
        "220 {} ESMTP Solme mail gateway ready\r\n",
        smtp.settings.hostname
    );
    stream.write_all(greeting.as_bytes()).await?;
    let mut session = Session::new(smtp, peer, false);
    match session.run(&mut stream).await? {
        End::Closed => Ok(()),
        End::StartTls => {
            let Some(acceptor) = &smtp.settings.tls else {
                return Ok(());
            };
            let ssl = Ssl::new(acceptor.context()).context("starting TLS")?;
            let mut tls = tokio_openssl::SslStream::new(ssl, stream).context("starting TLS")?;
            tokio::time::timeout(smtp.settings.timeout, Pin::new(&mut tls).accept())
                .await
                .context("TLS handshake timed out")?
                .context("TLS handshake failed")?;
            // RFC 3207: the session starts over, and nothing the client sent
            // before the handshake is kept.
            let mut session = Session::new(smtp, peer, true);
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
}

impl<'a> Session<'a> {
    fn new(smtp: &'a Smtp, peer: SocketAddr, tls: bool) -> Session<'a> {
        Session {
            smtp,
            peer,
            tls,
            buf: Vec::new(),
            helo: None,
            mail_from: None,
            recipients: Vec::new(),
            errors: 0,
        }
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.recipients.clear();
    }

    /// Reads more bytes into the buffer; `false` at end of stream.
    async fn fill<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> anyhow::Result<bool> {
        let mut chunk = [0u8; READ_CHUNK];
        match tokio::time::timeout(self.smtp.settings.timeout, stream.read(&mut chunk)).await {
            Ok(read) => {
                let n = read.context("reading from the client")?;
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n > 0)
            }
            Err(_) => {
                let _ = stream
                    .write_all(b"421 4.4.2 Timeout, closing connection\r\n")
                    .await;
                Ok(false)
            }
        }
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
        let limit = self.smtp.settings.max_message_size;
        let mut receiver = DataReceiver::new();
        let mut dummy: Option<DummyDataReceiver> = None;
        let mut message = Vec::new();
        let mut size = 0usize;
        if self.buf.is_empty() && !self.fill(stream).await? {
            return Ok(Some(End::Closed));
        }
        // A message with no content at all: the end marker comes first,
        // which the receiver (looking for CRLF.CRLF) would not see.
        if self.buf.starts_with(b".\r\n") {
            self.buf.drain(..3);
            self.reset();
            reply(stream, 554, (5, 6, 0), "Empty message").await?;
            return Ok(None);
        }
        loop {
            let chunk = std::mem::take(&mut self.buf);
            let mut bytes = chunk.iter();
            let before = bytes.len();
            let done = match dummy.as_mut() {
                Some(dummy) => dummy.ingest(&mut bytes),
                None => receiver.ingest(&mut bytes, &mut message),
            };
            size += before - bytes.len();
            // Pipelined commands after the end marker stay in the buffer.
            self.buf = bytes.as_slice().to_vec();
            if done {
                break;
            }
            if dummy.is_none() && message.len() > limit {
                dummy = Some(DummyDataReceiver::new_data(&receiver));
                message = Vec::new();
            }
            if !self.fill(stream).await? {
                // The client went away mid-message: nothing was accepted.
                return Ok(Some(End::Closed));
            }
        }
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
