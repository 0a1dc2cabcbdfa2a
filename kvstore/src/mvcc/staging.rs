//! Staging: applying a batch of commands to a view without changing it,
//! which yields every command's result, the events and the delta to write.

use crate::{
    codec,
    error::StoreError,
    overlay::{Delta, View, lease_key},
    types::{
        Command, CommandResult, Compare, CompareOp, CompareTarget, DeleteRequest, Event, EventKind,
        KeyValue, Op, OpResponse, PutRequest, RevisionEvents, TxnRequest, TxnResponse,
    },
};

use super::{
    META_COMPACTED, META_LAST_LEASE, META_REVISION, Mvcc,
    read::{keys_in, range_in},
};

/// What staging a batch produced.
pub(crate) struct Staged {
    /// The batch's changes to the tables.
    pub delta: Delta,
    /// One result per command, in order.
    pub results: Vec<Result<CommandResult, StoreError>>,
    /// The revisions the batch created, in order, for the watchers.
    pub events: Vec<RevisionEvents>,
}

impl Mvcc {
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
