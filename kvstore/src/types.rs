//! The store's data model: records, events, requests and their results.
//!
//! These are the types the state machine applies. They travel through the
//! Raft log (hence serde), and map one to one onto the etcd-shaped gRPC
//! messages in [`crate::grpc`].

use serde::{Deserialize, Serialize};

/// One key as it is stored: its value and the bookkeeping etcd clients use
/// for optimistic concurrency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeyValue {
    #[expect(missing_docs, reason = "the key and its value need no words")]
    pub key: Vec<u8>,
    #[expect(missing_docs, reason = "the key and its value need no words")]
    pub value: Vec<u8>,
    /// Revision of the write that created the key (since its last delete).
    pub create_revision: i64,
    /// Revision of the last write to the key (Kubernetes' resourceVersion).
    pub mod_revision: i64,
    /// Number of writes since the key was created; 1 after the first put.
    pub version: i64,
    /// The lease the key is attached to, 0 for none.
    pub lease: i64,
}

/// Whether an event wrote or removed a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The key was created or overwritten.
    Put,
    /// The key was deleted (directly, by a range delete, or by its lease
    /// expiring).
    Delete,
}

/// One change of one key at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[expect(missing_docs, reason = "documented on EventKind")]
    pub kind: EventKind,
    /// The key after the change; for a delete, the key with empty value and
    /// `mod_revision` set to the deleting revision.
    pub kv: KeyValue,
    /// The key before the change, if it existed. Always recorded, so a
    /// watcher learns what a deleted key held.
    pub prev_kv: Option<KeyValue>,
}

/// All events of one committed revision, in the order the writes ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionEvents {
    #[expect(missing_docs, reason = "the type's documentation says which revision")]
    pub revision: i64,
    /// Its events (at least one).
    pub events: Vec<Event>,
}

/// A set of keys: one key, a half-open interval, or everything from a key on.
///
/// Spelled as etcd spells it: `range_end` empty means the single key `key`;
/// `range_end == [0]` means every key `>= key`; otherwise `[key, range_end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeyRange {
    /// First key (inclusive).
    pub key: Vec<u8>,
    /// End of the range, see the type's documentation.
    pub range_end: Vec<u8>,
}

impl KeyRange {
    /// The single key `key`.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            range_end: Vec::new(),
        }
    }

    /// Every key starting with `prefix` (every key at all for an empty prefix).
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let key = prefix.into();
        let range_end = prefix_end(&key);
        Self { key, range_end }
    }

    /// Whether `candidate` lies in the range.
    pub fn contains(&self, candidate: &[u8]) -> bool {
        if self.range_end.is_empty() {
            return candidate == self.key.as_slice();
        }
        if candidate < self.key.as_slice() {
            return false;
        }
        self.range_end == [0] || candidate < self.range_end.as_slice()
    }

    /// Whether the range names exactly one key.
    pub fn is_single_key(&self) -> bool {
        self.range_end.is_empty()
    }
}

/// The smallest key greater than every key that starts with `prefix`, in
/// etcd's encoding (`[0]` when there is none, i.e. "to the end").
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Reads keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RangeRequest {
    #[expect(missing_docs, reason = "documented on KeyRange")]
    pub range: KeyRange,
    /// At most this many keys are returned; 0 for no limit.
    pub limit: i64,
    /// Return keys and bookkeeping without values.
    pub keys_only: bool,
    /// Return only the number of matching keys.
    pub count_only: bool,
    /// Read the keys as they were at this revision; 0 for the latest.
    /// Revisions older than the compaction point are gone.
    #[serde(default)]
    pub revision: i64,
}

/// Keys read, at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RangeResponse {
    /// The keys, in key order.
    pub kvs: Vec<KeyValue>,
    /// How many keys matched (also those past `limit`).
    pub count: i64,
    /// Whether keys past `limit` were left out.
    pub more: bool,
}

