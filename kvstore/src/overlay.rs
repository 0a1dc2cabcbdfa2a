//! Changes that are durable (in the write-ahead log) but not yet written
//! into redb, and reads that see through them.
//!
//! Committing a redb transaction per write is what used to make a put slow:
//! every commit copies the B-tree paths it touches, checksums them and
//! writes them out. So the single replica makes a write durable by logging
//! it, keeps its effect on the tables as a [`Delta`] in memory, and writes
//! accumulated deltas into redb in one transaction every so often. A
//! [`View`] layers those deltas over a redb snapshot, so every read sees
//! every acknowledged write.
//!
//! Consistency of a view: the layers are taken and the redb snapshot opened
//! under one lock (see [`crate::mvcc::Mvcc::view`]), and a layer is dropped
//! only after the redb transaction holding it has committed. So the
//! snapshot is either older than a layer (the layer supplies what is
//! missing) or already contains it (the layer repeats what redb says).
//! Layers only ever receive writes newer than everything in redb.

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::Bound,
    sync::{Arc, PoisonError, RwLock, RwLockReadGuard},
};

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, TableDefinition};

use crate::{error::StoreError, types::KeyRange};

/// Current value of every live key.
pub(crate) const KV: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("kv");
/// Events of every revision since the last compaction.
pub(crate) const HISTORY: TableDefinition<'_, i64, &[u8]> = TableDefinition::new("history");
/// Lease id -> granted TTL in seconds.
pub(crate) const LEASES: TableDefinition<'_, i64, i64> = TableDefinition::new("leases");
/// Lease id (8 bytes big-endian) followed by a key attached to it.
pub(crate) const LEASE_KEYS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("lease_keys");
/// Counters, see the `META_*` names in [`crate::mvcc`].
pub(crate) const META: TableDefinition<'_, &str, i64> = TableDefinition::new("meta");

/// Changes to the tables: the newest value per key (`None`/`false`:
/// removed).
#[derive(Debug, Default)]
pub(crate) struct Delta {
    /// Key -> encoded record.
    pub kv: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Revision -> encoded events (revisions are only ever added).
    pub history: BTreeMap<i64, Vec<u8>>,
    /// Lease id -> TTL.
    pub leases: BTreeMap<i64, Option<i64>>,
    /// Lease-key rows.
    pub lease_keys: BTreeMap<Vec<u8>, bool>,
    /// Counters.
    pub meta: BTreeMap<&'static str, i64>,
}

impl Delta {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.rows() == 0 && self.meta.is_empty()
    }

    /// Rows it holds (what a write into redb has to touch).
    pub fn rows(&self) -> usize {
        self.kv.len() + self.history.len() + self.leases.len() + self.lease_keys.len()
    }

    /// Takes over `newer`, whose changes happened after these.
    pub fn absorb(&mut self, newer: Self) {
        let Self {
            kv,
            history,
            leases,
            lease_keys,
            meta,
        } = newer;
        self.kv.extend(kv);
        self.history.extend(history);
        self.leases.extend(leases);
        self.lease_keys.extend(lease_keys);
        self.meta.extend(meta);
    }
}

/// Called with each key and its encoded record; `false` stops the scan.
pub(crate) type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError> + 'a;

/// A delta shared by the writer (which fills it) and readers.
pub(crate) type Layer = Arc<RwLock<Delta>>;

fn read(layer: &Layer) -> RwLockReadGuard<'_, Delta> {
    layer.read().unwrap_or_else(PoisonError::into_inner)
}

/// A consistent read of the store: a redb snapshot with the deltas not yet
/// in it layered on top.
pub(crate) struct View {
    kv: ReadOnlyTable<&'static [u8], &'static [u8]>,
    history: ReadOnlyTable<i64, &'static [u8]>,
    leases: ReadOnlyTable<i64, i64>,
    lease_keys: ReadOnlyTable<&'static [u8], ()>,
    meta: ReadOnlyTable<&'static str, i64>,
    /// Oldest first.
    layers: Vec<Layer>,
}

impl View {
    pub fn new(txn: &ReadTransaction, layers: Vec<Layer>) -> Result<Self, StoreError> {
        Ok(Self {
            kv: txn.open_table(KV)?,
            history: txn.open_table(HISTORY)?,
            leases: txn.open_table(LEASES)?,
            lease_keys: txn.open_table(LEASE_KEYS)?,
            meta: txn.open_table(META)?,
            layers,
        })
    }

    /// Looks `key` up in `top`, then the layers from newest to oldest, and
    /// finally in redb (`base`).
    fn find<T>(
        &self,
        top: Option<&Delta>,
        lookup: impl Fn(&Delta) -> Option<T>,
        base: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(found) = top.and_then(&lookup) {
            return Ok(found);
        }
        for layer in self.layers.iter().rev() {
            if let Some(found) = lookup(&read(layer)) {
                return Ok(found);
            }
        }
        base()
    }

    /// The layers' (and `top`'s) rows in `bounds` of one table, newest
    /// value per key.
    fn overlay<K: Ord + Clone, V: Clone>(
        &self,
        top: Option<&Delta>,
        table: impl Fn(&Delta) -> &BTreeMap<K, V>,
        bounds: (Bound<&K>, Bound<&K>),
    ) -> BTreeMap<K, V> {
        let mut out = BTreeMap::new();
        for layer in &self.layers {
            let delta = read(layer);
            for (key, value) in table(&delta).range::<K, _>(bounds) {
                out.insert(key.clone(), value.clone());
            }
        }
        if let Some(top) = top {
            for (key, value) in table(top).range::<K, _>(bounds) {
                out.insert(key.clone(), value.clone());
            }
        }
        out
    }

