//! Prometheus metrics of the bandwidth limits, read from the pinned maps at
//! each scrape: per pod veth and direction (the pod's point of view), the
//! configured rate and what the bucket did, labelled with the path that
//! enforces it.

use std::path::Path;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _, prometheus_text},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};
use rudder_dataplane_maps::{BandwidthEntry, BandwidthMaps};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    /// Index of the pod's host veth.
    ifindex: String,
    /// `ingress` or `egress` of the pod.
    direction: &'static str,
    /// `token-bucket+ecn` or `edt`.
    path: &'static str,
}

type Field = fn(&BandwidthEntry) -> u64;

/// The counters: name (without `_total`), help, field.
const COUNTERS: [(&str, &str, Field); 8] = [
    (
        "rudder_bandwidth_passed_packets",
        "Packets let through by a pod's limit.",
        |e| e.counters.passed_packets,
    ),
    (
        "rudder_bandwidth_passed_bytes",
        "Bytes let through by a pod's limit.",
        |e| e.counters.passed_bytes,
    ),
    (
        "rudder_bandwidth_marked_packets",
        "Packets let through with ECN CE set.",
        |e| e.counters.marked_packets,
    ),
    (
        "rudder_bandwidth_marked_bytes",
        "Bytes of packets let through with ECN CE set.",
        |e| e.counters.marked_bytes,
    ),
    (
        "rudder_bandwidth_dropped_packets",
        "Packets dropped by a pod's limit.",
        |e| e.counters.dropped_packets,
    ),
    (
        "rudder_bandwidth_dropped_bytes",
        "Bytes dropped by a pod's limit.",
        |e| e.counters.dropped_bytes,
    ),
    (
        "rudder_bandwidth_delayed_packets",
        "Packets given a later departure time (EDT).",
        |e| e.counters.delayed_packets,
    ),
    (
        "rudder_bandwidth_delayed_bytes",
        "Bytes given a later departure time (EDT).",
        |e| e.counters.delayed_bytes,
    ),
];

#[derive(Debug)]
struct BandwidthSnapshot(Vec<BandwidthEntry>);

fn labels(entry: &BandwidthEntry) -> LimitLabels {
    LimitLabels {
        ifindex: entry.ifindex.to_string(),
        direction: entry.direction.as_str(),
        path: entry.path(),
    }
}

impl Collector for BandwidthSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "rudder_bandwidth_limit_bits_per_second",
            "A pod's configured limit.",
            None,
            MetricType::Gauge,
        )?;
        for entry in &self.0 {
            let bits = entry.limit.rate_bytes_per_sec.saturating_mul(8);
            ConstGauge::new(i64::try_from(bits).unwrap_or(i64::MAX))
                .encode(family.encode_family(&labels(entry))?)?;
        }
        for (name, help, pick) in COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for entry in &self.0 {
                ConstCounter::new(pick(entry)).encode(family.encode_family(&labels(entry))?)?;
            }
        }
        Ok(())
    }
}

/// The bandwidth metrics of the node whose bpffs directory is `dir`, in
/// Prometheus text format; empty when the maps cannot be read (the
/// service metrics still answer).
#[must_use]
pub fn render(dir: &Path) -> String {
    let entries = match BandwidthMaps::open(dir).and_then(|maps| maps.entries()) {
        Ok(entries) => entries,
        Err(err) => {
            tracing::warn!(%err, "bandwidth metrics");
            return String::new();
        }
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BandwidthSnapshot(entries)));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use dataplane_common::bandwidth::{BandwidthCounters, BandwidthDirection, BandwidthLimit};

    use super::*;

    #[test]
    fn limits_and_counters_are_labelled_by_veth_direction_and_path() {
        let entry = BandwidthEntry {
            ifindex: 7,
            direction: BandwidthDirection::FromPod,
            limit: BandwidthLimit {
                rate_bytes_per_sec: 2_500_000,
                burst_bytes: 262_144,
                ..BandwidthLimit::default()
            },
            counters: BandwidthCounters {
                marked_packets: 3,
                dropped_packets: 2,
                ..BandwidthCounters::default()
            },
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(BandwidthSnapshot(vec![entry])));
        let mut out = String::new();
        prometheus_text::encode(&mut out, &registry).expect("encoding to a String");
        let labels = r#"{ifindex="7",direction="egress",path="token-bucket+ecn"}"#;
        assert!(
            out.contains(&format!(
                "rudder_bandwidth_limit_bits_per_second{labels} 20000000"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!("rudder_bandwidth_marked_packets_total{labels} 3")),
            "{out}"
        );
        assert!(
            out.contains(&format!("rudder_bandwidth_dropped_packets_total{labels} 2")),
            "{out}"
        );
    }
}
