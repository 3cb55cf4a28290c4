//! Integration tests of the mail gateway: one test binary, one module per
//! concern (see `helpers` for spawning the programs).
// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod end_to_end;
mod golden;
mod helpers;
mod intake;
mod metrics;
mod portal_links;
mod portal_texts;
mod postfix;
mod receipts;
mod reminder_texts;
mod reply_texts;
mod resume;
mod sender_auth;
mod status_page;
