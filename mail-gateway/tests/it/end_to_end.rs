//! End to end with a real main server (the binary next to ours): sync by
//! mail, key-clear requests and notices, refusals, loop protection, outages
//! and crashes.

use serde_json::json;
use shared_proto::ServerIdentity;
use uuid::Uuid;

use crate::helpers::{
    main_and_gateway, outbox_count, send_mail, sync_data, sync_mail, sync_mail_during_outage,
    sync_mails, text_mail, wait_for, SmtpClient,
};

const OPS: &str = "ops@acme.example";

#[test]
fn sync_by_mail_is_answered_with_a_license_file_for_that_server() {
    let (_root, main, gw) = main_and_gateway(&[]);
    let (_, server_id) = main.customer_with_server(&[OPS]);
    let identity = ServerIdentity::generate().unwrap();
    let sync = sync_data(&identity, server_id);
    send_mail(
        gw.smtp(),
        OPS,
        &sync_mail(OPS, "sync-1@acme.example", &sync),
    );

    let replies = gw.wait_replies(1);
    let reply = &replies[0];
    assert_eq!(reply.to, OPS);
    assert_eq!(reply.answers(), Some("sync-1@acme.example"));
    assert_eq!(reply.auto_submitted.as_deref(), Some("auto-replied"));
    assert_eq!(reply.subject, "Re: sync data");
    assert!(
        reply.text.contains(&server_id.to_string()),
        "{}",
        reply.text
    );
    assert!(reply.text.contains("Valid until:"), "{}", reply.text);
    assert!(
        reply.text.contains("solme-cad: 5 seats, perpetual"),
        "{}",
        reply.text
    );
    assert!(reply.text.contains("import-license-file"), "{}", reply.text);
    assert_eq!(reply.attachments.len(), 1);
    let (name, content) = &reply.attachments[0];
    assert_eq!(name, &format!("license-{server_id}.lic"));
    let file =
        shared_proto::license_file::open(content, &identity, &main.solme_key(), server_id).unwrap();
    assert_eq!(file.server_id, server_id);
    assert_eq!(file.licenses.len(), 1);
    assert_eq!(file.licenses[0].seats, 5);
    // Another server's keys cannot open it.
    let other = ServerIdentity::generate().unwrap();
    assert!(
        shared_proto::license_file::open(content, &other, &main.solme_key(), server_id).is_err()
    );

    gw.wait_idle();
    let status = gw.status();
    assert_eq!(status["answered"], 1, "{status}");
    let (_, server) = main.admin("GET", &format!("/admin/v1/servers/{server_id}"), None);
    assert_eq!(server["last_sync_channel"], "email", "{server}");
}

#[test]
fn the_same_message_id_is_answered_once() {
    let (_root, main, gw) = main_and_gateway(&[]);
    let (_, server_id) = main.customer_with_server(&[OPS]);
    let identity = ServerIdentity::generate().unwrap();
    let mail = sync_mail(OPS, "twice@acme.example", &sync_data(&identity, server_id));
    send_mail(gw.smtp(), OPS, &mail);
    send_mail(gw.smtp(), OPS, &mail);
    gw.wait_replies(1);
    gw.wait_idle();
    let status = gw.status();
    assert_eq!(status["received"], 2, "{status}");
    assert_eq!(status["dropped"], 1, "{status}");
    assert_eq!(gw.replies().len(), 1);
}

