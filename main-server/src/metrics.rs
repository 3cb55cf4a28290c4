//! Prometheus metrics of the main server, served as text at `GET /metrics` on the admin
//! listener (a private network, like the rest of the admin API; the counters say nothing
//! about a customer). Per process: a scraper sums the replicas.
//!
//! - `solme_syncs_total{channel, outcome}`: every sync answered, `outcome` = `ok` or the
//!   refusal's error code (`ID_IN_USE`, `REPLAYED_REQUEST`, …);
//! - `solme_sync_duration_seconds{channel}`: how long answering took, from the request
//!   read to the answer (checks, database transaction, signed and encrypted file);
//! - `solme_possible_copies`: ids marked a possible copy right now, read from the
//!   database at each scrape (the whole deployment's count: every replica shows the
//!   same number, so take the maximum, not the sum).

use std::future::Future;
use std::time::Instant;

use actix_web::{web, HttpResponse};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use shared_proto::metrics;

use crate::error::ApiError;
use crate::state::AppState;
use shared_proto::admin_api::SyncChannel;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncLabels {
    channel: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: &'static str,
}

/// The registry and the metrics in it; shared by every worker of both listeners.
pub struct Metrics {
    registry: Registry,
    syncs: Family<SyncLabels, Counter>,
    sync_duration: Family<ChannelLabel, Histogram>,
    possible_copies: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = metrics::registry();
        let syncs = Family::<SyncLabels, Counter>::default();
        registry.register(
            "syncs",
            "Syncs answered, by channel and outcome (ok or the error code)",
            syncs.clone(),
        );
        // 0.5 ms to about 4 s: a sync takes a millisecond or two, a busy PostgreSQL more.
        let sync_duration = Family::<ChannelLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        registry.register(
            "sync_duration_seconds",
            "Time to answer a sync, by channel",
            sync_duration.clone(),
        );
        let possible_copies = Gauge::default();
        registry.register(
            "possible_copies",
            "Ids marked a possible copy (two installations with one key pair), all processes",
            possible_copies.clone(),
        );
        Self {
            registry,
            syncs,
            sync_duration,
            possible_copies,
        }
    }
}

impl Metrics {
    /// The metrics, with the clock's offset from the system clock
    /// (`solme_clock_offset_seconds`, `solme_clock_simulated`) read at each scrape.
    pub fn with_clock(clock: &shared_proto::Clock) -> Self {
        let mut metrics = Self::default();
        metrics::register_clock(&mut metrics.registry, clock);
        metrics
    }

    /// Runs one sync, counting its outcome and timing it.
    pub async fn observe_sync<T>(
        &self,
        channel: SyncChannel,
        sync: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let started = Instant::now();
        let result = sync.await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.code().as_str(),
        };
        let channel = channel.as_str();
        self.syncs
            .get_or_create(&SyncLabels { channel, outcome })
            .inc();
        self.sync_duration
            .get_or_create(&ChannelLabel { channel })
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// The metrics in the Prometheus (OpenMetrics) text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        metrics::encode(&self.registry)
    }
}

/// `GET /metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(scrape));
}

async fn scrape(metrics: web::Data<Metrics>, state: web::Data<AppState>) -> HttpResponse {
    let db = state.db.clone();
    let marked = web::block(move || {
        let mut conn = db.read.get()?;
        crate::store::copies::count_marked(&mut conn)
    })
    .await;
    match marked {
        Ok(Ok(n)) => {
            metrics.possible_copies.set(n);
        }
        // The other metrics are still worth serving; the gauge keeps its last value.
        Ok(Err(error)) => log::warn!("counting the possible copies for the metrics: {error}"),
        Err(error) => log::warn!("counting the possible copies for the metrics: {error}"),
    }
    match metrics.encode() {
        Ok(text) => HttpResponse::Ok()
            .content_type(metrics::CONTENT_TYPE)
            .body(text),
        Err(error) => {
            log::error!("encoding the metrics failed: {error}");
            HttpResponse::InternalServerError().finish()
        }
    }
}
