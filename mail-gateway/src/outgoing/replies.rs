//! The mails the gateway writes: license files, key-clear acknowledgements
//! and decision notices, the replies that say what was wrong, and the
//! reminders of the 366-day limit.
//!
//! Reminders answer no message: they are marked `Auto-Submitted:
//! auto-generated` instead, and go out with the same null envelope sender.
//!
//! Every reply is threaded to the message it answers (In-Reply-To,
//! References), marked `Auto-Submitted: auto-replied` (RFC 3834) so that
//! well-behaved responders never answer it, and sent with a null envelope
//! sender so that a bounce of it cannot start a loop either.

use std::fmt::Write as _;
use std::time::SystemTime;

use anyhow::Context;
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use uuid::Uuid;

use crate::classify::message::Problem;
use crate::vocabulary::{begin_marker, end_marker, OutgoingEnvelope, ReplyKind, Sender};
use shared_proto::admin_api::{
    DueReminder, KeyClearRequest, KeyClearStatus, License, ReminderThreshold, SenderAuth,
    SyncAnswer,
};
use shared_proto::armor::ArmorKind;
use shared_proto::receipt::ReceiptRecorded;
use shared_proto::ErrorCode;

/// What a reply says.
#[derive(Debug, Clone)]
pub enum Reply<'a> {
    /// The license file, attached.
    License(&'a SyncAnswer),
    /// A key-clear request was filed.
    KeyClearAck {
        server_id: Uuid,
        request_id: Uuid,
        /// The sender check recorded with the request (the ack says what follows).
        sender_auth: SenderAuth,
    },
    /// An operator decided a key-clear request.
    Decision(&'a KeyClearRequest),
    /// An installation receipt was recorded.
    Receipt(&'a ReceiptRecorded),
    /// Something the gateway found wrong by itself.
    Problem(&'a Problem),
    /// The main server refused.
    Refused {
        server_id: Uuid,
        refusal: Refusal,
        for_key_clear: bool,
    },
}

/// A refusal of the main server, sorted by what the customer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownId,
    IdInUse,
    NotRegistered,
    /// The sync data was used before. `resumed`: the gateway itself had
    /// sent it before a restart, so the customer may never have had an answer.
    Replayed {
        resumed: bool,
    },
    Stale,
    /// The main server could not read or verify the sync data.
    Damaged {
        message: String,
    },
    Other {
        code: ErrorCode,
        message: String,
    },
}

impl Refusal {
    /// Sorts a refusal by its stable code (docs/API.md).
    pub fn from_code(status: u16, code: ErrorCode, message: &str, resumed: bool) -> Refusal {
        match code {
            ErrorCode::UnknownServerId => Refusal::UnknownId,
            ErrorCode::IdInUse => Refusal::IdInUse,
            ErrorCode::Unauthorized if status == 403 => Refusal::NotRegistered,
            ErrorCode::ReplayedRequest => Refusal::Replayed { resumed },
            ErrorCode::StaleRequest => Refusal::Stale,
            ErrorCode::Malformed | ErrorCode::BadSignature | ErrorCode::UnsupportedVersion => {
                Refusal::Damaged {
                    message: message.to_owned(),
                }
            }
            _ => Refusal::Other {
                code,
                message: message.to_owned(),
            },
        }
    }

    /// The kind of reply that tells the customer about this refusal.
    pub fn kind(&self) -> ReplyKind {
        match self {
            Refusal::UnknownId => ReplyKind::UnknownId,
            Refusal::IdInUse => ReplyKind::IdInUse,
            Refusal::NotRegistered => ReplyKind::NotRegistered,
            Refusal::Replayed { .. } => ReplyKind::Replayed,
            Refusal::Stale => ReplyKind::Stale,
            Refusal::Damaged { .. } => ReplyKind::Damaged,
            Refusal::Other { .. } => ReplyKind::Refused,
        }
    }

    /// A short label for logs and tests: the word of its reply kind.
    pub fn label(&self) -> &'static str {
        self.kind().as_str()
    }
}

impl Reply<'_> {
    /// What this reply is, for logs and the outgoing envelope.
    pub fn kind(&self) -> ReplyKind {
        match self {
            Reply::License(_) => ReplyKind::License,
            Reply::KeyClearAck { .. } => ReplyKind::KeyClearAck,
            Reply::Decision(request) => match request.status {
                KeyClearStatus::Approved => ReplyKind::KeyClearApproved,
                KeyClearStatus::Rejected => ReplyKind::KeyClearRejected,
                // Never composed: decision notices skip pending requests.
                KeyClearStatus::Pending => ReplyKind::KeyClearAck,
            },
            Reply::Problem(problem) => problem.kind(),
            Reply::Refused { refusal, .. } => refusal.kind(),
            Reply::Receipt(_) => ReplyKind::ReceiptRecorded,
        }
    }
}

