//! Per-interface packet and byte counters.

/// Maximum number of (interface, hook) pairs the counter map holds.
pub const INTERFACE_COUNTERS_MAX_ENTRIES: u32 = 4096;

/// Where in the packet path a counter was incremented.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CounterHook {
    /// tc ingress: packets received by the interface.
    TcIngress = 0,
    /// tc egress: packets transmitted by the interface.
    TcEgress = 1,
    /// XDP: packets received, seen before the kernel allocates an skb.
    Xdp = 2,
}

impl CounterHook {
    /// Every hook, in key order.
    pub const ALL: [CounterHook; 3] = [Self::TcIngress, Self::TcEgress, Self::Xdp];

    /// Decodes the `hook` field of an [`InterfaceCounterKey`].
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::TcIngress),
            1 => Some(Self::TcEgress),
            2 => Some(Self::Xdp),
            _ => None,
        }
    }

    /// Short human name, as `rudderctl` prints it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TcIngress => "tc-ingress",
            Self::TcEgress => "tc-egress",
            Self::Xdp => "xdp",
        }
    }
}

/// Key of the interface counter map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InterfaceCounterKey {
    /// Interface index in the interface's network namespace.
    pub ifindex: u32,
    /// A [`CounterHook`] as `u32`.
    pub hook: u32,
}

/// Value of the interface counter map (one per CPU; user space sums them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketCounters {
    /// Packets seen.
    pub packets: u64,
    /// Bytes seen, counting from the Ethernet header.
    pub bytes: u64,
}

impl PacketCounters {
    /// Adds another CPU's share to this one.
    pub const fn add(self, other: Self) -> Self {
        Self {
            packets: self.packets.wrapping_add(other.packets),
            bytes: self.bytes.wrapping_add(other.bytes),
        }
    }
}

const _: () = assert!(core::mem::size_of::<InterfaceCounterKey>() == 8);
const _: () = assert!(core::mem::size_of::<PacketCounters>() == 16);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), only u32 fields, no padding; every bit pattern is valid.
    unsafe impl aya::Pod for super::InterfaceCounterKey {}
    // SAFETY: repr(C), only u64 fields, no padding; every bit pattern is valid.
    unsafe impl aya::Pod for super::PacketCounters {}
}
