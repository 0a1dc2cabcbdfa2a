//! The MVCC state machine on redb: the current keys, the history of every
//! revision (what watchers replay), leases and the revision counters.
//!
//! A batch of commands is first *staged*: applied against a [`View`] into a
//! [`Delta`], which yields every command's result without changing
//! anything. The caller then makes the batch durable and publishes the
//! delta, either by writing it into redb in one transaction
//! ([`Mvcc::write_delta`], Raft: fsynced only now and then, the Raft log
//! being what makes a write durable) or, once the write-ahead log holds the
//! batch, by adding it to the pending layer that every view sees
//! ([`Mvcc::add_pending`], single replica) and writing that into redb later
//! ([`Mvcc::freeze_pending`], [`Mvcc::write_frozen`]).
//!
//! The rooms: [`read`] answers ranges and history pages, [`staging`] turns
//! commands into a delta and results, [`write`] makes deltas durable (at
//! once or through the pending layers), [`snapshot`] exports and imports
//! the whole key space for Raft.

mod read;
mod snapshot;
mod staging;
mod write;

#[cfg(test)]
mod tests;

use std::{
    path::Path,
    sync::{Mutex, MutexGuard, PoisonError},
};

use redb::Database;

use crate::{
    error::StoreError,
    overlay::{HISTORY, KV, LEASE_KEYS, LEASES, META, View},
};

pub(crate) use snapshot::Snapshot;
pub(crate) use staging::Staged;
use write::Pending;

/// Raft's bookkeeping of the state machine (last applied log id,
/// membership), written in the same transactions as the state it describes.
pub(crate) const RAFT_META: redb::TableDefinition<'_, &str, &[u8]> =
    redb::TableDefinition::new("raft_meta");

/// Bytes of redb page cache. Reads of recent writes are served from the
/// pending layers, and the operating system caches the file; a small cache
/// keeps resident memory low.
const CACHE_SIZE: usize = 4 << 20;

const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";
const META_LAST_LEASE: &str = "last_lease";
const META_WAL_SEQ: &str = "wal_seq";

/// The key-value state machine. Cheap to share: redb serialises writers and
/// lets readers run alongside them on a consistent snapshot.
#[derive(Debug)]
pub(crate) struct Mvcc {
    db: Database,
    pending: Mutex<Pending>,
}

/// A lease's granted TTL and the keys attached to it.
pub(crate) type LeaseRecord = (i64, Vec<Vec<u8>>);

impl Mvcc {
    /// Opens (or creates) the state machine in `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // redb's default cache grows to a gigabyte; the working set of a
        // control plane is far smaller, and resident memory matters here.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_SIZE)
            .create(path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(KV)?;
            txn.open_table(HISTORY)?;
            txn.open_table(LEASES)?;
            txn.open_table(LEASE_KEYS)?;
            txn.open_table(META)?;
            txn.open_table(RAFT_META)?;
        }
        txn.commit()?;
        Ok(Self {
            db,
            pending: Mutex::new(Pending::default()),
        })
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A consistent read of everything published so far.
    pub fn view(&self) -> Result<View, StoreError> {
        let pending = self.pending();
        let layers = pending
            .frozen
            .iter()
            .chain(std::iter::once(&pending.active))
            .cloned()
            .collect();
        // Opened under the lock, so no layer this view lacks can have been
        // written into redb before its snapshot (see `overlay`).
        let txn = self.db.begin_read()?;
        drop(pending);
        View::new(&txn, layers)
    }

    /// The revision of the last committed write (0 for an empty store).
    pub fn revision(&self) -> Result<i64, StoreError> {
        self.view()?.meta(None, META_REVISION)
    }

    /// The oldest revision whose history is still kept (0: nothing compacted).
    pub fn compacted(&self) -> Result<i64, StoreError> {
        self.view()?.meta(None, META_COMPACTED)
    }

    /// The sequence number of the last write-ahead-log record whose effects
    /// redb holds (single-replica mode); right after opening, the last one
    /// it holds durably.
    pub fn wal_seq(&self) -> Result<i64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(META_WAL_SEQ)?.map_or(0, |v| v.value()))
    }

    /// Every lease with its granted TTL.
    pub fn leases(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        self.view()?.leases()
    }

    /// A lease's granted TTL and attached keys, `None` if it does not exist.
    pub fn lease(&self, id: i64) -> Result<Option<LeaseRecord>, StoreError> {
        let view = self.view()?;
        let Some(ttl) = view.lease_ttl(None, id)? else {
            return Ok(None);
        };
        Ok(Some((ttl, view.lease_keys_of(None, id)?)))
    }

    /// A value of Raft's bookkeeping table.
    pub fn raft_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RAFT_META)?;
        Ok(table.get(name)?.map(|v| v.value().to_vec()))
    }
}
