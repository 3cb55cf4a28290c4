//! The command phase of an SMTP session: reading command lines within the
//! deadlines, answering EHLO/HELO, MAIL, RCPT, RSET, NOOP, QUIT and STARTTLS,
//! and building the envelope until `DATA` (see [`super::data`]).

use std::net::SocketAddr;

use anyhow::Context;
use smtp_proto::{EhloResponse, Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{End, Smtp, MAX_ERRORS, MAX_LINE, MAX_RECIPIENTS, READ_CHUNK};

/// One SMTP session's state, from the greeting (or STARTTLS) to its end.
pub(super) struct Session<'a> {
    pub(super) smtp: &'a Smtp,
    pub(super) peer: SocketAddr,
    pub(super) tls: bool,
    pub(super) buf: Vec<u8>,
    pub(super) helo: Option<String>,
    pub(super) mail_from: Option<String>,
    pub(super) recipients: Vec<String>,
    pub(super) errors: usize,
    /// The end of the whole connection (`--smtp-session-timeout-secs`).
    pub(super) deadline: Instant,
    /// The end of the message being received (`--smtp-data-timeout-secs`),
    /// while in `DATA`.
    pub(super) data_deadline: Option<Instant>,
    pub(super) shutdown: watch::Receiver<bool>,
}

/// Why [`Session::fill`] read nothing.
pub(super) enum Cut {
    Silence,
    Message,
    Session,
    Stopping,
}

impl<'a> Session<'a> {
    pub(super) fn new(
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

    pub(super) fn reset(&mut self) {
        self.mail_from = None;
        self.recipients.clear();
    }

    /// Reads more bytes into the buffer; `false` when the session must end:
    /// end of stream, a timeout or a stop (the client is told why).
    ///
    /// Waiting for a command ends at a stop; receiving a message does not
    /// (the drain time bounds it), so that it can still be accepted.
    pub(super) async fn fill<S: AsyncRead + AsyncWrite + Unpin>(
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

    pub(super) async fn run<S: AsyncRead + AsyncWrite + Unpin>(
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
    pub(super) async fn error<S: AsyncWrite + Unpin>(
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

    pub(super) async fn command<S: AsyncRead + AsyncWrite + Unpin>(
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

    pub(super) async fn refuse<S: AsyncWrite + Unpin>(
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
}

pub(super) async fn reply<S: AsyncWrite + Unpin>(
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
