//! The gateway's Prometheus metrics, as text at `GET /metrics` on the status listener.
//! They are the status page's numbers ([`Status`]), so the worker, the
//! dispatcher and the intakes keep one set of counters:
//!
//! - `solme_mails_received_total`, `solme_mails_answered_total`,
//!   `solme_mails_dropped_total` (automatic mail, duplicates), `solme_mails_failed_total`
//!   and `solme_mail_retries_total`, since this process started;
//! - `solme_portal_links_staged_total` (customer portal sign-in links staged for the
//!   transport) and `solme_portal_link_polls_total` (polls for them), since start;
//! - `solme_mail_queue_depth` (messages waiting in the spool) and
//!   `solme_mail_replies_waiting` (replies waiting for the transport), read from the
//!   spool at each scrape;
//! - `solme_clock_offset_seconds` and `solme_clock_simulated`: the gateway's clock.

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use shared_proto::{metrics, Clock};

use crate::status::counters::Status;

/// The metrics of `status` in the Prometheus (OpenMetrics) text format.
pub fn render(status: &Status, clock: &Clock) -> Result<String, std::fmt::Error> {
    let mut registry = metrics::registry();
    metrics::register_clock(&mut registry, clock);
    let counters = [
        (
            "mails_received",
            "Messages taken from the spool",
            status.received,
        ),
        (
            "mails_answered",
            "Replies handed to the outbound transport",
            status.answered,
        ),
        (
            "mails_dropped",
            "Messages left unanswered on purpose (automatic mail, duplicates)",
            status.dropped,
        ),
        (
            "mails_failed",
            "Messages and replies given up on",
            status.failed,
        ),
        (
            "mail_retries",
            "Attempts that failed for now and were scheduled again",
            status.retries,
        ),
        (
            "portal_links_staged",
            "Customer portal sign-in links staged for the transport",
            status.portal_links_staged,
        ),
        (
            "portal_link_polls",
            "Completed polls for customer portal sign-in links",
            status.portal_link_polls,
        ),
    ];
    for (name, help, value) in counters {
        registry.register(name, help, ConstCounter::new(value));
    }
    let gauges = [
        (
            "mail_queue_depth",
            "Messages waiting in the spool",
            status.queued,
        ),
        (
            "mail_replies_waiting",
            "Replies waiting for the transport",
            status.outgoing,
        ),
    ];
    for (name, help, value) in gauges {
        registry.register(
            name,
            help,
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)),
        );
    }
    metrics::encode(&registry)
}
