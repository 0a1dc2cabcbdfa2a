//! openraft's view of the state machine: committed entries are applied to
//! the MVCC store, with the last applied log id and the membership written
//! in the same redb transaction, so a restart resumes exactly where the
//! state is. Snapshots are the whole key space as JSON.
//!
//! The Raft log already made every committed entry durable, so applying
//! one does not fsync again: most apply transactions are only handed to
//! the operating system, and one in [`DURABLE_EVERY`] entries (and every
//! snapshot) is fsynced. A crash returns `state.redb` to its last fsynced
//! transaction, whose applied log id says where openraft resumes replaying
//! the log; the log is purged only behind a snapshot, and a snapshot is
//! built from fsynced state, so what must be replayed is always there.

#![expect(
    clippy::result_large_err,
    reason = "openraft's storage traits return its StorageError; the helpers return the same"
)]

use std::{
    io::Cursor,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use openraft::{BasicNode, Entry};
use openraft::{
    EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership, storage::RaftStateMachine as OpenraftStateMachine,
};

use super::{ApplyResult, TypeConfig};
use crate::{
    error::StoreError,
    mvcc::{RAFT_META, Snapshot as StateSnapshot},
    state::StateMachine,
    types::CommandResult,
};

type Result<T> = std::result::Result<T, StorageError<u64>>;

const LAST_APPLIED: &str = "last_applied";
const MEMBERSHIP: &str = "membership";

fn sm_write(err: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::write_state_machine(&err).into()
}

fn sm_read(err: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::read_state_machine(&err).into()
}

/// How many applied entries may go without an fsync of the state: what a
/// restart replays from the log at most (besides the entries since the
/// last snapshot, which are fsynced before it is built).
const DURABLE_EVERY: u64 = 2000;

/// The state machine of one replica, as openraft drives it.
#[derive(Debug, Clone)]
pub(crate) struct ReplicaStateMachine {
    state: Arc<StateMachine>,
    /// Whether a snapshot was built or installed yet. Its bytes are not
    /// kept: a replica that needs one gets a fresh one of the current state
    /// (a whole copy of the key space, as JSON, resident only while sent).
    has_snapshot: Arc<AtomicBool>,
    /// Entries applied since the state was last fsynced.
    since_durable: u64,
}

/// Body of a snapshot.
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotBody {
    state: StateSnapshot,
}

impl ReplicaStateMachine {
    pub fn new(state: Arc<StateMachine>) -> Self {
        Self {
            state,
            has_snapshot: Arc::new(AtomicBool::new(false)),
            since_durable: 0,
        }
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        match self.state.mvcc().raft_meta(name).map_err(sm_read)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(sm_read)?)),
            None => Ok(None),
        }
    }
}

fn write_meta(
    txn: &redb::WriteTransaction,
    last_applied: Option<&LogId<u64>>,
    membership: Option<&StoredMembership<u64, BasicNode>>,
) -> std::result::Result<(), StoreError> {
    let mut table = txn.open_table(RAFT_META)?;
    let json_err = |err: serde_json::Error| StoreError::Storage(err.to_string());
    if let Some(last) = last_applied {
        let bytes = serde_json::to_vec(last).map_err(json_err)?;
        table.insert(LAST_APPLIED, bytes.as_slice())?;
    }
    if let Some(membership) = membership {
        let bytes = serde_json::to_vec(membership).map_err(json_err)?;
        table.insert(MEMBERSHIP, bytes.as_slice())?;
    }
    Ok(())
}

impl OpenraftStateMachine<TypeConfig> for ReplicaStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>)> {
        let last = self.read_meta(LAST_APPLIED)?;
        let membership = self.read_meta(MEMBERSHIP)?.unwrap_or_default();
        Ok((last, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResult>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut commands = Vec::new();
        let mut slots = Vec::new();
        let mut last_applied = None;
        let mut membership = None;
        for entry in entries {
            last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => slots.push(None),
                EntryPayload::Normal(command) => {
                    slots.push(Some(commands.len()));
                    commands.push(command);
                }
                EntryPayload::Membership(config) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), config));
                    slots.push(None);
                }
            }
        }
        if slots.is_empty() {
            return Ok(Vec::new());
        }
        self.since_durable = self.since_durable.saturating_add(slots.len() as u64);
        // Membership changes are rare and cheap to keep at once.
        let durable = self.since_durable >= DURABLE_EVERY || membership.is_some();
        if durable {
            self.since_durable = 0;
        }
        let state = self.state.clone();
        let results = tokio::task::spawn_blocking(move || {
            state.apply(&commands, durable, |txn| {
                write_meta(txn, last_applied.as_ref(), membership.as_ref())
            })
        })
        .await
        .map_err(sm_write)?
        .map_err(sm_write)?;
        let revision = self.state.hub().published();
        Ok(slots
            .into_iter()
            .map(|slot| match slot {
                Some(index) => results[index].clone(),
                None => Ok(CommandResult::Done { revision }),
            })
            .collect())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<()> {
        let data = snapshot.into_inner();
        let body: SnapshotBody = serde_json::from_slice(&data).map_err(sm_write)?;
        let last = meta.last_log_id;
        let membership = meta.last_membership.clone();
        self.state
            .mvcc()
            .import(&body.state, |txn| {
                write_meta(txn, last.as_ref(), Some(&membership))
            })
            .map_err(sm_write)?;
        self.state.reload().map_err(sm_write)?;
        tracing::info!(
            revision = body.state.revision,
            "installed a snapshot from the leader"
        );
        self.has_snapshot.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        if !self.has_snapshot.load(Ordering::SeqCst) {
            return Ok(None);
        }
        // The state now is at or past the last snapshot: a newer snapshot
        // serves as well, and is fsynced like the one built.
        Ok(Some(self.build_snapshot().await?))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for ReplicaStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let (state, raft_meta) = self.state.mvcc().export().map_err(sm_read)?;
        // openraft purges the log behind a snapshot: what it covers must
        // survive a crash without the log. Fsyncing after the export makes
        // durable everything applied up to it (and perhaps more).
        let mvcc = self.state.mvcc().clone();
        tokio::task::spawn_blocking(move || mvcc.sync())
            .await
            .map_err(sm_write)?
            .map_err(sm_write)?;
        let find = |name: &str| raft_meta.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let last_log_id: Option<LogId<u64>> = match find(LAST_APPLIED) {
            Some(bytes) => serde_json::from_slice(bytes).map_err(sm_read)?,
            None => None,
        };
        let last_membership: StoredMembership<u64, BasicNode> = match find(MEMBERSHIP) {
            Some(bytes) => serde_json::from_slice(bytes).map_err(sm_read)?,
            None => StoredMembership::default(),
        };
        let data = serde_json::to_vec(&SnapshotBody { state }).map_err(sm_read)?;
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}", id.leader_id, id.index),
            None => "empty".to_owned(),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        self.has_snapshot.store(true, Ordering::SeqCst);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
