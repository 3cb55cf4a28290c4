//! Solme's mail to the customer lost or delayed on the way (`customer-mail-lost`,
//! `customer-mail-delay`, on `mail-gateway`).
//!
//! The gateway sends for real: its outbox is what left Solme. The customer's mailbox is
//! the simulation's, and it is `GET /v1/mail/inbox` (and what scenarios and the CLI read
//! through it). So the faults are made at that hop: a mail the gateway wrote while
//! `customer-mail-lost` was on never reaches the mailbox; one written while
//! `customer-mail-delay` was on reaches it `seconds` (real time) after it was written.
//! When a mail left is told by its outbox file's time, so switching a fault off never
//! brings back a mail it already lost.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The longest delay that may be asked for, in seconds.
pub const MAX_DELAY_SECONDS: u64 = 3600;

/// What happens to Solme's mail to the customer while a fault is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerMailFault {
    Lost,
    Delay(u64),
}

impl CustomerMailFault {
    pub fn describe(self) -> String {
        match self {
            Self::Lost => "Solme's mail to the customer is lost on the way".to_string(),
            Self::Delay(seconds) => {
                format!("Solme's mail to the customer reaches the mailbox {seconds} s late")
            }
        }
    }
}

/// A fault and the time it was on: `until` is None while it still is.
#[derive(Debug, Clone, Copy)]
struct Spell {
    fault: CustomerMailFault,
    from: SystemTime,
    until: Option<SystemTime>,
}

/// Every spell of this simulation, oldest first (a mail's fate depends on when it left).
static SPELLS: Mutex<Vec<Spell>> = Mutex::new(Vec::new());

fn spells() -> std::sync::MutexGuard<'static, Vec<Spell>> {
    SPELLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The fault on now, if any, and since when.
pub fn current() -> Option<(CustomerMailFault, SystemTime)> {
    spells()
        .last()
        .filter(|spell| spell.until.is_none())
        .map(|spell| (spell.fault, spell.from))
}

/// Switches the fault on (Some) or off (None); the one on before.
pub fn set(fault: Option<CustomerMailFault>) -> Option<CustomerMailFault> {
    let mut spells = spells();
    let now = SystemTime::now();
    let before = match spells.last_mut() {
        Some(last) if last.until.is_none() => {
            last.until = Some(now);
            Some(last.fault)
        }
        _ => None,
    };
    if let Some(fault) = fault {
        spells.push(Spell {
            fault,
            from: now,
            until: None,
        });
    }
    before
}

/// Whether a mail the gateway wrote at `sent` is in the customer's mailbox at `now`.
pub fn delivered(sent: SystemTime, now: SystemTime) -> bool {
    let spells = spells();
    let during = spells
        .iter()
        .rev()
        .find(|spell| spell.from <= sent && spell.until.is_none_or(|until| sent < until));
    match during.map(|spell| spell.fault) {
        None => true,
        Some(CustomerMailFault::Lost) => false,
        Some(CustomerMailFault::Delay(seconds)) => now >= sent + Duration::from_secs(seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mail_is_lost_or_late_by_the_fault_on_when_it_left() {
        let before = SystemTime::now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(set(Some(CustomerMailFault::Lost)), None);
        std::thread::sleep(Duration::from_millis(5));
        let lost = SystemTime::now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            set(Some(CustomerMailFault::Delay(60))),
            Some(CustomerMailFault::Lost)
        );
        std::thread::sleep(Duration::from_millis(5));
        let late = SystemTime::now();
        std::thread::sleep(Duration::from_millis(5));
        set(None);
        let after = SystemTime::now();

        let now = SystemTime::now();
        assert!(delivered(before, now));
        assert!(!delivered(lost, now + Duration::from_secs(3600)));
        assert!(!delivered(late, now));
        assert!(delivered(late, late + Duration::from_secs(60)));
        assert!(delivered(after, now));
        assert_eq!(current(), None);
    }
}
