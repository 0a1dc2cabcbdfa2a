//! Prometheus metrics of the service dataplane: map occupancy, sync latency
//! (change received -> last map write done) and per-service counters,
//! encoded by `prometheus-client` in the Prometheus text format.
//!
//! Occupancy and the per-service counters live in the maps, so they are
//! read at each scrape ([`ServiceSnapshot`]); only the latency histogram
//! and the write count are kept in memory.

use std::time::Duration;

use dataplane_common::service::ServiceCounters;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _, prometheus_text},
    metrics::{counter::ConstCounter, gauge::ConstGauge, histogram::Histogram},
    registry::Registry,
};

/// Upper bounds (seconds) of the sync-latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0,
];

/// A cumulative latency histogram.
#[derive(Clone, Debug)]
pub struct LatencyHistogram(Histogram);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self(Histogram::new(LATENCY_BUCKETS))
    }
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&mut self, latency: Duration) {
        self.0.observe(latency.as_secs_f64());
    }

    /// Appends the histogram alone in Prometheus text format (a scrape
    /// renders it within a [`ServiceSnapshot`]).
    #[cfg(test)]
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let mut registry = Registry::default();
        registry.register(name, help_text(help), self.0.clone());
        encode(&registry, out);
    }
}

/// `prometheus-client` ends the help text of a registered metric with a
/// full stop of its own.
#[cfg(test)]
fn help_text(help: &str) -> &str {
    help.strip_suffix('.').unwrap_or(help)
}

/// Appends `registry` to `out`. Writing to a String cannot fail.
fn encode(registry: &Registry, out: &mut String) {
    let _ = prometheus_text::encode(out, registry);
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MapLabels {
    map: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FrontendLabels {
    service: String,
    frontend: String,
}

/// Which field of [`ServiceCounters`] a per-service counter reports.
type CounterField = fn(&ServiceCounters) -> u64;

/// The per-service counters: name (without `_total`), help, field.
const SERVICE_COUNTERS: [(&str, &str, CounterField); 4] = [
    ("rudder_service_packets", "Packets translated.", |c| {
        c.packets
    }),
    ("rudder_service_bytes", "Bytes translated.", |c| c.bytes),
    ("rudder_service_new_flows", "Flows given a backend.", |c| {
        c.new_flows
    }),
    ("rudder_service_drops", "Packets refused or dropped.", |c| {
        c.drops
    }),
];

/// One scrape of the service dataplane.
#[derive(Debug)]
pub struct ServiceSnapshot {
    /// Entries in each map, by map name.
    pub map_entries: Vec<(&'static str, usize)>,
    /// Map writes done since start.
    pub writes: u64,
    /// Sync latency so far.
    pub sync_latency: LatencyHistogram,
    /// `(service, frontend, counters)` of every frontend, in output order.
    pub frontends: Vec<(String, String, ServiceCounters)>,
}

impl ServiceSnapshot {
    /// The snapshot in Prometheus text format.
    pub fn render(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        encode(&registry, &mut out);
        out
    }
}

impl Collector for ServiceSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Self {
            map_entries,
            writes,
            sync_latency,
            frontends,
        } = self;
        let mut family = encoder.encode_descriptor(
            "rudder_dataplane_map_entries",
            "Entries in each service map.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (map, entries) in map_entries {
            ConstGauge::new(*entries).encode(family.encode_family(&MapLabels { map })?)?;
        }
        let writes = ConstCounter::new(*writes);
        writes.encode(encoder.encode_descriptor(
            "rudder_dataplane_map_writes",
            "Map writes done by service sync.",
            None,
            writes.metric_type(),
        )?)?;
        sync_latency.0.encode(encoder.encode_descriptor(
            "rudder_dataplane_sync_latency_seconds",
            "Time from a service change received to its last map write.",
            None,
            sync_latency.0.metric_type(),
        )?)?;
        for (name, help, pick) in SERVICE_COUNTERS {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (service, frontend, c) in frontends {
                let labels = FrontendLabels {
                    service: service.clone(),
                    frontend: frontend.clone(),
                };
                ConstCounter::new(pick(c)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = LatencyHistogram::default();
        h.observe(Duration::from_micros(80));
        h.observe(Duration::from_millis(3));
        let mut out = String::new();
        h.render("x", "test", &mut out);
        assert!(out.contains("x_bucket{le=\"0.0001\"} 1"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 2"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 2"), "{out}");
        assert!(out.contains("x_count 2"), "{out}");
    }
}
