//! The store served as a subset of the etcd v3 gRPC API (KV, Watch, Lease,
//! and Maintenance.Status / Cluster.MemberList for operators).
//!
//! Field numbers and service paths are etcd's, so etcd clients work against
//! a rudder store unchanged; the store benchmark drives both with the same
//! client code.

use std::pin::Pin;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use crate::{
    error::{StoreError, WatchError},
    proto::{etcdserverpb as pb, mvccpb},
    store::Store,
    types::{
        Compare, CompareOp, CompareTarget, DeleteRequest, EventKind, KeyRange, KeyValue, Op,
        OpResponse, PutRequest, RangeRequest, RangeResponse, TxnRequest,
    },
};

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

fn kv_to_pb(kv: KeyValue) -> mvccpb::KeyValue {
    let KeyValue {
        key,
        value,
        create_revision,
        mod_revision,
        version,
        lease,
    } = kv;
    mvccpb::KeyValue {
        key,
        create_revision,
        mod_revision,
        version,
        value,
        lease,
    }
}

fn range_from_pb(req: pb::RangeRequest) -> Result<RangeRequest, Status> {
    Ok(RangeRequest {
        range: KeyRange {
            key: req.key,
            range_end: req.range_end,
        },
        limit: req.limit,
        keys_only: req.keys_only,
        count_only: req.count_only,
        revision: req.revision,
    })
}

fn range_to_pb(response: RangeResponse, header: Option<pb::ResponseHeader>) -> pb::RangeResponse {
    pb::RangeResponse {
        header,
        kvs: response.kvs.into_iter().map(kv_to_pb).collect(),
        more: response.more,
        count: response.count,
    }
}

fn op_from_pb(op: pb::RequestOp) -> Result<Op, Status> {
    use pb::request_op::Request as R;
    match op.request {
        Some(R::RequestRange(range)) => Ok(Op::Range(range_from_pb(range)?)),
        Some(R::RequestPut(put)) => Ok(Op::Put(PutRequest {
            key: put.key,
            value: put.value,
            lease: put.lease,
        })),
        Some(R::RequestDeleteRange(delete)) => Ok(Op::Delete(DeleteRequest {
            range: KeyRange {
                key: delete.key,
                range_end: delete.range_end,
            },
        })),
        None => Err(Status::invalid_argument("txn: an operation has no request")),
    }
}

fn compare_from_pb(compare: pb::Compare) -> Result<Compare, Status> {
    use pb::compare::{CompareResult, CompareTarget as T, TargetUnion as U};
    let op = match CompareResult::try_from(compare.result) {
        Ok(CompareResult::Equal) => CompareOp::Equal,
        Ok(CompareResult::NotEqual) => CompareOp::NotEqual,
        Ok(CompareResult::Greater) => CompareOp::Greater,
        Ok(CompareResult::Less) => CompareOp::Less,
        Err(_) => return Err(Status::invalid_argument("txn: unknown compare result")),
    };
    let target = match (T::try_from(compare.target), compare.target_union) {
        (Ok(T::Version), Some(U::Version(v))) => CompareTarget::Version(v),
        (Ok(T::Create), Some(U::CreateRevision(v))) => CompareTarget::CreateRevision(v),
        (Ok(T::Mod), Some(U::ModRevision(v))) => CompareTarget::ModRevision(v),
        (Ok(T::Value), Some(U::Value(v))) => CompareTarget::Value(v),
        (Ok(T::Lease), Some(U::Lease(v))) => CompareTarget::Lease(v),
        // proto3 drops zero scalars inside a oneof only when unset; treat a
        // missing operand as 0 the way etcd does.
        (Ok(T::Version), None) => CompareTarget::Version(0),
        (Ok(T::Create), None) => CompareTarget::CreateRevision(0),
        (Ok(T::Mod), None) => CompareTarget::ModRevision(0),
        (Ok(T::Lease), None) => CompareTarget::Lease(0),
        (Ok(T::Value), None) => CompareTarget::Value(Vec::new()),
        _ => {
            return Err(Status::invalid_argument(
                "txn: compare target and operand do not match",
            ));
        }
    };
    Ok(Compare {
        key: compare.key,
        target,
        op,
    })
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl pb::kv_server::Kv for EtcdApi {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let request = request.into_inner();
        let serializable = request.serializable;
        let req = range_from_pb(request)?;
        let (response, revision) = if serializable {
            self.store.range_serializable(req).await
        } else {
            self.store.range(req).await
        }
        .map_err(status_of)?;
        Ok(Response::new(range_to_pb(response, self.header(revision))))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let req = request.into_inner();
        let (revision, prev) = self
            .store
            .put(req.key, req.value, req.lease)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::PutResponse {
            header: self.header(revision),
            prev_kv: if req.prev_kv {
                prev.map(kv_to_pb)
            } else {
                None
            },
        }))
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let req = request.into_inner();
        let (revision, prev) = self
            .store
            .delete(KeyRange {
                key: req.key,
                range_end: req.range_end,
            })
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::DeleteRangeResponse {
            header: self.header(revision),
            deleted: i64::try_from(prev.len()).unwrap_or(i64::MAX),
            prev_kvs: if req.prev_kv {
                prev.into_iter().map(kv_to_pb).collect()
            } else {
                Vec::new()
            },
        }))
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let req = request.into_inner();
        let txn = TxnRequest {
            compare: req
                .compare
                .into_iter()
                .map(compare_from_pb)
                .collect::<Result<_, _>>()?,
            success: req
                .success
                .into_iter()
                .map(op_from_pb)
                .collect::<Result<_, _>>()?,
            failure: req
                .failure
                .into_iter()
                .map(op_from_pb)
                .collect::<Result<_, _>>()?,
        };
        let response = self.store.txn(txn).await.map_err(status_of)?;
        let header = self.header(response.revision);
        let responses = response
            .responses
            .into_iter()
            .map(|op| {
                use pb::response_op::Response as R;
                let response = match op {
                    OpResponse::Range(range) => R::ResponseRange(range_to_pb(range, header)),
                    OpResponse::Put { prev_kv } => R::ResponsePut(pb::PutResponse {
                        header,
                        prev_kv: prev_kv.map(kv_to_pb),
                    }),
                    OpResponse::Delete { prev_kvs } => {
                        R::ResponseDeleteRange(pb::DeleteRangeResponse {
                            header,
                            deleted: i64::try_from(prev_kvs.len()).unwrap_or(i64::MAX),
                            prev_kvs: prev_kvs.into_iter().map(kv_to_pb).collect(),
                        })
                    }
                };
                pb::ResponseOp {
                    response: Some(response),
                }
            })
            .collect();
        Ok(Response::new(pb::TxnResponse {
            header,
            succeeded: response.succeeded,
            responses,
        }))
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        self.store
            .compact(request.into_inner().revision)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::CompactionResponse {
            header: self.header(self.store.revision()),
        }))
    }
}

