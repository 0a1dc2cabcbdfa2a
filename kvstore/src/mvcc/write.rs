//! Making staged changes durable: at once in one fsynced redb
//! transaction (Raft), or through the pending layers that views see while
//! the write-ahead log holds them (single replica).

use std::sync::PoisonError;

use redb::{Durability, WriteTransaction};

use crate::{
    error::StoreError,
    overlay::{Delta, HISTORY, KV, LEASE_KEYS, LEASES, Layer, META},
};

use super::{META_COMPACTED, META_WAL_SEQ, Mvcc};

/// Changes durable in the write-ahead log but not yet in redb.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// Being written into redb; dropped once that committed.
    pub(super) frozen: Option<Layer>,
    /// Newer changes, still growing.
    pub(super) active: Layer,
}

impl Mvcc {
    /// Writes `delta` into redb in one transaction, with `extra` writing
    /// further tables (Raft's applied log id) in the same one. `durable`:
    /// fsynced, with everything written before; otherwise only handed to
    /// the operating system, and a crash returns redb to its last fsynced
    /// state (Raft replays the rest from its log).
    pub fn write_delta(
        &self,
        delta: &Delta,
        durable: bool,
        extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        self.write(delta, durability, extra)
    }

    fn write(
        &self,
        delta: &Delta,
        durability: Durability,
        extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(durability);
        write_delta(&txn, delta)?;
        extra(&txn)?;
        txn.commit()?;
        Ok(())
    }

    /// Publishes changes whose write-ahead-log record (`wal_seq`) is
    /// durable: every view sees them from now on. Returns the rows pending.
    pub fn add_pending(&self, mut delta: Delta, wal_seq: i64) -> usize {
        delta.meta.insert(META_WAL_SEQ, wal_seq);
        let active = self.pending().active.clone();
        let mut active = active.write().unwrap_or_else(PoisonError::into_inner);
        active.absorb(delta);
        active.rows()
    }

    /// Stops the pending changes from growing so they can be written into
    /// redb; `None` if there are none or earlier ones are still being
    /// written.
    pub fn freeze_pending(&self) -> Option<Layer> {
        let mut pending = self.pending();
        let empty = pending
            .active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty();
        if pending.frozen.is_some() || empty {
            return None;
        }
        let frozen = std::mem::take(&mut pending.active);
        pending.frozen = Some(frozen.clone());
        Some(frozen)
    }

    /// Writes the frozen changes into redb; once committed, views stop
    /// layering them. `durable`: fsynced, with everything written before;
    /// otherwise they are only handed to the operating system (redb keeps
    /// the last fsynced state across a crash, and the write-ahead log
    /// still holds the rest). On failure they stay frozen (and visible)
    /// for another attempt.
    pub fn write_frozen(&self, frozen: &Layer, durable: bool) -> Result<(), StoreError> {
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        {
            let delta = frozen.read().unwrap_or_else(PoisonError::into_inner);
            self.write(&delta, durability, |_| Ok(()))?;
        }
        let mut pending = self.pending();
        if pending
            .frozen
            .as_ref()
            .is_some_and(|layer| std::sync::Arc::ptr_eq(layer, frozen))
        {
            pending.frozen = None;
        }
        Ok(())
    }

    /// Makes everything written into redb so far durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.write(&Delta::default(), Durability::Immediate, |_| Ok(()))
    }
}

/// Writes every change of `delta` into the tables of `txn`.
fn write_delta(txn: &WriteTransaction, delta: &Delta) -> Result<(), StoreError> {
    let Delta {
        kv,
        history,
        leases,
        lease_keys,
        meta,
    } = delta;
    {
        let mut table = txn.open_table(KV)?;
        for (key, record) in kv {
            match record {
                Some(record) => table.insert(key.as_slice(), record.as_slice())?,
                None => table.remove(key.as_slice())?,
            };
        }
    }
    {
        let mut table = txn.open_table(HISTORY)?;
        for (revision, events) in history {
            table.insert(revision, events.as_slice())?;
        }
        if let Some(compacted) = meta.get(META_COMPACTED) {
            table.retain_in(..*compacted, |_, _| false)?;
        }
    }
    {
        let mut table = txn.open_table(LEASES)?;
        for (id, ttl) in leases {
            match ttl {
                Some(ttl) => table.insert(id, ttl)?,
                None => table.remove(id)?,
            };
        }
    }
    {
        let mut table = txn.open_table(LEASE_KEYS)?;
        for (row, present) in lease_keys {
            if *present {
                table.insert(row.as_slice(), ())?;
            } else {
                table.remove(row.as_slice())?;
            }
        }
    }
    let mut table = txn.open_table(META)?;
    for (name, value) in meta {
        table.insert(*name, value)?;
    }
    Ok(())
}
