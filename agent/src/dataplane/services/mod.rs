//! Services and Endpoints in, minimal ordered map writes out.
//!
//! [`ServiceDataplane`] is the desired-state interface the agent feeds from
//! the control plane's node-sync stream: [`ServiceDataplane::apply`] for each
//! change, [`ServiceDataplane::resync`] with the full set after a (re)connect.
//! Ids in the maps are kept across agent restarts (the table is rebuilt from
//! the pinned maps), so established flows keep their backends.

pub mod conntrack;
pub mod desired;
mod maglev;
mod metrics;
mod route;
pub mod table;

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
    ops::RangeInclusive,
    path::Path,
    time::Instant,
};

use dataplane_common::{
    map_names,
    service::{
        FrontendKey, MAX_BACKENDS, MAX_FRONTENDS, NodeConfig, ipv4_from_net, ipv4_to_net,
        port_from_net,
    },
};

pub use self::{
    conntrack::{ConntrackGcStats, ConntrackTimeouts},
    desired::{
        Endpoint, EndpointPort, LoadBalancing, NodeAddresses, Protocol, ServiceName, ServicePort,
        ServiceState,
    },
    route::install_service_blackhole,
    table::TableError,
};
use self::{
    metrics::{LatencyHistogram, ServiceSnapshot},
    table::{ServiceTable, WriteBatch},
};
use super::DataplaneError;
pub use rudder_dataplane_maps::MapWrite;
use rudder_dataplane_maps::{MapContents, MapsError, ServiceMaps};

/// One change from the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceChange {
    /// A Service (with its endpoints) was created or changed.
    Upsert(ServiceState),
    /// A Service was deleted.
    Delete(ServiceName),
}

/// The per-node settings of service translation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeServiceConfig {
    /// The node's uplink address: NodePorts are served on it, and NodePort
    /// flows sent to other nodes are source-NATed to it.
    pub node_addr: Ipv4Addr,
    /// Source given to hairpin flows (a pod reaching itself through a
    /// service); must route from pods to their gateway (link-local is good).
    pub hairpin_addr: Ipv4Addr,
    /// Source ports for NodePort SNAT; keep them out of the node's
    /// ephemeral range (net.ipv4.ip_local_port_range).
    pub snat_ports: RangeInclusive<u16>,
    /// ifindex of the uplink.
    pub uplink_ifindex: u32,
}

/// Service state to map writes, without the maps: pure and testable.
#[derive(Debug)]
pub struct ServiceSync {
    table: ServiceTable,
    node: NodeAddresses,
    /// Frontends each Service owns.
    services: BTreeMap<ServiceName, Vec<FrontendKey>>,
    /// Which Service owns a frontend: two Services claiming one address and
    /// port is a control-plane bug; the first keeps it.
    owners: HashMap<FrontendKey, ServiceName>,
    /// Frontends given up during the current batch (see `finish`).
    released: Vec<FrontendKey>,
}

impl ServiceSync {
    /// Sync for an empty dataplane.
    pub fn new(node: NodeAddresses) -> Self {
        Self::with_table(node, ServiceTable::new(MAX_FRONTENDS - 1, MAX_BACKENDS - 1))
    }

    /// Sync continuing from maps a previous agent left; the returned writes
    /// remove entries that belong to nothing. Ids stay below the maps'
    /// capacities (`max_frontends`, `max_backends`); id 0 is never used.
    pub fn restore(
        node: NodeAddresses,
        contents: MapContents,
        max_frontends: u32,
        max_backends: u32,
    ) -> (Self, Vec<MapWrite>) {
        let mut batch = WriteBatch::default();
        let table =
            ServiceTable::restore(max_frontends - 1, max_backends - 1, contents, &mut batch);
        (Self::with_table(node, table), batch.into_writes())
    }

    fn with_table(node: NodeAddresses, table: ServiceTable) -> Self {
        Self {
            table,
            node,
            services: BTreeMap::new(),
            owners: HashMap::new(),
            released: Vec::new(),
        }
    }

