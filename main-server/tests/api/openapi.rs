//! The OpenAPI document on the admin listener: readable without a token, the text
//! `main-server openapi` prints (and docs/openapi.json holds), and naming only routes
//! the server really answers.

use awc::http::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::spawn_app;

#[actix_rt::test]
async fn the_document_is_served_without_a_token() {
    let app = spawn_app().await;
    let (status, headers, body) = app.get_page("/admin/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let generated = main_server::openapi::document_json().expect("the document");
    assert!(
        body == generated,
        "the served document is the generated one"
    );
    let document: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(document["openapi"], "3.1.0");
    let whoami = &document["paths"]["/admin/v1/whoami"]["get"];
    assert_eq!(whoami["security"], json!([{"bearer": []}]));
    assert!(whoami["responses"]["401"]["content"]["application/json"].is_object());

    // Only reading it is open: any other method is an admin request like the rest.
    let (status, body) = app
        .admin(Method::POST, "/admin/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    app.stop().await;
}

#[actix_rt::test]
async fn every_documented_admin_route_exists() {
    let app = spawn_app().await;
    let (_, _, body) = app.get_page("/admin/v1/openapi.json").await;
    let document: Value = serde_json::from_str(&body).expect("JSON");
    let paths = document["paths"].as_object().expect("paths");
    let mut tried = 0;
    for (path, item) in paths.iter().filter(|(p, _)| p.starts_with("/admin/")) {
        let concrete = path
            .replace("{id}", &Uuid::new_v4().to_string())
            .replace("{license_id}", &Uuid::new_v4().to_string())
            .replace("{name}", "nobody");
        for method in item.as_object().expect("path item").keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
            let token = app.token.clone();
            let (status, answer) = app
                .admin(method.clone(), &concrete, body, Some(&token))
                .await;
            // An unknown route answers 404 "no such endpoint"; a documented one may
            // refuse the empty body or the random id, but in its own words.
            assert!(
                answer["message"] != "no such endpoint",
                "{method} {path} is documented but not routed ({status})"
            );
            tried += 1;
        }
    }
    assert!(tried >= 28, "only {tried} admin operations documented");
    for path in ["/api/v1/time", "/api/v1/health"] {
        assert!(paths.contains_key(path), "{path} is documented");
        let (status, _) = app.sync_get(0, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    app.stop().await;
}

/// What users regenerate the committed copy with.
#[test]
fn the_openapi_command_prints_the_committed_document() {
    let out = std::process::Command::new(crate::helpers::BIN)
        .arg("openapi")
        .output()
        .expect("run main-server openapi");
    crate::helpers::succeeded(&out);
    let committed = include_str!("../../../docs/openapi.json");
    assert!(
        out.stdout == committed.as_bytes(),
        "`main-server openapi` prints docs/openapi.json"
    );
}
