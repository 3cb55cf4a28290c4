//! The live leases in memory: by id, by expiry, and counted per feature, user and host.
//!
//! Why counts kept beside the leases: a check-out must know the seats in use of its
//! feature (and, for the options file's rules, those its user and host hold) without a
//! scan of every live lease. Every change goes through [`Index::insert`] and
//! [`Index::remove`], which keep the maps in step. Nothing here reads a clock or the
//! database: times are given.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use uuid::Uuid;

use crate::db::LeaseRow;
use crate::options::Holdings;

/// A lease the engine holds in memory.
pub struct LiveLease {
    /// Shared with the counts' keys, so a feature's name is stored once.
    pub feature: Arc<str>,
    pub user: String,
    pub host: String,
    /// When it was granted: over a lowered seat count, the newest leases lose first.
    pub granted_ms: i64,
    pub expires_ms: i64,
    pub borrowed: bool,
}

/// The live leases and their counts.
#[derive(Default)]
pub struct Index {
    leases: HashMap<Uuid, LiveLease>,
    /// Expiry order, so expired leases are found without a scan. Holds exactly the
    /// `(expires_ms, id)` of every entry of `leases`.
    by_expiry: BTreeSet<(i64, Uuid)>,
    in_use: HashMap<Arc<str>, u32>,
    /// Seats held per user and per host, per feature (for the options file's rules).
    holders: HashMap<Arc<str>, Holders>,
}

impl Index {
    /// How many leases are live.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn get(&self, id: Uuid) -> Option<&LiveLease> {
        self.leases.get(&id)
    }

    /// Adds a lease from its row (a new grant, or a stored one at start-up).
    pub fn insert(&mut self, id: Uuid, row: &LeaseRow) {
        // Reuse the feature's shared name when one is counted already.
        let feature = match self.in_use.get_key_value(row.feature.as_str()) {
            Some((key, _)) => key.clone(),
            None => Arc::from(row.feature.as_str()),
        };
        *self.in_use.entry(feature.clone()).or_insert(0) += 1;
        let holders = self.holders.entry(feature.clone()).or_default();
        holders.take(&row.user, &row.host);
        self.by_expiry.insert((row.expires_at, id));
        self.leases.insert(
            id,
            LiveLease {
                feature,
                user: row.user.clone(),
                host: row.host.clone(),
                granted_ms: row.granted_at,
                expires_ms: row.expires_at,
                borrowed: row.borrowed,
            },
        );
    }

    /// Takes a lease out and gives its seat back to the counts.
    pub fn remove(&mut self, id: Uuid) -> Option<LiveLease> {
        let lease = self.leases.remove(&id)?;
        self.by_expiry.remove(&(lease.expires_ms, id));
        if let Some(count) = self.in_use.get_mut(&lease.feature) {
            *count = count.saturating_sub(1);
        }
        if let Some(holders) = self.holders.get_mut(&lease.feature) {
            holders.release(&lease.user, &lease.host);
        }
        Some(lease)
    }

    /// Moves a lease's expiry to `expires_ms`; never earlier (a renewal stored after a
    /// later one must not shorten it).
    pub fn renew(&mut self, id: Uuid, expires_ms: i64) {
        let Some(lease) = self.leases.get_mut(&id) else {
            // It ended while its renewal was being stored.
            return;
        };
        let old = lease.expires_ms;
        if expires_ms > old {
            lease.expires_ms = expires_ms;
            self.by_expiry.remove(&(old, id));
            self.by_expiry.insert((expires_ms, id));
        }
    }

    /// Takes out the lease that expires first, if its time is up at `now_ms`.
    pub fn pop_expired(&mut self, now_ms: i64) -> Option<(Uuid, LiveLease)> {
        loop {
            let &(expires, id) = self.by_expiry.first()?;
            if expires > now_ms {
                return None;
            }
            if let Some(lease) = self.remove(id) {
                return Some((id, lease));
            }
            // Not reachable while the two maps are in step; never stop at it.
            self.by_expiry.remove(&(expires, id));
        }
    }

    pub fn in_use_of(&self, feature: &str) -> u32 {
        self.in_use.get(feature).copied().unwrap_or(0)
    }

    /// The seats of `feature` held per user and host.
    pub fn holders_of(&self, feature: &str) -> &Holders {
        static NONE: OnceLock<Holders> = OnceLock::new();
        self.holders
            .get(feature)
            .unwrap_or_else(|| NONE.get_or_init(Holders::default))
    }

    /// How many live leases of the same feature are older than lease `id` (by grant
    /// time, then id). A scan of the live leases: only called over a lowered count.
    pub fn rank_in_feature(&self, id: Uuid) -> u32 {
        let Some(lease) = self.leases.get(&id) else {
            return 0;
        };
        let key = (lease.granted_ms, id);
        let older = self
            .leases
            .iter()
            .filter(|(other_id, other)| {
                other.feature == lease.feature && (other.granted_ms, **other_id) < key
            })
            .count();
        u32::try_from(older).unwrap_or(u32::MAX)
    }
}

