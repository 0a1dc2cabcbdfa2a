//! What operators' tools ask for: Maintenance.Status (`etcdctl endpoint
//! status`) and Cluster.MemberList (`etcdctl member list`).

use tonic::{Request, Response, Status};

use crate::proto::etcdserverpb as pb;

use super::EtcdApi;

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
