//! Who holds what: `local-server leases` (with or without `serve`), the manager API's
//! list, and the page's table; and taking a seat back.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use test_harness::browser::{chromium_present, rendered_dom};

use crate::helpers::*;

fn borrowable(feature: &str, seats: u32, hours: u32) -> shared_proto::License {
    shared_proto::License {
        max_borrow_hours: Some(hours),
        ..license(feature, seats)
    }
}

/// Checks out `feature` as `user` on `host` with the program `client`; asserts a grant.
async fn hold(
    http: &awc::Client,
    local: &Local,
    feature: &str,
    user: &str,
    host: &str,
    borrow_hours: Option<u32>,
) -> Value {
    let mut body = json!({"feature": feature, "client": "modeler 7.2", "user": user, "host": host});
    if let Some(hours) = borrow_hours {
        body["borrow_hours"] = json!(hours);
    }
    let (status, grant) = call(http, "POST", &local.url("/api/v1/leases"), Some(body), None).await;
    assert_eq!(status, 201, "{grant}");
    grant
}

fn leases_json(local: &Local, extra: &[&str]) -> Value {
    let mut args = vec!["leases", "--json"];
    args.extend_from_slice(extra);
    let out = local.cli(&args);
    assert_success(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// A time as stored (milliseconds).
fn ms(v: &Value) -> i64 {
    time(v).timestamp_millis()
}

#[actix_rt::test]
async fn every_held_seat_is_listed_with_who_where_what_since_and_until() -> TestResult {
    let mut local = Local::serving(vec![borrowable("cad", 3, 48), license("cam", 2)], &[]);
    let http = client();
    let plain = hold(&http, &local, "cad", "alice", "ws-1", None).await;
    let lent = hold(&http, &local, "cad", "bob", "laptop-7", Some(24)).await;
    let cam = hold(&http, &local, "cam", "carol", "ws-3", None).await;

    let list = leases_json(&local, &[]);
    let leases = list["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 3, "{list}");
    let by_id = |grant: &Value| {
        leases
            .iter()
            .find(|l| l["lease_id"] == grant["lease_id"])
            .unwrap_or_else(|| panic!("{grant} not listed in {list}"))
            .clone()
    };
    let a = by_id(&plain);
    assert_eq!(
        (
            &a["feature"],
            &a["user"],
            &a["host"],
            &a["client"],
            &a["borrowed"]
        ),
        (
            &json!("cad"),
            &json!("alice"),
            &json!("ws-1"),
            &json!("modeler 7.2"),
            &json!(false)
        )
    );
    assert_eq!(ms(&a["expires_at"]), ms(&plain["expires_at"]));
    assert!(time(&a["since"]) <= Utc::now() && time(&a["since"]) < time(&a["expires_at"]));
    let b = by_id(&lent);
    assert_eq!(b["borrowed"], true);
    assert_eq!(
        ms(&b["expires_at"]),
        ms(&lent["expires_at"]),
        "its return date"
    );
    assert_eq!(by_id(&cam)["user"], "carol");

    // One feature only; as text for people.
    let only_cam = leases_json(&local, &["--feature", "cam"]);
    assert_eq!(only_cam["leases"].as_array().map(Vec::len), Some(1));
    let text = stdout(&local.cli(&["leases"]));
    for words in [
        "FEATURE",
        "alice",
        "laptop-7",
        "modeler 7.2",
        "borrowed, back by",
        "3 seats held, 1 of them borrowed.",
    ] {
        assert!(text.contains(words), "{words:?} in:\n{text}");
    }
    let none = local.cli(&["leases", "--feature", "nothing"]);
    assert_stdout(&none, 0, "No seat of nothing is held right now.");

    // The manager API lists the same.
    let (status, api) = manager_call(&http, &local, "GET", "leases", None).await;
    assert_eq!(status, 200, "{api}");
    assert_eq!(api["leases"].as_array().map(Vec::len), Some(3));

    // The list reads the database: the same without `serve`.
    local.stop();
    let stopped = leases_json(&local, &[]);
    assert_eq!(
        stopped["leases"].as_array().map(Vec::len),
        Some(3),
        "{stopped}"
    );
    Ok(())
}

#[test]
fn chromium_shows_who_holds_what() {
    if !chromium_present() {
        return;
    }
    let local = Local::serving(vec![borrowable("cad", 3, 48)], &[]);
    actix_rt::System::new().block_on(async {
        let http = client();
        hold(&http, &local, "cad", "alice", "ws-1", None).await;
        hold(&http, &local, "cad", "<i>bob</i>", "laptop-7", Some(24)).await;
    });
    let scratch = tempfile::tempdir().unwrap();
    let dom = rendered_dom(&local.url("/"), scratch.path()).unwrap();
    let table = dom
        .split("id=\"leases\"")
        .nth(1)
        .and_then(|rest| rest.split("</tbody>").next())
        .unwrap_or_else(|| panic!("no leases table in {dom}"));
    assert!(table.contains(">alice<"), "{table}");
    assert!(table.contains(">ws-1<"), "{table}");
    assert!(table.contains(">modeler 7.2<"), "{table}");
    assert!(table.contains("borrowed, back by"), "{table}");
    // A user name is text, not markup.
    assert!(table.contains("&lt;i&gt;bob&lt;/i&gt;"), "{table}");
}

/// The report log's take-back entries: (lease, actor, reason, in_use).
fn take_back_events(local: &Local) -> Vec<(String, String, Option<String>, i32)> {
    use diesel::prelude::*;
    use local_server::schema::report_log::dsl as log;
    let mut conn = local_server::db::connect(local.data_dir()).unwrap();
    log::report_log
        .filter(log::event.eq("take_back"))
        .select((
            log::lease_id.assume_not_null(),
            log::actor.assume_not_null(),
            log::reason,
            log::in_use,
        ))
        .load(&mut conn)
        .unwrap()
}

/// Waits (with a deadline) until `check` holds.
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[actix_rt::test]
async fn a_seat_taken_back_from_the_command_line_goes_to_the_queue_and_its_holder_is_told(
) -> TestResult {
    let local = Local::serving(vec![license("cad", 1)], &[]);
    let http = client();
    let held = hold(&http, &local, "cad", "alice", "ws-1", None).await;
    let lease = held["lease_id"].as_str().unwrap().to_owned();

    // Someone waits for the only seat.
    let waiter = {
        let http = http.clone();
        let url = local.url("/api/v1/leases");
        actix_rt::spawn(async move {
            let body = json!({"feature": "cad", "client": "cam", "user": "bob", "host": "ws-2", "wait_seconds": 30});
            call(&http, "POST", &url, Some(body), None).await
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while feature_count(&http, &local, "cad", "queued").await != 1 {
        assert!(std::time::Instant::now() < deadline, "bob never queued");
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let out = local.cli_env(
        &[
            "take-back",
            &lease,
            "--reason",
            "left running over the weekend",
        ],
        &[("USER", "root-admin")],
    );
    assert_stdout(&out, 0, "Took back the seat of cad held by alice@ws-1");
    assert!(
        stdout(&out).contains("running server frees it"),
        "{}",
        stdout(&out)
    );

    // The running server gave the seat to the waiter.
    let (status, grant) = waiter.await?;
    assert_eq!(status, 201, "{grant}");
    assert_eq!(grant["user"], "bob");

    // Its holder is told what happened, at its heartbeat and at its return.
    let (status, body) = heartbeat(&http, &local, &lease).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("LEASE_UNKNOWN")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(
            "was taken back by the license server's administrator (root-admin (command line))"
        ),
        "{message}"
    );
    assert!(
        message.contains("left running over the weekend"),
        "{message}"
    );
    let (status, body) = check_in(&http, &local, &lease).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("LEASE_UNKNOWN")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("taken back"),
        "{body}"
    );

    // Recorded once, with who and why, by the server that freed the seat.
    wait_for("the take-back in the report log", || {
        !take_back_events(&local).is_empty()
    });
    let events = take_back_events(&local);
    assert_eq!(
        events,
        vec![(
            lease.clone(),
            "root-admin (command line)".to_owned(),
            Some("left running over the weekend".to_owned()),
            0
        )]
    );
    // Not twice.
    let again = local.cli(&["take-back", &lease]);
    assert_stderr(&again, 1, "refused (LEASE_UNKNOWN)");
    assert!(
        stderr(&again).contains("already taken back"),
        "{}",
        stderr(&again)
    );
    let unknown = local.cli(&["take-back", "not-a-lease"]);
    assert_stderr(&unknown, 1, "refused (LEASE_UNKNOWN)");
    Ok(())
}

#[actix_rt::test]
async fn a_borrowed_seat_taken_back_while_no_server_runs_is_refused_when_its_token_comes_back(
) -> TestResult {
    let mut local = Local::serving(vec![borrowable("cad", 2, 48)], &[]);
    let http = client();
    let lent = hold(&http, &local, "cad", "bob", "laptop-7", Some(24)).await;
    let lease = lent["lease_id"].as_str().unwrap().to_owned();
    local.stop();

    let out = local.cli(&["take-back", &lease, "--json"]);
    assert_success(&out);
    let done: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        (done["borrowed"].as_bool(), done["serve_running"].as_bool()),
        (Some(true), Some(false)),
        "{done}"
    );
    assert_eq!(
        leases_json(&local, &[])["leases"].as_array().map(Vec::len),
        Some(0)
    );
    assert_eq!(
        take_back_events(&local).len(),
        1,
        "the command recorded it itself"
    );

    // The server started afterwards neither holds the seat nor records it again, and
    // the borrowed seat's return (its token presented again) is refused.
    local.serve(&[], &[]);
    assert_eq!(in_use(&http, &local, "cad").await, 0);
    let (status, body) = check_in(&http, &local, &lease).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("LEASE_UNKNOWN")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("borrow token is no longer honoured"),
        "{body}"
    );
    assert_eq!(take_back_events(&local).len(), 1);
    Ok(())
}

#[actix_rt::test]
async fn the_manager_api_takes_a_seat_back_and_answers_with_it_free() -> TestResult {
    let local = Local::serving(vec![license("cad", 1)], &[]);
    let http = client();
    let held = hold(&http, &local, "cad", "alice", "ws-1", None).await;
    let lease = held["lease_id"].as_str().unwrap();
    let path = format!("leases/{lease}/take-back");
    let (status, done) = manager_call(
        &http,
        &local,
        "POST",
        &path,
        Some(json!({"reason": "audit"})),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["user"], "alice");
    // Free in the answer's wake, without waiting for a sweep.
    let (status, _) = check_out(&http, &local, "cad").await;
    assert_eq!(status, 201);
    let (status, body) = manager_call(&http, &local, "POST", &path, Some(json!({}))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("LEASE_UNKNOWN")),
        "{body}"
    );
    wait_for("the event", || !take_back_events(&local).is_empty());
    assert_eq!(take_back_events(&local)[0].1, "the manager page");
    Ok(())
}

#[actix_rt::test]
async fn chromium_takes_a_seat_back_only_after_the_confirmation() -> TestResult {
    if !chromium_present() {
        return Ok(());
    }
    let local = Local::serving(vec![license("cad", 2)], &[]);
    let http = client();
    let held = hold(&http, &local, "cad", "alice", "ws-1", None).await;
    let lease = held["lease_id"].as_str().unwrap().to_owned();
    let mut page = crate::devtools::Browser::open(&local.url("/"), 1280, 900).await;
    let button = format!("document.querySelector('button.take-back[data-lease=\"{lease}\"]')");
    page.wait_for(&format!("!!{button}")).await;

    // The first click only asks; Cancel leaves the seat held.
    page.eval(&format!("{button}.click(); true")).await;
    page.wait_for("!document.getElementById('take-back-confirm').hidden")
        .await;
    let question = page
        .eval("document.getElementById('take-back-question').textContent")
        .await;
    assert_eq!(question, "Take back the seat of cad held by alice on ws-1?");
    page.eval("document.getElementById('take-back-no').click(); true")
        .await;
    assert_eq!(in_use(&http, &local, "cad").await, 1);

    // Confirmed, with a reason: the seat is free and the event names the page.
    page.eval(&format!("{button}.click(); true")).await;
    page.wait_for("!document.getElementById('take-back-confirm').hidden")
        .await;
    page.eval("document.getElementById('take-back-reason').value = 'nobody at ws-1'; document.getElementById('take-back-yes').click(); true").await;
    page.wait_for("document.getElementById('take-back-result').textContent.includes('Took back the seat of cad held by alice on ws-1')").await;
    page.wait_for("document.getElementById('no-leases').hidden === false")
        .await;
    assert_eq!(in_use(&http, &local, "cad").await, 0);
    wait_for("the event", || !take_back_events(&local).is_empty());
    let events = take_back_events(&local);
    assert_eq!(events[0].1, "the manager page");
    assert_eq!(events[0].2.as_deref(), Some("nobody at ws-1"));
    Ok(())
}
