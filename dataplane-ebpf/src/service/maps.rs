//! The service maps, all pinned by name under the node's bpffs directory
//! so an agent restart keeps the tables and every established flow.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use dataplane_common::{
    map_names,
    service::{
        AffinityEntry, AffinityKey, Backend, BackendSlotKey, ConntrackEntry, ConntrackKey,
        Frontend, FrontendKey, MAX_AFFINITY, MAX_BACKEND_SLOTS, MAX_BACKENDS, MAX_CONNTRACK,
        MAX_FRONTENDS, MAX_MAGLEV_FRONTENDS, MaglevTable, NodeConfig, ReverseNat, ServiceCounters,
    },
};

use crate::pinned::pinned_map;

pinned_map! {
    map_names::FRONTENDS = "FRONTENDS",
    pub static FRONTENDS: HashMap<FrontendKey, Frontend> = HashMap::pinned(MAX_FRONTENDS, 0);
}

pinned_map! {
    map_names::BACKEND_SLOTS = "BACKEND_SLOTS",
    pub static BACKEND_SLOTS: HashMap<BackendSlotKey, u32> = HashMap::pinned(MAX_BACKEND_SLOTS, 0);
}

pinned_map! {
    map_names::BACKENDS = "BACKENDS",
    pub static BACKENDS: HashMap<u32, Backend> = HashMap::pinned(MAX_BACKENDS, 0);
}

pinned_map! {
    map_names::REVERSE_NAT = "REVERSE_NAT",
    pub static REVERSE_NAT: HashMap<u32, ReverseNat> = HashMap::pinned(MAX_FRONTENDS, 0);
}

pinned_map! {
    map_names::CONNTRACK = "CONNTRACK",
    pub static CONNTRACK: LruHashMap<ConntrackKey, ConntrackEntry> =
        LruHashMap::pinned(MAX_CONNTRACK, 0);
}

pinned_map! {
    map_names::AFFINITY = "AFFINITY",
    pub static AFFINITY: LruHashMap<AffinityKey, AffinityEntry> = LruHashMap::pinned(MAX_AFFINITY, 0);
}

pinned_map! {
    map_names::MAGLEV = "MAGLEV",
    /// Not preallocated: 4 KiB per entry, and few services use Maglev.
    pub static MAGLEV: HashMap<u32, MaglevTable> =
        HashMap::pinned(MAX_MAGLEV_FRONTENDS, BPF_F_NO_PREALLOC);
}

pinned_map! {
    map_names::SERVICE_COUNTERS = "SVC_COUNTERS",
    pub static SERVICE_COUNTERS: PerCpuArray<ServiceCounters> = PerCpuArray::pinned(MAX_FRONTENDS, 0);
}

pinned_map! {
    map_names::NODE_CONFIG = "NODE_CONFIG",
    pub static NODE_CONFIG: Array<NodeConfig> = Array::pinned(1, 0);
}

#[inline(always)]
fn with_counters(frontend_id: u32, f: impl FnOnce(&mut ServiceCounters)) {
    if let Some(counters) = SERVICE_COUNTERS.get_ptr_mut(frontend_id) {
        // SAFETY: this CPU's slot from a successful lookup; per-CPU, so no
        // other program run writes it concurrently.
        f(unsafe { &mut *counters });
    }
}

/// Counts a translated packet of `len` bytes.
#[inline(always)]
pub fn count_packet(frontend_id: u32, len: u32) {
    with_counters(frontend_id, |c| {
        c.packets += 1;
        c.bytes += u64::from(len);
    });
}

/// Counts a flow that was given a backend.
#[inline(always)]
pub fn count_new_flow(frontend_id: u32) {
    with_counters(frontend_id, |c| c.new_flows += 1);
}

/// Counts a refused or dropped packet.
#[inline(always)]
pub fn count_drop(frontend_id: u32) {
    with_counters(frontend_id, |c| c.drops += 1);
}
