//! The three intakes without a main server: the SMTP receiver's bounds,
//! `deliver` and the Maildir watcher. Replies that need no main server (bad
//! mail) are checked in the outbox; sync mail must stay queued.

use std::process::Command;

use crate::helpers::{
    closed_port_url, dummy_token, gateway_bin, run_gateway, send_mail, text_mail, wait_for,
    Gateway, SmtpClient, LICENSING,
};
use shared_proto::clock::CLOCK_OFFSET_ENV;
use shared_proto::exit;
use test_harness::process::{signal, Signal};

/// A gateway (with `extra` flags) in `root`, for a main server that is not up.
fn gateway_in(root: &std::path::Path, extra: &[&str]) -> Gateway {
    let token = dummy_token(root);
    Gateway::start(root, &closed_port_url(), &token, extra)
}

/// A gateway (with `extra` flags) in a fresh temporary root, kept as long as it runs.
fn gateway(extra: &[&str]) -> (tempfile::TempDir, Gateway) {
    let root = tempfile::tempdir().unwrap();
    let gw = gateway_in(root.path(), extra);
    (root, gw)
}

/// Asks the gateway to stop, as a service manager does.
fn sigterm(gw: &Gateway) {
    assert!(signal(gw.proc.pid(), Signal::TERM));
}

