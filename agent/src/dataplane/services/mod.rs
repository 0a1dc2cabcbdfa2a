//! Services and Endpoints in, minimal ordered map writes out.
//!
//! [`ServiceDataplane`] is what the agent feeds Services into, from the
//! control plane's node-sync stream: [`ServiceDataplane::apply`] for each
//! change, [`ServiceDataplane::resync`] with the full set after a (re)connect.
//! [`ServiceState`] -> [`FrontendSpec`]s -> [`MapWritePlanner`] (which
//! Service owns which frontend) -> `ServiceTable` (ids, slots, reference
//! counts) -> ordered [`MapWrite`]s -> the pinned maps.
//! Ids in the maps are kept across agent restarts (the table is rebuilt from
//! the pinned maps), so established flows keep their backends.

mod attach;
pub mod conntrack;
mod ids;
mod maglev;
mod metrics;
mod planner;
mod route;
pub mod service_state;
pub mod table;

use std::{net::Ipv4Addr, ops::RangeInclusive, path::Path, time::Instant};

use dataplane_common::{
    map_names,
    service::{NodeConfig, ipv4_from_net, ipv4_to_net, port_from_net},
};

use self::metrics::{LatencyHistogram, ServiceSnapshot};
pub use self::{
    attach::{detach_pod_interface, detach_sockets, forget_pod_interface},
    conntrack::{ConntrackGcStats, ConntrackTimeouts},
    planner::MapWritePlanner,
    route::install_service_blackhole,
    service_state::{
        Endpoint, EndpointPort, FrontendSpec, LOAD_BALANCING_ANNOTATION, LoadBalancing,
        NodeAddresses, Protocol, ServiceName, ServicePort, ServiceState,
    },
    table::TableError,
};
use super::DataplaneError;
pub use rudder_dataplane_maps::MapWrite;
use rudder_dataplane_maps::{MapsError, ServiceMaps};

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

/// The service dataplane of one node: a [`MapWritePlanner`] plus the
/// pinned maps its writes go to, and metrics of both.
pub struct ServiceDataplane {
    planner: MapWritePlanner,
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
        let (planner, cleanup) =
            MapWritePlanner::restore(node, maps.contents()?, max_frontends, max_backends);
        maps.apply(&cleanup)?;
        Ok(Self {
            planner,
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
            ServiceChange::Upsert(service) => self.planner.upsert(service)?,
            ServiceChange::Delete(name) => self.planner.delete(name),
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
        let writes = self.planner.resync(services)?;
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
        let table = self.planner.table();
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

    /// The pure planning state.
    pub fn planner(&self) -> &MapWritePlanner {
        &self.planner
    }

    /// Prometheus text exposition of the service dataplane.
    pub fn metrics(&self) -> String {
        let (frontends, slots, backends) = self.planner.table().occupancy();
        let conntrack = self.maps.conntrack.keys().count();
        let mut rows = Vec::new();
        for (id, key, owner) in self.planner.frontend_owners() {
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
