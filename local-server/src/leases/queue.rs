//! The wait queue's state machine: clients waiting for a seat, per feature in arrival
//! order, and what becomes of each wait.
//!
//! A wait goes through these states, each change made by one function here, at a time
//! the caller gives (`now_ms`):
//!
//! ```text
//! join ──► waiting ──► granted (a seat was taken for it) ──► collected by its poll
//!             │                  └─ not collected within two poll windows: returned
//!             ├─ its deadline reached ──► ended (answer kept for two poll windows)
//!             ├─ not polled for two windows (gone) ──► forgotten
//!             └─ refused (its feature can no longer be issued) ──► ended
//! ```
//!
//! Why pure: the queue's timing decides who gets a seat, and mistakes in it showed up
//! only as flaky HTTP tests under load. Here nothing reads a clock, takes a lock, wakes a
//! task or writes anything: the engine calls these functions under its lock with the
//! time it read, and does the waking and the writing itself. The tests move time by
//! hand. What a granted wait carries (`G`) is the engine's business.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use tokio::sync::Notify;
use uuid::Uuid;

use super::request::CheckOut;
use crate::error::Error;

/// A client waiting for a seat.
pub struct Waiter {
    pub ticket: Uuid,
    pub request: CheckOut,
    pub arrived_ms: i64,
    /// When its wait ends with `NO_SEATS` if no seat came.
    pub deadline_ms: i64,
    /// Its position on arrival (1 = next).
    pub position: usize,
    /// When its client last asked (a request held open counts as asking).
    last_seen_ms: i64,
    /// Wakes its pending poll when its wait changes; the engine rings it.
    pub notify: Arc<Notify>,
}

/// Why a wait is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// Its deadline was reached.
    TimeUp,
    /// Its client did not ask for two poll windows: it has gone away.
    Gone,
}

/// The queue holds its limit of waiters.
#[derive(Debug, PartialEq, Eq)]
pub struct QueueFull {
    pub waiting: usize,
}

/// What a client's poll finds.
pub enum Poll<G> {
    /// A seat was granted to it: here it is (it left the queue).
    Granted(G),
    /// Its wait ended between two polls: the answer kept for it.
    Ended(Error),
    /// Its deadline is reached now: it left the queue, and is answered at once.
    TimeUp(Waiter),
    /// Still waiting: hold the request at most `remaining_ms`, or until `notify`.
    Waiting {
        notify: Arc<Notify>,
        remaining_ms: i64,
    },
    /// Not waiting: never was, or forgotten.
    Unknown,
}

/// Where a waiter stands now.
#[derive(Debug, PartialEq, Eq)]
pub struct Place {
    pub feature: String,
    /// 1 = next.
    pub position: usize,
    pub deadline_ms: i64,
}

/// A seat granted to a waiter, until its client collects it.
struct Granted<G> {
    grant: G,
    granted_ms: i64,
}

/// The answer kept for a wait that ended while no request of its client was held.
struct Ended {
    refusal: Error,
    ended_ms: i64,
}

/// The waiters of every feature, and the outcomes their clients have not yet collected.
pub struct WaitQueue<G> {
    queues: HashMap<String, VecDeque<Waiter>>,
    /// Which feature's queue each ticket is in; its size is the number waiting.
    tickets: HashMap<Uuid, String>,
    granted: HashMap<Uuid, Granted<G>>,
    /// Kept for two poll windows, then forgotten.
    ended: HashMap<Uuid, Ended>,
    /// Most waiters, all features together.
    limit: usize,
    /// Two poll windows: how long a client may stay silent, and an outcome is kept.
    two_windows_ms: i64,
}

impl<G> WaitQueue<G> {
    pub fn new(limit: usize, poll_window: StdDuration) -> Self {
        let window_ms = i64::try_from(poll_window.as_millis()).unwrap_or(i64::MAX / 2);
        Self {
            queues: HashMap::new(),
            tickets: HashMap::new(),
            granted: HashMap::new(),
            ended: HashMap::new(),
            limit,
            two_windows_ms: window_ms.saturating_mul(2),
        }
    }

