//! The client API and the lease engine, with license files made by the test.

use chrono::{Duration, Utc};
use serde_json::json;

use crate::helpers::*;
use shared_proto::clock::CLOCK_OFFSET_ENV;

#[actix_rt::test]
async fn never_synchronized_server_issues_nothing() -> TestResult {
    let local = Local::offline_serving();
    let http = client();
    let (status, body) = check_out(&http, &local, "cad").await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "NOT_SYNCHRONIZED");
    let (status, body) = call(&http, "GET", &local.url("/api/v1/status"), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "never_synchronized");
    assert_eq!(body["issuing"], false);
    for private in ["proxy", "customer", "main_server", "last_attempt_error"] {
        assert!(body.get(private).is_none(), "{private} in {body}");
    }
    Ok(())
}

#[actix_rt::test]
async fn the_client_api_refuses_web_pages() -> TestResult {
    let local = Local::serving(vec![license("cad", 2)], &[]);
    let http = client();
    let body = json!({"feature": "cad", "client": "page"});
    for header in [
        ("Origin", "http://rebound.evil.example:7070"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let resp = http
            .post(local.url("/api/v1/leases"))
            .insert_header(header)
            .send_json(&body)
            .await?;
        assert_eq!(resp.status().as_u16(), 401, "{header:?}");
        let resp = http
            .get(local.url("/api/v1/status"))
            .insert_header(header)
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 401, "{header:?}");
    }
    assert_eq!(in_use(&http, &local, "cad").await, 0, "nothing checked out");
    Ok(())
}

