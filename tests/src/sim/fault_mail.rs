//! Mail to licensing@ with a fault on the way (`mail-lost`, `mail-delay`,
//! `mail-duplicate`, `mail-mangle`, `mail-unregistered`), made at the one hop the
//! simulation owns: the customer's mail leaving for the gateway's SMTP listener
//! (`POST /v1/mail/send`, a scenario's `mail` step). The gateway and the main server are
//! untouched: they receive what a mail system in between would have handed them.
//!
//! - `mail-lost`: the mail is never delivered (the answer says so; its Message-ID is
//!   the one it would have had, so a wait for its reply times out).
//! - `mail-delay` (`seconds`): delivered that many seconds of real time later (the
//!   simulated clock does not hurry it: a mail relay's queue runs on its own clock).
//! - `mail-duplicate`: delivered twice, the same message with the same Message-ID.
//! - `mail-mangle` (`mangle`): the sync data changed on the way as mail systems do:
//!   `crlf` (its line breaks turned into CRLF inside the attachment), `rewrapped` (its
//!   lines joined and wrapped again at 60 characters), `quoted-printable` or `base64`
//!   (the attachment re-encoded so), `inline` (pasted into the body, no attachment).
//! - `mail-unregistered`: sent from an address no customer registered
//!   ([`UNREGISTERED_SENDER`]), whatever sender was asked for.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, MultiPart, SinglePart};
use lettre::{Message, SmtpTransport, Transport};

/// The sender `mail-unregistered` puts on every mail.
pub const UNREGISTERED_SENDER: &str = "someone@unregistered.example";
/// The longest `mail-delay`, in seconds.
pub const MAX_DELAY_SECONDS: u64 = 3600;

/// How `mail-mangle` changes the sync data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mangle {
    Crlf,
    Rewrapped,
    QuotedPrintable,
    Base64,
    Inline,
}

impl Mangle {
    pub const NAMES: &'static str = "crlf, rewrapped, quoted-printable, base64 or inline";

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "crlf" => Self::Crlf,
            "rewrapped" => Self::Rewrapped,
            "quoted-printable" => Self::QuotedPrintable,
            "base64" => Self::Base64,
            "inline" => Self::Inline,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Crlf => "crlf",
            Self::Rewrapped => "rewrapped",
            Self::QuotedPrintable => "quoted-printable",
            Self::Base64 => "base64",
            Self::Inline => "inline",
        }
    }
}

/// The fault on the way to licensing@ now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailFault {
    Lost,
    Delay(u64),
    Duplicate,
    Mangle(Mangle),
    Unregistered,
}

impl MailFault {
    pub fn fault(self) -> &'static str {
        match self {
            Self::Lost => "mail-lost",
            Self::Delay(_) => "mail-delay",
            Self::Duplicate => "mail-duplicate",
            Self::Mangle(_) => "mail-mangle",
            Self::Unregistered => "mail-unregistered",
        }
    }

    pub fn describe(self) -> String {
        match self {
            Self::Lost => "mail to licensing@ is lost on the way".to_string(),
            Self::Delay(seconds) => format!("mail to licensing@ arrives {seconds} s late"),
            Self::Duplicate => "mail to licensing@ arrives twice".to_string(),
            Self::Mangle(how) => format!(
                "mail to licensing@ arrives with its sync data changed ({})",
                how.name()
            ),
            Self::Unregistered => format!(
                "mail to licensing@ arrives from {UNREGISTERED_SENDER}, an address no customer \
                 registered"
            ),
        }
    }
}

static FAULT: Mutex<Option<(MailFault, DateTime<Utc>)>> = Mutex::new(None);

fn relock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The mail fault on now and since when.
pub fn current() -> Option<(MailFault, DateTime<Utc>)> {
    *relock(&FAULT)
}

/// Switches the mail fault (None: mail goes through untouched); the one before.
pub fn set(fault: Option<MailFault>) -> Option<MailFault> {
    let mut now = relock(&FAULT);
    let before = now.map(|(fault, _)| fault);
    *now = fault.map(|fault| (fault, Utc::now()));
    before
}

/// A customer's mail to licensing@.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub from: String,
    pub to: String,
    pub subject: Option<String>,
    pub text: Option<String>,
    pub sync_data: Option<String>,
}

