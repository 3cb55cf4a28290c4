//! The usage report on the manager page: any period (validated, in words), the report
//! as the CLI makes it, its CSV download, the usage chart drawn by the server as SVG
//! (dates on the time axis, the seat line, hover values, the empty state), and the
//! simulated clock's banner; through the manager API and as the customer's
//! administrator uses the page in Chromium.

use chrono::{Duration, Utc};
use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::{json, Value};
use test_harness::browser::chromium_present;

use crate::helpers::*;

/// Today and tomorrow (UTC), as `YYYY-MM-DD`: a period holding everything done now.
fn today_and_tomorrow() -> (String, String) {
    let today = Utc::now().date_naive();
    (
        today.format("%Y-%m-%d").to_string(),
        (today + Duration::days(1)).format("%Y-%m-%d").to_string(),
    )
}

/// Three check-outs of the three seats of cad and one refusal, seen in the report log.
async fn three_out_one_refused(http: &awc::Client, local: &Local) {
    for _ in 0..3 {
        assert_eq!(check_out(http, local, "cad").await.0, 201);
    }
    assert_eq!(check_out(http, local, "cad").await.0, 409);
    let (from, to) = today_and_tomorrow();
    let query = format!("report?from={from}&to={to}");
    test_harness::wait_until_async(
        "the report log rows",
        std::time::Duration::from_secs(10),
        || {
            let query = query.clone();
            async move {
                let (status, report) = manager_call(http, local, "GET", &query, None).await;
                assert_eq!(status, 200, "{report}");
                let cad = report["features"]
                    .as_array()
                    .and_then(|f| f.first())
                    .cloned();
                cad.filter(|c| c["check_outs"] == 3 && c["refusals"]["NO_SEATS"] == 1)
            }
        },
    )
    .await
    .unwrap();
}

