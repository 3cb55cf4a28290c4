//! The admin API and console over HTTPS with the data directory's certificate: plain
//! HTTP is refused unless asked for on loopback, and the admin CLI trusts only the
//! pinned CA. The TLS hygiene an outside auditor checks, over the real binary: the
//! server certificate's lifetime and its renewal, the server's own cipher order, and
//! the security headers of the sync listeners.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::ssl::{SslConnector, SslConnectorBuilder, SslMethod, SslStream, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
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

/// A server started by the real binary on `dir` (running `init` first when the
/// directory has none).
fn serve(dir: &Path) -> MainServer {
    let options = MainOptions {
        workers: Some(1),
        ..MainOptions::default()
    };
    MainServer::start(dir, options).expect("start main-server")
}

/// A TLS connection to `addr` for the name `name` that trusts only the CA in `ca`
/// (so a handshake proves the certificate chains to it and holds `name`), with the
/// client set up by `setup`.
fn handshake(
    addr: SocketAddr,
    name: &str,
    ca: &Path,
    setup: impl FnOnce(&mut SslConnectorBuilder),
) -> SslStream<TcpStream> {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).expect("TLS context");
    let mut store = X509StoreBuilder::new().expect("store");
    let ca = X509::from_pem(&std::fs::read(ca).expect("read the CA")).expect("CA PEM");
    store.add_cert(ca).expect("trust the CA");
    builder.set_cert_store(store.build());
    setup(&mut builder);
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    builder
        .build()
        .connect(name, tcp)
        .unwrap_or_else(|e| panic!("TLS handshake with {addr} as {name}: {e}"))
}

/// The certificate `addr` presents.
fn served_certificate(addr: SocketAddr, ca: &Path) -> X509 {
    handshake(addr, "localhost", ca, |_| {})
        .ssl()
        .peer_certificate()
        .expect("a server certificate")
}

/// Whole days from now until the certificate's end.
fn days_left(cert: &X509) -> i32 {
    let now = Asn1Time::days_from_now(0).expect("now");
    now.diff(cert.not_after()).expect("compare times").days
}

#[test]
fn the_served_certificate_lasts_at_most_397_days() {
    let dir = tempfile::TempDir::new().expect("dir");
    let main = serve(dir.path());
    for addr in main.sync.iter().chain([&main.admin.addr]) {
        let cert = served_certificate(*addr, &main.ca_file());
        let span = cert
            .not_before()
            .diff(cert.not_after())
            .expect("compare times");
        assert!(
            span.days < 397 || (span.days == 397 && span.secs == 0),
            "{addr}: valid from {} until {}",
            cert.not_before(),
            cert.not_after()
        );
    }
}

#[test]
fn a_certificate_ending_within_30_days_is_renewed_at_serve_start() {
    let dir = init_dir(None);
    let path = |name: &str| dir.path().join(name);
    // A certificate for localhost and main.example issued 380 days ago by the data
    // directory's CA: it ends in 16 or 17 days.
    let ca = main_server::tls::Issued {
        cert_pem: std::fs::read(path("ca.pem")).expect("CA"),
        key_pem: std::fs::read(path("ca-key.pem")).expect("CA key"),
    };
    let issued_at = chrono::Utc::now() - chrono::Duration::days(380);
    let old = main_server::tls::make_server_cert(&ca, &["main.example".into()], issued_at)
        .expect("an old certificate");
    std::fs::write(path("tls-cert.pem"), &old.cert_pem).expect("write the certificate");
    std::fs::write(path("tls-key.pem"), &old.key_pem).expect("write the key");
    let old = X509::from_pem(&old.cert_pem).expect("PEM");
    assert!(days_left(&old) < 30, "{}", old.not_after());

    let main = serve(dir.path());
    let ca_cert = X509::from_pem(&ca.cert_pem).expect("CA PEM");
    let on_disk = X509::from_pem(&std::fs::read(path("tls-cert.pem")).expect("read")).expect("PEM");
    for addr in main.sync.iter().chain([&main.admin.addr]) {
        // Still for the names the old one held, and still from the pinned CA (the
        // handshake verifies both).
        let stream = handshake(*addr, "main.example", &main.ca_file(), |_| {});
        let cert = stream.ssl().peer_certificate().expect("a certificate");
        assert_ne!(
            cert.to_der().expect("DER"),
            old.to_der().expect("DER"),
            "{addr}"
        );
        assert_eq!(cert.to_der().expect("DER"), on_disk.to_der().expect("DER"));
        assert!(days_left(&cert) > 360, "{addr}: ends {}", cert.not_after());
        let ca_key = ca_cert.public_key().expect("CA key");
        assert!(cert.verify(&ca_key).expect("verify"), "{addr}");
    }
    let key_mode = std::fs::metadata(path("tls-key.pem"))
        .expect("key")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777,
        0o600
    );
}