/// `Auto-Submitted` (RFC 3834): `auto-replied` on replies, `auto-generated`
/// on reminders.
#[derive(Debug, Clone)]
struct AutoSubmitted(&'static str);

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(value: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted(if value.trim() == "auto-generated" {
            "auto-generated"
        } else {
            "auto-replied"
        }))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.into())
    }
}

/// Asks Exchange and Outlook not to send out-of-office or read receipts
/// back to us.
#[derive(Debug, Clone)]
struct AutoResponseSuppress;

impl Header for AutoResponseSuppress {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Auto-Response-Suppress")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoResponseSuppress)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "All".into())
    }
}

/// Writes the reply mails for one licensing address.
#[derive(Debug, Clone)]
pub struct Composer {
    from: Mailbox,
    domain: String,
    /// The customer portal's public address (`--portal-url`), named in license
    /// replies and reminders as a way to synchronize when set.
    portal: Option<String>,
}

impl Composer {
    /// A composer writing as `name <address>`.
    pub fn new(address: &str, name: &str) -> anyhow::Result<Composer> {
        let address: lettre::Address = address
            .parse()
            .with_context(|| format!("the licensing address {address:?} is not valid"))?;
        Ok(Composer {
            domain: address.domain().to_owned(),
            from: Mailbox::new(Some(name.to_owned()), address),
            portal: None,
        })
    }

    /// The same composer, naming the customer portal at `portal` (`--portal-url`,
    /// without a trailing `/`) as a way to synchronize.
    pub fn with_portal(mut self, portal: Option<String>) -> Composer {
        self.portal = portal;
        self
    }

    /// The licensing address.
    pub fn address(&self) -> String {
        self.from.email.to_string()
    }