    /// How many clients wait, all features together.
    pub fn waiting(&self) -> usize {
        self.tickets.len()
    }

    /// How many clients wait for `feature`.
    pub fn len_of(&self, feature: &str) -> usize {
        self.queues.get(feature).map_or(0, VecDeque::len)
    }

    pub fn has_waiters(&self, feature: &str) -> bool {
        self.queues.contains_key(feature)
    }

    /// The features someone waits for.
    pub fn features(&self) -> Vec<String> {
        self.queues.keys().cloned().collect()
    }

    /// The tickets waiting for `feature`, first come first.
    pub fn tickets_of(&self, feature: &str) -> Vec<Uuid> {
        let queue = self.queues.get(feature).into_iter().flatten();
        queue.map(|w| w.ticket).collect()
    }

    /// Puts `request` at the end of its feature's queue; returns its position.
    pub fn join(
        &mut self,
        ticket: Uuid,
        request: CheckOut,
        now_ms: i64,
    ) -> Result<usize, QueueFull> {
        // The bound is on all features together: it caps the memory waiters take.
        if self.tickets.len() >= self.limit {
            return Err(QueueFull {
                waiting: self.tickets.len(),
            });
        }
        let wait_ms = i64::try_from(request.wait.as_millis()).unwrap_or(i64::MAX);
        self.tickets.insert(ticket, request.feature.clone());
        let queue = self.queues.entry(request.feature.clone()).or_default();
        let position = queue.len() + 1;
        queue.push_back(Waiter {
            ticket,
            request,
            arrived_ms: now_ms,
            deadline_ms: now_ms.saturating_add(wait_ms),
            position,
            last_seen_ms: now_ms,
            notify: Arc::new(Notify::new()),
        });
        Ok(position)
    }

    /// A client polls for its ticket at `now_ms`: what it finds, in this order (a grant
    /// beats a deadline reached since). Polling counts as its client asking.
    pub fn poll(&mut self, ticket: Uuid, now_ms: i64) -> Poll<G> {
        if let Some(granted) = self.granted.remove(&ticket) {
            return Poll::Granted(granted.grant);
        }
        if let Some(ended) = self.ended.remove(&ticket) {
            return Poll::Ended(ended.refusal);
        }
        let Some(waiter) = self.waiter_mut(ticket) else {
            return Poll::Unknown;
        };
        if now_ms >= waiter.deadline_ms {
            return self.leave(ticket).map_or(Poll::Unknown, Poll::TimeUp);
        }
        waiter.last_seen_ms = now_ms;
        Poll::Waiting {
            notify: waiter.notify.clone(),
            remaining_ms: waiter.deadline_ms - now_ms,
        }
    }

    /// Where a waiter stands at `now_ms`, for the answer to a poll held a whole window
    /// (which counts as its client asking); `None` once it is no longer waiting.
    pub fn place(&mut self, ticket: Uuid, now_ms: i64) -> Option<Place> {
        let feature = self.tickets.get(&ticket)?;
        let queue = self.queues.get_mut(feature)?;
        let at = queue.iter().position(|w| w.ticket == ticket)?;
        let waiter = queue.get_mut(at)?;
        waiter.last_seen_ms = now_ms;
        Some(Place {
            feature: waiter.request.feature.clone(),
            position: at + 1,
            deadline_ms: waiter.deadline_ms,
        })
    }

    /// Whether `waiter`'s wait is over at `now_ms`, and why (its deadline first).
    pub fn over(&self, waiter: &Waiter, now_ms: i64) -> Option<Over> {
        if now_ms >= waiter.deadline_ms {
            Some(Over::TimeUp)
        } else if now_ms - waiter.last_seen_ms > self.two_windows_ms {
            Some(Over::Gone)
        } else {
            None
        }
    }

