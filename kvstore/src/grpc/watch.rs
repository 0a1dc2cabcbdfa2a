//! The Watch service: a bidirectional stream of watch requests and events.

use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use crate::{
    error::WatchError,
    proto::{etcdserverpb as pb, mvccpb},
    types::{EventKind, KeyRange},
};

use super::{BoxStream, EtcdApi, convert::kv_to_pb};

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