#[test]
fn key_clear_by_mail_is_acknowledged_and_the_decision_is_mailed() {
    let (_root, main, gw) = main_and_gateway(&[]);
    let (_, server_id) = main.customer_with_server(&[OPS]);
    // Bind a key pair first, as the old installation did.
    let old = ServerIdentity::generate().unwrap();
    send_mail(
        gw.smtp(),
        OPS,
        &sync_mail(OPS, "old@acme.example", &sync_data(&old, server_id)),
    );
    gw.wait_replies(1);

    let request = text_mail(
        OPS,
        "clear-1@acme.example",
        &format!("Please clear {server_id}"),
        "",
        "We reinstalled the server.",
    );
    send_mail(gw.smtp(), OPS, &request);
    let replies = gw.wait_replies(2);
    let ack = replies
        .iter()
        .find(|r| r.answers() == Some("clear-1@acme.example"))
        .unwrap();
    assert!(
        ack.text.contains("we have received your request"),
        "{}",
        ack.text
    );
    let (_, pending) = main.admin("GET", "/admin/v1/key-clear-requests?status=pending", None);
    let pending = pending.as_array().unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    let request_id = pending[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(pending[0]["sender"], OPS);
    assert!(ack.text.contains(&request_id), "{}", ack.text);

    let (status, _) = main.admin(
        "POST",
        &format!("/admin/v1/key-clear-requests/{request_id}/approve"),
        // No mail server adds Authentication-Results here: the sender is not checked.
        Some(json!({ "reason": "customer reinstalled", "override_unauthenticated": true })),
    );
    assert_eq!(status, 200);
    let replies = gw.wait_replies(3);
    let notice = replies
        .iter()
        .find(|r| r.subject.contains("approved"))
        .unwrap();
    assert_eq!(notice.to, OPS);
    assert_eq!(notice.answers(), Some("clear-1@acme.example"));
    assert!(
        notice.text.contains("customer reinstalled"),
        "{}",
        notice.text
    );
    wait_for("the request marked notified", || {
        let (_, list) = main.admin("GET", "/admin/v1/key-clear-requests/unnotified", None);
        list.as_array().is_some_and(|l| l.is_empty()).then_some(())
    });

    // The new installation can now sync by mail.
    let new = ServerIdentity::generate().unwrap();
    send_mail(
        gw.smtp(),
        OPS,
        &sync_mail(OPS, "new@acme.example", &sync_data(&new, server_id)),
    );
    let replies = gw.wait_replies(4);
    let answer = replies
        .iter()
        .find(|r| r.answers() == Some("new@acme.example"))
        .unwrap();
    assert_eq!(answer.attachments.len(), 1, "{}", answer.text);
    gw.wait_idle();
    assert_eq!(gw.replies().len(), 4, "exactly one notice");
}

#[test]
fn refusals_of_the_main_server_are_explained() {
    let (_root, main, gw) = main_and_gateway(&[]);
    let (_, server_id) = main.customer_with_server(&[OPS]);
    let first = ServerIdentity::generate().unwrap();
    let second = ServerIdentity::generate().unwrap();
    let unknown_id = Uuid::new_v4();
    let cases = [
        (
            OPS,
            "bind@x",
            sync_data(&first, server_id),
            "here is the license file",
        ),
        (
            OPS,
            "in-use@x",
            sync_data(&second, server_id),
            "bound to another key pair",
        ),
        (
            OPS,
            "unknown@x",
            sync_data(&first, unknown_id),
            "either Solme does not know this id",
        ),
        (
            "stranger@evil.example",
            "stranger@x",
            sync_data(&first, server_id),
            "either Solme does not know this id",
        ),
    ];
    // One after the other: "in use" needs the first binding in place.
    for (n, (from, id, sync, _)) in cases.iter().enumerate() {
        send_mail(gw.smtp(), from, &sync_mail(from, id, sync));
        gw.wait_replies(n + 1);
    }
    let replies = gw.replies();
    for (from, id, _, expected) in &cases {
        let reply = replies
            .iter()
            .find(|r| r.answers() == Some(*id))
            .unwrap_or_else(|| panic!("no reply to {id}"));
        assert_eq!(reply.to, *from);
        assert!(reply.text.contains(expected), "{id}: {}", reply.text);
    }
    let in_use = replies
        .iter()
        .find(|r| r.answers() == Some("in-use@x"))
        .unwrap();
    assert!(
        in_use.text.contains(&format!("clear {server_id}")),
        "{}",
        in_use.text
    );
    assert!(in_use.attachments.is_empty());
    // A stranger naming a real id learns no more than anyone naming an unknown one:
    // with the id and the address masked, the two replies are the same text.
    let masked = |id: &str| {
        let reply = replies.iter().find(|r| r.answers() == Some(id)).unwrap();
        let mut text = reply.text.replace(&reply.to, "SENDER");
        for id in [server_id, unknown_id] {
            text = text.replace(&id.to_string(), "ID");
        }
        text
    };
    assert_eq!(masked("stranger@x"), masked("unknown@x"));

    // A key-clear request from a stranger, and one for an unknown id.
    let stranger = text_mail(
        "stranger@evil.example",
        "kc-stranger@x",
        &format!("clear {server_id}"),
        "",
        "please",
    );
    send_mail(gw.smtp(), "stranger@evil.example", &stranger);
    let unknown = text_mail(
        OPS,
        "kc-unknown@x",
        &format!("clear {}", Uuid::new_v4()),
        "",
        "please",
    );
    send_mail(gw.smtp(), OPS, &unknown);
    let replies = gw.wait_replies(6);
    let find = |id: &str| {
        replies
            .iter()
            .find(|r| r.answers() == Some(id))
            .unwrap()
            .text
            .clone()
    };
    assert!(find("kc-stranger@x").contains("cannot accept a key-clear request"));
    assert!(find("kc-unknown@x").contains("cannot accept a key-clear request"));
    let (_, pending) = main.admin("GET", "/admin/v1/key-clear-requests?status=pending", None);
    assert_eq!(pending.as_array().map(Vec::len), Some(0), "{pending}");
}

#[test]
fn automatic_mail_is_never_answered() {
    let (_root, main, gw) = main_and_gateway(&[]);
    let (_, server_id) = main.customer_with_server(&[OPS]);
    let identity = ServerIdentity::generate().unwrap();
    let sync = sync_data(&identity, server_id).replace('\n', "\r\n");
    let automatic = [
        ("Auto-Submitted: auto-replied\r\n", OPS),
        ("Auto-Submitted: auto-generated\r\n", OPS),
        ("List-Id: <announce.acme.example>\r\n", OPS),
        ("Precedence: junk\r\n", OPS),
        ("", ""),
    ];
    for (n, (header, envelope_from)) in automatic.iter().enumerate() {
        let mail = text_mail(
            OPS,
            &format!("auto-{n}@acme.example"),
            "sync",
            header,
            &sync,
        );
        let (mut client, _) = SmtpClient::connect(gw.smtp());
        let reply = client.mail(envelope_from, &mail);
        assert!(reply.starts_with("250"), "{reply}");
    }
    // A report, as a DSN from a postmaster.
    let report = "From: postmaster@mx.acme.example\r\nTo: licensing@solme.example\r\n\
                  Subject: Delivery Status Notification\r\nMessage-ID: <dsn@mx>\r\n\
                  MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\r\n\
                  --r\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--r--\r\n";
    send_mail(gw.smtp(), "postmaster@mx.acme.example", report);
    // Then a human mail: once it is answered, everything before was handled.
    send_mail(gw.smtp(), OPS, &sync_mail(OPS, "human@acme.example", &sync));
    gw.wait_replies(1);
    gw.wait_idle();
    let replies = gw.replies();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].answers(), Some("human@acme.example"));
    let status = gw.status();
    assert_eq!(status["dropped"], 6, "{status}");
}

