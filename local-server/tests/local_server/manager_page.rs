//! The web manager page: served on loopback with its security headers, its script,
//! the guard in front of the manager API, and (with Chromium) the page as rendered.

use chrono::Utc;
use test_harness::browser::{assert_page_headers, chromium_present, rendered_dom};

use crate::helpers::*;

fn header<'a>(resp: &'a awc::ClientResponse<impl Sized>, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[actix_rt::test]
async fn the_page_and_its_assets_are_served_with_security_headers() -> TestResult {
    let local = Local::offline_serving();
    let http = client();

    let mut resp = http.get(local.url("/")).send().await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(header(&resp, "content-type").starts_with("text/html"));
    assert_page_headers(
        |name| header(&resp, name),
        &[
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ],
        "/",
    );
    let html = String::from_utf8(resp.body().await?.to_vec())?;
    assert!(html.contains(r#"<script src="/manager/assets/app.js""#));
    // The CSP forbids inline code: every script is a file, and no element has a handler.
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=").count()
    );
    assert!(!html.contains(" onclick="), "inline handler in the page");

    let mut js = http.get(local.url("/manager/assets/app.js")).send().await?;
    assert_eq!(js.status().as_u16(), 200);
    assert!(header(&js, "content-type").starts_with("text/javascript"));
    assert_eq!(header(&js, "x-content-type-options"), "nosniff");
    let script = String::from_utf8(js.body().await?.to_vec())?;
    assert!(script.contains("X-Solme-Manager"));
    assert!(!script.contains("innerHTML"), "data must go in as text");

    let css = http
        .get(local.url("/manager/assets/app.css"))
        .send()
        .await?;
    assert_eq!(css.status().as_u16(), 200);
    assert!(header(&css, "content-type").starts_with("text/css"));
    Ok(())
}

#[actix_rt::test]
async fn a_foreign_host_name_gets_neither_the_page_nor_the_api() -> TestResult {
    // A web site that re-points its DNS name at 127.0.0.1 ("DNS rebinding") sends its
    // own name as Host.
    let local = Local::offline_serving();
    let http = client();
    for path in ["/", "/manager/assets/app.js", "/manager/v1/status"] {
        let resp = http
            .get(local.url(path))
            .insert_header(("Host", "evil.example:7070"))
            .insert_header(("X-Solme-Manager", "1"))
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 401, "{path}");
    }
    // `localhost` is this machine.
    let port = local
        .url("")
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let resp = http
        .get(local.url("/"))
        .insert_header(("Host", format!("localhost:{port}")))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    Ok(())
}

#[actix_rt::test]
async fn state_changing_manager_calls_need_the_manager_header() -> TestResult {
    let local = Local::offline_serving();
    let http = client();
    let file = local.license_file(1, Utc::now(), vec![license("cad", 3)]);

    // What a cross-site form could send: no custom header, a form content type.
    let mut resp = http
        .post(local.url("/manager/v1/license-file"))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .send_body(file.clone())
        .await?;
    assert_eq!(resp.status().as_u16(), 401);
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["code"], "UNAUTHORIZED");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("X-Solme-Manager"),
        "{body}"
    );
    let resp = http.post(local.url("/manager/v1/sync")).send().await?;
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
    let resp = http.post(local.url("/manager/v1/sync-data")).send().await?;
    assert_eq!(resp.status().as_u16(), 401);
    let resp = http
        .put(local.url("/manager/v1/auto-sync"))
        .send_json(&serde_json::json!({"mode": "daily"}))
        .await?;
    assert_eq!(resp.status().as_u16(), 401);
    let resp = http.post(local.url("/manager/v1/diagnose")).send().await?;
    assert_eq!(resp.status().as_u16(), 401);
    // Diagnose synchronizes for real: never on a GET.
    let resp = http
        .get(local.url("/manager/v1/diagnose"))
        .insert_header(("X-Solme-Manager", "1"))
        .send()
        .await?;
    assert!(resp.status().is_client_error(), "{}", resp.status());
    // The header from a script of another origin (its Origin gives it away).
    let resp = http
        .post(local.url("/manager/v1/license-file"))
        .insert_header(("X-Solme-Manager", "1"))
        .insert_header(("Origin", "http://evil.example"))
        .send_body(file.clone())
        .await?;
    assert_eq!(resp.status().as_u16(), 401);

    // Nothing happened.
    let status = local.status();
    assert_eq!(status["state"], "never_synchronized");
    assert_eq!(status["auto_sync"], "off");
    assert!(status["last_attempt_at"].is_null());
    assert_eq!(status["features"].as_array().map(Vec::len), Some(0));

    // The page's own call, with its origin, goes through.
    let origin = local.url("");
    let resp = http
        .post(local.url("/manager/v1/license-file"))
        .insert_header(("X-Solme-Manager", "1"))
        .insert_header(("Origin", origin))
        .insert_header(("Content-Type", "text/plain; charset=utf-8"))
        .send_body(file)
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(local.status()["features"][0]["feature"], "cad");
    Ok(())
}

#[actix_rt::test]
async fn exported_sync_data_is_named_after_the_id() -> TestResult {
    let local = Local::offline_serving();
    let mut resp = manager_request(&client(), &local, "POST", "sync-data")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        header(&resp, "content-disposition"),
        format!("attachment; filename=\"sync-data-{}.txt\"", local.id)
    );
    let text = String::from_utf8(resp.body().await?.to_vec())?;
    let verified = shared_proto::sync_data::open(&text)?;
    assert_eq!(verified.request.server_id, local.id);
    Ok(())
}

#[test]
fn chromium_shows_the_status_rendered_by_the_script() {
    if !chromium_present() {
        return;
    }
    let local = Local::offline_serving();
    let scratch = tempfile::tempdir().unwrap();

    let dom = rendered_dom(&local.url("/"), scratch.path()).unwrap();
    assert!(dom.contains("Never synchronized"), "{dom}");
    assert!(dom.contains(&local.id.to_string()), "{dom}");

    assert_success(&local.import(&local.license_file(
        1,
        Utc::now(),
        vec![license("cad", 4), license("<b>x</b>", 1)],
    )));
    let dom = rendered_dom(&local.url("/"), scratch.path()).unwrap();
    assert!(dom.contains(">Synchronized<"), "{dom}");
    assert!(dom.contains("366 of 366"), "{dom}");
    assert!(dom.contains(">cad<"), "{dom}");
    // A feature name is text, not markup.
    assert!(dom.contains("&lt;b&gt;x&lt;/b&gt;"), "{dom}");
    assert!(!dom.contains("<b>x</b>"), "{dom}");
}
