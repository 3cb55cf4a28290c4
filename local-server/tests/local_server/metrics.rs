//! `/metrics` shows the leases in use and counts refusals by code.

use chrono::Utc;

use crate::helpers::*;

async fn scrape(http: &awc::Client, local: &Local) -> String {
    let mut resp = http.get(local.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    String::from_utf8(resp.body().await.unwrap().to_vec()).unwrap()
}

fn assert_line(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
}

#[actix_rt::test]
async fn metrics_show_leases_in_use_and_refusals_by_code() -> TestResult {
    let mut local = Local::offline_serving();
    let http = client();
    let (status, _) = check_out(&http, &local, "cad").await;
    assert_eq!(status, 403, "not synchronized yet");
    local.stop();

    assert_success(&local.import(&local.license_file(1, Utc::now(), vec![license("cad", 1)])));
    local.serve(&[], &[]);
    let lease = checked_out(&http, &local, "cad").await;
    let (status, _) = check_out(&http, &local, "cad").await;
    assert_eq!(status, 409);
    let (status, _) = check_out(&http, &local, "cam").await;
    assert_eq!(status, 404);

    let text = scrape(&http, &local).await;
    assert_line(&text, r#"solme_leases_in_use{feature="cad"} 1"#);
    assert_line(
        &text,
        r#"solme_lease_refusals_total{request="check_out",code="NO_SEATS"} 1"#,
    );
    assert_line(
        &text,
        r#"solme_lease_refusals_total{request="check_out",code="FEATURE_UNKNOWN"} 1"#,
    );

    let (status, _) = check_in(&http, &local, lease["lease_id"].as_str().unwrap()).await;
    assert_eq!(status, 204);
    assert_line(
        &scrape(&http, &local).await,
        r#"solme_leases_in_use{feature="cad"} 0"#,
    );
    Ok(())
}
