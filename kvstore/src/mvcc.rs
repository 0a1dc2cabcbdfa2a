//! The MVCC state machine on redb: the current keys, the history of every
//! revision (what watchers replay), leases and the revision counters.
//!
//! Every batch of commands is applied in one redb write transaction, so a
//! batch commits with one fsync (group commit) and a crash leaves either all
//! of it or none of it.

use std::path::Path;

use redb::{
    Database, Durability, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
    WriteTransaction,
};

use crate::{
    codec,
    error::StoreError,
    types::{
        Command, CommandResult, Compare, CompareOp, CompareTarget, DeleteRequest, Event, EventKind,
        KeyRange, KeyValue, Op, OpResponse, PutRequest, RangeRequest, RangeResponse,
        RevisionEvents, TxnRequest, TxnResponse,
    },
};

/// Current value of every live key.
const KV: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("kv");
/// Events of every revision since the last compaction.
const HISTORY: TableDefinition<'_, i64, &[u8]> = TableDefinition::new("history");
/// Lease id -> granted TTL in seconds.
const LEASES: TableDefinition<'_, i64, i64> = TableDefinition::new("leases");
/// Lease id (8 bytes big-endian) followed by a key attached to it.
const LEASE_KEYS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("lease_keys");
/// Counters, see the `META_*` names.
const META: TableDefinition<'_, &str, i64> = TableDefinition::new("meta");

/// Raft's bookkeeping of the state machine (last applied log id,
/// membership), written in the same transactions as the state it describes.
pub(crate) const RAFT_META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("raft_meta");

/// Bytes of redb page cache.
const CACHE_SIZE: usize = 16 << 20;

const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";
const META_LAST_LEASE: &str = "last_lease";
const META_WAL_SEQ: &str = "wal_seq";

/// The key-value state machine. Cheap to share: redb serialises writers and
/// lets readers run alongside them on a consistent snapshot.
#[derive(Debug)]
pub(crate) struct Mvcc {
    db: Database,
}

/// What applying a batch produced.
pub(crate) struct Applied {
    /// One result per command, in order.
    pub results: Vec<Result<CommandResult, StoreError>>,
    /// The revisions the batch created, in order, for the watchers.
    pub events: Vec<RevisionEvents>,
}

/// A lease's granted TTL and the keys attached to it.
pub(crate) type LeaseRecord = (i64, Vec<Vec<u8>>);

