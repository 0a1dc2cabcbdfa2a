//! rudder-cni: a CNI 1.1.0 plugin that wires a pod sandbox to the node bridge
//! with a veth pair, allocates its address (host-local style IPAM) and records
//! the bandwidth capability for the dataplane.
//!
//! Filled in by the agent/CNI issue; the crate exists now so the workspace
//! already has the shape of the architecture (docs/architecture.md).