    /// Writes `reply` to `to`; `name` (unique per reply) makes its Message-ID.
    pub fn compose(
        &self,
        reply: &Reply<'_>,
        to: &Sender,
        name: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(OutgoingEnvelope, Vec<u8>)> {
        let recipient: lettre::Address = to
            .address
            .parse()
            .with_context(|| format!("the sender address {:?} is not valid", to.address))?;
        let subject = self.subject(reply, &to.subject);
        let mut builder = self.builder(
            Mailbox::new(to.name.clone(), recipient.clone()),
            subject,
            name,
            now,
            "auto-replied",
        );
        if let Some(id) = &to.message_id {
            let mut references: Vec<String> =
                to.references.iter().map(|r| format!("<{r}>")).collect();
            references.push(format!("<{id}>"));
            builder = builder
                .in_reply_to(format!("<{id}>"))
                .references(references.join(" "));
        }
        let text = format!("{}{}", self.text(reply, &to.address), self.signature());
        let message = match reply {
            Reply::License(answer) => builder.multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(text))
                    .singlepart(
                        Attachment::new(format!("license-{}.lic", answer.server_id))
                            .body(answer.license_file.clone(), ContentType::TEXT_PLAIN),
                    ),
            ),
            _ => builder.singlepart(SinglePart::plain(text)),
        }
        .context("building the reply")?;
        let envelope = OutgoingEnvelope {
            from: None,
            to: recipient.to_string(),
            kind: reply.kind(),
        };
        Ok((envelope, message.formatted()))
    }

    /// Writes the reminder to one of the customer's contacts, `to`; `name`
    /// (unique per reminder and contact) makes its Message-ID.
    pub fn compose_reminder(
        &self,
        reminder: &DueReminder,
        to: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(OutgoingEnvelope, Vec<u8>)> {
        let recipient: lettre::Address = to
            .parse()
            .with_context(|| format!("the contact address {to:?} is not valid"))?;
        let subject = reminder_subject(reminder);
        let text = format!(
            "{}{}\n-- \nSolme Licensing\nThis is an automatic message from {}.\n",
            reminder_text(reminder, &self.from.email),
            self.portal_reminder(),
            self.from.email
        );
        let message = self
            .builder(
                Mailbox::new(None, recipient.clone()),
                subject,
                name,
                now,
                "auto-generated",
            )
            .singlepart(SinglePart::plain(text))
            .context("building the reminder")?;
        let envelope = OutgoingEnvelope {
            from: None,
            to: recipient.to_string(),
            kind: ReplyKind::Reminder,
        };
        Ok((envelope, message.formatted()))
    }

    /// Writes a mail the gateway sends on its own (not a reply, e.g. a portal sign-in
    /// link) to `to`, with the automatic message's signature after `text`; `name`
    /// (unique per mail) makes its Message-ID.
    pub fn compose_generated(
        &self,
        to: &str,
        subject: String,
        text: &str,
        name: &str,
        now: DateTime<Utc>,
        kind: ReplyKind,
    ) -> anyhow::Result<(OutgoingEnvelope, Vec<u8>)> {
        let recipient: lettre::Address = to
            .parse()
            .with_context(|| format!("the contact address {to:?} is not valid"))?;
        let text = format!(
            "{text}\n-- \nSolme Licensing\nThis is an automatic message from {}.\n",
            self.from.email
        );
        let message = self
            .builder(
                Mailbox::new(None, recipient.clone()),
                subject,
                name,
                now,
                "auto-generated",
            )
            .singlepart(SinglePart::plain(text))
            .with_context(|| format!("building the {kind} mail"))?;
        let envelope = OutgoingEnvelope {
            from: None,
            to: recipient.to_string(),
            kind,
        };
        Ok((envelope, message.formatted()))
    }

    /// The portal as the alternative to mailing sync data, under a license reply.
    fn portal_sync(&self) -> String {
        self.portal
            .as_deref()
            .map(|portal| {
                format!(
                    "\nNext time you can also synchronize in Solme's customer portal: sign in at\n\
                     {portal}/portal/\n\
                     with this address, upload the sync data file and download the license\n\
                     file at once.\n"
                )
            })
            .unwrap_or_default()
    }

    /// The portal as the alternative to mailing sync data, at the end of a reminder.
    fn portal_reminder(&self) -> String {
        self.portal
            .as_deref()
            .map(|portal| {
                format!(
                    "\nInstead of mailing the sync data (2b), you can upload it in Solme's customer\n\
                     portal and download the license file there at once: sign in at\n\
                     {portal}/portal/\n\
                     with the address this mail was sent to.\n"
                )
            })
            .unwrap_or_default()
    }

    /// The headers every mail of the gateway has.
    fn builder(
        &self,
        to: Mailbox,
        subject: String,
        name: &str,
        now: DateTime<Utc>,
        auto_submitted: &'static str,
    ) -> lettre::message::MessageBuilder {
        lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .date(SystemTime::from(now))
            .message_id(Some(format!("<{name}@{}>", self.domain)))
            .header(AutoSubmitted(auto_submitted))
            .header(AutoResponseSuppress)
    }

    fn subject(&self, reply: &Reply<'_>, original: &str) -> String {
        match reply {
            Reply::Decision(request) => format!(
                "Key-pair clearing for license server {}: {}",
                request.server_id, request.status
            ),
            _ if original.trim().is_empty() => "Re: your mail to Solme Licensing".into(),
            _ => {
                let original = original.trim();
                let has_re = original
                    .get(..3)
                    .is_some_and(|start| start.eq_ignore_ascii_case("re:"));
                if has_re {
                    original.to_owned()
                } else {
                    format!("Re: {original}")
                }
            }
        }
    }

    fn signature(&self) -> String {
        format!(
            "\n-- \nSolme Licensing\nThis is an automatic reply from {}.\n",
            self.from.email
        )
    }

    fn text(&self, reply: &Reply<'_>, sender: &str) -> String {
        let own = &self.from.email;
        match reply {
            Reply::License(answer) => format!("{}{}", license_text(answer), self.portal_sync()),
            Reply::KeyClearAck {
                server_id,
                request_id,
                sender_auth,
            } => {
                let unconfirmed = if *sender_auth == SenderAuth::Authenticated {
                    ""
                } else {
                    "Our mail server could not confirm that this mail came from your address\n\
                     (SPF, DKIM, DMARC), so the operator will confirm the request with your\n\
                     organisation by other means before clearing anything.\n\n"
                };
                format!(
                    "Hello,\n\n\
                     we have received your request to clear the key pair of license server id\n\
                     {server_id}.\n\n\
                     Reference: {request_id}\n\n\
                     {unconfirmed}\
                     A Solme operator will review it, and every registered contact of your\n\
                     organisation will get a mail when it is decided. Until then the server\n\
                     that holds the key pair keeps working as before.\n"
                )
            }
            Reply::Decision(request) => decision_text(request),
            Reply::Receipt(recorded) => format!(
                "Hello,\n\n\
                 thank you: Solme has recorded that license server {}\n\
                 installed license file #{} on {}.\n\n\
                 Nothing else is needed; the next synchronization of the server says the same.\n",
                recorded.server_id,
                recorded.sequence,
                recorded.installed_at.format("%Y-%m-%d %H:%M UTC")
            ),
            Reply::Problem(problem) => problem_text(problem, own),
            Reply::Refused {
                server_id,
                refusal,
                for_key_clear,
            } => refusal_text(*server_id, refusal, *for_key_clear, sender, own),
        }
    }
}

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