/// Revisions read from the history for a watcher.
pub(crate) struct HistoryPage {
    /// Revisions with events in the watcher's range.
    pub revisions: Vec<RevisionEvents>,
    /// The last revision the page looked at (matched or not).
    pub scanned_to: i64,
}

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
        Ok(Self { db })
    }

    /// The revision of the last committed write (0 for an empty store).
    pub fn revision(&self) -> Result<i64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        meta_get(&meta, META_REVISION)
    }

    /// The oldest revision whose history is still kept (0: nothing compacted).
    pub fn compacted(&self) -> Result<i64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        meta_get(&meta, META_COMPACTED)
    }

    /// The sequence number of the last write-ahead-log record whose effects
    /// are in this state (single-replica mode).
    pub fn wal_seq(&self) -> Result<i64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        meta_get(&meta, META_WAL_SEQ)
    }

    /// Records, inside a transaction's `extra` step, which write-ahead-log
    /// record the transaction applies.
    pub fn set_wal_seq(txn: &WriteTransaction, seq: i64) -> Result<(), StoreError> {
        let mut meta = txn.open_table(META)?;
        meta.insert(META_WAL_SEQ, seq)?;
        Ok(())
    }

    /// Reads keys from the latest committed state; returns them with the
    /// revision they were read at.
    pub fn range(&self, req: &RangeRequest) -> Result<(RangeResponse, i64), StoreError> {
        let txn = self.db.begin_read()?;
        let kv = txn.open_table(KV)?;
        let meta = txn.open_table(META)?;
        Ok((range_in(&kv, req)?, meta_get(&meta, META_REVISION)?))
    }

    /// Every lease with its granted TTL.
    pub fn leases(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        let txn = self.db.begin_read()?;
        let leases = txn.open_table(LEASES)?;
        let mut out = Vec::new();
        for entry in leases.iter()? {
            let (id, ttl) = entry?;
            out.push((id.value(), ttl.value()));
        }
        Ok(out)
    }

    /// A lease's granted TTL and attached keys, `None` if it does not exist.
    pub fn lease(&self, id: i64) -> Result<Option<LeaseRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let leases = txn.open_table(LEASES)?;
        let Some(ttl) = leases.get(id)? else {
            return Ok(None);
        };
        let lease_keys = txn.open_table(LEASE_KEYS)?;
        let keys = lease_keys_of(&lease_keys, id)?;
        Ok(Some((ttl.value(), keys)))
    }

    /// Reads the history of revisions `from..=to` for the keys in `range`,
    /// looking at no more than `max_revisions` revisions.
    pub fn history(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
        max_revisions: usize,
    ) -> Result<HistoryPage, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let compacted = meta_get(&meta, META_COMPACTED)?;
        if from < compacted {
            return Err(StoreError::Compacted {
                requested: from,
                compact_revision: compacted,
            });
        }
        let history = txn.open_table(HISTORY)?;
        let mut page = HistoryPage {
            revisions: Vec::new(),
            scanned_to: from - 1,
        };
        for entry in history.range(from..=to)?.take(max_revisions) {
            let (revision, bytes) = entry?;
            let revision = revision.value();
            page.scanned_to = revision;
            let events: Vec<Event> = codec::decode_events(bytes.value())?
                .into_iter()
                .filter(|event| range.contains(&event.kv.key))
                .collect();
            if !events.is_empty() {
                page.revisions.push(RevisionEvents { revision, events });
            }
        }
        if page.revisions.len() < max_revisions && page.scanned_to < to {
            // Fewer entries than asked for: the whole span was read.
            page.scanned_to = to;
        }
        Ok(page)
    }

    /// Applies `commands` in one write transaction. `durable` makes the
    /// commit wait for fsync; `extra` writes further tables in the same
    /// transaction (Raft's applied log id), so both commit atomically.
    pub fn apply(
        &self,
        commands: &[Command],
        durable: bool,
        extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<Applied, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        });
        let mut applied = Applied {
            results: Vec::with_capacity(commands.len()),
            events: Vec::new(),
        };
        {
            let mut tables = Tables::open(&txn)?;
            for command in commands {
                let result = tables.apply(command);
                if let Ok((_, Some(events))) = &result {
                    applied.events.push(events.clone());
                }
                applied.results.push(result.map(|(result, _)| result));
            }
            tables.flush_meta()?;
        }
        extra(&txn)?;
        txn.commit()?;
        Ok(applied)
    }

    /// A value of Raft's bookkeeping table.
    pub fn raft_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RAFT_META)?;
        Ok(table.get(name)?.map(|v| v.value().to_vec()))
    }

    /// Every live key and lease, with Raft's bookkeeping, all from one read
    /// transaction (a Raft snapshot).
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
        let kv = txn.open_table(KV)?;
        let leases = txn.open_table(LEASES)?;
        let meta = txn.open_table(META)?;
        let mut snapshot = Snapshot {
            revision: meta_get(&meta, META_REVISION)?,
            last_lease: meta_get(&meta, META_LAST_LEASE)?,
            kvs: Vec::with_capacity(usize::try_from(kv.len()?).unwrap_or(0)),
            leases: Vec::new(),
        };
        for entry in kv.iter()? {
            let (key, record) = entry?;
            snapshot
                .kvs
                .push(codec::decode_record(key.value(), record.value())?);
        }
        for entry in leases.iter()? {
            let (id, ttl) = entry?;
            snapshot.leases.push((id.value(), ttl.value()));
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

/// The tables of one write transaction, with the counters cached so a batch
/// reads and writes them once.
struct Tables<'txn> {
    kv: Table<'txn, &'static [u8], &'static [u8]>,
    history: Table<'txn, i64, &'static [u8]>,
    leases: Table<'txn, i64, i64>,
    lease_keys: Table<'txn, &'static [u8], ()>,
    meta: Table<'txn, &'static str, i64>,
    revision: i64,
    compacted: i64,
    last_lease: i64,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        let meta = txn.open_table(META)?;
        let revision = meta_get(&meta, META_REVISION)?;
        let compacted = meta_get(&meta, META_COMPACTED)?;
        let last_lease = meta_get(&meta, META_LAST_LEASE)?;
        Ok(Self {
            kv: txn.open_table(KV)?,
            history: txn.open_table(HISTORY)?,
            leases: txn.open_table(LEASES)?,
            lease_keys: txn.open_table(LEASE_KEYS)?,
            meta,
            revision,
            compacted,
            last_lease,
        })
    }

    fn flush_meta(&mut self) -> Result<(), StoreError> {
        self.meta.insert(META_REVISION, self.revision)?;
        self.meta.insert(META_COMPACTED, self.compacted)?;
        self.meta.insert(META_LAST_LEASE, self.last_lease)?;
        Ok(())
    }

    /// Applies one command. Every check that can fail runs before the first
    /// write, so a failed command changes nothing.
    fn apply(
        &mut self,
        command: &Command,
    ) -> Result<(CommandResult, Option<RevisionEvents>), StoreError> {
        match command {
            Command::Txn(txn) => {
                let (response, events) = self.txn(txn)?;
                Ok((CommandResult::Txn(response), events))
            }
            Command::LeaseGrant { id, ttl } => {
                if *ttl <= 0 {
                    return Err(StoreError::InvalidRequest(format!(
                        "lease TTL {ttl} must be at least 1 second"
                    )));
                }
                let id = if *id == 0 { self.last_lease + 1 } else { *id };
                if id < 0 {
                    return Err(StoreError::InvalidRequest(format!(
                        "lease id {id} must be positive"
                    )));
                }
                if self.leases.get(id)?.is_some() {
                    return Err(StoreError::LeaseExists(id));
                }
                self.leases.insert(id, ttl)?;
                self.last_lease = self.last_lease.max(id);
                Ok((
                    CommandResult::LeaseGranted {
                        id,
                        ttl: *ttl,
                        revision: self.revision,
                    },
                    None,
                ))
            }
            Command::LeaseRevoke { id } => {
                if self.leases.get(*id)?.is_none() {
                    return Err(StoreError::LeaseNotFound(*id));
                }
                let keys = lease_keys_of(&self.lease_keys, *id)?;
                let next = self.revision + 1;
                let mut events = Vec::new();
                for key in keys {
                    self.delete_key(&key, next, &mut events)?;
                }
                self.leases.remove(*id)?;
                let events = self.commit_revision(next, events)?;
                Ok((
                    CommandResult::Done {
                        revision: self.revision,
                    },
                    events,
                ))
            }
            Command::Compact { revision } => {
                if *revision > self.revision {
                    return Err(StoreError::FutureRevision {
                        requested: *revision,
                        current: self.revision,
                    });
                }
                if *revision <= self.compacted {
                    return Err(StoreError::Compacted {
                        requested: *revision,
                        compact_revision: self.compacted,
                    });
                }
                self.history.retain_in(..*revision, |_, _| false)?;
                self.compacted = *revision;
                Ok((
                    CommandResult::Done {
                        revision: self.revision,
                    },
                    None,
                ))
            }
        }
    }

    fn txn(
        &mut self,
        txn: &TxnRequest,
    ) -> Result<(TxnResponse, Option<RevisionEvents>), StoreError> {
        let mut succeeded = true;
        for compare in &txn.compare {
            if !self.compare(compare)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        for op in ops {
            if let Op::Put(PutRequest { lease, .. }) = op
                && *lease != 0
                && self.leases.get(*lease)?.is_none()
            {
                return Err(StoreError::LeaseNotFound(*lease));
            }
        }
        let next = self.revision + 1;
        let mut events = Vec::new();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                Op::Range(req) => OpResponse::Range(range_in(&self.kv, req)?),
                Op::Put(put) => OpResponse::Put {
                    prev_kv: self.put(put, next, &mut events)?,
                },
                Op::Delete(DeleteRequest { range }) => {
                    let mut prev_kvs = Vec::new();
                    for key in keys_in(&self.kv, range)? {
                        if let Some(prev) = self.delete_key(&key, next, &mut events)? {
                            prev_kvs.push(prev);
                        }
                    }
                    OpResponse::Delete { prev_kvs }
                }
            });
        }
        let events = self.commit_revision(next, events)?;
        Ok((
            TxnResponse {
                succeeded,
                responses,
                revision: self.revision,
            },
            events,
        ))
    }

    /// Records `events` as revision `next`; a command that changed nothing
    /// does not consume a revision (as in etcd).
    fn commit_revision(
        &mut self,
        next: i64,
        events: Vec<Event>,
    ) -> Result<Option<RevisionEvents>, StoreError> {
        if events.is_empty() {
            return Ok(None);
        }
        self.history
            .insert(next, codec::encode_events(&events).as_slice())?;
        self.revision = next;
        Ok(Some(RevisionEvents {
            revision: next,
            events,
        }))
    }

    fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        match self.kv.get(key)? {
            Some(record) => Ok(Some(codec::decode_record(key, record.value())?)),
            None => Ok(None),
        }
    }

    fn put(
        &mut self,
        put: &PutRequest,
        revision: i64,
        events: &mut Vec<Event>,
    ) -> Result<Option<KeyValue>, StoreError> {
        let prev = self.get(&put.key)?;
        let kv = KeyValue {
            key: put.key.clone(),
            value: put.value.clone(),
            create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(0, |p| p.version) + 1,
            lease: put.lease,
        };
        self.kv
            .insert(put.key.as_slice(), codec::encode_record(&kv).as_slice())?;
        if let Some(prev) = &prev
            && prev.lease != 0
            && prev.lease != put.lease
        {
            self.lease_keys
                .remove(lease_key(prev.lease, &put.key).as_slice())?;
        }
        if put.lease != 0 {
            self.lease_keys
                .insert(lease_key(put.lease, &put.key).as_slice(), ())?;
        }
        events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: prev.clone(),
        });
        Ok(prev)
    }

    fn delete_key(
        &mut self,
        key: &[u8],
        revision: i64,
        events: &mut Vec<Event>,
    ) -> Result<Option<KeyValue>, StoreError> {
        let Some(prev) = self.get(key)? else {
            return Ok(None);
        };
        self.kv.remove(key)?;
        if prev.lease != 0 {
            self.lease_keys
                .remove(lease_key(prev.lease, key).as_slice())?;
        }
        events.push(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.to_vec(),
                mod_revision: revision,
                ..KeyValue::default()
            },
            prev_kv: Some(prev.clone()),
        });
        Ok(Some(prev))
    }

    fn compare(&self, compare: &Compare) -> Result<bool, StoreError> {
        let current = self.get(&compare.key)?;
        let ordering = match (&compare.target, &current) {
            (CompareTarget::Value(_), None) => return Ok(false),
            (CompareTarget::Value(want), Some(kv)) => kv.value.as_slice().cmp(want.as_slice()),
            (CompareTarget::Version(want), kv) => kv.as_ref().map_or(0, |kv| kv.version).cmp(want),
            (CompareTarget::CreateRevision(want), kv) => {
                kv.as_ref().map_or(0, |kv| kv.create_revision).cmp(want)
            }
            (CompareTarget::ModRevision(want), kv) => {
                kv.as_ref().map_or(0, |kv| kv.mod_revision).cmp(want)
            }
            (CompareTarget::Lease(want), kv) => kv.as_ref().map_or(0, |kv| kv.lease).cmp(want),
        };
        Ok(match compare.op {
            CompareOp::Equal => ordering.is_eq(),
            CompareOp::NotEqual => ordering.is_ne(),
            CompareOp::Greater => ordering.is_gt(),
            CompareOp::Less => ordering.is_lt(),
        })
    }
}

