//! Key-clear decision notices: asks the main server for decided requests
//! whose sender was not told yet, mails each sender, then marks the request
//! notified.
//!
//! The notice for request `R` is staged as `notice-R`. Staging is skipped
//! when `notice-R` already exists in `outgoing/` or `sent/` (a reply moves
//! between them atomically), so a crash before "mark notified" reached the
//! main server never mails the notice twice: the next poll only marks it.

use std::rc::Rc;
use std::time::Duration;

use shared_proto::Clock;
use tokio::sync::{mpsc, watch};

use crate::inbound::Sender;
use crate::main_server::MainServer;
use crate::queue::blocking;
use crate::replies::{Composer, Reply};
use crate::spool::Spool;
use shared_proto::admin_api::{KeyClearRequest, KeyClearStatus};

/// Polls the main server for decided key-clear requests.
pub struct Notices {
    pub spool: Spool,
    pub main: MainServer,
    pub composer: Composer,
    pub clock: Clock,
    pub replies: mpsc::UnboundedSender<String>,
}

impl Notices {
    pub async fn run(self: Rc<Self>, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        // Log an outage once, not on every poll.
        let mut was_down = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            match self.main.unnotified().await {
                Ok(requests) => {
                    if was_down {
                        log::info!("the main server answers again: key-clear notices resume");
                        was_down = false;
                    }
                    for request in requests {
                        self.notify(&request).await;
                    }
                }
                Err(err) => {
                    if !was_down {
                        log::warn!("cannot fetch decided key-clear requests: {err}");
                        was_down = true;
                    }
                }
            }
        }
    }

    async fn notify(&self, request: &KeyClearRequest) {
        if request.status == KeyClearStatus::Pending {
            return;
        }
        let name = format!("notice-{}", request.id.simple());
        let spool = self.spool.clone();
        let entry = name.clone();
        let exists = match blocking(move || spool.reply_exists(&entry)).await {
            Ok(exists) => exists,
            Err(err) => {
                log::error!("request={} notice not staged: {err:#}", request.id);
                return;
            }
        };
        if !exists {
            let to = Sender {
                address: request.sender.clone(),
                name: None,
                message_id: Some(
                    request
                        .message_id
                        .trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_owned(),
                )
                .filter(|id| !id.is_empty()),
                references: Vec::new(),
                subject: String::new(),
            };
            match self
                .composer
                .compose(&Reply::Decision(request), &to, &name, self.clock.now())
            {
                Ok((envelope, bytes)) => {
                    let spool = self.spool.clone();
                    let entry = name.clone();
                    if let Err(err) =
                        blocking(move || spool.stage_reply(&entry, &envelope, &bytes)).await
                    {
                        log::error!("request={} notice not staged: {err:#}", request.id);
                        return;
                    }
                    log::info!(
                        "request={} server_id={} to={} decision notice ({}) staged",
                        request.id,
                        request.server_id,
                        request.sender,
                        request.status
                    );
                    let _ = self.replies.send(name);
                }
                // A sender address the main server accepted but we cannot
                // write to: nothing will change on a retry, so the request
                // is marked notified after logging why.
                Err(err) => log::error!(
                    "request={} no notice can be written to {:?}: {err:#}",
                    request.id,
                    request.sender
                ),
            }
        }
        if let Err(err) = self.main.mark_notified(request.id).await {
            log::warn!(
                "request={} notice staged but not marked notified yet: {err}",
                request.id
            );
        }
    }
}
