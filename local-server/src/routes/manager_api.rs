//! The manager API behind the manager page: status, sync, automatic sync, export and
//! import, diagnose, taking a seat back and promoting a standby. Loopback only (guarded
//! by [`crate::manager_page::api_guard`]).

use actix_web::body::MessageBody;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::SqliteConnection;
use serde::{Deserialize, Serialize};
use shared_proto::{ErrorCode, ServerIdentity};

use crate::config::{AutoSyncMode, Settings};
use crate::diagnose;
use crate::error::Error;
use crate::import::{self, Channel};
use crate::scheduler;
use crate::state::AppState;
use crate::status;
use crate::sync;

/// Who the report log and the pair name for what a person did on the manager page.
const MANAGER_PAGE: &str = "the manager page";

/// The full status report, with the proxy `serve` uses.
pub(crate) async fn full_status(state: &AppState) -> Result<status::StatusReport, Error> {
    let ctx = &state.installation;
    let fingerprint = ctx.identity.fingerprint();
    let now = ctx.clock.now();
    let proxy = state.proxy.clone();
    let mut report = ctx
        .db_with_settings(move |c, settings| {
            status::report(c, settings, fingerprint, now, Some(&proxy))
        })
        .await?;
    report.clock = ctx.clock.describe();
    Ok(report)
}

