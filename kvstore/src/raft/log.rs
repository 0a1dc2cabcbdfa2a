//! The Raft log on redb (`raft-log.redb`): entries by index, the vote, the
//! commit index and the purge point.
//!
//! One writer thread owns every write. `append` hands its entries over and
//! returns at once (they are readable from memory until redb has them);
//! the writer takes everything queued since its last commit into one
//! fsynced transaction and only then reports the entries flushed. So
//! concurrent proposals share one fsync (group commit), on the leader and
//! on followers alike, and no fsync ever runs on a runtime thread: the Raft
//! core keeps sending heartbeats while the disk is busy.

#![expect(
    clippy::result_large_err,
    reason = "openraft's storage traits return its StorageError; the helpers return the same"
)]

use std::{
    collections::BTreeMap,
    fmt::Debug,
    ops::RangeBounds,
    path::Path,
    sync::{Arc, Mutex, PoisonError, mpsc},
};

use openraft::{
    Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
    storage::{LogFlushed, RaftLogStorage},
};
use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::oneshot;

use super::TypeConfig;

/// Log index -> JSON entry.
const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
/// `vote`, `committed`, `last_purged`: JSON values.
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

/// The most entries one transaction of the writer takes.
const MAX_BATCH_ENTRIES: usize = 4096;

type Result<T> = std::result::Result<T, StorageError<u64>>;

/// The durable Raft log of one replica.
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
    /// Appended but not yet committed by the writer, by index.
    unflushed: Arc<Mutex<BTreeMap<u64, Entry<TypeConfig>>>>,
    writer: mpsc::Sender<Op>,
}

/// What the writer thread is asked to do, in order.
enum Op {
    Append(Vec<Entry<TypeConfig>>, LogFlushed<TypeConfig>),
    /// Written with the next batch; not fsynced on its own.
    Committed(Option<LogId<u64>>),
    Vote(Vote<u64>, oneshot::Sender<std::io::Result<()>>),
    /// Delete entries from this index on.
    Truncate(u64, oneshot::Sender<std::io::Result<()>>),
    /// Delete entries up to this one, and remember it.
    Purge(LogId<u64>, oneshot::Sender<std::io::Result<()>>),
}

fn read_err(err: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::read_logs(&err).into()
}

fn write_err(err: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::write_logs(&err).into()
}

fn io_err(err: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(err.to_string())
}

