//! Operator accounts: each token authenticates one account with one role, what a role
//! may not do is `FORBIDDEN`, revocation and rotation count at the next request, a
//! refused token is audited and repeated refusals are slowed down, and an installation
//! from before accounts keeps working with its one token.

use awc::http::{Method, StatusCode};
use diesel::RunQueryDsl;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::helpers::{
    assert_refused, failed_saying, newest_audit_entry, spawn_app, succeeded, TestApp,
};

/// Adds an operator account through the admin API; returns its personal token.
pub async fn add(app: &TestApp, name: &str, role: &str) -> String {
    let (status, issued) = app
        .post("/admin/v1/operators", json!({"name": name, "role": role}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert_eq!(issued["role"], role);
    let token = issued["token"].as_str().unwrap_or_default().to_owned();
    assert!(token.len() >= 43, "{issued}");
    token
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    token: &str,
) -> (StatusCode, Value) {
    app.admin(method, path, body, Some(token)).await
}

fn customer() -> Value {
    json!({"name": "Acme", "emails": ["ops@acme.example"]})
}

#[actix_rt::test]
async fn each_role_does_what_it_may_and_is_audited_by_name() {
    let app = spawn_app().await;
    let viewer = add(&app, "vera", "viewer").await;
    let operator = add(&app, "otto", "operator").await;
    let gateway = add(&app, "gw", "gateway").await;

    let (status, me) = call(&app, Method::GET, "/admin/v1/whoami", None, &viewer).await;
    assert_eq!(
        (status, me),
        (StatusCode::OK, json!({"name": "vera", "role": "viewer"}))
    );

    let forbidden = StatusCode::FORBIDDEN;
    // (who, method, path, body, the answer's status); a refusal also carries the
    // `FORBIDDEN` code.
    let cases = [
        (
            &viewer,
            Method::GET,
            "/admin/v1/servers",
            None,
            StatusCode::OK,
        ),
        (
            &viewer,
            Method::POST,
            "/admin/v1/customers",
            Some(customer()),
            forbidden,
        ),
        (
            &operator,
            Method::POST,
            "/admin/v1/customers",
            Some(customer()),
            StatusCode::CREATED,
        ),
        (
            &operator,
            Method::POST,
            "/admin/v1/operators",
            Some(json!({"name": "x", "role": "admin"})),
            forbidden,
        ),
        (&viewer, Method::GET, "/admin/v1/operators", None, forbidden),
        // The gateway reads nothing but may call the mail endpoints.
        (&gateway, Method::GET, "/admin/v1/servers", None, forbidden),
        (
            &gateway,
            Method::GET,
            "/admin/v1/key-clear-requests/unnotified",
            None,
            StatusCode::OK,
        ),
        (
            &gateway,
            Method::POST,
            "/admin/v1/mail/sync",
            Some(json!({"sender": "ops@acme.example", "sync_data": "garbage"})),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (token, method, path, body, expected) in cases {
        let (status, answer) = call(&app, method.clone(), path, body, token).await;
        if expected == forbidden {
            assert_refused(status, &answer, forbidden, "FORBIDDEN");
        } else {
            assert_eq!(status, expected, "{method} {path}: {answer}");
        }
    }

    // The audit log names the authenticated account, whatever header was sent.
    let (_, audit) = app.get("/admin/v1/audit?limit=20").await;
    let entries = audit.as_array().cloned().unwrap_or_default();
    let created = newest_audit_entry(&audit, "customer.create");
    assert_eq!(created["actor"], "otto", "{audit}");
    assert!(
        entries.iter().any(|e| e["action"] == "operator.add"
            && e["actor"] == "admin"
            && e["detail"] == "operator vera, role viewer"),
        "{audit}"
    );

    // Names are unique and bounded; the listing never shows a token or its hash.
    for (name, expected, code) in [
        ("vera", StatusCode::CONFLICT, "NAME_TAKEN"),
        ("bad name", StatusCode::BAD_REQUEST, "MALFORMED"),
    ] {
        let (status, body) = app
            .post(
                "/admin/v1/operators",
                json!({"name": name, "role": "admin"}),
            )
            .await;
        assert_refused(status, &body, expected, code);
    }
    let (status, list) = app.get("/admin/v1/operators").await;
    assert_eq!(status, StatusCode::OK);
    let text = list.to_string();
    assert!(!text.contains(&viewer) && !text.contains("token"), "{text}");
    let names: Vec<&str> = list
        .as_array()
        .map(|l| l.iter().filter_map(|a| a["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["admin", "gw", "mail-gateway", "otto", "vera"]);
    app.stop().await;
}

#[actix_rt::test]
async fn revoked_and_rotated_tokens_stop_working_at_once() {
    let app = spawn_app().await;
    let old = add(&app, "otto", "operator").await;
    let (status, rotated) = app.post("/admin/v1/operators/otto/rotate", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["token"].as_str().unwrap_or_default().to_owned();
    assert_ne!(new, old);
    let (status, body) = call(&app, Method::GET, "/admin/v1/servers", None, &old).await;
    assert_refused(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let (status, _) = call(&app, Method::GET, "/admin/v1/servers", None, &new).await;
    assert_eq!(status, StatusCode::OK);

    let (status, revoked) = app.post("/admin/v1/operators/otto/revoke", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let (status, body) = call(&app, Method::GET, "/admin/v1/servers", None, &new).await;
    assert_refused(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let (status, body) = app.post("/admin/v1/operators/otto/rotate", json!({})).await;
    assert_refused(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");

    // The last admin cannot lock everyone out.
    let (status, body) = app
        .post("/admin/v1/operators/admin/revoke", json!({}))
        .await;
    assert_refused(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, body) = app
        .post("/admin/v1/operators/nobody/revoke", json!({}))
        .await;
    assert_refused(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    app.stop().await;
}

#[actix_rt::test]
async fn a_role_refusal_is_audited_apart_from_an_unknown_token() {
    let app = spawn_app().await;
    let viewer = add(&app, "vera", "viewer").await;
    let (status, body) = call(
        &app,
        Method::POST,
        "/admin/v1/customers",
        Some(customer()),
        &viewer,
    )
    .await;
    assert_refused(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, body) = call(
        &app,
        Method::POST,
        "/admin/v1/customers",
        Some(customer()),
        "not-a-token",
    )
    .await;
    assert_refused(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");

    let (status, audit) = app.get("/admin/v1/audit?limit=20").await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    // The viewer was known: its refusal names it and the request its role may not make.
    let forbidden = newest_audit_entry(&audit, "auth.forbidden");
    assert_eq!(forbidden["actor"], "vera", "{audit}");
    assert_eq!(forbidden["outcome"], "FORBIDDEN", "{audit}");
    assert_eq!(
        forbidden["detail"],
        "the viewer role may not POST /admin/v1/customers (changing the registry needs \
         the operator or admin role)"
    );
    // The unknown token is an authentication failure, with nobody as its actor.
    let refused = newest_audit_entry(&audit, "auth.refused");
    assert_eq!(refused["actor"], "unauthenticated", "{audit}");
    assert_eq!(refused["outcome"], "UNAUTHORIZED", "{audit}");
    let actions: Vec<&str> = audit
        .as_array()
        .map(|l| l.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    let count = |action: &str| actions.iter().filter(|a| **a == action).count();
    assert_eq!(
        (count("auth.forbidden"), count("auth.refused")),
        (1, 1),
        "{audit}"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn refused_tokens_are_audited_and_repeated_ones_rate_limited() {
    let app = spawn_app().await;
    for i in 0..10 {
        let (status, body) = call(
            &app,
            Method::GET,
            "/admin/v1/servers",
            None,
            &format!("wrong-{i}"),
        )
        .await;
        assert_refused(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    // The eleventh attempt within the minute is slowed down, whatever it presents:
    // the answer does not tell whether the token exists.
    let (status, body) = call(&app, Method::GET, "/admin/v1/servers", None, "wrong-10").await;
    assert_refused(status, &body, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");
    let (status, body) = app.get("/admin/v1/servers").await;
    assert_refused(status, &body, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");

    // A minute later the good token works again and the log shows the refusals.
    app.clock.advance(chrono::Duration::seconds(61));
    let (status, audit) = app.get("/admin/v1/audit?limit=50").await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let refused: Vec<&Value> = audit
        .as_array()
        .map(|l| l.iter().filter(|e| e["action"] == "auth.refused").collect())
        .unwrap_or_default();
    assert_eq!(refused.len(), 10, "{audit}");
    assert_eq!(refused[0]["actor"], "unauthenticated");
    assert_eq!(refused[0]["outcome"], "UNAUTHORIZED");
    assert_eq!(
        refused[0]["detail"],
        "a token that is not valid from 127.0.0.1 for GET /admin/v1/servers"
    );
    assert!(
        !audit.to_string().contains("wrong-"),
        "a presented token was logged"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn an_installation_from_before_accounts_keeps_its_token_as_first_admin() {
    // What an older `init` left: token files and a database without accounts.
    let dir = crate::helpers::init_dir(None);
    {
        let target = main_server::db::DbTarget::from_options(dir.path(), None).expect("target");
        let db = main_server::db::Db::open(target, 1).expect("db");
        let mut conn = db.write.get().expect("conn");
        diesel::sql_query("DELETE FROM operators")
            .execute(&mut conn)
            .expect("delete");
    }
    std::fs::remove_file(dir.path().join("gateway-token")).expect("remove");
    let app = crate::helpers::spawn_app_in(dir).await;
    let (status, me) = app.get("/admin/v1/whoami").await;
    assert_eq!(
        (status, me),
        (StatusCode::OK, json!({"name": "admin", "role": "admin"}))
    );
    // The gateway's old configuration (the admin token) still reaches the mail endpoints.
    let (status, body) = app.get("/admin/v1/key-clear-requests/unnotified").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}

#[actix_rt::test]
async fn init_makes_a_gateway_token_limited_to_the_mail_endpoints() {
    let app = spawn_app().await;
    let path = app.dir.path().join("gateway-token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path).expect("meta").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let token = shared_proto::files::read_secret(&path)
        .expect("read")
        .expose_secret()
        .to_owned();
    let (status, me) = call(&app, Method::GET, "/admin/v1/whoami", None, &token).await;
    assert_eq!(
        (status, me),
        (
            StatusCode::OK,
            json!({"name": "mail-gateway", "role": "gateway"})
        )
    );
    let (status, body) = call(&app, Method::GET, "/admin/v1/audit", None, &token).await;
    assert_refused(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    app.stop().await;
}

/// `main-server admin` with the data directory's URL and the given token file.
fn cli(app: &TestApp, token_file: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::helpers::BIN)
        .arg("admin")
        .arg("--data-dir")
        .arg(app.dir.path())
        .arg("--token-file")
        .arg(token_file)
        .args(args)
        .env_remove("MAIN_SERVER_ADMIN_URL")
        .output()
        .expect("run admin")
}

#[actix_rt::test]
async fn the_cli_adds_lists_and_revokes_operators() {
    let app = spawn_app().await;
    let admin_file = app.dir.path().join("admin-token");
    let added = cli(
        &app,
        &admin_file,
        &["operator", "add", "carol", "--role", "viewer"],
    );
    let text = succeeded(&added);
    assert!(text.starts_with("operator carol (viewer) added."), "{text}");
    let token = text.lines().last().unwrap_or_default().to_owned();
    assert_eq!(token.len(), 43, "{text}");
    let carol_file = app.dir.path().join("carol-token");
    std::fs::write(&carol_file, &token).expect("write");

    assert!(cli(&app, &carol_file, &["customer", "list"])
        .status
        .success());
    let refused = cli(&app, &carol_file, &["customer", "add", "--name", "Acme"]);
    failed_saying(&refused, 1, "FORBIDDEN");

    let list = cli(&app, &admin_file, &["operator", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("carol") && text.contains("viewer") && text.contains("active"),
        "{text}"
    );
    assert!(!text.contains(&token), "{text}");

    succeeded(&cli(&app, &admin_file, &["operator", "revoke", "carol"]));
    let refused = cli(&app, &carol_file, &["customer", "list"]);
    failed_saying(&refused, 1, "UNAUTHORIZED");
    app.stop().await;
}
