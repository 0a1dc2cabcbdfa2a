//! The Raft log on redb (`raft-log.redb`): entries by index, the vote, the
//! commit index and the purge point. Every append is one fsynced transaction; openraft hands
//! over whatever accumulated while the previous one flushed, so concurrent
//! writes share an fsync here as in the single-replica store.

#![expect(
    clippy::result_large_err,
    reason = "openraft's storage traits return its StorageError; the helpers return the same"
)]

use std::{fmt::Debug, ops::RangeBounds, path::Path, sync::Arc};

use openraft::{
    Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
    storage::{LogFlushed, RaftLogStorage},
};
use redb::{Database, Durability, ReadableTable, TableDefinition};

use super::TypeConfig;

/// Log index -> JSON entry.
const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
/// `vote`, `committed`, `last_purged`: JSON values.
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

type Result<T> = std::result::Result<T, StorageError<u64>>;

/// The durable Raft log of one replica.
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
}

fn read_err(err: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::read_logs(&err).into()
}

fn write_err(err: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::write_logs(&err).into()
}

impl LogStore {
    /// Opens (or creates) the log in `path`.
    pub fn open(path: &Path) -> std::result::Result<Self, crate::StoreError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(LOG)?;
            txn.open_table(META)?;
        }
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
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

    fn set_meta<T: serde::Serialize>(
        &self,
        name: &str,
        value: &T,
        durability: Durability,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(write_err)?;
        let mut txn = self.db.begin_write().map_err(write_err)?;
        txn.set_durability(durability);
        {
            let mut meta = txn.open_table(META).map_err(write_err)?;
            meta.insert(name, bytes.as_slice()).map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let log = txn.open_table(LOG).map_err(read_err)?;
        let mut entries = Vec::new();
        for item in log.range(range).map_err(read_err)? {
            let (_, bytes) = item.map_err(read_err)?;
            entries.push(serde_json::from_slice(bytes.value()).map_err(read_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let last_purged: Option<LogId<u64>> = self.meta("last_purged")?;
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
        self.set_meta("vote", vote, Durability::Immediate)
            .map_err(|err| {
                let cause = std::io::Error::other(err);
                StorageIOError::write_vote(&cause).into()
            })
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
    /// the next append (fsynced) carries it to disk, and a crash before
    /// that loses only how far the index had moved since, which the
    /// leader's read index covers (see `raft::Shared::read_index_locally`).
    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<()> {
        self.set_meta("committed", &committed, Durability::None)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>> {
        Ok(self.meta::<Option<LogId<u64>>>("committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut txn = self.db.begin_write().map_err(write_err)?;
        txn.set_durability(Durability::Immediate);
        {
            let mut log = txn.open_table(LOG).map_err(write_err)?;
            for entry in entries {
                let bytes = serde_json::to_vec(&entry).map_err(write_err)?;
                log.insert(entry.log_id.index, bytes.as_slice())
                    .map_err(write_err)?;
            }
        }
        let result = txn.commit();
        callback.log_io_completed(
            result
                .as_ref()
                .map(|_| ())
                .map_err(|err| std::io::Error::other(err.to_string())),
        );
        result.map_err(write_err)
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(write_err)?;
        txn.set_durability(Durability::Immediate);
        {
            let mut log = txn.open_table(LOG).map_err(write_err)?;
            log.retain_in(log_id.index.., |_, _| false)
                .map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<()> {
        self.set_meta("last_purged", &log_id, Durability::Immediate)?;
        let mut txn = self.db.begin_write().map_err(write_err)?;
        txn.set_durability(Durability::Immediate);
        {
            let mut log = txn.open_table(LOG).map_err(write_err)?;
            log.retain_in(..=log_id.index, |_, _| false)
                .map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }
}
