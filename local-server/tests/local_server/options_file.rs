//! The options file: checked with line numbers, applied to a running server, and its
//! reservations and limits enforced.

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

fn write(local: &Local, name: &str, text: &str) -> String {
    let path = local.data_dir().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
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
