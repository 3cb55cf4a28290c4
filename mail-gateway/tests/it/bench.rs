//! Throughput benchmark (not a timed test: it only measures and prints).
//! Run: `cargo test -p mail-gateway --release --test it bench -- --ignored --nocapture`
//! (build main-server in the same profile first).

use std::time::Instant;

use shared_proto::ServerIdentity;

use crate::helpers::{main_and_gateway, sync_mails, wait_for, SmtpClient};

const OPS: &str = "ops@acme.example";

#[test]
#[ignore = "benchmark: run explicitly"]
fn bench_sync_mails_received_answered_and_delivered() {
    let n: usize = std::env::var("BENCH_MAILS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let connections = 8;
    let (_root, main, gw) = main_and_gateway(&[]);
    let (_, server_id) = main.customer_with_server(&[OPS]);
    let identity = ServerIdentity::generate().unwrap();
    let mails = sync_mails(OPS, "bench", n, &identity, server_id);
    let smtp = gw.smtp();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for chunk in mails.chunks(n.div_ceil(connections)) {
            scope.spawn(move || {
                let (mut client, _) = SmtpClient::connect(smtp);
                for mail in chunk {
                    let reply = client.mail(OPS, mail);
                    assert!(reply.starts_with("250"), "{reply}");
                }
                client.command("QUIT");
            });
        }
    });
    let received = start.elapsed();
    wait_for("all answered", || {
        (gw.status()["answered"].as_u64() == Some(n as u64)).then_some(())
    });
    let answered = start.elapsed();
    let replies = gw.replies();
    assert_eq!(replies.len(), n);
    assert!(replies.iter().all(|r| r.attachments.len() == 1));
    eprintln!(
        "{n} sync mails over {connections} SMTP connections: all accepted in {:.2}s, \
         all answered (license file written to the outbox) in {:.2}s = {:.0} mails/s",
        received.as_secs_f64(),
        answered.as_secs_f64(),
        n as f64 / answered.as_secs_f64()
    );
}