    /// The writes that bring one Service up to date.
    ///
    /// # Errors
    /// When the maps are out of ids.
    pub fn upsert(&mut self, service: &ServiceState) -> Result<Vec<MapWrite>, TableError> {
        let mut batch = WriteBatch::default();
        self.upsert_into(service, &mut batch)?;
        self.finish(&mut batch);
        Ok(batch.into_writes())
    }

    /// The writes that remove a Service.
    pub fn delete(&mut self, name: &ServiceName) -> Vec<MapWrite> {
        let mut batch = WriteBatch::default();
        self.delete_into(name);
        self.finish(&mut batch);
        batch.into_writes()
    }

    /// The writes that make the maps hold exactly `services`: everything
    /// else, including what a previous agent left, is removed.
    ///
    /// # Errors
    /// When the maps are out of ids.
    pub fn resync(&mut self, services: &[ServiceState]) -> Result<Vec<MapWrite>, TableError> {
        let mut batch = WriteBatch::default();
        let wanted: std::collections::HashSet<&ServiceName> =
            services.iter().map(|s| &s.name).collect();
        let gone: Vec<ServiceName> = self
            .services
            .keys()
            .filter(|n| !wanted.contains(n))
            .cloned()
            .collect();
        for name in gone {
            self.delete_into(&name);
        }
        for service in services {
            self.upsert_into(service, &mut batch)?;
        }
        // Frontends nobody owns: leftovers of services deleted while no
        // agent was running.
        self.released.extend(self.table.frontend_keys());
        self.finish(&mut batch);
        Ok(batch.into_writes())
    }

    /// Removes the frontends released in this batch that no Service took
    /// over, then the backends nothing references. Removal waits until the
    /// end so a frontend moving to another Service (same address and port,
    /// e.g. a Service recreated under a new name) keeps its id and is never
    /// deleted after being written.
    fn finish(&mut self, batch: &mut WriteBatch) {
        for key in std::mem::take(&mut self.released) {
            if !self.owners.contains_key(&key) {
                self.table.remove_frontend(key, batch);
            }
        }
        self.table.collect_unused_backends(batch);
    }

    fn upsert_into(
        &mut self,
        service: &ServiceState,
        batch: &mut WriteBatch,
    ) -> Result<(), TableError> {
        let frontends = service.frontends(&self.node);
        let mut owned = Vec::with_capacity(frontends.len());
        for (key, desired) in &frontends {
            match self.owners.get(key) {
                Some(owner) if *owner != service.name => {
                    tracing::warn!(service = %service.name, owner = %owner, "frontend already served by another service; ignored");
                    continue;
                }
                _ => {}
            }
            self.table.set_frontend(*key, desired, batch)?;
            self.owners.insert(*key, service.name.clone());
            owned.push(*key);
        }
        let previous = self
            .services
            .insert(service.name.clone(), owned.clone())
            .unwrap_or_default();
        for key in previous.into_iter().filter(|k| !owned.contains(k)) {
            self.owners.remove(&key);
            self.released.push(key);
        }
        Ok(())
    }

    fn delete_into(&mut self, name: &ServiceName) {
        for key in self.services.remove(name).unwrap_or_default() {
            self.owners.remove(&key);
            self.released.push(key);
        }
    }

    /// The table, for occupancy and orphan checks.
    pub fn table(&self) -> &ServiceTable {
        &self.table
    }

    /// Owner and key of every frontend id.
    pub fn frontend_owners(&self) -> Vec<(u32, FrontendKey, ServiceName)> {
        self.table
            .frontend_ids()
            .filter_map(|(id, key)| self.owners.get(&key).map(|o| (id, key, o.clone())))
            .collect()
    }
}

/// The service dataplane of one node: [`ServiceSync`] plus the pinned maps
/// it writes, and metrics of both.
pub struct ServiceDataplane {
    sync: ServiceSync,
    maps: ServiceMaps,
    sync_latency: LatencyHistogram,
    writes: u64,
}