#[test]
fn mail_that_arrives_while_the_main_server_is_down_is_answered_once_it_is_back() {
    let (_root, mut main, gw) = main_and_gateway(&[]);
    sync_mail_during_outage(&mut main, &gw, OPS, "outage@acme.example");
    let status = gw.wait_status("retries during the outage", |status| {
        status["retries"].as_u64() >= Some(3)
    });
    assert_eq!(status["queued"], 1, "{status}");
    assert!(gw.replies().is_empty());

    let main = main.restart();
    let replies = gw.wait_replies(1);
    assert_eq!(replies[0].attachments.len(), 1, "{}", replies[0].text);
    gw.wait_idle();
    assert_eq!(gw.replies().len(), 1);
    assert_eq!(gw.status()["answered"], 1);
    drop(main);
}

/// Killed twice: once while the main server is down (every message is
/// claimed in the ledger, none answered), once while replies are being
/// written. Nothing depends on timing: the first kill comes once the ledger
/// holds claims, the second once the outbox holds replies (whenever that
/// is); one worker keeps the second kill in the middle of the backlog on
/// any machine, and how far it got does not matter.
#[test]
fn a_gateway_killed_mid_processing_answers_every_message_exactly_once() {
    let (_root, mut main, mut gw) = main_and_gateway(&["--workers", "1"]);
    let (_, server_id) = main.customer_with_server(&[OPS]);
    let identity = ServerIdentity::generate().unwrap();
    const N: usize = 60;
    let mails = sync_mails(OPS, "crash", N, &identity, server_id);
    // Fill the spool while no gateway runs, so that the restarted one has
    // a backlog to be killed in the middle of.
    gw.proc.kill();
    for mail in &mails {
        assert_eq!(deliver(&gw.data_dir, OPS, mail), Some(0));
    }
    let ledger = gw.data_dir.join("ledger");
    let count = |dir: &std::path::Path| std::fs::read_dir(dir).map_or(0, |e| e.count());

    // 1. The main server is down: messages are claimed and retried.
    main.kill();
    gw = gw.restart();
    wait_for("claims in the ledger", || {
        (count(&ledger) >= 3).then_some(())
    });
    gw.proc.kill();
    assert_eq!(outbox_count(&gw.outbox), 0);

    // 2. The main server is back: killed once replies are being written.
    let main = main.restart();
    gw = gw.restart();
    wait_for("replies in the outbox", || {
        (outbox_count(&gw.outbox) >= 3).then_some(())
    });
    gw.proc.kill();
    eprintln!(
        "killed with {} of {N} replies written",
        outbox_count(&gw.outbox)
    );

    gw = gw.restart();
    // A copy of an early message arriving again after the restarts.
    send_mail(gw.smtp(), OPS, &mails[0]);
    gw.wait_replies(N);
    gw.wait_idle();
    let replies = gw.replies();
    assert_eq!(replies.len(), N);
    let mut answered: Vec<String> = replies
        .iter()
        .filter_map(|r| r.answers().map(str::to_owned))
        .collect();
    answered.sort();
    answered.dedup();
    assert_eq!(answered.len(), N, "every message answered once");
    let with_license = replies.iter().filter(|r| r.attachments.len() == 1).count();
    // The claims made while the main server was down never reached it: those
    // messages get their license file. Only the one message in flight at the
    // second kill can have been used without its reply being staged; the
    // main server then either gives the same file again or refuses it as
    // used, which is explained as our interruption.
    eprintln!("{with_license} of {N} replies carry a license file");
    assert!(
        with_license + 1 >= N,
        "{with_license} of {N} carry a license file"
    );
    for reply in replies.iter().filter(|r| r.attachments.is_empty()) {
        assert!(
            reply.text.contains("interruption on our side"),
            "{}",
            reply.text
        );
    }
    drop(main);
}