/// The server chooses among the ciphers both sides offer by its own order: a client
/// offering the server's choices in reverse still gets the server's first.
#[test]
fn the_server_prefers_its_own_cipher_order() {
    let dir = tempfile::TempDir::new().expect("dir");
    let main = serve(dir.path());
    // The TLS 1.2 and 1.3 choices for an ECDSA certificate, in the server's order
    // (Mozilla's "intermediate" configuration).
    let tls12 = [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ];
    let tls13 = [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
    ];
    let reversed = |list: &[&str]| list.iter().rev().copied().collect::<Vec<_>>().join(":");
    for addr in main.sync.iter().chain([&main.admin.addr]) {
        let stream = handshake(*addr, "localhost", &main.ca_file(), |client| {
            client
                .set_max_proto_version(Some(SslVersion::TLS1_2))
                .expect("TLS 1.2");
            client.set_cipher_list(&reversed(&tls12)).expect("ciphers");
        });
        let cipher = stream.ssl().current_cipher().expect("a cipher").name();
        assert_eq!(cipher, tls12[0], "{addr} over TLS 1.2");

        let stream = handshake(*addr, "localhost", &main.ca_file(), |client| {
            client
                .set_min_proto_version(Some(SslVersion::TLS1_3))
                .expect("TLS 1.3");
            client.set_ciphersuites(&reversed(&tls13)).expect("suites");
        });
        let cipher = stream.ssl().current_cipher().expect("a cipher").name();
        assert_eq!(cipher, tls13[0], "{addr} over TLS 1.3");
    }
}

/// The head of an answer to `GET path` over TLS, with lower-case header names.
fn get_head(addr: SocketAddr, ca: &Path, path: &str) -> (String, Vec<(String, String)>) {
    let mut stream = handshake(addr, "localhost", ca, |_| {});
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    // The server closes after answering; a close without TLS close-notify still
    // leaves the whole answer read.
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers)
}

#[test]
fn the_sync_listeners_answer_with_the_page_headers_and_hsts() {
    let dir = tempfile::TempDir::new().expect("dir");
    let main = serve(dir.path());
    let mut answers = Vec::new();
    for addr in &main.sync {
        for path in ["/api/v1/health", "/api/v1/time", "/no/such/page"] {
            answers.push((*addr, path, get_head(*addr, &main.ca_file(), path)));
        }
    }
    // The console page on the admin listener carries HSTS too.
    answers.push((
        main.admin.addr,
        "/",
        get_head(main.admin.addr, &main.ca_file(), "/"),
    ));
    for (addr, path, (status, headers)) in &answers {
        let page = format!("{addr}{path} ({status})");
        let header = |name: &str| -> &str {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{page} has no {name}: {headers:?}"))
        };
        test_harness::browser::assert_page_headers(header, &["default-src 'none'"], &page);
        assert_eq!(header("referrer-policy"), "no-referrer", "{page}");
        let hsts = header("strict-transport-security");
        let max_age: u64 = hsts
            .split(';')
            .find_map(|part| part.trim().strip_prefix("max-age="))
            .and_then(|age| age.parse().ok())
            .unwrap_or_else(|| panic!("{page}: {hsts}"));
        assert!(max_age >= 31_536_000, "{page}: {hsts}");
    }
}

#[test]
fn renew_certificate_keeps_a_fresh_certificate_and_renews_when_forced() {
    let dir = init_dir(None);
    let cert = || std::fs::read(dir.path().join("tls-cert.pem")).expect("certificate");
    let before = cert();
    let renew = |extra: &[&str]| {
        Command::new(BIN)
            .arg("renew-certificate")
            .arg("--data-dir")
            .arg(dir.path())
            .args(extra)
            .env_remove("MAIN_SERVER_DATA_DIR")
            .output()
            .expect("run renew-certificate")
    };
    let out = renew(&[]);
    assert!(succeeded(&out).contains("kept"), "{}", stderr(&out));
    assert_eq!(cert(), before);
    let out = renew(&["--force"]);
    assert!(succeeded(&out).contains("renewed"), "{}", stderr(&out));
    assert_ne!(cert(), before);
}
