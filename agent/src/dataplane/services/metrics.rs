//! Prometheus metrics of the service dataplane: map occupancy, sync latency
//! (change received -> last map write done) and per-service counters.

use std::{fmt::Write as _, time::Duration};

/// Upper bounds (seconds) of the sync-latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0,
];

/// A cumulative latency histogram.
#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    total: u64,
    sum_s: f64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&mut self, latency: Duration) {
        let s = latency.as_secs_f64();
        for (count, bound) in self.counts.iter_mut().zip(LATENCY_BUCKETS) {
            if s <= bound {
                *count += 1;
            }
        }
        self.total += 1;
        self.sum_s += s;
    }

    /// Appends the histogram in Prometheus text format.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (count, bound) in self.counts.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.total);
        let _ = writeln!(out, "{name}_sum {}", self.sum_s);
        let _ = writeln!(out, "{name}_count {}", self.total);
    }
}

/// Appends one gauge or counter family header.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, quote, newline).
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