impl ServiceDataplane {
    /// Opens the service maps of the node whose bpffs directory is `dir`
    /// (load them first with [`super::Dataplane::load`]), writes the node
    /// settings, and continues from whatever the maps hold.
    ///
    /// # Errors
    /// When the maps are not pinned under `dir` or cannot be written.
    pub fn open(dir: &Path, config: &NodeServiceConfig) -> Result<Self, DataplaneError> {
        let mut maps = ServiceMaps::open(dir)?;
        let node_config = NodeConfig {
            node_addr: ipv4_to_net(config.node_addr.octets()),
            hairpin_addr: ipv4_to_net(config.hairpin_addr.octets()),
            snat_port_min: *config.snat_ports.start(),
            snat_port_max: *config.snat_ports.end(),
            uplink_ifindex: config.uplink_ifindex,
        };
        maps.node_config
            .set(0, node_config, 0)
            .map_err(|source| MapsError::Map {
                name: map_names::NODE_CONFIG,
                source,
            })?;
        let node = NodeAddresses {
            node_port_addrs: vec![config.node_addr],
        };
        let (max_frontends, max_backends) = maps.capacities()?;
        let (sync, cleanup) =
            ServiceSync::restore(node, maps.contents()?, max_frontends, max_backends);
        maps.apply(&cleanup)?;
        Ok(Self {
            sync,
            maps,
            sync_latency: LatencyHistogram::default(),
            writes: 0,
        })
    }

    /// Applies one change received at `received`; returns the number of map
    /// writes it took.
    ///
    /// # Errors
    /// When the maps are full or refuse a write.
    pub fn apply(
        &mut self,
        change: &ServiceChange,
        received: Instant,
    ) -> Result<usize, DataplaneError> {
        let writes = match change {
            ServiceChange::Upsert(service) => self.sync.upsert(service)?,
            ServiceChange::Delete(name) => self.sync.delete(name),
        };
        self.write(&writes, received)
    }

    /// Makes the maps hold exactly `services`, removing leftovers.
    ///
    /// # Errors
    /// When the maps are full or refuse a write.
    pub fn resync(
        &mut self,
        services: &[ServiceState],
        received: Instant,
    ) -> Result<usize, DataplaneError> {
        let writes = self.sync.resync(services)?;
        self.write(&writes, received)
    }

    fn write(&mut self, writes: &[MapWrite], received: Instant) -> Result<usize, DataplaneError> {
        self.maps.apply(writes)?;
        self.sync_latency.observe(received.elapsed());
        self.writes += writes.len() as u64;
        Ok(writes.len())
    }

    /// Removes idle, closed and orphaned conntrack entries.
    ///
    /// # Errors
    /// When the conntrack map cannot be read or written.
    pub fn collect_conntrack(
        &mut self,
        timeouts: &ConntrackTimeouts,
    ) -> Result<ConntrackGcStats, DataplaneError> {
        let table = self.sync.table();
        let frontend_ids: std::collections::HashSet<u32> =
            table.frontend_ids().map(|(id, _)| id).collect();
        conntrack::collect(
            &mut self.maps,
            conntrack::monotonic_now_ns(),
            timeouts,
            &|id| table.has_backend(id),
            &|id| frontend_ids.contains(&id),
        )
    }

    /// The pure sync state.
    pub fn sync(&self) -> &ServiceSync {
        &self.sync
    }

    /// Prometheus text exposition of the service dataplane.
    pub fn metrics(&self) -> String {
        let (frontends, slots, backends) = self.sync.table().occupancy();
        let conntrack = self.maps.conntrack.keys().count();
        let mut rows = Vec::new();
        for (id, key, owner) in self.sync.frontend_owners() {
            if let Ok(c) = self.maps.counters(id) {
                let frontend = format!(
                    "{}:{}/{}",
                    Ipv4Addr::from(ipv4_from_net(key.addr)),
                    port_from_net(key.port),
                    Protocol::from_number(key.proto).map_or("?", Protocol::as_str)
                );
                rows.push((owner.to_string(), frontend, c));
            }
        }
        rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        ServiceSnapshot {
            map_entries: vec![
                (map_names::FRONTENDS, frontends),
                (map_names::BACKEND_SLOTS, slots),
                (map_names::BACKENDS, backends),
                (map_names::CONNTRACK, conntrack),
            ],
            writes: self.writes,
            sync_latency: self.sync_latency.clone(),
            frontends: rows,
        }
        .render()
    }
}