fn license_line(license: &License) -> String {
    let seats = if license.seats == 1 {
        "1 seat".to_owned()
    } else {
        format!("{} seats", license.seats)
    };
    let validity = match (license.valid_from, license.valid_until) {
        (None, None) => "perpetual".to_owned(),
        (None, Some(until)) => format!("until {}", day(until)),
        (Some(from), None) => format!("from {}, perpetual", day(from)),
        (Some(from), Some(until)) => format!("from {} until {}", day(from), day(until)),
    };
    format!("  - {}: {seats}, {validity}\n", license.feature)
}

fn license_text(answer: &SyncAnswer) -> String {
    let mut text = format!(
        "Hello,\n\n\
         here is the license file for license server id\n\
         {id}.\n\n\
         Valid until: {until} (synchronize again before then)\n",
        id = answer.server_id,
        until = day(answer.valid_until),
    );
    if answer.licenses.is_empty() {
        text.push_str("Licenses:    none at the moment\n");
    } else {
        text.push_str("Licenses:\n");
        for license in &answer.licenses {
            text.push_str(&license_line(license));
        }
    }
    text.push_str(&usage_line(&answer.usage));
    let _ = write!(
        text,
        "\nTo import it:\n\
         1. Save the attached file license-{id}.lic on the license server.\n\
         2. Run:  local-server import-license-file --data-dir DIR license-{id}.lic\n   \
            (DIR: the license server's data directory), or use \"Import license\n   \
            file\" on the manager page.\n\n\
         Client programs keep working while you do this.\n",
        id = answer.server_id
    );
    text
}

/// The one line on the usage the sync data reported to Solme.
fn usage_line(usage: &[shared_proto::FeatureUsage]) -> String {
    if usage.is_empty() {
        return "Usage:       none reported since the previous synchronization\n".to_owned();
    }
    let parts: Vec<String> = usage
        .iter()
        .map(|f| {
            let refused: u64 = f.refusals.values().sum();
            format!(
                "{} peak {} of {} seats, {:.1} seat-hours, {} refused",
                f.feature, f.peak_in_use, f.seats_total, f.seat_hours, refused
            )
        })
        .collect();
    format!("Usage:       {} (reported to Solme)\n", parts.join("; "))
}