    /// The first waiter of `feature`, when its wait is over.
    pub fn front_over(&self, feature: &str, now_ms: i64) -> Option<Uuid> {
        let front = self.queues.get(feature)?.front()?;
        self.over(front, now_ms).map(|_| front.ticket)
    }

    /// Every waiter whose wait is over at `now_ms`, all features.
    pub fn due(&self, now_ms: i64) -> Vec<Uuid> {
        let waiters = self.queues.values().flatten();
        let over = waiters.filter(|w| self.over(w, now_ms).is_some());
        over.map(|w| w.ticket).collect()
    }

    /// Takes out a waiter whose wait is over, and says why.
    pub fn end(&mut self, ticket: Uuid, now_ms: i64) -> Option<(Waiter, Over)> {
        let over = self.over(self.waiter(ticket)?, now_ms)?;
        Some((self.leave(ticket)?, over))
    }

    /// The first waiter of `feature` that `may_take` lets take a seat: one held back
    /// (by a reservation for others, a limit) lets those behind it pass.
    pub fn first_eligible(
        &self,
        feature: &str,
        mut may_take: impl FnMut(&Waiter) -> bool,
    ) -> Option<Uuid> {
        let queue = self.queues.get(feature)?;
        queue.iter().find(|w| may_take(w)).map(|w| w.ticket)
    }

    /// Takes a waiter out of its queue (a seat is taken for it, or its wait ends).
    pub fn leave(&mut self, ticket: Uuid) -> Option<Waiter> {
        let feature = self.tickets.remove(&ticket)?;
        let queue = self.queues.get_mut(&feature)?;
        let at = queue.iter().position(|w| w.ticket == ticket)?;
        let waiter = queue.remove(at);
        // No empty queues: a feature is in `queues` only while someone waits for it.
        if queue.is_empty() {
            self.queues.remove(&feature);
        }
        waiter
    }

    /// Keeps a seat taken for a waiter (it left the queue) until its client polls.
    pub fn grant(&mut self, ticket: Uuid, grant: G, now_ms: i64) {
        let granted_ms = now_ms;
        self.granted.insert(ticket, Granted { grant, granted_ms });
    }

    /// Keeps the answer of a wait that ended (it left the queue) until its client polls.
    pub fn keep_answer(&mut self, ticket: Uuid, refusal: Error, now_ms: i64) {
        let ended_ms = now_ms;
        self.ended.insert(ticket, Ended { refusal, ended_ms });
    }

    /// Forgets the answers kept for two poll windows, and hands back the seats granted
    /// that long ago and never collected (their clients went away).
    pub fn forget(&mut self, now_ms: i64) -> Vec<G> {
        let limit = self.two_windows_ms;
        self.ended.retain(|_, e| now_ms - e.ended_ms <= limit);
        let stale: Vec<Uuid> = self
            .granted
            .iter()
            .filter(|(_, g)| now_ms - g.granted_ms > limit)
            .map(|(ticket, _)| *ticket)
            .collect();
        let uncollected = stale.iter().filter_map(|t| self.granted.remove(t));
        uncollected.map(|g| g.grant).collect()
    }

    fn waiter(&self, ticket: Uuid) -> Option<&Waiter> {
        let feature = self.tickets.get(&ticket)?;
        self.queues
            .get(feature)?
            .iter()
            .find(|w| w.ticket == ticket)
    }

    fn waiter_mut(&mut self, ticket: Uuid) -> Option<&mut Waiter> {
        let feature = self.tickets.get(&ticket)?;
        let queue = self.queues.get_mut(feature)?;
        queue.iter_mut().find(|w| w.ticket == ticket)
    }
}

#[cfg(test)]
mod tests {
    use shared_proto::ErrorCode;

    use super::*;

    /// A poll window of 10 s: two windows are 20,000 ms.
    const WINDOW: StdDuration = StdDuration::from_secs(10);

