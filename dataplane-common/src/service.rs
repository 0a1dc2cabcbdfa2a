//! Service load-balancing tables: frontends (ClusterIP:port, NodeIP:NodePort),
//! their backend slots, backends, reverse NAT, conntrack, SNAT, session
//! affinity, Maglev tables and per-service counters.
//!
//! Addresses and ports are stored in network byte order, exactly as they
//! appear in packets, so the kernel side compares and copies without
//! swapping. User space converts with [`ipv4_to_net`] / [`port_to_net`].

/// IP protocol numbers the dataplane translates.
#[expect(missing_docs, reason = "the IANA protocol numbers")]
pub mod proto {
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

/// Maximum number of frontends (a Service has one per port and per
/// NodePort); also the size of the per-service counter array.
pub const MAX_FRONTENDS: u32 = 65_536;
/// Maximum number of backend slots across all frontends.
pub const MAX_BACKEND_SLOTS: u32 = 262_144;
/// Maximum number of distinct backends (address, port, protocol).
pub const MAX_BACKENDS: u32 = 131_072;
/// Conntrack entries (LRU: the oldest flows are evicted first when full).
pub const MAX_CONNTRACK: u32 = 262_144;
/// Session-affinity entries (LRU).
pub const MAX_AFFINITY: u32 = 65_536;
/// Frontends that may use Maglev at once (each table is 4 KiB).
pub const MAX_MAGLEV_FRONTENDS: u32 = 4_096;
/// Size of a Maglev lookup table: a prime, larger than 100x the backends a
/// Maglev service may have for good balance.
pub const MAGLEV_TABLE_SIZE: usize = 1_021;

/// Frontend flag: this is a NodePort frontend (addr is a node address).
pub const FRONTEND_NODE_PORT: u16 = 1 << 0;
/// Frontend flag: externalTrafficPolicy Local: only local backends in the
/// slots, never SNAT, the client address is preserved.
pub const FRONTEND_EXTERNAL_LOCAL: u16 = 1 << 1;
/// Frontend flag: sessionAffinity ClientIP.
pub const FRONTEND_AFFINITY: u16 = 1 << 2;
/// Frontend flag: choose backends by Maglev hashing instead of at random.
pub const FRONTEND_MAGLEV: u16 = 1 << 3;

/// Backend flag: the backend runs on this node.
pub const BACKEND_LOCAL: u8 = 1 << 0;
/// Backend flag: the backend is draining: no new flows, its established
/// ones go on (its pod is terminating, or not ready: a readiness probe that
/// fails for a moment must not reset the connections a pod already serves).
pub const BACKEND_DRAINING: u8 = 1 << 1;

/// Conntrack key flag: entry for the original direction (client -> frontend).
pub const CT_FORWARD: u8 = 0;
/// Conntrack key flag: entry for the reply direction (backend -> client).
pub const CT_REPLY: u8 = 1;

/// Conntrack state flag: TCP FIN or RST seen; the flow is closing.
pub const CT_CLOSING: u32 = 1 << 0;
/// Conntrack state flag: the forward packet was source-NATed (hairpin or
/// NodePort to a remote backend); `nat_addr`/`nat_port` hold the new source.
pub const CT_SNAT: u32 = 1 << 1;

/// Converts an IPv4 address (as octets) to the map representation.
pub const fn ipv4_to_net(octets: [u8; 4]) -> u32 {
    u32::from_ne_bytes(octets)
}

/// Converts the map representation back to octets.
pub const fn ipv4_from_net(addr: u32) -> [u8; 4] {
    addr.to_ne_bytes()
}

/// Converts a port to the map representation.
pub const fn port_to_net(port: u16) -> u16 {
    port.to_be()
}

/// Converts the map representation back to a port.
pub const fn port_from_net(port: u16) -> u16 {
    u16::from_be(port)
}

/// Key of the frontend map: destination address, port and protocol.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrontendKey {
    /// ClusterIP or node address, network byte order.
    pub addr: u32,
    /// Service port or NodePort, network byte order.
    pub port: u16,
    /// [`proto::TCP`] or [`proto::UDP`].
    pub proto: u8,
    /// Explicit padding; always zero.
    pub pad: u8,
}

