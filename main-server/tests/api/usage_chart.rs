//! The console's usage chart of an id (`GET /admin/v1/servers/{id}/usage.svg`): an SVG
//! document that parses, with dates on the time axis, the seats held as a labelled
//! line, each sync's values in hover titles, and the empty state; a viewer may read it.

use awc::http::StatusCode;

use crate::helpers::{spawn_app, TestApp};
use crate::usage::{feature, sync_data_with_usage};

#[expect(clippy::expect_used, reason = "a failed request fails the test")]
async fn svg_of(app: &TestApp, path: &str) -> (StatusCode, String, String) {
    let mut response = app
        .http
        .get(format!("{}{path}", app.admin_base()))
        .insert_header(("Authorization", format!("Bearer {}", app.token)))
        .send()
        .await
        .expect("admin request");
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.body().limit(1 << 22).await.expect("body");
    (
        response.status(),
        kind,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The texts of a well-formed SVG document (a panic when it is not).
#[expect(clippy::expect_used, reason = "a malformed document fails the test")]
fn svg_texts(svg: &str) -> (usize, String) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(svg);
    let (mut titles, mut texts, mut depth, mut first) = (0, String::new(), 0i32, None);
    loop {
        match reader.read_event().expect("well-formed SVG") {
            Event::Start(e) => {
                depth += 1;
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                titles += usize::from(name == "title");
                first.get_or_insert(name);
            }
            Event::End(_) => depth -= 1,
            Event::Text(t) => {
                texts.push_str(&t.decode().expect("text"));
                texts.push('|');
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0);
    assert_eq!(first.as_deref(), Some("svg"));
    (titles, texts)
}

#[actix_rt::test]
async fn the_usage_chart_of_an_id_is_a_readable_svg() {
    let app = spawn_app().await;
    let (server_id, local) = app.register_local().await;

    // No sync yet: a chart that says so.
    let (status, kind, svg) =
        svg_of(&app, &format!("/admin/v1/servers/{server_id}/usage.svg")).await;
    assert_eq!(status, StatusCode::OK, "{svg}");
    assert!(kind.starts_with("image/svg+xml"), "{kind}");
    let (_, texts) = svg_texts(&svg);
    assert!(texts.contains("No use reported in this period"), "{texts}");

    for peak in [3, 4] {
        let data = sync_data_with_usage(&local, vec![feature("cad", peak, 12.5, 2)]);
        let answer = app.post_sync(&data).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let began = std::time::Instant::now();
    let (status, _, svg) = svg_of(&app, &format!("/admin/v1/servers/{server_id}/usage.svg")).await;
    eprintln!(
        "usage.svg of 2 syncs: {} bytes in {:?}",
        svg.len(),
        began.elapsed()
    );
    assert_eq!(status, StatusCode::OK, "{svg}");
    let (titles, texts) = svg_texts(&svg);
    assert!(texts.contains("Date (UTC)"), "{texts}");
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%b %-d")
        .to_string();
    let today = chrono::Utc::now().format("%b %-d").to_string();
    assert!(
        texts.contains(&yesterday) || texts.contains(&today),
        "the time axis names a day: {texts}"
    );
    assert!(
        texts.contains("cad: 5 seats"),
        "the seat line is labelled: {texts}"
    );
    assert!(titles >= 1, "hover titles");
    assert!(
        texts.contains("cad: 4 in use at most of 5 seats"),
        "{texts}"
    );
    assert!(!svg.contains("<script"), "no script");

    let (status, _, body) = svg_of(
        &app,
        &format!("/admin/v1/servers/{}/usage.svg", uuid::Uuid::new_v4()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("UNKNOWN_SERVER_ID"), "{body}");
}
