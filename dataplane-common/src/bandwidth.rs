//! Per-pod bandwidth limits, enforced on the pod's host-side veth: one
//! bucket per (veth, direction), filled by the agent, run by the service
//! programs already attached there.
//!
//! The bucket is kept as a single "virtual clock" (the generic cell rate
//! algorithm, an exact equivalent of a token bucket): `backlog_until_ns` is
//! when everything admitted so far would have left at the configured rate.
//! The tokens of the equivalent bucket are
//! `burst - (backlog_until_ns - now) * rate`, so a bucket whose clock is in
//! the past is full, and never holds more than `burst`: a new entry (clock
//! 0) lets exactly one burst through at once, then the rate. One word of
//! state is read and written per packet, so CPUs racing on it can at worst
//! lose one packet's charge, never corrupt the bucket.

/// Maximum number of (veth, direction) limits.
pub const MAX_BANDWIDTH_LIMITS: u32 = 16_384;

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// Limit flag: pace with earliest departure time (`skb->tstamp`) for a
/// downstream fq qdisc instead of marking and dropping. Set by the agent
/// only where fq is on the path.
pub const BANDWIDTH_EDT: u32 = 1 << 0;

/// Which way traffic crosses the pod's host-side veth.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BandwidthDirection {
    /// Out of the pod (tc ingress of the host veth): the egress limit.
    FromPod = 0,
    /// Into the pod (tc egress of the host veth): the ingress limit.
    ToPod = 1,
}

impl BandwidthDirection {
    /// Both directions, in key order.
    pub const ALL: [Self; 2] = [Self::FromPod, Self::ToPod];

    /// Decodes the `direction` field of a [`BandwidthKey`].
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::FromPod),
            1 => Some(Self::ToPod),
            _ => None,
        }
    }

    /// The pod's point of view, as the annotations name it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FromPod => "egress",
            Self::ToPod => "ingress",
        }
    }
}

/// Key of the bandwidth maps.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BandwidthKey {
    /// Index of the pod's host-side veth in the node's namespace.
    pub ifindex: u32,
    /// A [`BandwidthDirection`] as `u32`.
    pub direction: u32,
}

/// A limit (written by the agent) and its bucket (written by the kernel).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BandwidthLimit {
    /// Rate, bytes per second (never 0: the agent refuses it).
    pub rate_bytes_per_sec: u64,
    /// Burst, bytes: how far ahead of the rate the bucket may run.
    pub burst_bytes: u64,
    /// The bucket's virtual clock (see the module documentation); 0 for a
    /// full bucket. Kernel state: the agent keeps it across updates.
    pub backlog_until_ns: u64,
    /// `BANDWIDTH_*` flags.
    pub flags: u32,
    /// Explicit padding.
    pub pad: u32,
}

impl BandwidthLimit {
    /// How long `bytes` take at this limit's rate, nanoseconds.
    pub const fn transmit_ns(&self, bytes: u64) -> u64 {
        if self.rate_bytes_per_sec == 0 {
            return 0;
        }
        // Checked by hand: the kernel side has no 128-bit multiply, which
        // `saturating_mul` would need.
        if bytes > u64::MAX / NS_PER_SEC {
            return u64::MAX;
        }
        bytes * NS_PER_SEC / self.rate_bytes_per_sec
    }

    /// The burst as time at this rate, nanoseconds.
    pub const fn burst_ns(&self) -> u64 {
        self.transmit_ns(self.burst_bytes)
    }

    /// Tokens (bytes) in the equivalent token bucket at `now_ns`.
    pub const fn tokens(&self, now_ns: u64) -> u64 {
        let backlog_ns = self.backlog_until_ns.saturating_sub(now_ns);
        let burst_ns = self.burst_ns();
        if backlog_ns >= burst_ns {
            return 0;
        }
        // Bytes = ns * rate / 1e9, within u64 for any accepted rate and burst.
        ((burst_ns - backlog_ns) as u128 * self.rate_bytes_per_sec as u128 / NS_PER_SEC as u128)
            as u64
    }
}

/// What the bucket did, per (veth, direction), one value per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BandwidthCounters {
    /// Packets let through (including marked and delayed ones).
    pub passed_packets: u64,
    /// Bytes let through.
    pub passed_bytes: u64,
    /// Packets let through with ECN CE set.
    pub marked_packets: u64,
    /// Bytes of marked packets.
    pub marked_bytes: u64,
    /// Packets dropped (out of tokens, or early for traffic without ECN).
    pub dropped_packets: u64,
    /// Bytes of dropped packets.
    pub dropped_bytes: u64,
    /// Packets given a later departure time (EDT path).
    pub delayed_packets: u64,
    /// Bytes of delayed packets.
    pub delayed_bytes: u64,
}

impl BandwidthCounters {
    /// Adds another CPU's share to this one.
    pub const fn add(self, other: Self) -> Self {
        Self {
            passed_packets: self.passed_packets.wrapping_add(other.passed_packets),
            passed_bytes: self.passed_bytes.wrapping_add(other.passed_bytes),
            marked_packets: self.marked_packets.wrapping_add(other.marked_packets),
            marked_bytes: self.marked_bytes.wrapping_add(other.marked_bytes),
            dropped_packets: self.dropped_packets.wrapping_add(other.dropped_packets),
            dropped_bytes: self.dropped_bytes.wrapping_add(other.dropped_bytes),
            delayed_packets: self.delayed_packets.wrapping_add(other.delayed_packets),
            delayed_bytes: self.delayed_bytes.wrapping_add(other.delayed_bytes),
        }
    }
}

const _: () = assert!(core::mem::size_of::<BandwidthKey>() == 8);
const _: () = assert!(core::mem::size_of::<BandwidthLimit>() == 32);
const _: () = assert!(core::mem::size_of::<BandwidthCounters>() == 64);

#[cfg(feature = "user")]
mod pod {
    //! repr(C), integer fields only, explicit padding: no padding bytes and
    //! every bit pattern is a valid value, as aya::Pod requires.
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for super::BandwidthKey {}
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for super::BandwidthLimit {}
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for super::BandwidthCounters {}
}
