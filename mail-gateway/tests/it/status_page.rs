//! The gateway's status page as an operator reads it: a page with the security headers
//! of the other pages and its own style sheet, the counters with what they count, the
//! recent mails with their state; the JSON still there for programs (`/status.json`, or
//! `/` asked with `Accept: application/json`). And `serve`'s failure said once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use serde_json::Value;

use crate::helpers::{
    closed_port_url, dummy_token, gateway_bin, send_mail, text_mail, wait_for, Gateway,
};

/// `GET path` over HTTP/1.0 (no chunking): the head (lower-cased) and the body.
fn get(addr: SocketAddr, path: &str, accept: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn the_status_page_is_a_page_with_explained_counters_and_recent_mails() {
    let root = tempfile::tempdir().unwrap();
    let token = dummy_token(root.path());
    let gw = Gateway::start(root.path(), &closed_port_url(), &token, &[]);
    // Mail without sync data: answered without a main server.
    let from = "ops@acme.example";
    send_mail(
        gw.smtp(),
        from,
        &text_mail(from, "page-1@acme.example", "Hi", "", "no data here"),
    );
    gw.wait_replies(1);
    wait_for("the reply counted", || {
        let (_, body) = get(gw.http, "/status.json", "*/*");
        let status: Value = serde_json::from_str(&body).unwrap();
        (status["answered"] == 1 && status["recent"][0]["state"] == "answered").then_some(())
    });

    let (head, page) = get(gw.http, "/", "text/html,application/xhtml+xml,*/*;q=0.8");
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    for (name, value) in shared_proto::page_headers::PAGE_HEADERS {
        let line = format!(
            "{}: {}",
            name.to_ascii_lowercase(),
            value.to_ascii_lowercase()
        );
        assert!(head.contains(&line), "{name} missing: {head}");
    }
    for words in [
        "<link rel=\"stylesheet\" href=\"/assets/status.css\">",
        "Received",
        "Mails to the licensing address taken in since the gateway started",
        "Answered",
        "Replies handed to the mail server since start",
        "Left unanswered",
        "Recent mails",
        from,
        "no sync data found in the mail",
        "<td>answered</td>",
    ] {
        assert!(page.contains(words), "the page lacks {words:?}: {page}");
    }
    assert!(!page.contains("<script"), "no script");
    assert!(
        !page.contains("style="),
        "no inline style (the policy forbids it)"
    );

    let (head, css) = get(gw.http, "/assets/status.css", "text/css");
    assert!(head.contains("content-type: text/css"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(css.contains(".tile"), "{css}");

    // Programs still get JSON: by its own path, or by asking for it.
    for (path, accept) in [
        ("/status.json", "*/*"),
        ("/status", "*/*"),
        ("/", "application/json"),
    ] {
        let (head, body) = get(gw.http, path, accept);
        assert!(
            head.contains("content-type: application/json"),
            "{path}: {head}"
        );
        let status: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["answered"], 1, "{path}: {status}");
        assert_eq!(status["recent"][0]["address"], from, "{status}");
        assert_eq!(status["recent"][0]["reply"], "no-sync-data", "{status}");
    }
}

#[test]
fn a_serve_that_cannot_start_says_why_once() {
    let root = tempfile::tempdir().unwrap();
    let token = dummy_token(root.path());
    // The data directory is a file: nothing can be kept there.
    let not_a_dir = root.path().join("not-a-directory");
    std::fs::write(&not_a_dir, "x").unwrap();
    let out = Command::new(gateway_bin())
        .args([
            "serve",
            "--data-dir",
            not_a_dir.to_str().unwrap(),
            "--address",
            "licensing@solme.example",
            "--main-server",
            &closed_port_url(),
            "--token-file",
            token.to_str().unwrap(),
            "--smtp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--outbox",
            root.path().join("outbox").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(said.len(), 1, "the failure is said once: {stderr}");
    assert!(said[0].contains("not-a-directory"), "{stderr}");
    assert!(
        !stderr.contains("os error"),
        "no programmer's error number: {stderr}"
    );
}
