//! The MVCC state machine on redb: the current keys, the history of every
//! revision (what watchers replay), leases and the revision counters.
//!
//! A batch of commands is first *staged*: applied against a [`View`] into a
//! [`Delta`], which yields every command's result without changing
//! anything. The caller then makes the batch durable and publishes the
//! delta, either by writing it into redb in one fsynced transaction
//! ([`Mvcc::write_durably`], Raft) or, once the write-ahead log holds the
//! batch, by adding it to the pending layer that every view sees
//! ([`Mvcc::add_pending`], single replica) and writing that into redb later
//! ([`Mvcc::freeze_pending`], [`Mvcc::write_frozen`]).

use std::{
    path::Path,
    sync::{Mutex, MutexGuard, PoisonError},
};

use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, WriteTransaction};

use crate::{
    codec,
    error::StoreError,
    overlay::{Delta, HISTORY, KV, LEASE_KEYS, LEASES, Layer, META, View, lease_key},
    types::{
        Command, CommandResult, Compare, CompareOp, CompareTarget, DeleteRequest, Event, EventKind,
        KeyRange, KeyValue, Op, OpResponse, PutRequest, RangeRequest, RangeResponse,
        RevisionEvents, TxnRequest, TxnResponse,
    },
};

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

/// Changes durable in the write-ahead log but not yet in redb.
#[derive(Debug, Default)]
struct Pending {
    /// Being written into redb; dropped once that committed.
    frozen: Option<Layer>,
    /// Newer changes, still growing.
    active: Layer,
}

/// What staging a batch produced.
pub(crate) struct Staged {
    /// The batch's changes to the tables.
    pub delta: Delta,
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

    /// Reads keys, at the latest revision or at `req.revision`; returns
    /// them with the revision they were read at.
    pub fn range(&self, req: &RangeRequest) -> Result<(RangeResponse, i64), StoreError> {
        let view = self.view()?;
        let current = view.meta(None, META_REVISION)?;
        if req.revision == 0 || req.revision == current {
            return Ok((range_in(&view, None, req)?, current));
        }
        let at = req.revision;
        if at < 0 {
            return Err(StoreError::InvalidRequest(format!(
                "range revision {at} must not be negative"
            )));
        }
        if at > current {
            return Err(StoreError::FutureRevision {
                requested: at,
                current,
            });
        }
        let compacted = view.meta(None, META_COMPACTED)?;
        if at < compacted {
            return Err(StoreError::Compacted {
                requested: at,
                compact_revision: compacted,
            });
        }
        Ok((range_at(&view, req, at, current)?, at))
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

    /// Reads the history of revisions `from..=to` for the keys in `range`,
    /// looking at no more than `max_revisions` revisions.
    pub fn history(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
        max_revisions: usize,
    ) -> Result<HistoryPage, StoreError> {
        let view = self.view()?;
        let compacted = view.meta(None, META_COMPACTED)?;
        if from < compacted {
            return Err(StoreError::Compacted {
                requested: from,
                compact_revision: compacted,
            });
        }
        let mut page = HistoryPage {
            revisions: Vec::new(),
            scanned_to: from - 1,
        };
        let entries = view.history(from, to, max_revisions)?;
        let complete = entries.len() < max_revisions;
        for (revision, bytes) in entries {
            page.scanned_to = revision;
            let events: Vec<Event> = codec::decode_events(&bytes)?
                .into_iter()
                .filter(|event| range.contains(&event.kv.key))
                .collect();
            if !events.is_empty() {
                page.revisions.push(RevisionEvents { revision, events });
            }
        }
        if complete {
            // Fewer entries than asked for: the whole span was read.
            page.scanned_to = to;
        }
        Ok(page)
    }

    /// Applies `commands` against the current state without changing it:
    /// the results, the events and the changes to make.
    pub fn stage(&self, commands: &[Command]) -> Result<Staged, StoreError> {
        let view = self.view()?;
        let mut batch = Batch::new(&view)?;
        let mut results = Vec::with_capacity(commands.len());
        let mut events = Vec::new();
        for command in commands {
            let result = batch.apply(command);
            if let Ok((_, Some(revision))) = &result {
                events.push(revision.clone());
            }
            results.push(result.map(|(result, _)| result));
        }
        Ok(Staged {
            delta: batch.finish(),
            results,
            events,
        })
    }

    /// Writes `delta` into redb in one fsynced transaction, with `extra`
    /// writing further tables (Raft's applied log id) in the same one.
    pub fn write_durably(
        &self,
        delta: &Delta,
        extra: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.write(delta, Durability::Immediate, extra)
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

    /// A value of Raft's bookkeeping table.
    pub fn raft_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RAFT_META)?;
        Ok(table.get(name)?.map(|v| v.value().to_vec()))
    }

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

/// A batch being staged: reads see the view plus the batch's own changes;
/// the counters are cached so a batch reads and writes them once.
struct Batch<'view> {
    view: &'view View,
    delta: Delta,
    revision: i64,
    compacted: i64,
    last_lease: i64,
    /// The counters as the batch found them.
    found: [i64; 3],
}

