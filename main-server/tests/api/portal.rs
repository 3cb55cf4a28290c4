//! The customer portal on the sync listeners: sign-in by a mailed link (claimed by the
//! mail gateway like a reminder), the same answer for unknown addresses, single use and
//! expiry, rate limits, one customer's contact seeing nothing of another's, cross-site
//! requests refused, sync by upload and a key-clear request from an authenticated
//! sender.

use std::time::Duration as StdDuration;

use awc::http::StatusCode;
use chrono::Duration;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{on_both_backends, Local, TestApp};

/// A browser-like client of one portal: its own origin, no redirects followed.
struct Browser {
    http: awc::Client,
    origin: String,
    cookie: Option<String>,
}

/// An answer of the portal: status, headers, body.
struct Page {
    status: StatusCode,
    headers: awc::http::header::HeaderMap,
    body: String,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        let tls = test_harness::tls::pinned(&app.dir.path().join("ca.pem")).expect("trust");
        let http = awc::Client::builder()
            .connector(awc::Connector::new().openssl(tls))
            .disable_redirects()
            .timeout(StdDuration::from_secs(30))
            .finish();
        Self {
            http,
            origin: format!("https://localhost:{}", app.listening.sync[0].port()),
            cookie: None,
        }
    }

    async fn send(
        &self,
        method: awc::http::Method,
        path: &str,
        origin: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Page {
        let mut request = self.http.request(method, format!("{}{path}", self.origin));
        if let Some(origin) = origin {
            request = request.insert_header(("Origin", origin.to_owned()));
        }
        if let Some(cookie) = &self.cookie {
            request = request.insert_header(("Cookie", cookie.clone()));
        }
        if !content_type.is_empty() {
            request = request.insert_header(("Content-Type", content_type.to_owned()));
        }
        let mut response = request.send_body(body).await.expect("portal request");
        let bytes = response.body().limit(1 << 20).await.expect("portal body");
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// An empty form post carrying exactly `headers` (and the session cookie).
    async fn post_with(&self, path: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = self
            .http
            .post(format!("{}{path}", self.origin))
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"));
        for (name, value) in headers {
            request = request.insert_header((name.to_string(), value.to_string()));
        }
        if let Some(cookie) = &self.cookie {
            request = request.insert_header(("Cookie", cookie.clone()));
        }
        let mut response = request.send_body("").await.expect("portal request");
        let bytes = response.body().limit(1 << 20).await.expect("portal body");
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(awc::http::Method::GET, path, None, "", Vec::new())
            .await
    }

    /// A form post from the portal's own page (its `Origin`).
    async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_form_from(&self.origin.clone(), path, fields)
            .await
    }

    async fn post_form_from(&self, origin: &str, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            awc::http::Method::POST,
            path,
            Some(origin),
            "application/x-www-form-urlencoded",
            body.into_bytes(),
        )
        .await
    }

    /// Uploads `content` as the sync-data file of the page's form.
    async fn upload(&self, content: &str) -> Page {
        self.upload_to("/portal/sync", "sync_data", content).await
    }

    /// Uploads `content` as the file part `part` of the form posting to `path`.
    async fn upload_to(&self, path: &str, part: &str, content: &str) -> Page {
        let boundary = "----portaltest7f3a";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"; \
             filename=\"upload.txt\"\r\nContent-Type: text/plain\r\n\r\n{content}\r\n\
             --{boundary}--\r\n"
        );
        self.send(
            awc::http::Method::POST,
            path,
            Some(&self.origin.clone()),
            &format!("multipart/form-data; boundary={boundary}"),
            body.into_bytes(),
        )
        .await
    }
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn claim(app: &TestApp) -> Vec<Value> {
    let (status, due) = app.post("/admin/v1/portal-links/claim", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{due}");
    due.as_array().cloned().unwrap_or_default()
}

/// The claimed link to `to` (the newest).
async fn link_to(app: &TestApp, to: &str) -> Value {
    claim(app)
        .await
        .into_iter()
        .rev()
        .find(|link| link["to"] == to)
        .unwrap_or_else(|| panic!("no link claimed for {to}"))
}

fn token_of(link: &Value) -> String {
    link["path"]
        .as_str()
        .and_then(|p| p.strip_prefix("/portal/link?token="))
        .expect("a link path with its token")
        .to_owned()
}

/// Asks for a link for `email`, opens the mailed link and signs in: the browser then
/// carries the session cookie.
async fn sign_in(app: &TestApp, browser: &mut Browser, email: &str) {
    let asked = browser
        .post_form("/portal/sign-in", &[("email", email)])
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    let link = link_to(app, email).await;
    let opened = browser.get(link["path"].as_str().expect("path")).await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);
    let token = token_of(&link);
    assert!(opened.body.contains(&token), "{}", opened.body);
    let used = browser
        .post_form("/portal/link", &[("token", &token)])
        .await;
    assert_eq!(used.status, StatusCode::SEE_OTHER, "{}", used.body);
    let cookie = used
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    let pair = cookie.split(';').next().expect("name=value").to_owned();
    assert!(pair.starts_with("__Host-solme-portal="), "{cookie}");
    browser.cookie = Some(pair);
}

