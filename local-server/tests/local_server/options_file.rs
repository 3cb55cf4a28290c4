//! The options file: checked with line numbers, applied to a running server, and its
//! reservations and limits enforced.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const GOOD: &str = r#"# Two of the three cad seats are kept for the design team.
[groups]
design = ["alice", "bob"]

[[reserve]]
feature = "cad"
seats = 2
group = "design"

[[exclude]]
feature = "cad"
host = "kiosk-1"
"#;

/// Refers to a group that is not defined (line 5).
const BAD: &str = r#"
[[max]]
feature = "cad"
seats = 1
group = "contractors"
"#;

async fn check_out_as(http: &awc::Client, local: &Local, user: &str, host: &str) -> (u16, Value) {
    let body = json!({"feature": "cad", "client": "c", "user": user, "host": host});
    call(http, "POST", &local.url("/api/v1/leases"), Some(body), None).await
}

fn write(local: &Local, name: &str, text: impl AsRef<[u8]>) -> String {
    let path = local.data_dir().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A running server reads an applied file off the request path and keeps the old rules
/// until it is ready: checks out as `user` on `host` (returning any seat it gets) until
/// the new rules refuse them, and returns the refusal.
async fn refused_once_in_force(http: &awc::Client, local: &Local, user: &str, host: &str) -> Value {
    test_harness::wait_until_async(
        "the applied options to be in force",
        Duration::from_secs(20),
        || async {
            let (status, body) = check_out_as(http, local, user, host).await;
            match status {
                403 => Some(body),
                201 => {
                    let lease = body["lease_id"].as_str().unwrap();
                    assert_eq!(check_in(http, local, lease).await.0, 204);
                    None
                }
                _ => panic!("{status} {body}"),
            }
        },
    )
    .await
    .unwrap()
}

#[actix_rt::test]
async fn reserved_seats_go_to_their_group_and_a_bad_file_leaves_the_old_one_in_force() -> TestResult
{
    let mut local = Local::serving(vec![license("cad", 3)], &[]);
    let http = client();

    // Applied while serve runs: no restart.
    let good = write(&local, "good.toml", GOOD);
    let out = local.cli(&["options", "check", &good]);
    assert_success(&out);
    assert!(stdout(&out).contains("2 rules"), "{}", stdout(&out));
    assert_success(&local.cli(&["options", "apply", &good]));
    let copy = std::fs::read_to_string(local.data_dir().join("options.toml"))?;
    assert_eq!(copy, GOOD);
    let kiosk = refused_once_in_force(&http, &local, "alice", "kiosk-1").await;
    assert_eq!(kiosk["code"], "OPTIONS_DENIED");

    let (status, carol) = check_out_as(&http, &local, "carol", "ws-9").await;
    assert_eq!(status, 201, "one seat is not reserved: {carol}");
    let (status, body) = check_out_as(&http, &local, "dave", "ws-8").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "OPTIONS_DENIED");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("reserved for group design") && message.contains("line 5"),
        "{message}"
    );
    let (status, body) = check_out_as(&http, &local, "alice", "kiosk-1").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("OPTIONS_DENIED"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("line 10"),
        "{body}"
    );
    let (status, alice) = check_out_as(&http, &local, "alice", "ws-1").await;
    assert_eq!(status, 201, "{alice}");

    // A file with a mistake is refused with its line and changes nothing.
    let bad = write(&local, "bad.toml", BAD);
    for verb in ["check", "apply"] {
        let out = local.cli(&["options", verb, &bad]);
        assert_eq!(out.status.code(), Some(1), "{verb}");
        let err = stderr(&out);
        assert!(
            err.contains("line 5") && err.contains("contractors"),
            "{verb}: {err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(local.data_dir().join("options.toml"))?,
        GOOD
    );

    // The reservation still holds: the last free seat is design's.
    let (status, body) = check_out_as(&http, &local, "dave", "ws-8").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("OPTIONS_DENIED")),
        "{body}"
    );
    let (status, bob) = check_out_as(&http, &local, "bob", "ws-2").await;
    assert_eq!(status, 201, "{bob}");
    assert_eq!(in_use(&http, &local, "cad").await, 3);

    // And it stays in force across a restart.
    local.serve(&[], &[]);
    let lease = alice["lease_id"].as_str().unwrap();
    let (status, _) = check_in(&http, &local, lease).await;
    assert_eq!(status, 204);
    let (status, body) = check_out_as(&http, &local, "dave", "ws-8").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("OPTIONS_DENIED")),
        "{body}"
    );
    Ok(())
}