/// Value of the frontend map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Frontend {
    /// Identifies the frontend in the slot, reverse-NAT, Maglev, affinity
    /// and counter maps; 1..[`MAX_FRONTENDS`].
    pub id: u32,
    /// Number of slots (1..=count) holding backends for new flows; zero
    /// means "refuse new connections".
    pub backend_count: u16,
    /// `FRONTEND_*` flags.
    pub flags: u16,
    /// sessionAffinity ClientIP timeout in seconds.
    pub affinity_timeout_s: u32,
    /// Explicit padding; always zero.
    pub pad: u32,
}

/// Key of the backend-slot map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendSlotKey {
    /// The frontend's id.
    pub frontend_id: u32,
    /// Slot number, 1..=backend_count.
    pub slot: u32,
}

/// Value of the backend map, keyed by backend id (u32).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Backend {
    /// Pod address, network byte order.
    pub addr: u32,
    /// Target port, network byte order.
    pub port: u16,
    /// [`proto::TCP`] or [`proto::UDP`].
    pub proto: u8,
    /// `BACKEND_*` flags.
    pub flags: u8,
}

/// Value of the reverse-NAT map, keyed by frontend id (u32): what a reply's
/// source becomes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReverseNat {
    /// Frontend address, network byte order.
    pub addr: u32,
    /// Frontend port, network byte order.
    pub port: u16,
    /// Explicit padding; always zero.
    pub pad: u16,
}

/// Key of the conntrack map: a flow's 5-tuple as seen in one direction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ConntrackKey {
    /// Source address, network byte order.
    pub saddr: u32,
    /// Destination address, network byte order.
    pub daddr: u32,
    /// Source port, network byte order.
    pub sport: u16,
    /// Destination port, network byte order.
    pub dport: u16,
    /// IP protocol.
    pub proto: u8,
    /// [`CT_FORWARD`] or [`CT_REPLY`].
    pub direction: u8,
    /// Explicit padding; always zero.
    pub pad: u16,
}

/// Value of the conntrack map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ConntrackEntry {
    /// Last packet seen, `bpf_ktime_get_ns` (CLOCK_MONOTONIC).
    pub last_seen_ns: u64,
    /// The backend the flow was sent to.
    pub backend_id: u32,
    /// The frontend the flow came in through (reverse NAT key).
    pub frontend_id: u32,
    /// For forward entries with [`CT_SNAT`]: the source the packet got.
    /// For reply entries: the original client address to restore.
    pub nat_addr: u32,
    /// Port counterpart of `nat_addr`, network byte order.
    pub nat_port: u16,
    /// Explicit padding; always zero.
    pub pad: u16,
    /// `CT_*` state flags.
    pub flags: u32,
    /// Explicit padding; always zero.
    pub pad2: u32,
}

/// Key of the session-affinity map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AffinityKey {
    /// The frontend's id.
    pub frontend_id: u32,
    /// Client address, network byte order.
    pub client: u32,
}

/// Value of the session-affinity map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AffinityEntry {
    /// Last use, `bpf_ktime_get_ns`.
    pub last_used_ns: u64,
    /// The backend the client sticks to.
    pub backend_id: u32,
    /// Explicit padding; always zero.
    pub pad: u32,
}

/// Value of the Maglev map (keyed by frontend id): slot -> backend id.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaglevTable {
    /// Backend ids; every entry is a backend of the frontend.
    pub backends: [u32; MAGLEV_TABLE_SIZE],
}

/// Per-frontend counters (one per CPU; user space sums them).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ServiceCounters {
    /// Packets translated (both directions).
    pub packets: u64,
    /// Bytes translated (both directions).
    pub bytes: u64,
    /// New flows assigned a backend.
    pub new_flows: u64,
    /// Packets refused or dropped (no backend, SNAT ports exhausted).
    pub drops: u64,
}

