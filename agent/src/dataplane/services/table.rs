//! `ServiceTable`: what the service maps hold, kept in memory, and the
//! minimal, ordered map writes that take them from one state to the next.
//!
//! Writes come out in phases so that a packet arriving between any two of
//! them sees a consistent table (docs/architecture.md, "Service
//! translation"):
//! 1. backends (new or changed),
//! 2. slots, Maglev tables and reverse-NAT entries,
//! 3. frontend entries (which publish the new backend count),
//! 4. deletion of frontends, then of their stale slots, tables, reverse NAT,
//! 5. deletion of backends nothing references any more.
//!
//! Slots are edited in place: a removed backend's slot gets the last slot's
//! backend and the last slot is dropped, so removing one of N backends
//! costs one slot write, one count update and one slot delete, not N writes.
//!
//! One cohesive thing despite its length: the table's state, its restore
//! from the maps and its diff are one invariant (ids, reference counts and
//! slots agree with what the maps hold), and a third of the file is its
//! tests.

use std::collections::{BTreeMap, HashMap};

use dataplane_common::service::{
    Backend, BackendSlotKey, Frontend, FrontendKey, MaglevTable, ReverseNat, ipv4_from_net,
    ipv4_to_net, port_from_net, port_to_net,
};
use rudder_dataplane_maps::{MapContents, MapWrite};

use super::{
    ids::IdAllocator,
    maglev,
    service_state::{BackendKey, FrontendSpec, Protocol},
};

/// Writes collected per phase; [`WriteBatch::into_writes`] orders them.
#[derive(Debug, Default)]
pub struct WriteBatch {
    backends: Vec<MapWrite>,
    tables: Vec<MapWrite>,
    frontends: Vec<MapWrite>,
    removals: Vec<MapWrite>,
    backend_removals: Vec<MapWrite>,
}

impl WriteBatch {
    /// The writes in the order that keeps every intermediate state valid.
    pub fn into_writes(self) -> Vec<MapWrite> {
        let Self {
            backends,
            tables,
            frontends,
            removals,
            backend_removals,
        } = self;
        [backends, tables, frontends, removals, backend_removals].concat()
    }
}

#[derive(Clone, Debug)]
struct FrontendState {
    value: Frontend,
    reverse_nat: ReverseNat,
    /// Backend ids; slot `i + 1` holds `slots[i]`.
    slots: Vec<u32>,
    /// Draining backends (terminating or not ready) kept for established flows.
    draining: Vec<u32>,
    maglev: Option<Box<MaglevTable>>,
}

#[derive(Clone, Debug)]
struct BackendState {
    id: u32,
    value: Backend,
    refs: u32,
}

/// Errors from the table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TableError {
    /// Out of frontend ids (the frontend map is full).
    #[error("no frontend id left: all {0} are in use")]
    FrontendsFull(u32),
    /// Out of backend ids (the backend map is full).
    #[error("no backend id left: all {0} are in use")]
    BackendsFull(u32),
}

/// What the service maps hold.
#[derive(Debug)]
pub struct ServiceTable {
    frontends: HashMap<FrontendKey, FrontendState>,
    backends: BTreeMap<BackendKey, BackendState>,
    backend_by_id: HashMap<u32, BackendKey>,
    frontend_ids: IdAllocator,
    backend_ids: IdAllocator,
    /// Backends whose references dropped to zero (or were restored with
    /// none): the only ones `collect_unused_backends` needs to look at.
    unreferenced: Vec<BackendKey>,
}

impl ServiceTable {
    /// An empty table for maps of the given capacities.
    pub fn new(max_frontends: u32, max_backends: u32) -> Self {
        Self {
            frontends: HashMap::new(),
            backends: BTreeMap::new(),
            backend_by_id: HashMap::new(),
            frontend_ids: IdAllocator::new(max_frontends),
            backend_ids: IdAllocator::new(max_backends),
            unreferenced: Vec::new(),
        }
    }

