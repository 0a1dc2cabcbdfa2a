//! rudder-agent: the daemon on every node. It registers the node, runs the
//! pods bound to it (sandbox netns, `rudder-cni`, processes), and programs
//! the eBPF dataplane that load-balances Services without iptables.
//!
//! Today the crate holds the dataplane (loading the embedded kernel
//! programs, attaching them with pinned links, service sync, reading maps
//! back) and `serve`, which runs it as a daemon fed from a services file.

pub mod bandwidth;
pub mod dataplane;
pub mod pods;
pub mod serve;
