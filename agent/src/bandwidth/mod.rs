//! Per-pod bandwidth limits: the agent's half. It keeps the pinned
//! `BANDWIDTH` map (read by the service programs on every pod veth, see
//! `dataplane-ebpf/src/bandwidth.rs`) equal to what the pods ask for, keyed
//! by each pod's host-side veth, and turns ECN on in pod namespaces.
//!
//! The map is pinned, so the limits (and their buckets) outlive an agent
//! restart; a new agent rewrites only what changed.

pub mod ecn;
pub mod limits;
pub mod metrics;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use dataplane_common::bandwidth::BandwidthDirection;
use rudder_api::bandwidth::BandwidthLimits;
use rudder_dataplane_maps::{BandwidthMaps, MapsError};
use rudder_netlink::{InfoKind, RouteSocket};

pub use self::limits::VethLimits;

/// A pod of this agent with a sandbox, as bandwidth sees it.
#[derive(Clone, Debug)]
pub struct PodNetwork {
    /// `namespace/name`, for logs.
    pub pod: String,
    /// The pod's annotations (the limits are read from them).
    pub annotations: BTreeMap<String, String>,
    /// Host-side interfaces of the pod's network (the veth, maybe a bridge).
    pub host_interfaces: Vec<String>,
    /// The sandbox's network namespace file.
    pub netns: PathBuf,
}

/// Keeps the bandwidth map equal to the pods' limits.
pub struct BandwidthSync {
    maps: BandwidthMaps,
    /// rudder-cni's `bandwidthDir`.
    cni_records: PathBuf,
    /// Namespaces ECN was turned on in (or tried).
    ecn_enabled: BTreeSet<PathBuf>,
    /// The CNI config directory `cni_records` is still to be read from
    /// (the config may appear after the agent starts).
    cni_conf_dir: Option<PathBuf>,
}

impl BandwidthSync {
    /// Opens the node's pinned bandwidth maps under `dir`; limits recorded
    /// by rudder-cni are read from `cni_records`.
    ///
    /// # Errors
    /// When the maps are not pinned (the dataplane is not loaded).
    pub fn open(dir: &Path, cni_records: PathBuf) -> Result<Self, MapsError> {
        Ok(Self {
            maps: BandwidthMaps::open(dir)?,
            cni_records,
            ecn_enabled: BTreeSet::new(),
            cni_conf_dir: None,
        })
    }

    /// Opens the node's maps under `dir`, with rudder-cni's record directory
    /// from the network config in `cni_conf_dir` (or its default).
    ///
    /// # Errors
    /// When the maps are not pinned (the dataplane is not loaded).
    pub fn for_node(dir: &Path, cni_conf_dir: &Path) -> Result<Self, MapsError> {
        let mut sync = Self::open(dir, limits::cni_record_dir(&[]))?;
        sync.cni_conf_dir = Some(cni_conf_dir.to_path_buf());
        Ok(sync)
    }

    /// One round: every pod veth gets its limits, veths whose pod has
    /// none lose theirs, and entries of veths that no longer exist go.
    /// Entries of veths the agent does not know yet (pods not adopted yet
    /// after a restart) stay. Problems are logged; the next round retries.
    pub fn sync(&mut self, pods: &[PodNetwork]) {
        if let Some(conf_dir) = &self.cni_conf_dir
            && let Ok(network) = crate::pods::cni::NetworkConfig::load(conf_dir)
        {
            self.cni_records = limits::cni_record_dir(&network.plugins);
            self.cni_conf_dir = None;
        }
        let mut desired: BTreeMap<String, VethLimits> = limits::read_cni_records(&self.cni_records);
        let mut links = RouteSocket::open()
            .map_err(|err| tracing::warn!(%err, "netlink socket for the pods' interfaces"))
            .ok();
        for pod in pods {
            let limits = match BandwidthLimits::from_annotations(&pod.annotations) {
                Ok(limits) => VethLimits::from_annotations(&limits),
                Err((key, err)) => {
                    // The API refuses these; an old object may still carry one.
                    tracing::warn!(pod = %pod.pod, key, %err, "ignoring a bandwidth annotation");
                    VethLimits::default()
                }
            };
            for iface in pod
                .host_interfaces
                .iter()
                .filter(|i| !is_bridge(links.as_mut(), i))
            {
                desired.insert(iface.clone(), limits);
            }
            // Once per sandbox: a failure is reported, not retried every
            // round (the limits work without ECN, by dropping).
            if self.ecn_enabled.insert(pod.netns.clone())
                && let Err(err) = ecn::enable_in(&pod.netns)
            {
                tracing::warn!(pod = %pod.pod, %err, "enabling ECN in the pod");
            }
        }
        self.ecn_enabled
            .retain(|netns| pods.iter().any(|pod| &pod.netns == netns));
        let mut wanted = BTreeSet::new();
        for (iface, limits) in &desired {
            let Ok(ifindex) = nix::net::if_::if_nametoindex(iface.as_str()) else {
                continue;
            };
            for (direction, shape) in [
                (BandwidthDirection::FromPod, limits.from_pod),
                (BandwidthDirection::ToPod, limits.to_pod),
            ] {
                let result = match shape {
                    Some(shape) => {
                        wanted.insert((ifindex, direction));
                        self.maps.set(ifindex, direction, shape)
                    }
                    None => self.maps.remove(ifindex, direction),
                };
                if let Err(err) = result {
                    tracing::warn!(iface, direction = direction.as_str(), %err, "bandwidth limit");
                }
            }
        }
        self.remove_gone(&wanted);
    }

    /// Removes the entries of interfaces that no longer exist.
    fn remove_gone(&mut self, wanted: &BTreeSet<(u32, BandwidthDirection)>) {
        let limited = match self.maps.limited() {
            Ok(limited) => limited,
            Err(err) => {
                tracing::warn!(%err, "reading the bandwidth map");
                return;
            }
        };
        for (ifindex, direction) in limited {
            if wanted.contains(&(ifindex, direction)) || interface_exists(ifindex) {
                continue;
            }
            if let Err(err) = self.maps.remove(ifindex, direction) {
                tracing::warn!(ifindex, %err, "removing a stale bandwidth limit");
            }
        }
    }
}

/// Whether `iface` is a bridge (the pods' bridge is among a pod's host
/// interfaces in CNI results; it carries no pod's limit). Asked over
/// netlink, not /sys/class/net: sysfs shows the namespace it was mounted
/// in, which need not be the agent's.
fn is_bridge(links: Option<&mut RouteSocket>, iface: &str) -> bool {
    links
        .and_then(|links| links.link(iface).ok().flatten())
        .is_some_and(|link| link.kind == Some(InfoKind::Bridge))
}

fn interface_exists(ifindex: u32) -> bool {
    let mut name = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `name` has the IF_NAMESIZE bytes if_indextoname writes at most.
    !unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr().cast()) }.is_null()
}
