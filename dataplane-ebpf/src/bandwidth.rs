//! Per-pod bandwidth limits on the pod's host-side veth, run first by the
//! service programs there (one program per hook: no second filter, no
//! second context switch into BPF).
//!
//! Token-bucket path (no fq on the way, and same-node traffic never meets a
//! qdisc): the bucket lets `burst` through at once and then the rate
//! (see `dataplane_common::bandwidth` for the one-word bucket). Before it
//! runs dry it signals TCP: once half of the burst is used up, ECN-capable
//! packets get CE; packets without ECN see random early drops over the
//! last quarter, so a flow loses single packets rather than a train. Only
//! an empty bucket drops ECN-capable packets. A packet is admitted while
//! the bucket holds any tokens, so one packet larger than the burst (a GSO
//! super-packet) still passes, and the debt it leaves is paid by the next.
//!
//! EDT path (`BANDWIDTH_EDT`, set where fq paces the uplink): packets are
//! not dropped but given their departure time in `skb->tstamp`; fq holds
//! them until then. Only a backlog beyond [`EDT_HORIZON_NS`] is dropped.
//!
//! Anything that is not IPv4 passes uncounted and untouched.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns},
    maps::{HashMap, PerCpuHashMap},
    programs::TcContext,
};
use dataplane_common::{
    bandwidth::{
        BANDWIDTH_EDT, BandwidthCounters, BandwidthDirection, BandwidthKey, BandwidthLimit,
        MAX_BANDWIDTH_LIMITS,
    },
    map_names,
};

use crate::pinned::pinned_map;

/// Ethernet header length; IPv4 starts here.
const L3_OFFSET: usize = 14;
/// Offset of the IPv4 header checksum.
const IP_CSUM_OFFSET: usize = L3_OFFSET + 10;
/// The ECN field: the low two bits of the IPv4 TOS byte.
const ECN_MASK: u8 = 0b11;
/// ECN "congestion experienced".
const ECN_CE: u8 = 0b11;
/// EDT path: the longest a packet may be held before it is dropped.
const EDT_HORIZON_NS: u64 = 2_000_000_000;

pinned_map! {
    map_names::BANDWIDTH = "BANDWIDTH",
    /// Filled by the agent; the bucket state in each value is the kernel's.
    static BANDWIDTH: HashMap<BandwidthKey, BandwidthLimit> =
        HashMap::pinned(MAX_BANDWIDTH_LIMITS, 0);
}

pinned_map! {
    map_names::BANDWIDTH_COUNTERS = "BW_COUNTERS",
    static BANDWIDTH_COUNTERS: PerCpuHashMap<BandwidthKey, BandwidthCounters> =
        PerCpuHashMap::pinned(MAX_BANDWIDTH_LIMITS, 0);
}

/// What the bucket decided for a packet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through (it may have been marked or given a departure time).
    Pass,
    /// Drop it.
    Drop,
}

/// What happened to a packet, for the counters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Passed,
    Marked,
    Delayed,
    Dropped,
}

/// Applies the limit of the veth this program runs on, in `direction`.
#[inline(always)]
pub fn limit(ctx: &TcContext, direction: BandwidthDirection) -> Verdict {
    // SAFETY: `skb` is the context pointer the kernel handed to this program.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let key = BandwidthKey {
        ifindex,
        direction: direction as u32,
    };
    let Some(limit) = BANDWIDTH.get_ptr_mut(key) else {
        return Verdict::Pass;
    };
    let Ok(ether_type) = ctx.load::<u16>(12) else {
        return Verdict::Pass;
    };
    if ether_type != 0x0800u16.to_be() {
        return Verdict::Pass;
    }
    // Version/IHL and TOS, as one 16-bit word for the checksum update.
    let Ok(first_word) = ctx.load::<[u8; 2]>(L3_OFFSET) else {
        return Verdict::Pass;
    };
    if first_word[0] >> 4 != 4 {
        return Verdict::Pass;
    }
    let len = u64::from(ctx.len());
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let action = decide(ctx, limit, now, len, first_word[1] & ECN_MASK != 0);
    let action = match action {
        Action::Marked if set_ce(ctx, first_word).is_none() => Action::Passed,
        other => other,
    };
    count(key, action, len);
    if action == Action::Dropped {
        Verdict::Drop
    } else {
        Verdict::Pass
    }
}

