//! rudder-cni: a CNI 1.1.0 plugin that wires a pod sandbox to the node bridge
//! with a veth pair, allocates its address (host-local style IPAM) and records
//! the bandwidth capability for the dataplane.
//!
//! The binary reads the `CNI_*` environment and the network config on stdin,
//! and answers on stdout as the spec says (see [`run`]); it also speaks the
//! result formats of 0.4.0 and 1.0.0. Everything it does to the kernel goes
//! through netlink ([`rudder_netlink`]), and everything inside a sandbox happens on
//! a thread that entered it ([`sandbox`]).

pub mod bandwidth;
pub mod config;
pub mod env;
pub mod error;
pub mod ipam;
pub mod names;
pub mod plugin;
pub mod result;
pub mod sandbox;
pub mod version;

pub use error::{CniError, Result};
pub use plugin::{error_json, run};
