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
    /// The file's name in the outbox (they sort in the order written).
    pub file: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    /// The Message-IDs it answers, without angle brackets.
    pub in_reply_to: Vec<String>,
    pub auto_submitted: Option<String>,
    /// The `Date` header, RFC 3339.
    pub date: Option<String>,
    /// `(file name, content)` of each attachment.
    pub attachments: Vec<(String, String)>,
}

impl Reply {
    /// The text of the attached `.lic` file, if any.
    pub fn license_file(&self) -> Option<&str> {
        self.attachments
            .iter()
            .find(|(name, _)| name.ends_with(".lic"))
            .map(|(_, content)| content.as_str())
    }

    /// The first Message-ID it answers.
    pub fn answers(&self) -> Option<&str> {
        self.in_reply_to.first().map(String::as_str)
    }
}

/// Whether `name` is a finished mail: the gateway writes `.name.tmp` first, then renames.
fn is_mail(name: &str) -> bool {
    !name.starts_with('.') && name.ends_with(".eml")
}

/// How many replies the outbox holds (files only, nothing parsed).
pub fn outbox_count(outbox: &Path) -> usize {
    std::fs::read_dir(outbox).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| is_mail(&e.file_name().to_string_lossy()))
            .count()
    })
}

/// Every reply in `outbox`, in the order written (none when it does not exist yet).
pub fn read_outbox(outbox: &Path) -> Result<Vec<Reply>> {
    let Ok(entries) = std::fs::read_dir(outbox) else {
        return Ok(Vec::new());
    };
    let mut replies = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if !is_mail(&file) {
            continue;
        }
        let raw = std::fs::read(entry.path()).context("reading a mail")?;
        let message = MessageParser::default()
            .parse(&raw)
            .with_context(|| format!("{file} is not a mail"))?;
        let in_reply_to = message
            .in_reply_to()
            .as_text_list()
            .map(|list| {
                list.iter()
                    .map(|id| id.trim_matches(['<', '>']).to_string())
                    .collect()
            })
            .unwrap_or_default();
        replies.push(Reply {
            file,
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
            date: message.date().map(|date| date.to_rfc3339()),
            attachments: message
                .attachments()
                .map(|a| {
                    (
                        a.attachment_name().unwrap_or_default().to_string(),
                        String::from_utf8_lossy(a.contents()).into_owned(),
                    )
                })
                .collect(),
        });
    }
    replies.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(replies)
}

/// All replies in `outbox` that answer `message_id`.
pub fn replies_to(outbox: &Path, message_id: &str) -> Result<Vec<Reply>> {
    let mut replies = read_outbox(outbox)?;
    replies.retain(|reply| reply.in_reply_to.iter().any(|id| id == message_id));
    Ok(replies)
}

/// Waits for the reply to `message_id` to appear in `outbox`.
pub fn wait_for_reply(outbox: &Path, message_id: &str, timeout: Duration) -> Result<Reply> {
    wait_until(&format!("a reply to <{message_id}>"), timeout, || {
        replies_to(outbox, message_id).ok()?.into_iter().next()
    })
}
