//! What the three servers' `GET /metrics` have in common: the `solme_` prefix of every
//! metric name and the OpenMetrics text they answer with. Each server registers its own
//! metrics in a [`registry`] and answers a scrape with [`encode`]'s text as
//! [`CONTENT_TYPE`].

use prometheus_client::registry::Registry;

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
}
