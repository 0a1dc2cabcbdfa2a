//! Per-interface packet counters: attaching the counting programs and
//! reading the per-CPU counter map back.

use std::path::Path;

use aya::{
    maps::{Map, MapData, PerCpuHashMap},
    programs::TcAttachType,
};
use dataplane_common::{
    CounterHook, InterfaceCounterKey, PacketCounters, map_names, program_names,
};

use super::{Dataplane, DataplaneError, attach, maps_dir};

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

/// The counting programs and where each attaches.
const COUNTING_PROGRAMS: [&str; 3] = [
    program_names::COUNT_TC_INGRESS,
    program_names::COUNT_TC_EGRESS,
    program_names::COUNT_XDP,
];

impl Dataplane {
    /// Attaches the counting programs to `iface` at tc ingress, tc egress
    /// (both TCX links) and XDP, and pins the links under the node's
    /// directory. If links are already pinned for this interface (an earlier
    /// agent), they are atomically switched to the programs loaded now, so
    /// counting never stops.
    ///
    /// # Errors
    /// When the interface does not exist or the kernel refuses an attach.
    pub fn attach_counters(&mut self, iface: &str) -> Result<(), DataplaneError> {
        self.attach_tc(
            program_names::COUNT_TC_INGRESS,
            iface,
            TcAttachType::Ingress,
        )?;
        self.attach_tc(program_names::COUNT_TC_EGRESS, iface, TcAttachType::Egress)?;
        self.attach_xdp(program_names::COUNT_XDP, iface)
    }
}

/// Detaches every counting program from `iface` (see [`attach::detach`]).
///
/// # Errors
/// When a pinned link cannot be opened, detached or unpinned.
pub fn detach_counters(dir: &Path, iface: &str) -> Result<(), DataplaneError> {
    COUNTING_PROGRAMS
        .iter()
        .try_for_each(|program| attach::detach(dir, program, iface))
}

/// Reads the pinned counter map of the node whose bpffs directory is `dir`,
/// summing each entry over CPUs, sorted by interface and hook.
///
/// # Errors
/// When the map is not pinned there (no agent ever loaded the dataplane).
pub fn read_interface_counters(dir: &Path) -> Result<Vec<InterfaceCounters>, DataplaneError> {
    let name = map_names::INTERFACE_COUNTERS;
    let map_error = |source| DataplaneError::Map { name, source };
    let path = maps_dir(dir).join(name);
    let data = MapData::from_pin(&path).map_err(|source| DataplaneError::MapPin {
        name,
        path: path.clone(),
        source,
    })?;
    let map: PerCpuHashMap<MapData, InterfaceCounterKey, PacketCounters> =
        PerCpuHashMap::try_from(Map::PerCpuHashMap(data)).map_err(map_error)?;
    let mut out = Vec::new();
    for entry in map.iter() {
        let (key, per_cpu) = entry.map_err(map_error)?;
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
