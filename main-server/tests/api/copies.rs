//! Copies of one installation: two histories for one key pair mark the id a possible
//! copy (audited with the evidence, shown, counted); a restored backup, a lost reply
//! and a late mail do not; the customer's refuse policy; an operator's dismissal.

use awc::http::{Method, StatusCode};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{on_both_backends, Local, TestApp};

/// Plays one installation (or a copy of one: same key pair, its own counter and file).
struct Branch {
    counter: u64,
    held: Option<i64>,
}

/// Sends one direct sync from `branch`, made at `at`; on success the branch holds the
/// issued file and the answer's sequence is returned.
async fn sync(app: &TestApp, local: &Local, branch: &mut Branch, at: DateTime<Utc>) -> i64 {
    branch.counter += 1;
    let answer = app
        .post_sync(&local.sync_data_as(branch.counter, branch.held, at))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let sequence = local.open(app, &answer.body).sequence;
    branch.held = Some(sequence);
    sequence
}

/// The moments requests are made at, one a second from ten minutes ago (inside the
/// direct channel's window).
struct Moments(DateTime<Utc>);

impl Moments {
    fn next(&mut self) -> DateTime<Utc> {
        let at = self.0;
        self.0 += Duration::seconds(1);
        at
    }
}

fn moments() -> Moments {
    Moments(Utc::now() - Duration::minutes(10))
}

