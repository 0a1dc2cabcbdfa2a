//! The KV service: Range, Put, DeleteRange, Txn, Compact.

use tonic::{Request, Response, Status};

use crate::{
    proto::etcdserverpb as pb,
    types::{KeyRange, OpResponse, TxnRequest},
};

use super::{
    EtcdApi,
    convert::{compare_from_pb, kv_to_pb, op_from_pb, range_from_pb, range_to_pb},
    status_of,
};

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
