//! The two messages of the protocol: the sync request a local server signs, and the
//! license file Solme signs in answer. Both travel as UTF-8 JSON inside the envelope.
//! Unknown fields are refused: the signed content is read strictly.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ErrorCode;
use crate::keys::{Fingerprint, ServerPublicKeys};

/// Version of the message schema this software writes and reads.
pub const MESSAGE_VERSION: u32 = 1;

/// What a local server sends to synchronize (directly, or as a sync-data file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    pub version: u32,
    pub server_id: Uuid,
    /// Used once: the main server refuses a request id it has seen.
    pub request_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// The keys the request is signed with and the answer must be encrypted to.
    pub public_keys: ServerPublicKeys,
    pub held_revision: Option<i64>,
    pub held_sequence: Option<i64>,
    pub software_version: String,
    #[serde(default)]
    pub usage: Vec<FeatureUsage>,
}

/// Seat usage per feature, reported with each sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureUsage {
    pub feature: String,
    pub seats_total: u32,
    pub peak_in_use: u32,
}

/// Solme's answer: every license of the id, valid for 366 days from `issued_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseFile {
    pub version: u32,
    pub server_id: Uuid,
    /// The request id this file answers.
    pub answers_request: Uuid,
    /// Fingerprint of the server key pair the file was made for.
    pub recipient: Fingerprint,
    /// Grows with every file issued for the id: an import never goes back.
    pub sequence: i64,
    /// The id's license revision on the main server.
    pub revision: i64,
    pub issued_at: DateTime<Utc>,
    /// `issued_at` + 366 days: the local server issues nothing after it.
    pub valid_until: DateTime<Utc>,
    pub customer: String,
    pub licenses: Vec<License>,
}

/// One license: a feature with a number of floating seats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct License {
    pub feature: String,
    pub seats: u32,
    /// None: valid since forever.
    pub valid_from: Option<DateTime<Utc>>,
    /// None: perpetual.
    pub valid_until: Option<DateTime<Utc>>,
    /// The longest a client may borrow a seat for offline use, in hours; absent: the
    /// license is not borrowable. Absent from the JSON when not set, so files without
    /// borrowing read the same as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_borrow_hours: Option<u32>,
}

impl License {
    /// `seats` of `feature`, valid since forever and perpetual, not borrowable.
    pub fn perpetual(feature: &str, seats: u32) -> Self {
        Self {
            feature: feature.into(),
            seats,
            valid_from: None,
            valid_until: None,
            max_borrow_hours: None,
        }
    }

    /// Whether the license itself is valid at `now` (`LICENSE_EXPIRED` outside its dates).
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), ErrorCode> {
        let started = self.valid_from.is_none_or(|from| from <= now);
        let not_ended = self.valid_until.is_none_or(|until| now <= until);
        if started && not_ended {
            Ok(())
        } else {
            Err(ErrorCode::LicenseExpired)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn license_dates() {
        let now = Utc::now();
        let perpetual = License::perpetual("cad", 1);
        assert_eq!(perpetual.check(now), Ok(()));
        let ended = License {
            valid_until: Some(now - Duration::seconds(1)),
            ..perpetual.clone()
        };
        assert_eq!(ended.check(now), Err(ErrorCode::LicenseExpired));
        let future = License {
            valid_from: Some(now + Duration::days(1)),
            ..perpetual
        };
        assert_eq!(future.check(now), Err(ErrorCode::LicenseExpired));
    }
}