    /// The encoded record of `key`.
    pub fn kv_get(&self, top: Option<&Delta>, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.find(
            top,
            |delta| delta.kv.get(key).cloned(),
            || Ok(self.kv.get(key)?.map(|record| record.value().to_vec())),
        )
    }

    /// Visits the live keys of `range` in key order with their encoded
    /// records, until `visit` returns `false`.
    pub fn kv_scan(
        &self,
        top: Option<&Delta>,
        range: &KeyRange,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        if range.is_single_key() {
            if let Some(record) = self.kv_get(top, &range.key)? {
                visit(&range.key, &record)?;
            }
            return Ok(());
        }
        let start = range.key.clone();
        let end = if range.range_end == [0] {
            None
        } else if range.key < range.range_end {
            Some(range.range_end.clone())
        } else {
            return Ok(());
        };
        let bounds = (
            Bound::Included(&start),
            end.as_ref().map_or(Bound::Unbounded, Bound::Excluded),
        );
        let overlay = self.overlay(top, |delta| &delta.kv, bounds);
        let base_bounds: (Bound<&[u8]>, Bound<&[u8]>) = (
            Bound::Included(start.as_slice()),
            end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        );
        let mut base = self.kv.range::<&[u8]>(base_bounds)?;
        let mut next_base = base.next().transpose()?;
        let mut overlay = overlay.into_iter().peekable();
        loop {
            let take_base = match (&next_base, overlay.peek()) {
                (None, None) => return Ok(()),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((key, _)), Some((newer, _))) => {
                    let ordering = key.value().cmp(newer.as_slice());
                    if ordering.is_eq() {
                        // The layer's version replaces redb's.
                        next_base = base.next().transpose()?;
                    }
                    ordering.is_lt()
                }
            };
            if take_base {
                if let Some((key, record)) = &next_base
                    && !visit(key.value(), record.value())?
                {
                    return Ok(());
                }
                next_base = base.next().transpose()?;
            } else if let Some((key, record)) = overlay.next()
                && let Some(record) = record
                && !visit(&key, &record)?
            {
                return Ok(());
            }
        }
    }

    /// The encoded events of revisions `from..=to`, oldest first, at most
    /// `max` of them.
    pub fn history(
        &self,
        from: i64,
        to: i64,
        max: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        // Every revision in a layer is newer than those only redb holds.
        let mut last = from - 1;
        for entry in self.history.range(from..=to)? {
            if out.len() >= max {
                return Ok(out);
            }
            let (revision, events) = entry?;
            last = revision.value();
            out.push((last, events.value().to_vec()));
        }
        let newer = self.overlay(
            None,
            |delta| &delta.history,
            (Bound::Excluded(&last), Bound::Included(&to)),
        );
        out.extend(newer.into_iter().take(max - out.len()));
        Ok(out)
    }

    /// A counter (0 if never set).
    pub fn meta(&self, top: Option<&Delta>, name: &str) -> Result<i64, StoreError> {
        self.find(
            top,
            |delta| delta.meta.get(name).copied(),
            || Ok(self.meta.get(name)?.map_or(0, |value| value.value())),
        )
    }

    /// A lease's TTL, `None` if it does not exist.
    pub fn lease_ttl(&self, top: Option<&Delta>, id: i64) -> Result<Option<i64>, StoreError> {
        self.find(
            top,
            |delta| delta.leases.get(&id).copied(),
            || Ok(self.leases.get(id)?.map(|ttl| ttl.value())),
        )
    }

    /// Every lease with its TTL.
    pub fn leases(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        let mut all = BTreeMap::new();
        for entry in self.leases.iter()? {
            let (id, ttl) = entry?;
            all.insert(id.value(), Some(ttl.value()));
        }
        all.extend(self.overlay(
            None,
            |delta| &delta.leases,
            (Bound::Unbounded, Bound::Unbounded),
        ));
        Ok(all
            .into_iter()
            .filter_map(|(id, ttl)| ttl.map(|ttl| (id, ttl)))
            .collect())
    }

    /// The keys attached to lease `id`.
    pub fn lease_keys_of(&self, top: Option<&Delta>, id: i64) -> Result<Vec<Vec<u8>>, StoreError> {
        let start = id.to_be_bytes().to_vec();
        let end = (id + 1).to_be_bytes().to_vec();
        let mut rows = BTreeSet::new();
        for entry in self
            .lease_keys
            .range::<&[u8]>(start.as_slice()..end.as_slice())?
        {
            let (row, _) = entry?;
            rows.insert(row.value().to_vec());
        }
        let overlay = self.overlay(
            top,
            |delta| &delta.lease_keys,
            (Bound::Included(&start), Bound::Excluded(&end)),
        );
        for (row, present) in overlay {
            if present {
                rows.insert(row);
            } else {
                rows.remove(&row);
            }
        }
        Ok(rows.into_iter().map(|row| row[8..].to_vec()).collect())
    }
}

/// Lease-key row of `key` attached to lease `id`.
pub(crate) fn lease_key(id: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(key);
    out
}
