//! The customer portal's sign-in links end to end: a contact asks on the portal (the
//! real main server's sync listener), the gateway mails the link once, the link signs
//! in once; without `--portal-url` nothing is mailed and the link stays unclaimed.

use std::path::{Path, PathBuf};

use mail_gateway::own_mail::portal_links::SUBJECT;
use serde_json::Value;
use shared_proto::ServerIdentity;

use crate::helpers::{
    http_get, send_mail, sync_data, sync_mail, wait_for, Gateway, MainServer, Reply,
};

const OPS: &str = "ops@acme.example";

/// The main server's portal, as a browser on its own pages reaches it.
struct Portal {
    /// The CA its certificate comes from (the only one trusted).
    ca: PathBuf,
    /// `https://127.0.0.1:PORT`: the origin of its pages, and `--portal-url`.
    base: String,
}

impl Portal {
    fn of(main: &MainServer) -> Portal {
        Portal {
            ca: main.server.ca_file(),
            base: main.server.sync_urls()[0].clone(),
        }
    }

    /// POSTs a form from the portal's own page; the status after redirects, and the
    /// address the answer came from.
    fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let answer = test_harness::tls::agent(&self.ca)
            .unwrap()
            .post(&format!("{}{path}", self.base))
            .set("Origin", &self.base)
            .send_form(fields);
        match answer {
            Ok(response) => (response.status(), response.get_url().to_owned()),
            Err(err) => {
                let response = err.into_response().expect("an HTTP answer");
                (response.status(), response.get_url().to_owned())
            }
        }
    }

    /// A contact asks for a sign-in link on the portal's page.
    fn ask_for_link(&self, email: &str) {
        let (status, _) = self.post("/portal/sign-in", &[("email", email)]);
        assert_eq!(status, 200, "asking for a link for {email}");
    }
}

/// A main server and a gateway with `extra` flags, the gateway's notices and portal
/// links polled quickly.
fn start(root: &Path, extra: &dyn Fn(&Portal) -> Vec<String>) -> (MainServer, Portal, Gateway) {
    let main = MainServer::start(root);
    let portal = Portal::of(&main);
    let mut flags = vec!["--portal-link-interval-ms".to_owned(), "100".to_owned()];
    flags.extend(extra(&portal));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let gw = Gateway::start(root, &main.url(), &main.token_file(), &flags);
    (main, portal, gw)
}

/// The links the main server still has to have mailed (an operator's claim).
fn unmailed_links(main: &MainServer) -> Vec<Value> {
    let (status, links) = main.admin("POST", "/admin/v1/portal-links/claim", None);
    assert_eq!(status, 200, "{links}");
    links.as_array().cloned().unwrap_or_default()
}

/// Waits until `counter` on the status page has grown by `by` from now: that many
/// rounds went by.
fn wait_rounds(gw: &Gateway, counter: &str, by: u64) {
    let from = gw.status()[counter].as_u64().unwrap();
    gw.wait_status(&format!("{by} more {counter}"), |status| {
        status[counter].as_u64().unwrap() >= from + by
    });
}

fn portal_mails(gw: &Gateway) -> Vec<Reply> {
    gw.replies()
        .into_iter()
        .filter(|reply| reply.subject == SUBJECT)
        .collect()
}

#[test]
fn a_contact_who_asks_gets_one_mail_whose_link_signs_in_once() {
    let root = tempfile::tempdir().unwrap();
    let (main, portal, gw) = start(root.path(), &|portal| {
        vec!["--portal-url".to_owned(), format!("{}/", portal.base)]
    });
    let (_, server_id) = main.customer_with_server(&[OPS]);

    portal.ask_for_link("Ops@Acme.example");
    let mail = wait_for("the sign-in link mail", || portal_mails(&gw).pop());
    assert_eq!(mail.to, OPS);
    assert_eq!(mail.auto_submitted.as_deref(), Some("auto-generated"));
    assert!(mail.in_reply_to.is_empty());
    assert!(mail
        .text
        .contains("If you did not ask for it, ignore this mail"));
    let prefix = format!("{}/portal/link?token=", portal.base);
    let link = mail
        .text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no link to {prefix}… in:\n{}", mail.text))
        .to_owned();
    let token = &link[prefix.len()..];
    assert!(!token.is_empty());

    // The mail is the only place the link is written: the log names its id only.
    assert!(!gw.proc.log().contains(token), "the link is in the log");
    assert!(gw.proc.log().contains("portal_link="));

    // Opening the link changes nothing; using it signs in once.
    let opened = test_harness::tls::agent(&portal.ca)
        .unwrap()
        .get(&link)
        .call()
        .unwrap();
    assert_eq!(opened.status(), 200);
    assert!(opened.into_string().unwrap().contains(token));
    let (status, landed) = portal.post("/portal/link", &[("token", token)]);
    assert_eq!(
        (status, landed),
        (200, format!("{}/portal/", portal.base)),
        "the link signs in and leads to the portal"
    );
    let (status, _) = portal.post("/portal/link", &[("token", token)]);
    assert_eq!(status, 400, "a used link is refused");

    // Exactly once: the link was reported handed, and later polls mail nothing more.
    assert!(unmailed_links(&main).is_empty());
    wait_rounds(&gw, "portal_link_polls", 3);
    gw.wait_idle();
    assert_eq!(portal_mails(&gw).len(), 1);
    let status = gw.status();
    assert_eq!(status["portal_links_staged"], 1, "{status}");
    let metrics = http_get(gw.http, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "solme_portal_links_staged_total 1"),
        "{metrics}"
    );

    // The reply to a mailed sync names the portal as the other way.
    let identity = ServerIdentity::generate().unwrap();
    let message = sync_mail(
        OPS,
        "portal-sync@acme.example",
        &sync_data(&identity, server_id),
    );
    send_mail(gw.smtp(), OPS, &message);
    let reply = wait_for("the license reply", || {
        gw.replies()
            .into_iter()
            .find(|reply| reply.license_file().is_some())
    });
    assert!(
        reply.text.contains(&format!("{}/portal/", portal.base)),
        "{}",
        reply.text
    );
}

#[test]
fn without_a_portal_url_no_link_is_mailed() {
    let root = tempfile::tempdir().unwrap();
    let (main, portal, gw) = start(root.path(), &|_| Vec::new());
    let (_, server_id) = main.customer_with_server(&[OPS]);
    assert!(gw.proc.log().contains("no --portal-url"));

    portal.ask_for_link(OPS);
    // A mailed sync answered and more rounds of the dispatcher gone by: the gateway
    // works, and had it claimed the link, its mail would be out.
    let identity = ServerIdentity::generate().unwrap();
    let message = sync_mail(
        OPS,
        "no-portal@acme.example",
        &sync_data(&identity, server_id),
    );
    send_mail(gw.smtp(), OPS, &message);
    let replies = gw.wait_replies(1);
    wait_rounds(&gw, "scans", 3);
    gw.wait_idle();

    assert_eq!(gw.replies().len(), 1, "only the license reply");
    assert!(replies[0].license_file().is_some());
    assert!(!replies[0].text.contains("/portal/"), "{}", replies[0].text);
    assert_eq!(gw.status()["portal_link_polls"], 0);
    let links = unmailed_links(&main);
    assert_eq!(links.len(), 1, "the link is still unmailed: {links:?}");
    assert_eq!(links[0]["to"], OPS);
}
