//! Reminders of the 366-day limit: every `--reminder-interval-seconds` the main server
//! is asked which reminders are due (`POST /admin/v1/reminders/claim`); each one's mail
//! is staged in `outgoing/` for every contact, then the reminder is marked handed over.
//! The dispatcher sends it like any reply.
//!
//! Exactly once, also across `kill -9`: the mail to contact `C` for reminder `R` is
//! staged as `reminder-R-H` (`H`: a hash of `C`), and only when no file of that name
//! is in `outgoing/` or `sent/` (a mail moves between them by rename). Only then is the
//! main server told. A gateway killed after staging but before that call finds the
//! reminder still pending at its next claim, stages nothing new (the names exist) and
//! marks it handed; the main server's unique key keeps a reminder from being recorded
//! twice.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use shared_proto::admin_api::DueReminder;
use shared_proto::Clock;
use tokio::sync::{mpsc, watch};

use crate::admin_client::AdminClient;
use crate::background;
use crate::outgoing::replies::Composer;
use crate::own_mail::{address_hash, stage_once, OwnMail};
use crate::queue::spool::Spool;
use crate::status::counters::Stats;

/// Polls the main server for due reminders.
pub struct Reminders {
    pub spool: Spool,
    pub main: AdminClient,
    pub composer: Composer,
    pub clock: Clock,
    pub stats: Arc<Stats>,
    /// Announces staged mails to the dispatcher.
    pub replies: mpsc::UnboundedSender<String>,
}

/// The spool name of reminder `reminder`'s mail to `contact`.
pub fn mail_name(reminder: &DueReminder, contact: &str) -> String {
    format!(
        "reminder-{}-{}",
        reminder.id.simple(),
        address_hash(contact)
    )
}

impl Reminders {
    pub async fn run(self: Rc<Self>, every: Duration, shutdown: watch::Receiver<bool>) {
        let what = "the poll for due reminders";
        background::every(what, every, shutdown, || self.poll()).await;
    }

    /// Claims the due reminders and sends them. Counted as a completed poll also when
    /// the main server is away.
    async fn poll(&self) -> anyhow::Result<()> {
        let due = self.main.claim_reminders().await;
        for reminder in due.iter().flatten() {
            self.send(reminder).await;
        }
        Stats::add(&self.stats.reminder_polls);
        due.map(drop).map_err(anyhow::Error::new)
    }

    /// Stages the mail of `reminder` for each contact (unless staged before), then
    /// tells the main server. Any failure leaves the reminder pending: the next poll
    /// returns it and resumes here.
    async fn send(&self, reminder: &DueReminder) {
        for contact in &reminder.contacts {
            // A registered address lettre cannot write to counts as done: a retry
            // cannot help, the other contacts still get theirs.
            let compose = |name: &str| {
                self.composer
                    .compose_reminder(reminder, contact, name, self.clock.now())
            };
            let mail = OwnMail {
                name: mail_name(reminder, contact),
                ids: format!("reminder={}", reminder.id),
                kind: "mail",
                staged: format!(
                    "reminder={} server_id={} threshold={} to={contact} staged",
                    reminder.id, reminder.server_id, reminder.threshold
                ),
            };
            if !stage_once(&self.spool, &self.replies, mail, contact, compose).await {
                return;
            }
        }
        if reminder.contacts.is_empty() {
            log::warn!(
                "reminder={} server_id={}: the customer has no registered contact, nobody is told",
                reminder.id,
                reminder.server_id
            );
        }
        if let Err(err) = self.main.reminder_handed(reminder.id).await {
            log::warn!(
                "reminder={} staged but not marked handed over yet: {err}",
                reminder.id
            );
        }
    }
}