#[actix_rt::test]
async fn seats_are_granted_up_to_the_count_and_come_back_on_check_in() -> TestResult {
    let now = Utc::now();
    let expired = shared_proto::License {
        valid_until: Some(now - Duration::days(1)),
        ..license("old", 5)
    };
    let local = Local::serving(vec![license("cad", 2), expired], &[]);
    let http = client();

    let (s1, first) = check_out(&http, &local, "cad").await;
    let (s2, _) = check_out(&http, &local, "cad").await;
    assert_eq!((s1, s2), (201, 201), "{first}");
    assert_eq!(first["feature"], "cad");
    assert!(first["expires_at"].as_str().unwrap() > now.to_rfc3339().as_str());
    let (s3, refused) = check_out(&http, &local, "cad").await;
    assert_eq!(s3, 409);
    assert_eq!(refused["code"], "NO_SEATS");
    assert_eq!(in_use(&http, &local, "cad").await, 2);

    // Heartbeat renews; check-in frees the seat; a returned lease is unknown.
    let id = first["lease_id"].as_str().unwrap().to_owned();
    let (s, renewed) = heartbeat(&http, &local, &id).await;
    assert_eq!(s, 200, "{renewed}");
    let (s, _) = check_in(&http, &local, &id).await;
    assert_eq!(s, 204);
    let (s, again) = check_in(&http, &local, &id).await;
    assert_eq!(s, 404);
    assert_eq!(again["code"], "LEASE_UNKNOWN");
    let (s, again) = heartbeat(&http, &local, &id).await;
    assert_eq!((s, again["code"].as_str()), (404, Some("LEASE_UNKNOWN")));
    let (s, _) = check_out(&http, &local, "cad").await;
    assert_eq!(s, 201, "the returned seat is free again");

    // The license's own checks.
    let (s, body) = check_out(&http, &local, "nope").await;
    assert_eq!((s, body["code"].as_str()), (404, Some("FEATURE_UNKNOWN")));
    let (s, body) = check_out(&http, &local, "old").await;
    assert_eq!((s, body["code"].as_str()), (403, Some("LICENSE_EXPIRED")));
    let (s, listed) = call(&http, "GET", &local.url("/api/v1/features"), None, None).await;
    assert_eq!(s, 200, "{listed}");
    let states: Vec<(&str, &str)> = listed
        .as_array()
        .expect("a list of features")
        .iter()
        .map(|f| (f["feature"].as_str().unwrap(), f["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("cad", "ok"), ("old", "LICENSE_EXPIRED")]);

    // Bad input is refused with MALFORMED.
    let (s, body) = call(
        &http,
        "POST",
        &local.url("/api/v1/leases"),
        Some(json!({"feature": "cad"})),
        None,
    )
    .await;
    assert_eq!((s, body["code"].as_str()), (400, Some("MALFORMED")));
    let long = "x".repeat(10_000);
    let (s, body) = call(
        &http,
        "POST",
        &local.url("/api/v1/leases"),
        Some(json!({"feature": long, "client": "c"})),
        None,
    )
    .await;
    assert_eq!((s, body["code"].as_str()), (400, Some("MALFORMED")));
    Ok(())
}

#[actix_rt::test]
async fn a_lease_without_heartbeat_expires_and_frees_its_seat() -> TestResult {
    let mut local = Local::serving(vec![license("cad", 1)], &["--lease-seconds", "60"]);
    let http = client();
    let lease = checked_out(&http, &local, "cad").await;
    assert_eq!(lease["heartbeat_seconds"], 20);
    let (s, _) = check_out(&http, &local, "cad").await;
    assert_eq!(s, 409);
    let lease_id = lease["lease_id"].as_str().unwrap().to_owned();
    // Two minutes later by the clock (past the 60 s lease, no heartbeat): the seat is
    // back and the lease is gone. No waiting on the wall clock.
    local.serve(&["--lease-seconds", "60"], &[(CLOCK_OFFSET_ENV, "2m")]);
    let (s, body) = heartbeat(&http, &local, &lease_id).await;
    assert_eq!((s, body["code"].as_str()), (404, Some("LEASE_UNKNOWN")));
    assert_eq!(check_out(&http, &local, "cad").await.0, 201);
    Ok(())
}

#[actix_rt::test]
async fn live_leases_survive_a_restart_and_expire_by_the_clock() -> TestResult {
    let mut local = Local::serving(vec![license("cad", 2)], &[]);
    let http = client();
    let lease = checked_out(&http, &local, "cad").await;
    let id = lease["lease_id"].as_str().unwrap().to_owned();

    // A crash (kill) and restart keeps the lease.
    local.serve(&[], &[]);
    assert_eq!(in_use(&http, &local, "cad").await, 1);
    let (s, _) = heartbeat(&http, &local, &id).await;
    assert_eq!(s, 200);
    let status = local.status();
    assert_eq!(status["features"][0]["in_use"], 1);

    // Six minutes later (past the 5-minute lease), the seat is back.
    local.serve(&[], &[(CLOCK_OFFSET_ENV, "6m")]);
    assert_eq!(in_use(&http, &local, "cad").await, 0);
    Ok(())
}

#[actix_rt::test]
async fn after_366_days_no_lease_until_a_new_license_file() -> TestResult {
    let mut local = Local::imported(vec![license("cad", 2)]);
    let now = Utc::now();
    local.serve(&[], &[(CLOCK_OFFSET_ENV, "340d")]);
    let http = client();
    let (s, _) = check_out(&http, &local, "cad").await;
    assert_eq!(s, 201, "day 340 still issues");
    let status = local.status_env(&[(CLOCK_OFFSET_ENV, "340d")]);
    assert_eq!(status["state"], "warning");
    assert!(status["message"].as_str().unwrap().contains("WARNING"));

    local.serve(&[], &[(CLOCK_OFFSET_ENV, "367d")]);
    let (s, body) = check_out(&http, &local, "cad").await;
    assert_eq!((s, body["code"].as_str()), (403, Some("SYNC_EXPIRED")));
    let status = local.status_env(&[(CLOCK_OFFSET_ENV, "367d")]);
    assert_eq!(status["state"], "expired");

    // A newer license file, imported while serve runs, restores service at once.
    let later = now + Duration::days(367);
    let out = local.import_env(
        &local.license_file(2, later, vec![license("cad", 2)]),
        &[(CLOCK_OFFSET_ENV, "367d")],
    );
    assert_success(&out);
    checked_out(&http, &local, "cad").await;
    Ok(())
}

#[actix_rt::test]
async fn a_clock_moved_back_is_refused() -> TestResult {
    let mut local = Local::offline();
    assert_success(&local.import(&local.license_file(
        1,
        Utc::now() - Duration::days(1),
        vec![license("cad", 2)],
    )));
    local.serve(&[], &[]);
    let http = client();
    assert_eq!(check_out(&http, &local, "cad").await.0, 201);
    // Back by less than the tolerance: fine.
    local.serve(&[], &[(CLOCK_OFFSET_ENV, "-5m")]);
    assert_eq!(check_out(&http, &local, "cad").await.0, 201);
    // Back by two hours: refused, and status says why.
    local.serve(&[], &[(CLOCK_OFFSET_ENV, "-2h")]);
    let (s, body) = check_out(&http, &local, "cad").await;
    assert_eq!((s, body["code"].as_str()), (403, Some("CLOCK_ROLLBACK")));
    assert_eq!(
        local.status_env(&[(CLOCK_OFFSET_ENV, "-2h")])["state"],
        "clock_rollback"
    );
    Ok(())
}

#[actix_rt::test]
async fn lowered_seats_renew_only_the_oldest_leases_and_grant_no_new_ones() -> TestResult {
    let local = Local::serving(vec![license("cad", 3)], &[]);
    let now = Utc::now();
    let http = client();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let lease = checked_out(&http, &local, "cad").await;
        ids.push(lease["lease_id"].as_str().unwrap().to_owned());
    }
    let out = local.import(&local.license_file(2, now, vec![license("cad", 1)]));
    assert_success(&out);
    assert!(
        stdout(&out).contains("changed  cad: 3 -> 1 seat ("),
        "{}",
        stdout(&out)
    );
    // Running leases go on (heartbeat works), nothing new beyond the new count.
    let (s, _) = heartbeat(&http, &local, &ids[0]).await;
    assert_eq!(s, 200);
    let (s, _) = check_in(&http, &local, &ids[1]).await;
    assert_eq!(s, 204);
    let (s, body) = check_out(&http, &local, "cad").await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("NO_SEATS")),
        "2 in use > 1 seat"
    );
    // While more are in use than the new count, the newest lease is not renewed (the
    // oldest one is), so the count comes down to the new seats as leases run out.
    let (s, body) = heartbeat(&http, &local, &ids[2]).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("NO_SEATS")),
        "{body}"
    );
    let (s, _) = heartbeat(&http, &local, &ids[0]).await;
    assert_eq!(s, 200, "the oldest lease is within the new count");
    for id in &ids[2..] {
        check_in(&http, &local, id).await;
    }
    check_in(&http, &local, &ids[0]).await;
    assert_eq!(check_out(&http, &local, "cad").await.0, 201);
    assert_eq!(check_out(&http, &local, "cad").await.0, 409);
    Ok(())
}
