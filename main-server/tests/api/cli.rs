//! The `main-server admin` CLI against a running server.

use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::{failed_saying, init_dir, spawn_app, succeeded, Local, BIN};
use shared_proto::exit;

fn admin(data_dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("admin")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("MAIN_SERVER_ADMIN_URL")
        .env_remove("MAIN_SERVER_TOKEN_FILE")
        .output()
        .expect("run admin")
}

fn json_of(out: &Output) -> Value {
    succeeded(out);
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

#[actix_rt::test]
async fn admin_cli_drives_the_registry() {
    let app = spawn_app().await;
    let dir = app.data_dir();
    let customer = json_of(&admin(
        &dir,
        &[
            "--json",
            "customer",
            "add",
            "--name",
            "Beta",
            "--email",
            "it@beta.example",
        ],
    ));
    // One item made is one JSON object, as `server add` answers.
    let customer_id = customer["id"].as_str().expect("id").to_owned();
    let server = json_of(&admin(
        &dir,
        &["server", "add", "--customer", &customer_id, "--json"],
    ));
    let server_id = server["server_id"].as_str().expect("id").to_owned();
    let license = json_of(&admin(
        &dir,
        &[
            "license",
            "add",
            &server_id,
            "--feature",
            "cad",
            "--seats",
            "4",
            "--valid-until",
            "2030-06-30",
            "--json",
        ],
    ));
    assert_eq!(license["seats"], 4);
    let license_id = license["id"].as_str().expect("id").to_owned();
    json_of(&admin(
        &dir,
        &[
            "license",
            "change",
            &server_id,
            &license_id,
            "--seats",
            "6",
            "--valid-until",
            "none",
            "--json",
        ],
    ));

    let local = Local::new(server_id.parse().expect("uuid"));
    let input = dir.join("sync.txt");
    let output = dir.join("license.txt");
    std::fs::write(&input, local.sync_data()).expect("write");
    let out = admin(
        &dir,
        &[
            "mail-sync",
            "--sender",
            "it@beta.example",
            "--input",
            input.to_str().expect("path"),
            "--output",
            output.to_str().expect("path"),
        ],
    );
    succeeded(&out);
    let file = local.open(
        &app,
        &std::fs::read_to_string(&output).expect("license file"),
    );
    assert_eq!(
        (file.licenses[0].seats, file.licenses[0].valid_until),
        (6, None)
    );

    // Under --json a refusal is the API's error object too, not a sentence.
    let refused = admin(
        &dir,
        &[
            "--json",
            "license",
            "add",
            &server_id,
            "--feature",
            "cad",
            "--seats",
            "0",
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&refused.stderr).expect("a JSON error");
    assert_eq!(error["code"], "MALFORMED", "{error}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{error}"
    );

    let shown = admin(&dir, &["server", "show", &server_id]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("via email") && text.contains("366 days left"),
        "{text}"
    );

    let cleared = admin(&dir, &["key", "clear", &server_id, "--reason", "reinstall"]);
    assert!(cleared.status.success());
    let audit = json_of(&admin(&dir, &["audit", "--limit", "5", "--json"]));
    assert_eq!(audit[0]["action"], "key.clear");
    assert_eq!(audit[0]["actor"], "admin");

    let table = admin(&dir, &["customer", "list"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("it@beta.example"));

    let refused = admin(
        &dir,
        &["server", "show", "00000000-0000-0000-0000-000000000000"],
    );
    failed_saying(&refused, 1, "UNKNOWN_SERVER_ID");
}

/// The customer list pages like the id lists (`--limit`, `--after` as printed) and
/// finds customers by the start of their name (`--name`).
#[actix_rt::test]
async fn admin_cli_pages_and_searches_the_customers() {
    let app = spawn_app().await;
    let dir = app.data_dir();
    for name in ["Beta", "Acme", "Betamax"] {
        let (status, body) = app
            .post("/admin/v1/customers", serde_json::json!({"name": name}))
            .await;
        assert_eq!(status, awc::http::StatusCode::CREATED, "{body}");
    }
    let first = json_of(&admin(
        &dir,
        &["--json", "customer", "list", "--limit", "2"],
    ));
    assert_eq!(first[0]["name"], "Acme", "{first}");
    assert_eq!(first[1]["name"], "Beta", "{first}");
    let last = first[1]["id"].as_str().expect("id").to_owned();
    let table = succeeded(&admin(&dir, &["customer", "list", "--limit", "2"]));
    assert!(
        table.contains(&format!(
            "(more customers may follow: run again with --after {last})"
        )),
        "{table}"
    );
    let rest = succeeded(&admin(
        &dir,
        &["customer", "list", "--limit", "2", "--after", &last],
    ));
    assert!(
        rest.contains("Betamax") && !rest.contains("Acme") && !rest.contains("more customers"),
        "{rest}"
    );
    let found = json_of(&admin(
        &dir,
        &["--json", "customer", "list", "--name", "BETA"],
    ));
    let names: Vec<&str> = found
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["Beta", "Betamax"]);
    let found = succeeded(&admin(&dir, &["customer", "list", "--name", "beta&x=1"]));
    assert!(!found.contains("Beta"), "{found}");
    let refused = admin(&dir, &["customer", "list", "--limit", "0"]);
    assert_eq!(refused.status.code(), Some(2));
}

#[actix_rt::test]
async fn admin_cli_shows_the_sender_check_and_approves_only_with_the_override() {
    let app = spawn_app().await;
    let dir = app.data_dir();
    let (_, created) = app
        .register_with_key_clear_request(
            "<forged@acme.example>",
            serde_json::json!({"text": "please clear it", "sender_auth": "not authenticated",
                               "sender_auth_detail": "spf=fail, dmarc=fail"}),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_owned();

    let list = admin(&dir, &["key-clear-requests", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("SENDER CHECK") && text.contains("not authenticated"),
        "{text}"
    );
    let shown = admin(&dir, &["key-clear-requests", "show", &id]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("sender check  not authenticated: spf=fail, dmarc=fail")
            && text.contains("approving needs --override-unauthenticated-sender")
            && text.contains("  please clear it"),
        "{text}"
    );

    let refused = admin(&dir, &["key-clear-requests", "approve", &id]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("not authenticated: spf=fail, dmarc=fail")
            && stderr.contains("--override-unauthenticated-sender"),
        "{stderr}"
    );
    let approved = json_of(&admin(
        &dir,
        &[
            "--json",
            "key-clear-requests",
            "approve",
            &id,
            "--override-unauthenticated-sender",
        ],
    ));
    assert_eq!(approved["status"], "approved");
    let audit = json_of(&admin(&dir, &["audit", "--limit", "5", "--json"]));
    let approval = crate::helpers::newest_audit_entry(&audit, "key_clear_request.approve");
    assert!(
        approval["detail"].as_str().is_some_and(|d| d.contains(
            "override used (sender ops@acme.example: not authenticated: spf=fail, dmarc=fail)"
        )),
        "{approval}"
    );
}

#[test]
fn admin_cli_exits_75_when_the_server_is_down() {
    let dir = init_dir(None);
    let out = Command::new(BIN)
        .args(["admin", "--admin-url", "http://127.0.0.1:9", "--token-file"])
        .arg(dir.path().join("admin-token"))
        .args(["customer", "list"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(i32::from(exit::TEMPORARY)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn admin_cli_exits_75_when_the_server_fails() {
    use std::io::{Read, Write};
    // A stand-in admin API that fails every request, as one with its database down.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = r#"{"code":"INTERNAL","message":"internal error, see the server log"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let dir = init_dir(None);
    let out = Command::new(BIN)
        .args([
            "admin",
            "--admin-url",
            &format!("http://{addr}"),
            "--token-file",
        ])
        .arg(dir.path().join("admin-token"))
        .args(["customer", "list"])
        .output()
        .expect("run");
    failed_saying(&out, i32::from(exit::TEMPORARY), "500");
}

#[test]
fn init_keeps_existing_keys() {
    let dir = init_dir(None);
    let key = std::fs::read(dir.path().join("solme-signing.pem")).expect("key");
    let token = std::fs::read(dir.path().join("admin-token")).expect("token");
    let out = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(dir.path().join("solme-signing.pem")).expect("key"),
        key
    );
    assert_eq!(
        std::fs::read(dir.path().join("admin-token")).expect("token"),
        token
    );
    use std::os::unix::fs::PermissionsExt;
    for private in [
        "solme-signing.pem",
        "ca-key.pem",
        "tls-key.pem",
        "admin-token",
    ] {
        let mode = std::fs::metadata(dir.path().join(private))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{private}");
    }
}

/// A failed command tells its error once: no log line repeating it, each cause once,
/// and an operating-system error without its "(os error N)" code.
#[test]
fn a_failed_command_tells_its_error_once() {
    let empty = tempfile::tempdir().expect("tempdir");
    let serve = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(empty.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("run serve");
    let token = Command::new(BIN)
        .args(["admin", "--admin-url", "http://127.0.0.1:9", "--token-file"])
        .arg(empty.path().join("no-token"))
        .args(["customer", "list"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run admin");
    for out in [serve, token] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(i32::from(exit::FAILED)), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: "), "{err}");
        assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
        assert!(!err.contains("os error"), "{err}");
    }
}

/// Renaming, removing a contact and a second customer of one name, from the CLI: the
/// refusals say what to do, and `--confirm-duplicate-name` confirms.
#[actix_rt::test]
async fn admin_cli_renames_removes_contacts_and_confirms_duplicate_names() {
    let app = spawn_app().await;
    let dir = app.data_dir();
    let acme = json_of(&admin(
        &dir,
        &[
            "--json",
            "customer",
            "add",
            "--name",
            "Acme",
            "--email",
            "ops@acme.example,it@acme.example",
        ],
    ));
    let acme_id = acme["id"].as_str().expect("id").to_owned();

    let again = admin(&dir, &["customer", "add", "--name", "acme"]);
    failed_saying(&again, 1, "CONFIRMATION_REQUIRED");
    failed_saying(&again, 1, "run it again with --confirm-duplicate-name");
    let second = json_of(&admin(
        &dir,
        &[
            "--json",
            "customer",
            "add",
            "--name",
            "acme",
            "--confirm-duplicate-name",
        ],
    ));
    let second_id = second["id"].as_str().expect("id").to_owned();

    let taken = admin(
        &dir,
        &["customer", "add-email", &second_id, "ops@acme.example"],
    );
    failed_saying(&taken, 1, "CONTACT_IN_USE");

    let renamed = json_of(&admin(
        &dir,
        &[
            "--json",
            "customer",
            "rename",
            &second_id,
            "--name",
            "Acme Labs",
        ],
    ));
    assert_eq!(renamed["name"], "Acme Labs");
    failed_saying(
        &admin(&dir, &["customer", "rename", &second_id, "--name", "ACME"]),
        1,
        "--confirm-duplicate-name",
    );

    let left = json_of(&admin(
        &dir,
        &[
            "--json",
            "customer",
            "remove-email",
            &acme_id,
            "IT@acme.example",
        ],
    ));
    assert_eq!(left["emails"], serde_json::json!(["ops@acme.example"]));
    let last = admin(
        &dir,
        &["customer", "remove-email", &acme_id, "ops@acme.example"],
    );
    failed_saying(&last, 1, "LAST_CONTACT");
    failed_saying(&last, 1, "add another address first");
    let table = succeeded(&admin(&dir, &["customer", "list"]));
    assert!(
        table.contains("Acme Labs") && table.contains("ops@acme.example"),
        "{table}"
    );
    assert!(!table.contains("it@acme.example"), "{table}");
}

/// `license change --max-borrow-hours` sets and clears a license's borrow limit.
#[actix_rt::test]
async fn admin_cli_sets_and_clears_a_borrow_limit() {
    let app = spawn_app().await;
    let (_, server_id) = app.register().await;
    let (_, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    let license_id = server["licenses"][0]["id"].as_str().expect("id").to_owned();
    let dir = app.data_dir();
    let sid = server_id.to_string();
    let change = |limit: &str| {
        admin(
            &dir,
            &[
                "--json",
                "license",
                "change",
                &sid,
                &license_id,
                "--max-borrow-hours",
                limit,
            ],
        )
    };
    assert_eq!(json_of(&change("48"))["max_borrow_hours"], 48);
    assert!(json_of(&change("none"))["max_borrow_hours"].is_null());
    failed_saying(&change("0"), 2, "hours from 1 to 8784");
}

#[test]
fn usage_mistakes_exit_2_with_the_expected_form_not_a_parser_message() {
    // No server: the flags are refused before anything is read or sent.
    let dir = tempfile::tempdir().unwrap();
    let id = "6f0c1a52-3b8e-4d27-9a51-0c2b7f3e9d10";
    for (args, expected) in [
        (
            vec![
                "license",
                "add",
                id,
                "--feature",
                "cad",
                "--seats",
                "1",
                "--valid-until",
                "2027-02-30",
            ],
            "expected YYYY-MM-DD",
        ),
        (vec!["server", "show", "not-a-uuid"], "expected one like"),
        (vec!["server", "show", "6f0c1a52"], "expected one like"),
    ] {
        let out = admin(dir.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(i32::from(exit::USAGE)),
            "{args:?}: {err}"
        );
        assert!(err.contains(expected), "{args:?}: {err}");
        for internal in [
            "invalid character",
            "found `",
            "out of range",
            "listening.json",
        ] {
            assert!(!err.contains(internal), "{args:?}: {err}");
        }
    }
}

/// `license add` refuses a feature name outside the rule and a license already ended
/// unless `--confirm-ended`; `license change` asks the same for a past end.
#[actix_rt::test]
async fn admin_cli_checks_feature_names_and_confirms_ended_licenses() {
    let app = spawn_app().await;
    let (_, server_id) = app.register().await;
    let dir = app.data_dir();
    let sid = server_id.to_string();
    let add = |feature: &str, extra: &[&str]| {
        let mut args = vec![
            "--json",
            "license",
            "add",
            &sid,
            "--feature",
            feature,
            "--seats",
            "2",
        ];
        args.extend_from_slice(extra);
        admin(&dir, &args)
    };
    failed_saying(&add("cad cam", &[]), 1, "MALFORMED");
    failed_saying(&add("cad cam", &[]), 1, "letters, digits, '-', '_' or '.'");
    let ended = add("cam", &["--valid-until", "2020-01-01"]);
    failed_saying(&ended, 1, "CONFIRMATION_REQUIRED");
    failed_saying(&ended, 1, "--confirm-ended");
    let added = json_of(&add(
        "cam",
        &["--valid-until", "2020-01-01", "--confirm-ended"],
    ));
    assert_eq!(added["feature"], "cam");
    let license_id = added["id"].as_str().expect("id").to_owned();
    let change = |extra: &[&str]| {
        let mut args = vec!["--json", "license", "change", &sid, &license_id];
        args.extend_from_slice(extra);
        admin(&dir, &args)
    };
    failed_saying(
        &change(&["--valid-until", "2021-01-01"]),
        1,
        "--confirm-ended",
    );
    let changed = json_of(&change(&["--valid-until", "2021-01-01", "--confirm-ended"]));
    assert_eq!(changed["valid_until"], "2021-01-01T00:00:00Z");
}

#[actix_rt::test]
async fn a_refused_token_is_said_with_the_file_it_came_from() {
    let app = spawn_app().await;
    let dir = app.data_dir();
    let token_file = dir.join("old-token");
    std::fs::write(&token_file, "not-a-token-of-this-server").expect("write");
    let out = admin(
        &dir,
        &[
            "--token-file",
            token_file.to_str().expect("path"),
            "customer",
            "list",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("the token in {}", token_file.display()))
            && stderr.contains("check that file")
            && !stderr.contains("Authorization"),
        "{stderr}"
    );
}

/// `server retire` asks for `--force` while a key pair is bound, and `server move`
/// gives the id to another customer; `server show` says retired.
#[actix_rt::test]
async fn admin_cli_retires_and_moves_ids() {
    let app = spawn_app().await;
    let (server_id, local) = app.register_local().await;
    let answer = app.post_sync(&local.sync_data()).await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.body);
    let dir = app.data_dir();
    let sid = server_id.to_string();
    let beta = json_of(&admin(
        &dir,
        &[
            "--json",
            "customer",
            "add",
            "--name",
            "Beta",
            "--email",
            "it@beta.example",
        ],
    ));
    let beta_id = beta["id"].as_str().expect("id").to_owned();
    let moved = json_of(&admin(
        &dir,
        &["--json", "server", "move", &sid, "--customer", &beta_id],
    ));
    assert_eq!(moved["customer_name"], "Beta");
    let refused = admin(&dir, &["server", "retire", &sid, "--reason", "ended"]);
    failed_saying(&refused, 1, "CONFIRMATION_REQUIRED");
    failed_saying(&refused, 1, "--force");
    let shown = succeeded(&admin(
        &dir,
        &["server", "retire", &sid, "--reason", "ended", "--force"],
    ));
    assert!(shown.contains("RETIRED on "), "{shown}");
    let list = succeeded(&admin(&dir, &["server", "list"]));
    assert!(list.contains("retired"), "{list}");
    failed_saying(
        &admin(
            &dir,
            &["server", "retire", &sid, "--reason", "again", "--force"],
        ),
        1,
        "SERVER_RETIRED",
    );
}

/// What an operator reads before deciding: a customer with its ids, an id's revision
/// against what its server holds, a key-clear request with what to weigh; and the
/// possible-copy verbs (show the mark, dismiss it, set the customer's policy).
#[actix_rt::test]
async fn admin_cli_shows_what_deciding_needs_and_handles_possible_copies() {
    let app = spawn_app().await;
    let dir = app.data_dir();
    let (server_id, local) = app.register_local().await;
    let (_, customers) = app.get("/admin/v1/customers").await;
    let customer_id = customers[0]["id"].as_str().expect("id").to_owned();
    let id = server_id.to_string();

    let shown = succeeded(&admin(&dir, &["customer", "show", &customer_id]));
    for part in [
        "name             Acme",
        "contacts         ops@acme.example",
        "possible copies  warn: a marked id is shown, its syncs still answered",
        "license server ids (1 in all):",
        &id,
    ] {
        assert!(shown.contains(part), "{part:?} not in {shown}");
    }
    let listed = json_of(&admin(
        &dir,
        &["--json", "server", "list", "--customer", &customer_id],
    ));
    assert_eq!(listed[0]["server_id"], id.as_str(), "{listed}");

    let answer = app.post_sync(&local.sync_data()).await;
    assert_eq!(answer.status, awc::http::StatusCode::OK, "{}", answer.body);
    let (status, body) = app
        .post_license(server_id, serde_json::json!({"feature": "cam", "seats": 1}))
        .await;
    assert_eq!(status, awc::http::StatusCode::CREATED, "{body}");
    let shown = succeeded(&admin(&dir, &["server", "show", &id]));
    assert!(
        shown.contains("server holds  revision 3, the server holds 2: changes not yet synced"),
        "{shown}"
    );
    assert!(shown.contains("copies        not marked"), "{shown}");

    let request = app
        .key_clear_request(
            server_id,
            "<9@acme.example>",
            serde_json::json!({"text": "new server"}),
        )
        .await;
    let request_id = request["id"].as_str().expect("id");
    let shown = succeeded(&admin(&dir, &["requests", "show", request_id]));
    for part in [
        "to weigh:",
        "customer        Acme",
        &format!("key pair now    {}", local.identity.fingerprint()),
        "by internet",
        "days from now): the installation holding the last license file issues seats until then",
        "other contacts  none: the sender is the only contact",
    ] {
        assert!(shown.contains(part), "{part:?} not in {shown}");
    }

    let shown = succeeded(&admin(&dir, &["server", "possible-copy", &id]));
    assert!(shown.contains("is not marked a possible copy"), "{shown}");
    let set = json_of(&admin(
        &dir,
        &["--json", "customer", "copy-policy", &customer_id, "refuse"],
    ));
    assert_eq!(set["policy"], "refuse");
    let said = succeeded(&admin(
        &dir,
        &["customer", "copy-policy", &customer_id, "warn"],
    ));
    assert!(said.contains("warn: a marked id is shown"), "{said}");
    let out = admin(&dir, &["customer", "copy-policy", &customer_id, "block"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let said = succeeded(&admin(
        &dir,
        &[
            "server",
            "dismiss-copy",
            &id,
            "--reason",
            "checked with the customer",
        ],
    ));
    assert!(
        said.contains("was not marked a possible copy: nothing changed"),
        "{said}"
    );
}

/// A marked id: `server possible-copy` prints the mark in words and the requests
/// going back, `server show` names it, `server dismiss-copy` clears it.
#[actix_rt::test]
async fn admin_cli_shows_and_dismisses_a_possible_copy() {
    let app = spawn_app().await;
    let dir = app.data_dir();
    let (server_id, local) = app.register_local().await;
    let mut at = chrono::Utc::now() - chrono::Duration::minutes(5);
    let mut sequences: Vec<i64> = Vec::new();
    // The original counts 1, 2, 3, 4; a copy made after 2 sends 3 and 4 again.
    for (counter, held) in [
        (1, None),
        (2, Some(0)),
        (3, Some(1)),
        (3, Some(1)),
        (4, Some(2)),
        (4, Some(3)),
    ] {
        at += chrono::Duration::seconds(1);
        let held = held.map(|i: usize| sequences[i]);
        let answer = app.post_sync(&local.sync_data_as(counter, held, at)).await;
        assert_eq!(answer.status, awc::http::StatusCode::OK, "{}", answer.body);
        sequences.push(local.open(&app, &answer.body).sequence);
    }
    let id = server_id.to_string();

    let shown = succeeded(&admin(&dir, &["server", "possible-copy", &id]));
    for part in [
        "possible copy, marked since ",
        "Two installations seem to synchronize with this id's key pair",
        "went back 2 times among the newest 6",
        "MADE",
        "went back",
    ] {
        assert!(shown.contains(part), "{part:?} not in {shown}");
    }
    assert_eq!(shown.matches("  went back").count(), 2, "{shown}");
    let shown = succeeded(&admin(&dir, &["server", "show", &id]));
    assert!(
        shown.contains("copies        POSSIBLE COPY since "),
        "{shown}"
    );
    let listed = succeeded(&admin(&dir, &["server", "list"]));
    assert!(listed.contains("POSSIBLE COPY"), "{listed}");

    let said = succeeded(&admin(
        &dir,
        &[
            "server",
            "dismiss-copy",
            &id,
            "--reason",
            "a restored backup",
        ],
    ));
    assert!(
        said.contains("is dismissed; its history of requests is forgotten"),
        "{said}"
    );
    let (_, server) = app.get(&format!("/admin/v1/servers/{id}")).await;
    assert!(server["possible_copy_since"].is_null(), "{server}");
}