/// Waits for the gateway to exit, and checks that it exits 0.
fn exits_cleanly(gw: &mut Gateway) {
    let exit = wait_for("the gateway to exit", || gw.proc.exit_status());
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn smtp_advertises_its_limits_and_takes_mail_only_for_the_licensing_address() {
    let (_root, gw) = gateway(&["--max-message-size", "65536"]);
    let (mut client, greeting) = SmtpClient::connect(gw.smtp());
    assert!(greeting.starts_with("220 solme.example"), "{greeting}");
    assert!(client.command("MAIL FROM:<a@b.example>").starts_with("503"));
    let ehlo = client.command("EHLO client.example");
    assert!(
        ehlo.contains("250-SIZE 65536") || ehlo.contains("250 SIZE 65536"),
        "{ehlo}"
    );
    assert!(ehlo.contains("PIPELINING"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    let too_big = client.command("MAIL FROM:<a@b.example> SIZE=70000");
    assert!(too_big.starts_with("552 5.3.4"), "{too_big}");
    assert!(client.command("MAIL FROM:<a@b.example>").starts_with("250"));
    assert!(client.command("DATA").starts_with("503"));
    let other = client.command("RCPT TO:<sales@solme.example>");
    assert!(other.starts_with("550 5.1.1"), "{other}");
    assert!(client
        .command("RCPT TO:<Licensing@Solme.Example>")
        .starts_with("250"));
    assert!(client.command("RSET").starts_with("250"));
    assert!(client.command("QUIT").starts_with("221"));
}

#[test]
fn oversized_data_is_refused_and_the_session_goes_on() {
    let (_root, gw) = gateway(&["--max-message-size", "4096"]);
    let (mut client, _) = SmtpClient::connect(gw.smtp());
    let body = "x".repeat(100);
    let big = text_mail(
        "ops@acme.example",
        "big@acme.example",
        "big",
        "",
        &vec![body; 100].join("\r\n"),
    );
    let reply = client.mail("ops@acme.example", &big);
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    let small = text_mail(
        "ops@acme.example",
        "small@acme.example",
        "hello",
        "",
        "hello",
    );
    let reply = client.mail("ops@acme.example", &small);
    assert!(reply.starts_with("250"), "{reply}");
    // The small one (no sync data) is answered; the big one left no trace.
    let replies = gw.wait_replies(1);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].answers(), Some("small@acme.example"));
}

#[test]
fn a_line_longer_than_the_limit_ends_the_session() {
    let (_root, gw) = gateway(&[]);
    let (mut client, _) = SmtpClient::connect(gw.smtp());
    client.send(&vec![b'A'; 10_000]);
    let reply = client.read_reply();
    assert!(reply.starts_with("500 5.5.2"), "{reply}");
    assert_eq!(client.read_reply(), "", "the connection should be closed");
}

#[test]
fn connections_beyond_the_limit_are_told_to_come_back() {
    let (_root, gw) = gateway(&["--max-connections", "1"]);
    let (_first, greeting) = SmtpClient::connect(gw.smtp());
    assert!(greeting.starts_with("220"));
    let (_second, refused) = SmtpClient::connect(gw.smtp());
    assert!(refused.starts_with("421 4.7.0"), "{refused}");
}

#[test]
fn a_silent_client_is_disconnected() {
    let (_root, gw) = gateway(&["--smtp-timeout-secs", "1"]);
    let (mut client, _) = SmtpClient::connect(gw.smtp());
    let reply = client.read_reply();
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let (_root, gw) = gateway(&[]);
    let (mut client, _) = SmtpClient::connect(gw.smtp());
    client.command("EHLO client.example");
    client.send(
        format!("MAIL FROM:<ops@acme.example>\r\nRCPT TO:<nobody@acme.example>\r\nRCPT TO:<{LICENSING}>\r\nDATA\r\n")
            .as_bytes(),
    );
    assert!(client.read_reply().starts_with("250"));
    assert!(client.read_reply().starts_with("550"));
    assert!(client.read_reply().starts_with("250"));
    assert!(client.read_reply().starts_with("354"));
    client.send(b"Subject: x\r\nFrom: ops@acme.example\r\n\r\nhi\r\n.\r\nNOOP\r\n");
    assert!(client.read_reply().starts_with("250 2.0.0 Queued"));
    assert!(client.read_reply().starts_with("250"));
}

#[test]
fn sync_mail_waits_while_the_main_server_is_away_and_bad_mail_is_answered() {
    let (_root, gw) = gateway(&[]);
    let identity = shared_proto::ServerIdentity::generate().unwrap();
    let sync = crate::helpers::sync_data(&identity, uuid::Uuid::new_v4());
    send_mail(
        gw.smtp(),
        "ops@acme.example",
        &crate::helpers::sync_mail("ops@acme.example", "sync-1@acme.example", &sync),
    );
    send_mail(
        gw.smtp(),
        "ops@acme.example",
        &text_mail(
            "Ops <ops@acme.example>",
            "q-1@acme.example",
            "Question",
            "",
            "How do I sync?",
        ),
    );
    let replies = gw.wait_replies(1);
    assert_eq!(replies[0].to, "ops@acme.example");
    assert_eq!(replies[0].answers(), Some("q-1@acme.example"));
    assert_eq!(replies[0].subject, "Re: Question");
    assert_eq!(replies[0].auto_submitted.as_deref(), Some("auto-replied"));
    assert!(
        replies[0].text.contains("we found no sync data"),
        "{}",
        replies[0].text
    );
    assert!(
        replies[0].text.contains("export-sync-data"),
        "{}",
        replies[0].text
    );
    let status = gw.wait_status("retries of the sync mail", |status| {
        status["retries"].as_u64() >= Some(2)
    });
    assert_eq!(status["queued"], 1, "{status}");
    assert_eq!(status["received"], 2, "{status}");
    assert_eq!(gw.replies().len(), 1);
}

#[test]
fn deliver_stores_the_message_for_the_server_and_exits_0() {
    let (_root, gw) = gateway(&["--smtp-listen", "off"]);
    assert!(gw.smtp.is_none());
    let message = text_mail(
        "ops@acme.example",
        "d-1@acme.example",
        "Hello",
        "",
        "no data here",
    );
    let args = [
        "deliver",
        "--data-dir",
        gw.data_dir.to_str().unwrap(),
        "--sender",
        "ops@acme.example",
        "--recipient",
        LICENSING,
    ];
    assert_eq!(run_gateway(&args, &[], message.as_bytes()), Some(0));
    let replies = gw.wait_replies(1);
    assert_eq!(replies[0].answers(), Some("d-1@acme.example"));
}

#[test]
fn deliver_of_a_bounce_and_of_an_oversized_message() {
    let (_root, gw) = gateway(&["--smtp-listen", "off"]);
    let deliver = |sender: &str, message: &str| {
        let data_dir = gw.data_dir.to_str().unwrap();
        let sender = format!("--sender={sender}");
        let args = [
            "deliver",
            "--max-message-size",
            "2000",
            "--data-dir",
            data_dir,
            &sender,
        ];
        run_gateway(&args, &[], message.as_bytes())
    };
    let bounce = text_mail(
        "MAILER-DAEMON@mx.acme.example",
        "b-1@mx",
        "Undelivered",
        "",
        "failed",
    );
    assert_eq!(deliver("", &bounce), Some(0));
    let big = text_mail(
        "ops@acme.example",
        "big-1@acme.example",
        "Big",
        "",
        &"y".repeat(10_000),
    );
    assert_eq!(deliver("ops@acme.example", &big), Some(0));
    let replies = gw.wait_replies(1);
    assert_eq!(replies[0].answers(), Some("big-1@acme.example"));
    assert!(replies[0].text.contains("too large"), "{}", replies[0].text);
    gw.wait_idle();
    let status = gw.status();
    assert_eq!(status["dropped"], 1, "{status}");
    assert_eq!(gw.replies().len(), 1);
}

#[test]
fn deliver_exits_75_when_the_spool_cannot_be_written() {
    let root = tempfile::tempdir().unwrap();
    let not_a_dir = root.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let data_dir = not_a_dir.join("data");
    let args = ["deliver", "--data-dir", data_dir.to_str().unwrap()];
    assert_eq!(
        run_gateway(&args, &[], b"Subject: x\r\n\r\nx\r\n"),
        Some(i32::from(exit::TEMPORARY))
    );
}

#[test]
fn maildir_messages_are_taken_from_new_and_answered() {
    let root = tempfile::tempdir().unwrap();
    let maildir = root.path().join("Maildir");
    let gw = gateway_in(
        root.path(),
        &[
            "--smtp-listen",
            "off",
            "--maildir",
            &maildir.to_string_lossy(),
            "--maildir-poll-ms",
            "50",
        ],
    );
    let message = text_mail("ops@acme.example", "m-1@acme.example", "Hi", "", "nothing");
    // As an MTA does: write in tmp/, then rename into new/.
    std::fs::write(maildir.join("tmp/1.host"), message.as_bytes()).unwrap();
    std::fs::rename(maildir.join("tmp/1.host"), maildir.join("new/1.host")).unwrap();
    let replies = gw.wait_replies(1);
    assert_eq!(replies[0].answers(), Some("m-1@acme.example"));
    assert!(std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .next()
        .is_none());
    let cur: Vec<String> = std::fs::read_dir(maildir.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cur, vec!["1.host:2,S".to_owned()]);
}

#[test]
fn the_status_page_answers_json_and_html() {
    let (_root, gw) = gateway(&[]);
    let status = gw.status();
    for key in ["received", "answered", "failed", "queued", "dropped"] {
        assert!(status[key].is_u64(), "{key} missing in {status}");
    }
    let html = crate::helpers::http_get(gw.http, "/");
    assert!(html.contains("Solme mail gateway"), "{html}");
}

/// A self-signed certificate for localhost: `(cert path, key path)`.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let made = test_harness::certs::self_signed("localhost", 1).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, made.cert_pem).unwrap();
    std::fs::write(&key_path, made.key_pem).unwrap();
    (cert_path, key_path)
}

