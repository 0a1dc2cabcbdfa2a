//! etcd's protobuf messages to and from the store's types.

use tonic::Status;

use crate::{
    proto::{etcdserverpb as pb, mvccpb},
    types::{
        Compare, CompareOp, CompareTarget, DeleteRequest, KeyRange, KeyValue, Op, PutRequest,
        RangeRequest, RangeResponse,
    },
};

pub(super) fn kv_to_pb(kv: KeyValue) -> mvccpb::KeyValue {
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

pub(super) fn range_from_pb(req: pb::RangeRequest) -> Result<RangeRequest, Status> {
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

pub(super) fn range_to_pb(
    response: RangeResponse,
    header: Option<pb::ResponseHeader>,
) -> pb::RangeResponse {
    pb::RangeResponse {
        header,
        kvs: response.kvs.into_iter().map(kv_to_pb).collect(),
        more: response.more,
        count: response.count,
    }
}

pub(super) fn op_from_pb(op: pb::RequestOp) -> Result<Op, Status> {
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

pub(super) fn compare_from_pb(compare: pb::Compare) -> Result<Compare, Status> {
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