    /// Rebuilds the table from the maps a previous agent left, keeping every
    /// id so established flows keep their backends. Entries that belong to
    /// nothing go into `batch` as deletions.
    pub fn restore(
        max_frontends: u32,
        max_backends: u32,
        contents: MapContents,
        batch: &mut WriteBatch,
    ) -> Self {
        let mut table = Self::new(max_frontends, max_backends);
        for (id, value) in contents.backends {
            let Some(protocol) = Protocol::from_number(value.proto) else {
                batch.backend_removals.push(MapWrite::DeleteBackend { id });
                continue;
            };
            let key = BackendKey {
                addr: ipv4_from_net(value.addr).into(),
                port: port_from_net(value.port),
                protocol,
            };
            table.backend_ids.claim(id);
            table.backend_by_id.insert(id, key);
            table
                .backends
                .insert(key, BackendState { id, value, refs: 0 });
        }
        let slots: HashMap<BackendSlotKey, u32> = contents.slots.into_iter().collect();
        let reverse: HashMap<u32, ReverseNat> = contents.reverse_nat.into_iter().collect();
        let mut live_ids = std::collections::HashSet::new();
        for (key, value) in contents.frontends {
            let mut state = FrontendState {
                value,
                reverse_nat: reverse.get(&value.id).copied().unwrap_or_default(),
                slots: Vec::new(),
                draining: Vec::new(),
                maglev: None,
            };
            for slot in 1..=u32::from(value.backend_count) {
                let backend = slots.get(&BackendSlotKey {
                    frontend_id: value.id,
                    slot,
                });
                match backend.and_then(|id| table.backend_by_id.get(id).map(|k| (*id, *k))) {
                    Some((id, bkey)) => {
                        state.slots.push(id);
                        if let Some(b) = table.backends.get_mut(&bkey) {
                            b.refs += 1;
                        }
                    }
                    // A hole: the frontend is rewritten by the next sync.
                    None => break,
                }
            }
            table.frontend_ids.claim(value.id);
            live_ids.insert(value.id);
            table.frontends.insert(key, state);
        }
        for (key, _) in slots {
            let in_use = table
                .frontends
                .values()
                .any(|f| f.value.id == key.frontend_id && key.slot as usize <= f.slots.len());
            if !in_use {
                batch.removals.push(MapWrite::DeleteSlot { key });
            }
        }
        for frontend_id in reverse.keys().filter(|id| !live_ids.contains(id)) {
            batch.removals.push(MapWrite::DeleteReverseNat {
                frontend_id: *frontend_id,
            });
        }
        for frontend_id in contents
            .maglev
            .into_iter()
            .filter(|id| !live_ids.contains(id))
        {
            batch.removals.push(MapWrite::DeleteMaglev { frontend_id });
        }
        table.unreferenced = table
            .backends
            .iter()
            .filter(|(_, b)| b.refs == 0)
            .map(|(k, _)| *k)
            .collect();
        table
    }

    /// Makes the frontend at `key` look like `spec`.
    ///
    /// # Errors
    /// When the maps are out of ids; nothing is changed then.
    pub fn set_frontend(
        &mut self,
        key: FrontendKey,
        spec: &FrontendSpec,
        batch: &mut WriteBatch,
    ) -> Result<(), TableError> {
        let existing = self.frontends.get(&key).cloned();
        let id = match &existing {
            Some(state) => state.value.id,
            None => self
                .frontend_ids
                .allocate()
                .ok_or(TableError::FrontendsFull(self.frontend_ids.max))?,
        };
        // Acquire first, release after: a backend moving between the active
        // and draining lists keeps its id.
        let mut active = Vec::with_capacity(spec.active.len());
        for (bkey, flags) in &spec.active {
            active.push((*bkey, self.acquire_backend(*bkey, *flags, batch)?));
        }
        let mut draining = Vec::with_capacity(spec.draining.len());
        for (bkey, flags) in &spec.draining {
            draining.push(self.acquire_backend(*bkey, *flags, batch)?);
        }
        let (old_slots, old_draining, old_maglev, old_reverse, old_value) = match existing {
            Some(s) => (
                s.slots,
                s.draining,
                s.maglev,
                Some(s.reverse_nat),
                Some(s.value),
            ),
            None => (Vec::new(), Vec::new(), None, None, None),
        };
        let new_ids: Vec<u32> = active.iter().map(|(_, id)| *id).collect();
        let slots = edit_slots(&old_slots, &new_ids);
        for (i, backend_id) in slots.iter().enumerate() {
            if old_slots.get(i) != Some(backend_id) {
                batch.tables.push(MapWrite::UpsertSlot {
                    key: BackendSlotKey {
                        frontend_id: id,
                        slot: i as u32 + 1,
                    },
                    backend_id: *backend_id,
                });
            }
        }
        for slot in slots.len()..old_slots.len() {
            batch.removals.push(MapWrite::DeleteSlot {
                key: BackendSlotKey {
                    frontend_id: id,
                    slot: slot as u32 + 1,
                },
            });
        }
        let maglev_wanted = spec.flags & dataplane_common::service::FRONTEND_MAGLEV != 0;
        let maglev = if maglev_wanted {
            let table = Box::new(maglev::build(&active));
            if old_maglev.as_ref() != Some(&table) {
                batch.tables.push(MapWrite::UpsertMaglev {
                    frontend_id: id,
                    table: table.clone(),
                });
            }
            Some(table)
        } else {
            if old_maglev.is_some() {
                batch
                    .removals
                    .push(MapWrite::DeleteMaglev { frontend_id: id });
            }
            None
        };
        let reverse_nat = ReverseNat {
            addr: ipv4_to_net(spec.addr.octets()),
            port: port_to_net(spec.port),
            pad: 0,
        };
        if old_reverse != Some(reverse_nat) {
            batch.tables.push(MapWrite::UpsertReverseNat {
                frontend_id: id,
                value: reverse_nat,
            });
        }
        let value = Frontend {
            id,
            backend_count: u16::try_from(slots.len()).unwrap_or(u16::MAX),
            flags: spec.flags,
            affinity_timeout_s: spec.affinity_timeout_s,
            pad: 0,
        };
        if old_value != Some(value) {
            batch
                .frontends
                .push(MapWrite::UpsertFrontend { key, value });
        }
        for backend_id in old_slots.iter().chain(&old_draining) {
            self.release_backend(*backend_id);
        }
        self.frontends.insert(
            key,
            FrontendState {
                value,
                reverse_nat,
                slots,
                draining,
                maglev,
            },
        );
        Ok(())
    }

