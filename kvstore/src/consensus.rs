//! How a change reaches the state machine: through our own [`Consensus`]
//! trait, so the rest of the store never names openraft (it can change
//! minor lines, or be replaced, behind this one seam).

use futures::future::BoxFuture;

use crate::{
    error::StoreError,
    types::{Command, CommandResult},
};

/// What one replica knows about the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// This replica's id.
    pub id: u64,
    /// The leader's id, if one is known.
    pub leader_id: Option<u64>,
    /// The leader's client address, if known and not this replica.
    pub leader_addr: Option<String>,
    /// The current Raft term.
    pub term: u64,
    /// The last revision applied here.
    pub revision: i64,
    /// Index of the last entry in this replica's log (the revision, for a
    /// single replica).
    pub raft_index: u64,
    /// Index of the last entry applied here.
    pub applied_index: u64,
    /// Every member's id and address (empty for a single replica, which
    /// does not know the address it is served on).
    pub members: Vec<(u64, String)>,
}

/// Agreement on the order of commands.
pub(crate) trait Consensus: Send + Sync {
    /// Commits `command` (durably, on a quorum) and returns what applying it
    /// produced.
    fn propose(&self, command: Command) -> BoxFuture<'_, Result<CommandResult, StoreError>>;

    /// Waits until this replica's state machine reflects every write
    /// acknowledged anywhere before the call: a read after it is
    /// linearizable.
    fn read_barrier(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Whether this replica leads (runs lease expiry and compaction).
    fn is_leader(&self) -> bool;

    /// Restarts lease `id`'s TTL where deadlines are kept (the leader,
    /// asked through this replica); returns the TTL, `None` for a lease the
    /// leader does not know.
    fn lease_keep_alive(&self, id: i64) -> BoxFuture<'_, Result<Option<i64>, StoreError>>;

    /// Seconds left of lease `id` as the leader counts them, `None` for a
    /// lease the leader does not know.
    fn lease_remaining(&self, id: i64) -> BoxFuture<'_, Result<Option<i64>, StoreError>>;

    /// Who leads, as far as this replica knows.
    fn status(&self) -> ReplicaStatus;

    /// Stops replicating.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}
