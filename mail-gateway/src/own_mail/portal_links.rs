//! Sign-in links of Solme's customer portal: a registered contact asks for one on the
//! portal's page, the main server records it, and every `--portal-link-interval-ms` the
//! gateway claims the links to mail (`POST /admin/v1/portal-links/claim`), stages one
//! mail per link in `outgoing/` and marks it handed over
//! (`POST /admin/v1/portal-links/{id}/handed`). The dispatcher sends it like any reply.
//!
//! Exactly once, also across `kill -9`, as for reminders: the mail of link `L` is
//! staged as `portal-link-L`, and only when no file of that name is in `outgoing/` or
//! `sent/`. A gateway killed after staging but before the main server was told gets
//! the same link again at its next claim (the main server derives the token again, so
//! it is the same link), stages nothing new and marks it handed.
//!
//! The link is the contact's key to the portal for 15 minutes: it is written into the
//! mail and nowhere else. Log lines name the link's id, never its address.
//!
//! Without `--portal-url` the gateway knows no address to put in front of the link's
//! path, so it claims nothing (start-up says so once) and the links expire unmailed.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use shared_proto::admin_api::DuePortalLink;
use shared_proto::Clock;
use tokio::sync::{mpsc, watch};

use crate::admin_client::AdminClient;
use crate::background;
use crate::outgoing::replies::Composer;
use crate::own_mail::{stage_once, OwnMail};
use crate::queue::spool::Spool;
use crate::status::counters::Stats;
use crate::vocabulary::ReplyKind;

/// The subject of every sign-in link mail.
pub const SUBJECT: &str = "Your sign-in link for Solme's customer portal";

/// Polls the main server for sign-in links to mail.
pub struct PortalLinks {
    pub spool: Spool,
    pub main: AdminClient,
    pub composer: Composer,
    pub clock: Clock,
    pub stats: Arc<Stats>,
    /// The portal's public address (`--portal-url`, no trailing `/`): the link's path
    /// is appended to it.
    pub portal: String,
    /// Announces staged mails to the dispatcher.
    pub replies: mpsc::UnboundedSender<String>,
}

/// The spool name of the mail of `link`.
pub fn mail_name(link: &DuePortalLink) -> String {
    format!("portal-link-{}", link.id.simple())
}

impl PortalLinks {
    pub async fn run(self: Rc<Self>, every: Duration, shutdown: watch::Receiver<bool>) {
        let what = "the poll for portal sign-in links";
        background::every(what, every, shutdown, || self.poll()).await;
    }

    /// Claims the links to mail and sends them. Counted as a completed poll also when
    /// the main server is away.
    async fn poll(&self) -> anyhow::Result<()> {
        let due = self.main.claim_portal_links().await;
        for link in due.iter().flatten() {
            self.send(link).await;
        }
        Stats::add(&self.stats.portal_link_polls);
        due.map(drop).map_err(anyhow::Error::new)
    }

    /// Stages the mail of `link` (unless staged before), then tells the main server.
    /// A failure leaves the link unhanded: the next poll returns it and resumes here.
    async fn send(&self, link: &DuePortalLink) {
        let compose = |name: &str| {
            let now = self.clock.now();
            let text = link_text(link, &self.portal, now);
            self.composer.compose_generated(
                &link.to,
                SUBJECT.to_owned(),
                &text,
                name,
                now,
                ReplyKind::PortalLink,
            )
        };
        // The staged line names the id only: the link is a secret.
        let mail = OwnMail {
            name: mail_name(link),
            ids: format!("portal_link={}", link.id),
            kind: "sign-in link mail",
            staged: format!(
                "portal_link={} to={} sign-in link staged (valid until {})",
                link.id,
                link.to,
                link.expires_at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        };
        let staged_before = self.spool.reply_exists(&mail.name).await.unwrap_or(false);
        if !stage_once(&self.spool, &self.replies, mail, &link.to, compose).await {
            return;
        }
        if !staged_before {
            Stats::add(&self.stats.portal_links_staged);
        }
        if let Err(err) = self.main.portal_link_handed(link.id).await {
            log::warn!(
                "portal_link={} staged but not marked handed over yet: {err}",
                link.id
            );
        }
    }
}

/// The text of the mail of `link`, for its recipient: what it is, the link, until when
/// it works, and what to do with a mail one did not ask for.
pub fn link_text(link: &DuePortalLink, portal: &str, now: DateTime<Utc>) -> String {
    let left = (link.expires_at - now).num_seconds().max(0);
    // Whole minutes, rounded up: "within 15 minutes" for a link claimed at once.
    let minutes = (left + 59) / 60;
    let within = match minutes {
        0 => "no time left".to_owned(),
        1 => "1 minute".to_owned(),
        n => format!("{n} minutes"),
    };
    format!(
        "Hello,\n\n\
         you asked to sign in to Solme's customer portal for {customer}.\n\
         Open this link to sign in:\n\n\
         {portal}{path}\n\n\
         The link works once, within {within}: until {until}.\n\
         After that, ask for a new one on the portal's sign-in page,\n\
         {portal}/portal/\n\n\
         If you did not ask for it, ignore this mail: nobody can sign in without\n\
         the link, and it stops working by itself.\n",
        customer = link.customer_name,
        path = link.path,
        until = link.expires_at.format("%Y-%m-%d %H:%M UTC"),
    )
}
