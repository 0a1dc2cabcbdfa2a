//! The store served as a subset of the etcd v3 gRPC API (KV, Watch, Lease,
//! and Maintenance.Status / Cluster.MemberList for operators).
//!
//! Field numbers and service paths are etcd's, so etcd clients work against
//! a rudder store unchanged; the store benchmark drives both with the same
//! client code. One file per service: [`kv`], [`watch`], [`lease`],
//! [`operator`] (Maintenance, Cluster); [`convert`] maps messages to the
//! store's types.

mod convert;
mod kv;
mod lease;
mod operator;
mod watch;

use std::pin::Pin;

use futures::Stream;
use tonic::Status;

use crate::{error::StoreError, proto::etcdserverpb as pb, store::Store};

/// Serves the etcd-shaped KV, Watch and Lease services over one [`Store`].
#[derive(Debug, Clone)]
pub struct EtcdApi {
    store: Store,
}

impl EtcdApi {
    /// Serves `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The three tonic services, ready to add to a server.
    pub fn services(
        self,
    ) -> (
        pb::kv_server::KvServer<Self>,
        pb::watch_server::WatchServer<Self>,
        pb::lease_server::LeaseServer<Self>,
    ) {
        (
            pb::kv_server::KvServer::new(self.clone()),
            pb::watch_server::WatchServer::new(self.clone()),
            pb::lease_server::LeaseServer::new(self),
        )
    }

    /// The services operators' tools use (`etcdctl endpoint status`,
    /// `etcdctl member list`), ready to add next to [`Self::services`].
    pub fn operator_services(
        self,
    ) -> (
        pb::maintenance_server::MaintenanceServer<Self>,
        pb::cluster_server::ClusterServer<Self>,
    ) {
        (
            pb::maintenance_server::MaintenanceServer::new(self.clone()),
            pb::cluster_server::ClusterServer::new(self),
        )
    }

    fn header(&self, revision: i64) -> Option<pb::ResponseHeader> {
        let status = self.store.status();
        Some(pb::ResponseHeader {
            cluster_id: 0,
            member_id: status.id,
            revision,
            raft_term: status.term,
        })
    }
}

/// Maps a store error onto the gRPC status a client can act on.
pub fn status_of(err: StoreError) -> Status {
    match &err {
        // etcd's clients recognise these two by their exact text.
        StoreError::Compacted { .. } => {
            Status::out_of_range("etcdserver: mvcc: required revision has been compacted")
        }
        StoreError::FutureRevision { .. } => {
            Status::out_of_range("etcdserver: mvcc: required revision is a future revision")
        }
        StoreError::LeaseNotFound(_) => Status::not_found(err.to_string()),
        StoreError::LeaseExists(_) => Status::already_exists(err.to_string()),
        StoreError::InvalidRequest(_) => Status::invalid_argument(err.to_string()),
        StoreError::NotLeader { .. } => Status::failed_precondition(err.to_string()),
        StoreError::Unavailable(_) => Status::unavailable(err.to_string()),
        StoreError::Storage(_) | StoreError::Database { .. } => Status::internal(err.to_string()),
    }
}

pub(super) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;
