//! The admin API and console over HTTPS with the data directory's certificate: plain
//! HTTP is refused unless asked for on loopback, and the admin CLI trusts only the
//! pinned CA.

use std::io::{Read, Write};
use std::process::{Command, Output};
use std::time::Duration;

use test_harness::{MainOptions, MainServer};

use crate::helpers::{failed_saying, init_dir, spawn_app, succeeded, BIN};

/// `main-server admin ARGS customer list`, with no admin settings from the environment.
fn admin_cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("admin")
        .args(args)
        .args(["customer", "list"])
        .env_remove("MAIN_SERVER_ADMIN_URL")
        .env_remove("MAIN_SERVER_TOKEN_FILE")
        .env_remove("MAIN_SERVER_CA")
        .env_remove("MAIN_SERVER_DATA_DIR")
        .output()
        .expect("run admin")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[actix_rt::test]
async fn the_admin_listener_does_not_answer_plain_http() {
    let app = spawn_app().await;
    let addr = app.listening.admin.addr;
    assert!(app.listening.admin.tls, "{}", app.listening.admin);
    assert!(app.admin_base().starts_with("https://"));
    let answer = actix_rt::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream
            .write_all(b"GET /admin/v1/customers HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("send");
        let mut answer = Vec::new();
        // The TLS side closes the connection (an error here is a closed one too).
        let _ = stream.read_to_end(&mut answer);
        answer
    })
    .await
    .expect("plain request");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "a plain HTTP answer: {}",
        String::from_utf8_lossy(&answer)
    );
    // Over HTTPS the same listener answers.
    let (status, _) = app.get("/admin/v1/customers").await;
    assert_eq!(status.as_u16(), 200);
}

#[actix_rt::test]
async fn the_admin_cli_trusts_only_the_pinned_ca() {
    let app = spawn_app().await;
    let url = app.admin_base();
    let token = app.data_dir().join("admin-token");
    let token = token.to_str().expect("UTF-8 path").to_owned();
    let other = init_dir(None);
    let other_ca = other.path().join("ca.pem");
    let own_ca = app.data_dir().join("ca.pem");
    let (wrong, missing, right) = actix_rt::task::spawn_blocking(move || {
        let base = ["--admin-url", url.as_str(), "--token-file", token.as_str()];
        let with_ca = |ca: &std::path::Path| {
            let mut args = base.to_vec();
            args.extend(["--ca", ca.to_str().expect("UTF-8 path")]);
            admin_cli(&args)
        };
        (with_ca(&other_ca), admin_cli(&base), with_ca(&own_ca))
    })
    .await
    .expect("admin CLI");

    failed_saying(&wrong, 1, "a certificate that is not from the expected CA");
    failed_saying(&missing, 1, "give --ca FILE");
    succeeded(&right);
}

#[test]
fn the_admin_cli_sends_no_token_over_plain_http_to_another_host() {
    let dir = init_dir(None);
    let token = dir.path().join("admin-token");
    let token = token.to_str().expect("UTF-8 path");
    for url in ["http://192.0.2.1:8081", "ftp://127.0.0.1:8081"] {
        let out = admin_cli(&["--admin-url", url, "--token-file", token]);
        assert_eq!(out.status.code(), Some(1), "{url}: {}", stderr(&out));
        assert!(stderr(&out).contains("https://"), "{url}: {}", stderr(&out));
    }
    let out = admin_cli(&[
        "--admin-url",
        "http://192.0.2.1:8081",
        "--token-file",
        token,
    ]);
    assert!(
        stderr(&out).contains("refusing to send a token in the clear"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plain_http_is_refused_on_a_non_loopback_admin_address() {
    let dir = init_dir(None);
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"])
        .arg("--admin-plain-http")
        .env_remove("MAIN_SERVER_DATABASE_URL")
        .output()
        .expect("run serve");
    failed_saying(&out, 2, "--admin-plain-http is only allowed on a loopback");
    assert!(!dir.path().join("listening.json").exists());
}

#[test]
fn plain_http_on_loopback_serves_the_admin_api_and_the_cli_follows() {
    let dir = tempfile::TempDir::new().expect("dir");
    let options = MainOptions {
        workers: Some(1),
        admin_plain_http: true,
        ..MainOptions::default()
    };
    let main = MainServer::start(dir.path(), options).expect("start main-server");
    assert!(
        main.admin_url().starts_with("http://127.0.0.1:"),
        "{}",
        main.admin_url()
    );
    let admin = main.admin().expect("admin client");
    admin
        .customer("Plain", &["ops@plain.example"])
        .expect("a customer over plain HTTP");
    // The CLI reads the scheme from listening.json.
    let out = main.admin_cli(&["customer", "list"]).expect("admin CLI");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("Plain"), "{}", out.stdout);
}

/// Chromium loads the console only with the pin of the server's certificate: the
/// harness pins that one certificate rather than ignoring every certificate error.
#[actix_rt::test]
async fn chromium_opens_the_console_only_with_the_certificate_pinned() {
    use test_harness::browser::{chromium_command, chromium_present, trust_certificate};
    if !chromium_present() {
        return;
    }
    let app = spawn_app().await;
    let url = format!("{}/", app.admin_base());
    let cert = app.data_dir().join("tls-cert.pem");
    let (unpinned, pinned) = actix_rt::task::spawn_blocking(move || {
        let dump = |pin: bool| {
            let profile = tempfile::TempDir::new().expect("profile dir");
            let mut chromium = chromium_command(profile.path());
            if pin {
                trust_certificate(&mut chromium, &cert).expect("pin");
            }
            let out = chromium
                .args(["--virtual-time-budget=3000", "--dump-dom"])
                .arg(&url)
                .output()
                .expect("run chromium");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        (dump(false), dump(true))
    })
    .await
    .expect("chromium");
    let title = "<title>Solme operator console</title>";
    assert!(
        !unpinned.contains(title),
        "loaded without the pin: {unpinned}"
    );
    assert!(pinned.contains(title), "{pinned}");
}
