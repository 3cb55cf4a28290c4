//! The client API's bodies as this library reads and sends them
//! (local-server/README.md, "Client API"). Unknown fields are ignored, so a newer
//! server that adds one still works with this client.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /api/v1/leases`.
#[derive(Debug, Serialize)]
pub(crate) struct CheckOutBody<'a> {
    pub feature: &'a str,
    pub client: &'a str,
    pub user: &'a str,
    pub host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub borrow_hours: Option<u32>,
    /// The highest pair epoch this client has seen (absent: none yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pair_epoch: Option<i64>,
}

/// A `201` to a check-out or a queue poll, and a `200` to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub lease_id: Uuid,
    pub feature: String,
    pub user: String,
    pub host: String,
    /// When the seat goes back unless a heartbeat comes (a borrow: when it ends).
    pub expires_at: DateTime<Utc>,
    /// How often the server wants a heartbeat; absent for a borrow, which takes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<u64>,
    /// The place the client had in the queue, after a wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u64>,
    /// How long the client waited, after a wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<u64>,
    /// The signed token of a borrowed seat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrow_token: Option<String>,
    /// The epoch of the server's pair (a primary and its standby), when it belongs to
    /// one. The client sends the highest it has seen with its later requests, so that a
    /// primary learns that its standby was promoted (docs/standby.md, "Partitions").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_epoch: Option<i64>,
}

/// A `202`: the client waits in the queue and polls with its ticket.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct QueueTicket {
    pub ticket: Uuid,
    pub position: u64,
    /// The client must ask again within this many seconds or lose its place.
    pub poll_within_seconds: u64,
}

/// One line of `GET /api/v1/features`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    pub feature: String,
    pub seats_total: u64,
    pub in_use: u64,
    pub free: u64,
    #[serde(default)]
    pub queued: u64,
    /// The server's word for the feature's state (e.g. `available`).
    #[serde(default)]
    pub state: String,
}

/// `GET /api/v1/public-key`.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct PublicKey {
    pub algorithm: String,
    /// Base64 of the raw 32-byte Ed25519 key.
    pub public_key: String,
}
