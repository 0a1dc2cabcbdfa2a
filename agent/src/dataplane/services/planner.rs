//! Services in, minimal ordered map writes out, without touching the maps:
//! which Service owns which frontend, on top of the [`ServiceTable`].

use std::collections::{BTreeMap, HashMap, HashSet};

use dataplane_common::service::{FrontendKey, MAX_BACKENDS, MAX_FRONTENDS};
use rudder_dataplane_maps::{MapContents, MapWrite};

use super::{
    service_state::{NodeAddresses, ServiceName, ServiceState},
    table::{ServiceTable, TableError, WriteBatch},
};

/// Plans the map writes that make the maps serve a set of Services,
/// without touching the maps (pure and testable): which Service owns which
/// frontend, on top of the [`ServiceTable`].
#[derive(Debug)]
pub struct MapWritePlanner {
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

impl MapWritePlanner {
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
        let wanted: HashSet<&ServiceName> = services.iter().map(|s| &s.name).collect();
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
        for (key, spec) in &frontends {
            match self.owners.get(key) {
                Some(owner) if *owner != service.name => {
                    tracing::warn!(service = %service.name, owner = %owner, "frontend already served by another service; ignored");
                    continue;
                }
                _ => {}
            }
            self.table.set_frontend(*key, spec, batch)?;
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::dataplane::services::service_state::{
        Endpoint, EndpointPort, LoadBalancing, Protocol, ServicePort,
    };

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
        let mut planner = MapWritePlanner::new(NodeAddresses {
            node_port_addrs: vec![],
        });
        planner.resync(&[service("web", 2)]).expect("ids");
        let writes = planner.resync(&[service("web-v2", 3)]).expect("ids");
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
        let owners = planner.frontend_owners();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].2.name, "web-v2");
    }

    #[test]
    fn deleting_one_service_among_many_looks_only_at_its_own_backends() {
        let mut planner = MapWritePlanner::new(NodeAddresses {
            node_port_addrs: vec![],
        });
        for i in 0..50u8 {
            let mut s = service(&format!("s{i}"), i);
            s.cluster_ip = Some(Ipv4Addr::new(10, 96, 1, i));
            planner.upsert(&s).expect("ids");
        }
        let writes = planner.delete(&ServiceName::new("default", "s7"));
        let deleted_backends = writes
            .iter()
            .filter(|w| matches!(w, MapWrite::DeleteBackend { .. }))
            .count();
        assert_eq!(deleted_backends, 1);
    }
}
