//! What the pod runtime is given at start: where this node keeps pod
//! records, CNI configuration and plugins, how sandboxes are named, and the
//! hook that prepares a new pod's host-side interfaces.

use std::{net::Ipv4Addr, path::PathBuf};

/// How the runtime runs pods.
#[derive(Clone, Debug)]
pub struct PodRuntimeConfig {
    /// This node's name.
    pub node: String,
    /// This node's address (the pods' hostIP).
    pub node_addr: Ipv4Addr,
    /// Records and container logs live here.
    pub state_dir: PathBuf,
    /// CNI network configurations (net.d).
    pub cni_conf_dir: PathBuf,
    /// CNI plugin binaries.
    pub cni_bin_dir: PathBuf,
    /// Sandbox names are `<prefix>-<pod uid>` (unique per node).
    pub sandbox_prefix: String,
    /// cgroup v2 directory pods' cgroups are made under, if any.
    pub cgroup_root: Option<PathBuf>,
    /// Directories put before the standard ones in containers' PATH (the
    /// embedded runtime resolves `command[0]` there; it pulls no images).
    pub extra_path: Vec<PathBuf>,
    /// Called with each host-side interface of a new sandbox once CNI ADD
    /// has wired it and before its containers start, so they never run
    /// without the node's service translation. `None`: nothing to do.
    pub host_interface_hook: Option<HostInterfaceHook>,
    /// The cluster's Services, for the `<NAME>_SERVICE_HOST` variables
    /// (kept current by the node-sync stream; empty without one).
    pub services: super::ServiceEnvironment,
}

/// See [`PodRuntimeConfig::host_interface_hook`]: attaches whatever the
/// node runs on a pod's host-side interface; an error is logged (the
/// caller also retries on its own).
#[derive(Clone)]
pub struct HostInterfaceHook(pub std::sync::Arc<PrepareInterface>);

/// What a [`HostInterfaceHook`] runs: given an interface name, prepares it
/// or says why it could not.
pub type PrepareInterface =
    dyn Fn(&str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send + Sync;

impl std::fmt::Debug for HostInterfaceHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostInterfaceHook")
    }
}
