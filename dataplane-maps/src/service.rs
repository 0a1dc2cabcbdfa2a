//! The pinned service maps, opened by path so any process on the node (the
//! agent, `rudderctl`) can read or write them.

use std::path::Path;

use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use dataplane_common::{
    map_names,
    service::{
        Backend, BackendSlotKey, ConntrackEntry, ConntrackKey, Frontend, FrontendKey, MaglevTable,
        NodeConfig, ReverseNat, ServiceCounters,
    },
};

use crate::{MapsError, open_pinned as open};

/// Handles on every service map of one node.
#[expect(
    missing_docs,
    reason = "each field is the map of that name in dataplane_common::map_names, whose docs say its key and value"
)]
pub struct ServiceMaps {
    pub frontends: HashMap<MapData, FrontendKey, Frontend>,
    pub slots: HashMap<MapData, BackendSlotKey, u32>,
    pub backends: HashMap<MapData, u32, Backend>,
    pub reverse_nat: HashMap<MapData, u32, ReverseNat>,
    pub maglev: HashMap<MapData, u32, MaglevTable>,
    /// CONNTRACK (LRU).
    pub conntrack: HashMap<MapData, ConntrackKey, ConntrackEntry>,
    pub counters: PerCpuArray<MapData, ServiceCounters>,
    pub node_config: Array<MapData, NodeConfig>,
}

impl ServiceMaps {
    /// Opens the maps pinned under the node directory `dir`.
    ///
    /// # Errors
    /// When a map is not pinned there or has an unexpected type.
    pub fn open(dir: &Path) -> Result<Self, MapsError> {
        Ok(Self {
            frontends: open(dir, map_names::FRONTENDS)?,
            slots: open(dir, map_names::BACKEND_SLOTS)?,
            backends: open(dir, map_names::BACKENDS)?,
            reverse_nat: open(dir, map_names::REVERSE_NAT)?,
            maglev: open(dir, map_names::MAGLEV)?,
            conntrack: open(dir, map_names::CONNTRACK)?,
            counters: open(dir, map_names::SERVICE_COUNTERS)?,
            node_config: open(dir, map_names::NODE_CONFIG)?,
        })
    }

    /// Capacities of the frontend and backend maps (their ids must stay
    /// below these).
    ///
    /// # Errors
    /// When the kernel cannot describe the maps.
    pub fn capacities(&self) -> Result<(u32, u32), MapsError> {
        use aya::maps::IterableMap as _;
        let info = |map: &MapData, name| {
            map.info()
                .map(|i| i.max_entries())
                .map_err(|source| MapsError::Map { name, source })
        };
        Ok((
            info(self.frontends.map(), map_names::FRONTENDS)?,
            info(self.backends.map(), map_names::BACKENDS)?,
        ))
    }

    /// Everything the table needs to rebuild itself after a restart.
    ///
    /// # Errors
    /// When iterating a map fails.
    pub fn contents(&self) -> Result<MapContents, MapsError> {
        let fail = |name, source| MapsError::Map { name, source };
        Ok(MapContents {
            frontends: self
                .frontends
                .iter()
                .collect::<Result<_, _>>()
                .map_err(|e| fail(map_names::FRONTENDS, e))?,
            slots: self
                .slots
                .iter()
                .collect::<Result<_, _>>()
                .map_err(|e| fail(map_names::BACKEND_SLOTS, e))?,
            backends: self
                .backends
                .iter()
                .collect::<Result<_, _>>()
                .map_err(|e| fail(map_names::BACKENDS, e))?,
            reverse_nat: self
                .reverse_nat
                .iter()
                .collect::<Result<_, _>>()
                .map_err(|e| fail(map_names::REVERSE_NAT, e))?,
            maglev: self
                .maglev
                .keys()
                .collect::<Result<_, _>>()
                .map_err(|e| fail(map_names::MAGLEV, e))?,
        })
    }

    /// Applies `writes` in order. Deleting an entry that is already gone is
    /// not an error (a restarted agent may repeat a deletion).
    ///
    /// # Errors
    /// On the first write the kernel refuses; the writes before it stay.
    pub fn apply(&mut self, writes: &[MapWrite]) -> Result<(), MapsError> {
        for write in writes {
            self.apply_one(write)?;
        }
        Ok(())
    }

