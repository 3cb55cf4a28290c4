//! The data phase of an SMTP session: the message after `354`, its end found
//! however the client's writes are cut, bounded in size and time, stored
//! durably before the `250`.

use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::vocabulary::{Envelope, Intake};

use super::session::{reply, Session};
use super::End;

impl Session<'_> {
    /// Receives the message after `354`, stores it, and answers.
    pub(super) async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> anyhow::Result<Option<End>> {
        self.data_deadline = Some(Instant::now() + self.smtp.settings.data_timeout);
        let result = self.receive(stream).await;
        self.data_deadline = None;
        result
    }

    pub(super) async fn receive<S: AsyncRead + AsyncWrite + Unpin>(
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
        match self.smtp.spool.accept(envelope, message).await {
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
