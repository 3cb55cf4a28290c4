//! What the three servers' `GET /metrics` have in common: the `solme_` prefix of every
//! metric name and the OpenMetrics text they answer with. Each server registers its own
//! metrics in a [`registry`] and answers a scrape with [`encode`]'s text as
//! [`CONTENT_TYPE`].

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::clock::Clock;

/// The media type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An empty registry whose metrics are all named `solme_…`.
pub fn registry() -> Registry {
    Registry::with_prefix("solme")
}

/// The metrics in `registry` in the OpenMetrics text format.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

/// Adds `solme_clock_offset_seconds` (how far the program's clock is from the system
/// clock, read at each scrape: 0 on the real clock) and `solme_clock_simulated` (1 when
/// the program follows a clock file or a moved clock) to `registry`.
pub fn register_clock(registry: &mut Registry, clock: &Clock) {
    registry.register_collector(Box::new(ClockCollector(clock.clone())));
}

#[derive(Debug)]
struct ClockCollector(Clock);

impl Collector for ClockCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let offset = self.0.offset().num_milliseconds() as f64 / 1000.0;
        let gauges = [
            (
                "clock_offset_seconds",
                "How far this program's clock is from the system clock (0 unless simulated)",
                offset,
            ),
            (
                "clock_simulated",
                "1 when this program runs on a simulated or moved clock",
                if self.0.is_simulated() { 1.0 } else { 0.0 },
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn metrics_are_prefixed_and_the_text_ends_as_openmetrics_requires() {
        let mut registry = registry();
        let counter = Counter::<u64>::default();
        registry.register("syncs", "Syncs answered", counter.clone());
        counter.inc();
        let text = encode(&registry).unwrap();
        assert!(text.contains("solme_syncs_total 1\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn the_clock_offset_is_read_at_each_scrape() {
        let mut registry = registry();
        let clock = Clock::system();
        register_clock(&mut registry, &clock);
        let text = encode(&registry).unwrap();
        assert!(text.contains("solme_clock_offset_seconds 0.0\n"), "{text}");
        assert!(text.contains("solme_clock_simulated 0.0\n"), "{text}");
        clock.advance(chrono::Duration::days(2));
        let text = encode(&registry).unwrap();
        assert!(
            text.contains("solme_clock_offset_seconds 172800.0\n"),
            "{text}"
        );
        assert!(text.contains("solme_clock_simulated 1.0\n"), "{text}");
    }
}
