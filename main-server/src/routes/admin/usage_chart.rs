//! The usage chart of an id for the console: the usage its syncs reported, drawn as
//! SVG by the chart crate the local server's manager page uses too.

use actix_web::{web, HttpResponse};
use chrono::Duration;
use serde::Deserialize;
use shared_proto::admin_api::SyncUsage;
use utoipa::IntoParams;
use uuid::Uuid;

use super::State;
use crate::auth::Viewer;
use crate::error::ApiError;
use crate::routes::with_conn;
use crate::store::usage;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ChartQuery {
    /// How many of the newest syncs: default 50, at most 1000.
    limit: Option<u32>,
}

/// The highest seats in use per feature over the id's latest syncs, with the seats the
/// id held, as an SVG chart.
#[utoipa::path(
    get, path = "/admin/v1/servers/{id}/usage.svg", tag = "servers",
    params(("id" = Uuid, Path, description = "The license server id."), ChartQuery),
    responses(
        (status = 200, description = "An SVG chart (`image/svg+xml`) of the usage the id's newest accepted syncs reported: per feature the highest seats in use of each sync's period as a line, the seats the id held as a dashed line, dates (UTC) on the time axis, each period's values in a `<title>` (shown on hover when the SVG is part of a page's markup); \"No use reported in this period\" when none was.", content_type = "image/svg+xml", body = String),
        (status = 400, description = "`MALFORMED`: a bad query."),
        (status = 404, description = "`UNKNOWN_SERVER_ID`."),
    )
)]
pub(super) async fn server_usage_svg(
    _: Viewer,
    state: State,
    path: web::Path<Uuid>,
    query: web::Query<ChartQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let limit = query.limit;
    let syncs = with_conn(&state.db.read, move |conn| usage::list(conn, id, limit)).await?;
    let now = state.clock.now();
    let svg = web::block(move || chart(&syncs, now))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("drawing the usage chart: {e}")))??;
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(svg))
}

/// One line per feature: each sync's highest use holds over the period it reported
/// (from the previous sync, or the period's start the local server gave). The
/// customer portal draws the same chart on an id's page.
pub(crate) fn chart(
    syncs: &[SyncUsage],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, ApiError> {
    let mut features: Vec<String> = syncs
        .iter()
        .flat_map(|s| s.features.iter().map(|f| f.feature.clone()))
        .collect();
    features.sort();
    features.dedup();
    let start_of = |k: usize| {
        let sync = &syncs[k];
        let previous = k.checked_sub(1).map(|p| syncs[p].synced_at);
        match (sync.usage_since, previous) {
            (Some(since), _) => since.min(sync.synced_at),
            (None, Some(previous)) => previous,
            (None, None) => sync.synced_at - Duration::days(1),
        }
    };
    let series: Vec<solme_charts::Series> = features
        .iter()
        .map(|name| solme_charts::Series {
            name: name.clone(),
            points: (0..syncs.len())
                .map(|k| {
                    let reported = syncs[k].features.iter().find(|f| &f.feature == name);
                    solme_charts::Point {
                        at: start_of(k),
                        value: reported.map_or(0, |f| f.peak_in_use),
                        seats: reported.map(|f| f.seats_total),
                    }
                })
                .collect(),
        })
        .collect();
    let (from, to) = match (syncs.first(), syncs.last()) {
        (Some(_), Some(last)) => (start_of(0), last.synced_at),
        _ => (now - Duration::days(30), now),
    };
    let to = to.max(from + Duration::hours(1));
    let mut chart = solme_charts::Chart::new(from, to, &series);
    chart.value_words = "in use at most";
    chart.empty_text = "No use reported in this period";
    solme_charts::render(&chart)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("drawing the usage chart: {e}")))
}
