//! The Lease service: grant, revoke, keep-alive, time-to-live, leases.

use tonic::{Request, Response, Status, Streaming};

use crate::{error::StoreError, proto::etcdserverpb as pb};

use super::{BoxStream, EtcdApi, status_of};

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
