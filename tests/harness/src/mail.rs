//! Mail as a customer sends and receives it: a message with the sync-data file
//! attached, sent over SMTP to the gateway, and the reply found in the outbox.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, MultiPart, SinglePart};
use lettre::{Message, SmtpTransport, Transport};
use mail_parser::{MessageParser, MimeHeaders};

use crate::process::wait_until;

/// Sends `sync_data` as an attachment from `from` to `to` through the SMTP listener
/// at `smtp`; returns the Message-ID (without angle brackets).
pub fn send_sync_mail(smtp: SocketAddr, from: &str, to: &str, sync_data: &str) -> Result<String> {
    let message_id = format!("{}@acme.example", uuid::Uuid::new_v4());
    let message = Message::builder()
        .from(from.parse().context("the sender address")?)
        .to(to.parse().context("the licensing address")?)
        .subject("Sync data for our license server")
        .message_id(Some(format!("<{message_id}>")))
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(
                    "Hello Solme,\n\nplease find our sync data attached.\n\nAcme IT".to_string(),
                ))
                .singlepart(
                    Attachment::new("sync-data.txt".to_string())
                        .body(sync_data.to_string(), ContentType::TEXT_PLAIN),
                ),
        )
        .context("building the mail")?;
    send(smtp, &message)?;
    Ok(message_id)
}

/// Sends a plain-text mail (e.g. a key-clear request); returns its Message-ID.
pub fn send_text_mail(
    smtp: SocketAddr,
    from: &str,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<String> {
    let message_id = format!("{}@acme.example", uuid::Uuid::new_v4());
    let message = Message::builder()
        .from(from.parse().context("the sender address")?)
        .to(to.parse().context("the licensing address")?)
        .subject(subject)
        .message_id(Some(format!("<{message_id}>")))
        .body(body.to_string())
        .context("building the mail")?;
    send(smtp, &message)?;
    Ok(message_id)
}

fn send(smtp: SocketAddr, message: &Message) -> Result<()> {
    let transport = SmtpTransport::builder_dangerous(smtp.ip().to_string())
        .port(smtp.port())
        .timeout(Some(Duration::from_secs(30)))
        .build();
    transport
        .send(message)
        .context("sending the mail over SMTP")?;
    Ok(())
}

/// A reply found in the outbox.
#[derive(Debug, Clone)]
pub struct Reply {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub in_reply_to: Vec<String>,
    pub auto_submitted: Option<String>,
    /// The text of an attached `.lic` file, if any.
    pub license_file: Option<String>,
}

/// All replies in `outbox` that answer `message_id`.
pub fn replies_to(outbox: &Path, message_id: &str) -> Result<Vec<Reply>> {
    let mut replies = Vec::new();
    let entries = std::fs::read_dir(outbox).context("reading the outbox")?;
    for entry in entries.flatten() {
        // Only finished messages: the gateway writes `.name.tmp` first, then renames.
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".eml") {
            continue;
        }
        let raw = std::fs::read(entry.path()).context("reading a mail")?;
        let Some(message) = MessageParser::default().parse(&raw) else {
            continue;
        };
        let in_reply_to: Vec<String> = message
            .in_reply_to()
            .as_text_list()
            .map(|list| list.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default();
        if !in_reply_to
            .iter()
            .any(|id| id.trim_matches(['<', '>']) == message_id)
        {
            continue;
        }
        let license_file = message
            .attachments()
            .find(|a| a.attachment_name().is_some_and(|n| n.ends_with(".lic")))
            .map(|a| String::from_utf8_lossy(a.contents()).into_owned());
        replies.push(Reply {
            to: message
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_string(),
            subject: message.subject().unwrap_or_default().to_string(),
            text: message
                .body_text(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
            in_reply_to,
            auto_submitted: message
                .header_raw("Auto-Submitted")
                .map(|v| v.trim().to_string()),
            license_file,
        });
    }
    Ok(replies)
}

/// Waits for the reply to `message_id` to appear in `outbox`.
pub fn wait_for_reply(outbox: &Path, message_id: &str, timeout: Duration) -> Result<Reply> {
    wait_until(&format!("a reply to <{message_id}>"), timeout, || {
        replies_to(outbox, message_id).ok()?.into_iter().next()
    })
}