/// Writes one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PutRequest {
    #[expect(missing_docs, reason = "the key and its new value need no words")]
    pub key: Vec<u8>,
    #[expect(missing_docs, reason = "the key and its new value need no words")]
    pub value: Vec<u8>,
    /// Attach the key to this lease (0: none). The lease must exist.
    pub lease: i64,
}

/// Deletes a set of keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeleteRequest {
    #[expect(missing_docs, reason = "documented on KeyRange")]
    pub range: KeyRange,
}

/// One operation inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[expect(
    missing_docs,
    reason = "each variant is documented on the request it carries"
)]
pub enum Op {
    Range(RangeRequest),
    Put(PutRequest),
    Delete(DeleteRequest),
}

/// The result of one [`Op`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResponse {
    /// The result of [`Op::Range`].
    Range(RangeResponse),
    /// The key before the put, if it existed.
    Put {
        /// Previous record of the key.
        prev_kv: Option<KeyValue>,
    },
    /// The result of [`Op::Delete`].
    Delete {
        /// The deleted keys as they were.
        prev_kvs: Vec<KeyValue>,
    },
}

/// What a [`Compare`] looks at, with the operand to compare against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The key's version (0 when it does not exist).
    Version(i64),
    /// The key's create_revision (0 when it does not exist).
    CreateRevision(i64),
    /// The key's mod_revision (0 when it does not exist).
    ModRevision(i64),
    /// The key's value (a missing key never compares true).
    Value(Vec<u8>),
    /// The key's lease (0 when it has none or does not exist).
    Lease(i64),
}

/// How a [`Compare`] relates the key's field to the operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    /// field == operand
    Equal,
    /// field != operand
    NotEqual,
    /// field > operand
    Greater,
    /// field < operand
    Less,
}

/// A guard of a transaction: `key.target op operand`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    #[expect(missing_docs, reason = "the type's documentation names each part")]
    pub key: Vec<u8>,
    #[expect(missing_docs, reason = "the type's documentation names each part")]
    pub target: CompareTarget,
    #[expect(missing_docs, reason = "the type's documentation names each part")]
    pub op: CompareOp,
}

/// If every compare holds, run `success`, otherwise `failure`; atomically,
/// at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TxnRequest {
    /// Guards, all of which must hold.
    pub compare: Vec<Compare>,
    /// Operations run when every guard holds.
    pub success: Vec<Op>,
    /// Operations run otherwise.
    pub failure: Vec<Op>,
}

/// The outcome of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TxnResponse {
    /// Whether the guards held (and `success` ran).
    pub succeeded: bool,
    /// One response per operation run.
    pub responses: Vec<OpResponse>,
    /// The store's revision after the transaction.
    pub revision: i64,
}

/// A change to the store: what goes through the log and the state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A transaction (puts and deletes are one-operation transactions).
    Txn(TxnRequest),
    /// Create a lease. `id == 0` lets the store choose one.
    LeaseGrant {
        /// Requested id, or 0.
        id: i64,
        /// Time to live in seconds.
        ttl: i64,
    },
    /// Delete a lease and every key attached to it.
    LeaseRevoke {
        #[expect(missing_docs, reason = "the lease to revoke")]
        id: i64,
    },
    /// Forget history before `revision`.
    Compact {
        /// Oldest revision watchers may still start from.
        revision: i64,
    },
}

/// What applying a [`Command`] produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Result of [`Command::Txn`].
    Txn(TxnResponse),
    /// Result of [`Command::LeaseGrant`].
    LeaseGranted {
        /// The lease's id.
        id: i64,
        /// Its time to live in seconds.
        ttl: i64,
        /// The store's revision afterwards.
        revision: i64,
    },
    /// Result of [`Command::LeaseRevoke`] and [`Command::Compact`].
    Done {
        /// The store's revision afterwards.
        revision: i64,
    },
}

impl CommandResult {
    /// The store's revision after the command.
    pub fn revision(&self) -> i64 {
        match self {
            Self::Txn(txn) => txn.revision,
            Self::LeaseGranted { revision, .. } | Self::Done { revision } => *revision,
        }
    }
}