/// Runs the bucket for one packet of `len` bytes at `now`.
#[inline(always)]
fn decide(
    ctx: &TcContext,
    limit: *mut BandwidthLimit,
    now: u64,
    len: u64,
    ecn_capable: bool,
) -> Action {
    // SAFETY: `limit` comes from a successful lookup in this program run and
    // stays valid for it. The agent's fields are only read, each whole (the
    // agent replaces the whole value, the kernel never writes them); no
    // reference to the shared value is formed.
    let config = unsafe {
        (
            (&raw const (*limit).rate_bytes_per_sec).read_volatile(),
            (&raw const (*limit).burst_bytes).read_volatile(),
            (&raw const (*limit).flags).read_volatile(),
        )
    };
    let (rate_bytes_per_sec, burst_bytes, flags) = config;
    if rate_bytes_per_sec == 0 {
        return Action::Passed;
    }
    let shape = BandwidthLimit {
        rate_bytes_per_sec,
        burst_bytes,
        ..BandwidthLimit::default()
    };
    let cost = shape.transmit_ns(len);
    let edt = flags & BANDWIDTH_EDT != 0;
    let capacity_ns = if edt {
        EDT_HORIZON_NS
    } else {
        shape.burst_ns()
    };
    // SAFETY: bpf_get_prandom_u32 has no preconditions.
    let random =
        unsafe { (u64::from(bpf_get_prandom_u32()) << 32) | u64::from(bpf_get_prandom_u32()) };
    // BPF has no compare-and-swap in Rust's target (and no atomic RMW at
    // all there), so the clock is read and written with one aligned 8-byte
    // volatile access each, never through a reference.
    let clock = {
        // SAFETY: `limit` is valid for this run (see above) and the field
        // is 8-byte aligned (map values are).
        unsafe { &raw mut (*limit).backlog_until_ns }
    };
    // SAFETY: as above. Packets of the pod on other CPUs read and write
    // the same word at the same time: each access is a single aligned
    // load or store, so a value is seen whole. A race (two CPUs reading the
    // same clock, both writing theirs) loses one packet's charge: the
    // bucket then lets that one packet through free. That is the whole
    // cost of not locking, bounded by one packet per CPU per collision.
    let before = unsafe { clock.read_volatile() };
    let start = if before > now { before } else { now };
    let backlog = start - now;
    if backlog >= capacity_ns {
        return Action::Dropped;
    }
    let action = if edt {
        if backlog > 0 {
            Action::Delayed
        } else {
            Action::Passed
        }
    } else if ecn_capable {
        if backlog >= capacity_ns / 2 {
            Action::Marked
        } else {
            Action::Passed
        }
    } else if early_drop(backlog, capacity_ns, random) {
        // Not charged: the packet never leaves.
        return Action::Dropped;
    } else {
        Action::Passed
    };
    // SAFETY: as for the read above.
    unsafe { clock.write_volatile(start.saturating_add(cost)) };
    if action == Action::Delayed {
        // SAFETY: the context pointer of this run; tc programs may write
        // the departure time.
        unsafe { (*ctx.skb.skb).tstamp = start };
    }
    action
}

/// Random early drop over the last quarter of the bucket: probability
/// rising linearly from 0 to 1 as the backlog nears `capacity_ns`.
#[inline(always)]
fn early_drop(backlog: u64, capacity_ns: u64, random: u64) -> bool {
    let band = capacity_ns / 4;
    let band_start = capacity_ns - band;
    if band == 0 || backlog < band_start {
        return false;
    }
    random % band < backlog - band_start
}

/// Sets ECN CE in the IPv4 header and updates its checksum incrementally.
#[inline(always)]
fn set_ce(ctx: &TcContext, first_word: [u8; 2]) -> Option<()> {
    if first_word[1] & ECN_MASK == ECN_CE {
        return Some(());
    }
    let marked = [first_word[0], first_word[1] | ECN_CE];
    ctx.store(L3_OFFSET, &marked, 0).ok()?;
    ctx.l3_csum_replace(
        IP_CSUM_OFFSET,
        u64::from(u16::from_ne_bytes(first_word)),
        u64::from(u16::from_ne_bytes(marked)),
        2,
    )
    .ok()
}

#[inline(always)]
fn count(key: BandwidthKey, action: Action, bytes: u64) {
    let add = |counters: &mut BandwidthCounters| match action {
        Action::Dropped => {
            counters.dropped_packets += 1;
            counters.dropped_bytes += bytes;
        }
        passed => {
            counters.passed_packets += 1;
            counters.passed_bytes += bytes;
            if passed == Action::Marked {
                counters.marked_packets += 1;
                counters.marked_bytes += bytes;
            }
            if passed == Action::Delayed {
                counters.delayed_packets += 1;
                counters.delayed_bytes += bytes;
            }
        }
    };
    // Two attempts: the first packet on two CPUs at once may lose the
    // insert race; then the entry exists for the second lookup.
    for _ in 0..2 {
        if let Some(counters) = BANDWIDTH_COUNTERS.get_ptr_mut(key) {
            // SAFETY: this CPU's slot from a successful lookup, valid for
            // this run; per CPU, so no other run writes it concurrently.
            add(unsafe { &mut *counters });
            return;
        }
        let mut first = BandwidthCounters::default();
        add(&mut first);
        if BANDWIDTH_COUNTERS
            .insert(key, first, u64::from(BPF_NOEXIST))
            .is_ok()
        {
            return;
        }
    }
}
