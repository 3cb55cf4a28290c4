//! Who checks out (user and host), and waiting in the queue for a seat.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

async fn check_out_as(
    http: &awc::Client,
    local: &Local,
    user: &str,
    wait_seconds: u32,
) -> (u16, Value) {
    call(
        http,
        "POST",
        &local.url("/api/v1/leases"),
        Some(json!({
            "feature": "cad", "client": "test-client", "user": user, "host": "ws-1",
            "wait_seconds": wait_seconds,
        })),
        None,
    )
    .await
}

/// Checks out and, while queued (202), polls with the ticket, as a client does.
/// `base` is the server's URL.
async fn check_out_waiting(http: &awc::Client, base: &str, body: Value) -> (u16, Value) {
    let (mut status, mut answer) = call(
        http,
        "POST",
        &format!("{base}/api/v1/leases"),
        Some(body),
        None,
    )
    .await;
    while status == 202 {
        let ticket = answer["ticket"].as_str().unwrap().to_owned();
        assert!(answer["position"].as_u64().unwrap() >= 1, "{answer}");
        let url = format!("{base}/api/v1/queue/{ticket}");
        (status, answer) = call(http, "GET", &url, None, None).await;
    }
    (status, answer)
}

async fn queued(http: &awc::Client, local: &Local) -> u64 {
    feature_count(http, local, "cad", "queued").await
}

async fn wait_until_queued(http: &awc::Client, local: &Local, n: u64) {
    test_harness::wait_until_async("the queue to fill", Duration::from_secs(10), || async {
        (queued(http, local).await == n).then_some(())
    })
    .await
    .unwrap();
}

/// A check-out that waits up to `wait_seconds` for a seat of `cad`.
fn waiting_check_out(user: &str, wait_seconds: u32) -> Value {
    json!({"feature": "cad", "client": "c", "user": user, "wait_seconds": wait_seconds})
}

/// Checks out a seat of `cad` for `user`, asserting it was granted (201); returns the
/// grant.
async fn granted_to(http: &awc::Client, local: &Local, user: &str) -> Value {
    let (status, grant) = check_out_as(http, local, user, 0).await;
    assert_eq!(status, 201, "{grant}");
    grant
}

/// Asserts the answer to a wait that ended without a seat, the client being first in
/// the queue.
fn assert_wait_ended_as_number_1(status: u16, body: &Value) {
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "NO_SEATS");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("number 1 in the queue"), "{message}");
}

/// Checks in the lease of `holder`: the `waiter` of `user` gets the seat as number
/// `position` of the queue. Returns its grant.
async fn hand_over(
    http: &awc::Client,
    local: &Local,
    holder: &Value,
    waiter: actix_rt::task::JoinHandle<(u16, Value)>,
    user: &str,
    position: u64,
) -> Result<Value, actix_rt::task::JoinError> {
    let (status, _) = check_in(http, local, holder["lease_id"].as_str().unwrap()).await;
    assert_eq!(status, 204);
    let (status, grant) = waiter.await?;
    assert_eq!(status, 201, "{grant}");
    assert_eq!(grant["user"], user);
    assert_eq!(grant["queue_position"], position);
    Ok(grant)
}

/// `serve`, with the `extra` arguments, for a license of one `cad` seat, and that seat
/// checked out by alice: the server, a client and alice's grant.
async fn one_seat_taken_by_alice(extra: &[&str]) -> (Local, awc::Client, Value) {
    let local = Local::serving(vec![license("cad", 1)], extra);
    let http = client();
    let grant = granted_to(&http, &local, "alice").await;
    (local, http, grant)
}

#[actix_rt::test]
async fn a_lease_names_its_user_and_host_and_bad_names_are_refused() -> TestResult {
    let (local, http, grant) = one_seat_taken_by_alice(&[]).await;
    assert_eq!(grant["user"], "alice");
    assert_eq!(grant["host"], "ws-1");
    for user in ["", "two words", "bell\u{7}", &"x".repeat(65)] {
        let (status, body) = check_out_as(&http, &local, user, 0).await;
        assert_eq!(status, 400, "{user:?}: {body}");
        assert_eq!(body["code"], "MALFORMED");
    }
    Ok(())
}

#[actix_rt::test]
async fn waiting_clients_get_returned_seats_in_arrival_order() -> TestResult {
    let (local, http, first) = one_seat_taken_by_alice(&[]).await;
    let (status, refused) = check_out_as(&http, &local, "bob", 0).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("NO_SEATS")));

    let (bob, carol) = (http.clone(), http.clone());
    let url = local.url("");
    let bob_url = url.clone();
    let bob = actix_rt::spawn(async move {
        check_out_waiting(&bob, &bob_url, waiting_check_out("bob", 30)).await
    });
    wait_until_queued(&http, &local, 1).await;
    let carol = actix_rt::spawn(async move {
        check_out_waiting(&carol, &url, waiting_check_out("carol", 30)).await
    });
    wait_until_queued(&http, &local, 2).await;

    let bob = hand_over(&http, &local, &first, bob, "bob", 1).await?;
    assert_eq!(queued(&http, &local).await, 1, "carol still waits");
    hand_over(&http, &local, &bob, carol, "carol", 2).await?;
    assert_eq!(in_use(&http, &local, "cad").await, 1);
    Ok(())
}

