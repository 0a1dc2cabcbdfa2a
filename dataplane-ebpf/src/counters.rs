//! Per-interface packet and byte counters at tc ingress, tc egress and XDP.
//!
//! The programs only count: they return "continue" so they compose with
//! whatever else is attached (TCX_NEXT / XDP_PASS).

use aya_ebpf::{
    bindings::{BPF_NOEXIST, xdp_action},
    macros::{classifier, xdp},
    maps::PerCpuHashMap,
    programs::{TcContext, XdpContext},
};
use dataplane_common::{
    CounterHook, InterfaceCounterKey, PacketCounters, counters::INTERFACE_COUNTERS_MAX_ENTRIES,
    map_names,
};

use crate::pinned::pinned_map;

/// `TC_ACT_UNSPEC`, which TCX reads as `TCX_NEXT`: run the next program, then
/// let the stack decide. Returning "OK" instead would skip later programs.
const TC_ACT_UNSPEC: i32 = -1;

pinned_map! {
    map_names::INTERFACE_COUNTERS = "INTERFACE_COUNTERS",
    /// Pinned by name so an agent restart keeps the counts.
    static INTERFACE_COUNTERS: PerCpuHashMap<InterfaceCounterKey, PacketCounters> =
        PerCpuHashMap::pinned(INTERFACE_COUNTERS_MAX_ENTRIES, 0);
}

#[inline(always)]
fn count(ifindex: u32, hook: CounterHook, bytes: u64) {
    let key = InterfaceCounterKey {
        ifindex,
        hook: hook as u32,
    };
    // Two attempts: a first packet on two CPUs at once may lose the insert
    // race, and then the entry exists for the second lookup. Values are per
    // CPU, so plain adds cannot race.
    for _ in 0..2 {
        if let Some(counters) = INTERFACE_COUNTERS.get_ptr_mut(key) {
            // SAFETY: the pointer comes from a successful lookup of this
            // CPU's slot and stays valid for the rest of the program run.
            unsafe {
                (*counters).packets += 1;
                (*counters).bytes += bytes;
            }
            return;
        }
        let first = PacketCounters { packets: 1, bytes };
        if INTERFACE_COUNTERS
            .insert(key, first, u64::from(BPF_NOEXIST))
            .is_ok()
        {
            return;
        }
    }
}

/// Counts packets received by the interface it is attached to.
#[classifier]
pub fn count_tc_ingress(ctx: TcContext) -> i32 {
    count_tc(&ctx, CounterHook::TcIngress)
}

/// Counts packets transmitted by the interface it is attached to.
#[classifier]
pub fn count_tc_egress(ctx: TcContext) -> i32 {
    count_tc(&ctx, CounterHook::TcEgress)
}

#[inline(always)]
fn count_tc(ctx: &TcContext, hook: CounterHook) -> i32 {
    // SAFETY: `skb` is the context pointer the kernel handed to this program.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    count(ifindex, hook, u64::from(ctx.len()));
    TC_ACT_UNSPEC
}

/// Counts packets at the XDP hook of the interface it is attached to.
#[xdp]
pub fn count_xdp(ctx: XdpContext) -> u32 {
    let bytes = ctx.data_end().saturating_sub(ctx.data());
    // ingress_ifindex is a u32 in xdp_md; the accessor widens it.
    count(ctx.ingress_ifindex() as u32, CounterHook::Xdp, bytes as u64);
    xdp_action::XDP_PASS
}