#[tonic::async_trait]
impl pb::watch_server::Watch for EtcdApi {
    type WatchStream = BoxStream<pb::WatchResponse>;

    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut requests = request.into_inner();
        let (out, receiver) = mpsc::channel::<Result<pb::WatchResponse, Status>>(64);
        let api = self.clone();
        tokio::spawn(async move {
            let mut next_id = 0i64;
            let mut watches: std::collections::HashMap<i64, tokio::task::JoinHandle<()>> =
                std::collections::HashMap::new();
            while let Some(Ok(request)) = requests.next().await {
                use pb::watch_request::RequestUnion as U;
                match request.request_union {
                    Some(U::CreateRequest(create)) => {
                        let id = if create.watch_id != 0 {
                            create.watch_id
                        } else {
                            next_id
                        };
                        next_id = next_id.max(id) + 1;
                        let task = tokio::spawn(serve_watch(api.clone(), id, create, out.clone()));
                        watches.insert(id, task);
                    }
                    Some(U::CancelRequest(cancel)) => {
                        if let Some(task) = watches.remove(&cancel.watch_id) {
                            task.abort();
                        }
                        let _ = out
                            .send(Ok(pb::WatchResponse {
                                header: api.header(api.store.revision()),
                                watch_id: cancel.watch_id,
                                canceled: true,
                                ..pb::WatchResponse::default()
                            }))
                            .await;
                    }
                    None => {}
                }
            }
            for task in watches.into_values() {
                task.abort();
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

async fn serve_watch(
    api: EtcdApi,
    watch_id: i64,
    create: pb::WatchCreateRequest,
    out: mpsc::Sender<Result<pb::WatchResponse, Status>>,
) {
    let range = KeyRange {
        key: create.key,
        range_end: create.range_end,
    };
    let canceled = |reason: String, compact_revision: i64| pb::WatchResponse {
        header: api.header(api.store.revision()),
        watch_id,
        created: false,
        canceled: true,
        compact_revision,
        cancel_reason: reason,
        ..pb::WatchResponse::default()
    };
    let mut watcher = match api.store.watch(range, create.start_revision) {
        Ok(watcher) => watcher,
        Err(err) => {
            let compact = match &err {
                WatchError::Compacted {
                    compact_revision, ..
                } => *compact_revision,
                _ => 0,
            };
            // etcd answers "created" before "canceled"; clients expect both.
            let _ = out
                .send(Ok(pb::WatchResponse {
                    header: api.header(api.store.revision()),
                    watch_id,
                    created: true,
                    ..pb::WatchResponse::default()
                }))
                .await;
            let _ = out.send(Ok(canceled(err.to_string(), compact))).await;
            return;
        }
    };
    if out
        .send(Ok(pb::WatchResponse {
            header: api.header(api.store.revision()),
            watch_id,
            created: true,
            ..pb::WatchResponse::default()
        }))
        .await
        .is_err()
    {
        return;
    }
    while let Some(next) = watcher.next().await {
        let response = match next {
            Ok(revision) => pb::WatchResponse {
                header: api.header(revision.revision),
                watch_id,
                events: revision
                    .events
                    .into_iter()
                    .map(|event| mvccpb::Event {
                        r#type: match event.kind {
                            EventKind::Put => mvccpb::event::EventType::Put as i32,
                            EventKind::Delete => mvccpb::event::EventType::Delete as i32,
                        },
                        kv: Some(kv_to_pb(event.kv)),
                        prev_kv: if create.prev_kv {
                            event.prev_kv.map(kv_to_pb)
                        } else {
                            None
                        },
                    })
                    .collect(),
                ..pb::WatchResponse::default()
            },
            Err(err) => {
                let compact = match &err {
                    WatchError::Compacted {
                        compact_revision, ..
                    } => *compact_revision,
                    _ => 0,
                };
                let _ = out.send(Ok(canceled(err.to_string(), compact))).await;
                return;
            }
        };
        if out.send(Ok(response)).await.is_err() {
            return;
        }
    }
}

#[tonic::async_trait]
impl pb::lease_server::Lease for EtcdApi {
    type LeaseKeepAliveStream = BoxStream<pb::LeaseKeepAliveResponse>;

    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let req = request.into_inner();
        let (id, ttl) = self
            .store
            .lease_grant(req.id, req.ttl)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::LeaseGrantResponse {
            header: self.header(self.store.revision()),
            id,
            ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let revision = self
            .store
            .lease_revoke(request.into_inner().id)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::LeaseRevokeResponse {
            header: self.header(revision),
        }))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let api = self.clone();
        let stream = futures::StreamExt::then(request.into_inner(), move |request| {
            let api = api.clone();
            async move {
                let request = request?;
                let ttl = match api.store.lease_keep_alive(request.id).await {
                    Ok(ttl) => ttl,
                    // etcd reports an unknown lease as TTL 0 on the stream.
                    Err(StoreError::LeaseNotFound(_)) => 0,
                    Err(err) => return Err(status_of(err)),
                };
                Ok(pb::LeaseKeepAliveResponse {
                    header: api.header(api.store.revision()),
                    id: request.id,
                    ttl,
                })
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let info = self
            .store
            .lease_time_to_live(req.id)
            .await
            .map_err(status_of)?;
        let header = self.header(self.store.revision());
        Ok(Response::new(match info {
            Some(info) => pb::LeaseTimeToLiveResponse {
                header,
                id: info.id,
                ttl: info.remaining_ttl,
                granted_ttl: info.granted_ttl,
                keys: if req.keys { info.keys } else { Vec::new() },
            },
            // etcd answers TTL -1 for a lease that does not exist.
            None => pb::LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        }))
    }
}

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for EtcdApi {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let status = self.store.status();
        let store = self.store.clone();
        let db_size = tokio::task::spawn_blocking(move || store.disk_usage())
            .await
            .map_err(|err| Status::internal(format!("measuring the data directory: {err}")))?;
        let db_size = i64::try_from(db_size).unwrap_or(i64::MAX);
        Ok(Response::new(pb::StatusResponse {
            header: self.header(status.revision),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            db_size,
            leader: status.leader_id.unwrap_or(0),
            raft_index: status.raft_index,
            raft_term: status.term,
            raft_applied_index: status.applied_index,
            errors: Vec::new(),
            db_size_in_use: db_size,
            is_learner: false,
        }))
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for EtcdApi {
    async fn member_list(
        &self,
        _request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let status = self.store.status();
        let members = status
            .members
            .iter()
            .map(|(id, addr)| {
                let urls: Vec<String> = if addr.is_empty() {
                    Vec::new()
                } else {
                    vec![format!("http://{addr}")]
                };
                pb::Member {
                    id: *id,
                    name: format!("rudder-{id}"),
                    peer_urls: urls.clone(),
                    client_urls: urls,
                    is_learner: false,
                }
            })
            .collect();
        Ok(Response::new(pb::MemberListResponse {
            header: self.header(status.revision),
            members,
        }))
    }
}