/// Element names and texts of an SVG document; fails when it is not well-formed.
fn svg_parts(svg: &str) -> (Vec<String>, String) {
    let mut reader = Reader::from_str(svg);
    let (mut names, mut texts, mut depth) = (Vec::new(), String::new(), 0i32);
    loop {
        match reader.read_event().expect("well-formed SVG") {
            Event::Start(e) => {
                depth += 1;
                names.push(String::from_utf8_lossy(e.name().as_ref()).into_owned());
            }
            Event::Empty(e) => names.push(String::from_utf8_lossy(e.name().as_ref()).into_owned()),
            Event::End(_) => depth -= 1,
            Event::Text(t) => {
                texts.push_str(&t.decode().unwrap());
                texts.push('|');
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "every element closed");
    assert_eq!(names.first().map(String::as_str), Some("svg"));
    (names, texts)
}

async fn get_text(http: &awc::Client, local: &Local, path: &str) -> (u16, String, String, String) {
    let mut resp = manager_request(http, local, "GET", path)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (kind, disposition) = (header("content-type"), header("content-disposition"));
    let body = resp.body().limit(4 * 1024 * 1024).await.unwrap();
    (
        resp.status().as_u16(),
        kind,
        disposition,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[actix_rt::test]
async fn the_report_and_its_csv_are_the_cli_s_and_bad_periods_are_refused_in_words() -> TestResult {
    let local = Local::serving(vec![license("cad", 3)], &[]);
    let http = client();
    three_out_one_refused(&http, &local).await;
    let (from, to) = today_and_tomorrow();

    let (status, kind, disposition, csv) =
        get_text(&http, &local, &format!("report.csv?from={from}&to={to}")).await;
    assert_eq!(status, 200, "{csv}");
    assert!(kind.starts_with("text/csv"), "{kind}");
    assert!(
        disposition.contains("attachment") && disposition.contains(".csv"),
        "{disposition}"
    );
    let cli = local.cli(&["report", "--from", &from, "--to", &to, "--csv"]);
    assert_success(&cli);
    assert_eq!(csv, stdout(&cli), "the page's CSV is the command's");
    assert!(
        csv.contains("cad,3,") && csv.contains("NO_SEATS=1"),
        "{csv}"
    );

    // The start after the end, a date that is none, a period of no length: refused in
    // words, nothing about the library that read them.
    for (query, words) in [
        (
            format!("report?from={to}&to={from}"),
            "must start before it ends",
        ),
        (
            format!("report.csv?from={to}&to={from}"),
            "must start before it ends",
        ),
        (
            format!("usage.svg?from={to}&to={from}"),
            "must start before it ends",
        ),
        (
            format!("report?from=2027-02-30&to={to}"),
            "is not a date like 2027-01-31",
        ),
        (
            format!("report?from={from}&to={from}"),
            "must start before it ends",
        ),
        (
            "report?from=2020-01-01&to=2026-01-01".to_owned(),
            "longer than 800 days",
        ),
    ] {
        let (status, body) = manager_call(&http, &local, "GET", &query, None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("MALFORMED")),
            "{query}: {body}"
        );
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(words), "{query}: {message}");
        assert!(
            !message.contains("ParseError") && !message.contains("input"),
            "{message}"
        );
    }
    Ok(())
}

#[actix_rt::test]
async fn the_usage_chart_is_an_svg_with_dates_the_seat_line_and_hover_values() -> TestResult {
    let local = Local::serving(vec![license("cad", 3), license("cam", 2)], &[]);
    let http = client();
    three_out_one_refused(&http, &local).await;

    let began = std::time::Instant::now();
    let (status, kind, _, svg) = get_text(&http, &local, "usage.svg?days=7").await;
    let took = began.elapsed();
    assert_eq!(status, 200, "{svg}");
    assert!(kind.starts_with("image/svg+xml"), "{kind}");
    eprintln!(
        "usage.svg of 7 days, 2 features: {} bytes in {took:?}",
        svg.len()
    );
    let (names, texts) = svg_parts(&svg);
    assert!(
        texts.contains("Date (UTC)"),
        "the time axis is dated: {texts}"
    );
    let today = Utc::now().date_naive();
    let a_day = (today - Duration::days(3)).format("%b %-d").to_string();
    assert!(
        texts.contains(&a_day),
        "the time axis names {a_day}: {texts}"
    );
    assert!(
        texts.contains("cad: 3 seats"),
        "cad's seat line is labelled: {texts}"
    );
    assert!(
        texts.contains("cam: 2 seats"),
        "a feature not used still shows its seats: {texts}"
    );
    assert!(
        texts.contains("dashed: the seats the license gives"),
        "{texts}"
    );
    assert!(
        names.iter().filter(|n| *n == "title").count() >= 168,
        "hover values for each hour"
    );
    assert!(
        texts.contains("cad: 3 in use at most of 3 seats"),
        "{texts}"
    );
    assert!(!texts.contains("No use in this period"), "{texts}");

    // A month and a chosen period draw too; a period before any use says so.
    let (status, _, _, month) = get_text(&http, &local, "usage.svg?days=30").await;
    assert_eq!(status, 200);
    svg_parts(&month);
    let (status, _, _, empty) =
        get_text(&http, &local, "usage.svg?from=2026-01-01&to=2026-01-08").await;
    assert_eq!(status, 200, "{empty}");
    let (_, texts) = svg_parts(&empty);
    assert!(texts.contains("No use in this period"), "{texts}");
    assert!(texts.contains("Jan 2"), "{texts}");
    Ok(())
}

#[actix_rt::test]
async fn the_customer_s_administrator_picks_a_period_reads_the_report_and_saves_the_csv(
) -> TestResult {
    if !chromium_present() {
        return Ok(());
    }
    let local = Local::serving(vec![license("cad", 3)], &[]);
    let http = client();
    three_out_one_refused(&http, &local).await;
    let (from, to) = today_and_tomorrow();

    let mut page = crate::devtools::Browser::open(&local.url("/"), 1200, 1000).await;
    // The chart arrives as markup in the page: its hover titles are there to read.
    page.wait_for("document.querySelectorAll('#usage-chart svg title').length >= 168")
        .await;
    let hover = page
        .eval("[...document.querySelectorAll('#usage-chart svg title')].map(t => t.textContent).filter(t => t.includes('cad: 3 in use')).length > 0")
        .await;
    assert_eq!(hover, json!(true), "the last hour says 3 in use");
    page.wait_for("document.getElementById('report-table').hidden === false")
        .await;

    // The start after the end: said in words, nothing asked of the server.
    page.eval(&format!(
        "document.getElementById('period-from').value = '{to}'; \
         document.getElementById('period-to').value = '{from}'; \
         document.getElementById('period-show').click(); 1"
    ))
    .await;
    page.wait_for("document.getElementById('period-error').hidden === false")
        .await;
    let said = page
        .eval("document.getElementById('period-error').textContent")
        .await;
    let said = said.as_str().unwrap();
    assert!(
        said.contains("is after the end date") && said.contains(&to) && said.contains(&from),
        "{said}"
    );

    // Today only: the report names cad with its check-outs, refusal and user.
    page.eval(&format!(
        "document.getElementById('period-from').value = '{from}'; \
         document.getElementById('period-to').value = '{from}'; \
         document.getElementById('period-show').click(); 1"
    ))
    .await;
    page.wait_for("document.getElementById('period-error').hidden === true")
        .await;
    page.wait_for(&format!(
        "document.getElementById('period-words').textContent.includes('From {from} to {from}')"
    ))
    .await;
    page.wait_for(
        "document.getElementById('report').textContent.includes('all seats in use (NO_SEATS)')",
    )
    .await;
    let row: Value = page
        .eval(
            "[...document.querySelectorAll('#report tr:first-child td')].map(td => td.textContent)",
        )
        .await;
    assert_eq!(row[0], "cad", "{row}");
    assert_eq!(row[1], "3", "peak in use: {row}");
    assert_eq!(row[3], "3", "check-outs: {row}");
    assert!(
        row[5].as_str().unwrap().contains("1 all seats in use"),
        "{row}"
    );

    // Download CSV: the browser is handed the CLI's CSV of the same period.
    page.eval(
        "window.__saved = null; const make = URL.createObjectURL; \
         URL.createObjectURL = (blob) => { blob.text().then(t => { window.__saved = t; }); return make(blob); }; \
         HTMLAnchorElement.prototype.click = function () { window.__name = this.download; }; \
         document.getElementById('report-csv').click(); 1",
    )
    .await;
    page.wait_for("window.__saved !== null && window.__name !== undefined")
        .await;
    let saved = page.eval("window.__saved").await;
    let name = page.eval("window.__name").await;
    let cli = local.cli(&["report", "--from", &from, "--to", &to, "--csv"]);
    assert_eq!(saved.as_str().unwrap(), stdout(&cli));
    assert!(name.as_str().unwrap().ends_with(".csv"), "{name}");
    Ok(())
}

#[actix_rt::test]
async fn a_simulated_clock_is_shown_with_its_date() -> TestResult {
    if !chromium_present() {
        return Ok(());
    }
    let mut local = Local::imported(vec![license("cad", 1)]);
    local.serve(&[], &[("SOLME_CLOCK_OFFSET", "2d")]);
    let ahead = (Utc::now() + Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let mut page = crate::devtools::Browser::open(&local.url("/"), 1200, 900).await;
    page.wait_for("(document.getElementById('clock-banner') || {}).hidden === false")
        .await;
    let banner = page
        .eval("document.getElementById('clock-banner').textContent")
        .await;
    let banner = banner.as_str().unwrap();
    assert!(
        banner.contains("simulated clock") && banner.contains(&ahead),
        "the banner gives the server's date {ahead}: {banner}"
    );
    // The licensing address the page tells the customer to mail is the full one.
    let steps = page
        .eval("document.getElementById('licensing-address').textContent")
        .await;
    assert_eq!(steps, json!("licensing@solme.example"));

    // On the real clock, no banner.
    let plain = Local::serving(vec![license("cad", 1)], &[]);
    let mut page = crate::devtools::Browser::open(&plain.url("/"), 1200, 900).await;
    page.wait_for("(document.getElementById('state') || {}).textContent === 'Synchronized'")
        .await;
    let hidden = page
        .eval("document.getElementById('clock-banner').hidden")
        .await;
    assert_eq!(hidden, json!(true));
    Ok(())
}
