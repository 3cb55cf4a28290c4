//! What the two servers of a pair say to each other over HTTP (docs/standby.md, "The
//! channel between the two"). Every message is signed by its sender's own key
//! (`shared_proto::pair`) and checked against the key pinned at pairing; what is too
//! big for a signed message (a license file, the options, report entries) travels
//! beside it as an attachment whose SHA-256 the signed message names.

use chrono::{DateTime, Utc};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use shared_proto::borrows::OutstandingBorrow;
use shared_proto::{ErrorCode, ServerIdentity, ServerPublicKeys};
use uuid::Uuid;

use crate::error::Error;
use crate::report_log::Event;

/// Largest body either side accepts on the pair channel.
pub const MAX_PAIR_BODY: usize = 8 * 1024 * 1024;
/// Most report entries one hand-back message carries.
pub const MAX_ROWS_PER_HAND_BACK: usize = 2_000;

/// What travels over HTTP: the signed message, and its attachment if any.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wire {
    /// The sender's keys: only for a join, before the two have pinned each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<ServerPublicKeys>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<String>,
}

/// The large part of a message.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// The signed content of the primary's license file (Solme's signature inside), in
    /// base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_file: Option<String>,
    /// The options file in force on the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
    /// The seats the primary lent for offline use and has not had back.
    #[serde(default)]
    pub borrows: Vec<OutstandingBorrow>,
    /// Report entries of a promoted standby, handed back.
    #[serde(default)]
    pub report: Vec<HandedEntry>,
}

/// One report-log entry of the standby, handed back to the primary.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandedEntry {
    /// Its number in the standby's report log (a hand-back sent again skips those the
    /// primary has).
    pub number: i64,
    pub at: DateTime<Utc>,
    pub event: String,
    pub feature: String,
    pub user: String,
    pub host: String,
    pub lease_id: Option<String>,
    pub code: Option<String>,
    pub in_use: i32,
    pub wait_ms: Option<i64>,
}

impl HandedEntry {
    /// The event, when it is one this server knows.
    pub fn event(&self) -> Option<Event> {
        self.event.parse().ok()
    }
}

/// The standby asks to pair, with the code the primary showed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    pub sent_at: DateTime<Utc>,
    /// HMAC-SHA256 of the standby's public keys under the pairing code: proves the
    /// sender was given the code, without sending it.
    pub proof: String,
}

/// The primary accepts: its keys, its own proof of the code, and what the standby
/// needs to run beside it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Joined {
    pub proof: String,
    pub server_id: Uuid,
    pub endpoints: Vec<String>,
    pub solme_public_pem: String,
    pub ca_pem: String,
    pub epoch: i64,
}

/// The standby's regular call (every pair interval): what it holds and where it stands.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replicate {
    /// Higher in every message of the standby: a replay is refused.
    pub counter: i64,
    pub epoch: i64,
    pub state: String,
    /// The sequence of the primary's license file the standby holds.
    pub held_sequence: Option<i64>,
    /// SHA-256 of the options file it holds.
    pub options_sha256: Option<String>,
    /// The standby's clock when it sent this.
    pub sent_at: DateTime<Utc>,
    /// The standby's last measure of the two clocks (primary minus standby).
    pub clock_offset_ms: Option<i64>,
    pub promoted_at: Option<DateTime<Utc>>,
}

/// The primary's answer to [`Replicate`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replicated {
    /// The counter of the call this answers (binds the answer to it).
    pub answers: i64,
    pub epoch: i64,
    pub state: String,
    /// The primary's clock when the call arrived and when the answer left.
    pub received_at: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
    /// The promoted standby must hand back now.
    pub hand_back: bool,
    pub attachment_sha256: Option<String>,
}

/// A promoted standby hands back: its report entries since promotion, in parts.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandBack {
    pub counter: i64,
    pub epoch: i64,
    pub promoted_at: Option<DateTime<Utc>>,
    /// The last part: the primary takes over once it has it.
    pub last: bool,
    pub attachment_sha256: Option<String>,
}

/// The primary has the hand-back (part) stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taken {
    pub answers: i64,
    /// The new epoch once the last part is in.
    pub epoch: i64,
    pub entries_stored: u64,
}

/// HMAC-SHA256 of `keys` under a pairing code's hash, in hex.
pub fn proof(code_hash: &str, keys: &ServerPublicKeys) -> Result<String, Error> {
    let internal = |e: openssl::error::ErrorStack| Error::Internal(e.into());
    let key = PKey::hmac(code_hash.as_bytes()).map_err(internal)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key).map_err(internal)?;
    let json = serde_json::to_vec(keys).map_err(|e| Error::Internal(e.into()))?;
    signer.update(&json).map_err(internal)?;
    Ok(shared_proto::hex::encode(
        &signer.sign_to_vec().map_err(internal)?,
    ))
}

/// Whether `presented` is the proof of `keys` under `code_hash`, compared in constant
/// time.
pub fn proof_holds(code_hash: &str, keys: &ServerPublicKeys, presented: &str) -> bool {
    match proof(code_hash, keys) {
        Ok(expected) => {
            expected.len() == presented.len()
                && openssl::memcmp::eq(expected.as_bytes(), presented.as_bytes())
        }
        Err(_) => false,
    }
}

/// `message` signed by `identity`, with `attachment` beside it.
pub fn wire<T: Serialize>(
    identity: &ServerIdentity,
    message: &T,
    attachment: Option<String>,
    keys: Option<ServerPublicKeys>,
) -> Result<Wire, Error> {
    Ok(Wire {
        keys,
        message: shared_proto::pair::sign(identity, message)?,
        attachment,
    })
}

/// The attachment as text, and its hash for the signed message.
pub fn attach(attachment: &Attachment) -> Result<(String, String), Error> {
    let text = serde_json::to_string(attachment).map_err(|e| Error::Internal(e.into()))?;
    let hash = sha256_hex(text.as_bytes());
    Ok((text, hash))
}

/// Reads the attachment the signed message names by `hash` (none when it names none).
pub fn attachment(wire: &Wire, hash: Option<&str>) -> Result<Attachment, Error> {
    match (hash, &wire.attachment) {
        (None, _) => Ok(Attachment::default()),
        (Some(hash), Some(text)) if sha256_hex(text.as_bytes()) == hash => {
            serde_json::from_str(text).map_err(|e| {
                Error::refused(
                    ErrorCode::Malformed,
                    format!("the other server's message is damaged: {e}"),
                )
            })
        }
        (Some(_), _) => Err(Error::refused(
            ErrorCode::BadSignature,
            "the part of the other server's message beside its signature was altered or is \
             missing",
        )),
    }
}

/// The signed message of `wire`, checked against `sender`'s key.
pub fn open<T: DeserializeOwned>(wire: &Wire, sender: &ServerPublicKeys) -> Result<T, Error> {
    Ok(shared_proto::pair::open(&wire.message, sender)?)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    shared_proto::hex::encode(&openssl::sha::sha256(bytes))
}
