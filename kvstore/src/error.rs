//! The store's errors.

/// Everything that can go wrong in the store. Serializable: a replica
/// forwarding a write to the leader gets the leader's error back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum StoreError {
    /// The revision asked for has been compacted away.
    #[error(
        "revision {requested} has been compacted; the oldest revision kept is {compact_revision}: re-list and watch from there"
    )]
    Compacted {
        /// The revision that was asked for.
        requested: i64,
        /// The oldest revision still available.
        compact_revision: i64,
    },
    /// The revision asked for has not happened yet.
    #[error("revision {requested} is in the future; the store is at revision {current}")]
    FutureRevision {
        /// The revision that was asked for.
        requested: i64,
        /// The current revision.
        current: i64,
    },
    /// No lease with this id exists.
    #[error("lease {0} not found (expired or revoked)")]
    LeaseNotFound(i64),
    /// A lease with this id already exists.
    #[error("lease {0} already exists")]
    LeaseExists(i64),
    /// A request that does not make sense.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// This replica is not the leader; retry against `leader_addr`.
    #[error("this replica is not the leader{}", leader_hint(.leader_addr))]
    NotLeader {
        /// Client address of the leader, if known.
        leader_addr: Option<String>,
    },
    /// The replicas cannot agree right now (no quorum, shutting down).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The data directory holds something unusable, or a thread or file
    /// the store needs could not be set up.
    #[error("storage: {0}")]
    Storage(String),
    /// redb could not read or write the data directory.
    #[error("storage: {message}")]
    Database {
        /// What redb said (all that crosses to another replica).
        message: String,
        /// redb's error, on the replica where it happened.
        #[serde(skip)]
        #[source]
        cause: Option<DatabaseCause>,
    },
}

fn leader_hint(addr: &Option<String>) -> String {
    match addr {
        Some(addr) => format!("; the leader is at {addr}"),
        None => "; no leader is known yet, retry shortly".to_owned(),
    }
}

/// Every redb error becomes [`StoreError::Database`]: a caller cannot act on
/// the difference between them, and the cause stays attached.
macro_rules! database_from {
    ($($ty:ty),*) => {$(
        impl From<$ty> for StoreError {
            fn from(err: $ty) -> Self {
                let cause = redb::Error::from(err);
                Self::Database {
                    message: cause.to_string(),
                    cause: Some(DatabaseCause(std::sync::Arc::new(cause))),
                }
            }
        }
    )*};
}

database_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The redb error behind a [`StoreError::Database`]. Shared, so the error
/// stays cheap to clone; two causes are equal when they read the same.
#[derive(Debug, Clone)]
pub struct DatabaseCause(std::sync::Arc<redb::Error>);

impl std::fmt::Display for DatabaseCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DatabaseCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

impl PartialEq for DatabaseCause {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for DatabaseCause {}

/// Errors a watcher ends with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// The start revision has been compacted away.
    #[error(
        "watch from revision {requested}: compacted, the oldest revision kept is {compact_revision}; re-list and watch from there"
    )]
    Compacted {
        /// Where the watcher wanted to start.
        requested: i64,
        /// The oldest revision still available.
        compact_revision: i64,
    },
    /// The watcher did not keep up and was cut off so it could not hold up
    /// the store or make it buffer without bound.
    #[error("watcher fell behind and was cut off; resume from revision {resume_from}")]
    Lagged {
        /// The first revision the watcher has not seen.
        resume_from: i64,
    },
    /// The start revision has not happened yet.
    #[error("watch from revision {requested}: the store is only at revision {current}")]
    FutureRevision {
        /// Where the watcher wanted to start.
        requested: i64,
        /// The current revision.
        current: i64,
    },
    /// The store is shutting down or failed to read its history.
    #[error("watch ended: {0}")]
    Closed(String),
}