    fn apply_one(&mut self, write: &MapWrite) -> Result<(), MapsError> {
        let fail = |name: &'static str| move |source| MapsError::Map { name, source };
        match write {
            MapWrite::UpsertBackend { id, backend } => self
                .backends
                .insert(id, backend, 0)
                .map_err(fail(map_names::BACKENDS)),
            MapWrite::UpsertSlot { key, backend_id } => self
                .slots
                .insert(key, backend_id, 0)
                .map_err(fail(map_names::BACKEND_SLOTS)),
            MapWrite::UpsertMaglev { frontend_id, table } => self
                .maglev
                .insert(frontend_id, table.as_ref(), 0)
                .map_err(fail(map_names::MAGLEV)),
            MapWrite::UpsertReverseNat { frontend_id, value } => self
                .reverse_nat
                .insert(frontend_id, value, 0)
                .map_err(fail(map_names::REVERSE_NAT)),
            MapWrite::UpsertFrontend { key, value } => self
                .frontends
                .insert(key, value, 0)
                .map_err(fail(map_names::FRONTENDS)),
            MapWrite::DeleteFrontend { key } => crate::ignore_missing(self.frontends.remove(key))
                .map_err(fail(map_names::FRONTENDS)),
            MapWrite::DeleteSlot { key } => crate::ignore_missing(self.slots.remove(key))
                .map_err(fail(map_names::BACKEND_SLOTS)),
            MapWrite::DeleteMaglev { frontend_id } => {
                crate::ignore_missing(self.maglev.remove(frontend_id))
                    .map_err(fail(map_names::MAGLEV))
            }
            MapWrite::DeleteReverseNat { frontend_id } => {
                crate::ignore_missing(self.reverse_nat.remove(frontend_id))
                    .map_err(fail(map_names::REVERSE_NAT))
            }
            MapWrite::DeleteBackend { id } => {
                crate::ignore_missing(self.backends.remove(id)).map_err(fail(map_names::BACKENDS))
            }
        }
    }

    /// Per-frontend counters summed over CPUs.
    ///
    /// # Errors
    /// When the counter map cannot be read.
    pub fn counters(&self, frontend_id: u32) -> Result<ServiceCounters, MapsError> {
        let values = self
            .counters
            .get(&frontend_id, 0)
            .map_err(|source| MapsError::Map {
                name: map_names::SERVICE_COUNTERS,
                source,
            })?;
        Ok(values
            .iter()
            .fold(ServiceCounters::default(), |sum, cpu| sum.add(*cpu)))
    }
}

/// One write to one map.
#[expect(
    missing_docs,
    reason = "the fields are the key and value of the map each variant names"
)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapWrite {
    /// Insert or update a backend.
    UpsertBackend { id: u32, backend: Backend },
    /// Point a slot at a backend.
    UpsertSlot {
        key: BackendSlotKey,
        backend_id: u32,
    },
    /// Insert or replace a frontend's Maglev table.
    UpsertMaglev {
        frontend_id: u32,
        table: Box<MaglevTable>,
    },
    /// Insert or update a frontend's reverse-NAT entry.
    UpsertReverseNat {
        frontend_id: u32,
        /// Address replies get as their source.
        value: ReverseNat,
    },
    /// Insert or update a frontend.
    UpsertFrontend { key: FrontendKey, value: Frontend },
    /// Remove a frontend.
    DeleteFrontend { key: FrontendKey },
    /// Remove a slot.
    DeleteSlot { key: BackendSlotKey },
    /// Remove a Maglev table.
    DeleteMaglev { frontend_id: u32 },
    /// Remove a reverse-NAT entry.
    DeleteReverseNat { frontend_id: u32 },
    /// Remove a backend.
    DeleteBackend { id: u32 },
}

/// The contents of the service maps, as read back after a restart.
#[expect(
    missing_docs,
    reason = "each field holds the entries (for MAGLEV, the keys) of the map of that name"
)]
#[derive(Debug, Default)]
pub struct MapContents {
    pub frontends: Vec<(FrontendKey, Frontend)>,
    pub slots: Vec<(BackendSlotKey, u32)>,
    pub backends: Vec<(u32, Backend)>,
    pub reverse_nat: Vec<(u32, ReverseNat)>,
    pub maglev: Vec<u32>,
}