#[actix_rt::test]
async fn a_wait_ends_with_no_seats_and_the_queue_is_bounded() -> TestResult {
    let (local, http, _alice) = one_seat_taken_by_alice(&["--queue-limit", "1"]).await;

    let (status, body) = check_out_as(&http, &local, "bob", 1).await;
    assert_wait_ended_as_number_1(status, &body);
    assert_eq!(
        queued(&http, &local).await,
        0,
        "a client that gave up left the queue"
    );

    let waiter = http.clone();
    let url = local.url("");
    let waiting = actix_rt::spawn(async move {
        check_out_waiting(&waiter, &url, waiting_check_out("bob", 2)).await
    });
    wait_until_queued(&http, &local, 1).await;
    let (status, body) = check_out_as(&http, &local, "carol", 30).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("NO_SEATS")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("queue is full"),
        "{body}"
    );
    let (status, _) = waiting.await?;
    assert_eq!(status, 409);
    Ok(())
}

/// A wait that the server ended between two polls (here the sweeper, at its end) is
/// answered at the next poll with NO_SEATS, as a wait that ends during a poll is.
#[actix_rt::test]
async fn a_wait_ended_between_polls_is_answered_at_the_next_poll() -> TestResult {
    let (local, http, _alice) = one_seat_taken_by_alice(&["--queue-poll-seconds", "1"]).await;

    let (status, queued_answer) = check_out_as(&http, &local, "bob", 2).await;
    assert_eq!(status, 202, "{queued_answer}");
    let ticket = queued_answer["ticket"].as_str().unwrap();
    // Bob does not poll: the server ends his wait without him.
    wait_until_queued(&http, &local, 0).await;
    let url = local.url(&format!("/api/v1/queue/{ticket}"));
    let (status, body) = call(&http, "GET", &url, None, None).await;
    assert_wait_ended_as_number_1(status, &body);
    // The answer is given once; the ticket is then unknown.
    let (status, body) = call(&http, "GET", &url, None, None).await;
    assert_eq!(status, 404, "{body}");
    Ok(())
}

#[actix_rt::test]
async fn a_waiting_client_that_stops_polling_leaves_the_queue() -> TestResult {
    let (local, http, first) = one_seat_taken_by_alice(&["--queue-poll-seconds", "1"]).await;
    let impatient = awc::Client::builder()
        .timeout(Duration::from_millis(500))
        .finish();
    let gone = impatient
        .post(local.url("/api/v1/leases"))
        .send_json(&waiting_check_out("bob", 60))
        .await;
    assert!(gone.is_err(), "the client gave up before an answer");
    drop(impatient);
    test_harness::wait_until_async(
        "the departed client to leave the queue",
        Duration::from_secs(10),
        || async { (queued(&http, &local).await == 0).then_some(()) },
    )
    .await
    .unwrap();
    let lease = first["lease_id"].as_str().unwrap();
    let (status, _) = check_in(&http, &local, lease).await;
    assert_eq!(status, 204);
    assert_eq!(
        in_use(&http, &local, "cad").await,
        0,
        "no seat went to the departed client"
    );
    Ok(())
}

/// A license of one `cad` seat, borrowable for up to 48 hours (`borrow`) or not.
fn cad_seat(borrow: bool) -> shared_proto::License {
    shared_proto::License {
        max_borrow_hours: borrow.then_some(48),
        ..license("cad", 1)
    }
}

/// Alice holds the only seat of `cad` (borrowable) and bob waits for it with `body`;
/// then a new license file holding `licenses` is imported (by another process, as
/// `sync` and `import-license-file` do) and alice returns her seat at once. Returns
/// bob's answer.
async fn wait_through_a_license_change(
    body: Value,
    licenses: Vec<shared_proto::License>,
) -> (u16, Value) {
    let local = Local::serving(vec![cad_seat(true)], &[]);
    let http = client();
    let alice = granted_to(&http, &local, "alice").await;
    let (bob_http, url) = (http.clone(), local.url(""));
    let bob = actix_rt::spawn(async move { check_out_waiting(&bob_http, &url, body).await });
    wait_until_queued(&http, &local, 1).await;

    assert_success(&local.import(&local.license_file(2, chrono::Utc::now(), licenses)));
    let (status, _) = check_in(&http, &local, alice["lease_id"].as_str().unwrap()).await;
    assert_eq!(status, 204);
    bob.await.unwrap()
}

#[actix_rt::test]
async fn a_waiter_on_a_removed_feature_is_told_at_once_and_gets_no_seat() -> TestResult {
    for borrow_hours in [None, Some(8)] {
        let mut body = waiting_check_out("bob", 30);
        if let Some(hours) = borrow_hours {
            body["borrow_hours"] = json!(hours);
        }
        let (status, answer) = wait_through_a_license_change(body, vec![license("cam", 1)]).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (404, Some("FEATURE_UNKNOWN")),
            "borrow_hours {borrow_hours:?}: {answer}"
        );
    }
    Ok(())
}

#[actix_rt::test]
async fn a_waiting_borrow_is_refused_whole_when_the_license_no_longer_lends() -> TestResult {
    let mut body = waiting_check_out("bob", 30);
    body["borrow_hours"] = json!(8);
    let (status, answer) = wait_through_a_license_change(body, vec![cad_seat(false)]).await;
    assert_eq!(status, 400, "no plain seat in place of a borrow: {answer}");
    assert_eq!(answer["code"], "MALFORMED");
    assert!(answer.get("lease_id").is_none(), "{answer}");
    Ok(())
}
