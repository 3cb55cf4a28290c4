//! The web operator console on the admin listener: served without a token and with
//! strict security headers, while the API behind it still needs the token. When
//! `/usr/bin/chromium` exists, a headless Chromium renders the page, and (through the
//! DevTools protocol) signs in, lists data and shows a wrong token's refusal.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use awc::http::{Method, StatusCode};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tempfile::TempDir;
use test_harness::browser::{chromium_command, chromium_present, trust_certificate};

use crate::helpers::{spawn_app, TestApp};

fn header<'a>(headers: &'a awc::http::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("missing header {name}"))
}

#[actix_rt::test]
async fn console_is_served_without_a_token_with_security_headers() {
    let app = spawn_app().await;
    for (path, content_type) in [
        ("/", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let (status, headers, body) = app.get_page(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            header(&headers, "content-type").starts_with(content_type),
            "{path}"
        );
        let csp = header(&headers, "content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp} lacks {directive}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "x-frame-options"), "DENY");
        assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
        assert!(!body.is_empty(), "{path}");
    }

    let (_, _, page) = app.get_page("/").await;
    assert!(page.contains("<title>Solme operator console</title>"));
    assert!(page.contains(r#"<script src="/console/console.js" defer></script>"#));
    assert!(page.contains(r#"<link rel="stylesheet" href="/console/console.css">"#));
    // The CSP would block inline code anyway; keep the page free of it.
    assert_eq!(
        page.matches("<script").count(),
        1,
        "inline script in the page"
    );
    assert!(!page.contains("<style") && !page.contains(" style="));
    let handlers = page.split(" on").skip(1).filter(|rest| {
        let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert_eq!(handlers.count(), 0, "inline event handler in the page");
    let (_, _, script) = app.get_page("/console/console.js").await;
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!script.contains(sink), "console.js uses {sink}");
    }
    assert!(
        !script.contains("localStorage"),
        "the token must stay in sessionStorage"
    );
}

#[actix_rt::test]
async fn the_api_behind_the_console_still_needs_the_token() {
    let app = spawn_app().await;
    for token in [None, Some("wrong-token")] {
        let (status, body) = app
            .admin(Method::GET, "/admin/v1/customers", None, token)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(body["code"], "UNAUTHORIZED");
    }
    // What a cross-site form can send: no Authorization header, a form body.
    let mut response = app
        .http
        .post(format!("{}/admin/v1/customers", app.admin_base()))
        .insert_header(("Origin", "http://evil.example"))
        .content_type("application/x-www-form-urlencoded")
        .send_body("name=Mallory")
        .await
        .expect("form post");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["code"], "UNAUTHORIZED");
    // The console's page does not open the API either.
    let (status, body) = app
        .admin(Method::POST, "/", Some(json!({"name": "Mallory"})), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, list) = app.get("/admin/v1/customers").await;
    assert_eq!(list, json!([]));
}

#[actix_rt::test]
async fn chromium_renders_the_console() {
    if !chromium_present() {
        return;
    }
    let app = spawn_app().await;
    let profile = TempDir::new().expect("profile dir");
    let url = format!("{}/", app.admin_base());
    let mut chromium = chromium_command(profile.path());
    trust_certificate(&mut chromium, &app.data_dir().join("tls-cert.pem")).expect("pin");
    let out = actix_web::rt::task::spawn_blocking(move || {
        chromium
            .args(["--virtual-time-budget=3000", "--dump-dom"])
            .arg(url)
            .output()
            .expect("run chromium")
    })
    .await
    .expect("chromium task");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "chromium failed: {dom}");
    assert!(
        dom.contains("<title>Solme operator console</title>"),
        "{dom}"
    );
    for heading in [
        "Customers",
        "License server ids",
        "Key-clear requests (from email)",
        "Audit log",
    ] {
        assert!(
            dom.contains(&format!("<h2>{heading}</h2>")),
            "{heading}: {dom}"
        );
    }
    // The script ran under the CSP: it marked the page and replaced the no-script note.
    assert!(
        dom.contains(r#"data-console="ready""#),
        "script did not run: {dom}"
    );
    assert!(dom.contains("Paste the operator token"), "{dom}");
}

/// The DevTools websocket (awc's framed socket, named by what it does).
trait DevToolsSocket:
    futures_util::Stream<Item = Result<awc::ws::Frame, awc::error::WsProtocolError>>
    + futures_util::Sink<awc::ws::Message, Error = awc::error::WsProtocolError>
{
}

impl<T> DevToolsSocket for T where
    T: futures_util::Stream<Item = Result<awc::ws::Frame, awc::error::WsProtocolError>>
        + futures_util::Sink<awc::ws::Message, Error = awc::error::WsProtocolError>
{
}

/// A headless Chromium driven over the DevTools protocol; killed (with its process
/// group) on drop.
struct Browser {
    child: Child,
    _profile: TempDir,
    ws: std::pin::Pin<Box<dyn DevToolsSocket>>,
    next_id: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // `kill -s KILL -- -PGID`: the `--` matters. procps-ng 4.0.2 reads `kill -KILL
        // -12345` as process group 1 (its first digit): kill(-1) ends every process.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--"])
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Chromium trusting the server certificate in `cert_file`.
    async fn start(cert_file: &Path) -> Self {
        use std::os::unix::process::CommandExt;
        let profile = TempDir::new().expect("profile dir");
        let mut chromium = chromium_command(profile.path());
        trust_certificate(&mut chromium, cert_file).expect("pin the certificate");
        let child = chromium
            .args(["--remote-debugging-port=0", "--window-size=1280,900"])
            .arg("about:blank")
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromium");
        let port_file = profile.path().join("DevToolsActivePort");
        let port = test_harness::wait_until_async(
            "chromium's DevTools port",
            Duration::from_secs(30),
            || async {
                std::fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u16>().ok()))
            },
        )
        .await
        .expect("chromium starts");
        let http = awc::Client::new();
        let targets: Value = http
            .get(format!("http://127.0.0.1:{port}/json/list"))
            .send()
            .await
            .expect("DevTools targets")
            .json()
            .await
            .expect("targets JSON");
        let ws_url = targets
            .as_array()
            .and_then(|list| list.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (_, ws) = http
            .ws(ws_url)
            .max_frame_size(16 << 20)
            .connect()
            .await
            .expect("DevTools websocket");
        Self {
            child,
            _profile: profile,
            ws: Box::pin(ws),
            next_id: 0,
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws
            .send(awc::ws::Message::Text(message.into()))
            .await
            .expect("DevTools send");
        loop {
            let frame = actix_web::rt::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("DevTools answer in time")
                .expect("DevTools connection open")
                .expect("DevTools frame");
            if let awc::ws::Frame::Text(bytes) = frame {
                let value: Value = serde_json::from_slice(&bytes).expect("DevTools JSON");
                if value["id"] == id {
                    assert!(value.get("error").is_none(), "{method}: {value}");
                    return value["result"].clone();
                }
            }
        }
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Shows the page's `tab` (`#servers`, …) and waits until its table holds `text`.
    async fn open_tab(&mut self, tab: &str, text: &str) {
        self.eval(&format!("location.hash = '#{tab}'; true")).await;
        self.wait_for(&format!(
            "document.getElementById('{tab}-body').textContent.includes('{text}')"
        ))
        .await;
    }

    /// Evaluates `expression` until it is true (the page loads data asynchronously).
    async fn wait_for(&mut self, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.eval(expression).await != json!(true) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {expression}; page text: {}",
                self.eval("document.body.innerText").await
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// With `SOLME_CONSOLE_SCREENSHOTS=DIR`, saves the page as `DIR/NAME.png` (to look
    /// at the console while working on it).
    async fn screenshot(&mut self, name: &str) {
        let Ok(dir) = std::env::var("SOLME_CONSOLE_SCREENSHOTS") else {
            return;
        };
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            shot["data"].as_str().unwrap_or(""),
        )
        .expect("screenshot");
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// A browser on the console's page of `app`, ready for sign-in.
    async fn open_console(app: &TestApp) -> Self {
        let mut browser = Self::start(&app.data_dir().join("tls-cert.pem")).await;
        browser.call("Page.enable", json!({})).await;
        browser
            .call(
                "Page.navigate",
                json!({"url": format!("{}/", app.admin_base())}),
            )
            .await;
        browser
            .wait_for("document.body && document.body.dataset.console === 'ready'")
            .await;
        browser
    }

    async fn sign_in(&mut self, token: &str) {
        let script = format!(
            "document.getElementById('token').value = {}; \
             document.getElementById('sign-in-form').requestSubmit(); true",
            json!(token)
        );
        self.eval(&script).await;
    }
}

#[actix_rt::test]
async fn chromium_signs_in_and_shows_data_as_text() {
    if !chromium_present() {
        return;
    }
    let app = spawn_app().await;
    let (_, server_id) = app.register().await;
    let hostile = "<img src=x onerror=\"document.title='owned'\">";
    let (status, _) = app
        .post(
            "/admin/v1/customers",
            json!({"name": hostile, "emails": ["it@hostile.example"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let mut browser = Browser::open_console(&app).await;

    browser.screenshot("sign-in").await;

    // A wrong token: the API's refusal is shown and the sign-in form stays.
    browser.sign_in("not-the-token").await;
    browser
        .wait_for("document.getElementById('message').textContent.startsWith('UNAUTHORIZED: ')")
        .await;
    browser.screenshot("wrong-token").await;
    assert_eq!(
        browser
            .eval("document.getElementById('view-sign-in').hidden")
            .await,
        json!(false)
    );
    assert_eq!(
        browser
            .eval("sessionStorage.getItem('solme.console.token')")
            .await,
        Value::Null,
        "the wrong token was kept"
    );

    // The right token: customers are listed, the hostile name as plain text.
    browser.sign_in(&app.token).await;
    browser
        .wait_for("document.getElementById('customers-body').textContent.includes('Acme')")
        .await;
    let cells = browser
        .eval("document.getElementById('customers-body').textContent")
        .await;
    assert!(cells.as_str().unwrap_or("").contains(hostile), "{cells}");
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#customers-body img').length")
            .await,
        json!(0),
        "a customer name was parsed as HTML"
    );
    browser.screenshot("customers").await;
    assert_eq!(
        browser.eval("document.title").await,
        json!("Solme operator console")
    );
    assert_eq!(
        browser
            .eval("localStorage.length + document.cookie.length")
            .await,
        json!(0),
        "the token left sessionStorage"
    );

    // One id's page, then a license change through the page's own controls.
    browser
        .eval(&format!("location.hash = '#server/{server_id}'; true"))
        .await;
    browser
        .wait_for("document.getElementById('licenses-body').textContent.includes('cad')")
        .await;
    browser
        .wait_for("document.getElementById('server-facts').textContent.includes('never synced')")
        .await;
    browser.screenshot("server").await;
    browser
        .eval(
            "{ const row = document.querySelector('#licenses-body tr'); \
             row.querySelector('input[type=number]').value = '25'; \
             [...row.querySelectorAll('button')].find(b => b.textContent === 'Save').click(); } true",
        )
        .await;
    browser
        .wait_for("document.getElementById('message').textContent === 'License cad changed.'")
        .await;
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(shown["licenses"][0]["seats"], 25);

    // The due list shows the never-synced id.
    browser.open_tab("servers", "never synced").await;

    // A key-clear request that arrived by email, rejected with a reason from the page.
    let (status, request) = app
        .post(
            "/admin/v1/key-clear-requests",
            json!({"server_id": server_id, "sender": "ops@acme.example",
                   "message_id": "<1@acme.example>", "text": "we reinstalled"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    browser.open_tab("requests", "we reinstalled").await;
    browser.screenshot("requests").await;
    browser
        .eval(
            "{ const row = document.querySelector('#requests-body tr'); \
             row.querySelector('input').value = 'not a registered reinstall'; \
             [...row.querySelectorAll('button')].find(b => b.textContent === 'Reject').click(); } true",
        )
        .await;
    browser
        .wait_for("document.getElementById('message').textContent === 'Request rejected.'")
        .await;
    let (_, decided) = app
        .get("/admin/v1/key-clear-requests?status=rejected")
        .await;
    assert_eq!(decided[0]["operator"], "admin", "{decided}");
    assert_eq!(decided[0]["reason"], "not a registered reinstall");

    // The audit log names the operator from the page.
    browser.open_tab("audit", "admin").await;

    browser.screenshot("audit").await;
}

/// The id page charts the usage reported with each sync: one bar per sync and feature,
/// and the table lists the refusals.
#[actix_rt::test]
async fn chromium_charts_the_usage_of_each_sync_on_the_id_page() {
    if !chromium_present() {
        return;
    }
    let app = spawn_app().await;
    let (server_id, local) = app.register_local().await;
    for (peak, refused) in [(3, 2), (7, 0)] {
        let text = crate::usage::sync_data_with_usage(
            &local,
            vec![crate::usage::feature("cad", peak, 4.0, refused)],
        );
        let answer = app.post_sync(&text).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let mut browser = Browser::open_console(&app).await;
    browser.sign_in(&app.token).await;
    browser
        .wait_for("document.getElementById('customers-body').textContent.includes('Acme')")
        .await;
    browser
        .eval(&format!("location.hash = '#server/{server_id}'; true"))
        .await;
    browser
        .wait_for("document.querySelectorAll('#usage-charts svg rect').length === 2")
        .await;
    browser
        .wait_for("document.getElementById('usage-body').textContent.includes('NO_SEATS 2')")
        .await;
    // A peak above the 5 seats held is drawn as over the limit.
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#usage-charts rect.over').length")
            .await,
        json!(1)
    );
    browser.screenshot("usage").await;
}