fn meta_get<T: ReadableTable<&'static str, i64>>(meta: &T, name: &str) -> Result<i64, StoreError> {
    Ok(meta.get(name)?.map_or(0, |v| v.value()))
}

fn lease_key(id: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(key);
    out
}

fn lease_keys_of<T: ReadableTable<&'static [u8], ()>>(
    table: &T,
    id: i64,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let prefix = id.to_be_bytes();
    let end = (id + 1).to_be_bytes();
    let mut keys = Vec::new();
    for entry in table.range::<&[u8]>(prefix.as_slice()..end.as_slice())? {
        let (key, _) = entry?;
        keys.push(key.value()[8..].to_vec());
    }
    Ok(keys)
}

/// Iterates the records of `range` in key order.
fn for_each_in<T, F>(table: &T, range: &KeyRange, mut visit: F) -> Result<(), StoreError>
where
    T: ReadableTable<&'static [u8], &'static [u8]>,
    F: FnMut(&[u8], &[u8]) -> Result<bool, StoreError>,
{
    if range.is_single_key() {
        if let Some(record) = table.get(range.key.as_slice())? {
            visit(&range.key, record.value())?;
        }
        return Ok(());
    }
    let entries = if range.range_end == [0] {
        table.range::<&[u8]>(range.key.as_slice()..)?
    } else if range.key.as_slice() < range.range_end.as_slice() {
        table.range::<&[u8]>(range.key.as_slice()..range.range_end.as_slice())?
    } else {
        return Ok(());
    };
    for entry in entries {
        let (key, record) = entry?;
        if !visit(key.value(), record.value())? {
            break;
        }
    }
    Ok(())
}

fn keys_in<T>(table: &T, range: &KeyRange) -> Result<Vec<Vec<u8>>, StoreError>
where
    T: ReadableTable<&'static [u8], &'static [u8]>,
{
    let mut keys = Vec::new();
    for_each_in(table, range, |key, _| {
        keys.push(key.to_vec());
        Ok(true)
    })?;
    Ok(keys)
}

fn range_in<T>(table: &T, req: &RangeRequest) -> Result<RangeResponse, StoreError>
where
    T: ReadableTable<&'static [u8], &'static [u8]>,
{
    let limit = usize::try_from(req.limit).unwrap_or(0);
    let mut response = RangeResponse::default();
    for_each_in(table, &req.range, |key, record| {
        response.count += 1;
        if req.count_only {
            return Ok(true);
        }
        if limit != 0 && response.kvs.len() >= limit {
            response.more = true;
            return Ok(true);
        }
        let mut kv = codec::decode_record(key, record)?;
        if req.keys_only {
            kv.value = Vec::new();
        }
        response.kvs.push(kv);
        Ok(true)
    })?;
    Ok(response)
}
