//! `/metrics` gives the status page's numbers to Prometheus: the queue depth while
//! the main server is away, then the mails received and answered.

use crate::helpers::{http_get, main_and_gateway, sync_mail_during_outage, wait_for, Gateway};

const OPS: &str = "ops@acme.example";

fn metrics_have(gw: &Gateway, line: &str) -> bool {
    http_get(gw.http, "/metrics").lines().any(|l| l == line)
}

#[test]
fn metrics_show_the_queue_depth_then_the_mails_answered() {
    let (_root, mut main, gw) = main_and_gateway(&[]);
    sync_mail_during_outage(&mut main, &gw, OPS, "metrics@acme.example");
    wait_for("the queued mail and a retry in the metrics", || {
        (metrics_have(&gw, "solme_mail_queue_depth 1")
            && !metrics_have(&gw, "solme_mail_retries_total 0"))
        .then_some(())
    });
    assert!(metrics_have(&gw, "solme_mails_answered_total 0"));

    let main = main.restart();
    gw.wait_replies(1);
    gw.wait_idle();
    let text = http_get(gw.http, "/metrics");
    for line in [
        "solme_mails_received_total 1",
        "solme_mails_answered_total 1",
        "solme_mails_failed_total 0",
        "solme_mail_queue_depth 0",
        "# TYPE solme_mails_answered counter",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    drop(main);
}
