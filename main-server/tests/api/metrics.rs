//! `/metrics` on the admin listener counts syncs by channel and outcome and times them.

use awc::http::StatusCode;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn metrics_count_syncs_by_channel_and_outcome() {
    let app = spawn_app().await;
    let (_, local) = app.register_local().await;
    let data = local.sync_data();
    assert_eq!(app.post_sync(&data).await.status, StatusCode::OK);
    let replay = app.post_sync(&data).await;
    assert_eq!(replay.code(), "REPLAYED_REQUEST");
    let (status, body) = app.mail_sync("ops@acme.example", &local.sync_data()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, _, text) = app.get_page("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        r#"solme_syncs_total{channel="internet",outcome="ok"} 1"#,
        r#"solme_syncs_total{channel="internet",outcome="REPLAYED_REQUEST"} 1"#,
        r#"solme_syncs_total{channel="email",outcome="ok"} 1"#,
        r#"solme_sync_duration_seconds_count{channel="internet"} 2"#,
        r#"solme_sync_duration_seconds_count{channel="email"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}
