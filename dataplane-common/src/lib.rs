//! Types shared by rudder's kernel programs (`dataplane-ebpf`) and user space
//! (`rudder-dataplane-maps`, which the agent, `rudderctl dataplane` and the
//! benchmarks read and write the pinned maps through).
//!
//! Every map key and value is `#[repr(C)]` with explicit padding fields, so
//! the layout the verifier sees is the layout user space writes, and a
//! compile-time size assertion guards each one against silent drift.
//! Enable the `user` feature in user space to get `aya::Pod` for them.
#![no_std]

pub mod bandwidth;
pub mod counters;
pub mod service;

pub use counters::{CounterHook, InterfaceCounterKey, PacketCounters};

/// Names of the maps in the eBPF object and of their pins, the one source
/// for both sides: `dataplane-ebpf`'s `pinned_map!` fails to compile when a
/// map's name is not the constant here.
pub mod map_names {
    /// Per-CPU hash of [`crate::InterfaceCounterKey`] -> [`crate::PacketCounters`].
    pub const INTERFACE_COUNTERS: &str = "INTERFACE_COUNTERS";
    /// Hash of [`crate::service::FrontendKey`] -> [`crate::service::Frontend`].
    pub const FRONTENDS: &str = "FRONTENDS";
    /// Hash of [`crate::service::BackendSlotKey`] -> backend id (u32).
    pub const BACKEND_SLOTS: &str = "BACKEND_SLOTS";
    /// Hash of backend id (u32) -> [`crate::service::Backend`].
    pub const BACKENDS: &str = "BACKENDS";
    /// Hash of frontend id (u32) -> [`crate::service::ReverseNat`].
    pub const REVERSE_NAT: &str = "REVERSE_NAT";
    /// LRU hash of [`crate::service::ConntrackKey`] -> [`crate::service::ConntrackEntry`].
    pub const CONNTRACK: &str = "CONNTRACK";
    /// LRU hash of [`crate::service::AffinityKey`] -> [`crate::service::AffinityEntry`].
    pub const AFFINITY: &str = "AFFINITY";
    /// Hash of frontend id (u32) -> [`crate::service::MaglevTable`].
    pub const MAGLEV: &str = "MAGLEV";
    /// Per-CPU array indexed by frontend id -> [`crate::service::ServiceCounters`].
    pub const SERVICE_COUNTERS: &str = "SVC_COUNTERS";
    /// LRU hash of [`crate::service::SocketNatKey`] -> [`crate::service::ReverseNat`]:
    /// the frontend a translated socket really talks to.
    pub const SOCKET_NAT: &str = "SOCKET_NAT";
    /// Array with one [`crate::service::NodeConfig`].
    pub const NODE_CONFIG: &str = "NODE_CONFIG";
    /// Hash of [`crate::bandwidth::BandwidthKey`] -> [`crate::bandwidth::BandwidthLimit`].
    pub const BANDWIDTH: &str = "BANDWIDTH";
    /// Per-CPU hash of [`crate::bandwidth::BandwidthKey`] -> [`crate::bandwidth::BandwidthCounters`].
    pub const BANDWIDTH_COUNTERS: &str = "BW_COUNTERS";
}

/// Names of the programs in the eBPF object.
pub mod program_names {
    /// tc (TCX) classifier counting packets at ingress; attached per interface.
    pub const COUNT_TC_INGRESS: &str = "count_tc_ingress";
    /// tc (TCX) classifier counting packets at egress; attached per interface.
    pub const COUNT_TC_EGRESS: &str = "count_tc_egress";
    /// XDP program counting packets before the stack sees them.
    pub const COUNT_XDP: &str = "count_xdp";
    /// tc ingress on a pod's host-side veth: packets leaving the pod.
    pub const SERVICE_FROM_POD: &str = "svc_from_pod";
    /// tc egress on a pod's host-side veth: packets entering the pod.
    pub const SERVICE_TO_POD: &str = "svc_to_pod";
    /// tc ingress on the node uplink: packets from the network.
    pub const SERVICE_FROM_NETWORK: &str = "svc_from_net";
    /// tc egress on the node uplink: packets to the network.
    pub const SERVICE_TO_NETWORK: &str = "svc_to_net";
    /// XDP on the node uplink: the NodePort fast path.
    pub const SERVICE_XDP: &str = "svc_xdp";
    /// cgroup/connect4: connect-time translation of TCP and connected UDP.
    pub const SOCK_CONNECT4: &str = "sock_connect4";
    /// cgroup/sendmsg4: send-time translation of unconnected UDP.
    pub const SOCK_SENDMSG4: &str = "sock_sendmsg4";
    /// cgroup/recvmsg4: restores the service address as a UDP reply's source.
    pub const SOCK_RECVMSG4: &str = "sock_recvmsg4";
}
