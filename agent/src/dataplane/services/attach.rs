//! Where service translation attaches: pods' host-side veths, the node
//! uplink (tc and the XDP fast path) and cgroups (connect-time).

use std::path::Path;

use aya::programs::TcAttachType;
use dataplane_common::program_names;

use crate::dataplane::{Dataplane, DataplaneError, detach, detach_cgroup, detach_tc_filter};

/// The programs on a pod's host-side veth.
const POD_PROGRAMS: [(&str, TcAttachType); 2] = [
    (program_names::SERVICE_FROM_POD, TcAttachType::Ingress),
    (program_names::SERVICE_TO_POD, TcAttachType::Egress),
];

/// The programs on the node uplink.
const UPLINK_PROGRAMS: [(&str, TcAttachType); 2] = [
    (program_names::SERVICE_FROM_NETWORK, TcAttachType::Ingress),
    (program_names::SERVICE_TO_NETWORK, TcAttachType::Egress),
];

impl Dataplane {
    /// Attaches service translation to a pod's host-side veth: traffic the
    /// pod sends (tc ingress) and receives (tc egress). As tc filters, not
    /// TCX links: pods come and go in bursts, and a filter does not hold
    /// the kernel's RTNL lock through an RCU grace period (see
    /// [`Dataplane::attach_tc_filter`]).
    ///
    /// # Errors
    /// When the interface does not exist or the kernel refuses an attach.
    pub fn attach_pod_interface(&mut self, iface: &str) -> Result<(), DataplaneError> {
        POD_PROGRAMS
            .iter()
            .try_for_each(|(program, hook)| self.attach_tc_filter(program, iface, *hook))
    }

    /// Attaches NodePort translation and reply handling to the node uplink.
    ///
    /// # Errors
    /// When the interface does not exist or the kernel refuses an attach.
    pub fn attach_uplink(&mut self, iface: &str) -> Result<(), DataplaneError> {
        UPLINK_PROGRAMS
            .iter()
            .try_for_each(|(program, hook)| self.attach_tc(program, iface, *hook))
    }

    /// Attaches the XDP NodePort fast path to the node uplink (in addition
    /// to [`Self::attach_uplink`]). It rewrites checksums incrementally and
    /// so needs complete checksums on arrival, as NICs deliver them; on a
    /// veth uplink whose peer sends with checksum offload (partial
    /// checksums) leave it off.
    ///
    /// # Errors
    /// When the interface does not exist or the kernel refuses the attach.
    pub fn attach_uplink_fast_path(&mut self, iface: &str) -> Result<(), DataplaneError> {
        self.attach_xdp(program_names::SERVICE_XDP, iface)
    }
}

/// The connect-time translation programs.
const SOCKET_PROGRAMS: [&str; 3] = [
    program_names::SOCK_CONNECT4,
    program_names::SOCK_SENDMSG4,
    program_names::SOCK_RECVMSG4,
];

impl Dataplane {
    /// Attaches connect-time translation to the cgroup v2 directory
    /// `cgroup`: its processes (host daemons, or the pods placed under it)
    /// connect straight to a backend, with no per-packet NAT.
    ///
    /// # Errors
    /// When the cgroup cannot be opened or the kernel refuses an attach.
    pub fn attach_sockets(&mut self, cgroup: &Path) -> Result<(), DataplaneError> {
        SOCKET_PROGRAMS
            .iter()
            .try_for_each(|program| self.attach_cgroup(program, cgroup))
    }
}

/// Detaches connect-time translation from `cgroup`.
///
/// # Errors
/// When a pinned link cannot be detached.
pub fn detach_sockets(dir: &Path, cgroup: &Path) -> Result<(), DataplaneError> {
    SOCKET_PROGRAMS
        .iter()
        .try_for_each(|program| detach_cgroup(dir, program, cgroup))
}

/// Detaches service translation from a pod's host-side veth (the pod is
/// gone or going). Runs in the node's network namespace: the filters are
/// found by interface name.
///
/// # Errors
/// When a pinned link cannot be detached.
pub fn detach_pod_interface(dir: &Path, iface: &str) -> Result<(), DataplaneError> {
    POD_PROGRAMS
        .iter()
        .for_each(|(_, hook)| detach_tc_filter(iface, *hook));
    forget_pod_interface(dir, iface)
}

/// Forgets a pod veth that is gone: removes the links an agent from before
/// pods got filters pinned for it. Its filters went with it; detaching by
/// name could hit a new veth of the same name (names derive from the pod).
///
/// # Errors
/// When a pinned link cannot be detached.
pub fn forget_pod_interface(dir: &Path, iface: &str) -> Result<(), DataplaneError> {
    POD_PROGRAMS
        .iter()
        .try_for_each(|(program, _)| detach(dir, program, iface))
}
