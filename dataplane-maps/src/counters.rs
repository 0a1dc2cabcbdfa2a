//! The per-interface packet counters the counting programs keep, read
//! back from their pinned per-CPU map.

use std::path::Path;

use aya::maps::{MapData, PerCpuHashMap};
use dataplane_common::{CounterHook, InterfaceCounterKey, PacketCounters, map_names};

use crate::{MapsError, open_pinned};

/// Counters of one interface at one hook, summed over CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceCounters {
    /// Interface index (in the node's network namespace).
    pub ifindex: u32,
    /// Where the packets were counted.
    pub hook: CounterHook,
    /// Packets and bytes.
    pub counters: PacketCounters,
}

/// Reads the pinned counter map of the node whose bpffs directory is `dir`,
/// summing each entry over CPUs, sorted by interface and hook.
///
/// # Errors
/// When the map is not pinned there (no agent ever loaded the dataplane).
pub fn read_interface_counters(dir: &Path) -> Result<Vec<InterfaceCounters>, MapsError> {
    let name = map_names::INTERFACE_COUNTERS;
    let map: PerCpuHashMap<MapData, InterfaceCounterKey, PacketCounters> = open_pinned(dir, name)?;
    let mut out = Vec::new();
    for entry in map.iter() {
        let (key, per_cpu) = entry.map_err(|source| MapsError::Map { name, source })?;
        let Some(hook) = CounterHook::from_u32(key.hook) else {
            continue;
        };
        let counters = per_cpu
            .iter()
            .fold(PacketCounters::default(), |sum, cpu| sum.add(*cpu));
        out.push(InterfaceCounters {
            ifindex: key.ifindex,
            hook,
            counters,
        });
    }
    out.sort_by_key(|c| (c.ifindex, c.hook));
    Ok(out)
}
