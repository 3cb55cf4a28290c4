//! The gateway's own mail: key-clear decision notices ([`notices`]), reminders of
//! the 366-day limit ([`reminders`]) and the customer portal's sign-in links
//! ([`portal_links`]). What they share lives here: they ask the main
//! server on a timer what to mail, and stage each mail under a stable name at most
//! once, so that a crash between staging and telling the main server never mails
//! anything twice.

use tokio::sync::mpsc;

use crate::queue::spool::Spool;
use crate::vocabulary::OutgoingEnvelope;

pub mod notices;
pub mod portal_links;
pub mod reminders;

/// A mail the gateway writes on its own, as [`stage_once`] needs to know it.
pub struct OwnMail {
    /// Its spool name for its recipient, stable across restarts.
    pub name: String,
    /// The ids its log lines start with (`request=…`, `reminder=…`, `portal_link=…`).
    pub ids: String,
    /// The word log lines call it by.
    pub kind: &'static str,
    /// The line logged once it is staged.
    pub staged: String,
}

/// Stages `mail` to `to`, written by `compose` (given its spool name), and announces
/// it on `replies`, unless a mail of that name is in `outgoing/` or `sent/` already
/// (a mail moves between them by rename). False when it must be tried again: the
/// spool failed. A mail that cannot be written (an address the main server accepted
/// but lettre refuses) counts as done once logged: a retry cannot help.
pub async fn stage_once(
    spool: &Spool,
    replies: &mpsc::UnboundedSender<String>,
    mail: OwnMail,
    to: &str,
    compose: impl FnOnce(&str) -> anyhow::Result<(OutgoingEnvelope, Vec<u8>)>,
) -> bool {
    let OwnMail {
        name,
        ids,
        kind,
        staged,
    } = mail;
    // True once staged now; an error is the spool's.
    let staging = async {
        if spool.reply_exists(&name).await? {
            return anyhow::Ok(false);
        }
        let (envelope, bytes) = match compose(&name) {
            Ok(mail) => mail,
            Err(err) => {
                log::error!("{ids} no {kind} can be written to {to:?}: {err:#}");
                return Ok(false);
            }
        };
        spool.stage_reply(&name, envelope, bytes).await?;
        Ok(true)
    };
    match staging.await {
        Ok(true) => {
            log::info!("{staged}");
            let _ = replies.send(name);
            true
        }
        Ok(false) => true,
        Err(err) => {
            log::error!("{ids} {kind} to={to} not staged: {err:#}");
            false
        }
    }
}

/// A short stable hash of an address (case and surrounding blanks aside), for the
/// spool name of a mail to it.
pub fn address_hash(address: &str) -> String {
    let hash = openssl::sha::sha256(address.trim().to_lowercase().as_bytes());
    shared_proto::hex::encode(&hash[..8])
}
