//! Conntrack garbage collection. The kernel map is an LRU, so it never
//! overflows, but idle, closed and orphaned flows should not wait for
//! eviction: a closed flow's reply entry could otherwise restore a stale
//! frontend address, and flows to a deleted backend can never recover.

use std::time::Duration;

use dataplane_common::service::{CT_CLOSING, ConntrackEntry, ConntrackKey, proto};

pub use rudder_dataplane_maps::monotonic_now_ns;
use rudder_dataplane_maps::{MapsError, ServiceMaps};

use crate::dataplane::DataplaneError;

/// How long a flow may stay idle before its entries are removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConntrackTimeouts {
    /// Established TCP flows.
    pub tcp: Duration,
    /// TCP flows that have seen a FIN or RST.
    pub tcp_closing: Duration,
    /// UDP flows.
    pub udp: Duration,
}

impl Default for ConntrackTimeouts {
    /// Cilium's defaults: 6 h for TCP, 10 s once closing, 60 s for UDP.
    fn default() -> Self {
        Self {
            tcp: Duration::from_secs(6 * 3600),
            tcp_closing: Duration::from_secs(10),
            udp: Duration::from_secs(60),
        }
    }
}

/// What one collection did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConntrackGcStats {
    /// Entries looked at.
    pub scanned: usize,
    /// Removed for being idle past their timeout.
    pub expired: usize,
    /// Removed because their backend or frontend no longer exists.
    pub orphaned: usize,
}

/// Why an entry should go, if it should.
fn verdict(
    key: &ConntrackKey,
    entry: &ConntrackEntry,
    now_ns: u64,
    timeouts: &ConntrackTimeouts,
    backend_exists: &dyn Fn(u32) -> bool,
    frontend_exists: &dyn Fn(u32) -> bool,
) -> Option<bool> {
    if !backend_exists(entry.backend_id) || !frontend_exists(entry.frontend_id) {
        return Some(true);
    }
    let idle = Duration::from_nanos(now_ns.saturating_sub(entry.last_seen_ns));
    let limit = match key.proto {
        proto::TCP if entry.flags & CT_CLOSING != 0 => timeouts.tcp_closing,
        proto::TCP => timeouts.tcp,
        _ => timeouts.udp,
    };
    (idle > limit).then_some(false)
}

/// Removes expired and orphaned entries. `now_ns` is CLOCK_MONOTONIC, the
/// clock `bpf_ktime_get_ns` reads.
///
/// # Errors
/// When the map cannot be read or an entry not be removed.
pub fn collect(
    maps: &mut ServiceMaps,
    now_ns: u64,
    timeouts: &ConntrackTimeouts,
    backend_exists: &dyn Fn(u32) -> bool,
    frontend_exists: &dyn Fn(u32) -> bool,
) -> Result<ConntrackGcStats, DataplaneError> {
    let fail = |source| {
        DataplaneError::from(MapsError::Map {
            name: dataplane_common::map_names::CONNTRACK,
            source,
        })
    };
    let mut stats = ConntrackGcStats::default();
    // Collect first: deleting while iterating a hash map can skip entries.
    let mut doomed = Vec::new();
    for item in maps.conntrack.iter() {
        let (key, entry) = item.map_err(fail)?;
        stats.scanned += 1;
        if let Some(orphan) = verdict(
            &key,
            &entry,
            now_ns,
            timeouts,
            backend_exists,
            frontend_exists,
        ) {
            doomed.push((key, orphan));
        }
    }
    for (key, orphan) in doomed {
        match maps.conntrack.remove(&key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(fail(e)),
        }
        if orphan {
            stats.orphaned += 1;
        } else {
            stats.expired += 1;
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(last_seen_ns: u64, flags: u32) -> ConntrackEntry {
        ConntrackEntry {
            last_seen_ns,
            backend_id: 1,
            frontend_id: 1,
            flags,
            ..Default::default()
        }
    }

    fn key(p: u8) -> ConntrackKey {
        ConntrackKey {
            proto: p,
            ..Default::default()
        }
    }

    #[test]
    fn idle_closing_and_orphaned_flows_go_fresh_ones_stay() {
        let t = ConntrackTimeouts::default();
        let now = 100 * 3600 * 1_000_000_000;
        let yes = |_: u32| true;
        let no = |_: u32| false;
        let fresh = entry(now - 1_000_000_000, 0);
        assert_eq!(verdict(&key(proto::TCP), &fresh, now, &t, &yes, &yes), None);
        let closing = entry(now - 11 * 1_000_000_000, CT_CLOSING);
        assert_eq!(
            verdict(&key(proto::TCP), &closing, now, &t, &yes, &yes),
            Some(false)
        );
        let udp = entry(now - 61 * 1_000_000_000, 0);
        assert_eq!(
            verdict(&key(proto::UDP), &udp, now, &t, &yes, &yes),
            Some(false)
        );
        assert_eq!(
            verdict(&key(proto::TCP), &fresh, now, &t, &no, &yes),
            Some(true)
        );
        assert_eq!(
            verdict(&key(proto::TCP), &fresh, now, &t, &yes, &no),
            Some(true)
        );
    }
}
