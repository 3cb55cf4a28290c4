//! Borrowing a seat for offline use: the borrow token, its limits, and the seat it holds.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use shared_proto::BorrowToken;

use crate::helpers::*;
use shared_proto::clock::CLOCK_OFFSET_ENV;

fn borrowable(feature: &str, seats: u32, hours: u32) -> shared_proto::License {
    shared_proto::License {
        max_borrow_hours: Some(hours),
        ..license(feature, seats)
    }
}

async fn borrow(http: &awc::Client, local: &Local, feature: &str, hours: u32) -> (u16, Value) {
    let body = json!({
        "feature": feature, "client": "laptop app", "user": "alice", "host": "laptop-7",
        "borrow_hours": hours,
    });
    call(http, "POST", &local.url("/api/v1/leases"), Some(body), None).await
}

/// Reads and checks a grant's token with the key the server publishes.
async fn verified_token(http: &awc::Client, local: &Local, grant: &Value) -> BorrowToken {
    let (status, key) = call(http, "GET", &local.url("/api/v1/public-key"), None, None).await;
    assert_eq!(status, 200, "{key}");
    assert_eq!(key["algorithm"], "Ed25519");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key["public_key"].as_str().unwrap())
        .unwrap();
    let raw: [u8; 32] = raw.try_into().unwrap();
    BorrowToken::verify(grant["borrow_token"].as_str().unwrap(), &raw).unwrap()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[actix_rt::test]
async fn a_borrowed_seat_is_signed_capped_held_across_restarts_and_returned_early() -> TestResult {
    let licenses = vec![borrowable("cad", 2, 48), license("cam", 2)];
    let mut local = Local::serving(licenses, &[]);
    let http = client();

    let (status, grant) = borrow(&http, &local, "cad", 24).await;
    assert_eq!(status, 201, "{grant}");
    let token = verified_token(&http, &local, &grant).await;
    assert_eq!(token.feature, "cad");
    assert_eq!(
        (token.user.as_str(), token.host.as_str()),
        ("alice", "laptop-7")
    );
    assert_eq!(token.until, time(&grant["expires_at"]));
    assert_eq!(
        token.lease_id.to_string(),
        grant["lease_id"].as_str().unwrap()
    );
    let hours = (token.until - token.issued_at).num_minutes();
    assert_eq!(hours, 24 * 60);
    assert!(token.valid_at(Utc::now()));

    // Asking for more than the license allows gets the license's limit.
    let (status, long) = borrow(&http, &local, "cad", 1_000).await;
    assert_eq!(status, 201, "{long}");
    let long_token = verified_token(&http, &local, &long).await;
    assert_eq!((long_token.until - long_token.issued_at).num_hours(), 48);
    let (status, body) = borrow(&http, &local, "cad", 1).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("NO_SEATS")),
        "both seats lent"
    );

    let (status, body) = borrow(&http, &local, "cam", 8).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "the license for cam does not allow borrowing; check out without borrow_hours, \
         or ask Solme for a borrowable license"
    );
    // A borrowed seat takes no heartbeats: its grant does not ask for any.
    assert!(grant.get("heartbeat_seconds").is_none(), "{grant}");
    let lease = grant["lease_id"].as_str().unwrap();
    let url = local.url(&format!("/api/v1/leases/{lease}/heartbeat"));
    let (status, body) = call(&http, "POST", &url, None, None).await;
    assert_eq!(status, 400, "a borrow needs no heartbeat: {body}");

    // The seats stay lent across a restart of the server, and `status` lists them.
    local.serve(&[], &[]);
    assert_eq!(in_use(&http, &local, "cad").await, 2);
    let status_now = local.status();
    let lent = status_now["borrowed"].as_array().unwrap();
    assert_eq!(lent.len(), 2, "{status_now}");
    assert_eq!(lent[0]["user"], "alice");
    assert_eq!(lent[0]["lease_id"], lease);

    // An early return frees the seat at once.
    let (status, _) = check_in(&http, &local, lease).await;
    assert_eq!(status, 204);
    assert_eq!(in_use(&http, &local, "cad").await, 1);
    let (status, again) = borrow(&http, &local, "cad", 2).await;
    assert_eq!(status, 201, "{again}");
    Ok(())
}

#[actix_rt::test]
async fn a_borrow_ends_with_the_servers_validity_and_nothing_is_lent_after_it() -> TestResult {
    let mut local = Local::offline();
    // Synchronized 365 days and 12 hours ago: twelve hours of validity are left.
    let issued = Utc::now() - Duration::days(365) - Duration::hours(12);
    let file = local.license_file(1, issued, vec![borrowable("cad", 3, 72)]);
    assert_success(&local.import(&file));
    local.serve(&[], &[]);
    let http = client();
    let valid_until = time(&local.status()["valid_until"]);

    let (status, grant) = borrow(&http, &local, "cad", 72).await;
    assert_eq!(status, 201, "{grant}");
    let token = verified_token(&http, &local, &grant).await;
    assert_eq!(
        token.until, valid_until,
        "the borrow's limit was the validity"
    );

    // A day later the server's synchronization has run out: the borrowed seat is back
    // and nothing is lent or checked out any more.
    let later = [(CLOCK_OFFSET_ENV, "1d")];
    local.serve(&[], &later);
    assert!(!token.valid_at(Utc::now() + Duration::days(1)));
    assert_eq!(in_use(&http, &local, "cad").await, 0);
    let (status, body) = borrow(&http, &local, "cad", 1).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("SYNC_EXPIRED")),
        "{body}"
    );
    assert!(local.status_env(&later)["borrowed"]
        .as_array()
        .unwrap()
        .is_empty());
    Ok(())
}

#[actix_rt::test]
async fn the_borrow_limit_set_on_the_main_server_reaches_the_local_server() -> TestResult {
    let Some(main) = Main::start() else {
        return Ok(());
    };
    let http = client();
    let id = main.new_server("cad", 2);
    // The operator's admin CLI sets the limit.
    let out = std::process::Command::new(test_harness::binary("main-server")?)
        .args(["admin", "--data-dir"])
        .arg(main.dir.path())
        .args([
            "license",
            "add",
            &id.to_string(),
            "--feature",
            "cam",
            "--seats",
            "1",
        ])
        .args(["--max-borrow-hours", "12"])
        .output()?;
    assert_success(&out);
    assert!(stdout(&out).contains("12 h"), "{}", stdout(&out));

    let mut local = Local::for_main(&main, id, &main.sync.clone(), &[]);
    assert_success(&local.cli(&["sync"]));
    local.serve(&[], &[]);
    let (status, grant) = borrow(&http, &local, "cam", 100).await;
    assert_eq!(status, 201, "{grant}");
    let token = verified_token(&http, &local, &grant).await;
    assert_eq!((token.until - token.issued_at).num_hours(), 12);
    let (status, body) = borrow(&http, &local, "cad", 1).await;
    assert_eq!(status, 400, "cad has no borrow limit: {body}");
    Ok(())
}
