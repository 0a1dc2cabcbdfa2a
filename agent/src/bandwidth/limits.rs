//! What each pod veth should be limited to: from the agent's pods'
//! annotations (live: an edited annotation changes the limit, a removed one
//! lifts it) and, for veths no pod of this agent owns, from the records
//! rudder-cni writes for the `bandwidth` capability (pods another runtime
//! made with `runtimeConfig.bandwidth`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use rudder_api::bandwidth::BandwidthLimits;
use rudder_dataplane_maps::BandwidthShape;
use serde::Deserialize;

/// Bursts are at least this many bytes: pods send GSO packets of up to
/// 64 KiB through their veth, and a bucket that cannot hold a few of them
/// turns every one into a 45-segment loss.
pub const MIN_BURST_BYTES: u64 = 256 * 1024;
/// The burst when only a rate is given, as time at the rate. The bucket is
/// a policer with no queue, so the burst is what absorbs TCP's bursts:
/// with 10 ms, a 60 Mbit/s limit held a flow to a fifth of it in test
/// hosts; 100 ms keeps it near the limit. Still bounded from the first
/// packet (the reference plugin's default is about 200x the rate).
pub const DEFAULT_BURST_MS: u64 = 100;

/// A pod's limits per direction, in the dataplane's units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VethLimits {
    /// Into the pod (the host veth's egress).
    pub to_pod: Option<BandwidthShape>,
    /// Out of the pod (the host veth's ingress).
    pub from_pod: Option<BandwidthShape>,
}

/// A rate in bits/s and an optional burst in bits, as the dataplane takes them.
#[must_use]
pub fn shape(rate_bps: u64, burst_bits: Option<u64>) -> BandwidthShape {
    let rate_bytes_per_sec = (rate_bps / 8).max(1);
    let burst_bytes = burst_bits
        .map(|bits| bits / 8)
        .unwrap_or(rate_bytes_per_sec * DEFAULT_BURST_MS / 1000)
        .max(MIN_BURST_BYTES);
    BandwidthShape {
        rate_bytes_per_sec,
        burst_bytes,
        flags: 0,
    }
}

impl VethLimits {
    /// From the limits of a pod's annotations.
    #[must_use]
    pub fn from_annotations(limits: &BandwidthLimits) -> Self {
        Self {
            to_pod: limits.ingress_bps.map(|bps| shape(bps, None)),
            from_pod: limits.egress_bps.map(|bps| shape(bps, None)),
        }
    }
}

/// One record of rudder-cni's bandwidth directory (`bandwidthDir`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CniRecord {
    host_veth: String,
    #[serde(default)]
    ingress_rate: u64,
    #[serde(default)]
    ingress_burst: u64,
    #[serde(default)]
    egress_rate: u64,
    #[serde(default)]
    egress_burst: u64,
}

impl CniRecord {
    fn limits(&self) -> VethLimits {
        let direction = |rate: u64, burst: u64| {
            rudder_api::bandwidth::rate_in_range(rate).then(|| shape(rate, Some(burst)))
        };
        VethLimits {
            to_pod: direction(self.ingress_rate, self.ingress_burst),
            from_pod: direction(self.egress_rate, self.egress_burst),
        }
    }
}

/// Where rudder-cni records the `bandwidth` capability: the `bandwidthDir`
/// of a plugin in the network config, else rudder-cni's default.
#[must_use]
pub fn cni_record_dir(plugins: &[serde_json::Value]) -> PathBuf {
    plugins
        .iter()
        .find_map(|plugin| plugin.get("bandwidthDir")?.as_str().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/lib/rudder/bandwidth"))
}

/// The limits recorded by rudder-cni in `dir`, by host veth. Unreadable or
/// malformed records are skipped with a warning (they are rudder-cni's, and
/// a half-written one is never visible: it renames into place).
#[must_use]
pub fn read_cni_records(dir: &Path) -> BTreeMap<String, VethLimits> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let record = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|body| serde_json::from_slice::<CniRecord>(&body).map_err(|e| e.to_string()));
        match record {
            Ok(record) => {
                out.insert(record.host_veth.clone(), record.limits());
            }
            Err(err) => tracing::warn!(path = %path.display(), %err, "skipping a bandwidth record"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_alone_gets_a_short_burst() {
        // 1 Gbit/s: 125 MB/s, 100 ms of it.
        let s = shape(1_000_000_000, None);
        assert_eq!(s.rate_bytes_per_sec, 125_000_000);
        assert_eq!(s.burst_bytes, 12_500_000);
        // 10 Mbit/s: 100 ms would be 125 kB, below the floor.
        assert_eq!(shape(10_000_000, None).burst_bytes, MIN_BURST_BYTES);
    }

    #[test]
    fn cni_bursts_are_bits() {
        let s = shape(80_000_000, Some(8_000_000));
        assert_eq!(s.rate_bytes_per_sec, 10_000_000);
        assert_eq!(s.burst_bytes, 1_000_000);
    }

    #[test]
    fn cni_records_are_read_by_host_veth_and_bad_ones_skipped() {
        let dir = std::env::temp_dir().join(format!("rudder-bw-records-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        std::fs::write(
            dir.join("abc-eth0.json"),
            r#"{"network":"rudder","containerID":"abc","ifname":"eth0","hostVeth":"vethabc",
                "ingressRate":10000000,"ingressBurst":800000,"egressRate":0,"egressBurst":0}"#,
        )
        .expect("scratch directory");
        std::fs::write(dir.join("bad-eth0.json"), "{").expect("scratch directory");
        let records = read_cni_records(&dir);
        std::fs::remove_dir_all(&dir).expect("scratch directory");
        assert_eq!(records.len(), 1);
        let limits = records["vethabc"];
        assert_eq!(limits.to_pod.map(|s| s.rate_bytes_per_sec), Some(1_250_000));
        assert_eq!(limits.from_pod, None);
    }

    #[test]
    fn the_record_dir_comes_from_the_network_config() {
        let plugins = [serde_json::json!({"type": "rudder-cni", "bandwidthDir": "/tmp/bw"})];
        assert_eq!(cni_record_dir(&plugins), PathBuf::from("/tmp/bw"));
        assert_eq!(
            cni_record_dir(&[]),
            PathBuf::from("/var/lib/rudder/bandwidth")
        );
    }
}
