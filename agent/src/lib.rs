//! rudder-agent: the daemon on every node. It registers the node, runs the
//! pods bound to it (sandbox netns, `rudder-cni`, processes), and programs
//! the eBPF dataplane that load-balances Services without iptables.
//!
//! [`dataplane`] loads the embedded kernel programs, attaches them with
//! pinned links and keeps the service maps in sync; [`pods`] is the
//! embedded pod runtime (sandboxes, CNI, processes, probes, status);
//! [`serve`] runs both as the node daemon, fed by the control plane's
//! node-sync stream (or, without a control plane, a services file).

pub mod bandwidth;
pub mod dataplane;
pub mod join;
pub mod pods;
pub mod serve;
