//! Standby servers (docs/standby.md, "Solme knows the pair"): a sync request of the
//! id's bound key pair names its standby; Solme registers it (audited when it first
//! appears or changes) and the license file names it with the id's failover period;
//! the failover period is set per id; a key clearing forgets the standby.

use awc::http::{Method, StatusCode};
use chrono::Utc;
use serde_json::{json, Value};
use shared_proto::exit;
use shared_proto::keys::ServerIdentity;
use shared_proto::messages::StandbyTerms;
use shared_proto::LicenseFile;
use uuid::Uuid;

use crate::helpers::{
    assert_refused, assert_refused_saying, failed_saying, on_both_backends, spawn_app, succeeded,
    Local, TestApp, BIN,
};
use crate::operators::add;

/// Sync data of `local` naming `standby` (or none), as a primary makes it.
fn sync_data(local: &Local, standby: Option<&ServerIdentity>) -> String {
    let request = shared_proto::SyncRequest {
        version: shared_proto::messages::MESSAGE_VERSION,
        server_id: local.server_id,
        request_id: Uuid::new_v4(),
        created_at: Utc::now(),
        public_keys: local.identity.public_keys(),
        held_revision: None,
        held_sequence: None,
        software_version: "test".into(),
        usage: Vec::new(),
        usage_since: None,
        held_file_sha256: None,
        request_counter: None,
        borrows: None,
        standby_keys: standby.map(ServerIdentity::public_keys),
    };
    shared_proto::sync_data::seal(&local.identity, &request).expect("seal")
}

