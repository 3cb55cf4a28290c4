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

use crate::main_server::MainServer;
use crate::queue::blocking;
use crate::replies::Composer;
use crate::spool::Spool;
use crate::status::Stats;

/// Polls the main server for due reminders.
pub struct Reminders {
    pub spool: Spool,
    pub main: MainServer,
    pub composer: Composer,
    pub clock: Clock,
    pub stats: Arc<Stats>,
    /// Announces staged mails to the dispatcher.
    pub replies: mpsc::UnboundedSender<String>,
}

/// The spool name of reminder `reminder`'s mail to `contact`.
pub fn mail_name(reminder: &DueReminder, contact: &str) -> String {
    let hash = openssl::sha::sha256(contact.trim().to_lowercase().as_bytes());
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("reminder-{}-{hex}", reminder.id.simple())
}

impl Reminders {
    pub async fn run(self: Rc<Self>, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Log an outage once, not on every poll.
        let mut was_down = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            match self.main.claim_reminders().await {
                Ok(due) => {
                    if was_down {
                        log::info!("the main server answers again: reminders resume");
                        was_down = false;
                    }
                    for reminder in &due {
                        self.send(reminder).await;
                    }
                }
                Err(err) => {
                    if !was_down {
                        log::warn!("cannot fetch due reminders: {err}");
                        was_down = true;
                    }
                }
            }
            Stats::add(&self.stats.reminder_polls);
        }
    }

    /// Stages the mail of `reminder` for each contact (unless staged before), then
    /// tells the main server. Any failure leaves the reminder pending: the next poll
    /// returns it and resumes here.
    async fn send(&self, reminder: &DueReminder) {
        for contact in &reminder.contacts {
            let name = mail_name(reminder, contact);
            let spool = self.spool.clone();
            let entry = name.clone();
            match blocking(move || spool.reply_exists(&entry)).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => {
                    log::error!("reminder={} mail not staged: {err:#}", reminder.id);
                    return;
                }
            }
            match self
                .composer
                .compose_reminder(reminder, contact, &name, self.clock.now())
            {
                Ok((envelope, bytes)) => {
                    let spool = self.spool.clone();
                    let entry = name.clone();
                    if let Err(err) =
                        blocking(move || spool.stage_reply(&entry, &envelope, &bytes)).await
                    {
                        log::error!("reminder={} mail not staged: {err:#}", reminder.id);
                        return;
                    }
                    log::info!(
                        "reminder={} server_id={} threshold={} to={contact} staged",
                        reminder.id,
                        reminder.server_id,
                        reminder.threshold
                    );
                    let _ = self.replies.send(name);
                }
                // A registered address lettre cannot write to: a retry cannot help,
                // the other contacts still get theirs.
                Err(err) => log::error!(
                    "reminder={} no mail can be written to {contact:?}: {err:#}",
                    reminder.id
                ),
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