/// A second customer with its own contact and id.
async fn second_customer(app: &TestApp) -> (Uuid, &'static str) {
    let (status, customer) = app
        .post(
            "/admin/v1/customers",
            json!({"name": "Beta", "emails": ["it@beta.example"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    let (status, server) = app
        .post("/admin/v1/servers", json!({"customer_id": customer["id"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{server}");
    let id = server["server_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    (id, "it@beta.example")
}

async fn a_mailed_link_signs_a_contact_in_once_and_the_pages_show_their_ids(app: &TestApp) {
    let (_, server_id) = app.register().await;
    let mut browser = Browser::new(app);

    let page = browser.get("/portal/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Mail me a sign-in link"),
        "{}",
        page.body
    );
    let csp = page.headers.get("content-security-policy").expect("CSP");
    assert!(csp
        .to_str()
        .unwrap_or_default()
        .contains("form-action 'self'"));
    assert!(csp
        .to_str()
        .unwrap_or_default()
        .contains("frame-ancestors 'none'"));
    assert!(page.headers.get("strict-transport-security").is_some());
    assert_eq!(
        page.headers.get("x-frame-options").map(|v| v.as_bytes()),
        Some(&b"DENY"[..])
    );

    // Known and unknown addresses get the same page; only the known one gets a link.
    let known = browser
        .post_form("/portal/sign-in", &[("email", "Ops@Acme.example")])
        .await;
    let unknown = browser
        .post_form("/portal/sign-in", &[("email", "nobody@elsewhere.example")])
        .await;
    assert_eq!(known.status, StatusCode::OK);
    assert_eq!((unknown.status, &unknown.body), (known.status, &known.body));
    let links = claim(app).await;
    assert_eq!(links.len(), 1, "{links:?}");
    let link = links[0].clone();
    assert_eq!(link["to"], "ops@acme.example");
    assert_eq!(claim(app).await, links, "a claim again gives the same link");

    // Only the token's hash is in the database.
    let token = token_of(&link);
    // (On PostgreSQL there is no database file here: the check is SQLite's.)
    let db = std::fs::read(app.dir.path().join("main.db")).unwrap_or_default();
    let wal = std::fs::read(app.dir.path().join("main.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the token is stored in the clear"
        );
    }

    // Opening the link changes nothing (a mail scanner may fetch it); posting it does.
    let opened = browser.get(link["path"].as_str().expect("path")).await;
    assert!(opened.body.contains("Sign in to the customer portal"));
    let opened_again = browser.get(link["path"].as_str().expect("path")).await;
    assert_eq!(opened_again.status, StatusCode::OK);
    let used = browser
        .post_form("/portal/link", &[("token", &token)])
        .await;
    assert_eq!(used.status, StatusCode::SEE_OTHER, "{}", used.body);
    assert_eq!(
        used.headers.get("location").map(|v| v.as_bytes()),
        Some(&b"/portal/"[..])
    );
    let cookie = used.headers.get("set-cookie").expect("cookie");
    let pair = cookie
        .to_str()
        .expect("text")
        .split(';')
        .next()
        .expect("pair");
    browser.cookie = Some(pair.to_owned());

    let home = browser.get("/portal/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains(&server_id.to_string()), "{}", home.body);
    assert!(home.body.contains("ops@acme.example"));
    assert!(home.body.contains("not bound"), "{}", home.body);
    let detail = browser.get(&format!("/portal/servers/{server_id}")).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    assert!(detail.body.contains("cad") && detail.body.contains("<td>10</td>"));
    assert_eq!(
        detail.headers.get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );

    // The link is used up: a second use is refused, and no one else gets a session.
    let reused = Browser::new(app)
        .post_form("/portal/link", &[("token", &token)])
        .await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST);
    assert!(reused.body.contains("used already"), "{}", reused.body);
    assert!(reused.headers.get("set-cookie").is_none());
    assert!(claim(app).await.is_empty(), "a used link is not mailed");

    // Handed over once by the gateway; the sign-in audited with the contact as actor.
    let handed = format!(
        "/admin/v1/portal-links/{}/handed",
        link["id"].as_str().unwrap_or("")
    );
    for _ in 0..2 {
        let (status, _) = app.post(&handed, json!({})).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    assert_eq!(
        app.audit_count("portal.link_handed", "ops@acme.example")
            .await,
        1
    );
    let (_, audit) = app.get("/admin/v1/audit?limit=20").await;
    let signed_in: Vec<&Value> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["action"] == "portal.sign_in")
        .collect();
    assert_eq!(signed_in.len(), 1, "{audit}");
    assert_eq!(signed_in[0]["actor"], "ops@acme.example");

    // Signing out ends the session for good.
    let out = browser.post_form("/portal/sign-out", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("Max-Age=0")));
    let after = browser.get("/portal/").await;
    assert!(
        after.body.contains("Mail me a sign-in link"),
        "{}",
        after.body
    );
    let detail = browser.get(&format!("/portal/servers/{server_id}")).await;
    assert_eq!(detail.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.audit_count("portal.sign_out", "ops@acme.example").await,
        1
    );
}

on_both_backends!(
    a_mailed_link_signs_a_contact_in_once_and_the_pages_show_their_ids,
    a_mailed_link_signs_a_contact_in_once_and_the_pages_show_their_ids_on_sqlite,
    a_mailed_link_signs_a_contact_in_once_and_the_pages_show_their_ids_on_postgres
);

async fn an_expired_link_is_refused_and_no_longer_mailed(app: &TestApp) {
    app.register().await;
    let browser = Browser::new(app);
    browser
        .post_form("/portal/sign-in", &[("email", "ops@acme.example")])
        .await;
    let link = link_to(app, "ops@acme.example").await;
    app.clock.advance(Duration::minutes(16));
    assert!(claim(app).await.is_empty(), "an expired link is not mailed");
    let used = browser
        .post_form("/portal/link", &[("token", &token_of(&link))])
        .await;
    assert_eq!(used.status, StatusCode::BAD_REQUEST);
    assert!(used.body.contains("expired"), "{}", used.body);
    assert!(used.headers.get("set-cookie").is_none());
    let forged = browser
        .post_form(
            "/portal/link",
            &[("token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert!(forged.body.contains("not a valid sign-in link"));
}

on_both_backends!(
    an_expired_link_is_refused_and_no_longer_mailed,
    an_expired_link_is_refused_and_no_longer_mailed_on_sqlite,
    an_expired_link_is_refused_and_no_longer_mailed_on_postgres
);

async fn link_requests_are_limited_per_address_and_per_client_address(app: &TestApp) {
    app.register().await;
    let browser = Browser::new(app);
    for email in ["ops@acme.example", "nobody@elsewhere.example"] {
        for _ in 0..3 {
            let page = browser
                .post_form("/portal/sign-in", &[("email", email)])
                .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        }
        // Known or not, the fourth within 15 minutes is refused alike.
        let page = browser
            .post_form("/portal/sign-in", &[("email", email)])
            .await;
        assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{email}");
        assert!(page.body.contains("this address"), "{}", page.body);
    }
    assert_eq!(
        claim(app).await.len(),
        3,
        "only the allowed requests got links"
    );
    // Fifteen minutes on, the address may ask again.
    app.clock.advance(Duration::minutes(16));
    let page = browser
        .post_form("/portal/sign-in", &[("email", "ops@acme.example")])
        .await;
    assert_eq!(page.status, StatusCode::OK);
    // 7 recorded in the hour so far; the client address may make 20.
    for n in 0..13 {
        let email = format!("guess{n}@elsewhere.example");
        let page = browser
            .post_form("/portal/sign-in", &[("email", &email)])
            .await;
        assert_eq!(page.status, StatusCode::OK, "request {n}");
    }
    let page = browser
        .post_form(
            "/portal/sign-in",
            &[("email", "one-more@elsewhere.example")],
        )
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.body.contains("your network"), "{}", page.body);
}

on_both_backends!(
    link_requests_are_limited_per_address_and_per_client_address,
    link_requests_are_limited_per_address_and_per_client_address_on_sqlite,
    link_requests_are_limited_per_address_and_per_client_address_on_postgres
);

async fn a_contact_sees_only_their_own_customers_ids(app: &TestApp) {
    let (acme_id, acme_local) = app.register_local().await;
    let (beta_id, beta_email) = second_customer(app).await;
    let mut browser = Browser::new(app);
    sign_in(app, &mut browser, beta_email).await;

    let home = browser.get("/portal/").await;
    assert!(home.body.contains(&beta_id.to_string()), "{}", home.body);
    assert!(!home.body.contains(&acme_id.to_string()), "{}", home.body);
    assert!(!home.body.contains("Acme"), "{}", home.body);

    // Another customer's id and an unknown id get the same answer.
    let other = browser.get(&format!("/portal/servers/{acme_id}")).await;
    let unknown_id = Uuid::new_v4();
    let unknown = browser.get(&format!("/portal/servers/{unknown_id}")).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        other.body.replace(&acme_id.to_string(), "ID"),
        unknown.body.replace(&unknown_id.to_string(), "ID")
    );
    // Nor can it be synced or cleared from here.
    let upload = browser.upload(&acme_local.sync_data()).await;
    assert_eq!(upload.status, StatusCode::NOT_FOUND, "{}", upload.body);
    assert!(upload.body.contains("not one of your license server ids"));
    let (_, acme) = app.get(&format!("/admin/v1/servers/{acme_id}")).await;
    assert_eq!(acme["bound_fingerprint"], Value::Null, "{acme}");
    let clear = browser
        .post_form(
            &format!("/portal/servers/{acme_id}/key-clear"),
            &[("reason", "mine")],
        )
        .await;
    assert_eq!(clear.status, StatusCode::NOT_FOUND);
    let (_, requests) = app.get("/admin/v1/key-clear-requests").await;
    assert_eq!(requests, json!([]));
}

on_both_backends!(
    a_contact_sees_only_their_own_customers_ids,
    a_contact_sees_only_their_own_customers_ids_on_sqlite,
    a_contact_sees_only_their_own_customers_ids_on_postgres
);

async fn cross_site_posts_are_refused(app: &TestApp) {
    let (_, server_id) = app.register().await;
    let mut browser = Browser::new(app);
    sign_in(app, &mut browser, "ops@acme.example").await;
    let evil = "https://evil.example";
    let clear = browser
        .post_form_from(
            evil,
            &format!("/portal/servers/{server_id}/key-clear"),
            &[("reason", "x")],
        )
        .await;
    assert_eq!(clear.status, StatusCode::FORBIDDEN, "{}", clear.body);
    let out = browser.post_form_from(evil, "/portal/sign-out", &[]).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    let asked = browser
        .post_form_from(evil, "/portal/sign-in", &[("email", "ops@acme.example")])
        .await;
    assert_eq!(asked.status, StatusCode::FORBIDDEN);
    // No Origin and no Sec-Fetch-Site: not from a page of ours either.
    let bare = browser
        .send(
            awc::http::Method::POST,
            "/portal/sign-out",
            None,
            "application/x-www-form-urlencoded",
            Vec::new(),
        )
        .await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
    // `Origin: null` (a sandboxed frame elsewhere): what the browser says of the site
    // decides.
    let sandboxed = browser
        .post_with(
            "/portal/sign-out",
            &[("Origin", "null"), ("Sec-Fetch-Site", "cross-site")],
        )
        .await;
    assert_eq!(sandboxed.status, StatusCode::FORBIDDEN);
    let (_, requests) = app.get("/admin/v1/key-clear-requests").await;
    assert_eq!(requests, json!([]), "a cross-site post recorded a request");
    assert!(
        claim(app).await.is_empty(),
        "a cross-site post asked for a link"
    );
    // The session still works: the refused sign-out did nothing.
    let home = browser.get("/portal/").await;
    assert!(home.body.contains(&server_id.to_string()));
    // Chromium's own form on our page (served with `Referrer-Policy: no-referrer`)
    // says `Origin: null` and `Sec-Fetch-Site: same-origin`: accepted.
    let own = browser
        .post_with(
            "/portal/sign-out",
            &[("Origin", "null"), ("Sec-Fetch-Site", "same-origin")],
        )
        .await;
    assert_eq!(own.status, StatusCode::SEE_OTHER, "{}", own.body);
}

on_both_backends!(
    cross_site_posts_are_refused,
    cross_site_posts_are_refused_on_sqlite,
    cross_site_posts_are_refused_on_postgres
);

async fn sync_by_upload_gives_the_license_file_of_that_server(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let mut browser = Browser::new(app);
    sign_in(app, &mut browser, "ops@acme.example").await;

    let sync_data = local.sync_data();
    let answer = browser.upload(&sync_data).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let disposition = answer
        .headers
        .get("content-disposition")
        .expect("a download");
    assert!(disposition
        .to_str()
        .unwrap_or_default()
        .contains(&format!("solme-license-{server_id}")));
    let file = local.open(app, &answer.body);
    assert_eq!(file.server_id, server_id);
    assert_eq!(file.licenses.len(), 1);
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(shown["last_sync_channel"], "portal", "{shown}");
    assert_eq!(
        shown["bound_fingerprint"],
        local.identity.fingerprint().as_str()
    );
    assert_eq!(app.audit_count("sync", "channel portal").await, 1);
    let home = browser.get("/portal/").await;
    assert!(
        home.body.contains("uploaded in the portal"),
        "{}",
        home.body
    );
    assert!(home.body.contains("366 days left") || home.body.contains("365 days left"));

    // The same file again (a lost download): the same license file, no new sequence.
    let again = browser.upload(&sync_data).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(local.open(app, &again.body).sequence, file.sequence);

    // Bad input changes nothing and says why.
    let not_sync = browser.upload("hello").await;
    assert_eq!(
        not_sync.status,
        StatusCode::BAD_REQUEST,
        "{}",
        not_sync.body
    );
    let oversized = browser.upload(&"x".repeat(200 * 1024)).await;
    assert_eq!(oversized.status, StatusCode::BAD_REQUEST);
    assert!(oversized.body.contains("too large"), "{}", oversized.body);
    // The usage each sync reported: a chart (inline SVG, no script or style) and a table.
    let detail = browser.get(&format!("/portal/servers/{server_id}")).await;
    assert!(
        detail.body.contains("No usage reported yet"),
        "{}",
        detail.body
    );
    let since = chrono::Utc::now() - Duration::days(7);
    let reported = browser
        .upload(&sync_data_with_usage(&local, since, 7))
        .await;
    assert_eq!(reported.status, StatusCode::OK, "{}", reported.body);
    let detail = browser.get(&format!("/portal/servers/{server_id}")).await;
    assert!(
        detail.body.contains("id=\"usage-chart\"><svg"),
        "{}",
        detail.body
    );
    assert!(!detail.body.contains("<script"), "{}", detail.body);
    assert!(
        detail
            .body
            .contains("<td>cad</td><td>7</td><td>10</td><td>12.5</td><td>2</td>"),
        "{}",
        detail.body
    );
    let other_key = Local::new(server_id);
    let in_use = browser.upload(&other_key.sync_data()).await;
    assert_eq!(in_use.status, StatusCode::CONFLICT, "{}", in_use.body);
    let (_, shown) = app.get(&format!("/admin/v1/servers/{server_id}")).await;
    assert_eq!(
        shown["sequence"],
        file.sequence + 1,
        "only the usage sync issued a file"
    );
}

on_both_backends!(
    sync_by_upload_gives_the_license_file_of_that_server,
    sync_by_upload_gives_the_license_file_of_that_server_on_sqlite,
    sync_by_upload_gives_the_license_file_of_that_server_on_postgres
);

async fn a_key_clear_request_from_the_portal_is_authenticated_and_its_status_shown(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    assert_eq!(
        app.post_sync(&local.sync_data()).await.status,
        StatusCode::OK
    );
    let mut browser = Browser::new(app);
    sign_in(app, &mut browser, "ops@acme.example").await;

    let asked = browser
        .post_form(
            &format!("/portal/servers/{server_id}/key-clear"),
            &[("reason", "reinstalled after a disk failure")],
        )
        .await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.body);
    let (_, requests) = app.get("/admin/v1/key-clear-requests").await;
    let request = requests[0].clone();
    assert_eq!(request["sender"], "ops@acme.example");
    assert_eq!(request["sender_auth"], "authenticated");
    assert_eq!(request["sender_auth_detail"], "signed in to the portal");
    assert_eq!(request["text"], "reinstalled after a disk failure");
    let detail = browser.get(&format!("/portal/servers/{server_id}")).await;
    assert!(detail.body.contains("pending"), "{}", detail.body);

    // No override needed: the sender is authenticated.
    let id = request["id"].as_str().expect("id");
    let (status, approved) = app
        .post(
            &format!("/admin/v1/key-clear-requests/{id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    let detail = browser.get(&format!("/portal/servers/{server_id}")).await;
    assert!(detail.body.contains("approved"), "{}", detail.body);
    assert!(detail.body.contains("not bound"), "{}", detail.body);
    assert_eq!(
        app.audit_count(
            "key_clear_request.create",
            "authenticated (signed in to the portal)"
        )
        .await,
        1
    );
}

on_both_backends!(
    a_key_clear_request_from_the_portal_is_authenticated_and_its_status_shown,
    a_key_clear_request_from_the_portal_is_authenticated_and_its_status_shown_on_sqlite,
    a_key_clear_request_from_the_portal_is_authenticated_and_its_status_shown_on_postgres
);

/// Sync data of `local` reporting the use of `cad` (at most `peak` of 10 seats) since
/// `since`.
fn sync_data_with_usage(local: &Local, since: chrono::DateTime<chrono::Utc>, peak: u32) -> String {
    let request = shared_proto::SyncRequest {
        version: shared_proto::messages::MESSAGE_VERSION,
        server_id: local.server_id,
        request_id: Uuid::new_v4(),
        created_at: chrono::Utc::now(),
        public_keys: local.identity.public_keys(),
        held_revision: None,
        held_sequence: None,
        software_version: "test".into(),
        usage: vec![shared_proto::FeatureUsage {
            feature: "cad".into(),
            seats_total: 10,
            peak_in_use: peak,
            seat_hours: 12.5,
            refusals: [("NO_SEATS".to_owned(), 2)].into_iter().collect(),
        }],
        usage_since: Some(since),
        held_file_sha256: None,
        request_counter: None,
        borrows: None,
        standby_keys: None,
    };
    shared_proto::sync_data::seal(&local.identity, &request).expect("seal")
}

/// A receipt of license file `file` signed by `identity`, as
/// `local-server import-license-file --receipt` writes it.
fn receipt_of(identity: &shared_proto::ServerIdentity, file: &shared_proto::LicenseFile) -> String {
    let json = serde_json::to_vec(file).expect("license file as JSON");
    let receipt = shared_proto::receipt::Receipt {
        version: shared_proto::messages::MESSAGE_VERSION,
        server_id: file.server_id,
        sequence: file.sequence,
        revision: file.revision,
        license_file_sha256: shared_proto::hex::encode(&openssl::sha::sha256(&json)),
        installed_at: chrono::Utc::now(),
        public_keys: identity.public_keys(),
    };
    shared_proto::receipt::seal(identity, &receipt).expect("seal receipt")
}

async fn installation(app: &TestApp, server_id: Uuid) -> Value {
    let (status, installed) = app
        .get(&format!("/admin/v1/servers/{server_id}/installation"))
        .await;
    assert_eq!(status, StatusCode::OK, "{installed}");
    installed
}

async fn not_installed(app: &TestApp) -> Vec<Value> {
    let (status, list) = app.get("/admin/v1/installations?not_installed=true").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().cloned().unwrap_or_default()
}

/// A receipt uploaded in the portal and mailed through the gateway's endpoint, and the
/// held sequence of later sync requests, say which license file the server holds; the
/// console's filter lists the ids whose changes are not installed.
async fn receipts_and_syncs_say_which_license_file_a_server_holds(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let mut browser = Browser::new(app);
    sign_in(app, &mut browser, "ops@acme.example").await;
    let answer = browser.upload(&local.sync_data()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let file = local.open(app, &answer.body);

    let issued = installation(app, server_id).await;
    assert_eq!(issued["issued_sequence"], file.sequence, "{issued}");
    assert!(issued["held_sequence"].is_null(), "{issued}");
    let summary = issued["summary"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with(&format!("license file #{} issued on ", file.sequence))
            && summary.ends_with("not yet installed"),
        "{summary}"
    );
    assert_eq!(issued["changes_not_installed"], true);
    let pending = not_installed(app).await;
    assert!(pending
        .iter()
        .any(|i| i["server_id"] == server_id.to_string()));
    let home = browser.get("/portal/").await;
    assert!(home.body.contains("not yet installed"), "{}", home.body);

    // The receipt, uploaded: verified with the bound key, recorded once, audited.
    let receipt = receipt_of(&local.identity, &file);
    let recorded = browser
        .upload_to("/portal/receipt", "receipt", &receipt)
        .await;
    assert_eq!(recorded.status, StatusCode::OK, "{}", recorded.body);
    assert!(
        recorded
            .body
            .contains(&format!("installed license file #{}", file.sequence)),
        "{}",
        recorded.body
    );
    let held = installation(app, server_id).await;
    assert_eq!(held["held_sequence"], file.sequence, "{held}");
    assert_eq!(held["confirmed_by"], "receipt");
    assert!(held["installed_at"].is_string(), "{held}");
    assert_eq!(held["changes_not_installed"], false);
    assert!(
        held["summary"]
            .as_str()
            .is_some_and(|s| s.contains(", installed on ")),
        "{held}"
    );
    assert!(!not_installed(app)
        .await
        .iter()
        .any(|i| i["server_id"] == server_id.to_string()));
    let detail = browser.get(&format!("/portal/servers/{server_id}")).await;
    assert!(detail.body.contains("installed on"), "{}", detail.body);
    assert_eq!(
        app.audit_count(
            "server.receipt",
            "uploaded in the portal by ops@acme.example"
        )
        .await,
        1
    );

    // The same receipt again, uploaded or mailed: answered alike, nothing new recorded.
    let again = browser
        .upload_to("/portal/receipt", "receipt", &receipt)
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert!(again.body.contains("recorded before"), "{}", again.body);
    let (status, mailed) = app
        .post(
            "/admin/v1/mail/receipt",
            json!({"sender": "ops@acme.example", "receipt": receipt}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{mailed}");
    assert_eq!(mailed["newly_recorded"], false);
    assert_eq!(mailed["sequence"], file.sequence);
    let (status, _) = app
        .post(
            "/admin/v1/mail/receipt",
            json!({"sender": "someone@elsewhere.example", "receipt": receipt}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an unregistered sender");
    assert_eq!(app.audit_count("server.receipt", "").await, 1);

    // A license change after the file was issued: not installed until a newer file is.
    app.clock.advance(Duration::minutes(1));
    let (status, added) = app
        .post_license(server_id, json!({"feature": "cam", "seats": 2}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(
        installation(app, server_id).await["changes_not_installed"],
        true
    );
    app.clock.advance(Duration::minutes(1));
    let second = app
        .post_sync(&local.sync_data_as(2, Some(file.sequence), app.clock.now()))
        .await;
    assert_eq!(second.status, StatusCode::OK);
    let after = installation(app, server_id).await;
    assert_eq!(after["issued_sequence"], file.sequence + 1, "{after}");
    assert_eq!(after["held_sequence"], file.sequence, "{after}");
    assert!(
        after["summary"]
            .as_str()
            .is_some_and(|s| s.contains("not yet installed (the server holds #")),
        "{after}"
    );
    // The next request holds the newer file: installed, by the sync's word.
    app.clock.advance(Duration::minutes(1));
    let third = app
        .post_sync(&local.sync_data_as(3, Some(file.sequence + 1), app.clock.now()))
        .await;
    assert_eq!(third.status, StatusCode::OK);
    let synced = installation(app, server_id).await;
    assert_eq!(synced["held_sequence"], file.sequence + 1, "{synced}");
    assert_eq!(synced["confirmed_by"], "sync");
    assert_eq!(synced["changes_not_installed"], false, "{synced}");
    assert!(
        synced["summary"]
            .as_str()
            .is_some_and(|s| s.contains(", installed by ")),
        "{synced}"
    );
}

on_both_backends!(
    receipts_and_syncs_say_which_license_file_a_server_holds,
    receipts_and_syncs_say_which_license_file_a_server_holds_on_sqlite,
    receipts_and_syncs_say_which_license_file_a_server_holds_on_postgres
);

/// Receipts that prove nothing are refused with a page saying why, and change nothing.
async fn receipts_that_prove_nothing_are_refused(app: &TestApp) {
    let (server_id, local) = app.register_local().await;
    let (beta_id, beta_email) = second_customer(app).await;
    let answer = app.post_sync(&local.sync_data()).await;
    assert_eq!(answer.status, StatusCode::OK);
    let file = local.open(app, &answer.body);
    let mut browser = Browser::new(app);
    sign_in(app, &mut browser, "ops@acme.example").await;

    // Signed by a key pair that is not the bound one.
    let stranger = Local::new(server_id);
    let forged = receipt_of(&stranger.identity, &file);
    let page = browser
        .upload_to("/portal/receipt", "receipt", &forged)
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
    assert!(page.body.contains("not the one bound"), "{}", page.body);
    // A file Solme never issued.
    let mut future = file.clone();
    future.sequence += 5;
    let page = browser
        .upload_to(
            "/portal/receipt",
            "receipt",
            &receipt_of(&local.identity, &future),
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("never issued"), "{}", page.body);
    // Sync data is no receipt.
    let page = browser
        .upload_to("/portal/receipt", "receipt", &local.sync_data())
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(
        page.body
            .contains("holds sync data, not an installation receipt"),
        "{}",
        page.body
    );
    // Another customer's id: the same words as an unknown one.
    let beta = Local::new(beta_id);
    let mut signed_in_beta = Browser::new(app);
    sign_in(app, &mut signed_in_beta, beta_email).await;
    let beta_answer = signed_in_beta.upload(&beta.sync_data()).await;
    assert_eq!(beta_answer.status, StatusCode::OK, "{}", beta_answer.body);
    let beta_file = beta.open(app, &beta_answer.body);
    let page = browser
        .upload_to(
            "/portal/receipt",
            "receipt",
            &receipt_of(&beta.identity, &beta_file),
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
    assert!(page.body.contains("not one of your license server ids"));
    // Cross-site: refused before anything is read.
    let evil = browser
        .send(
            awc::http::Method::POST,
            "/portal/receipt",
            Some("https://evil.example"),
            "text/plain",
            receipt_of(&local.identity, &file).into_bytes(),
        )
        .await;
    assert_eq!(evil.status, StatusCode::FORBIDDEN);
    assert_eq!(app.audit_count("server.receipt", "").await, 0);
    assert!(installation(app, server_id).await["held_sequence"].is_null());
}

on_both_backends!(
    receipts_that_prove_nothing_are_refused,
    receipts_that_prove_nothing_are_refused_on_sqlite,
    receipts_that_prove_nothing_are_refused_on_postgres
);

/// Upload to license file, measured: 100 uploads of fresh sync data for one id through
/// the portal (multipart POST over HTTPS, the sync core, the license file back), one at a
/// time; prints p50 and p99, on SQLite and (when configured) PostgreSQL. Run by hand:
/// `cargo test -p main-server --test api portal::upload_to_license_file_time -- --ignored --nocapture`.
#[actix_rt::test]
#[ignore = "a measurement, run by hand"]
async fn upload_to_license_file_time() {
    measure_uploads("SQLite", &crate::helpers::spawn_app().await).await;
    if let Some(app) = crate::helpers::spawn_pg_app().await {
        measure_uploads("PostgreSQL", &app).await;
    }
}

async fn measure_uploads(backend: &str, app: &TestApp) {
    let (_, local) = app.register_local().await;
    let mut browser = Browser::new(app);
    sign_in(app, &mut browser, "ops@acme.example").await;
    let mut times = Vec::with_capacity(100);
    for n in 0..100 {
        let sync_data = local.sync_data();
        let started = std::time::Instant::now();
        let answer = browser.upload(&sync_data).await;
        times.push(started.elapsed());
        assert_eq!(answer.status, StatusCode::OK, "upload {n}: {}", answer.body);
    }
    times.sort();
    let ms = |d: StdDuration| d.as_secs_f64() * 1000.0;
    println!(
        "{backend}: upload to license file, {} uploads: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        times.len(),
        ms(times[49]),
        ms(times[98]),
        ms(times[99])
    );
}
