//! The service maps, all pinned by name under the node's bpffs directory
//! so an agent restart keeps the tables and every established flow.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use dataplane_common::service::{
    AffinityEntry, AffinityKey, Backend, BackendSlotKey, ConntrackEntry, ConntrackKey, Frontend,
    FrontendKey, MAX_AFFINITY, MAX_BACKEND_SLOTS, MAX_BACKENDS, MAX_CONNTRACK, MAX_FRONTENDS,
    MAX_MAGLEV_FRONTENDS, MaglevTable, NodeConfig, ReverseNat, ServiceCounters,
};

#[map(name = "FRONTENDS")]
pub static FRONTENDS: HashMap<FrontendKey, Frontend> = HashMap::pinned(MAX_FRONTENDS, 0);

#[map(name = "BACKEND_SLOTS")]
pub static BACKEND_SLOTS: HashMap<BackendSlotKey, u32> = HashMap::pinned(MAX_BACKEND_SLOTS, 0);

#[map(name = "BACKENDS")]
pub static BACKENDS: HashMap<u32, Backend> = HashMap::pinned(MAX_BACKENDS, 0);

#[map(name = "REVERSE_NAT")]
pub static REVERSE_NAT: HashMap<u32, ReverseNat> = HashMap::pinned(MAX_FRONTENDS, 0);

#[map(name = "CONNTRACK")]
pub static CONNTRACK: LruHashMap<ConntrackKey, ConntrackEntry> =
    LruHashMap::pinned(MAX_CONNTRACK, 0);

#[map(name = "AFFINITY")]
pub static AFFINITY: LruHashMap<AffinityKey, AffinityEntry> = LruHashMap::pinned(MAX_AFFINITY, 0);

/// Not preallocated: 4 KiB per entry, and few services use Maglev.
#[map(name = "MAGLEV")]
pub static MAGLEV: HashMap<u32, MaglevTable> =
    HashMap::pinned(MAX_MAGLEV_FRONTENDS, BPF_F_NO_PREALLOC);

#[map(name = "SVC_COUNTERS")]
pub static SERVICE_COUNTERS: PerCpuArray<ServiceCounters> = PerCpuArray::pinned(MAX_FRONTENDS, 0);

#[map(name = "NODE_CONFIG")]
pub static NODE_CONFIG: Array<NodeConfig> = Array::pinned(1, 0);

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