/// Sends `mail` to the SMTP listener at `smtp` through the fault on now: its
/// Message-ID (without angle brackets) and, under a fault, what happened to it.
pub fn send(smtp: SocketAddr, mut mail: Outgoing) -> Result<(String, Option<String>)> {
    let message_id = format!("{}@acme.example", uuid::Uuid::new_v4());
    let fault = current().map(|(fault, _)| fault);
    let mangle = match fault {
        Some(MailFault::Mangle(how)) => Some(how),
        _ => None,
    };
    if fault == Some(MailFault::Unregistered) {
        mail.from = UNREGISTERED_SENDER.to_string();
    }
    let message = build(&mail, &message_id, mangle)?;
    let note = fault.map(|fault| match fault {
        MailFault::Lost => "lost on the way: never delivered (mail-lost)".to_string(),
        MailFault::Delay(seconds) => {
            format!("held on the way: delivered in {seconds} s (mail-delay)")
        }
        MailFault::Duplicate => "delivered twice (mail-duplicate)".to_string(),
        MailFault::Mangle(how) => format!("delivered changed: {} (mail-mangle)", how.name()),
        MailFault::Unregistered => {
            format!("delivered from {UNREGISTERED_SENDER} (mail-unregistered)")
        }
    });
    match fault {
        Some(MailFault::Lost) => {}
        Some(MailFault::Delay(seconds)) => {
            std::thread::Builder::new()
                .name("delayed mail".to_string())
                .spawn(move || {
                    std::thread::sleep(Duration::from_secs(seconds));
                    if let Err(error) = deliver(smtp, &message) {
                        eprintln!("solme-sim: a delayed mail could not be delivered: {error:#}");
                    }
                })
                .context("holding the mail")?;
        }
        Some(MailFault::Duplicate) => {
            deliver(smtp, &message)?;
            deliver(smtp, &message)?;
        }
        _ => deliver(smtp, &message)?,
    }
    Ok((message_id, note))
}

/// The message as the customer's mail program writes it, changed by `mangle`.
fn build(mail: &Outgoing, message_id: &str, mangle: Option<Mangle>) -> Result<Message> {
    let builder = Message::builder()
        .from(mail.from.parse().context("the sender address")?)
        .to(mail.to.parse().context("the licensing address")?)
        .message_id(Some(format!("<{message_id}>")));
    let Some(data) = &mail.sync_data else {
        return builder
            .subject(mail.subject.as_deref().unwrap_or("Request"))
            .body(mail.text.clone().unwrap_or_default())
            .context("building the mail");
    };
    let builder = builder.subject(
        mail.subject
            .as_deref()
            .unwrap_or("Sync data for our license server"),
    );
    let greeting = "Hello Solme,\n\nplease find our sync data attached.\n\nAcme IT".to_string();
    let data = match mangle {
        Some(Mangle::Crlf) => data.replace("\r\n", "\n").replace('\n', "\r\n"),
        Some(Mangle::Rewrapped) => rewrap(data, 60),
        _ => data.clone(),
    };
    if mangle == Some(Mangle::Inline) {
        return builder
            .body(format!(
                "Hello Solme,\n\nour sync data:\n\n{data}\n\nAcme IT"
            ))
            .context("building the mail");
    }
    let attachment = Attachment::new("sync-data.txt".to_string());
    let part = match mangle {
        Some(Mangle::QuotedPrintable) => SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .header(ContentTransferEncoding::QuotedPrintable)
            .header(lettre::message::header::ContentDisposition::attachment(
                "sync-data.txt",
            ))
            .body(data),
        Some(Mangle::Base64) | Some(Mangle::Crlf) => SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .header(ContentTransferEncoding::Base64)
            .header(lettre::message::header::ContentDisposition::attachment(
                "sync-data.txt",
            ))
            .body(data),
        _ => attachment.body(data, ContentType::TEXT_PLAIN),
    };
    builder
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(greeting))
                .singlepart(part),
        )
        .context("building the mail")
}

/// The lines of `text` between its armor lines joined and wrapped again at `width`.
fn rewrap(text: &str, width: usize) -> String {
    let mut out = Vec::new();
    let mut body = String::new();
    let flush = |body: &mut String, out: &mut Vec<String>| {
        let chars: Vec<char> = body.chars().collect();
        for chunk in chars.chunks(width) {
            out.push(chunk.iter().collect());
        }
        body.clear();
    };
    for line in text.lines() {
        let line = line.trim_end();
        if line.starts_with("-----") || line.is_empty() || line.contains(": ") {
            flush(&mut body, &mut out);
            out.push(line.to_string());
        } else {
            body.push_str(line);
        }
    }
    flush(&mut body, &mut out);
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

fn deliver(smtp: SocketAddr, message: &Message) -> Result<()> {
    let transport = SmtpTransport::builder_dangerous(smtp.ip().to_string())
        .port(smtp.port())
        .timeout(Some(Duration::from_secs(30)))
        .build();
    transport
        .send(message)
        .context("sending the mail over SMTP")?;
    Ok(())
}
