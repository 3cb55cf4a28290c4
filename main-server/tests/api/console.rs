//! The web operator console on the admin listener: served without a token and with
//! strict security headers, while the API behind it still needs the token. When
//! `/usr/bin/chromium` exists, a headless Chromium renders the page, and (through the
//! DevTools protocol) signs in (trading the personal token for a console session),
//! lists data, shows a wrong token's refusal, hides what a viewer may not do, acts as
//! an operator, and signs out.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use awc::http::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use test_harness::browser::{
    assert_page_headers, chromium_command, chromium_present, trust_certificate,
};
use test_harness::devtools::DevTools;

use crate::audit_chain::{connect, tamper};
use crate::helpers::{newest_audit_entry, spawn_app, TestApp};
use crate::operators::add;

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
        assert_page_headers(
            |name| header(&headers, name),
            &[
                "default-src 'none'",
                "script-src 'self'",
                "style-src 'self'",
                "connect-src 'self'",
                "frame-ancestors 'none'",
                "form-action 'none'",
            ],
            path,
        );
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

/// A server for a browser test, or `None` when Chromium is not installed.
async fn spawn_app_for_chromium() -> Option<TestApp> {
    if !chromium_present() {
        return None;
    }
    Some(spawn_app().await)
}

#[actix_rt::test]
async fn chromium_renders_the_console() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
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
    assert!(dom.contains("Paste your personal operator token"), "{dom}");
}

/// The console in a headless Chromium (the shared DevTools driver), with the steps its
/// tests take; a failure of the browser fails the test.
struct Browser(DevTools);

impl Browser {
    /// Chromium trusting the server certificate in `cert_file`.
    async fn start(cert_file: &Path) -> Self {
        Self(
            DevTools::start(1280, 900, Some(cert_file))
                .await
                .expect("start chromium"),
        )
    }

    async fn eval(&mut self, expression: &str) -> Value {
        self.0.eval(expression).await.expect("evaluate in the page")
    }

    /// Evaluates `expression` until it is true (the page loads data asynchronously).
    async fn wait_for(&mut self, expression: &str) {
        self.0
            .wait_for(expression)
            .await
            .expect("the page's condition");
    }

    /// Shows the page's `tab` (`#servers`, …) and waits until its table holds `text`.
    async fn open_tab(&mut self, tab: &str, text: &str) {
        self.go_to(tab).await;
        self.wait_for_text(&format!("{tab}-body"), text).await;
    }

    /// Moves the page to `#hash` (a tab, or `server/ID`).
    async fn go_to(&mut self, hash: &str) {
        self.eval(&format!(
            "location.hash = {}; true",
            json!(format!("#{hash}"))
        ))
        .await;
    }

    /// Waits until the text of the element `id` includes `text`.
    async fn wait_for_text(&mut self, id: &str, text: &str) {
        self.wait_for(&format!(
            "document.getElementById({}).textContent.includes({})",
            json!(id),
            json!(text)
        ))
        .await;
    }

    /// Waits until the page's message line reads `text`.
    async fn wait_for_message(&mut self, text: &str) {
        self.wait_for(&format!(
            "document.getElementById('message').textContent === {}",
            json!(text)
        ))
        .await;
    }

