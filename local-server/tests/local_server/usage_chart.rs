//! The manager page's usage chart and refusals, through the manager API.

use crate::helpers::*;

#[actix_rt::test]
async fn the_chart_data_shows_seats_in_use_and_refusals() -> TestResult {
    let local = Local::serving(vec![license("cad", 1)], &[]);
    let http = client();
    assert_eq!(check_out(&http, &local, "cad").await.0, 201);
    assert_eq!(check_out(&http, &local, "cad").await.0, 409);

    let usage = test_harness::wait_until_async(
        "the log rows",
        std::time::Duration::from_secs(10),
        || async {
            let (status, usage) = manager_call(&http, &local, "GET", "usage?days=7", None).await;
            assert_eq!(status, 200, "{usage}");
            (usage["refusals"]["cad"]["NO_SEATS"] == 1).then_some(usage)
        },
    )
    .await
    .unwrap();
    let line = usage["series"]["cad"].as_array().unwrap();
    assert_eq!(line.len(), 168, "hourly for a week");
    assert_eq!(line.last().unwrap(), 1, "one seat in use now");
    assert_eq!(line.first().unwrap(), 0);

    let (status, month) = manager_call(&http, &local, "GET", "usage?days=30", None).await;
    assert_eq!(status, 200);
    assert_eq!(month["series"]["cad"].as_array().unwrap().len(), 120);
    let (status, body) = manager_call(&http, &local, "GET", "usage?days=3", None).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("MALFORMED")));

    let page = http.get(local.url("/")).send().await?.body().await?;
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("usage-chart") && page.contains("Borrowed seats"),
        "{page}"
    );
    Ok(())
}
