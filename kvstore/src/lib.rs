//! rudder's store: an etcd-like MVCC key-value store.
//!
//! - Every committed write gets the next global revision; each key keeps its
//!   `create_revision`, `mod_revision` and `version` (Kubernetes'
//!   resourceVersion is the `mod_revision`).
//! - Ranges by key or prefix with limit and count; transactions that compare
//!   `version` / `create_revision` / `mod_revision` / `value` / `lease`.
//! - Watches from a revision: ordered, gap-free events carrying the previous
//!   record, a clear [`WatchError::Compacted`] when the history is gone, and
//!   [`WatchError::Lagged`] for a watcher that could not keep up.
//! - Leases with TTL and keep-alive; compaction of history.
//! - Durable: a write is acknowledged only after it is fsynced (the
//!   single replica's write-ahead log, or the Raft log); concurrent writes
//!   share one fsync (group commit).
//! - One replica on a data directory by default ([`Store::open`]); three
//!   replicas with Raft ([`raft`]).
//!
//! [`grpc`] serves the store as a subset of the etcd v3 API, so etcd's own
//! clients (and `etcdctl`) can talk to it.

mod codec;
mod consensus;
mod error;
pub mod grpc;
mod lease;
mod mvcc;
mod overlay;
pub mod raft;
mod single;
mod state;
mod store;
mod types;
mod wal;
mod watch;

pub use consensus::ReplicaStatus;
pub use error::{DatabaseCause, StoreError, WatchError};
pub use store::{LeaseInfo, Store, StoreConfig};
pub use types::{
    Command, CommandResult, Compare, CompareOp, CompareTarget, DeleteRequest, Event, EventKind,
    KeyRange, KeyValue, Op, OpResponse, PutRequest, RangeRequest, RangeResponse, RevisionEvents,
    TxnRequest, TxnResponse, prefix_end,
};
pub use watch::Watcher;

/// Generated protobuf messages and tonic services.
#[expect(
    missing_docs,
    clippy::allow_attributes,
    reason = "generated from proto/*.proto; the .proto files document the messages"
)]
pub mod proto {
    /// etcd v3's `mvccpb` package: key-value records and events.
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    /// etcd v3's `etcdserverpb` package: the KV, Watch and Lease services.
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    /// Replica-to-replica traffic.
    pub mod raft {
        tonic::include_proto!("rudder.raft.v1");
    }
}
