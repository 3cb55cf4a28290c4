//! Borrowed seats that must outlive the installation that lent them.
//!
//! A seat borrowed for offline use is held by a client far away until its token ends
//! or the client returns it. When the installation that lent it is reinstalled (a new
//! key pair, a key clearing by Solme), the new one would know nothing of it and lend the
//! seat again. So each sync request reports the seats out on borrow
//! ([`OutstandingBorrow`], inside the signed request), Solme keeps the last set each key
//! pair reported, and the first license files to the id's next key pair carry that set
//! ([`InheritedBorrows`], inside the signed license file, naming the key pair that lent
//! the seats). The new installation counts them taken until they end or are returned.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::keys::Fingerprint;

/// Most borrowed seats one sync request reports (an installation with more reports
/// those ending last). Keeps a request well inside the main server's size limit.
pub const MAX_REPORTED_BORROWS: usize = 128;
/// Longest feature, user or host name in a report (bytes), as the local server bounds
/// them at the check-out.
pub const MAX_BORROW_NAME_LEN: usize = 128;

/// A seat lent for offline use and not returned yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutstandingBorrow {
    /// The lease that holds the seat: the id the borrow token names and a return uses.
    pub lease_id: Uuid,
    pub feature: String,
    pub user: String,
    pub host: String,
    /// The seat comes back by itself then.
    pub until: DateTime<Utc>,
}

/// What a license file carries over from the id's previous key pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InheritedBorrows {
    /// The key pair that lent the seats (and signed their tokens).
    pub from_key: Fingerprint,
    /// When that installation made the request that reported them.
    pub reported_at: DateTime<Utc>,
    /// The seats still out when the file was made (ended ones are left out).
    pub borrows: Vec<OutstandingBorrow>,
}

/// Checks a report against the bounds above; a correct local server never exceeds
/// them, anything else is refused as malformed.
pub fn check(borrows: &[OutstandingBorrow]) -> Result<(), String> {
    if borrows.len() > MAX_REPORTED_BORROWS {
        return Err(format!(
            "the request reports {} borrowed seats, more than {MAX_REPORTED_BORROWS}",
            borrows.len()
        ));
    }
    for borrow in borrows {
        for (what, value) in [
            ("feature", &borrow.feature),
            ("user", &borrow.user),
            ("host", &borrow.host),
        ] {
            if value.is_empty()
                || value.len() > MAX_BORROW_NAME_LEN
                || value.chars().any(char::is_control)
            {
                return Err(format!(
                    "a borrowed seat's {what} must be 1 to {MAX_BORROW_NAME_LEN} bytes without \
                     control characters"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn borrow(feature: &str) -> OutstandingBorrow {
        OutstandingBorrow {
            lease_id: Uuid::new_v4(),
            feature: feature.into(),
            user: "alice".into(),
            host: "laptop-7".into(),
            until: Utc::now(),
        }
    }

    #[test]
    fn reports_are_bounded() {
        assert!(check(&[borrow("cad")]).is_ok());
        assert!(check(&vec![borrow("cad"); MAX_REPORTED_BORROWS]).is_ok());
        assert!(check(&vec![borrow("cad"); MAX_REPORTED_BORROWS + 1]).is_err());
        assert!(check(&[borrow("")]).is_err());
        assert!(check(&[borrow(&"x".repeat(MAX_BORROW_NAME_LEN + 1))]).is_err());
        assert!(check(&[borrow("ca\nd")]).is_err());
    }
}
