//! [`Store`]: the handle everything else in rudder uses.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;

use crate::{
    consensus::{Consensus, ReplicaStatus},
    error::{StoreError, WatchError},
    mvcc::Mvcc,
    single::SingleNode,
    state::StateMachine,
    types::{
        Command, CommandResult, DeleteRequest, KeyRange, KeyValue, Op, OpResponse, PutRequest,
        RangeRequest, RangeResponse, TxnRequest, TxnResponse,
    },
    watch::{self, Watcher},
};

/// How a store is set up.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory holding the state (and, replicated, the Raft log).
    pub data_dir: PathBuf,
    /// Revisions that may wait for one watcher before it is cut off.
    pub watch_queue: usize,
    /// Every this often, history older than one interval is compacted;
    /// `None` keeps all history.
    pub compaction_interval: Option<Duration>,
    /// How often lease deadlines are checked.
    pub lease_check_interval: Duration,
}

impl StoreConfig {
    /// Defaults for a store in `data_dir`: 1024 queued revisions per watcher,
    /// compaction every 5 minutes (as kube-apiserver asks of etcd), lease
    /// checks every 250 ms.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            watch_queue: 1024,
            compaction_interval: Some(Duration::from_secs(300)),
            lease_check_interval: Duration::from_millis(250),
        }
    }
}

/// A lease's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease.
    pub id: i64,
    /// TTL it was granted with, in seconds.
    pub granted_ttl: i64,
    /// Seconds until it expires (as the leader counts).
    pub remaining_ttl: i64,
    /// Keys attached to it.
    pub keys: Vec<Vec<u8>>,
}

