//! The report log and `local-server report`.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use crate::helpers::*;
use shared_proto::clock::CLOCK_OFFSET_ENV;

async fn check_out_as(http: &awc::Client, local: &Local, user: &str) -> (u16, Value) {
    let body = json!({"feature": "cad", "client": "c", "user": user, "host": "ws"});
    call(http, "POST", &local.url("/api/v1/leases"), Some(body), None).await
}

#[actix_rt::test]
async fn the_report_shows_peak_seat_hours_refusals_and_busiest_users() -> TestResult {
    let hour_leases = ["--lease-seconds", "3600"];
    let mut local = Local::serving(vec![license("cad", 2)], &hour_leases);
    let http = client();
    let start = Utc::now();
    let (status, _alice) = check_out_as(&http, &local, "alice").await;
    assert_eq!(status, 201);
    let (status, bob) = check_out_as(&http, &local, "bob").await;
    assert_eq!(status, 201);
    let (status, _) = check_out_as(&http, &local, "carol").await;
    assert_eq!(status, 409);
    let lease = bob["lease_id"].as_str().unwrap();
    let (status, _) = check_in(&http, &local, lease).await;
    assert_eq!(status, 204);

    // Two hours later alice's lease ran out (no heartbeats) while no server ran: its
    // expiry is recorded at its time when the server comes back.
    local.stop();
    let later = [(CLOCK_OFFSET_ENV, "2h")];
    local.serve(&hour_leases, &later);
    assert_eq!(in_use(&http, &local, "cad").await, 0);
    let from = (start - chrono::Duration::minutes(1)).to_rfc3339();
    // The expiry's report row is written beside the answers, not before them.
    test_harness::wait_until(
        "the expiry in the report log",
        Duration::from_secs(10),
        || {
            let out = local.cli_env(&["report", "--from", &from, "--json"], &later);
            let report: Value = serde_json::from_slice(&out.stdout).ok()?;
            // Until then alice's lease counts as open up to now (two hours).
            let hours = report["features"][0]["seat_hours"].as_f64()?;
            (hours < 1.5).then_some(())
        },
    )?;
    local.stop();

    let out = local.cli_env(&["report", "--from", &from, "--json"], &later);
    assert_success(&out);
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let cad = &report["features"][0];
    assert_eq!(cad["feature"], "cad", "{report}");
    assert_eq!(cad["peak_in_use"], 2);
    let hours = cad["seat_hours"].as_f64().unwrap();
    assert!(
        (0.98..=1.05).contains(&hours),
        "alice's hour and bob's moment: {hours}"
    );
    assert_eq!(cad["refusals"]["NO_SEATS"], 1);
    assert_eq!(cad["busiest_users"][0]["user"], "alice");
    assert_eq!(cad["check_outs"], 2);

    let out = local.cli_env(&["report", "--from", &from], &later);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("peak in use:   2") && text.contains("NO_SEATS 1"),
        "{text}"
    );
    let out = local.cli_env(&["report", "--from", &from, "--csv"], &later);
    assert_success(&out);
    assert!(
        stdout(&out).lines().nth(1).unwrap().starts_with("cad,2,"),
        "{}",
        stdout(&out)
    );

    let out = local.cli(&["report", "--from", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "a bad date is a usage error");
    Ok(())
}