/// The status, with the licensing address the page tells the customer to mail.
pub(crate) async fn manager_status(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    #[derive(Serialize)]
    struct PageStatus {
        #[serde(flatten)]
        status: status::StatusReport,
        licensing_address: String,
    }
    Ok(HttpResponse::Ok().json(PageStatus {
        status: full_status(&state).await?,
        licensing_address: crate::wording::licensing_address(),
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct LeasesQuery {
    feature: Option<String>,
}

/// Who holds what: the live leases (as `local-server leases --json`).
pub(crate) async fn manager_leases(
    state: web::Data<AppState>,
    query: web::Query<LeasesQuery>,
) -> Result<HttpResponse, Error> {
    let now = state.installation.clock.now();
    let feature = query.into_inner().feature;
    let list = state
        .installation
        .db(move |c| Ok(crate::lease_list::list(c, now, feature.as_deref())?))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TakeBackBody {
    #[serde(default)]
    reason: Option<String>,
}

/// Takes a seat back (the page's "Take back" after its confirmation): stored like the
/// command's, then applied to the engine at once, so the answer comes with the seat free.
pub(crate) async fn manager_take_back(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<TakeBackBody>,
) -> Result<HttpResponse, Error> {
    let now = state.installation.clock.now();
    let data_dir = state.installation.data_dir.clone();
    let lease_id = path.into_inner();
    let reason = body.into_inner().reason;
    let done = state
        .installation
        .db(move |c| {
            crate::take_back::take_back(
                c,
                &data_dir,
                &lease_id,
                MANAGER_PAGE,
                reason.as_deref(),
                now,
            )
        })
        .await?;
    let engine = state.engine.clone();
    web::block(move || engine.reload()).await??;
    Ok(HttpResponse::Ok().json(done))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromoteBody {
    #[serde(default)]
    reason: Option<String>,
}

/// Promotes this standby (the page's "Promote standby" after its question): the same
/// checks as `local-server promote`, the page named as who promoted it. Answers when
/// and until when it issues, or the refusal (`WRONG_SERVER` on a server that is not a
/// standby, `SERVING_ELSEWHERE` while the primary answers, …).
pub(crate) async fn manager_promote(
    state: web::Data<AppState>,
    body: web::Json<PromoteBody>,
) -> Result<HttpResponse, Error> {
    let installation = state.installation.clone();
    let reason = body.into_inner().reason;
    // Its own task: a promotion under way is finished even if the browser goes away.
    let promoted = actix_rt::spawn(async move {
        crate::pair::standby::promote(&installation, MANAGER_PAGE.to_owned(), reason).await
    })
    .await
    .map_err(task_failed)??;
    Ok(HttpResponse::Ok().json(promoted))
}

/// The period of the page's usage chart and report: `days=7|30` (the last days), or
/// `from` and `to` (a day `YYYY-MM-DD`, its start, or an RFC 3339 time; `to` excluded),
/// as `local-server report` reads them.
#[derive(Debug, Deserialize)]
pub(crate) struct PeriodQuery {
    days: Option<i64>,
    from: Option<String>,
    to: Option<String>,
}

impl PeriodQuery {
    /// `[from, to)`: given, or the last `default_days` days before `now`. A period that
    /// is empty, too long or not made of dates is refused in words (`400 MALFORMED`).
    fn period(
        &self,
        now: DateTime<Utc>,
        default_days: i64,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), Error> {
        let malformed = |message: String| Error::refused(ErrorCode::Malformed, message);
        let read = |text: &Option<String>, which: &str| -> Result<Option<DateTime<Utc>>, Error> {
            match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                None => Ok(None),
                Some(t) if t.len() > 40 => Err(malformed(format!("the {which} date is too long"))),
                Some(t) => crate::report::parse_time(t).map(Some).map_err(|_| {
                    malformed(format!(
                        "the {which} date {t:?} is not a date like 2027-01-31"
                    ))
                }),
            }
        };
        let to = read(&self.to, "end")?.unwrap_or(now);
        let from = match (read(&self.from, "start")?, self.days) {
            (Some(from), _) => from,
            (None, Some(days)) if days == 7 || days == 30 => to - chrono::Duration::days(days),
            (None, Some(_)) => {
                return Err(malformed(
                    "days must be 7 or 30 (or give the period's start and end dates)".into(),
                ))
            }
            (None, None) => to - chrono::Duration::days(default_days),
        };
        crate::report::check_period(from, to).map_err(malformed)?;
        Ok((from, to))
    }
}

/// Seats in use over a period (hourly up to 10 days; `days=30` six-hourly as before),
/// and refusals.
pub(crate) async fn manager_usage(
    state: web::Data<AppState>,
    query: web::Query<PeriodQuery>,
) -> Result<HttpResponse, Error> {
    Ok(HttpResponse::Ok().json(usage_of(&state, &query).await?))
}

async fn usage_of(state: &AppState, query: &PeriodQuery) -> Result<crate::report::Usage, Error> {
    let now = state.installation.clock.now();
    // The last 7 or 30 days keep their slots (hourly, six-hourly).
    if query.from.is_none() && query.to.is_none() {
        if let Some((days, buckets)) = match query.days {
            None | Some(7) => Some((7, 168)),
            Some(30) => Some((30, 120)),
            Some(_) => None,
        } {
            return state
                .installation
                .db(move |c| crate::report::usage(c, now, days, buckets))
                .await;
        }
    }
    let (from, to) = query.period(now, 7)?;
    state
        .installation
        .db(move |c| crate::report::usage_between(c, from, to))
        .await
}

/// The usage chart of the period (`image/svg+xml`): one line per feature, each license's
/// seats as a dashed line, dates on the time axis, values in hover titles. The page puts
/// it into its own markup (so the hover titles show).
pub(crate) async fn manager_usage_svg(
    state: web::Data<AppState>,
    query: web::Query<PeriodQuery>,
) -> Result<HttpResponse, Error> {
    let usage = usage_of(&state, &query).await?;
    let seats: std::collections::BTreeMap<String, u32> = full_status(&state)
        .await?
        .client
        .features
        .into_iter()
        .map(|f| (f.seats.feature, f.seats.seats_total))
        .collect();
    let svg = web::block(move || usage.chart_svg(&seats)).await??;
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml; charset=utf-8")
        .body(svg))
}

/// The usage report of a period, as `local-server report --json` (default: the last
/// 30 days).
pub(crate) async fn manager_report(
    state: web::Data<AppState>,
    query: web::Query<PeriodQuery>,
) -> Result<HttpResponse, Error> {
    Ok(HttpResponse::Ok().json(report_of(&state, &query).await?))
}

/// The same report as CSV (as `local-server report --csv`), to save as
/// `usage-report-FROM-TO.csv`.
pub(crate) async fn manager_report_csv(
    state: web::Data<AppState>,
    query: web::Query<PeriodQuery>,
) -> Result<HttpResponse, Error> {
    let report = report_of(&state, &query).await?;
    let name = format!(
        "usage-report-{}-{}.csv",
        report.from.format("%Y%m%d"),
        report.to.format("%Y%m%d")
    );
    Ok(download("text/csv; charset=utf-8", &name, report.to_csv()))
}

async fn report_of(state: &AppState, query: &PeriodQuery) -> Result<crate::report::Report, Error> {
    let (from, to) = query.period(state.installation.clock.now(), 30)?;
    state
        .installation
        .db(move |c| crate::report::build(c, from, to))
        .await
}

pub(crate) async fn manager_sync(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    // awc clients belong to one thread: this one is made for this request from the
    // shared TLS context (a manual sync is rare).
    let client = sync::http_client(state.tls.clone(), state.proxy.clone());
    let ctx = state.installation.clone();
    // A task of its own: should the browser go away, the request future is dropped but
    // the synchronization still finishes and releases its lock.
    let outcome = actix_rt::spawn(async move { sync::sync_now(&ctx, &client, "manager").await })
        .await
        .map_err(task_failed)?;
    // A refusal is an error answer with its code; the main server out of reach or
    // another sync running is `503 UNAVAILABLE`.
    Ok(HttpResponse::Ok().json(outcome?))
}

/// `PUT auto-sync`: a mode other than off, daily or weekly is refused by the body's
/// reader (`400 MALFORMED` naming the words accepted).
#[derive(Debug, Deserialize)]
pub(crate) struct AutoSyncBody {
    mode: AutoSyncMode,
}

pub(crate) async fn manager_auto_sync(
    state: web::Data<AppState>,
    body: web::Json<AutoSyncBody>,
) -> Result<HttpResponse, Error> {
    let mode = body.mode;
    let now = state.installation.clock.now();
    let next = state
        .installation
        .db(move |c| scheduler::set_mode(c, mode, now))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "auto_sync": mode.as_str(),
        "next_auto_sync_at": next,
    })))
}