#[test]
fn starttls_is_offered_with_a_certificate_and_mail_goes_through_it() {
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::Transport;
    let root = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(root.path());
    let gw = gateway_in(
        root.path(),
        &[
            "--tls-cert",
            &cert.to_string_lossy(),
            "--tls-key",
            &key.to_string_lossy(),
        ],
    );
    let (mut client, _) = SmtpClient::connect(gw.smtp());
    assert!(client.command("EHLO client.example").contains("STARTTLS"));
    // Nothing goes through without the handshake being real.
    client.send(b"STARTTLS\r\n");
    assert!(client.read_reply().starts_with("220"));
    drop(client);

    let tls = TlsParameters::builder("localhost".into())
        .dangerous_accept_invalid_certs(true)
        .build()
        .unwrap();
    let transport = lettre::SmtpTransport::builder_dangerous("127.0.0.1")
        .port(gw.smtp().port())
        .tls(Tls::Required(tls))
        .build();
    let envelope = lettre::address::Envelope::new(
        Some("ops@acme.example".parse().unwrap()),
        vec![LICENSING.parse().unwrap()],
    )
    .unwrap();
    let message = text_mail(
        "ops@acme.example",
        "tls-1@acme.example",
        "Hi",
        "",
        "over TLS",
    );
    transport.send_raw(&envelope, message.as_bytes()).unwrap();
    let replies = gw.wait_replies(1);
    assert_eq!(replies[0].answers(), Some("tls-1@acme.example"));
}

