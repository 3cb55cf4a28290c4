//! Reminders of the 366-day limit as the main server records them: which one is due
//! under a moved clock, one row per id, threshold and validity however often it is
//! claimed, a sync cancels what was not taken, the customer's switch, the handed-over
//! mark (idempotent, audited) and the CLI.

use std::process::Command;

use awc::http::{Method, StatusCode};
use chrono::Duration;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{on_both_backends, spawn_app, succeeded, Local, TestApp, BIN};

async fn claim(app: &TestApp) -> Vec<Value> {
    let (status, due) = app.post("/admin/v1/reminders/claim", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{due}");
    due.as_array().cloned().unwrap_or_default()
}

async fn recorded(app: &TestApp, customer: &str) -> Vec<Value> {
    let (status, list) = app
        .get(&format!("/admin/v1/customers/{customer}/reminders"))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().cloned().unwrap_or_default()
}

async fn customer_of(app: &TestApp, server_id: Uuid) -> String {
    let (_, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    server["customer_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn sync(app: &TestApp, local: &Local) {
    let answer = app.post_sync(&local.sync_data_at(app.clock.now())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

async fn handed(app: &TestApp, reminder: &Value) -> (StatusCode, Value) {
    let id = reminder["id"].as_str().unwrap_or_default();
    app.post(&format!("/admin/v1/reminders/{id}/handed"), json!({}))
        .await
}

async fn thresholds_and_cancellation(app: &TestApp) {
    let (never_synced, _) = app.register_local().await;
    let (server_id, local) = app.register_local().await;
    let customer = customer_of(app, server_id).await;
    sync(app, &local).await;
    assert!(
        claim(app).await.is_empty(),
        "nothing is due right after a sync"
    );

    // 337 days later: 29 days left, the 30-day reminder is due, once.
    app.clock.advance(Duration::days(337));
    let due = claim(app).await;
    assert_eq!(due.len(), 1, "{due:?}");
    let first = &due[0];
    assert_eq!(first["server_id"], server_id.to_string());
    assert_eq!(first["threshold"], "30d");
    assert_eq!(first["days_left"], 29);
    assert_eq!(first["customer_name"], "Acme");
    assert_eq!(first["contacts"], json!(["ops@acme.example"]));
    assert!(
        !due.iter()
            .any(|r| r["server_id"] == never_synced.to_string()),
        "an id never synced gets no reminder"
    );
    // Claimed again (a gateway restart, another replica): the same reminder, no new one.
    let again = claim(app).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["id"], first["id"]);

    // A sync before the gateway took it: the old validity's reminder is cancelled and
    // nothing is due for the new one, not even when the old one's 7 days are reached.
    sync(app, &local).await;
    assert!(claim(app).await.is_empty());
    app.clock.advance(Duration::days(23));
    assert!(
        claim(app).await.is_empty(),
        "no 7-day reminder for the old validity"
    );
    let list = recorded(app, &customer).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["state"], "cancelled");

    // The new validity's 30-day reminder (23 days left), handed over: it stays one row
    // and one audit entry however often it is marked.
    app.clock.advance(Duration::days(320));
    let due = claim(app).await;
    assert_eq!(due.len(), 1);
    let (status, marked) = handed(app, &due[0]).await;
    assert_eq!(status, StatusCode::OK, "{marked}");
    assert_eq!(marked["state"], "handed");
    assert_eq!(marked["recipients"], json!(["ops@acme.example"]));
    let (status, _) = handed(app, &due[0]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        claim(app).await.is_empty(),
        "a handed reminder is not returned"
    );
    let (_, audit) = app.get("/admin/v1/audit?limit=100").await;
    let entries: Vec<&Value> = audit
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["action"] == "reminder.handed")
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["actor"], "admin");
    assert!(
        entries[0]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("30d before the limit of"),
        "{}",
        entries[0]["detail"]
    );

    // A gateway away for three weeks: only the most urgent reminder reached is due.
    app.clock.advance(Duration::days(22));
    let due = claim(app).await;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0]["threshold"], "1d");
    assert_eq!(due[0]["days_left"], 1);
    handed(app, &due[0]).await;
    app.clock.advance(Duration::days(2));
    let due = claim(app).await;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0]["threshold"], "passed");
    assert!(due[0]["days_left"].as_i64().unwrap_or(0) < 0);
    handed(app, &due[0]).await;
    app.clock.advance(Duration::days(40));
    assert!(claim(app).await.is_empty(), "passed is sent once");

    let unknown = Uuid::new_v4();
    let (status, body) = app
        .post(&format!("/admin/v1/reminders/{unknown}/handed"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

on_both_backends!(
    thresholds_and_cancellation,
    the_most_urgent_reminder_is_recorded_once_and_a_sync_cancels_it,
    the_most_urgent_reminder_is_recorded_once_and_a_sync_cancels_it_on_postgres
);

#[actix_rt::test]
async fn switched_off_reminders_are_cancelled_and_not_recorded() {
    let app = spawn_app().await;
    let (server_id, local) = app.register_local().await;
    let customer = customer_of(&app, server_id).await;
    sync(&app, &local).await;
    app.clock.advance(Duration::days(340));
    assert_eq!(claim(&app).await.len(), 1);

    let path = format!("/admin/v1/customers/{customer}/reminders");
    let (status, switched) = app
        .admin(
            Method::PUT,
            &path,
            Some(json!({"enabled": false})),
            Some(&app.token.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{switched}");
    assert_eq!(switched["reminders_enabled"], false);
    assert!(claim(&app).await.is_empty());
    app.clock.advance(Duration::days(20));
    assert!(
        claim(&app).await.is_empty(),
        "off: no 7-day reminder either"
    );
    let list = recorded(&app, &customer).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["state"], "cancelled");
    let (_, audit) = app.get("/admin/v1/audit?limit=20").await;
    assert!(
        audit.as_array().is_some_and(|a| a.iter().any(|e| {
            e["action"] == "customer.reminders"
                && e["actor"] == "admin"
                && e["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("switched off, 1 pending cancelled"))
        })),
        "{audit}"
    );
    let (status, _) = app
        .admin(
            Method::PUT,
            &path,
            Some(json!({"enabled": "no"})),
            Some(&app.token.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .admin(Method::PUT, &path, Some(json!({"enabled": true})), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The operator's CLI: switch on again, list what was recorded.
    let admin = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("admin")
            .arg("--data-dir")
            .arg(app.data_dir())
            .args(args)
            .output()
            .expect("run admin");
        succeeded(&out)
    };
    let on = admin(&["customer", "reminders", &customer, "on"]);
    assert_eq!(
        on,
        format!("Reminder mails for Acme ({customer}) are on.\n")
    );
    let due = claim(&app).await;
    assert_eq!(due.len(), 1, "switched on: the 7-day reminder is due");
    assert_eq!(due[0]["threshold"], "7d");
    let table = admin(&["reminders", "list", &customer]);
    assert!(table.starts_with("SERVER ID"), "{table}");
    assert!(table.contains("7d") && table.contains("pending"), "{table}");
    assert!(
        table.contains("30d") && table.contains("cancelled"),
        "{table}"
    );
    let customers = admin(&["customer", "list"]);
    assert!(customers.contains("REMINDERS"), "{customers}");
}
