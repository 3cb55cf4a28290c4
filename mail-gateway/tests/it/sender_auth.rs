//! Key-clear requests prove their sender: the verdict read from the mail server's
//! `Authentication-Results` is stored with the request, approving an
//! unauthenticated one needs the override (audited), and the decision notice
//! reaches every registered contact. Only the header of an MTA in front
//! (`deliver`) is believed: mail on the gateway's own SMTP receiver is never
//! checked, whatever header it brings.

use serde_json::{json, Value};

use crate::helpers::{
    main_and_gateway, run_gateway, send_mail, text_mail, wait_for, Gateway, MainServer,
};

const OPS: &str = "ops@acme.example";
const BOSS: &str = "boss@acme.example";
const MX: &str = "mx.solme.example";

/// How a test mail reaches the gateway.
#[derive(Clone, Copy)]
enum Via {
    /// The gateway's own SMTP receiver, straight from the sender.
    Smtp,
    /// `mail-gateway deliver`, as the pipe transport of an MTA in front runs it.
    Deliver,
}

/// Starts a main server and a gateway (with `extra` flags), registers a customer
/// with `contacts`, mails a key-clear request for its server from OPS with
/// `headers` on top `via` an intake and returns the stored request, once the
/// acknowledgement is out.
fn start_and_request_by_mail(
    extra: &[&str],
    contacts: &[&str],
    via: Via,
    headers: &str,
) -> (tempfile::TempDir, MainServer, Gateway, Value) {
    let (root, main, gw) = main_and_gateway(extra);
    let (_, server_id) = main.customer_with_server(contacts);
    let before = gw.replies().len();
    let mail = format!(
        "{headers}{}",
        text_mail(
            OPS,
            "clear@acme.example",
            &format!("Please clear {server_id}"),
            "",
            "We reinstalled the server.",
        )
    );
    match via {
        Via::Smtp => send_mail(gw.smtp(), OPS, &mail),
        Via::Deliver => {
            let data_dir = gw.data_dir.to_str().unwrap();
            let sender = format!("--sender={OPS}");
            let args = ["deliver", "--data-dir", data_dir, &sender];
            assert_eq!(run_gateway(&args, &[], mail.as_bytes()), Some(0));
        }
    }
    let replies = gw.wait_replies(before + 1);
    assert!(
        replies
            .iter()
            .any(|r| r.text.contains("we have received your request")),
        "no acknowledgement: {replies:?}"
    );
    let (_, pending) = main.admin("GET", "/admin/v1/key-clear-requests?status=pending", None);
    (root, main, gw, pending[0].clone())
}

fn approve(main: &MainServer, id: &str, body: Value) -> (u16, Value) {
    main.admin(
        "POST",
        &format!("/admin/v1/key-clear-requests/{id}/approve"),
        Some(body),
    )
}

/// Waits for the request to be marked notified, then returns the decision notices.
fn notices(main: &MainServer, gw: &Gateway, count: usize) -> Vec<crate::helpers::Reply> {
    wait_for("the request marked notified", || {
        let (_, list) = main.admin("GET", "/admin/v1/key-clear-requests/unnotified", None);
        list.as_array().is_some_and(|l| l.is_empty()).then_some(())
    });
    gw.wait_idle();
    let notices: Vec<_> = gw
        .replies()
        .into_iter()
        .filter(|r| r.subject.starts_with("Key-pair clearing"))
        .collect();
    assert_eq!(notices.len(), count, "{notices:?}");
    notices
}

#[test]
fn an_authenticated_request_is_approved_without_override_and_every_contact_is_told() {
    let (_root, main, gw, request) = start_and_request_by_mail(
        &["--authserv-id", MX],
        &[OPS, BOSS],
        Via::Deliver,
        "Authentication-Results: mx.solme.example;\r\n \
         spf=pass smtp.mailfrom=ops@acme.example;\r\n \
         dkim=pass (good signature) header.d=acme.example;\r\n \
         dmarc=pass header.from=acme.example\r\n",
    );
    assert_eq!(request["sender_auth"], "authenticated", "{request}");
    assert_eq!(
        request["sender_auth_detail"], "spf=pass, dkim=pass, dmarc=pass",
        "{request}"
    );
    let id = request["id"].as_str().unwrap();
    let (status, body) = approve(&main, id, json!({}));
    assert_eq!(status, 200, "{body}");

    let notices = notices(&main, &gw, 2);
    let mut to: Vec<&str> = notices.iter().map(|n| n.to.as_str()).collect();
    to.sort_unstable();
    assert_eq!(to, [BOSS, OPS]);
    for notice in &notices {
        assert!(notice.subject.contains("approved"), "{}", notice.subject);
        assert!(
            notice.text.contains("Requested by: ops@acme.example")
                && notice
                    .text
                    .contains("Sender check: confirmed: the mail server verified")
                && !notice.text.contains("spf=")
                && notice.text.contains("every registered contact"),
            "{}",
            notice.text
        );
    }
    // Only the requester's notice answers the request mail.
    let requester = notices.iter().find(|n| n.to == OPS).unwrap();
    assert_eq!(requester.answers(), Some("clear@acme.example"));
    let other = notices.iter().find(|n| n.to == BOSS).unwrap();
    assert_eq!(other.answers(), None);
}

