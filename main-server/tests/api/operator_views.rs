//! What the console's and the admin CLI's views read: a key-clear request with what
//! deciding it needs, a customer with its ids, whether an id's local server holds the
//! newest revision, and the clock the server runs on.

use awc::http::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{on_both_backends, spawn_app, spawn_app_with, Local, TestApp};

async fn show(app: &TestApp, server_id: Uuid) -> Value {
    let (status, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(status, StatusCode::OK, "{server}");
    server
}

/// A direct sync of `local`; the license file's sequence.
async fn sync(app: &TestApp, local: &Local, counter: u64, held: Option<i64>) -> i64 {
    let answer = app
        .post_sync(&local.sync_data_as(counter, held, chrono::Utc::now()))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    local.open(app, &answer.body).sequence
}

/// Mails the installation's receipt of `file`, as `local-server import-license-file
/// --receipt` writes it.
async fn receipt(app: &TestApp, local: &Local, file: &shared_proto::LicenseFile) {
    let json = serde_json::to_vec(file).expect("license file as JSON");
    let receipt = shared_proto::receipt::Receipt {
        version: shared_proto::messages::MESSAGE_VERSION,
        server_id: file.server_id,
        sequence: file.sequence,
        revision: file.revision,
        license_file_sha256: shared_proto::hex::encode(&openssl::sha::sha256(&json)),
        installed_at: chrono::Utc::now(),
        public_keys: local.identity.public_keys(),
    };
    let sealed = shared_proto::receipt::seal(&local.identity, &receipt).expect("seal receipt");
    let (status, body) = app
        .post(
            "/admin/v1/mail/receipt",
            json!({"sender": "ops@acme.example", "receipt": sealed}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[actix_rt::test]
async fn a_key_clear_request_shows_what_deciding_it_needs() {
    let app = spawn_app().await;
    let (server_id, local) = app.register_local().await;
    let (_, customers) = app.get("/admin/v1/customers").await;
    let customer_id = customers[0]["id"].as_str().expect("id").to_owned();
    let (status, body) = app
        .post(
            &format!("/admin/v1/customers/{customer_id}/emails"),
            json!({"email": "cfo@acme.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Before any sync: nothing bound, nothing issued.
    let request = app
        .key_clear_request(server_id, "<1@acme.example>", json!({"text": "new disk"}))
        .await;
    let path = format!(
        "/admin/v1/key-clear-requests/{}",
        request["id"].as_str().expect("id")
    );
    let (status, detail) = app.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["customer_name"], "Acme", "{detail}");
    assert_eq!(detail["customer_id"], customer_id.as_str());
    assert!(detail["bound_fingerprint"].is_null(), "{detail}");
    assert!(detail["valid_until"].is_null(), "{detail}");
    assert_eq!(detail["other_contacts"], json!(["cfo@acme.example"]));
    // The request's own fields stay where they were.
    assert_eq!(detail["text"], "new disk");
    assert_eq!(detail["status"], "pending");

    sync(&app, &local, 1, None).await;
    let (_, detail) = app.get(&path).await;
    assert_eq!(
        detail["bound_fingerprint"],
        local.identity.fingerprint().to_string(),
        "{detail}"
    );
    assert_eq!(detail["last_sync_channel"], "internet");
    assert!(detail["last_sync_at"].is_string(), "{detail}");
    assert!(detail["valid_until"].is_string(), "{detail}");
    let days = detail["days_until_due"].as_i64().expect("days");
    assert!((365..=366).contains(&days), "{detail}");

    let (status, body) = app
        .get(&format!("/admin/v1/key-clear-requests/{}", Uuid::new_v4()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[actix_rt::test]
async fn a_customer_lists_its_ids_and_pages_through_them() {
    let app = spawn_app().await;
    let (customer_id, first) = app.register().await;
    let (_, second) = app.register().await;
    let (_, third) = app.register().await;
    let (status, other) = app
        .post(
            "/admin/v1/customers",
            json!({"name": "Beta", "emails": ["it@beta.example"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let (status, _) = app
        .post("/admin/v1/servers", json!({"customer_id": other["id"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, customer) = app.get(&format!("/admin/v1/customers/{customer_id}")).await;
    assert_eq!(status, StatusCode::OK, "{customer}");
    assert_eq!(customer["name"], "Acme");
    assert_eq!(customer["copy_policy"], "warn");
    assert_eq!(customer["servers_total"], 3);
    let mut expected = vec![first.to_string(), second.to_string(), third.to_string()];
    expected.sort();
    let listed: Vec<&str> = customer["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| s["server_id"].as_str().expect("id"))
        .collect();
    assert_eq!(listed, expected, "{customer}");
    assert_eq!(customer["servers"][0]["licenses"][0]["feature"], "cad");

    // Paged by the customer's ids only.
    let (status, page) = app
        .get(&format!(
            "/admin/v1/servers?customer_id={customer_id}&limit=2"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page.as_array().map(Vec::len), Some(2));
    let (_, rest) = app
        .get(&format!(
            "/admin/v1/servers?customer_id={customer_id}&limit=2&after={}",
            expected[1]
        ))
        .await;
    assert_eq!(rest.as_array().map(Vec::len), Some(1), "{rest}");
    assert_eq!(rest[0]["server_id"], expected[2].as_str());

    let (status, body) = app
        .get(&format!(
            "/admin/v1/servers?customer_id={customer_id}&due_within_days=30"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .get(&format!("/admin/v1/customers/{}", Uuid::new_v4()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

/// Never synced, up to date, licenses changed since, and a file that went by email.
async fn the_id_says_whether_its_server_holds_the_newest_revision(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let holds = show(app, server_id).await["holds"].clone();
    assert_eq!(holds["state"], "never_synced", "{holds}");
    assert_eq!(holds["issued_sequence"], 0);

    let first = sync(app, &local, 1, None).await;
    let server = show(app, server_id).await;
    let revision = server["revision"].as_i64().expect("revision");
    let holds = &server["holds"];
    // Handed over in the answer, not confirmed yet.
    assert_eq!(holds["state"], "issued_not_confirmed", "{holds}");
    assert_eq!(holds["issued_revision"], revision);
    assert_eq!(holds["issued_via"], "internet");
    assert!(
        holds["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!(
                "revision {revision} went to the server with license file #{first} in the answer"
            ))),
        "{holds}"
    );

    let (status, body) = app
        .post_license(server_id, json!({"feature": "cam", "seats": 2}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let holds = show(app, server_id).await["holds"].clone();
    assert_eq!(holds["state"], "changes_not_synced", "{holds}");
    assert_eq!(holds["revision"], revision + 1);
    assert_eq!(
        holds["summary"],
        format!(
            "revision {}, the server holds {revision}: changes not yet synced (its next sync \
             brings them)",
            revision + 1
        )
    );

    // The next request says which file it held; its answer carries the change.
    let second = sync(app, &local, 2, Some(first)).await;
    let holds = show(app, server_id).await["holds"].clone();
    assert_eq!(holds["state"], "issued_not_confirmed", "{holds}");
    assert_eq!(holds["issued_revision"], revision + 1);
    assert_eq!(holds["held_sequence"], first);
    assert!(holds["held_reported_at"].is_string(), "{holds}");

    // By email, the import is a person's: Solme cannot know it happened.
    let (status, mailed) = app
        .mail_sync(
            "ops@acme.example",
            &local.sync_data_as(3, Some(second), chrono::Utc::now()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{mailed}");
    let mailed = local.open(app, mailed["license_file"].as_str().expect("file"));
    let holds = show(app, server_id).await["holds"].clone();
    assert_eq!(holds["state"], "issued_not_confirmed", "{holds}");
    assert_eq!(holds["issued_via"], "email");
    assert!(
        holds["summary"]
            .as_str()
            .is_some_and(|s| s.contains(&format!(
                "went out by email with license file #{}: not yet confirmed installed",
                second + 1
            )) && s.ends_with(&format!("the server holds #{second}"))),
        "{holds}"
    );

    // A license change while the emailed file is not confirmed.
    let (status, body) = app
        .post_license(server_id, json!({"feature": "sim", "seats": 1}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let holds = show(app, server_id).await["holds"].clone();
    assert_eq!(holds["state"], "changes_not_synced", "{holds}");
    assert_eq!(
        holds["summary"],
        format!(
            "revision {}, the last license file issued (#{}, by email) carries {} and is not \
             confirmed installed: changes not yet synced",
            revision + 2,
            second + 1,
            revision + 1
        )
    );

    // The server's receipt confirms the emailed file: it holds that revision.
    receipt(app, &local, &mailed).await;
    let holds = show(app, server_id).await["holds"].clone();
    assert_eq!(holds["held_sequence"], mailed.sequence, "{holds}");
    assert_eq!(
        holds["summary"],
        format!(
            "revision {}, the server holds {}: changes not yet synced (its next sync brings them)",
            revision + 2,
            revision + 1
        )
    );
    let answer = app
        .post_sync(&local.sync_data_as(4, Some(mailed.sequence), chrono::Utc::now()))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let newest = local.open(app, &answer.body);
    receipt(app, &local, &newest).await;
    let holds = show(app, server_id).await["holds"].clone();
    assert_eq!(holds["state"], "up_to_date", "{holds}");
    assert_eq!(
        holds["summary"],
        format!(
            "revision {}, the server holds {}: up to date",
            revision + 2,
            revision + 2
        )
    );

    // Lists leave it out (one more query per id).
    let (_, list) = app.get("/admin/v1/servers").await;
    assert!(list[0].get("holds").is_none(), "{list}");
}

on_both_backends!(
    the_id_says_whether_its_server_holds_the_newest_revision,
    holds_on_sqlite,
    holds_on_postgres
);

#[actix_rt::test]
async fn the_clock_says_when_it_is_simulated() {
    let app = spawn_app().await;
    let (status, clock) = app.get("/admin/v1/clock").await;
    assert_eq!(status, StatusCode::OK, "{clock}");
    assert_eq!(clock["simulated"], false, "{clock}");
    assert_eq!(clock["offset_seconds"], 0);

    let moved = spawn_app_with(None, Some("+340d")).await;
    let (_, clock) = moved.get("/admin/v1/clock").await;
    assert_eq!(clock["simulated"], true, "{clock}");
    assert_eq!(clock["offset_seconds"], 340 * 86_400, "{clock}");
    let now: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(clock["now"].clone()).expect("a time");
    let ahead = now - chrono::Utc::now();
    assert!((339..=341).contains(&ahead.num_days()), "{clock}: {ahead}");
}