fn deliver(data_dir: &std::path::Path, sender: &str, message: &str) -> Option<i32> {
    let data_dir = data_dir.to_str().unwrap();
    let sender = format!("--sender={sender}");
    let args = ["deliver", "--data-dir", data_dir, &sender];
    crate::helpers::run_gateway(&args, &[], message.as_bytes())
}

/// The whole customer path with the real local server: export sync data,
/// mail it, import the license file from the reply.
#[test]
fn a_local_server_imports_the_license_file_it_got_by_mail() {
    let (root, main, gw) = main_and_gateway(&[]);
    let (_, server_id) = main.customer_with_server(&[OPS]);
    let local = crate::helpers::gateway_bin().with_file_name("local-server");
    let local_dir = root.path().join("local");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&local)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "local-server {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dir = local_dir.to_string_lossy().into_owned();
    let solme_key = main.data_dir.join("solme-public.pem");
    let ca = main.data_dir.join("ca.pem");
    run(&[
        "init",
        "--data-dir",
        &dir,
        "--id",
        &server_id.to_string(),
        "--main-server",
        "https://127.0.0.1:9",
        "--solme-key",
        &solme_key.to_string_lossy(),
        "--ca-cert",
        &ca.to_string_lossy(),
    ]);
    let sync_file = root.path().join("sync.txt");
    run(&[
        "export-sync-data",
        "--data-dir",
        &dir,
        &sync_file.to_string_lossy(),
    ]);
    let sync = std::fs::read_to_string(&sync_file).unwrap();
    send_mail(
        gw.smtp(),
        OPS,
        &sync_mail(OPS, "local-1@acme.example", &sync),
    );
    let replies = gw.wait_replies(1);
    let (name, content) = replies[0].attachments.first().expect("a license file");
    let license = root.path().join(name);
    std::fs::write(&license, content).unwrap();
    run(&[
        "import-license-file",
        "--data-dir",
        &dir,
        &license.to_string_lossy(),
    ]);
    let status = run(&["status", "--data-dir", &dir]);
    assert!(status.contains("solme-cad"), "{status}");
}

/// A gateway pinned to another CA does not trust the main server: it says so in its
/// log and keeps the mail for later, with nothing sent to the customer.
#[test]
fn a_main_server_certificate_from_another_ca_is_logged_and_the_mail_waits() {
    let other = tempfile::tempdir().unwrap();
    let other_ca = other.path().join("other-ca.pem");
    let ca = test_harness::certs::self_signed("Another CA", 30).unwrap();
    std::fs::write(&other_ca, ca.cert_pem).unwrap();
    let (_root, main, gw) = main_and_gateway(&["--main-server-ca", other_ca.to_str().unwrap()]);
    let (_, server_id) = main.customer_with_server(&[OPS]);
    let sync = sync_data(&ServerIdentity::generate().unwrap(), server_id);
    send_mail(
        gw.smtp(),
        OPS,
        &sync_mail(OPS, "pinned@acme.example", &sync),
    );
    wait_for("the gateway to log the untrusted certificate", || {
        gw.proc
            .log()
            .contains("the main server's certificate is not from the CA in --main-server-ca")
            .then_some(())
    });
    assert!(gw.replies().is_empty(), "a reply went out");
}
