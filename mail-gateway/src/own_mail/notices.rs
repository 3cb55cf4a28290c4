//! Key-clear decision notices: asks the main server for decided requests whose
//! notices were not sent yet, mails the requester and every other registered
//! contact of the customer (so that a forged request cannot pass unnoticed), then
//! marks the request notified.
//!
//! The notice for request `R` to address `A` is staged as [`notice_name`]. Staging
//! is skipped when that name already exists in `outgoing/` or `sent/` (a reply
//! moves between them atomically), so a crash before "mark notified" reached the
//! main server never mails a notice twice: the next poll stages only the missing
//! ones and marks it.

use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use shared_proto::Clock;
use tokio::sync::{mpsc, watch};

use crate::admin_client::AdminClient;
use crate::background;
use crate::outgoing::replies::{Composer, Reply};
use crate::own_mail::{address_hash, stage_once, OwnMail};
use crate::queue::spool::Spool;
use crate::vocabulary::Sender;
use shared_proto::admin_api::{DecidedKeyClearRequest, KeyClearRequest, KeyClearStatus};

/// Polls the main server for decided key-clear requests.
pub struct Notices {
    pub spool: Spool,
    pub main: AdminClient,
    pub composer: Composer,
    pub clock: Clock,
    pub replies: mpsc::UnboundedSender<String>,
}

impl Notices {
    pub async fn run(self: Rc<Self>, every: Duration, shutdown: watch::Receiver<bool>) {
        let what = "the poll for decided key-clear requests";
        background::every(what, every, shutdown, || self.poll()).await;
    }

    /// Asks for the decided requests whose notices were not sent, and sends them.
    async fn poll(&self) -> anyhow::Result<()> {
        for decided in self.main.unnotified().await? {
            self.notify(&decided).await;
        }
        Ok(())
    }

    /// Stages the notice of `decided` for the requester and every contact (unless
    /// staged before), then marks the request notified. A notice that could not be
    /// staged leaves it unmarked: the next poll stages only what is missing.
    async fn notify(&self, decided: &DecidedKeyClearRequest) {
        let request = &decided.request;
        if request.status == KeyClearStatus::Pending {
            return;
        }
        let mut staged_all = true;
        for recipient in recipients(decided) {
            staged_all &= self.stage(request, &recipient).await;
        }
        if !staged_all {
            return;
        }
        if let Err(err) = self.main.mark_notified(request.id).await {
            log::warn!(
                "request={} notices staged but not marked notified yet: {err}",
                request.id
            );
        }
    }

    /// Stages the notice of `request` to `recipient`; false when it must be tried
    /// again (a spool error). An address the main server accepted but we cannot
    /// write to counts as done: nothing will change on a retry.
    async fn stage(&self, request: &KeyClearRequest, recipient: &str) -> bool {
        let compose = |name: &str| {
            // Only the requester's notice answers a mail (threads under it).
            let is_requester = recipient.eq_ignore_ascii_case(&request.sender);
            let message_id = Some(
                request
                    .message_id
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned(),
            )
            .filter(|id| is_requester && !id.is_empty());
            let to = Sender {
                address: recipient.to_owned(),
                name: None,
                message_id,
                references: Vec::new(),
                subject: String::new(),
            };
            self.composer
                .compose(&Reply::Decision(request), &to, name, self.clock.now())
        };
        let mail = OwnMail {
            name: notice_name(request, recipient),
            ids: format!("request={}", request.id),
            kind: "notice",
            staged: format!(
                "request={} server_id={} to={recipient} decision notice ({}) staged",
                request.id, request.server_id, request.status
            ),
        };
        stage_once(&self.spool, &self.replies, mail, recipient, compose).await
    }
}

/// Who is told of a decision: the requester, then every registered contact of the
/// customer, each address once (case aside).
pub fn recipients(decided: &DecidedKeyClearRequest) -> Vec<String> {
    let mut seen = HashSet::new();
    std::iter::once(&decided.request.sender)
        .chain(&decided.contacts)
        .map(|address| address.trim())
        .filter(|address| !address.is_empty() && seen.insert(address.to_lowercase()))
        .map(str::to_owned)
        .collect()
}

/// The spool name of the notice of `request` to `recipient`: the requester's is
/// `notice-R` (as before notices went to every contact), another contact's adds a
/// hash of the address, so that each is staged once.
pub fn notice_name(request: &KeyClearRequest, recipient: &str) -> String {
    let id = request.id.simple();
    if recipient.eq_ignore_ascii_case(&request.sender) {
        return format!("notice-{id}");
    }
    format!("notice-{id}-{}", address_hash(recipient))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_proto::admin_api::SenderAuth;

    fn decided(sender: &str, contacts: &[&str]) -> DecidedKeyClearRequest {
        DecidedKeyClearRequest {
            request: KeyClearRequest {
                id: uuid::Uuid::from_u128(7),
                server_id: uuid::Uuid::from_u128(8),
                sender: sender.into(),
                message_id: "m@acme.example".into(),
                text: "clear".into(),
                sender_auth: SenderAuth::NotChecked,
                sender_auth_detail: String::new(),
                status: KeyClearStatus::Approved,
                created_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
                decided_at: None,
                operator: None,
                reason: None,
            },
            contacts: contacts.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn the_requester_and_every_contact_are_told_once() {
        let decided = decided(
            "ops@acme.example",
            &[
                "boss@acme.example",
                "OPS@acme.example",
                "it@acme.example",
                "",
            ],
        );
        assert_eq!(
            recipients(&decided),
            ["ops@acme.example", "boss@acme.example", "it@acme.example"]
        );
    }

    #[test]
    fn each_recipient_has_its_own_stable_spool_name() {
        let decided = decided("ops@acme.example", &[]);
        let request = &decided.request;
        let id = request.id.simple();
        assert_eq!(
            notice_name(request, "OPS@acme.example"),
            format!("notice-{id}")
        );
        let boss = notice_name(request, "boss@acme.example");
        assert!(boss.starts_with(&format!("notice-{id}-")), "{boss}");
        assert_eq!(boss, notice_name(request, " Boss@ACME.example"));
        assert_ne!(boss, notice_name(request, "it@acme.example"));
    }
}
