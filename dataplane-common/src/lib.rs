//! Types shared by rudder's kernel programs (`dataplane-ebpf`) and user space
//! (the agent's dataplane module, `rudderctl dataplane`).
//!
//! Every map key and value is `#[repr(C)]` with explicit padding fields, so
//! the layout the verifier sees is the layout user space writes, and a
//! compile-time size assertion guards each one against silent drift.
//! Enable the `user` feature in user space to get `aya::Pod` for them.
#![no_std]

pub mod counters;

pub use counters::{CounterHook, InterfaceCounterKey, PacketCounters};

/// Names of the maps in the eBPF object, one place for both sides.
pub mod map_names {
    /// Per-CPU hash of [`crate::InterfaceCounterKey`] -> [`crate::PacketCounters`].
    pub const INTERFACE_COUNTERS: &str = "INTERFACE_COUNTERS";
}

/// Names of the programs in the eBPF object.
pub mod program_names {
    /// tc (TCX) classifier counting packets at ingress; attached per interface.
    pub const COUNT_TC_INGRESS: &str = "count_tc_ingress";
    /// tc (TCX) classifier counting packets at egress; attached per interface.
    pub const COUNT_TC_EGRESS: &str = "count_tc_egress";
    /// XDP program counting packets before the stack sees them.
    pub const COUNT_XDP: &str = "count_xdp";
}
