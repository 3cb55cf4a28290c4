//! Prometheus metrics of `serve`, as text at `GET /metrics` on the client API's
//! listener (a customer's monitoring scrapes it like a client reads `/api/v1/features`:
//! seat counts only, no user or host names).
//!
//! - `solme_leases_in_use{feature}`: leases live now, read from the lease engine at each
//!   scrape (so expiries and other processes' imports show without bookkeeping);
//! - `solme_lease_refusals_total{request, code}`: check-outs and heartbeats refused,
//!   by error code (`NOT_SYNCHRONIZED`, `NO_SEATS`, …).

use actix_web::{web, HttpResponse};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::error::Error;
use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeatureLabel {
    feature: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    request: &'static str,
    code: &'static str,
}

shared_proto::text_enum! {
    /// The client-API requests whose refusals are counted (the `request` label).
    pub enum LeaseRequest {
        CheckOut => "check_out",
        Heartbeat => "heartbeat",
    }
}

/// The registry and the metrics in it; shared by every worker.
pub struct Metrics {
    registry: Registry,
    in_use: Family<FeatureLabel, Gauge>,
    refusals: Family<RefusalLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = shared_proto::metrics::registry();
        let in_use = Family::<FeatureLabel, Gauge>::default();
        registry.register(
            "leases_in_use",
            "Leases live now, by feature",
            in_use.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "lease_refusals",
            "Check-outs and heartbeats refused, by error code",
            refusals.clone(),
        );
        Self {
            registry,
            in_use,
            refusals,
        }
    }
}

impl Metrics {
    /// The metrics, with the clock's offset from the system clock
    /// (`solme_clock_offset_seconds`, `solme_clock_simulated`) read at each scrape.
    pub fn with_clock(clock: &shared_proto::Clock) -> Self {
        let mut metrics = Self::default();
        shared_proto::metrics::register_clock(&mut metrics.registry, clock);
        metrics
    }

    /// Passes a check-out's or heartbeat's result through, counting a refusal.
    pub fn count_refusal<T>(
        &self,
        request: LeaseRequest,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        if let Err(error) = &result {
            if let Some(code) = error.code() {
                self.refusals
                    .get_or_create(&RefusalLabels {
                        request: request.as_str(),
                        code: code.as_str(),
                    })
                    .inc();
            }
        }
        result
    }
}

/// `GET /metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(scrape));
}

async fn scrape(
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, Error> {
    let engine = state.engine.clone();
    let features = web::block(move || engine.features()).await??;
    metrics.in_use.clear();
    for feature in features {
        metrics
            .in_use
            .get_or_create(&FeatureLabel {
                feature: feature.feature,
            })
            .set(i64::from(feature.in_use));
    }
    let text = shared_proto::metrics::encode(&metrics.registry)
        .map_err(|e| Error::Internal(anyhow::anyhow!("encoding the metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type(shared_proto::metrics::CONTENT_TYPE)
        .body(text))
}
