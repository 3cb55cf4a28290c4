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