/// An etcd-like key-value store: a revision per write, ranges, transactions,
/// watches from a revision, leases and compaction; single-replica or
/// replicated with Raft. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<StateMachine>,
    consensus: Box<dyn Consensus>,
    config: StoreConfig,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().map(std::mem::take).unwrap_or_default() {
            task.abort();
        }
        self.state.hub().close();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.inner.config.data_dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens a single-replica store in `config.data_dir` (created if
    /// missing), recovering everything a previous run committed.
    ///
    /// # Errors
    /// [`StoreError::Storage`], [`StoreError::Database`] if the directory cannot be created or the
    /// database is unreadable.
    pub async fn open(config: StoreConfig) -> Result<Self, StoreError> {
        let state = open_state(&config)?;
        let consensus = SingleNode::start(state.clone(), &config.data_dir)?;
        Ok(Self::assemble(state, Box::new(consensus), config))
    }

    pub(crate) fn assemble(
        state: Arc<StateMachine>,
        consensus: Box<dyn Consensus>,
        config: StoreConfig,
    ) -> Self {
        let store = Self {
            inner: Arc::new(Inner {
                state,
                consensus,
                config,
                tasks: std::sync::Mutex::new(Vec::new()),
            }),
        };
        let weak = Arc::downgrade(&store.inner);
        let mut tasks = vec![tokio::spawn(expire_leases(
            weak.clone(),
            store.inner.config.lease_check_interval,
        ))];
        if let Some(interval) = store.inner.config.compaction_interval {
            tasks.push(tokio::spawn(compact_periodically(weak, interval)));
        }
        if let Ok(mut slot) = store.inner.tasks.lock() {
            *slot = tasks;
        }
        store
    }

    /// The last revision applied on this replica.
    pub fn revision(&self) -> i64 {
        self.inner.state.hub().published()
    }

    /// Who leads, as far as this replica knows.
    pub fn status(&self) -> ReplicaStatus {
        self.inner.consensus.status()
    }

    /// Bytes the data directory takes on disk (state, log, write-ahead
    /// log); what `etcdctl endpoint status` calls the db size.
    pub fn disk_usage(&self) -> u64 {
        fn walk(dir: &std::path::Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => walk(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.inner.config.data_dir)
    }

    /// Reads keys, linearizably: the result reflects every write
    /// acknowledged before the call. Returns the revision read at.
    ///
    /// # Errors
    /// [`StoreError::NotLeader`] / [`StoreError::Unavailable`] when replicated
    /// and no leader can confirm the read; [`StoreError::Storage`], [`StoreError::Database`].
    pub async fn range(&self, req: RangeRequest) -> Result<(RangeResponse, i64), StoreError> {
        self.inner.consensus.read_barrier().await?;
        let mvcc = self.inner.state.mvcc().clone();
        blocking(move || mvcc.range(&req)).await
    }

    /// Reads keys from what this replica has applied, without asking the
    /// leader (etcd's `serializable` range): no round trip, but it may miss
    /// writes acknowledged elsewhere. Returns the revision read at.
    ///
    /// # Errors
    /// [`StoreError::Compacted`] / [`StoreError::FutureRevision`] for a
    /// revision out of reach; [`StoreError::Storage`], [`StoreError::Database`].
    pub async fn range_serializable(
        &self,
        req: RangeRequest,
    ) -> Result<(RangeResponse, i64), StoreError> {
        let mvcc = self.inner.state.mvcc().clone();
        blocking(move || mvcc.range(&req)).await
    }

    /// Reads one key. See [`Store::range`].
    ///
    /// # Errors
    /// As [`Store::range`].
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<KeyValue>, StoreError> {
        let (mut response, _) = self
            .range(RangeRequest {
                range: KeyRange::key(key),
                ..RangeRequest::default()
            })
            .await?;
        Ok(response.kvs.pop())
    }

    /// Writes a key; returns the new revision and the previous record.
    ///
    /// # Errors
    /// [`StoreError::LeaseNotFound`] for an unknown lease, and the errors of
    /// [`Store::txn`].
    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        lease: i64,
    ) -> Result<(i64, Option<KeyValue>), StoreError> {
        let response = self
            .txn(TxnRequest {
                success: vec![Op::Put(PutRequest {
                    key: key.into(),
                    value: value.into(),
                    lease,
                })],
                ..TxnRequest::default()
            })
            .await?;
        let prev = match response.responses.into_iter().next() {
            Some(OpResponse::Put { prev_kv }) => prev_kv,
            _ => None,
        };
        Ok((response.revision, prev))
    }

    /// Deletes the keys in `range`; returns the revision afterwards and the
    /// deleted records.
    ///
    /// # Errors
    /// As [`Store::txn`].
    pub async fn delete(&self, range: KeyRange) -> Result<(i64, Vec<KeyValue>), StoreError> {
        let response = self
            .txn(TxnRequest {
                success: vec![Op::Delete(DeleteRequest { range })],
                ..TxnRequest::default()
            })
            .await?;
        let prev = match response.responses.into_iter().next() {
            Some(OpResponse::Delete { prev_kvs }) => prev_kvs,
            _ => Vec::new(),
        };
        Ok((response.revision, prev))
    }

    /// Runs a transaction: compares, then the success or failure branch,
    /// atomically at one revision. Acknowledged only once durable.
    ///
    /// # Errors
    /// [`StoreError::LeaseNotFound`], [`StoreError::NotLeader`],
    /// [`StoreError::Unavailable`], [`StoreError::Storage`], [`StoreError::Database`].
    pub async fn txn(&self, txn: TxnRequest) -> Result<TxnResponse, StoreError> {
        match self.propose(Command::Txn(txn)).await? {
            CommandResult::Txn(response) => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    /// Watches the keys in `range` from `start_revision` on (0: from the
    /// next write). Events come per revision, in order, without gaps; each
    /// carries the previous record of its key.
    ///
    /// # Errors
    /// [`WatchError::Compacted`] when `start_revision` is older than the
    /// history kept, [`WatchError::FutureRevision`] when it has not happened.
    pub fn watch(&self, range: KeyRange, start_revision: i64) -> Result<Watcher, WatchError> {
        watch::start(
            self.inner.state.mvcc().clone(),
            self.inner.state.hub().clone(),
            range,
            start_revision,
        )
    }

    /// Grants a lease of `ttl` seconds (`id` 0: the store picks one).
    ///
    /// # Errors
    /// [`StoreError::LeaseExists`], [`StoreError::InvalidRequest`] for a TTL
    /// below 1, and the errors of [`Store::txn`].
    pub async fn lease_grant(&self, id: i64, ttl: i64) -> Result<(i64, i64), StoreError> {
        match self.propose(Command::LeaseGrant { id, ttl }).await? {
            CommandResult::LeaseGranted { id, ttl, .. } => Ok((id, ttl)),
            other => Err(unexpected(&other)),
        }
    }

    /// Revokes a lease, deleting its keys at one revision.
    ///
    /// # Errors
    /// [`StoreError::LeaseNotFound`], and the errors of [`Store::txn`].
    pub async fn lease_revoke(&self, id: i64) -> Result<i64, StoreError> {
        Ok(self.propose(Command::LeaseRevoke { id }).await?.revision())
    }

    /// Restarts a lease's TTL; returns the TTL. On a follower the leader
    /// (which keeps the deadlines) is asked.
    ///
    /// # Errors
    /// [`StoreError::LeaseNotFound`]; [`StoreError::NotLeader`] /
    /// [`StoreError::Unavailable`] when no leader can be reached.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<i64, StoreError> {
        self.inner
            .consensus
            .lease_keep_alive(id)
            .await?
            .ok_or(StoreError::LeaseNotFound(id))
    }

    /// A lease's TTLs and keys, `None` if it does not exist.
    ///
    /// # Errors
    /// [`StoreError::Storage`], [`StoreError::Database`].
    pub async fn lease_time_to_live(&self, id: i64) -> Result<Option<LeaseInfo>, StoreError> {
        self.inner.consensus.read_barrier().await?;
        let mvcc = self.inner.state.mvcc().clone();
        let Some((granted_ttl, keys)) = blocking(move || mvcc.lease(id)).await? else {
            return Ok(None);
        };
        let remaining_ttl = self
            .inner
            .consensus
            .lease_remaining(id)
            .await?
            .unwrap_or(granted_ttl);
        Ok(Some(LeaseInfo {
            id,
            granted_ttl,
            remaining_ttl,
            keys,
        }))
    }

    /// Forgets history before `revision`: watches from earlier revisions
    /// fail with "compacted" afterwards.
    ///
    /// # Errors
    /// [`StoreError::Compacted`] if already compacted past it,
    /// [`StoreError::FutureRevision`] if it has not happened.
    pub async fn compact(&self, revision: i64) -> Result<(), StoreError> {
        self.propose(Command::Compact { revision })
            .await
            .map(|_| ())
    }

    /// The oldest revision a watch can start from.
    ///
    /// # Errors
    /// [`StoreError::Storage`], [`StoreError::Database`].
    pub fn compacted_revision(&self) -> Result<i64, StoreError> {
        self.inner.state.mvcc().compacted()
    }

    /// Stops background work and replication; watchers end.
    pub async fn shutdown(&self) {
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
        self.inner.consensus.shutdown().await;
        self.inner.state.hub().close();
    }

    async fn propose(&self, command: Command) -> Result<CommandResult, StoreError> {
        self.inner.consensus.propose(command).await
    }
}

pub(crate) fn open_state(config: &StoreConfig) -> Result<Arc<StateMachine>, StoreError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|err| {
        StoreError::Storage(format!(
            "creating data directory {}: {err}",
            config.data_dir.display()
        ))
    })?;
    let mvcc = Arc::new(Mvcc::open(&config.data_dir.join("state.redb"))?);
    Ok(Arc::new(StateMachine::new(mvcc, config.watch_queue)?))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| StoreError::Unavailable(format!("store task failed: {err}")))?
}