    /// With `SOLME_CONSOLE_SCREENSHOTS=DIR`, saves the page as `DIR/NAME.png` (to look
    /// at the console while working on it).
    async fn screenshot(&mut self, name: &str) {
        let Ok(dir) = std::env::var("SOLME_CONSOLE_SCREENSHOTS") else {
            return;
        };
        let png = self.0.screenshot().await.expect("screenshot");
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// A browser on the console's page of `app`, ready for sign-in.
    async fn open_console(app: &TestApp) -> Self {
        let mut browser = Self::start(&app.data_dir().join("tls-cert.pem")).await;
        browser
            .0
            .navigate(&format!("{}/", app.admin_base()))
            .await
            .expect("open the console");
        browser
            .wait_for("document.body && document.body.dataset.console === 'ready'")
            .await;
        browser
    }

    /// Whether the element matching `selector` exists and is shown (neither it nor an
    /// ancestor hidden).
    async fn shown(&mut self, selector: &str) -> bool {
        self.eval(&format!(
            "{{ const e = document.querySelector({}); !!e && e.getClientRects().length > 0 }}",
            json!(selector)
        ))
        .await
            == json!(true)
    }

    /// The texts of the shown buttons in the element `id`.
    async fn buttons_in(&mut self, id: &str) -> Vec<String> {
        let texts = self
            .eval(&format!(
                "[...document.getElementById({}).querySelectorAll('button')]                  .filter(b => b.getClientRects().length > 0).map(b => b.textContent)",
                json!(id)
            ))
            .await;
        serde_json::from_value(texts).unwrap_or_default()
    }

    /// Types `text` into the customer picker `input` (its matches listed in
    /// `input-matches`) and clicks the match named `name`.
    async fn pick_customer(&mut self, input: &str, text: &str, name: &str) {
        self.type_into(input, text).await;
        let pick = format!(
            "[...document.querySelectorAll('#{input}-matches button.pick')]\
               .find(b => b.firstChild.textContent === {})",
            json!(name)
        );
        self.wait_for(&format!("!!{pick}")).await;
        self.eval(&format!("{pick}.click(); true")).await;
        self.wait_for(&format!(
            "document.getElementById('{input}-matches').hidden"
        ))
        .await;
    }

    /// Puts `text` into the input `id` as typing does (its input event fired).
    async fn type_into(&mut self, id: &str, text: &str) {
        self.eval(&format!(
            "{{ const input = document.getElementById({}); input.value = {}; \
               input.dispatchEvent(new Event('input')); }} true",
            json!(id),
            json!(text)
        ))
        .await;
    }

    /// How many rows the table body `id` has.
    async fn rows_in(&mut self, id: &str) -> Value {
        self.eval(&format!(
            "document.getElementById({}).rows.length",
            json!(id)
        ))
        .await
    }

    /// Who the page says is signed in.
    async fn signed_in_as(&mut self) -> Value {
        self.eval("document.getElementById('session-operator').textContent")
            .await
    }

    /// Asserts that the page is back at the sign-in form and the tab keeps nothing.
    async fn assert_signed_out(&mut self) {
        assert!(self.shown("#sign-in-form").await);
        assert_eq!(self.eval("sessionStorage.length").await, json!(0));
    }

    /// The session secret this tab keeps.
    async fn session_secret(&mut self) -> String {
        self.eval("sessionStorage.getItem('solme.console.session')")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A browser on the console of `app`, signed in with `token`, once the customers
    /// table holds `customers`.
    async fn signed_in(app: &TestApp, token: &str, customers: &str) -> Self {
        let mut browser = Self::open_console(app).await;
        browser.sign_in(token).await;
        browser.wait_for_text("customers-body", customers).await;
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
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
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
        .wait_for(
            "document.getElementById('message').textContent.startsWith('That token is not valid')",
        )
        .await;
    browser.screenshot("wrong-token").await;
    assert_eq!(
        browser
            .eval("document.getElementById('view-sign-in').hidden")
            .await,
        json!(false)
    );
    assert_eq!(
        browser.eval("sessionStorage.length").await,
        json!(0),
        "the wrong token was kept"
    );

    // The right token: customers are listed, the hostile name as plain text.
    browser.sign_in(&app.token).await;
    browser.wait_for_text("customers-body", "Acme").await;
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
        "the session left sessionStorage"
    );
    // The tab keeps a console session, never the personal token.
    let kept = browser
        .eval("JSON.stringify(Object.values(sessionStorage))")
        .await;
    let kept = kept.as_str().unwrap_or_default();
    assert!(
        kept.contains("session.") && !kept.contains(&app.token),
        "{kept}"
    );

    // One id's page, then a license change through the page's own controls.
    browser.go_to(&format!("server/{server_id}")).await;
    browser.wait_for_text("licenses-body", "cad").await;
    browser.wait_for_text("server-facts", "never synced").await;
    browser.screenshot("server").await;
    browser
        .eval(
            "{ const row = document.querySelector('#licenses-body tr'); \
             row.querySelector('input[type=number]').value = '25'; \
             [...row.querySelectorAll('button')].find(b => b.textContent === 'Save').click(); } true",
        )
        .await;
    browser.wait_for_message("License cad changed.").await;
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(shown["licenses"][0]["seats"], 25);

    // The due list shows the never-synced id.
    browser.open_tab("servers", "never synced").await;

    // A key-clear request that arrived by email, rejected with a reason from the page.
    app.key_clear_request(
        server_id,
        "<1@acme.example>",
        json!({"text": "we reinstalled"}),
    )
    .await;
    browser.open_tab("requests", "we reinstalled").await;
    browser.screenshot("requests").await;
    browser
        .eval(
            "{ const row = document.querySelector('#requests-body tr'); \
             row.querySelector('input').value = 'not a registered reinstall'; \
             [...row.querySelectorAll('button')].find(b => b.textContent === 'Reject').click(); } true",
        )
        .await;
    browser.wait_for_message("Request rejected.").await;
    let (_, decided) = app
        .get("/admin/v1/key-clear-requests?status=rejected")
        .await;
    assert_eq!(decided[0]["operator"], "admin", "{decided}");
    assert_eq!(decided[0]["reason"], "not a registered reinstall");

    // The audit log names the operator from the page.
    browser.open_tab("audit", "admin").await;

    browser.screenshot("audit").await;

    // Only an admin has the operators view: add an account, whose token is shown once.
    assert!(browser.shown("#nav a[data-view=operators]").await);
    browser.open_tab("operators", "mail-gateway").await;
    browser
        .eval(
            "document.getElementById('operator-name').value = 'nina'; \
             document.getElementById('operator-role').value = 'viewer'; \
             document.getElementById('operator-form').requestSubmit(); true",
        )
        .await;
    browser.wait_for_text("operators-body", "nina").await;
    browser.screenshot("operators").await;
    let issued = browser
        .eval("document.getElementById('issued-value').value")
        .await;
    let issued = issued.as_str().unwrap_or_default();
    let (status, me) = app
        .admin(Method::GET, "/admin/v1/whoami", None, Some(issued))
        .await;
    assert_eq!(
        (status, me),
        (StatusCode::OK, json!({"name": "nina", "role": "viewer"}))
    );
    // Leaving the view forgets the shown token.
    browser.open_tab("audit", "operator.add").await;
    assert_eq!(
        browser
            .eval("document.getElementById('issued-value').value")
            .await,
        json!("")
    );
}

/// The id page charts the usage reported with each sync: one bar per sync and feature,
/// and the table lists the refusals.
#[actix_rt::test]
async fn chromium_charts_the_usage_of_each_sync_on_the_id_page() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    let (server_id, local) = app.register_local().await;
    for (peak, refused) in [(3, 2), (7, 0)] {
        let text = crate::usage::sync_data_with_usage(
            &local,
            vec![crate::usage::feature("cad", peak, 4.0, refused)],
        );
        let answer = app.post_sync(&text).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let mut browser = Browser::signed_in(&app, &app.token, "Acme").await;
    browser.go_to(&format!("server/{server_id}")).await;
    // The chart the server draws, in the page: a dated axis, the seats held as a
    // labelled line, and every value in a hover title (a peak of 7 over the 5 seats).
    browser
        .wait_for("document.querySelector('#usage-charts svg') !== null")
        .await;
    browser.wait_for_text("usage-body", "NO_SEATS 2").await;
    let texts = browser
        .eval("document.querySelector('#usage-charts svg').textContent")
        .await;
    let texts = texts.as_str().unwrap_or_default();
    assert!(texts.contains("Date (UTC)"), "{texts}");
    assert!(texts.contains("cad: 5 seats"), "{texts}");
    assert!(texts.contains("7 in use"), "{texts}");
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#usage-charts script, #usage-charts foreignObject').length")
            .await,
        json!(0)
    );
    browser.screenshot("usage").await;
}

/// A viewer sees who is signed in, reads everything, sees no control to change
/// anything, and after signing out the session secret no longer opens the API.
#[actix_rt::test]
async fn chromium_viewer_reads_without_manage_controls_and_signs_out() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    let (server_id, _) = app
        .register_with_key_clear_request("<2@acme.example>", json!({"text": "new hardware"}))
        .await;
    let viewer = add(&app, "vera", "viewer").await;