/// The notice of a decision, the same for the requester and every other contact:
/// it says who asked and whether the mail server could confirm that address, so a
/// forged request does not pass unnoticed.
fn decision_text(request: &KeyClearRequest) -> String {
    let reason = request
        .reason
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .map(|r| format!("Reason given: {}\n", r.trim()))
        .unwrap_or_default();
    // Words for a customer: what the check found, not the headers and flags it read
    // (those are in the operator's console).
    let check = match request.sender_auth {
        SenderAuth::Authenticated => {
            "confirmed: the mail server verified that the request came from\n              \
             that address"
        }
        SenderAuth::NotAuthenticated => {
            "failed: the mail server could not confirm that the request came\n              \
             from that address"
        }
        SenderAuth::NotChecked => {
            "not made: the request's sender could not be verified, so it may\n              \
             not have come from that address"
        }
    };
    let (decided, consequence) = if request.status == KeyClearStatus::Approved {
        (
            "approved",
            "The id is no longer bound to a key pair: the next server that synchronizes\n\
             with it binds its own. Synchronize your server now, with\n\
             \"local-server sync\" or by mailing its sync data to this address.\n",
        )
    } else {
        (
            "rejected",
            "The id stays bound to the key pair it has. If you have questions, please\n\
             contact your Solme representative.\n",
        )
    };
    format!(
        "Hello,\n\n\
         the request to clear the key pair of license server id\n\
         {id}\n\
         (reference {reference}) was {decided} by a Solme operator.\n\n\
         Requested by: {sender}, on {asked}\n\
         Sender check: {check}\n\
         {reason}\n\
         {consequence}\n\
         This notice goes to every registered contact of the license server's\n\
         customer. If none of you asked for this, contact your Solme representative\n\
         at once.\n",
        id = request.server_id,
        reference = request.id,
        sender = request.sender,
        asked = day(request.created_at),
    )
}

fn days(n: i64) -> String {
    if n == 1 {
        "1 day".to_owned()
    } else {
        format!("{n} days")
    }
}

fn reminder_subject(reminder: &DueReminder) -> String {
    if reminder.threshold == ReminderThreshold::Passed {
        format!(
            "License server {} has not synchronized in time: it issues no licenses",
            reminder.server_id
        )
    } else {
        format!(
            "Reminder: synchronize license server {} by {} ({} left)",
            reminder.server_id,
            day(reminder.valid_until),
            days(reminder.days_left.max(0))
        )
    }
}

fn reminder_text(reminder: &DueReminder, own: &lettre::Address) -> String {
    let until = reminder.valid_until.format("%Y-%m-%d %H:%M UTC");
    let (when, consequence) = if reminder.threshold == ReminderThreshold::Passed {
        (
            format!(
                "Limit passed:      {until} ({} ago)\n",
                days(reminder.days_left.saturating_abs().max(1))
            ),
            format!(
                "A license server must synchronize with Solme at least once every 366 days.\n\
                 This one last synchronized more than 366 days ago, so since {until} it\n\
                 issues no licenses to client programs, however valid they are. Synchronize\n\
                 it now and it issues licenses again at once.\n"
            ),
        )
    } else {
        (
            format!(
                "Synchronize by:    {until}\n\
                 Days left:         {}\n",
                reminder.days_left
            ),
            format!(
                "A license server must synchronize with Solme at least once every 366 days.\n\
                 If this one has not synchronized by {until}, it stops issuing licenses to\n\
                 client programs until it has, however valid the licenses are.\n"
            ),
        )
    };
    format!(
        "Hello,\n\n\
         this is a reminder from Solme Licensing for {customer}.\n\n\
         License server id: {id}\n\
         Customer:          {customer}\n\
         {when}\n\
         {consequence}\n\
         There are two ways to synchronize (DIR: the license server's data directory):\n\n\
         1. Directly over the internet: on the license server run\n      \
            local-server sync --data-dir DIR\n   \
            or press \"Synchronize Server\" on its manager page.\n\n\
         2. By email, when the server cannot reach the internet:\n   \
            a. run \"local-server export-sync-data --data-dir DIR sync.txt\"\n      \
               (or use \"Export sync data\" on the manager page);\n   \
            b. mail that file to {own} from an address registered for your company;\n   \
            c. you get a license file back at that address: import it with\n      \
               \"local-server import-license-file --data-dir DIR FILE\"\n      \
               (or \"Import license file\" on the manager page).\n\n\
         {after}\n\n\
         This mail goes to every registered contact of {customer}. To stop these\n\
         reminders, ask your Solme representative to switch them off for your company.\n",
        customer = reminder.customer_name,
        id = reminder.server_id,
        after = if reminder.threshold == ReminderThreshold::Passed {
            "No further reminder is sent for this period."
        } else {
            "Client programs keep working while you do this. Once the server has\n\
             synchronized, no further reminder is sent for this period."
        },
    )
}