impl<'view> Batch<'view> {
    fn new(view: &'view View) -> Result<Self, StoreError> {
        let found = [
            view.meta(None, META_REVISION)?,
            view.meta(None, META_COMPACTED)?,
            view.meta(None, META_LAST_LEASE)?,
        ];
        Ok(Self {
            view,
            delta: Delta::default(),
            revision: found[0],
            compacted: found[1],
            last_lease: found[2],
            found,
        })
    }

    /// The batch's changes, with the counters that moved.
    fn finish(mut self) -> Delta {
        let now = [self.revision, self.compacted, self.last_lease];
        for ((name, found), now) in [META_REVISION, META_COMPACTED, META_LAST_LEASE]
            .into_iter()
            .zip(self.found)
            .zip(now)
        {
            if found != now {
                self.delta.meta.insert(name, now);
            }
        }
        self.delta
    }

    fn lease_ttl(&self, id: i64) -> Result<Option<i64>, StoreError> {
        self.view.lease_ttl(Some(&self.delta), id)
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
                if self.lease_ttl(id)?.is_some() {
                    return Err(StoreError::LeaseExists(id));
                }
                self.delta.leases.insert(id, Some(*ttl));
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
                if self.lease_ttl(*id)?.is_none() {
                    return Err(StoreError::LeaseNotFound(*id));
                }
                let keys = self.view.lease_keys_of(Some(&self.delta), *id)?;
                let next = self.revision + 1;
                let mut events = Vec::new();
                for key in keys {
                    self.delete_key(&key, next, &mut events)?;
                }
                self.delta.leases.insert(*id, None);
                let events = self.commit_revision(next, events);
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
                // History below the new compaction point is hidden from
                // now on and removed when the batch reaches redb.
                self.delta.history.retain(|kept, _| *kept >= *revision);
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
            match op {
                Op::Put(PutRequest { lease, .. })
                    if *lease != 0 && self.lease_ttl(*lease)?.is_none() =>
                {
                    return Err(StoreError::LeaseNotFound(*lease));
                }
                Op::Range(req) if req.revision != 0 => {
                    return Err(StoreError::InvalidRequest(
                        "a range inside a transaction reads the current revision; leave its revision at 0".to_owned(),
                    ));
                }
                _ => {}
            }
        }
        let next = self.revision + 1;
        let mut events = Vec::new();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                Op::Range(req) => OpResponse::Range(range_in(self.view, Some(&self.delta), req)?),
                Op::Put(put) => OpResponse::Put {
                    prev_kv: self.put(put, next, &mut events)?,
                },
                Op::Delete(DeleteRequest { range }) => {
                    let mut prev_kvs = Vec::new();
                    for key in keys_in(self.view, Some(&self.delta), range)? {
                        if let Some(prev) = self.delete_key(&key, next, &mut events)? {
                            prev_kvs.push(prev);
                        }
                    }
                    OpResponse::Delete { prev_kvs }
                }
            });
        }
        let events = self.commit_revision(next, events);
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
    fn commit_revision(&mut self, next: i64, events: Vec<Event>) -> Option<RevisionEvents> {
        if events.is_empty() {
            return None;
        }
        self.delta
            .history
            .insert(next, codec::encode_events(&events));
        self.revision = next;
        Some(RevisionEvents {
            revision: next,
            events,
        })
    }

    fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        match self.view.kv_get(Some(&self.delta), key)? {
            Some(record) => Ok(Some(codec::decode_record(key, &record)?)),
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
        self.delta
            .kv
            .insert(put.key.clone(), Some(codec::encode_record(&kv)));
        if let Some(prev) = &prev
            && prev.lease != 0
            && prev.lease != put.lease
        {
            self.delta
                .lease_keys
                .insert(lease_key(prev.lease, &put.key), false);
        }
        if put.lease != 0 {
            self.delta
                .lease_keys
                .insert(lease_key(put.lease, &put.key), true);
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
        self.delta.kv.insert(key.to_vec(), None);
        if prev.lease != 0 {
            self.delta
                .lease_keys
                .insert(lease_key(prev.lease, key), false);
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

fn keys_in(view: &View, top: Option<&Delta>, range: &KeyRange) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut keys = Vec::new();
    view.kv_scan(top, range, &mut |key, _| {
        keys.push(key.to_vec());
        Ok(true)
    })?;
    Ok(keys)
}

/// Answers `req` from records visited in key order.
struct RangeCollector<'req> {
    req: &'req RangeRequest,
    limit: usize,
    response: RangeResponse,
}

impl<'req> RangeCollector<'req> {
    fn new(req: &'req RangeRequest) -> Self {
        Self {
            req,
            limit: usize::try_from(req.limit).unwrap_or(0),
            response: RangeResponse::default(),
        }
    }

    fn add(&mut self, kv: impl FnOnce() -> Result<KeyValue, StoreError>) -> Result<(), StoreError> {
        self.response.count += 1;
        if self.req.count_only {
            return Ok(());
        }
        if self.limit != 0 && self.response.kvs.len() >= self.limit {
            self.response.more = true;
            return Ok(());
        }
        let mut kv = kv()?;
        if self.req.keys_only {
            kv.value = Vec::new();
        }
        self.response.kvs.push(kv);
        Ok(())
    }
}

fn range_in(
    view: &View,
    top: Option<&Delta>,
    req: &RangeRequest,
) -> Result<RangeResponse, StoreError> {
    let mut collector = RangeCollector::new(req);
    view.kv_scan(top, &req.range, &mut |key, record| {
        collector.add(|| codec::decode_record(key, record))?;
        Ok(true)
    })?;
    Ok(collector.response)
}

/// Reads `req` as the store was at revision `at` (`compacted <= at <
/// current`): today's records, with every change after `at` undone from
/// the history (each event carries the record it replaced).
fn range_at(
    view: &View,
    req: &RangeRequest,
    at: i64,
    current: i64,
) -> Result<RangeResponse, StoreError> {
    let mut records = std::collections::BTreeMap::new();
    view.kv_scan(None, &req.range, &mut |key, record| {
        records.insert(key.to_vec(), Some(codec::decode_record(key, record)?));
        Ok(true)
    })?;
    let mut later = view.history(at + 1, current, usize::MAX)?;
    later.reverse();
    for (_, bytes) in later {
        for event in codec::decode_events(&bytes)?.into_iter().rev() {
            if req.range.contains(&event.kv.key) {
                records.insert(event.kv.key, event.prev_kv);
            }
        }
    }
    let mut collector = RangeCollector::new(req);
    for kv in records.into_values().flatten() {
        collector.add(|| Ok(kv))?;
    }
    Ok(collector.response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Command {
        Command::Txn(TxnRequest {
            success: vec![Op::Put(PutRequest {
                key: key.into(),
                value: value.into(),
                lease: 0,
            })],
            ..TxnRequest::default()
        })
    }

    fn delete(key: &str) -> Command {
        Command::Txn(TxnRequest {
            success: vec![Op::Delete(DeleteRequest {
                range: KeyRange::key(key),
            })],
            ..TxnRequest::default()
        })
    }

    fn keys(view: &View) -> Vec<String> {
        let mut keys = Vec::new();
        view.kv_scan(None, &KeyRange::prefix("/"), &mut |key, _| {
            keys.push(String::from_utf8_lossy(key).into_owned());
            Ok(true)
        })
        .expect("scan");
        keys
    }

    fn log(mvcc: &Mvcc, commands: &[Command], wal_seq: i64) {
        let staged = mvcc.stage(commands).expect("stage");
        assert!(staged.results.iter().all(Result::is_ok));
        mvcc.add_pending(staged.delta, wal_seq);
    }

    #[test]
    fn pending_changes_read_the_same_before_during_and_after_reaching_redb() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.redb");
        let mvcc = Mvcc::open(&path).expect("open");
        log(&mvcc, &[put("/a", "1"), put("/b", "1")], 1);
        let frozen = mvcc.freeze_pending().expect("something pending");
        assert!(
            mvcc.freeze_pending().is_none(),
            "one frozen layer at a time"
        );
        log(&mvcc, &[delete("/a"), put("/c", "1")], 2);
        let while_frozen = mvcc.view().expect("view");
        mvcc.write_frozen(&frozen, true).expect("write frozen");
        let after = mvcc.view().expect("view");
        for view in [&while_frozen, &after] {
            assert_eq!(keys(view), vec!["/b", "/c"]);
            assert_eq!(view.meta(None, META_REVISION).expect("revision"), 4);
        }
        let history = mvcc
            .history(&KeyRange::prefix("/"), 1, 10, 100)
            .expect("history");
        let revisions: Vec<i64> = history.revisions.iter().map(|r| r.revision).collect();
        assert_eq!(revisions, vec![1, 2, 3, 4]);
        assert_eq!(history.scanned_to, 10);
        // redb holds what was written: the first record, not the second
        // (the write-ahead log replays that one after a restart).
        assert_eq!(mvcc.wal_seq().expect("seq"), 1);
        drop((while_frozen, after, mvcc));
        let reopened = Mvcc::open(&path).expect("reopen");
        assert_eq!(keys(&reopened.view().expect("view")), vec!["/a", "/b"]);
        assert_eq!(reopened.revision().expect("revision"), 2);
    }

    #[test]
    fn compaction_hides_history_at_once_and_removes_it_from_redb_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mvcc = Mvcc::open(&dir.path().join("state.redb")).expect("open");
        log(&mvcc, &[put("/a", "1"), put("/a", "2"), put("/a", "3")], 1);
        log(&mvcc, &[Command::Compact { revision: 3 }], 2);
        assert!(matches!(
            mvcc.history(&KeyRange::prefix("/"), 2, 3, 10),
            Err(StoreError::Compacted {
                compact_revision: 3,
                ..
            })
        ));
        let frozen = mvcc.freeze_pending().expect("pending");
        mvcc.write_frozen(&frozen, true).expect("write");
        let page = mvcc
            .history(&KeyRange::prefix("/"), 3, 3, 10)
            .expect("history");
        assert_eq!(page.revisions.len(), 1);
        let txn = mvcc.db.begin_read().expect("read");
        let history = txn.open_table(HISTORY).expect("history");
        assert_eq!(history.len().expect("len"), 1, "revisions 1 and 2 are gone");
    }
}