/// The largest file allowed, made of `[[max]]` rules on other features, ending with a
/// rule that excludes mallory from cad; and that rule's line.
fn largest_file() -> (String, usize) {
    const MAX: usize = 1024 * 1024;
    let last = "\n[[exclude]]\nfeature = \"cad\"\nuser = \"mallory\"\n";
    let mut text = String::from("[groups]\ndesign = [\"alice\", \"bob\"]\n");
    for n in 0.. {
        let rule = format!(
            "\n[[max]]\nfeature = \"f-{}\"\nseats = 1\nuser = \"u-{n}\"\n",
            n % 100
        );
        if text.len() + rule.len() + last.len() > MAX {
            break;
        }
        text.push_str(&rule);
    }
    let line = text.lines().count() + 2;
    text.push_str(last);
    text.push_str(&"#".repeat(MAX - text.len()));
    assert_eq!(text.len(), MAX);
    (text, line)
}

#[actix_rt::test]
async fn the_largest_file_is_read_in_linear_time_and_no_check_out_waits_for_it() -> TestResult {
    let local = Local::serving(vec![license("cad", 5)], &[]);
    let http = client();
    let (text, line) = largest_file();
    let big = write(&local, "big.toml", &text);
    let out = local.cli(&["options", "check", &big]);
    assert_success(&out);
    assert!(stdout(&out).contains("rules"), "{}", stdout(&out));
    assert_success(&local.cli(&["options", "apply", &big]));

    // Read off the request path: until it is in force, the old (no) rules hold and
    // check-outs go on; then its last rule refuses mallory, naming its line.
    let refusal = refused_once_in_force(&http, &local, "mallory", "ws-1").await;
    assert_eq!(refusal["code"], "OPTIONS_DENIED");
    let message = refusal["message"].as_str().unwrap();
    assert!(message.contains(&format!("line {line}")), "{message}");
    let (status, body) = check_out_as(&http, &local, "alice", "ws-2").await;
    assert_eq!(status, 201, "{body}");
    Ok(())
}

#[actix_rt::test]
async fn what_is_not_a_regular_file_is_refused_without_being_read() -> TestResult {
    let local = Local::offline();
    let dir = local.data_dir().to_str().unwrap().to_owned();
    let fifo = local.data_dir().join("options.fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    assert!(made.success());
    // /dev/zero never ends, a pipe with no writer would wait for one forever.
    for path in ["/dev/zero", dir.as_str(), fifo.to_str().unwrap()] {
        for verb in ["check", "apply"] {
            let out = local.cli(&["options", verb, path]);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{verb} {path}: {}",
                stderr(&out)
            );
            let err = stderr(&out);
            assert!(
                err.contains("is not a regular file"),
                "{verb} {path}: {err}"
            );
        }
    }
    // One byte over the largest size is refused as too large.
    let big = write(&local, "big.toml", "#".repeat(1024 * 1024 + 1));
    let out = local.cli(&["options", "check", &big]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("larger than 1048576 bytes"),
        "{}",
        stderr(&out)
    );
    assert!(!local.data_dir().join("options.toml").exists());
    Ok(())
}

#[actix_rt::test]
async fn each_mistake_is_reported_at_its_own_line() -> TestResult {
    let local = Local::offline();
    let cases: [(&[u8], usize, &str); 5] = [
        // A nested table header where a group's member list belongs.
        (b"[groups]\ndesign = [\"alice\"]\n\n\n[groups.kiosks]\nhost = \"k\"\n", 5, "expected a sequence"),
        // A dotted key in a rule.
        (b"[groups]\ndesign = [\"alice\"]\n\n[[max]]\nfeature = \"cad\"\n\nseats.max = 1\nuser = \"carol\"\n", 7, "u32"),
        // A second name in a rule: the mistake is the later one.
        (b"\n\n[[include]]\nfeature = \"cad\"\nuser = \"alice\"\n\nhost = \"ws-1\"\n", 7, "exactly one"),
        // Invalid UTF-8 on line 3 (a Latin-1 \xe9).
        (b"[groups]\ndesign = [\"alice\"]\nlatin = [\"Ren\xe9\"]\n", 3, "UTF-8"),
        (b"\xff\n", 1, "UTF-8"),
    ];
    for (n, (text, line, words)) in cases.into_iter().enumerate() {
        let path = write(&local, &format!("case-{n}.toml"), text);
        let out = local.cli(&["options", "check", &path]);
        assert_eq!(out.status.code(), Some(1), "case {n}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!(", line {line}: ")) && err.contains(words),
            "case {n}: {err}"
        );
    }
    Ok(())
}