#[test]
fn a_forged_request_needs_the_override_which_is_audited_and_every_contact_is_told() {
    // The mail server's own header on top says fail; below it the forger wrote a
    // pass with the same authserv-id, and another server's pass.
    let (_root, main, gw, request) = start_and_request_by_mail(
        &["--authserv-id", MX],
        &[OPS, BOSS],
        Via::Deliver,
        "Authentication-Results: mx.solme.example; spf=fail smtp.mailfrom=ops@acme.example;\r\n \
         dmarc=fail (p=reject) header.from=acme.example\r\n\
         Received: from evil.example by mx.solme.example\r\n\
         Authentication-Results: mx.solme.example; dmarc=pass header.from=acme.example\r\n\
         Authentication-Results: relay.example; dmarc=pass header.from=acme.example\r\n",
    );
    assert_eq!(request["sender_auth"], "not authenticated", "{request}");
    assert_eq!(request["sender_auth_detail"], "spf=fail, dmarc=fail");
    let id = request["id"].as_str().unwrap();

    let (status, body) = approve(&main, id, json!({ "reason": "looks fine" }));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("OVERRIDE_REQUIRED")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("not authenticated: spf=fail, dmarc=fail")),
        "{body}"
    );
    let (_, shown) = main.admin("GET", &format!("/admin/v1/key-clear-requests/{id}"), None);
    assert_eq!(shown["status"], "pending", "{shown}");
    let (_, list) = main.admin("GET", "/admin/v1/key-clear-requests/unnotified", None);
    assert_eq!(list, json!([]), "a refused approval is no decision");

    let (status, body) = approve(
        &main,
        id,
        json!({ "reason": "confirmed by phone", "override_unauthenticated": true }),
    );
    assert_eq!(status, 200, "{body}");
    let (_, audit) = main.admin("GET", "/admin/v1/audit?limit=10", None);
    let approval = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "key_clear_request.approve")
        .unwrap()
        .clone();
    assert!(
        approval["detail"].as_str().unwrap().contains(
            "override used (sender ops@acme.example: not authenticated: spf=fail, dmarc=fail)"
        ),
        "{approval}"
    );

    let notices = notices(&main, &gw, 2);
    for notice in &notices {
        assert!(
            notice.text.contains("Requested by: ops@acme.example")
                && notice
                    .text
                    .contains("Sender check: failed: the mail server could not confirm")
                && !notice.text.contains("spf=")
                && notice.text.contains("confirmed by phone"),
            "{}",
            notice.text
        );
    }
}

#[test]
fn without_an_authserv_id_no_header_is_believed() {
    let (_root, main, _gw, request) = start_and_request_by_mail(
        &[],
        &[OPS],
        Via::Smtp,
        "Authentication-Results: mx.solme.example; dmarc=pass header.from=acme.example\r\n",
    );
    assert_eq!(request["sender_auth"], "not checked", "{request}");
    assert!(
        request["sender_auth_detail"]
            .as_str()
            .is_some_and(|d| d.contains("--authserv-id")),
        "{request}"
    );
    let (status, body) = approve(&main, request["id"].as_str().unwrap(), json!({}));
    assert_eq!(status, 400, "{body}");
}

/// The gateway's own SMTP receiver is the receiving host: a header naming the
/// authserv-id there was written by the sender, in whatever spelling and number.
#[test]
fn the_own_smtp_receiver_believes_no_header_naming_the_authserv_id() {
    let (_root, main, _gw, request) = start_and_request_by_mail(
        &["--authserv-id", MX],
        &[OPS],
        Via::Smtp,
        "Authentication-Results: mx.solme.example; dmarc=pass header.from=acme.example\r\n\
         authentication-results: MX.Solme.Example;\r\n\tspf=pass smtp.mailfrom=ops@acme.example;\r\n\
         \tdkim=pass header.d=acme.example; dmarc=pass\r\n",
    );
    assert_eq!(request["sender_auth"], "not checked", "{request}");
    assert_eq!(
        request["sender_auth_detail"],
        "received by the mail gateway's own SMTP receiver, which checks no sender and \
         believes no Authentication-Results header (2 headers naming mx.solme.example came \
         with the mail and were ignored)",
        "{request}"
    );
    let (status, body) = approve(&main, request["id"].as_str().unwrap(), json!({}));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("OVERRIDE_REQUIRED")),
        "{body}"
    );
}