/// Seats of one feature held per user and per host.
#[derive(Default)]
pub struct Holders {
    users: HashMap<String, u32>,
    hosts: HashMap<String, u32>,
}

impl Holders {
    fn take(&mut self, user: &str, host: &str) {
        *self.users.entry(user.to_owned()).or_insert(0) += 1;
        *self.hosts.entry(host.to_owned()).or_insert(0) += 1;
    }

    fn release(&mut self, user: &str, host: &str) {
        for (map, key) in [(&mut self.users, user), (&mut self.hosts, host)] {
            if let Some(n) = map.get_mut(key) {
                *n = n.saturating_sub(1);
                // No zero entries: the maps stay as small as the holders.
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

impl Holdings for Holders {
    fn by_user(&self, user: &str) -> u32 {
        self.users.get(user).copied().unwrap_or(0)
    }

    fn by_host(&self, host: &str) -> u32 {
        self.hosts.get(host).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(feature: &str, user: &str, host: &str, granted_ms: i64, expires_ms: i64) -> LeaseRow {
        LeaseRow {
            id: String::new(),
            feature: feature.into(),
            client: "test".into(),
            granted_at: granted_ms,
            expires_at: expires_ms,
            user: user.into(),
            host: host.into(),
            borrowed: false,
        }
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn counts_follow_inserts_and_removals() {
        let mut index = Index::default();
        index.insert(id(1), &row("cad", "alice", "ws-1", 0, 100));
        index.insert(id(2), &row("cad", "alice", "ws-2", 0, 100));
        index.insert(id(3), &row("cam", "bob", "ws-2", 0, 100));
        assert_eq!(index.len(), 3);
        assert_eq!(index.in_use_of("cad"), 2);
        assert_eq!(index.holders_of("cad").by_user("alice"), 2);
        assert_eq!(index.holders_of("cad").by_host("ws-2"), 1);
        assert_eq!(index.holders_of("cam").by_host("ws-2"), 1);

        assert!(index.remove(id(2)).is_some());
        assert!(index.remove(id(2)).is_none(), "a lease goes once");
        assert_eq!(index.in_use_of("cad"), 1);
        assert_eq!(index.holders_of("cad").by_user("alice"), 1);
        assert_eq!(index.holders_of("cad").by_host("ws-2"), 0);
        assert_eq!(index.holders_of("nothing").by_user("alice"), 0);
    }

    #[test]
    fn leases_expire_in_expiry_order_and_only_when_due() {
        let mut index = Index::default();
        index.insert(id(1), &row("cad", "a", "h", 0, 300));
        index.insert(id(2), &row("cad", "b", "h", 0, 100));
        index.insert(id(3), &row("cad", "c", "h", 0, 200));
        assert!(index.pop_expired(99).is_none());
        let popped: Vec<Uuid> = std::iter::from_fn(|| index.pop_expired(200))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(popped, [id(2), id(3)], "at its expiry time a lease is over");
        assert_eq!(index.in_use_of("cad"), 1);
    }

    #[test]
    fn a_renewal_moves_the_expiry_later_never_earlier() {
        let mut index = Index::default();
        index.insert(id(1), &row("cad", "a", "h", 0, 100));
        index.renew(id(1), 500);
        index.renew(id(1), 300);
        index.renew(id(9), 300);
        assert!(index.pop_expired(499).is_none());
        assert_eq!(index.get(id(1)).map(|l| l.expires_ms), Some(500));
        assert!(index.pop_expired(500).is_some());
    }

    #[test]
    fn rank_counts_older_leases_of_the_same_feature() {
        let mut index = Index::default();
        index.insert(id(3), &row("cad", "a", "h", 10, 900));
        index.insert(id(1), &row("cad", "b", "h", 20, 900));
        index.insert(id(2), &row("cad", "c", "h", 20, 900));
        index.insert(id(4), &row("cam", "d", "h", 0, 900));
        assert_eq!(index.rank_in_feature(id(3)), 0);
        assert_eq!(index.rank_in_feature(id(1)), 1);
        assert_eq!(index.rank_in_feature(id(2)), 2, "same time: by id");
        assert_eq!(index.rank_in_feature(id(4)), 0);
    }
}