fn unexpected(result: &CommandResult) -> StoreError {
    StoreError::Storage(format!(
        "state machine answered {result:?} to another kind of command"
    ))
}

/// Revokes leases whose deadline passed, while this replica leads.
async fn expire_leases(inner: std::sync::Weak<Inner>, every: Duration) {
    let mut led = false;
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if !inner.consensus.is_leader() {
            led = false;
            continue;
        }
        let now = Instant::now();
        if !led {
            // Deadlines from before this replica led are not trustworthy.
            inner.state.leases().restart_all(now);
            led = true;
            continue;
        }
        for id in inner.state.leases().expired(now) {
            tracing::debug!(lease = id, "lease expired");
            match inner.consensus.propose(Command::LeaseRevoke { id }).await {
                Ok(_) | Err(StoreError::LeaseNotFound(_)) => inner.state.leases().remove(id),
                Err(err) => {
                    tracing::warn!(lease = id, error = %err, "revoking an expired lease failed")
                }
            }
        }
    }
}

/// Every `every`, compacts history up to the revision seen one interval
/// earlier, so watchers always have at least one interval to resume in.
async fn compact_periodically(inner: std::sync::Weak<Inner>, every: Duration) {
    let mut previous: Option<i64> = None;
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let current = inner.state.hub().published();
        if inner.consensus.is_leader()
            && let Some(target) = previous
            && target > inner.state.mvcc().compacted().unwrap_or(0)
        {
            match inner
                .consensus
                .propose(Command::Compact { revision: target })
                .await
            {
                Ok(_) => tracing::info!(revision = target, "compacted history"),
                Err(err) => tracing::warn!(revision = target, error = %err, "compaction failed"),
            }
        }
        previous = Some(current);
    }
}
