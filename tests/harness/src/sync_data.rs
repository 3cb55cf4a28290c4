//! Sync data as a freshly installed local server makes it, for tests that play the
//! local server's part without running one.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use shared_proto::messages::{SyncRequest, MESSAGE_VERSION};
use shared_proto::ServerIdentity;
use uuid::Uuid;

/// Sync data for `server_id` signed by `identity`, made at `created_at`: a new request
/// id, nothing held yet, no usage.
pub fn sync_data_at(
    identity: &ServerIdentity,
    server_id: Uuid,
    created_at: DateTime<Utc>,
) -> Result<String> {
    let request = SyncRequest {
        version: MESSAGE_VERSION,
        server_id,
        request_id: Uuid::new_v4(),
        created_at,
        public_keys: identity.public_keys(),
        held_revision: None,
        held_sequence: None,
        software_version: "test-harness".into(),
        usage: Vec::new(),
        usage_since: None,
        held_file_sha256: None,
        request_counter: None,
        borrows: None,
        standby_keys: None,
    };
    shared_proto::sync_data::seal(identity, &request).context("sealing sync data")
}
