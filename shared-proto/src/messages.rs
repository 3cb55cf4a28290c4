//! The two messages of the protocol: the sync request a local server signs, and the
//! license file Solme signs in answer. Both travel as UTF-8 JSON inside the envelope.
//! Unknown fields are refused: the signed content is read strictly.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::borrows::{InheritedBorrows, OutstandingBorrow};
use crate::error::ErrorCode;
use crate::keys::{Fingerprint, ServerPublicKeys};

/// Version of the message schema this software writes and reads.
pub const MESSAGE_VERSION: u32 = 1;

/// Most features one usage summary may carry.
pub const MAX_USAGE_FEATURES: usize = 256;
/// Longest feature name in a usage summary (bytes).
pub const MAX_USAGE_FEATURE_LEN: usize = 128;
/// Most refusal codes per feature in a usage summary.
pub const MAX_USAGE_CODES: usize = 32;
/// Longest refusal code in a usage summary (bytes).
pub const MAX_USAGE_CODE_LEN: usize = 32;

/// What a local server sends to synchronize (directly, or as a sync-data file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// The use of each feature since the previous sync (empty when the report log has
    /// nothing); absent in requests of older local servers. Bounded by [`check_usage`].
    #[serde(default)]
    pub usage: Vec<FeatureUsage>,
    /// Where the period of `usage` begins (the previous sync); absent when the server
    /// never synchronized before or sends no usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_since: Option<DateTime<Utc>>,
    /// Hex SHA-256 of the signed content of the license file held (the one of
    /// `held_sequence`); absent when none is held, or from older local servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_file_sha256: Option<String>,
    /// How many requests this installation has made, this one included. Kept in the
    /// installation's database, so a copy of its data directory continues from the same
    /// number: two installations with one key pair show as counters going back. Absent
    /// from older local servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_counter: Option<u64>,
    /// The seats this installation lent for offline use and has not had back (bounded
    /// by [`crate::borrows::check`]): Solme keeps them for the id's next key pair.
    /// Absent from older local servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrows: Option<Vec<OutstandingBorrow>>,
    /// The public keys of the standby server paired with this installation (see
    /// [`StandbyTerms`]): only the id's bound key pair can name one, since only its
    /// requests are accepted. Absent without a standby, and from older local servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_keys: Option<ServerPublicKeys>,
}

/// Seat usage of one feature since the previous sync.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureUsage {
    pub feature: String,
    /// Seats the local server held for the feature when it made the request.
    pub seats_total: u32,
    pub peak_in_use: u32,
    /// Seats in use integrated over the period, in hours.
    #[serde(default)]
    pub seat_hours: f64,
    /// Refused check-outs by error code (`NO_SEATS`, `OPTIONS_DENIED`, …).
    #[serde(default)]
    pub refusals: BTreeMap<String, u64>,
}

/// Whether `code` may name refusals in a usage summary: A-Z and `_`, bounded.
pub fn check_usage_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_USAGE_CODE_LEN
        && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
}

/// Checks a usage summary against the bounds above (a correct local server never
/// exceeds them; anything else is refused as malformed, not stored).
pub fn check_usage(usage: &[FeatureUsage]) -> Result<(), String> {
    if usage.len() > MAX_USAGE_FEATURES {
        return Err(format!(
            "the usage summary names {} features, more than {MAX_USAGE_FEATURES}",
            usage.len()
        ));
    }
    for feature in usage {
        if feature.feature.is_empty()
            || feature.feature.len() > MAX_USAGE_FEATURE_LEN
            || feature.feature.chars().any(char::is_control)
        {
            return Err(format!(
                "a feature name of the usage summary is empty, control text or longer than \
                 {MAX_USAGE_FEATURE_LEN} bytes"
            ));
        }
        if !feature.seat_hours.is_finite() || feature.seat_hours < 0.0 {
            return Err(format!(
                "the seat-hours of {} in the usage summary are not a positive number",
                feature.feature
            ));
        }
        if feature.refusals.len() > MAX_USAGE_CODES {
            return Err(format!(
                "the usage summary of {} has more than {MAX_USAGE_CODES} refusal codes",
                feature.feature
            ));
        }
        if !feature.refusals.keys().all(|code| check_usage_code(code)) {
            return Err(format!(
                "a refusal code of {} in the usage summary is not a code (A-Z and _, at most \
                 {MAX_USAGE_CODE_LEN} bytes)",
                feature.feature
            ));
        }
    }
    Ok(())
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
    /// Seats the id's previous key pair lent and had not had back when it last
    /// reported: carried in the files to a new installation until it holds one (see
    /// [`crate::borrows`]). Absent otherwise, so older files read the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_borrows: Option<InheritedBorrows>,
    /// The standby server the recipient named in its request, and how long it may
    /// issue once a person promoted it: the file covers both servers of the pair.
    /// Absent without a standby, so files without one read the same as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby: Option<StandbyTerms>,
}

/// What a license file allows the standby server of its recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandbyTerms {
    /// Fingerprint of the standby's key pair.
    pub fingerprint: Fingerprint,
    /// Days a promoted standby may issue seats while its primary is down (set by Solme
    /// per license server id).
    pub failover_days: u32,
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
    fn usage_of_older_local_servers_still_reads() {
        let old: FeatureUsage =
            serde_json::from_str(r#"{"feature":"cad","seats_total":5,"peak_in_use":2}"#).unwrap();
        assert_eq!(old.seat_hours, 0.0);
        assert!(old.refusals.is_empty());
    }

    #[test]
    fn usage_bounds() {
        let ok = FeatureUsage {
            feature: "cad".into(),
            seats_total: 5,
            peak_in_use: 3,
            seat_hours: 1.5,
            refusals: BTreeMap::from([("NO_SEATS".to_owned(), 2)]),
        };
        assert_eq!(check_usage(std::slice::from_ref(&ok)), Ok(()));
        let too_many = vec![ok.clone(); MAX_USAGE_FEATURES + 1];
        assert!(check_usage(&too_many).is_err());
        let long_code = FeatureUsage {
            refusals: BTreeMap::from([("N".repeat(MAX_USAGE_CODE_LEN + 1), 1)]),
            ..ok.clone()
        };
        assert!(check_usage(&[long_code]).is_err());
        let odd_code = FeatureUsage {
            refusals: BTreeMap::from([("no seats".to_owned(), 1)]),
            ..ok.clone()
        };
        assert!(check_usage(&[odd_code]).is_err());
        let long_name = FeatureUsage {
            feature: "f".repeat(MAX_USAGE_FEATURE_LEN + 1),
            ..ok.clone()
        };
        assert!(check_usage(&[long_name]).is_err());
        let negative = FeatureUsage {
            seat_hours: -1.0,
            ..ok
        };
        assert!(check_usage(&[negative]).is_err());
    }

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