fn how_to_sync(own: &lettre::Address) -> String {
    let begin = begin_marker(ArmorKind::SyncData);
    let end = end_marker(ArmorKind::SyncData);
    format!(
        "To synchronize a license server by email:\n\
         1. Run \"local-server export-sync-data --data-dir DIR sync.txt\" on the license server\n   \
            (or use \"Export sync data\" on the manager page).\n\
         2. Attach that file to a mail to {own}, or paste its whole text (from the\n   \
            {begin} line to the {end}\n   \
            line) into the mail, and send it from an address registered for your\n   \
            company.\n\n\
         To ask for the key pair of a license server id to be cleared (after a\n\
         reinstall), write \"clear\" and the id in the subject.\n"
    )
}

fn problem_text(problem: &Problem, own: &lettre::Address) -> String {
    match problem {
        Problem::NoSyncData { attachments } => {
            let seen = if attachments.is_empty() {
                "Your message has no attachment, and its text holds no sync data.\n".to_owned()
            } else {
                format!(
                    "None of the attachments of your message ({}) holds sync data,\n\
                     and neither does its text.\n",
                    attachments.join(", ")
                )
            };
            format!(
                "Hello,\n\nwe found no sync data in your message.\n{seen}\n{}",
                how_to_sync(own)
            )
        }
        Problem::Damaged { detail } => format!(
            "Hello,\n\n\
             the sync data in your message is damaged and cannot be used:\n  {detail}\n\n\
             It was probably changed on the way, for example by an email program that\n\
             rewrapped or edited the text. Attach the exported file unchanged, or\n\
             export new sync data and send it again.\n\n{}",
            how_to_sync(own)
        ),
        Problem::LicenseFileSent => format!(
            "Hello,\n\n\
             your message holds a license file ({}),\n\
             not sync data. A license file is what we send you: import it into your\n\
             license server with \"local-server import-license-file FILE\".\n\n{}",
            begin_marker(ArmorKind::LicenseFile),
            how_to_sync(own)
        ),
        // The id's shape is shown with a placeholder, never with a real-looking
        // id: a reply quoting this text must not name an id itself.
        Problem::KeyClearWithoutId => "Hello,\n\n\
             you asked for a key pair to be cleared, but your message names no license\n\
             server id. The id has the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (letters\n\
             a-f and digits); \"local-server status\" shows it. Please send the request\n\
             again with \"clear\" and the id in the subject, for example\n\
             \"clear <your license server id>\".\n"
            .to_owned(),
        Problem::SeveralIds { ids } => {
            let list: String = ids.iter().map(|id| format!("  - {id}\n")).collect();
            format!(
                "Hello,\n\n\
                 your key-clear request names several license server ids:\n{list}\n\
                 Please send one request per id, each naming only that id.\n"
            )
        }
        Problem::SupportBundle { name } => format!(
            "Hello,\n\n\
             your message carries a support bundle,\n  {name}\n\
             not sync data, so no license file was made. This address answers\n\
             automatically and handles synchronization only: nobody reads support\n\
             bundles sent here. To get help from Solme support, send the bundle to\n\
             your Solme support contact with a few words on what goes wrong.\n\n{}",
            how_to_sync(own)
        ),
        Problem::TooLarge { size, limit } => format!(
            "Hello,\n\n\
             your message is too large: it has {size} bytes, and {own} accepts at\n\
             most {limit} bytes. Sync data files are small: send the file alone,\n\
             without other attachments or pictures.\n"
        ),
    }
}