    let mut browser = Browser::signed_in(&app, &viewer, "Acme").await;
    assert_eq!(
        browser.signed_in_as().await,
        json!("Signed in as vera (viewer)")
    );
    browser.screenshot("viewer-customers").await;
    for hidden in [
        "#customer-form",
        "#allocate-form",
        "#nav a[data-view=operators]",
    ] {
        assert!(!browser.shown(hidden).await, "{hidden} shown to a viewer");
    }
    // A viewer searches the customers by name: nothing to change in the rows.
    assert_eq!(browser.buttons_in("view-customers").await, vec!["Search"]);
    browser.type_into("customers-name", "zzz").await;
    browser
        .wait_for_text("customers-body", "No customer's name starts with \"zzz\".")
        .await;
    browser.type_into("customers-name", "ac").await;
    browser.wait_for_text("customers-body", "Acme").await;
    browser
        .wait_for_text(
            "customers-status",
            "Showing 1 customer whose name starts with \"ac\", by name.",
        )
        .await;
    assert_eq!(browser.buttons_in("view-customers").await, vec!["Search"]);
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#customers-body input, #customers-body form').length")
            .await,
        json!(0),
        "a viewer got controls in the customer rows"
    );

    browser.go_to(&format!("server/{server_id}")).await;
    browser.wait_for_text("licenses-body", "cad").await;
    for hidden in ["#license-form", "#clear-form"] {
        assert!(!browser.shown(hidden).await, "{hidden} shown to a viewer");
    }
    assert_eq!(
        browser.buttons_in("view-server").await,
        Vec::<String>::new()
    );
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#licenses-body input').length")
            .await,
        json!(0),
        "a viewer got license inputs"
    );

    browser.open_tab("requests", "new hardware").await;
    assert!(browser
        .eval("document.getElementById('requests-body').textContent")
        .await
        .as_str()
        .unwrap_or_default()
        .contains("waiting for an operator"));
    assert_eq!(
        browser.buttons_in("requests-body").await,
        Vec::<String>::new()
    );
    browser.screenshot("viewer-requests").await;

    let secret = browser.session_secret().await;
    let (status, me) = app
        .admin(Method::GET, "/admin/v1/whoami", None, Some(&secret))
        .await;
    assert_eq!(
        (status, me["name"].clone()),
        (StatusCode::OK, json!("vera"))
    );
    browser
        .eval("document.getElementById('sign-out').click(); true")
        .await;
    browser.wait_for_message("Signed out (vera).").await;
    browser.assert_signed_out().await;
    assert!(!browser.shown("#nav").await);
    let (status, body) = app
        .admin(Method::GET, "/admin/v1/whoami", None, Some(&secret))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    browser.screenshot("signed-out").await;
}

/// An operator registers a customer from the page; the audit log names the operator's
/// account. When the account is revoked, the page says the session ended and asks to
/// sign in again.
#[actix_rt::test]
async fn chromium_operator_acts_as_their_account_until_revoked() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    let otto = add(&app, "otto", "operator").await;

    let mut browser = Browser::signed_in(&app, &otto, "No customers yet.").await;
    assert_eq!(
        browser.signed_in_as().await,
        json!("Signed in as otto (operator)")
    );
    assert!(browser.shown("#customer-form").await);
    assert!(!browser.shown("#nav a[data-view=operators]").await);
    browser
        .eval(
            "document.getElementById('customer-name').value = 'Globex'; \
             document.getElementById('customer-emails').value = 'it@globex.example'; \
             document.getElementById('customer-form').requestSubmit(); true",
        )
        .await;
    browser.wait_for_message("Customer Globex added.").await;
    browser.wait_for_text("customers-body", "Globex").await;
    browser.screenshot("operator-customers").await;

    let (_, audit) = app.get("/admin/v1/audit?limit=100").await;
    let created = newest_audit_entry(&audit, "customer.create");
    assert_eq!(created["actor"], "otto", "{audit}");
    browser.open_tab("audit", "customer.create").await;
    assert!(browser
        .eval("[...document.querySelectorAll('#audit-body tr')].some(r => r.textContent.includes('customer.create') && r.cells[1].textContent === 'otto')")
        .await
        .as_bool()
        .unwrap_or(false));

    // A reload keeps the tab's session: the page asks whose it is before it shows
    // anything, and nothing secret is in the address.
    browser
        .eval("window.beforeReload = true; location.reload(); true")
        .await;
    browser
        .wait_for(
            "!window.beforeReload && document.body && document.body.dataset.console === 'ready' \
             && document.getElementById('session-operator').textContent \
             === 'Signed in as otto (operator)'",
        )
        .await;
    browser.wait_for_text("audit-body", "customer.create").await;
    assert!(!browser.shown("#nav a[data-view=operators]").await);
    let secret = browser.session_secret().await;
    let address = browser.eval("location.href").await;
    let address = address.as_str().unwrap_or_default();
    assert!(
        !secret.is_empty() && !address.contains(&secret) && !address.contains(&otto),
        "{address}"
    );

    // Revoked elsewhere: the next call finds the session ended.
    let (status, revoked) = app.post("/admin/v1/operators/otto/revoke", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    browser.go_to("servers").await;
    browser
        .wait_for_text("message", "Your console session has ended")
        .await;
    browser.assert_signed_out().await;
    browser.screenshot("session-ended").await;
}

