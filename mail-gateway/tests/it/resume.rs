//! A sync whose first try may have reached the main server (no answer: a
//! reset, a 5xx) is a resumption: once the main server answers it the
//! customer gets the license file, and an "already used" refusal of it is
//! explained as our interruption, not as the customer's re-send. A scripted
//! main server plays the answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use shared_proto::ServerIdentity;
use uuid::Uuid;

use crate::helpers::{dummy_token, send_mail, sync_data, sync_mail, Gateway};

const OPS: &str = "ops@acme.example";

/// What the scripted main server does with one `POST /admin/v1/mail/sync`.
#[derive(Clone)]
enum Answer {
    /// Closes the connection without answering (a reset, a crash).
    Hangup,
    Status(u16, String),
}

/// Serves the script in order (the last answer repeats) on a listener bound
/// here and handed to its thread; every other path answers `[]`.
fn scripted_main_server(script: Vec<Answer>) -> (String, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let calls = Arc::new(Mutex::new(0usize));
    let counted = calls.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = if request_line.contains("/admin/v1/mail/sync") {
                let mut calls = counted.lock().unwrap();
                let answer = script[(*calls).min(script.len() - 1)].clone();
                *calls += 1;
                answer
            } else {
                Answer::Status(200, "[]".into())
            };
            match answer {
                Answer::Hangup => drop(stream),
                Answer::Status(status, body) => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            }
        }
    });
    (url, calls)
}

fn replayed() -> Answer {
    Answer::Status(
        409,
        r#"{"code": "REPLAYED_REQUEST", "message": "this sync request was already used"}"#.into(),
    )
}

fn license(server_id: Uuid) -> Answer {
    Answer::Status(
        200,
        serde_json::json!({
            "license_file": "-----BEGIN SOLME LICENSE FILE-----\nx\n-----END SOLME LICENSE FILE-----\n",
            "server_id": server_id,
            "valid_until": "2027-01-01T00:00:00Z",
            "licenses": [],
        })
        .to_string(),
    )
}

/// Sends one sync mail through a gateway in front of `script`; returns
/// the reply and how often the main server was asked.
fn sync_against(script: Vec<Answer>, server_id: Uuid) -> (crate::helpers::Reply, usize) {
    let root = tempfile::tempdir().unwrap();
    let (url, calls) = scripted_main_server(script);
    let gw = Gateway::start(root.path(), &url, &dummy_token(root.path()), &[]);
    let identity = ServerIdentity::generate().unwrap();
    let mail = sync_mail(OPS, "resume@acme.example", &sync_data(&identity, server_id));
    send_mail(gw.smtp(), OPS, &mail);
    let reply = gw.wait_replies(1).remove(0);
    let calls = *calls.lock().unwrap();
    (reply, calls)
}

#[test]
fn a_sync_retried_after_a_lost_answer_gets_its_license_file() {
    let server_id = Uuid::new_v4();
    let script = vec![
        Answer::Hangup,
        Answer::Status(500, "oops".into()),
        license(server_id),
    ];
    let (reply, calls) = sync_against(script, server_id);
    assert_eq!(calls, 3);
    assert_eq!(reply.attachments.len(), 1, "{}", reply.text);
    assert_eq!(reply.attachments[0].0, format!("license-{server_id}.lic"));
}

#[test]
fn a_replay_refusal_after_a_lost_answer_is_our_interruption() {
    let server_id = Uuid::new_v4();
    let (reply, calls) = sync_against(vec![Answer::Hangup, replayed()], server_id);
    assert_eq!(calls, 2);
    assert!(
        reply.text.contains("interruption on our side"),
        "{}",
        reply.text
    );
}

#[test]
fn a_replay_refusal_at_the_first_try_is_the_customers_re_send() {
    let server_id = Uuid::new_v4();
    let (reply, calls) = sync_against(vec![replayed()], server_id);
    assert_eq!(calls, 1);
    assert!(reply.text.contains("was already used"), "{}", reply.text);
    assert!(!reply.text.contains("interruption"), "{}", reply.text);
}