async fn marked_since(app: &TestApp, server_id: Uuid) -> Value {
    let (status, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    shown["possible_copy_since"].clone()
}

/// A synced installation, copied: the two sync alternately.
async fn alternating_copies_are_marked_once(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let mut at = moments();
    let mut original = Branch {
        counter: 0,
        held: None,
    };
    sync(app, &local, &mut original, at.next()).await;
    sync(app, &local, &mut original, at.next()).await;
    // The data directory is copied here.
    let mut copy = Branch {
        counter: original.counter,
        held: original.held,
    };
    sync(app, &local, &mut original, at.next()).await;
    // The copy's first sync goes back once: alone, that is a restored backup.
    sync(app, &local, &mut copy, at.next()).await;
    assert!(marked_since(app, server_id).await.is_null());
    sync(app, &local, &mut original, at.next()).await;
    // Back a second time: two installations.
    sync(app, &local, &mut copy, at.next()).await;
    assert!(marked_since(app, server_id).await.is_string());
    for _ in 0..3 {
        sync(app, &local, &mut original, at.next()).await;
        sync(app, &local, &mut copy, at.next()).await;
    }
    assert_eq!(
        app.audit_count("server.possible_copy", "").await,
        1,
        "marked once"
    );
    let (_, audit) = app.get("/admin/v1/audit?limit=100").await;
    let entry = audit
        .as_array()
        .expect("present")
        .iter()
        .find(|e| e["action"] == "server.possible_copy")
        .expect("present");
    assert_eq!(entry["server_id"], server_id.to_string());
    let detail = entry["detail"].as_str().expect("present");
    // The evidence: both branches' counters and held files, channels and times.
    for part in [
        "went back 2 times",
        "[counter 3, held sequence 2 (file 000000000000), internet, made ",
        "answered with sequence 4]",
        "[counter 4, held sequence 4",
        &local.identity.fingerprint().to_string(),
    ] {
        assert!(detail.contains(part), "{part:?} not in {detail}");
    }

    // The id's view carries the evidence for the console and the CLI: the newest
    // requests, the ones going back marked, and the mark in words.
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    let copy = &shown["possible_copy"];
    assert_eq!(copy["since"], shown["possible_copy_since"], "{shown}");
    let requests = copy["requests"].as_array().expect("requests");
    assert_eq!(requests.len(), 8, "{copy}");
    let back = requests.iter().filter(|r| r["went_back"] == true).count();
    // Alternating, every second request goes back.
    assert!((3..=4).contains(&back), "{copy}");
    assert!(
        requests.iter().all(|r| r["channel"] == "internet"),
        "{copy}"
    );
    let explanation = copy["explanation"].as_str().expect("words");
    assert!(
        explanation.contains(&format!("went back {back} times among the newest 8")),
        "{explanation}"
    );
    let (_, list) = app.get("/admin/v1/servers").await;
    assert!(
        list[0].get("possible_copy").is_none(),
        "lists leave it out: {list}"
    );

    let (_, _, metrics) = app.get_page("/metrics").await;
    assert!(
        metrics.contains("solme_possible_copies 1"),
        "the gauge: {metrics}"
    );

    // An operator decides: the mark goes, audited; new evidence is needed to mark again.
    let (status, dismissed) = app
        .post(
            &format!("/admin/v1/servers/{server_id}/possible-copy/dismiss"),
            json!({"reason": "the customer deleted the clone"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dismissed}");
    assert!(dismissed["was_marked_since"].is_string());
    assert!(marked_since(app, server_id).await.is_null());
    assert_eq!(
        app.audit_count(
            "server.possible_copy_dismiss",
            "the customer deleted the clone"
        )
        .await,
        1
    );
    sync(app, &local, &mut original, at.next()).await;
    assert!(marked_since(app, server_id).await.is_null());
    let (_, _, metrics) = app.get_page("/metrics").await;
    assert!(metrics.contains("solme_possible_copies 0"), "{metrics}");
}

on_both_backends!(
    alternating_copies_are_marked_once,
    alternating_copies_are_marked_once_on_sqlite,
    alternating_copies_are_marked_once_on_postgres
);

/// A backup restored (its counter and file from before), then normal syncs: one
/// history that went back once, not two installations.
async fn a_restored_backup_is_not_a_copy(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let mut at = moments();
    let mut installation = Branch {
        counter: 0,
        held: None,
    };
    sync(app, &local, &mut installation, at.next()).await;
    sync(app, &local, &mut installation, at.next()).await;
    let backup = Branch {
        counter: installation.counter,
        held: installation.held,
    };
    for _ in 0..4 {
        sync(app, &local, &mut installation, at.next()).await;
    }
    // The disk dies; the backup comes back and carries on alone.
    let mut restored = backup;
    for _ in 0..6 {
        sync(app, &local, &mut restored, at.next()).await;
    }
    assert!(marked_since(app, server_id).await.is_null());
    assert_eq!(app.audit_count("server.possible_copy", "").await, 0);
}

on_both_backends!(
    a_restored_backup_is_not_a_copy,
    a_restored_backup_is_not_a_copy_on_sqlite,
    a_restored_backup_is_not_a_copy_on_postgres
);

/// Replies that never arrived (the same file held again), and a mailed file that
/// arrives after a later direct sync: one installation.
async fn lost_replies_and_late_mail_are_not_a_copy(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let mut at = moments();
    let mut installation = Branch {
        counter: 0,
        held: None,
    };
    sync(app, &local, &mut installation, at.next()).await;
    // Two direct answers lost on the way back: the file held stays the same.
    for _ in 0..2 {
        installation.counter += 1;
        let lost = app
            .post_sync(&local.sync_data_as(installation.counter, installation.held, at.next()))
            .await;
        assert_eq!(lost.status, StatusCode::OK, "{}", lost.body);
    }
    // A mailed request whose reply is never imported, twice.
    for _ in 0..2 {
        installation.counter += 1;
        let text = local.sync_data_as(installation.counter, installation.held, at.next());
        let (status, body) = app.mail_sync("ops@acme.example", &text).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Sync data exported and mailed later, after a direct sync made since.
    installation.counter += 1;
    let late = local.sync_data_as(installation.counter, installation.held, at.next());
    sync(app, &local, &mut installation, at.next()).await;
    sync(app, &local, &mut installation, at.next()).await;
    let (status, body) = app.mail_sync("ops@acme.example", &late).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    sync(app, &local, &mut installation, at.next()).await;
    assert!(marked_since(app, server_id).await.is_null());
    assert_eq!(app.audit_count("server.possible_copy", "").await, 0);
}

on_both_backends!(
    lost_replies_and_late_mail_are_not_a_copy,
    lost_replies_and_late_mail_are_not_a_copy_on_sqlite,
    lost_replies_and_late_mail_are_not_a_copy_on_postgres
);

/// Under the customer's refuse policy, a marked id's syncs are refused with
/// `POSSIBLE_COPY` until an operator dismisses the mark.
async fn refuse_policy_stops_a_marked_id(app: &TestApp) {
    let (customer_id, server_id) = app.register().await;
    let local = Local::new(server_id);
    let (status, set) = app
        .admin(
            Method::PUT,
            &format!("/admin/v1/customers/{customer_id}/copy-policy"),
            Some(json!({"policy": "refuse"})),
            Some(&app.token.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set["policy"], "refuse");
    assert_eq!(app.audit_count("customer.copy_policy", "refuse").await, 1);

    let mut at = moments();
    let mut original = Branch {
        counter: 0,
        held: None,
    };
    sync(app, &local, &mut original, at.next()).await;
    let mut copy = Branch {
        counter: original.counter,
        held: original.held,
    };
    sync(app, &local, &mut original, at.next()).await;
    sync(app, &local, &mut copy, at.next()).await;
    sync(app, &local, &mut original, at.next()).await;
    // The sync that shows the second history is answered and marks the id.
    sync(app, &local, &mut copy, at.next()).await;
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert!(shown["possible_copy_since"].is_string(), "{shown}");
    assert_eq!(shown["copy_policy"], "refuse");

    original.counter += 1;
    let refused = app
        .post_sync(&local.sync_data_as(original.counter, original.held, at.next()))
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.code(), "POSSIBLE_COPY");
    assert!(
        refused.body.contains("licensing@solme.example"),
        "{}",
        refused.body
    );
    let (status, body) = app
        .mail_sync(
            "ops@acme.example",
            &local.sync_data_as(original.counter + 1, original.held, at.next()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "POSSIBLE_COPY");

    let (status, body) = app
        .post(
            &format!("/admin/v1/servers/{server_id}/possible-copy/dismiss"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    original.counter += 1;
    sync(app, &local, &mut original, at.next()).await;
}

on_both_backends!(
    refuse_policy_stops_a_marked_id,
    refuse_policy_stops_a_marked_id_on_sqlite,
    refuse_policy_stops_a_marked_id_on_postgres
);

#[actix_rt::test]
async fn dismissing_an_unknown_or_unmarked_id() {
    let app = crate::helpers::spawn_app().await;
    let (status, body) = app
        .post(
            &format!("/admin/v1/servers/{}/possible-copy/dismiss", Uuid::new_v4()),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, server_id) = app.register().await;
    let (status, body) = app
        .post(
            &format!("/admin/v1/servers/{server_id}/possible-copy/dismiss"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["was_marked_since"].is_null());
    assert_eq!(app.audit_count("server.possible_copy_dismiss", "").await, 0);
}