/// A direct sync naming `standby`; the license file it answers with.
pub async fn sync(app: &TestApp, local: &Local, standby: Option<&ServerIdentity>) -> LicenseFile {
    let answer = app.post_sync(&sync_data(local, standby)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    local.open(app, &answer.body)
}

fn terms(standby: &ServerIdentity, failover_days: u32) -> Option<StandbyTerms> {
    Some(StandbyTerms {
        fingerprint: standby.fingerprint(),
        failover_days,
    })
}

async fn server(app: &TestApp, server_id: Uuid) -> Value {
    let (status, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(status, StatusCode::OK, "{server}");
    server
}

async fn set_days(app: &TestApp, server_id: Uuid, body: Value, token: &str) -> (StatusCode, Value) {
    let path = format!("/admin/v1/servers/{server_id}/failover-period");
    app.admin(Method::PUT, &path, Some(body), Some(token)).await
}

on_both_backends!(
    a_named_standby_is_registered_audited_once_and_in_the_file,
    a_named_standby_is_registered_audited_once_and_in_the_file_sqlite,
    a_named_standby_is_registered_audited_once_and_in_the_file_postgres
);
async fn a_named_standby_is_registered_audited_once_and_in_the_file(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let shown = server(app, server_id).await;
    assert_eq!(shown["standby_fingerprint"], Value::Null, "{shown}");
    assert_eq!(shown["failover_days"], 14, "{shown}");

    // Without a standby: a file without one, nothing registered.
    assert_eq!(sync(app, &local, None).await.standby, None);
    assert_eq!(app.audit_count("server.standby_registered", "").await, 0);

    let standby = ServerIdentity::generate().expect("identity");
    let fingerprint = standby.fingerprint().to_string();
    let file = sync(app, &local, Some(&standby)).await;
    assert_eq!(file.standby, terms(&standby, 14));
    let shown = server(app, server_id).await;
    assert_eq!(
        shown["standby_fingerprint"],
        fingerprint.as_str(),
        "{shown}"
    );
    assert!(shown["standby_registered_at"].is_string(), "{shown}");
    let first = format!("standby server {fingerprint} registered");
    assert_eq!(
        app.audit_count("server.standby_registered", &first).await,
        1
    );
    assert_eq!(
        app.audit_count(
            "server.standby_registered",
            "no standby was registered before"
        )
        .await,
        1
    );
    // The sync's own entry says it named one.
    assert_eq!(
        app.audit_count("sync", &format!("names standby server {fingerprint}"))
            .await,
        1
    );

    // The same standby again: the same terms, no second registration.
    let file = sync(app, &local, Some(&standby)).await;
    assert_eq!(file.standby, terms(&standby, 14));
    assert_eq!(app.audit_count("server.standby_registered", "").await, 1);
    let registered_at = server(app, server_id).await["standby_registered_at"].clone();

    // A request naming none gets a file naming none; the id keeps the last one.
    assert_eq!(sync(app, &local, None).await.standby, None);
    let shown = server(app, server_id).await;
    assert_eq!(
        shown["standby_fingerprint"],
        fingerprint.as_str(),
        "{shown}"
    );
    assert_eq!(shown["standby_registered_at"], registered_at, "{shown}");
    assert_eq!(app.audit_count("server.standby_registered", "").await, 1);

    // Another standby: registered and audited again, naming the one it replaces.
    let other = ServerIdentity::generate().expect("identity");
    let file = sync(app, &local, Some(&other)).await;
    assert_eq!(file.standby, terms(&other, 14));
    assert_eq!(app.audit_count("server.standby_registered", "").await, 2);
    let replaced = format!(
        "standby server {} registered, named by key {}; it replaces the standby {fingerprint}",
        other.fingerprint(),
        local.identity.fingerprint()
    );
    assert_eq!(
        app.audit_count("server.standby_registered", &replaced)
            .await,
        1
    );
    let shown = server(app, server_id).await;
    assert_eq!(
        shown["standby_fingerprint"],
        other.fingerprint().as_str(),
        "{shown}"
    );

    // The email channel registers the same way and its file names the standby too.
    let (status, answer) = app
        .mail_sync("ops@acme.example", &sync_data(&local, Some(&standby)))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let file = local.open(app, answer["license_file"].as_str().expect("file"));
    assert_eq!(file.standby, terms(&standby, 14));
    assert_eq!(app.audit_count("server.standby_registered", "").await, 3);
}

on_both_backends!(
    the_failover_period_is_set_by_a_manager_and_carried,
    the_failover_period_is_set_by_a_manager_and_carried_sqlite,
    the_failover_period_is_set_by_a_manager_and_carried_postgres
);
async fn the_failover_period_is_set_by_a_manager_and_carried(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let standby = ServerIdentity::generate().expect("identity");
    assert_eq!(
        sync(app, &local, Some(&standby)).await.standby,
        terms(&standby, 14)
    );

    let token = app.token.clone();
    let (status, shown) = set_days(app, server_id, json!({"days": 30}), &token).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["failover_days"], 30, "{shown}");
    assert_eq!(server(app, server_id).await["failover_days"], 30);
    assert_eq!(
        app.audit_count("server.failover_period_set", "set to 30 days (was 14 days)")
            .await,
        1
    );
    // The same period again changes nothing and is not audited again.
    let (status, _) = set_days(app, server_id, json!({"days": 30}), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.audit_count("server.failover_period_set", "").await, 1);
    // The next file carries it.
    assert_eq!(
        sync(app, &local, Some(&standby)).await.standby,
        terms(&standby, 30)
    );

    for bad in [
        json!({"days": 0}),
        json!({"days": 91}),
        json!({"days": -1}),
        json!({"days": 1.5}),
        json!({"days": "30"}),
        json!({"days": null}),
        json!({}),
        json!({"days": 30, "hours": 1}),
        json!([30]),
    ] {
        let (status, body) = set_days(app, server_id, bad.clone(), &token).await;
        assert_refused_saying(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "MALFORMED",
            "the failover period must be a whole number of days from 1 to 90",
        );
        let message = body["message"].as_str().unwrap_or_default();
        assert!(!message.contains("invalid type"), "{bad}: {message}");
    }
    assert_eq!(server(app, server_id).await["failover_days"], 30);

    let (status, body) = set_days(app, Uuid::new_v4(), json!({"days": 7}), &token).await;
    assert_refused(status, &body, StatusCode::NOT_FOUND, "UNKNOWN_SERVER_ID");

    let viewer = add(app, "vera", "viewer").await;
    let (status, body) = set_days(app, server_id, json!({"days": 7}), &viewer).await;
    assert_refused(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    assert_eq!(server(app, server_id).await["failover_days"], 30);
    assert_eq!(app.audit_count("server.failover_period_set", "").await, 1);
}

on_both_backends!(
    a_request_naming_its_own_key_as_standby_is_refused,
    a_request_naming_its_own_key_as_standby_is_refused_sqlite,
    a_request_naming_its_own_key_as_standby_is_refused_postgres
);
async fn a_request_naming_its_own_key_as_standby_is_refused(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let answer = app
        .post_sync(&sync_data(&local, Some(&local.identity)))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.code(), "MALFORMED");
    assert!(
        answer
            .body
            .contains("names this server's own key pair as its standby"),
        "{}",
        answer.body
    );
    let shown = server(app, server_id).await;
    assert_eq!(shown["standby_fingerprint"], Value::Null, "{shown}");
    assert_eq!(shown["sequence"], 0, "{shown}");
    assert_eq!(app.audit_count("server.standby_registered", "").await, 0);
    // By mail too.
    let (status, body) = app
        .mail_sync(
            "ops@acme.example",
            &sync_data(&local, Some(&local.identity)),
        )
        .await;
    assert_refused(status, &body, StatusCode::BAD_REQUEST, "MALFORMED");
}

on_both_backends!(
    a_key_clearing_forgets_the_standby,
    a_key_clearing_forgets_the_standby_sqlite,
    a_key_clearing_forgets_the_standby_postgres
);
async fn a_key_clearing_forgets_the_standby(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let standby = ServerIdentity::generate().expect("identity");
    sync(app, &local, Some(&standby)).await;

    let request = app
        .key_clear_request(
            server_id,
            "<standby-1@acme.example>",
            json!({"text": "new primary", "sender_auth": "authenticated",
                   "sender_auth_detail": "dmarc=pass"}),
        )
        .await;
    let id = request["id"].as_str().expect("id");
    let (status, approved) = app
        .post(
            &format!("/admin/v1/key-clear-requests/{id}/approve"),
            json!({"reason": "reinstalled"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    let shown = server(app, server_id).await;
    assert_eq!(shown["bound_fingerprint"], Value::Null, "{shown}");
    assert_eq!(shown["standby_fingerprint"], Value::Null, "{shown}");
    assert_eq!(shown["standby_registered_at"], Value::Null, "{shown}");
    let cleared = format!(
        "standby server {} cleared too (the primary pairs again)",
        standby.fingerprint()
    );
    assert_eq!(app.audit_count("key.clear", &cleared).await, 1);

    // The reinstalled primary pairs again: its standby is registered anew.
    let reinstalled = Local::new(server_id);
    let file = sync(app, &reinstalled, Some(&standby)).await;
    assert_eq!(file.standby, terms(&standby, 14));
    assert_eq!(app.audit_count("server.standby_registered", "").await, 2);
    assert_eq!(
        app.audit_count(
            "server.standby_registered",
            "no standby was registered before"
        )
        .await,
        2
    );

    // An operator's key clearing forgets it too.
    let (status, shown) = app
        .post(
            &format!("/admin/v1/servers/{server_id}/key-clear"),
            json!({"reason": "moved to new hardware"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["standby_fingerprint"], Value::Null, "{shown}");
    assert_eq!(app.audit_count("key.clear", &cleared).await, 2);
}

/// `main-server admin` against the running server, as the CLI tests run it.
fn admin_cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg("admin")
        .arg("--data-dir")
        .arg(app.data_dir())
        .args(args)
        .env_remove("MAIN_SERVER_ADMIN_URL")
        .env_remove("MAIN_SERVER_TOKEN_FILE")
        .output()
        .expect("run admin")
}

#[actix_rt::test]
async fn the_admin_cli_sets_and_shows_the_failover_period_and_the_standby() {
    let app = spawn_app().await;
    let (server_id, local) = app.register_local().await;
    let id = server_id.to_string();
    let shown = succeeded(&admin_cli(&app, &["server", "show", &id]));
    assert!(shown.contains("standby       none registered"), "{shown}");
    assert!(shown.contains("failover      14 days"), "{shown}");

    let standby = ServerIdentity::generate().expect("identity");
    sync(&app, &local, Some(&standby)).await;
    let said = succeeded(&admin_cli(&app, &["server", "failover-period", &id, "30"]));
    assert!(
        said.contains(&format!("The failover period of {id} is 30 days")),
        "{said}"
    );
    let shown = succeeded(&admin_cli(&app, &["server", "show", &id]));
    assert!(
        shown.contains(&format!(
            "standby       {}, registered ",
            standby.fingerprint()
        )),
        "{shown}"
    );
    assert!(shown.contains("failover      30 days"), "{shown}");
    assert_eq!(
        sync(&app, &local, Some(&standby)).await.standby,
        terms(&standby, 30)
    );

    // Out of range: a usage mistake, refused before anything is sent.
    for bad in ["0", "91", "two"] {
        failed_saying(
            &admin_cli(&app, &["server", "failover-period", &id, bad]),
            i32::from(exit::USAGE),
            "the failover period is a whole number of days from 1 to 90",
        );
    }
    assert_eq!(app.audit_count("server.failover_period_set", "").await, 1);
}

on_both_backends!(
    concurrent_syncs_naming_a_new_standby_register_it_once,
    concurrent_syncs_naming_a_new_standby_register_it_once_sqlite,
    concurrent_syncs_naming_a_new_standby_register_it_once_postgres
);
async fn concurrent_syncs_naming_a_new_standby_register_it_once(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    // Bound first, so that every contender is answered.
    sync(app, &local, None).await;
    let standby = ServerIdentity::generate().expect("identity");
    let requests: Vec<String> = (0..12).map(|_| sync_data(&local, Some(&standby))).collect();
    let answers = futures_util::future::join_all(requests.iter().map(|r| app.post_sync(r))).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(local.open(app, &answer.body).standby, terms(&standby, 14));
    }
    assert_eq!(app.audit_count("server.standby_registered", "").await, 1);
    let shown = server(app, server_id).await;
    assert_eq!(
        shown["standby_fingerprint"],
        standby.fingerprint().as_str(),
        "{shown}"
    );
}
