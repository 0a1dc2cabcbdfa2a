//! The whole key space as one value: what a Raft snapshot carries.

use redb::{Durability, ReadableTable, ReadableTableMetadata, WriteTransaction};

use crate::{
    codec,
    error::StoreError,
    overlay::{HISTORY, KV, LEASE_KEYS, LEASES, META, View, lease_key},
    types::KeyValue,
};

use super::{META_COMPACTED, META_LAST_LEASE, META_REVISION, Mvcc, RAFT_META};

/// A snapshot with Raft's bookkeeping rows (name, JSON value).
pub(crate) type Exported = (Snapshot, Vec<(String, Vec<u8>)>);

/// The whole key space at one revision (Raft snapshots).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Snapshot {
    /// Revision of the state.
    pub revision: i64,
    /// Highest lease id handed out.
    pub last_lease: i64,
    /// Every live key.
    pub kvs: Vec<KeyValue>,
    /// Every lease with its TTL.
    pub leases: Vec<(i64, i64)>,
}

impl Mvcc {
    /// Every live key and lease, with Raft's bookkeeping, all from one read
    /// transaction (a Raft snapshot; replicated stores keep nothing
    /// pending).
    pub fn export(&self) -> Result<Exported, StoreError> {
        let txn = self.db.begin_read()?;
        let raft_meta = {
            let table = txn.open_table(RAFT_META)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (name, value) = entry?;
                out.push((name.value().to_owned(), value.value().to_vec()));
            }
            out
        };
        let view = View::new(&txn, Vec::new())?;
        let kv = txn.open_table(KV)?;
        let mut snapshot = Snapshot {
            revision: view.meta(None, META_REVISION)?,
            last_lease: view.meta(None, META_LAST_LEASE)?,
            kvs: Vec::with_capacity(usize::try_from(kv.len()?).unwrap_or(0)),
            leases: view.leases()?,
        };
        for entry in kv.iter()? {
            let (key, record) = entry?;
            snapshot
                .kvs
                .push(codec::decode_record(key.value(), record.value())?);
        }
        Ok((snapshot, raft_meta))
    }

    /// Replaces the whole state with `snapshot` (a replica catching up).
    /// History before the snapshot is gone, so the snapshot's revision
    /// becomes the compaction point: watchers from earlier re-list.
    pub fn import(
        &self,
        snapshot: &Snapshot,
        extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        txn.delete_table(KV)?;
        txn.delete_table(HISTORY)?;
        txn.delete_table(LEASES)?;
        txn.delete_table(LEASE_KEYS)?;
        {
            let mut kv = txn.open_table(KV)?;
            let mut lease_keys = txn.open_table(LEASE_KEYS)?;
            for record in &snapshot.kvs {
                kv.insert(
                    record.key.as_slice(),
                    codec::encode_record(record).as_slice(),
                )?;
                if record.lease != 0 {
                    lease_keys.insert(lease_key(record.lease, &record.key).as_slice(), ())?;
                }
            }
            let mut leases = txn.open_table(LEASES)?;
            for (id, ttl) in &snapshot.leases {
                leases.insert(id, ttl)?;
            }
            txn.open_table(HISTORY)?;
            let mut meta = txn.open_table(META)?;
            meta.insert(META_REVISION, snapshot.revision)?;
            meta.insert(META_COMPACTED, snapshot.revision + 1)?;
            meta.insert(META_LAST_LEASE, snapshot.last_lease)?;
        }
        extra(&txn)?;
        txn.commit()?;
        Ok(())
    }
}