impl LogStore {
    /// Opens (or creates) the log in `path` and starts its writer thread,
    /// which ends once every handle is dropped.
    pub fn open(path: &Path) -> std::result::Result<Self, crate::StoreError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(LOG)?;
            txn.open_table(META)?;
        }
        txn.commit()?;
        let db = Arc::new(db);
        let unflushed = Arc::new(Mutex::new(BTreeMap::new()));
        let (writer, ops) = mpsc::channel();
        let worker = Writer {
            db: db.clone(),
            unflushed: Arc::clone(&unflushed),
        };
        std::thread::Builder::new()
            .name("raft-log".to_owned())
            .spawn(move || worker.run(&ops))
            .map_err(|err| crate::StoreError::Storage(format!("starting the log writer: {err}")))?;
        Ok(Self {
            db,
            unflushed,
            writer,
        })
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let meta = txn.open_table(META).map_err(read_err)?;
        match meta.get(name).map_err(read_err)? {
            Some(bytes) => Ok(Some(
                serde_json::from_slice(bytes.value()).map_err(read_err)?,
            )),
            None => Ok(None),
        }
    }

    fn unflushed(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry<TypeConfig>>> {
        self.unflushed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, op: Op) -> std::io::Result<()> {
        self.writer
            .send(op)
            .map_err(|_| io_err("the raft log writer has stopped"))
    }

    /// Sends `op` (made with a reply sender) and waits for the writer.
    async fn ask(
        &self,
        op: impl FnOnce(oneshot::Sender<std::io::Result<()>>) -> Op,
    ) -> std::io::Result<()> {
        let (reply, done) = oneshot::channel();
        self.send(op(reply))?;
        done.await
            .map_err(|_| io_err("the raft log writer has stopped"))?
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        // Memory first: an entry the writer commits meanwhile is then in
        // redb when it is read below, one it has not is in the copy.
        let fresh: Vec<Entry<TypeConfig>> = self
            .unflushed()
            .range(range.clone())
            .map(|(_, entry)| entry.clone())
            .collect();
        let first_fresh = fresh.first().map_or(u64::MAX, |entry| entry.log_id.index);
        let txn = self.db.begin_read().map_err(read_err)?;
        let log = txn.open_table(LOG).map_err(read_err)?;
        let mut entries = Vec::new();
        for item in log.range(range).map_err(read_err)? {
            let (index, bytes) = item.map_err(read_err)?;
            if index.value() >= first_fresh {
                break;
            }
            entries.push(serde_json::from_slice(bytes.value()).map_err(read_err)?);
        }
        entries.extend(fresh);
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let last_purged: Option<LogId<u64>> = self.meta("last_purged")?;
        if let Some((_, entry)) = self.unflushed().last_key_value() {
            return Ok(LogState {
                last_purged_log_id: last_purged,
                last_log_id: Some(entry.log_id),
            });
        }
        let txn = self.db.begin_read().map_err(read_err)?;
        let log = txn.open_table(LOG).map_err(read_err)?;
        let last = match log.last().map_err(read_err)? {
            Some((_, bytes)) => {
                let entry: Entry<TypeConfig> =
                    serde_json::from_slice(bytes.value()).map_err(read_err)?;
                Some(entry.log_id)
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<()> {
        self.ask(|reply| Op::Vote(*vote, reply))
            .await
            .map_err(|err| StorageIOError::write_vote(&err).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>> {
        self.meta("vote")
    }

    /// Keeps the commit index, so a restarted replica applies what was
    /// committed before it answers anything, and a leader restarted in its
    /// old term does not start from what it had applied (openraft falls
    /// back to that when nothing is saved: a read index below writes it
    /// had already acknowledged).
    ///
    /// Not fsynced on its own, which would add an fsync to every write:
    /// the writer puts it into its next transaction, and the next append
    /// carries it to disk. A crash before that loses only how far the index
    /// had moved since, which the leader's read index covers (see
    /// `raft::Shared::read_index_locally`).
    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<()> {
        self.send(Op::Committed(committed)).map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>> {
        Ok(self.meta::<Option<LogId<u64>>>("committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        {
            let mut unflushed = self.unflushed();
            for entry in &entries {
                unflushed.insert(entry.log_id.index, entry.clone());
            }
        }
        self.send(Op::Append(entries, callback)).map_err(write_err)
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<()> {
        self.unflushed().split_off(&log_id.index);
        self.ask(|reply| Op::Truncate(log_id.index, reply))
            .await
            .map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<()> {
        {
            let mut unflushed = self.unflushed();
            let kept = unflushed.split_off(&(log_id.index.saturating_add(1)));
            *unflushed = kept;
        }
        self.ask(|reply| Op::Purge(log_id, reply))
            .await
            .map_err(write_err)
    }
}

/// The writer thread's side.
struct Writer {
    db: Arc<Database>,
    unflushed: Arc<Mutex<BTreeMap<u64, Entry<TypeConfig>>>>,
}

/// Appends (and commit indexes) the writer commits together.
#[derive(Default)]
struct Batch {
    entries: Vec<Entry<TypeConfig>>,
    callbacks: Vec<LogFlushed<TypeConfig>>,
    committed: Option<Option<LogId<u64>>>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.committed.is_none()
    }
}

impl Writer {
    fn run(&self, ops: &mpsc::Receiver<Op>) {
        let mut held = None;
        loop {
            let Some(first) = held.take().or_else(|| ops.recv().ok()) else {
                return;
            };
            let mut batch = Batch::default();
            let mut next = Some(first);
            // Everything queued up to the next op that is not an append
            // (or the batch is full) goes into one transaction.
            while let Some(op) = next.take() {
                match op {
                    Op::Append(entries, callback) => {
                        batch.entries.extend(entries);
                        batch.callbacks.push(callback);
                    }
                    Op::Committed(committed) => batch.committed = Some(committed),
                    other if batch.is_empty() => {
                        self.run_alone(other);
                        break;
                    }
                    other => {
                        held = Some(other);
                        break;
                    }
                }
                if batch.entries.len() < MAX_BATCH_ENTRIES {
                    next = ops.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.write_batch(batch);
            }
        }
    }

    fn write_batch(&self, batch: Batch) {
        let Batch {
            entries,
            callbacks,
            committed,
        } = batch;
        let durability = if entries.is_empty() {
            Durability::None
        } else {
            Durability::Immediate
        };
        let result = self.transaction(durability, |txn| {
            let mut log = txn.open_table(LOG)?;
            for entry in &entries {
                let bytes = serde_json::to_vec(entry).map_err(io_err)?;
                log.insert(entry.log_id.index, bytes.as_slice())?;
            }
            if let Some(committed) = committed {
                let mut meta = txn.open_table(META)?;
                let bytes = serde_json::to_vec(&committed).map_err(io_err)?;
                meta.insert("committed", bytes.as_slice())?;
            }
            Ok(())
        });
        if result.is_ok() {
            let mut unflushed = self
                .unflushed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for entry in &entries {
                // Unless a truncation replaced it meanwhile.
                if unflushed
                    .get(&entry.log_id.index)
                    .is_some_and(|kept| kept.log_id == entry.log_id)
                {
                    unflushed.remove(&entry.log_id.index);
                }
            }
        }
        for callback in callbacks {
            callback.log_io_completed(match &result {
                Ok(()) => Ok(()),
                Err(err) => Err(io_err(err)),
            });
        }
    }

    fn run_alone(&self, op: Op) {
        match op {
            Op::Vote(vote, reply) => {
                let result = self.transaction(Durability::Immediate, |txn| {
                    let bytes = serde_json::to_vec(&vote).map_err(io_err)?;
                    txn.open_table(META)?.insert("vote", bytes.as_slice())?;
                    Ok(())
                });
                let _ = reply.send(result);
            }
            Op::Truncate(from, reply) => {
                let result = self.transaction(Durability::Immediate, |txn| {
                    txn.open_table(LOG)?.retain_in(from.., |_, _| false)?;
                    Ok(())
                });
                let _ = reply.send(result);
            }
            Op::Purge(log_id, reply) => {
                let result = self.transaction(Durability::Immediate, |txn| {
                    let bytes = serde_json::to_vec(&log_id).map_err(io_err)?;
                    txn.open_table(META)?
                        .insert("last_purged", bytes.as_slice())?;
                    txn.open_table(LOG)?
                        .retain_in(..=log_id.index, |_, _| false)?;
                    Ok(())
                });
                let _ = reply.send(result);
            }
            Op::Append(..) | Op::Committed(_) => {}
        }
    }

    fn transaction(
        &self,
        durability: Durability,
        write: impl FnOnce(&WriteTransaction) -> std::result::Result<(), StoreIoError>,
    ) -> std::io::Result<()> {
        let run = || -> std::result::Result<(), StoreIoError> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(durability);
            write(&txn)?;
            txn.commit()?;
            Ok(())
        };
        run().map_err(|err| io_err(err.0))
    }
}

/// Any failure inside a writer transaction, as text.
struct StoreIoError(String);

impl<E: std::fmt::Display> From<E> for StoreIoError {
    fn from(err: E) -> Self {
        Self(err.to_string())
    }
}