/// The relay is another gateway whose "licensing address" is the customer's:
/// it accepts the reply over SMTP, stores it, and (being automatic mail)
/// drops it without answering. Down first, then up; then a relay that
/// refuses the recipient for good.
#[test]
fn replies_wait_for_a_relay_that_is_down_and_a_refused_reply_is_given_up() {
    let root = tempfile::tempdir().unwrap();
    // Held (not listening) until the relay takes the port over.
    let (_reserved, reserved) = crate::helpers::reserve_port().unwrap();
    let port = reserved.port();
    let relay_url = format!("smtp://127.0.0.1:{port}");
    let sender_root = root.path().join("sender");
    std::fs::create_dir_all(&sender_root).unwrap();
    let gw = gateway_in(
        &sender_root,
        &["--smtp-relay", &relay_url, "--smtp-relay-tls", "none"],
    );
    // Mail without sync data: its reply needs no main server.
    let ask = |from: &str, message_id: &str| {
        let question = text_mail(from, message_id, "Hi", "", "no data");
        send_mail(gw.smtp(), from, &question);
    };
    ask("ops@acme.example", "relay-1@acme.example");
    let status = gw.wait_status("retries towards the relay", |status| {
        status["retries"].as_u64() >= Some(2)
    });
    assert_eq!(status["outgoing"], 1, "{status}");
    assert_eq!(status["answered"], 0, "{status}");

    // The relay comes up on that port, for the customer's address.
    let relay_root = root.path().join("relay");
    std::fs::create_dir_all(&relay_root).unwrap();
    let listen = format!("127.0.0.1:{port}");
    let relay = Gateway::start(
        &relay_root,
        &closed_port_url(),
        &dummy_token(&relay_root),
        &["--address", "ops@acme.example", "--smtp-listen", &listen],
    );
    wait_for("the reply through the relay", || {
        (relay.status()["dropped"] == 1).then_some(())
    });
    gw.wait_idle();
    assert_eq!(gw.status()["answered"], 1);
    assert!(
        relay.replies().is_empty(),
        "the relay must not answer a reply"
    );

    // A recipient the relay refuses (550) is given up, not retried forever.
    ask("someone@acme.example", "relay-2@acme.example");
    // The counter moves just before the reply's file does: wait for both.
    let status = gw.wait_status("the refused reply given up", |status| {
        status["failed"] == 1 && status["outgoing"] == 0
    });
    assert_eq!(status["failed_in_spool"], 1, "{status}");
}

#[test]
fn sigterm_stops_the_gateway_cleanly() {
    let (_root, mut gw) = gateway(&[]);
    sigterm(&gw);
    exits_cleanly(&mut gw);
}

/// The back-off of a message waiting for the main server ends at a stop: the
/// message stays queued for the next start.
#[test]
fn a_stop_ends_the_back_off_and_keeps_the_message() {
    let retry = ["--retry-initial-ms", "600000", "--retry-max-ms", "600000"];
    let (_root, mut gw) = gateway(&retry);
    let identity = shared_proto::ServerIdentity::generate().unwrap();
    let sync_data = crate::helpers::sync_data(&identity, uuid::Uuid::new_v4());
    let mail = crate::helpers::sync_mail("ops@acme.example", "wait-1@acme.example", &sync_data);
    send_mail(gw.smtp(), "ops@acme.example", &mail);
    wait_for("a failed attempt", || {
        (gw.status()["retries"].as_u64()? >= 1).then_some(())
    });
    sigterm(&gw);
    exits_cleanly(&mut gw);
    assert!(
        gw.proc
            .log()
            .contains("left in the spool for the next start"),
        "{}",
        gw.proc.log()
    );
    let queued = std::fs::read_dir(gw.data_dir.join("spool/queue"))
        .unwrap()
        .count();
    assert!(queued >= 1, "the message is still queued");
}