/// A request whose sender was not authenticated shows so, and the page approves it
/// only once the override box is ticked.
#[actix_rt::test]
async fn chromium_approves_an_unauthenticated_request_only_with_the_override() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    let (_, request) = app
        .register_with_key_clear_request(
            "<forged@acme.example>",
            json!({"text": "clear it please", "sender_auth": "not authenticated",
                   "sender_auth_detail": "spf=fail, dmarc=fail"}),
        )
        .await;
    let mut browser = Browser::signed_in(&app, &app.token, "Acme").await;
    browser
        .open_tab("requests", "sender not authenticated")
        .await;
    browser.open_tab("requests", "spf=fail, dmarc=fail").await;
    browser.screenshot("request-unauthenticated").await;
    let approve = "{ const row = document.querySelector('#requests-body tr'); \
                   [...row.querySelectorAll('button')].find(b => b.textContent === 'Approve').click(); } true";
    browser.eval(approve).await;
    browser.wait_for_text("message", "tick the override").await;
    let (_, shown) = app
        .get(&format!(
            "/admin/v1/key-clear-requests/{}",
            request["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(shown["status"], "pending", "{shown}");

    browser
        .eval(
            "window.confirm = () => true; \
             document.querySelector('#requests-body input.override-unauthenticated').checked = true; true",
        )
        .await;
    browser.eval(approve).await;
    browser.wait_for_text("message", "approved").await;
    let (_, approved) = app
        .get("/admin/v1/key-clear-requests?status=approved")
        .await;
    assert_eq!(approved[0]["id"], request["id"], "{approved}");
}

/// The audit view verifies the hash chain on request: intact at first; once an entry
/// is edited in the database, the page names the changed entry.
#[actix_rt::test]
async fn chromium_verifies_the_audit_chain_and_names_a_changed_entry() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    app.register().await;
    test_harness::wait_until_async("every entry sealed", Duration::from_secs(20), || async {
        let (_, report) = app.get("/admin/v1/audit/verify").await;
        (report["unsealed"] == 0 && report["checked"].as_u64() > Some(0)).then_some(())
    })
    .await
    .expect("the sealer seals the entries");
    let mut browser = Browser::signed_in(&app, &app.token, "Acme").await;
    browser.go_to("audit").await;
    browser
        .eval("document.getElementById('audit-verify').click(); true")
        .await;
    browser.wait_for_text("audit-chain", "intact").await;
    browser
        .wait_for_text("audit-chain", "sealed entries checked")
        .await;

    tamper(
        &mut connect(&app),
        &["UPDATE audit_log SET detail = 'nothing happened' WHERE chain_seq = 1".into()],
    );
    browser
        .eval("document.getElementById('audit-verify').click(); true")
        .await;
    browser.wait_for_text("audit-chain", "changed").await;
    browser.wait_for_text("audit-chain", "position 1").await;
    browser.screenshot("audit-chain-broken").await;
}

/// An operator renames a customer on its page; renaming onto another customer's name
/// asks first, and declining changes nothing.
#[actix_rt::test]
async fn chromium_renames_a_customer_asking_before_a_duplicate_name() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    let (customer_id, _) = app.register().await;
    let (status, _) = app
        .post(
            "/admin/v1/customers",
            json!({"name": "Globex", "emails": []}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut browser = Browser::signed_in(&app, &app.token, "Acme").await;
    browser.go_to(&format!("customer/{customer_id}")).await;
    browser.wait_for_text("customer-title", "Acme").await;
    let rename = |name: &str| {
        format!(
            "document.getElementById('rename-name').value = {}; \
             document.getElementById('rename-form').requestSubmit(); true",
            json!(name)
        )
    };
    browser.eval(&rename("Acme Corporation")).await;
    browser
        .wait_for_message("Acme renamed to Acme Corporation.")
        .await;
    browser
        .wait_for_text("customer-title", "Acme Corporation")
        .await;

    browser
        .eval("window.confirm = (q) => { window.asked = q; return false; }; true")
        .await;
    browser.eval(&rename("globex")).await;
    browser
        .wait_for_message("Not renamed: Acme Corporation keeps its name.")
        .await;
    let asked = browser.eval("window.asked").await;
    assert!(
        asked
            .as_str()
            .is_some_and(|q| q.contains("A customer named globex exists already")),
        "{asked}"
    );
    browser.eval("window.confirm = () => true; true").await;
    browser.eval(&rename("globex")).await;
    browser
        .wait_for_message("Acme Corporation renamed to globex.")
        .await;
    let (_, audit) = app.get("/admin/v1/audit?limit=100").await;
    let entry = newest_audit_entry(&audit, "customer.rename");
    assert_eq!(
        entry["detail"]
            .as_str()
            .map(|d| d.ends_with("from Acme Corporation to globex")),
        Some(true),
        "{entry}"
    );
}

/// An operator removes a contact from the customer's page after confirming; the last
/// one stays, and the page says why.
#[actix_rt::test]
async fn chromium_removes_a_contact_but_not_the_last() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    let (customer_id, _) = app.register().await;
    let (status, _) = app
        .post(
            &format!("/admin/v1/customers/{customer_id}/emails"),
            json!({"email": "it@acme.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut browser = Browser::signed_in(&app, &app.token, "Acme").await;
    browser.go_to(&format!("customer/{customer_id}")).await;
    browser
        .wait_for_text("contacts-list", "it@acme.example")
        .await;
    let remove = |email: &str| {
        format!(
            "{{ const row = [...document.querySelectorAll('#contacts-list li')]\
               .find(li => li.firstChild.textContent === {}); \
               row.querySelector('button.remove-contact').click(); }} true",
            json!(email)
        )
    };
    browser
        .eval("window.confirm = (q) => { window.asked = q; return true; }; true")
        .await;
    browser.eval(&remove("it@acme.example")).await;
    browser
        .wait_for_message("it@acme.example removed from Acme.")
        .await;
    browser
        .wait_for(
            "!document.getElementById('contacts-list').textContent.includes('it@acme.example')",
        )
        .await;
    assert_eq!(
        browser.eval("window.asked").await,
        json!("Remove it@acme.example from Acme? It gets no more reminders or key-clear notices.")
    );
    browser.eval(&remove("ops@acme.example")).await;
    browser
        .wait_for_text(
            "message",
            "ops@acme.example is the last contact address of Acme",
        )
        .await;
    let (_, list) = app.get("/admin/v1/customers").await;
    assert_eq!(list[0]["emails"], json!(["ops@acme.example"]), "{list}");
    browser.screenshot("customer-contacts").await;
}

/// Adding a customer whose name exists asks first; confirmed, the second one is added.
#[actix_rt::test]
async fn chromium_asks_before_adding_a_second_customer_of_a_name() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    app.register().await;
    let mut browser = Browser::signed_in(&app, &app.token, "Acme").await;
    let add = "document.getElementById('customer-name').value = 'ACME'; \
               document.getElementById('customer-emails').value = 'it@acme-two.example'; \
               document.getElementById('customer-form').requestSubmit(); true";
    browser
        .eval("window.confirm = (q) => { window.asked = q; return false; }; true")
        .await;
    browser.eval(add).await;
    browser
        .wait_for_message("Nothing added: a customer named ACME exists already.")
        .await;
    let (_, list) = app.get("/admin/v1/customers").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert!(browser
        .eval("window.asked")
        .await
        .as_str()
        .is_some_and(|q| q.contains("A customer named ACME exists already")));

    browser.eval("window.confirm = () => true; true").await;
    browser.eval(add).await;
    browser.wait_for_message("Customer ACME added.").await;
    browser.wait_for_text("customers-body", "ACME").await;
    let (_, list) = app.get("/admin/v1/customers").await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
}

/// An operator sets a license's borrow limit on the id's page.
#[actix_rt::test]
async fn chromium_sets_a_licenses_borrow_limit() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    let (_, server_id) = app.register().await;
    let mut browser = Browser::signed_in(&app, &app.token, "Acme").await;
    browser.go_to(&format!("server/{server_id}")).await;
    browser.wait_for_text("licenses-body", "cad").await;
    browser
        .eval(
            "{ const row = document.querySelector('#licenses-body tr'); \
               row.querySelector('input.borrow-hours').value = '24'; \
               [...row.querySelectorAll('button')].find(b => b.textContent === 'Save').click(); } true",
        )
        .await;
    browser.wait_for_message("License cad changed.").await;
    let (_, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(server["licenses"][0]["max_borrow_hours"], 24, "{server}");
    browser
        .wait_for("document.querySelector('#licenses-body input.borrow-hours').value === '24'")
        .await;
}

/// Adding a license that has already ended asks first; declined, nothing is added;
/// confirmed, it is.
#[actix_rt::test]
async fn chromium_asks_before_adding_a_license_already_ended() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    let (_, server_id) = app.register().await;
    let mut browser = Browser::signed_in(&app, &app.token, "Acme").await;
    browser.go_to(&format!("server/{server_id}")).await;
    browser.wait_for_text("licenses-body", "cad").await;
    let add = "document.getElementById('license-feature').value = 'cam'; \
               document.getElementById('license-seats').value = '2'; \
               document.getElementById('license-until').value = '2020-01-01'; \
               document.getElementById('license-form').requestSubmit(); true";
    browser
        .eval("window.confirm = (q) => { window.asked = q; return false; }; true")
        .await;
    browser.eval(add).await;
    browser
        .wait_for_message("Not added: cam would already have ended.")
        .await;
    assert!(browser
        .eval("window.asked")
        .await
        .as_str()
        .is_some_and(|q| q.contains("2020-01-01") && q.contains("already past")));
    let (_, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(
        server["licenses"].as_array().map(Vec::len),
        Some(1),
        "{server}"
    );

    browser.eval("window.confirm = () => true; true").await;
    browser.eval(add).await;
    browser.wait_for_message("License cam added.").await;
    browser.wait_for_text("licenses-body", "cam").await;
    let (_, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(
        server["licenses"].as_array().map(Vec::len),
        Some(2),
        "{server}"
    );
}

/// "Allocate id" asks first; declined, nothing is allocated.
#[actix_rt::test]
async fn chromium_asks_before_allocating_an_id() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    app.register().await;
    let mut browser = Browser::signed_in(&app, &app.token, "Acme").await;
    browser
        .eval("window.confirm = (q) => { window.asked = q; return false; }; true")
        .await;
    browser
        .eval(
            "[...document.querySelectorAll('#customers-body button')]\
               .find(b => b.textContent === 'Allocate id').click(); true",
        )
        .await;
    browser.wait_for_message("Nothing allocated.").await;
    assert!(browser
        .eval("window.asked")
        .await
        .as_str()
        .is_some_and(|q| q.contains("Allocate a new license server id for Acme?")));
    let (_, servers) = app.get("/admin/v1/servers").await;
    assert_eq!(servers.as_array().map(Vec::len), Some(1), "{servers}");

    browser.eval("window.confirm = () => true; true").await;
    browser
        .eval(
            "[...document.querySelectorAll('#customers-body button')]\
               .find(b => b.textContent === 'Allocate id').click(); true",
        )
        .await;
    browser
        .wait_for_text("message", "Allocated license server id")
        .await;
    let (_, servers) = app.get("/admin/v1/servers").await;
    assert_eq!(servers.as_array().map(Vec::len), Some(2), "{servers}");
}

/// An operator moves an id to another customer, then retires it: a bound id asks a
/// second time before it is forced; the page then shows it retired without the forms.
#[actix_rt::test]
async fn chromium_moves_and_retires_an_id() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    let (server_id, local) = app.register_local().await;
    let answer = app.post_sync(&local.sync_data()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let (status, beta) = app
        .post(
            "/admin/v1/customers",
            json!({"name": "Beta", "emails": ["it@beta.example"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{beta}");
    let mut browser = Browser::signed_in(&app, &app.token, "Acme").await;
    browser.go_to(&format!("server/{server_id}")).await;
    browser.wait_for_text("server-facts", "Acme").await;
    // The picker leaves out the id's own customer.
    browser.type_into("move-customer", "ac").await;
    browser
        .wait_for_text(
            "move-customer-matches",
            "No other customer's name starts with \"ac\".",
        )
        .await;
    // Nothing chosen: nothing moved.
    browser
        .eval("document.getElementById('move-form').requestSubmit(); true")
        .await;
    browser
        .wait_for_message(
            "Choose the customer from the list: type the start of its name, then click it.",
        )
        .await;
    browser.pick_customer("move-customer", "be", "Beta").await;
    browser.screenshot("move-picker").await;
    browser
        .eval(
            "window.asked = []; window.confirm = (q) => { window.asked.push(q); return true; }; \
             document.getElementById('move-form').requestSubmit(); true",
        )
        .await;
    browser.wait_for_message("Moved to Beta.").await;
    assert!(browser
        .eval("window.asked[0]")
        .await
        .as_str()
        .is_some_and(|q| q.starts_with(&format!("Move {server_id} from Acme to Beta?"))));
    browser.wait_for_text("server-facts", "Beta").await;
    let (_, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(server["customer_name"], "Beta", "{server}");

    // Declined at the second question (the key pair is bound): not retired.
    browser
        .eval(
            "window.asked = []; window.confirm = (q) => { window.asked.push(q); \
               return window.asked.length < 2; }; \
             document.getElementById('retire-reason').value = 'contract ended'; \
             document.getElementById('retire-form').requestSubmit(); true",
        )
        .await;
    browser
        .wait_for_message(&format!("Not retired: {server_id} keeps synchronizing."))
        .await;
    assert!(browser
        .eval("window.asked[1]")
        .await
        .as_str()
        .is_some_and(|q| q.contains("has a key pair bound")));
    let (_, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert!(server["retired_at"].is_null(), "{server}");

    browser
        .eval(
            "window.confirm = () => true; \
             document.getElementById('retire-reason').value = 'contract ended'; \
             document.getElementById('retire-form').requestSubmit(); true",
        )
        .await;
    browser
        .wait_for_message(&format!("Retired {server_id}."))
        .await;
    browser
        .wait_for_text("server-facts", "its syncs are refused")
        .await;
    assert!(
        !browser.shown("#retire-form").await,
        "retire form still shown"
    );
    let (_, server) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert!(server["retired_at"].is_string(), "{server}");
}

/// Two installations with one key pair, syncing alternately from `start` on (one
/// request a second) until the id is marked a possible copy.
async fn mark_possible_copy(app: &TestApp, local: &crate::helpers::Local, start: DateTime<Utc>) {
    let mut at = start;
    let mut send = |counter: u64, held: Option<i64>| {
        at += chrono::Duration::seconds(1);
        local.sync_data_as(counter, held, at)
    };
    let mut sequences = Vec::new();
    // The original: counters 1, 2, 3; the copy made after 2 goes back twice.
    for (counter, held_index) in [
        (1, None),
        (2, Some(0)),
        (3, Some(1)),
        (3, Some(1)),
        (4, Some(2)),
        (4, Some(3)),
    ] {
        let held = held_index.map(|i: usize| sequences[i]);
        let answer = app.post_sync(&send(counter, held)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        sequences.push(local.open(app, &answer.body).sequence);
    }
    let (_, shown) = app
        .get(&format!("/admin/v1/servers/{}", local.server_id))
        .await;
    assert!(
        shown["possible_copy_since"].is_string(),
        "not marked: {shown}"
    );
}

/// What the operator's decisions rest on, for the manager and the viewer tests: Acme
/// with two contacts; a synced id whose licenses changed since (and a pending
/// key-clear request for it); a second id marked a possible copy. Returns both ids.
async fn decisions_to_make(app: &TestApp, start: DateTime<Utc>) -> (uuid::Uuid, uuid::Uuid) {
    let (customer_id, first) = app.register().await;
    let (status, body) = app
        .post(
            &format!("/admin/v1/customers/{customer_id}/emails"),
            json!({"email": "cfo@acme.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let local = crate::helpers::Local::new(first);
    let answer = app.post_sync(&local.sync_data_as(1, None, start)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let (status, body) = app
        .post_license(first, json!({"feature": "cam", "seats": 2}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.key_clear_request(
        first,
        "<lost@acme.example>",
        json!({"text": "our server died"}),
    )
    .await;
    let (_, second) = app.register().await;
    mark_possible_copy(app, &crate::helpers::Local::new(second), start).await;
    (first, second)
}

/// An operator (the manager role) reads what each decision rests on and makes them:
/// the possible-copy badge and evidence, its dismissal (asked first), the customer's
/// copy policy (asked before refusing), whether the server holds the newest
/// revision, a key-clear request's facts, and refusals in the form's words.
#[actix_rt::test]
async fn chromium_operator_decides_on_copies_and_key_clears_from_the_facts() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    let (first, second) = decisions_to_make(&app, Utc::now() - chrono::Duration::minutes(5)).await;
    let otto = add(&app, "otto", "operator").await;
    let mut browser = Browser::signed_in(&app, &otto, "Acme").await;
    assert!(
        !browser.shown("#clock-banner").await,
        "a real clock has no banner"
    );

    // The list marks the copied id only.
    browser.open_tab("servers", &second.to_string()).await;
    let badges = browser
        .eval(
            "[...document.querySelectorAll('#servers-body tr')].map(r => \
               [r.cells[0].textContent.includes('possible copy'), r.cells[0].querySelector('a').textContent])",
        )
        .await;
    assert!(
        badges.as_array().is_some_and(|rows| rows
            .iter()
            .all(|r| r[0] == json!(r[1] == json!(second.to_string())))),
        "{badges}"
    );
    browser.screenshot("servers-possible-copy").await;

    // The id whose licenses changed since its last sync.
    browser.go_to(&format!("server/{first}")).await;
    browser
        .wait_for_text(
            "server-facts",
            "revision 3, the server holds 2: changes not yet synced",
        )
        .await;
    assert!(!browser.shown("#possible-copy").await);

    // The copied id: badge, explanation, evidence; the dismissal asks first.
    browser.go_to(&format!("server/{second}")).await;
    browser
        .wait_for_text("possible-copy-explanation", "went back")
        .await;
    assert!(browser.shown("#server-copy-badge .copy-badge").await);
    let went_back = browser
        .eval("document.querySelectorAll('#possible-copy-body tr.went-back').length")
        .await;
    assert_eq!(went_back, json!(2), "the two goings back are marked");
    browser.screenshot("possible-copy").await;
    browser
        .eval(
            "window.confirm = (q) => { window.asked = q; return false; }; \
             document.getElementById('dismiss-reason').value = 'backup restored in March'; \
             document.getElementById('dismiss-form').requestSubmit(); true",
        )
        .await;
    browser.wait_for_message("The mark stays.").await;
    assert!(browser
        .eval("window.asked")
        .await
        .as_str()
        .is_some_and(|q| q.contains(&format!("Dismiss the possible copy mark of {second}?"))));
    let (_, shown) = app.get(&format!("/admin/v1/servers/{second}")).await;
    assert!(shown["possible_copy_since"].is_string(), "{shown}");
    browser
        .eval(
            "window.confirm = () => true; \
             document.getElementById('dismiss-form').requestSubmit(); true",
        )
        .await;
    browser
        .wait_for_message(&format!("Possible copy mark of {second} dismissed."))
        .await;
    browser
        .wait_for("document.getElementById('possible-copy').hidden")
        .await;
    let (_, shown) = app.get(&format!("/admin/v1/servers/{second}")).await;
    assert!(shown["possible_copy_since"].is_null(), "{shown}");
    let (_, audit) = app.get("/admin/v1/audit?limit=100").await;
    let entry = newest_audit_entry(&audit, "server.possible_copy_dismiss");
    assert_eq!(entry["actor"], "otto");
    assert!(
        entry["detail"]
            .as_str()
            .is_some_and(|d| d.contains("backup restored in March")),
        "{entry}"
    );

    // The customer page lists its ids; refusing copies asks first.
    let customer_id = shown["customer_id"].as_str().expect("id").to_owned();
    browser.go_to(&format!("customer/{customer_id}")).await;
    browser
        .wait_for_text("customer-servers-body", &first.to_string())
        .await;
    browser
        .wait_for_text("customer-servers-body", &second.to_string())
        .await;
    browser.wait_for_text("copy-policy-state", "warned").await;
    browser
        .eval(
            "window.confirm = () => false; document.getElementById('copy-policy').value = 'refuse'; \
             document.getElementById('copy-policy-form').requestSubmit(); true",
        )
        .await;
    browser.wait_for_message("Nothing changed.").await;
    let (_, customer) = app.get(&format!("/admin/v1/customers/{customer_id}")).await;
    assert_eq!(customer["copy_policy"], "warn");
    browser
        .eval(
            "window.confirm = () => true; document.getElementById('copy-policy').value = 'refuse'; \
             document.getElementById('copy-policy-form').requestSubmit(); true",
        )
        .await;
    browser.wait_for_text("message", "are now refused").await;
    browser.wait_for_text("copy-policy-state", "refused").await;
    let (_, customer) = app.get(&format!("/admin/v1/customers/{customer_id}")).await;
    assert_eq!(customer["copy_policy"], "refuse");
    browser.screenshot("customer-ids-and-policy").await;

    // The key-clear request with what to weigh; approving says how long the old
    // installation keeps issuing.
    browser.open_tab("requests", "our server died").await;
    for part in [
        "Customer",
        "Acme",
        "Key pair now",
        "Keeps issuing until",
        "days from now",
        "Other contacts",
        "cfo@acme.example",
    ] {
        browser.wait_for_text("requests-body", part).await;
    }
    let other = browser
        .eval(
            "[...document.querySelectorAll('#requests-body dd')].map(d => d.textContent).join('|')",
        )
        .await;
    assert!(
        !other
            .as_str()
            .unwrap_or_default()
            .contains("ops@acme.example"),
        "the sender is no other contact: {other}"
    );
    browser.screenshot("request-to-weigh").await;
    browser
        .eval(
            "window.confirm = (q) => { window.asked = q; return false; }; \
             document.querySelector('.override-unauthenticated').checked = true; \
             [...document.querySelectorAll('#requests-body button')].find(b => b.textContent === 'Approve').click(); true",
        )
        .await;
    browser.wait_for("typeof window.asked === 'string'").await;
    assert!(
        browser
            .eval("window.asked")
            .await
            .as_str()
            .is_some_and(|q| q.contains("keeps issuing seats until")),
        "the question names the valid-until"
    );

    // A refusal in the form's words: no API field name.
    browser.go_to(&format!("server/{first}")).await;
    browser.wait_for_text("licenses-body", "cam").await;
    browser
        .eval(
            "document.getElementById('license-feature').value = 'sim'; \
             document.getElementById('license-from').value = '2031-01-01'; \
             document.getElementById('license-until').value = '2030-01-01'; \
             document.getElementById('license-form').requestSubmit(); true",
        )
        .await;
    browser.wait_for_text("message", "(MALFORMED)").await;
    let message = browser
        .eval("document.getElementById('message').textContent")
        .await;
    let message = message.as_str().unwrap_or_default();
    assert!(
        message.contains("\"Valid until\" must be later than \"Valid from\""),
        "{message}"
    );
    assert!(!message.contains("valid_"), "{message}");
}

/// A viewer sees the same facts (badge, evidence, policy, what to weigh) and none of
/// the controls; a server on a simulated clock says so with its date.
#[actix_rt::test]
async fn chromium_viewer_sees_the_facts_without_the_controls_and_the_simulated_clock() {
    if !chromium_present() {
        return;
    }
    let app = crate::helpers::spawn_app_with(None, Some("+40d")).await;
    let server_now = Utc::now() + chrono::Duration::days(40);
    let (first, second) = decisions_to_make(&app, server_now - chrono::Duration::minutes(5)).await;
    let vera = add(&app, "vera", "viewer").await;
    let mut browser = Browser::signed_in(&app, &vera, "Acme").await;
    browser
        .wait_for_text("clock-banner", "This server runs on a simulated clock: ")
        .await;
    browser
        .wait_for_text("clock-banner", "40 days ahead of real time")
        .await;
    let day = server_now.format("%Y-%m-%d").to_string();
    browser.wait_for_text("clock-banner", &day).await;
    browser.screenshot("viewer-simulated-clock").await;

    browser.go_to(&format!("server/{second}")).await;
    browser
        .wait_for_text("possible-copy-explanation", "went back")
        .await;
    assert!(
        !browser.shown("#dismiss-form").await,
        "a viewer may not dismiss"
    );
    assert_eq!(
        browser.buttons_in("possible-copy").await,
        Vec::<String>::new()
    );
    browser.go_to(&format!("server/{first}")).await;
    browser
        .wait_for_text("server-facts", "changes not yet synced")
        .await;

    let (_, shown) = app.get(&format!("/admin/v1/servers/{first}")).await;
    let customer_id = shown["customer_id"].as_str().expect("id").to_owned();
    browser.go_to(&format!("customer/{customer_id}")).await;
    browser
        .wait_for_text("customer-servers-body", "possible copy")
        .await;
    browser.wait_for_text("copy-policy-state", "warned").await;
    assert!(
        !browser.shown("#copy-policy-form").await,
        "a viewer may not set the policy"
    );

    browser.open_tab("requests", "our server died").await;
    browser
        .wait_for_text("requests-body", "Keeps issuing until")
        .await;
    browser
        .wait_for_text("requests-body", "cfo@acme.example")
        .await;
    assert!(browser
        .eval("document.getElementById('requests-body').textContent")
        .await
        .as_str()
        .unwrap_or_default()
        .contains("waiting for an operator"));
    assert_eq!(
        browser.buttons_in("requests-body").await,
        Vec::<String>::new()
    );
    browser.screenshot("viewer-request-to-weigh").await;
}

/// An operator pages through the customers ("More" below a full page) and searches
/// them by the start of their name; adding an email changes its row in place.
#[actix_rt::test]
async fn chromium_operator_pages_and_searches_the_customers() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    // A page and a bit: 100 customers are shown at first, the rest after "More".
    for n in 1..=104 {
        let (status, body) = app
            .post(
                "/admin/v1/customers",
                json!({"name": format!("Customer {n:03}"), "emails": [format!("it@c{n}.example")]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = app
        .post("/admin/v1/customers", json!({"name": "Zeta Works"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let otto = add(&app, "otto", "operator").await;

    let mut browser = Browser::signed_in(&app, &otto, "Customer 001").await;
    assert_eq!(browser.rows_in("customers-body").await, json!(100));
    browser
        .wait_for_text(
            "customers-status",
            "Showing the first 100 customers, by name. More shows the next 100.",
        )
        .await;
    assert!(browser.shown("#customers-more").await);
    let shown = browser
        .eval("document.getElementById('customers-body').textContent")
        .await;
    assert!(
        !shown.as_str().unwrap_or_default().contains("Zeta Works"),
        "{shown}"
    );
    browser
        .eval("document.getElementById('customers-more').click(); true")
        .await;
    browser.wait_for_text("customers-body", "Zeta Works").await;
    assert_eq!(browser.rows_in("customers-body").await, json!(105));
    assert!(!browser.shown("#customers-more").await);
    browser
        .wait_for_text("customers-status", "Showing 105 customers, by name.")
        .await;

    // An email added on the second page: its row changes, the pages stay.
    browser
        .eval(
            "{ const row = [...document.querySelectorAll('#customers-body tr')]\
                 .find(r => r.textContent.includes('Zeta Works')); \
               row.querySelector('input[type=email]').value = 'ops@zeta.example'; \
               row.querySelector('form').requestSubmit(); } true",
        )
        .await;
    browser.wait_for_message("Email added to Zeta Works.").await;
    browser
        .wait_for_text("customers-body", "ops@zeta.example")
        .await;
    assert_eq!(browser.rows_in("customers-body").await, json!(105));

    // A search by the start of the name, ignoring case, as the operator types.
    browser.type_into("customers-name", "customer 10").await;
    browser
        .wait_for_text(
            "customers-status",
            "Showing 5 customers whose name starts with \"customer 10\", by name.",
        )
        .await;
    let names = browser
        .eval("[...document.querySelectorAll('#customers-body strong')].map(s => s.textContent)")
        .await;
    assert_eq!(
        names,
        json!([
            "Customer 100",
            "Customer 101",
            "Customer 102",
            "Customer 103",
            "Customer 104"
        ])
    );
    assert!(!browser.shown("#customers-more").await);
    browser.screenshot("customers-search").await;
    browser.type_into("customers-name", "works").await;
    browser
        .wait_for_text(
            "customers-body",
            "No customer's name starts with \"works\".",
        )
        .await;
    // Emptied, the search shows every customer again, a page at a time.
    browser.type_into("customers-name", "").await;
    browser
        .wait_for_text("customers-status", "Showing the first 100 customers")
        .await;
    assert_eq!(browser.rows_in("customers-body").await, json!(100));
}

/// An operator allocates an id for a customer found by typing the start of its name.
#[actix_rt::test]
async fn chromium_allocates_an_id_for_a_customer_picked_by_name() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    app.register().await;
    let mut ids = std::collections::HashMap::new();
    for name in ["Beta", "Betamax", "Gamma"] {
        let (status, customer) = app.post("/admin/v1/customers", json!({"name": name})).await;
        assert_eq!(status, StatusCode::CREATED, "{customer}");
        ids.insert(name, customer["id"].as_str().unwrap_or_default().to_owned());
    }
    let otto = add(&app, "otto", "operator").await;
    let mut browser = Browser::signed_in(&app, &otto, "Acme").await;
    browser.open_tab("servers", "never synced").await;
    browser.eval("window.confirm = () => true; true").await;

    // Two matches and none chosen: the page asks to choose.
    browser.type_into("allocate-customer", "BET").await;
    browser
        .wait_for(
            "document.querySelectorAll('#allocate-customer-matches button.pick').length === 2",
        )
        .await;
    browser
        .eval("document.getElementById('allocate-form').requestSubmit(); true")
        .await;
    browser
        .wait_for_message(
            "Choose the customer from the list: type the start of its name, then click it.",
        )
        .await;
    browser.screenshot("allocate-picker").await;

    browser
        .pick_customer("allocate-customer", "bet", "Betamax")
        .await;
    assert_eq!(
        browser
            .eval("document.getElementById('allocate-customer').value")
            .await,
        json!("Betamax")
    );
    browser
        .eval(
            "window.asked = null; window.confirm = (q) => { window.asked = q; return true; }; \
             document.getElementById('allocate-form').requestSubmit(); true",
        )
        .await;
    browser
        .wait_for_text("message", "Allocated license server id")
        .await;
    assert!(browser
        .eval("window.asked")
        .await
        .as_str()
        .is_some_and(|q| q.starts_with("Allocate a new license server id for Betamax?")));
    let (_, allocated) = app
        .get(&format!("/admin/v1/servers?customer_id={}", ids["Betamax"]))
        .await;
    assert_eq!(allocated.as_array().map(Vec::len), Some(1), "{allocated}");
    let (_, other) = app
        .get(&format!("/admin/v1/servers?customer_id={}", ids["Beta"]))
        .await;
    assert_eq!(other, json!([]));
    // The page went to the new id, which belongs to Betamax.
    browser.wait_for_text("server-facts", "Betamax").await;

    // A name with one match needs no click.
    browser.open_tab("servers", "Betamax").await;
    browser.type_into("allocate-customer", "gam").await;
    browser
        .wait_for_text("allocate-customer-matches", "Gamma")
        .await;
    browser
        .eval("document.getElementById('allocate-form').requestSubmit(); true")
        .await;
    browser.wait_for_text("server-facts", "Gamma").await;
}

/// The id page names the standby the primary registered and the failover period; an
/// operator changes the period with its form, a viewer only reads it.
#[actix_rt::test]
async fn chromium_shows_the_standby_and_sets_the_failover_period() {
    let Some(app) = spawn_app_for_chromium().await else {
        return;
    };
    let (server_id, local) = app.register_local().await;
    let (_, unpaired) = app.register().await;
    let standby = shared_proto::ServerIdentity::generate().expect("identity");
    crate::standby::sync(&app, &local, Some(&standby)).await;
    let fingerprint = standby.fingerprint().to_string();

    let mut browser = Browser::signed_in(&app, &app.token, "Acme").await;
    browser.go_to(&format!("server/{unpaired}")).await;
    browser
        .wait_for_text("server-standby", "No standby server registered.")
        .await;
    browser.go_to(&format!("server/{server_id}")).await;
    browser
        .wait_for_text(
            "server-standby",
            &format!("Standby server: {fingerprint}, registered "),
        )
        .await;
    browser
        .wait_for_text("server-failover", "Failover period: 14 days")
        .await;
    assert!(browser.shown("#failover-form").await);
    browser
        .eval(
            "document.getElementById('failover-days').value = '30'; \
             document.getElementById('failover-form').requestSubmit(); true",
        )
        .await;
    browser
        .wait_for_message(&format!(
            "The failover period of {server_id} is now 30 days."
        ))
        .await;
    browser
        .wait_for_text("server-failover", "Failover period: 30 days")
        .await;
    browser.screenshot("failover-period-set").await;
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(shown["failover_days"], 30, "{shown}");
    assert_eq!(app.audit_count("server.failover_period_set", "").await, 1);

    let vera = add(&app, "vera", "viewer").await;
    let mut browser = Browser::signed_in(&app, &vera, "Acme").await;
    browser.go_to(&format!("server/{server_id}")).await;
    browser
        .wait_for_text("server-failover", "Failover period: 30 days")
        .await;
    browser.wait_for_text("server-standby", &fingerprint).await;
    assert!(
        !browser.shown("#failover-form").await,
        "a viewer may not set the failover period"
    );
}