fn refusal_text(
    server_id: Uuid,
    refusal: &Refusal,
    for_key_clear: bool,
    sender: &str,
    own: &lettre::Address,
) -> String {
    match refusal {
        // An unknown id and a sender not registered for a known one get the same
        // answer: a stranger learns nothing about which ids exist.
        Refusal::UnknownId | Refusal::NotRegistered => {
            let what = if for_key_clear {
                "a key-clear request"
            } else {
                "sync data"
            };
            format!(
                "Hello,\n\n\
                 we cannot accept {what} for license server id\n\
                 {server_id}\n\
                 from {sender}: either Solme does not know this id, or the address is not\n\
                 registered as a contact of its customer.\n\n\
                 Please check the id (\"local-server status\" shows it) and send from an\n\
                 address registered for your company, or ask your Solme representative\n\
                 to register this one.\n"
            )
        }
        Refusal::IdInUse => format!(
            "Hello,\n\n\
             license server id {server_id} is bound to another key pair: another\n\
             server (or this one before a reinstall) has already synchronized with it.\n\
             To protect the id, no other server can synchronize with it until a Solme\n\
             operator clears that key pair.\n\n\
             To ask for it, send a mail to {own} from an address registered for your\n\
             company, with the subject\n\n  clear {server_id}\n\n\
             and a line on why (for example \"server reinstalled\"). You will get a mail\n\
             when an operator has decided; then send the sync data again.\n"
        ),
        Refusal::Replayed { resumed: false } => format!(
            "Hello,\n\n\
             this sync data for license server id {server_id} was already used and\n\
             cannot be used again (the license server has probably synchronized since it\n\
             was exported). Export new sync data\n\
             (\"local-server export-sync-data --data-dir DIR sync.txt\") and send it again.\n"
        ),
        Refusal::Replayed { resumed: true } => format!(
            "Hello,\n\n\
             we processed your sync data for license server id {server_id}, but an\n\
             interruption on our side kept the license file from being sent, and each\n\
             export can be used only once. We are sorry: please export new sync data\n\
             (\"local-server export-sync-data --data-dir DIR sync.txt\") and send it again.\n"
        ),
        Refusal::Stale => format!(
            "Hello,\n\n\
             this sync data for license server id {server_id} is too old to be used.\n\
             Export new sync data (\"local-server export-sync-data --data-dir DIR sync.txt\") and\n\
             send it within a few days.\n"
        ),
        Refusal::Damaged { message } => format!(
            "Hello,\n\n\
             the sync data for license server id {server_id} was refused:\n  {message}\n\n\
             Export new sync data (\"local-server export-sync-data --data-dir DIR sync.txt\") and\n\
             attach the file unchanged.\n"
        ),
        Refusal::Other { code, message } => format!(
            "Hello,\n\n\
             your request for license server id {server_id} was refused ({code}):\n  {message}\n\n\
             If this is unexpected, please contact your Solme representative.\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender() -> Sender {
        Sender {
            address: "ops@acme.example".into(),
            name: Some("Åsa Öberg".into()),
            message_id: Some("abc@acme.example".into()),
            references: vec!["older@acme.example".into()],
            subject: "Sync data".into(),
        }
    }

    #[test]
    fn replies_are_threaded_and_marked_automatic() {
        let composer = Composer::new("licensing@solme.example", "Solme Licensing").unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let problem = Problem::NoSyncData {
            attachments: vec![],
        };
        let (envelope, bytes) = composer
            .compose(&Reply::Problem(&problem), &sender(), "r1", now)
            .unwrap();
        assert_eq!(envelope.to, "ops@acme.example");
        assert_eq!(envelope.from, None);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("In-Reply-To: <abc@acme.example>"), "{text}");
        assert!(
            text.contains("References: <older@acme.example> <abc@acme.example>"),
            "{text}"
        );
        assert!(text.contains("Auto-Submitted: auto-replied"), "{text}");
        assert!(text.contains("Subject: Re: Sync data"), "{text}");
        assert!(text.contains("Message-ID: <r1@solme.example>"), "{text}");
    }

    #[test]
    fn refusal_codes_are_sorted() {
        assert_eq!(
            Refusal::from_code(403, ErrorCode::Unauthorized, "", false),
            Refusal::NotRegistered
        );
        assert_eq!(
            Refusal::from_code(409, ErrorCode::IdInUse, "", false),
            Refusal::IdInUse
        );
        assert!(matches!(
            Refusal::from_code(400, ErrorCode::BadSignature, "x", false),
            Refusal::Damaged { .. }
        ));
    }
}