    /// Removes the frontend at `key`, if there is one.
    pub fn remove_frontend(&mut self, key: FrontendKey, batch: &mut WriteBatch) {
        let Some(state) = self.frontends.remove(&key) else {
            return;
        };
        let id = state.value.id;
        batch.removals.push(MapWrite::DeleteFrontend { key });
        for slot in 1..=state.slots.len() {
            batch.removals.push(MapWrite::DeleteSlot {
                key: BackendSlotKey {
                    frontend_id: id,
                    slot: slot as u32,
                },
            });
        }
        if state.maglev.is_some() {
            batch
                .removals
                .push(MapWrite::DeleteMaglev { frontend_id: id });
        }
        batch
            .removals
            .push(MapWrite::DeleteReverseNat { frontend_id: id });
        for backend_id in state.slots.iter().chain(&state.draining) {
            self.release_backend(*backend_id);
        }
        self.frontend_ids.release(id);
    }

    /// Deletes backends that no frontend references any more. Call once at
    /// the end of a batch, so a backend moving between frontends in the
    /// same batch keeps its id.
    pub fn collect_unused_backends(&mut self, batch: &mut WriteBatch) {
        for key in std::mem::take(&mut self.unreferenced) {
            if self.backends.get(&key).is_some_and(|b| b.refs == 0)
                && let Some(state) = self.backends.remove(&key)
            {
                self.backend_by_id.remove(&state.id);
                self.backend_ids.release(state.id);
                batch
                    .backend_removals
                    .push(MapWrite::DeleteBackend { id: state.id });
            }
        }
    }

    /// Keys of every frontend in the table.
    pub fn frontend_keys(&self) -> Vec<FrontendKey> {
        self.frontends.keys().copied().collect()
    }

    /// Frontend ids and their keys.
    pub fn frontend_ids(&self) -> impl Iterator<Item = (u32, FrontendKey)> + '_ {
        self.frontends.iter().map(|(k, s)| (s.value.id, *k))
    }

    /// Whether a backend id is in the table.
    pub fn has_backend(&self, id: u32) -> bool {
        self.backend_by_id.contains_key(&id)
    }

    /// Number of frontends, slots and backends (map occupancy).
    pub fn occupancy(&self) -> (usize, usize, usize) {
        let slots = self.frontends.values().map(|f| f.slots.len()).sum();
        (self.frontends.len(), slots, self.backends.len())
    }

    fn acquire_backend(
        &mut self,
        key: BackendKey,
        flags: u8,
        batch: &mut WriteBatch,
    ) -> Result<u32, TableError> {
        let value = Backend {
            addr: ipv4_to_net(key.addr.octets()),
            port: port_to_net(key.port),
            proto: key.protocol.number(),
            flags,
        };
        if let Some(state) = self.backends.get_mut(&key) {
            state.refs += 1;
            if state.value != value {
                state.value = value;
                batch.backends.push(MapWrite::UpsertBackend {
                    id: state.id,
                    backend: value,
                });
            }
            return Ok(state.id);
        }
        let id = self
            .backend_ids
            .allocate()
            .ok_or(TableError::BackendsFull(self.backend_ids.max))?;
        self.backends
            .insert(key, BackendState { id, value, refs: 1 });
        self.backend_by_id.insert(id, key);
        batch
            .backends
            .push(MapWrite::UpsertBackend { id, backend: value });
        Ok(id)
    }

    fn release_backend(&mut self, id: u32) {
        let Some(key) = self.backend_by_id.get(&id).copied() else {
            return;
        };
        if let Some(state) = self.backends.get_mut(&key) {
            state.refs = state.refs.saturating_sub(1);
            if state.refs == 0 {
                self.unreferenced.push(key);
            }
        }
    }
}