/// The programs on a pod's host-side veth.
const POD_PROGRAMS: [(&str, aya::programs::TcAttachType); 2] = [
    (
        dataplane_common::program_names::SERVICE_FROM_POD,
        aya::programs::TcAttachType::Ingress,
    ),
    (
        dataplane_common::program_names::SERVICE_TO_POD,
        aya::programs::TcAttachType::Egress,
    ),
];

/// The programs on the node uplink.
const UPLINK_PROGRAMS: [(&str, aya::programs::TcAttachType); 2] = [
    (
        dataplane_common::program_names::SERVICE_FROM_NETWORK,
        aya::programs::TcAttachType::Ingress,
    ),
    (
        dataplane_common::program_names::SERVICE_TO_NETWORK,
        aya::programs::TcAttachType::Egress,
    ),
];

impl super::Dataplane {
    /// Attaches service translation to a pod's host-side veth: traffic the
    /// pod sends (tc ingress) and receives (tc egress). As tc filters, not
    /// TCX links: pods come and go in bursts, and a filter does not hold
    /// the kernel's RTNL lock through an RCU grace period (see
    /// [`super::Dataplane::attach_tc_filter`]).
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
        self.attach_xdp(dataplane_common::program_names::SERVICE_XDP, iface)
    }
}

/// The connect-time translation programs.
const SOCKET_PROGRAMS: [&str; 3] = [
    dataplane_common::program_names::SOCK_CONNECT4,
    dataplane_common::program_names::SOCK_SENDMSG4,
    dataplane_common::program_names::SOCK_RECVMSG4,
];

impl super::Dataplane {
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
        .try_for_each(|program| super::detach_cgroup(dir, program, cgroup))
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
        .for_each(|(_, hook)| super::detach_tc_filter(iface, *hook));
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
        .try_for_each(|(program, _)| super::detach(dir, program, iface))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn service(name: &str, backend: u8) -> ServiceState {
        ServiceState {
            name: ServiceName::new("default", name),
            cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 10)),
            ports: vec![ServicePort {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 80,
                node_port: None,
            }],
            affinity_timeout_s: None,
            external_traffic_local: false,
            load_balancing: LoadBalancing::Random,
            endpoints: vec![Endpoint {
                addr: Ipv4Addr::new(10, 244, 1, backend),
                ports: vec![EndpointPort {
                    name: "http".into(),
                    protocol: Protocol::Tcp,
                    port: 8080,
                }],
                ready: true,
                terminating: false,
                local: true,
            }],
        }
    }

    #[test]
    fn a_service_recreated_under_another_name_keeps_its_frontend_in_a_resync() {
        let mut sync = ServiceSync::new(NodeAddresses {
            node_port_addrs: vec![],
        });
        sync.resync(&[service("web", 2)]).expect("ids");
        let writes = sync.resync(&[service("web-v2", 3)]).expect("ids");
        assert!(
            !writes
                .iter()
                .any(|w| matches!(w, MapWrite::DeleteFrontend { .. })),
            "the frontend moved to web-v2 and must not be deleted: {writes:?}"
        );
        assert!(
            writes
                .iter()
                .any(|w| matches!(w, MapWrite::DeleteBackend { .. })),
            "web's backend goes"
        );
        let owners = sync.frontend_owners();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].2.name, "web-v2");
    }

    #[test]
    fn deleting_one_service_among_many_looks_only_at_its_own_backends() {
        let mut sync = ServiceSync::new(NodeAddresses {
            node_port_addrs: vec![],
        });
        for i in 0..50u8 {
            let mut s = service(&format!("s{i}"), i);
            s.cluster_ip = Some(Ipv4Addr::new(10, 96, 1, i));
            sync.upsert(&s).expect("ids");
        }
        let writes = sync.delete(&ServiceName::new("default", "s7"));
        let deleted_backends = writes
            .iter()
            .filter(|w| matches!(w, MapWrite::DeleteBackend { .. }))
            .count();
        assert_eq!(deleted_backends, 1);
    }
}
