//! The role table of docs/API.md is the server's: the same rows as the endpoint list
//! the server routes and checks roles with (`admin::ENDPOINTS`), the same
//! operations as the OpenAPI document, and every role answered as the table says by
//! the running server.

use std::collections::BTreeMap;

use awc::http::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{assert_refused, spawn_app};
use main_server::routes::admin::ENDPOINTS;

const API_DOC: &str = include_str!("../../../docs/API.md");
const TABLE_HEADER: &str = "| method | path | least role |";
const ROLES: [&str; 4] = ["viewer", "operator", "admin", "gateway"];

/// `(method, path)` → least role, as written in the role table of docs/API.md.
fn documented_table() -> BTreeMap<(String, String), String> {
    let mut lines = API_DOC.lines().skip_while(|l| l.trim() != TABLE_HEADER);
    assert!(
        lines.next().is_some(),
        "docs/API.md has no role table (a line `{TABLE_HEADER}`)"
    );
    let mut rows = BTreeMap::new();
    for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|cell| cell.trim().trim_matches('`').to_owned())
            .collect();
        let [method, path, role] = <[String; 3]>::try_from(cells)
            .unwrap_or_else(|cells| panic!("a role table row of three cells: {cells:?}"));
        let previous = rows.insert((method, path), role);
        assert!(previous.is_none(), "{line} is in the role table twice");
    }
    rows
}

/// The same table, from the endpoint list the server routes and checks roles with.
fn code_table() -> BTreeMap<(String, String), String> {
    ENDPOINTS
        .iter()
        .map(|e| {
            let key = (e.verb.as_str().to_owned(), format!("/admin/v1{}", e.path));
            (key, e.need.least_role().to_owned())
        })
        .collect()
}

#[test]
fn the_role_table_of_the_api_document_is_the_servers() {
    let documented = documented_table();
    let code = code_table();
    let mut differences = Vec::new();
    for (key, role) in &code {
        match documented.get(key) {
            None => differences.push(format!("missing: | `{}` | `{}` | {role} |", key.0, key.1)),
            Some(written) if written != role => differences.push(format!(
                "{} {}: the document says `{written}`, the server `{role}`",
                key.0, key.1
            )),
            Some(_) => {}
        }
    }
    for key in documented.keys().filter(|key| !code.contains_key(*key)) {
        differences.push(format!("{} {} is documented but no endpoint", key.0, key.1));
    }
    assert!(
        differences.is_empty(),
        "docs/API.md's role table differs from the server:\n{}",
        differences.join("\n")
    );
}

#[test]
fn every_endpoint_is_in_the_openapi_document_and_no_other() {
    let document: Value =
        serde_json::from_str(&main_server::openapi::document_json().expect("the document"))
            .expect("JSON");
    let mut operations: Vec<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(path, _)| path.starts_with("/admin/"))
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("path item").keys();
            methods.map(|m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    operations.sort();
    let endpoints: Vec<(String, String)> = code_table().into_keys().collect();
    assert_eq!(operations, endpoints);
}

/// The roles the table's words let in (read independently of the server's code).
fn allowed_by(words: &str) -> &'static [&'static str] {
    match words {
        "any role" | "none (no token)" => &ROLES,
        "viewer" => &["viewer", "operator", "admin"],
        "operator" => &["operator", "admin"],
        "admin" => &["admin"],
        "gateway or operator" => &["gateway", "operator", "admin"],
        other => panic!("the role table says `{other}`: not a least role this test knows"),
    }
}

#[actix_rt::test]
async fn each_role_is_answered_as_the_role_table_says() {
    let app = spawn_app().await;
    let mut tokens = BTreeMap::from([("admin", app.token.clone())]);
    for role in ["viewer", "operator", "gateway"] {
        let token = crate::operators::add(&app, &format!("{role}-1"), role).await;
        tokens.insert(role, token);
    }
    let mut checked = 0;
    for ((method, path), words) in documented_table() {
        let concrete = path
            .replace("{id}", &Uuid::new_v4().to_string())
            .replace("{license_id}", &Uuid::new_v4().to_string())
            .replace("{name}", "nobody")
            .replace("{email}", "nobody@example.com");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
        if words == "none (no token)" {
            let (status, answer) = app
                .admin(method.clone(), &concrete, body.clone(), None)
                .await;
            assert_ne!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path}: {answer}"
            );
        }
        let allowed = allowed_by(&words);
        for (role, token) in &tokens {
            let (status, answer) = app
                .admin(method.clone(), &concrete, body.clone(), Some(token))
                .await;
            if allowed.contains(role) {
                // Let in: whatever the handler says of the empty body or random id,
                // it is not the role check's refusal.
                assert!(
                    !(status == StatusCode::FORBIDDEN && answer["code"] == "FORBIDDEN"),
                    "{role} may {method} {path} (`{words}`) but was refused: {answer}"
                );
            } else {
                assert_eq!(
                    (status, answer["code"].as_str()),
                    (StatusCode::FORBIDDEN, Some("FORBIDDEN")),
                    "{role} may not {method} {path} (`{words}`): {answer}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 4 * 34, "only {checked} calls checked");
    app.stop().await;
}

/// The role is decided on the path the router matches: a percent-escaped letter
/// reaches the same endpoint and needs the same role.
#[actix_rt::test]
async fn an_escaped_path_needs_the_role_of_the_endpoint_it_reaches() {
    let app = spawn_app().await;
    let viewer = crate::operators::add(&app, "vera", "viewer").await;
    let operator = crate::operators::add(&app, "otto", "operator").await;
    let (status, body) = app
        .admin(Method::GET, "/admin/v1/%6Fperators", None, Some(&viewer))
        .await;
    assert_refused(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, body) = app
        .admin(
            Method::POST,
            "/admin/v1/%6Fperators",
            Some(json!({"name": "mallory", "role": "admin"})),
            Some(&operator),
        )
        .await;
    assert_refused(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    // The escaped form does reach the endpoint: the admin gets the list.
    let (status, body) = app
        .admin(Method::GET, "/admin/v1/%6Fperators", None, Some(&app.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}