pub(crate) async fn manager_export(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let ctx = state.installation.clone();
    let (server_id, text) = state
        .installation
        .db_with_settings(move |c, settings| {
            let (request, text) = sync::build_request(c, settings, &ctx.identity, ctx.clock.now())?;
            // The browser saves the file now and it may be mailed: its period is spoken for.
            sync::mark_usage_reported(c, request.created_at)?;
            Ok((settings.server_id, text))
        })
        .await?;
    Ok(download(
        "text/plain; charset=utf-8",
        &format!("sync-data-{server_id}.txt"),
        text,
    ))
}

/// A file for the browser to save as `name`.
fn download(content_type: &str, name: &str, body: impl MessageBody + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .body(body)
}

pub(crate) async fn manager_import(
    state: web::Data<AppState>,
    body: String,
) -> Result<HttpResponse, Error> {
    answer_license_file(&state, body, |c, settings, identity, text, now| {
        import::import_text(c, settings, identity, text, Channel::File, now)
    })
    .await
}

/// What importing the posted license file would change (the page shows it before the
/// customer confirms); the import's checks, nothing applied.
pub(crate) async fn manager_import_preview(
    state: web::Data<AppState>,
    body: String,
) -> Result<HttpResponse, Error> {
    answer_license_file(&state, body, import::preview_text).await
}

/// Answers with what `handle` makes of the posted license file (installs it or
/// previews it), given the configuration, the server's keys and the time.
async fn answer_license_file<T, F>(
    state: &AppState,
    body: String,
    handle: F,
) -> Result<HttpResponse, Error>
where
    T: Serialize + Send + 'static,
    F: FnOnce(
            &mut SqliteConnection,
            &Settings,
            &ServerIdentity,
            &str,
            DateTime<Utc>,
        ) -> Result<T, Error>
        + Send
        + 'static,
{
    let ctx = state.installation.clone();
    let answer = state
        .installation
        .db_with_settings(move |c, settings| {
            handle(c, settings, &ctx.identity, &body, ctx.clock.now())
        })
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// The support bundle (`.tar.gz`) for the page's button: a diagnosis (which
/// synchronizes when it can), then the bundle, with no secret in it.
pub(crate) async fn manager_support_bundle(
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let proxy = state.proxy.clone();
    let extra = crate::support_bundle::password_of(&proxy);
    let ctx = state.installation.clone();
    let diagnosis = {
        let ctx = ctx.clone();
        actix_rt::spawn(async move { diagnose::run_in(&ctx, move |_| Ok(proxy)).await })
            .await
            .map_err(task_failed)?
    };
    let inner = ctx.clone();
    let (server_id, bytes) = ctx
        .db_with_settings(move |c, settings| {
            let now = inner.clock.now();
            let bytes = crate::support_bundle::build(c, &inner, &diagnosis, &extra, now)?;
            Ok((settings.server_id, bytes))
        })
        .await?;
    Ok(download(
        "application/gzip",
        &crate::support_bundle::file_name(server_id),
        bytes,
    ))
}

pub(crate) async fn manager_diagnose(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    // The shared pool and the proxy `serve` resolved (`--proxy` / LOCAL_SERVER_PROXY).
    let proxy = state.proxy.clone();
    let ctx = state.installation.clone();
    // Its own task, like a manual sync: the synchronization it runs is never cut short.
    let report = actix_rt::spawn(async move { diagnose::run_in(&ctx, move |_| Ok(proxy)).await })
        .await
        .map_err(task_failed)?;
    Ok(HttpResponse::Ok().json(report))
}

fn task_failed(err: tokio::task::JoinError) -> Error {
    Error::Internal(anyhow::anyhow!("the background task failed: {err}"))
}