/// The new slot list: survivors stay where they are, a removed backend's
/// place is filled by the last slot, newcomers are appended.
fn edit_slots(old: &[u32], wanted: &[u32]) -> Vec<u32> {
    let wanted_set: std::collections::HashSet<u32> = wanted.iter().copied().collect();
    let mut slots = old.to_vec();
    let mut i = 0;
    while i < slots.len() {
        if wanted_set.contains(&slots[i]) {
            i += 1;
        } else {
            slots.swap_remove(i);
        }
    }
    let present: std::collections::HashSet<u32> = slots.iter().copied().collect();
    slots.extend(wanted.iter().copied().filter(|id| !present.contains(id)));
    slots
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::dataplane::services::service_state::{Protocol, frontend_key};

    fn backend(last: u8) -> (BackendKey, u8) {
        (
            BackendKey {
                addr: Ipv4Addr::new(10, 244, 1, last),
                port: 8080,
                protocol: Protocol::Tcp,
            },
            0,
        )
    }

    fn spec(active: &[u8]) -> FrontendSpec {
        FrontendSpec {
            flags: 0,
            affinity_timeout_s: 0,
            addr: Ipv4Addr::new(10, 96, 0, 10),
            port: 80,
            active: active.iter().map(|b| backend(*b)).collect(),
            draining: Vec::new(),
        }
    }

    fn key() -> FrontendKey {
        frontend_key(Ipv4Addr::new(10, 96, 0, 10), 80, Protocol::Tcp)
    }

    fn apply(table: &mut ServiceTable, d: &FrontendSpec) -> Vec<MapWrite> {
        let mut batch = WriteBatch::default();
        table.set_frontend(key(), d, &mut batch).expect("ids");
        table.collect_unused_backends(&mut batch);
        batch.into_writes()
    }

    fn kinds(writes: &[MapWrite]) -> Vec<&'static str> {
        writes
            .iter()
            .map(|w| match w {
                MapWrite::UpsertBackend { .. } => "backend",
                MapWrite::UpsertSlot { .. } => "slot",
                MapWrite::UpsertMaglev { .. } => "maglev",
                MapWrite::UpsertReverseNat { .. } => "revnat",
                MapWrite::UpsertFrontend { .. } => "frontend",
                MapWrite::DeleteFrontend { .. } => "-frontend",
                MapWrite::DeleteSlot { .. } => "-slot",
                MapWrite::DeleteMaglev { .. } => "-maglev",
                MapWrite::DeleteReverseNat { .. } => "-revnat",
                MapWrite::DeleteBackend { .. } => "-backend",
            })
            .collect()
    }

    #[test]
    fn a_new_service_writes_backends_then_slots_then_the_frontend() {
        let mut table = ServiceTable::new(100, 100);
        let writes = apply(&mut table, &spec(&[1, 2, 3]));
        assert_eq!(
            kinds(&writes),
            [
                "backend", "backend", "backend", "slot", "slot", "slot", "revnat", "frontend"
            ]
        );
    }

    #[test]
    fn an_unchanged_service_writes_nothing() {
        let mut table = ServiceTable::new(100, 100);
        apply(&mut table, &spec(&[1, 2, 3]));
        assert_eq!(apply(&mut table, &spec(&[1, 2, 3])), Vec::new());
    }

    #[test]
    fn adding_a_backend_appends_one_slot_and_bumps_the_count() {
        let mut table = ServiceTable::new(100, 100);
        apply(&mut table, &spec(&[1, 2, 3]));
        let writes = apply(&mut table, &spec(&[1, 2, 3, 4]));
        assert_eq!(kinds(&writes), ["backend", "slot", "frontend"]);
        let MapWrite::UpsertSlot { key, .. } = &writes[1] else {
            panic!("{writes:?}")
        };
        assert_eq!(key.slot, 4);
    }

    #[test]
    fn removing_a_middle_backend_moves_the_last_slot_into_its_place() {
        let mut table = ServiceTable::new(100, 100);
        apply(&mut table, &spec(&[1, 2, 3]));
        let writes = apply(&mut table, &spec(&[1, 3]));
        assert_eq!(kinds(&writes), ["slot", "frontend", "-slot", "-backend"]);
        let MapWrite::UpsertSlot { key, .. } = &writes[0] else {
            panic!("{writes:?}")
        };
        assert_eq!(key.slot, 2, "slot 2 now holds what slot 3 held");
        let MapWrite::DeleteSlot { key } = &writes[2] else {
            panic!("{writes:?}")
        };
        assert_eq!(key.slot, 3);
        let MapWrite::UpsertFrontend { value, .. } = &writes[1] else {
            panic!("{writes:?}")
        };
        assert_eq!(value.backend_count, 2);
    }

    #[test]
    fn a_draining_backend_leaves_the_slots_but_stays_in_the_backend_map() {
        let mut table = ServiceTable::new(100, 100);
        apply(&mut table, &spec(&[1, 2]));
        let mut d = spec(&[1]);
        let (k, _) = backend(2);
        d.draining
            .push((k, dataplane_common::service::BACKEND_DRAINING));
        let writes = apply(&mut table, &d);
        assert_eq!(
            kinds(&writes),
            ["backend", "frontend", "-slot"],
            "{writes:?}"
        );
        assert!(matches!(writes[0], MapWrite::UpsertBackend { backend, .. }
            if backend.flags & dataplane_common::service::BACKEND_DRAINING != 0));
    }

    #[test]
    fn removing_a_frontend_deletes_it_before_its_slots_and_backends() {
        let mut table = ServiceTable::new(100, 100);
        apply(&mut table, &spec(&[1, 2]));
        let mut batch = WriteBatch::default();
        table.remove_frontend(key(), &mut batch);
        table.collect_unused_backends(&mut batch);
        assert_eq!(
            kinds(&batch.into_writes()),
            [
                "-frontend",
                "-slot",
                "-slot",
                "-revnat",
                "-backend",
                "-backend"
            ]
        );
    }

    #[test]
    fn a_backend_shared_by_two_frontends_lives_until_both_release_it() {
        let mut table = ServiceTable::new(100, 100);
        apply(&mut table, &spec(&[1]));
        let other = frontend_key(Ipv4Addr::new(10, 96, 0, 11), 80, Protocol::Tcp);
        let mut batch = WriteBatch::default();
        table
            .set_frontend(other, &spec(&[1]), &mut batch)
            .expect("ids");
        table.collect_unused_backends(&mut batch);
        assert_eq!(kinds(&batch.into_writes()), ["slot", "revnat", "frontend"]);
        let writes = apply(&mut table, &spec(&[]));
        assert_eq!(
            kinds(&writes),
            ["frontend", "-slot"],
            "still used by the other frontend"
        );
    }

    #[test]
    fn restoring_from_maps_keeps_ids_and_sweeps_orphans() {
        let mut table = ServiceTable::new(100, 100);
        let first = apply(&mut table, &spec(&[1, 2]));
        let mut contents = MapContents::default();
        for write in &first {
            match write {
                MapWrite::UpsertBackend { id, backend } => contents.backends.push((*id, *backend)),
                MapWrite::UpsertSlot { key, backend_id } => {
                    contents.slots.push((*key, *backend_id))
                }
                MapWrite::UpsertReverseNat { frontend_id, value } => {
                    contents.reverse_nat.push((*frontend_id, *value));
                }
                MapWrite::UpsertFrontend { key, value } => contents.frontends.push((*key, *value)),
                _ => {}
            }
        }
        // Leftovers of something long gone.
        contents.slots.push((
            BackendSlotKey {
                frontend_id: 77,
                slot: 1,
            },
            1,
        ));
        contents.reverse_nat.push((77, ReverseNat::default()));
        let mut batch = WriteBatch::default();
        let mut restored = ServiceTable::restore(100, 100, contents, &mut batch);
        assert_eq!(kinds(&batch.into_writes()), ["-slot", "-revnat"]);
        assert_eq!(
            apply(&mut restored, &spec(&[1, 2])),
            Vec::new(),
            "same ids, nothing to write"
        );
    }
}
