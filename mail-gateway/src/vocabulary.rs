//! The gateway's shared vocabulary: how a message came in ([`Intake`], [`Envelope`]),
//! who sent it ([`Sender`]), what a composed mail is ([`ReplyKind`], [`OutgoingEnvelope`])
//! and the lines that frame an armored block.
//!
//! A leaf: it imports no other module of the crate, so every side of the gateway can
//! speak of these types without importing another side.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared_proto::armor::ArmorKind;

/// How the message reached the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Intake {
    /// The gateway's own SMTP listener. Nobody checked the sender: no
    /// `Authentication-Results` header of such a message is believed.
    Smtp,
    /// `mail-gateway deliver` (an MTA's pipe transport). The MTA's own
    /// `Authentication-Results` header is believed.
    Deliver,
    /// A Maildir an MTA delivers to. The MTA's own `Authentication-Results`
    /// header is believed.
    Maildir,
}

/// What the gateway knows about an inbound message besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The SMTP reverse path: `Some("")` is the null sender of a bounce,
    /// `None` means the intake did not know it (the message's own
    /// `Return-Path` header is used then).
    pub return_path: Option<String>,
    /// SMTP recipients, when known.
    pub recipients: Vec<String>,
    /// When the gateway accepted the message (gateway clock).
    pub received_at: DateTime<Utc>,
    /// Which intake took it in.
    pub intake: Intake,
    /// The size of the message as it arrived, in bytes.
    pub size: u64,
    /// True when the message was larger than the limit and only its head was
    /// kept: enough to answer "message too large".
    pub truncated: bool,
}

/// The facts about a message that a reply needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The address from `From:` (the registered contact the reply goes to).
    pub address: String,
    /// Its display name, if any.
    pub name: Option<String>,
    /// The message's Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// The message's References, without angle brackets, oldest first.
    pub references: Vec<String>,
    /// The message's subject (empty when absent).
    pub subject: String,
}

/// Where a composed reply goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingEnvelope {
    /// The envelope sender; `None` is the null reverse path that RFC 3834
    /// asks automatic replies to use, so they never bounce back into a loop.
    pub from: Option<String>,
    /// The single recipient: the address the inbound mail came from.
    pub to: String,
    /// What the reply is, for logs and the status page (`license`, `no-sync-data`, …).
    pub kind: ReplyKind,
}

shared_proto::text_enum! {
    /// What a composed reply is, as logged and kept in its outgoing envelope.
    pub enum ReplyKind {
        License => "license",
        KeyClearAck => "key-clear-ack",
        KeyClearApproved => "key-clear-approved",
        KeyClearRejected => "key-clear-rejected",
        NoSyncData => "no-sync-data",
        /// Sync data that cannot be read, found by the gateway or the main server.
        Damaged => "damaged",
        LicenseFileSent => "license-file-sent",
        KeyClearWithoutId => "key-clear-without-id",
        SeveralIds => "several-ids",
        TooLarge => "too-large",
        /// A support bundle, not sync data.
        SupportBundle => "support-bundle",
        UnknownId => "unknown-id",
        IdInUse => "id-in-use",
        NotRegistered => "not-registered",
        Replayed => "replayed",
        Stale => "stale",
        /// Any other refusal of the main server.
        Refused => "refused",
        /// A reminder of the 366-day limit (not a reply).
        Reminder => "reminder",
        /// A sign-in link for the customer portal (not a reply).
        PortalLink => "portal-link",
        /// An installation receipt was recorded.
        ReceiptRecorded => "receipt-recorded",
    }
}

/// The line that opens an armored block of `kind`, as `shared_proto::armor` writes it.
pub fn begin_marker(kind: ArmorKind) -> String {
    format!("-----BEGIN {}-----", kind.label())
}

/// The line that closes an armored block of `kind`.
pub fn end_marker(kind: ArmorKind) -> String {
    format!("-----END {}-----", kind.label())
}
