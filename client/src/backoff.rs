//! When to try again: exponential back-off with full jitter, bounded.
//!
//! Attempt `n` (0 first) waits a uniformly random time in `[0, min(cap, first × 2ⁿ))`.
//! The randomness is the point: a thousand clients whose server restarted all notice it
//! within the same second, and a fixed schedule would bring all of them back within the
//! same second again, every time. Drawing the whole delay at random ("full jitter")
//! spreads each wave over its window; the window doubling thins the later waves.
//!
//! The policy is a pure function of the attempt number and a random draw in `[0, 1)`,
//! so it is tested without a clock or a random source.

use std::time::Duration;

/// How a request is tried again after a failure that may pass (no server answered, or
/// one answered `503 UNAVAILABLE` or another 5xx).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The window of the first retry; each later attempt's window doubles.
    pub first: Duration,
    /// The largest window.
    pub cap: Duration,
    /// A request stops being tried this long after its first attempt (a heartbeat
    /// stops earlier: when its lease has run out).
    pub give_up_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            give_up_after: Duration::from_secs(120),
        }
    }
}

impl Backoff {
    /// The window of attempt `attempt` (0 is the first retry): `min(cap, first × 2ⁿ)`.
    pub fn window(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        self.first.saturating_mul(factor).min(self.cap)
    }

    /// The delay before attempt `attempt` for a random `draw` in `[0, 1)`.
    pub fn delay_for(&self, attempt: u32, draw: f64) -> Duration {
        self.window(attempt).mul_f64(draw.clamp(0.0, 1.0))
    }

    /// The delay before attempt `attempt`, drawn at random.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_for(attempt, fastrand::f64())
    }
}

/// How long before a request's deadline its last attempt is made: time for the answer
/// to come before, say, the lease that a heartbeat renews runs out.
pub(crate) const LAST_TRY_BEFORE: Duration = Duration::from_millis(500);

/// The wait before the next attempt when `remaining` is left until the deadline: the
/// drawn `delay`, shortened so that the attempt still comes [`LAST_TRY_BEFORE`] the
/// deadline; `None` when there is no time left for one.
///
/// Never giving up early matters most for a heartbeat: its deadline is the end of the
/// lease, and a client that gives up while its lease still holds a seat checks out a
/// second one (or, all seats taken, loses the seat) while the server keeps the first.
pub(crate) fn wait_within(delay: Duration, remaining: Duration) -> Option<Duration> {
    let latest = remaining.checked_sub(LAST_TRY_BEFORE)?;
    (!latest.is_zero()).then(|| delay.min(latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_double_up_to_the_cap() {
        let policy = Backoff {
            first: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            give_up_after: Duration::from_secs(10),
        };
        let windows: Vec<u128> = (0..6).map(|n| policy.window(n).as_millis()).collect();
        assert_eq!(windows, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.window(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn a_delay_lies_anywhere_in_its_window() {
        let policy = Backoff::default();
        assert_eq!(policy.delay_for(3, 0.0), Duration::ZERO);
        assert_eq!(policy.delay_for(3, 0.5), Duration::from_secs(1));
        assert!(policy.delay_for(3, 0.999_999) < Duration::from_secs(2));
        for attempt in 0..40 {
            let delay = policy.delay(attempt);
            assert!(delay <= policy.window(attempt), "{delay:?} at {attempt}");
        }
    }

    #[test]
    fn the_last_attempt_comes_just_before_the_deadline_however_long_the_draw() {
        let s = Duration::from_secs;
        // Room enough: the drawn delay.
        assert_eq!(wait_within(s(1), s(10)), Some(s(1)));
        // A draw past the deadline is cut to one last attempt before it, not dropped.
        assert_eq!(wait_within(s(8), s(4)), Some(s(4) - LAST_TRY_BEFORE));
        assert_eq!(wait_within(s(30), s(1)), Some(s(1) - LAST_TRY_BEFORE));
        // No time left for an answer: give up.
        assert_eq!(wait_within(s(1), LAST_TRY_BEFORE), None);
        assert_eq!(wait_within(s(1), Duration::ZERO), None);
    }

    /// A thousand clients failing at the same instant come back spread over the
    /// window, not together: no tenth of the window gets more than twice its share.
    #[test]
    fn a_thousand_clients_do_not_come_back_in_the_same_instant() {
        let policy = Backoff::default();
        let attempt = 4; // a 4 s window
        let window = policy.window(attempt).as_secs_f64();
        let mut buckets = [0u32; 10];
        for _ in 0..1000 {
            let delay = policy.delay(attempt).as_secs_f64();
            let bucket = ((delay / window) * 10.0) as usize;
            buckets[bucket.min(9)] += 1;
        }
        assert!(buckets.iter().all(|&n| n < 200), "{buckets:?}");
        assert!(buckets.iter().all(|&n| n > 40), "{buckets:?}");
    }
}
