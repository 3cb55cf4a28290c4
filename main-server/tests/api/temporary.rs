//! A database that another process holds locked is a temporary failure: the admin
//! API answers `503 UNAVAILABLE` with `Retry-After`, the admin CLI exits 75, and
//! nothing is written.

use std::process::Command;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::{json, Value};

use crate::helpers::{failed_saying, spawn_app, BIN};
use shared_proto::exit;

#[actix_rt::test]
async fn a_locked_database_is_unavailable_not_an_internal_error() {
    let app = spawn_app().await;
    let db = app.data_dir().join("main.db");
    let mut holder = diesel::SqliteConnection::establish(db.to_str().expect("UTF-8 path"))
        .expect("open the database");
    holder
        .batch_execute("BEGIN EXCLUSIVE")
        .expect("lock the database");

    // The CLI and the HTTP call wait out the server's busy timeout side by side.
    let dir = app.data_dir();
    let cli = actix_rt::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["admin", "--data-dir"])
            .arg(&dir)
            .args(["customer", "add", "--name", "Gamma"])
            .env_remove("MAIN_SERVER_ADMIN_URL")
            .env_remove("MAIN_SERVER_TOKEN_FILE")
            .output()
            .expect("run admin")
    });
    let mut response = app
        .http
        .post(format!("{}/admin/v1/customers", app.admin_base()))
        .insert_header(("Authorization", format!("Bearer {}", app.token)))
        .send_json(&json!({"name": "Delta", "emails": []}))
        .await
        .expect("admin request");
    let body: Value =
        serde_json::from_slice(&response.body().await.expect("body")).expect("JSON body");
    assert_eq!(response.status().as_u16(), 503, "{body}");
    assert_eq!(body["code"], "UNAVAILABLE", "{body}");
    assert_eq!(
        response
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let out = cli.await.expect("CLI task");
    failed_saying(&out, i32::from(exit::TEMPORARY), "try again");

    holder.batch_execute("ROLLBACK").expect("unlock");
    drop(holder);
    let (_, customers) = app.get("/admin/v1/customers").await;
    assert_eq!(customers, json!([]), "nothing was written while locked");
}