    fn queue(limit: usize) -> WaitQueue<&'static str> {
        WaitQueue::new(limit, WINDOW)
    }

    fn request(feature: &str, user: &str, wait_s: u64) -> CheckOut {
        CheckOut {
            feature: feature.into(),
            client: "test".into(),
            user: user.into(),
            host: "ws".into(),
            wait: StdDuration::from_secs(wait_s),
            borrow: None,
        }
    }

    fn ticket(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn state(q: &mut WaitQueue<&'static str>, t: Uuid, now_ms: i64) -> String {
        match q.poll(t, now_ms) {
            Poll::Granted(g) => format!("granted {g}"),
            Poll::Ended(e) => format!("ended {}", e.code().map_or("", |c| c.as_str())),
            Poll::TimeUp(w) => format!("time up, was number {}", w.position),
            Poll::Waiting { remaining_ms, .. } => format!("waiting {remaining_ms} ms more"),
            Poll::Unknown => "unknown".into(),
        }
    }

    fn no_seats() -> Error {
        Error::refused(ErrorCode::NoSeats, "no seat came free")
    }

    #[test]
    fn waiters_are_served_in_arrival_order_per_feature() {
        let mut q = queue(10);
        assert_eq!(q.join(ticket(1), request("cad", "alice", 60), 0), Ok(1));
        assert_eq!(q.join(ticket(2), request("cam", "bob", 60), 5), Ok(1));
        assert_eq!(q.join(ticket(3), request("cad", "carol", 60), 10), Ok(2));
        assert_eq!(q.tickets_of("cad"), [ticket(1), ticket(3)]);
        assert_eq!(q.first_eligible("cad", |_| true), Some(ticket(1)));
        assert!(q.leave(ticket(1)).is_some());
        assert_eq!(q.first_eligible("cad", |_| true), Some(ticket(3)));
        let place = q.place(ticket(3), 20);
        assert_eq!(place.map(|p| p.position), Some(1), "it moved up");
        assert_eq!(q.waiting(), 2);
        assert!(q.leave(ticket(3)).is_some());
        assert!(!q.has_waiters("cad"), "an emptied queue goes");
        assert_eq!(q.len_of("cam"), 1);
    }

    #[test]
    fn a_waiter_held_back_by_the_rules_lets_the_next_pass() {
        let mut q = queue(10);
        for (n, user) in [(1, "carol"), (2, "alice"), (3, "bob")] {
            assert!(q.join(ticket(n), request("cad", user, 60), 0).is_ok());
        }
        // carol's free seats are reserved for others: alice, behind her, takes it.
        let eligible = q.first_eligible("cad", |w| w.request.user != "carol");
        assert_eq!(eligible, Some(ticket(2)));
        assert_eq!(q.first_eligible("cad", |_| false), None);
        assert_eq!(q.first_eligible("cam", |_| true), None);
    }

    #[test]
    fn the_queue_is_bounded_over_all_features() {
        let mut q = queue(2);
        assert!(q.join(ticket(1), request("cad", "a", 60), 0).is_ok());
        assert!(q.join(ticket(2), request("cam", "b", 60), 0).is_ok());
        let full = q.join(ticket(3), request("cax", "c", 60), 0);
        assert_eq!(full, Err(QueueFull { waiting: 2 }));
        assert!(!q.has_waiters("cax"), "a refused waiter leaves no trace");
        assert!(q.leave(ticket(1)).is_some());
        assert_eq!(q.join(ticket(3), request("cax", "c", 60), 0), Ok(1));
    }

    #[test]
    fn the_deadline_ends_a_wait_at_its_time() {
        let mut q = queue(10);
        assert!(q
            .join(ticket(1), request("cad", "alice", 30), 1_000)
            .is_ok());
        assert_eq!(state(&mut q, ticket(1), 1_000), "waiting 30000 ms more");
        assert_eq!(state(&mut q, ticket(1), 30_999), "waiting 1 ms more");
        assert_eq!(q.front_over("cad", 30_999), None);
        assert_eq!(q.front_over("cad", 31_000), Some(ticket(1)));
        assert_eq!(state(&mut q, ticket(1), 31_000), "time up, was number 1");
        assert_eq!(
            state(&mut q, ticket(1), 31_000),
            "unknown",
            "it left the queue"
        );
    }

    #[test]
    fn a_waiter_not_polled_for_two_windows_is_gone() {
        let mut q = queue(10);
        assert!(q.join(ticket(1), request("cad", "alice", 3_600), 0).is_ok());
        assert!(q.join(ticket(2), request("cad", "bob", 3_600), 0).is_ok());
        // bob polls now and then; alice never again.
        assert!(q.place(ticket(2), 15_000).is_some());
        assert!(q.due(20_000).is_empty(), "two windows exactly: still there");
        assert_eq!(q.due(20_001), [ticket(1)]);
        let ended = q.end(ticket(1), 20_001);
        assert_eq!(
            ended.map(|(w, over)| (w.ticket, over)),
            Some((ticket(1), Over::Gone))
        );
        assert!(
            q.end(ticket(2), 20_001).is_none(),
            "a live wait does not end"
        );
        assert_eq!(q.due(35_001), [ticket(2)]);
    }

    #[test]
    fn the_deadline_comes_before_gone() {
        let mut q = queue(10);
        assert!(q.join(ticket(1), request("cad", "alice", 30), 0).is_ok());
        let ended = q.end(ticket(1), 40_000);
        assert_eq!(ended.map(|(_, over)| over), Some(Over::TimeUp));
    }

    #[test]
    fn an_ended_wait_is_answered_for_two_windows_then_forgotten() {
        let mut q = queue(10);
        for n in [1, 2] {
            assert!(q.join(ticket(n), request("cad", "alice", 5), 0).is_ok());
        }
        for n in [1, 2] {
            let ended = q.end(ticket(n), 5_000);
            assert!(ended.is_some_and(|(_, over)| over == Over::TimeUp));
            q.keep_answer(ticket(n), no_seats(), 5_000);
        }
        assert_eq!(state(&mut q, ticket(1), 25_000), "ended NO_SEATS");
        assert_eq!(state(&mut q, ticket(1), 25_000), "unknown", "answered once");
        assert!(q.forget(25_000).is_empty());
        assert_eq!(state(&mut q, ticket(2), 25_000), "ended NO_SEATS");
        q.keep_answer(ticket(2), no_seats(), 5_000);
        assert!(q.forget(25_001).is_empty());
        assert_eq!(state(&mut q, ticket(2), 25_001), "unknown", "forgotten");
    }

    #[test]
    fn a_granted_seat_is_collected_once_or_handed_back_after_two_windows() {
        let mut q = queue(10);
        for n in [1, 2] {
            assert!(q.join(ticket(n), request("cad", "alice", 60), 0).is_ok());
            assert!(q.leave(ticket(n)).is_some());
        }
        q.grant(ticket(1), "seat one", 1_000);
        q.grant(ticket(2), "seat two", 1_000);
        assert_eq!(state(&mut q, ticket(1), 2_000), "granted seat one");
        assert_eq!(state(&mut q, ticket(1), 2_000), "unknown");
        assert!(q.forget(21_000).is_empty());
        assert_eq!(q.forget(21_001), ["seat two"]);
        assert_eq!(state(&mut q, ticket(2), 21_001), "unknown");
    }

    #[test]
    fn a_grant_beats_a_deadline_reached_since() {
        let mut q = queue(10);
        assert!(q.join(ticket(1), request("cad", "alice", 5), 0).is_ok());
        assert!(q.leave(ticket(1)).is_some());
        q.grant(ticket(1), "seat", 4_999);
        assert_eq!(state(&mut q, ticket(1), 9_000), "granted seat");
    }
}
