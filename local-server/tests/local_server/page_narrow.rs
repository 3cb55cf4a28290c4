//! The manager page in a narrow window (360 CSS pixels): nothing wider than the window,
//! wide tables scroll inside their panel; and no request of the page fails (no favicon
//! 404).

use serde_json::json;
use test_harness::browser::chromium_present;

use crate::helpers::*;

#[actix_rt::test]
async fn the_favicon_is_served() -> TestResult {
    let local = Local::offline_serving();
    let http = client();
    for path in ["/favicon.ico", "/manager/assets/favicon.svg"] {
        let resp = http.get(local.url(path)).send().await?;
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let kind = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        assert_eq!(kind, Some("image/svg+xml"), "{path}");
    }
    Ok(())
}

#[actix_rt::test]
async fn at_360_pixels_nothing_is_wider_than_the_window_and_nothing_fails() -> TestResult {
    if !chromium_present() {
        return Ok(());
    }
    let local = Local::serving(
        vec![license(
            "a-feature-with-a-rather-long-name-for-a-narrow-table",
            4,
        )],
        &[],
    );
    let http = client();
    let body = json!({"feature": "a-feature-with-a-rather-long-name-for-a-narrow-table",
        "client": "a client program with a long name 2026", "user": "someone.with.a.long.name",
        "host": "workstation-in-building-seven"});
    let (status, grant) = call(
        &http,
        "POST",
        &local.url("/api/v1/leases"),
        Some(body),
        None,
    )
    .await;
    assert_eq!(status, 201, "{grant}");

    let mut page = crate::devtools::Browser::open(&local.url("/"), 360, 800).await;
    // Headless Chromium may keep its default window: the viewport is set explicitly.
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 360, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    page.wait_for("window.innerWidth === 360 && document.getElementById('leases-table').hidden === false && document.getElementById('licenses-table').hidden === false").await;
    // Every element ends inside the window, except what a scrolling wrapper clips.
    let outside = page
        .eval("[...document.querySelectorAll('body *')].filter(e => !e.closest('.table-scroll') && e.getClientRects().length > 0 && e.getBoundingClientRect().right > window.innerWidth + 1).map(e => e.tagName + '#' + e.id + '.' + e.className)")
        .await;
    assert_eq!(outside, json!([]), "elements beyond the window's edge");
    let width = page.eval("window.innerWidth").await;
    let page_width = page.eval("document.documentElement.scrollWidth").await;
    assert!(
        page_width.as_u64() <= width.as_u64(),
        "the page is {page_width} px wide in a {width} px window"
    );
    // The wide table scrolls inside its panel.
    let scrolls = page
        .eval("{ const w = document.getElementById('leases-table').closest('.table-scroll'); w.scrollWidth > w.clientWidth && getComputedStyle(w).overflowX === 'auto' }")
        .await;
    assert_eq!(scrolls, json!(true));
    // Wait for the icon's request, then no request of the page failed.
    page.wait_for("performance.getEntriesByType('resource').some(e => e.name.includes('favicon'))")
        .await;
    page.eval("1").await;
    let failed = page.failed_requests();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    Ok(())
}