impl ServiceCounters {
    /// Adds another CPU's share.
    pub const fn add(self, o: Self) -> Self {
        Self {
            packets: self.packets.wrapping_add(o.packets),
            bytes: self.bytes.wrapping_add(o.bytes),
            new_flows: self.new_flows.wrapping_add(o.new_flows),
            drops: self.drops.wrapping_add(o.drops),
        }
    }
}

/// The node's settings for the programs (array map, one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NodeConfig {
    /// The node's address on the uplink (SNAT source), network byte order.
    pub node_addr: u32,
    /// Source address given to hairpin flows (a pod reaching itself through
    /// a service), network byte order; must be routed to the pod's gateway.
    pub hairpin_addr: u32,
    /// First SNAT source port, host byte order.
    pub snat_port_min: u16,
    /// Last SNAT source port, host byte order.
    pub snat_port_max: u16,
    /// ifindex of the uplink (where NodePort SNAT replies arrive).
    pub uplink_ifindex: u32,
}

const _: () = assert!(core::mem::size_of::<FrontendKey>() == 8);
const _: () = assert!(core::mem::size_of::<Frontend>() == 16);
const _: () = assert!(core::mem::size_of::<BackendSlotKey>() == 8);
const _: () = assert!(core::mem::size_of::<Backend>() == 8);
const _: () = assert!(core::mem::size_of::<ReverseNat>() == 8);
const _: () = assert!(core::mem::size_of::<ConntrackKey>() == 16);
const _: () = assert!(core::mem::size_of::<ConntrackEntry>() == 32);
const _: () = assert!(core::mem::size_of::<AffinityKey>() == 8);
const _: () = assert!(core::mem::size_of::<AffinityEntry>() == 16);
const _: () = assert!(core::mem::size_of::<MaglevTable>() == 4 * MAGLEV_TABLE_SIZE);
const _: () = assert!(core::mem::size_of::<ServiceCounters>() == 32);
const _: () = assert!(core::mem::size_of::<NodeConfig>() == 16);

#[cfg(feature = "user")]
mod pod {
    //! Every type below is repr(C) with integer fields only and explicit
    //! padding fields, so it has no padding bytes and every bit pattern is
    //! a valid value: what aya::Pod requires.
    use super::*;
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for FrontendKey {}
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for Frontend {}
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for BackendSlotKey {}
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for Backend {}
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for ReverseNat {}
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for ConntrackKey {}
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for ConntrackEntry {}
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for AffinityKey {}
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for AffinityEntry {}
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for MaglevTable {}
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for ServiceCounters {}
    // SAFETY: see the module comment.
    unsafe impl aya::Pod for NodeConfig {}
}

/// The hash Maglev frontends use to pick a table slot for a flow. Shared
/// with user space so every node, and the tests, agree on it. All inputs in
/// network byte order, as in the packet.
pub const fn flow_hash(saddr: u32, daddr: u32, sport: u16, dport: u16, proto: u8) -> u32 {
    let mut h = mix(0x9e37_79b9 ^ saddr);
    h = mix(h ^ daddr);
    h = mix(h ^ ((sport as u32) << 16 | dport as u32));
    mix(h ^ proto as u32)
}

/// murmur3's 32-bit finaliser: every input bit affects every output bit.
const fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Socket-level translation entries (connect-time load balancing).
pub const MAX_SOCKET_NAT: u32 = 65_536;

/// Key of the socket reverse-NAT map: which backend a socket was sent to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketNatKey {
    /// `bpf_get_socket_cookie` of the socket.
    pub cookie: u64,
    /// Backend address, network byte order.
    pub addr: u32,
    /// Backend port, network byte order.
    pub port: u16,
    /// Explicit padding; always zero.
    pub pad: u16,
}

const _: () = assert!(core::mem::size_of::<SocketNatKey>() == 16);

#[cfg(feature = "user")]
// SAFETY: repr(C), integer fields with explicit padding: no padding bytes,
// every bit pattern valid.
unsafe impl aya::Pod for SocketNatKey {}