#[test]
fn serve_exits_1_when_its_address_is_taken() {
    let root = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let token = dummy_token(root.path());
    let out = Command::new(gateway_bin())
        .args([
            "serve",
            "--address",
            LICENSING,
            "--main-server",
            "http://127.0.0.1:9",
        ])
        .arg("--data-dir")
        .arg(root.path().join("gw"))
        .arg("--token-file")
        .arg(&token)
        .arg("--outbox")
        .arg(root.path().join("outbox"))
        .args(["--smtp-listen", &address, "--http-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("binding --smtp-listen"), "{stderr}");
}

/// An autoresponder that marks nothing as automatic gets a bounded number
/// of "no sync data" replies, not an endless exchange.
#[test]
fn replies_about_bad_mail_to_one_address_are_limited() {
    let (_root, gw) = gateway(&[]);
    let (mut client, _) = SmtpClient::connect(gw.smtp());
    for n in 0..12 {
        let mail = text_mail(
            "robot@acme.example",
            &format!("robot-{n}@acme.example"),
            "Re: x",
            "",
            "I got your mail",
        );
        assert!(client.mail("robot@acme.example", &mail).starts_with("250"));
    }
    gw.wait_status("all 12 handled", |status| {
        status["received"] == 12 && status["queued"] == 0 && status["outgoing"] == 0
    });
    assert_eq!(gw.replies().len(), 10);
    assert_eq!(gw.status()["dropped"], 2);
}

/// A message written in pieces over a real connection (the final dot alone, a
/// dot-stuffed first line, an end cut before its CRLF) is received whole. Where the
/// reads fall depends on the network, so how the end is found however the reads are cut
/// is tested deterministically by the unit tests of `intake::smtp::data`.
#[test]
fn a_message_written_in_pieces_is_received_whole() {
    let (_root, gw) = gateway(&[]);
    let (mut client, _) = SmtpClient::connect(gw.smtp());
    assert!(client.command("EHLO client.example").starts_with("250"));
    // An empty message whose final dot comes alone.
    client.begin_data("ops@acme.example");
    client.send(b".");
    client.send(b"\r\n");
    let reply = client.read_reply();
    assert!(reply.starts_with("554"), "{reply}");
    // A message whose first line is dot-stuffed and whose end is cut.
    client.begin_data("ops@acme.example");
    client
        .send(b"..X-Dotted: yes\r\nFrom: ops@acme.example\r\nMessage-ID: <split@acme.example>\r\n");
    client.send(b"Subject: split\r\n\r\nhi\r\n.");
    client.send(b"\r\n");
    let reply = client.read_reply();
    assert!(reply.starts_with("250 2.0.0 Queued"), "{reply}");
    assert!(client.command("QUIT").starts_with("221"));
}

#[test]
fn connections_from_one_address_are_capped() {
    let (_root, gw) = gateway(&["--max-connections-per-ip", "1"]);
    let (mut first, greeting) = SmtpClient::connect(gw.smtp());
    assert!(greeting.starts_with("220"));
    let (_second, refused) = SmtpClient::connect(gw.smtp());
    assert!(refused.starts_with("421 4.7.0"), "{refused}");
    // The slot comes back when the first session ends.
    assert!(first.command("QUIT").starts_with("221"));
    let greeting = wait_for("a free slot", || {
        let (_third, greeting) = SmtpClient::connect(gw.smtp());
        greeting.starts_with("220").then_some(greeting)
    });
    assert!(greeting.starts_with("220"));
}

#[test]
fn a_busy_session_ends_at_its_deadline() {
    let (_root, gw) = gateway(&["--smtp-session-timeout-secs", "1"]);
    let (mut client, _) = SmtpClient::connect(gw.smtp());
    let reply = wait_for("the session deadline", || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let reply = client.command("NOOP");
        (!reply.starts_with("250")).then_some(reply)
    });
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
}

#[test]
fn a_message_sent_drop_by_drop_ends_at_the_data_deadline() {
    let (_root, gw) = gateway(&["--smtp-data-timeout-secs", "1"]);
    let (mut client, _) = SmtpClient::connect(gw.smtp());
    assert!(client.command("EHLO client.example").starts_with("250"));
    client.begin_data("ops@acme.example");
    client
        .stream()
        .set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    let reply = wait_for("the data deadline", || {
        client.send(b"x\r\n");
        let reply = client.read_reply();
        (!reply.is_empty()).then_some(reply)
    });
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
}

/// A stop: a session waiting for a command is told 421 at once; one in
/// DATA finishes its message, which is stored and gets its 250, then 421.
#[test]
fn a_stop_lets_a_message_being_received_finish() {
    let (_root, mut gw) = gateway(&[]);
    let (mut idle, _) = SmtpClient::connect(gw.smtp());
    assert!(idle.command("EHLO idle.example").starts_with("250"));
    let (mut sending, _) = SmtpClient::connect(gw.smtp());
    assert!(sending.command("EHLO client.example").starts_with("250"));
    sending.begin_data("ops@acme.example");
    sending.send(b"From: ops@acme.example\r\nMessage-ID: <stop@acme.example>\r\n");

    sigterm(&gw);
    let told = idle.read_reply();
    assert!(told.starts_with("421 4.3.2"), "{told}");

    sending.send(b"Subject: late\r\n\r\nhello\r\n.\r\n");
    let stored = sending.read_reply();
    assert!(stored.starts_with("250 2.0.0 Queued"), "{stored}");
    let next = sending.command("NOOP");
    assert!(next.starts_with("421 4.3.2"), "{next}");
    exits_cleanly(&mut gw);
    // Stored: still queued, or already answered during the drain.
    let queued = std::fs::read_dir(gw.data_dir.join("spool/queue"))
        .unwrap()
        .count();
    let replied = crate::helpers::outbox_count(&gw.outbox)
        + std::fs::read_dir(gw.data_dir.join("spool/outgoing"))
            .unwrap()
            .count();
    assert_eq!(queued + replied, 1, "queued {queued}, replied {replied}");
}

/// An MTA bounces a message for good on any exit code but 75: `deliver`
/// must never fail otherwise, whatever is wrong with its start.
#[test]
fn deliver_exits_75_on_any_start_up_failure() {
    let root = tempfile::tempdir().unwrap();
    let run =
        |args: &[&str], env: &[(&str, &str)]| run_gateway(args, env, b"Subject: x\r\n\r\nx\r\n");
    let data = root.path().join("data");
    let data = data.to_str().unwrap();
    assert_eq!(
        run(
            &["deliver", "--data-dir", data],
            &[(CLOCK_OFFSET_ENV, "not-a-duration")]
        ),
        Some(i32::from(exit::TEMPORARY))
    );
    assert_eq!(
        run(&["deliver", "--data-dir", data, "--no-such-flag"], &[]),
        Some(i32::from(exit::TEMPORARY))
    );
    assert_eq!(
        run(
            &["deliver", "--data-dir", data, "--max-message-size", "1"],
            &[]
        ),
        Some(i32::from(exit::TEMPORARY))
    );
    assert_eq!(run(&["deliver", "--data-dir", data], &[]), Some(0));
    // `serve` keeps the usual usage exit code.
    assert_eq!(run(&["serve", "--no-such-flag"], &[]), Some(2));
}

/// The relay took a reply but it cannot be moved to spool/sent: only the
/// move is retried, the reply is not handed over again.
#[test]
fn a_reply_that_cannot_be_moved_to_sent_is_not_sent_again() {
    let (_root, gw) = gateway(&[]);
    let sent = gw.data_dir.join("spool/sent");
    std::fs::remove_dir(&sent).unwrap();
    // A file where the directory should be: every rename into it fails
    // (even for root).
    std::fs::write(&sent, "in the way").unwrap();
    let question = text_mail("ops@acme.example", "mv-1@acme.example", "Hi", "", "hello");
    send_mail(gw.smtp(), "ops@acme.example", &question);
    gw.wait_replies(1);
    // Two more passes over outgoing/ and several retried moves: a second
    // hand-over would be counted by then.
    let scans = gw.status()["scans"].as_u64().unwrap();
    let status = gw.wait_status("two scans and three retried moves", |status| {
        status["scans"].as_u64() >= Some(scans + 2) && status["retries"].as_u64() >= Some(3)
    });
    assert_eq!(status["answered"], 1, "{status}");
    assert_eq!(status["outgoing"], 1, "{status}");
    std::fs::remove_file(&sent).unwrap();
    std::fs::create_dir(&sent).unwrap();
    wait_for("the reply moved to spool/sent", || {
        (gw.status()["outgoing"] == 0).then_some(())
    });
    assert_eq!(gw.status()["answered"], 1);
    assert_eq!(gw.replies().len(), 1);
}
