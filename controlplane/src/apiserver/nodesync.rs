//! The node-sync stream: per node, the pods bound to it and every service
//! and endpoints object, as a snapshot followed by changes in store order,
//! resumable by revision.
//!
//! One store watch over `/registry/` keeps the three kinds in a single
//! global order. A stream that falls behind is re-attached from its last
//! revision on the server side, so the agent sees no gap; a resume
//! revision that has been compacted yields a fresh snapshot instead.

use std::time::Duration;

use rudder_api::{
    Kind,
    proto::{Bookmark, NodeChange, NodeSnapshot, NodeSyncMessage, node_sync_message::Message},
};
use rudder_kvstore::{EventKind, KeyRange, RangeRequest, WatchError};
use serde_json::Value;
use tokio::sync::mpsc;
use tonic::Status;

use crate::{
    auth::UserInfo,
    authz::{self, Attributes},
};

use super::{
    ApiServer, ApiServerError,
    error::{status_of, watch_error},
    storage::{decode, set_resource_version},
};

/// How long the stream stays silent before a bookmark tells the agent how
/// far it has been brought (so its resume point keeps moving).
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

/// Where a stream stands.
enum Position {
    /// Needs a snapshot.
    Snapshot,
    /// Everything up to this revision was delivered.
    After(i64),
}

/// Whether `user` may follow node `node`'s stream: the node itself, or
/// a user who may watch its pods, Services, Endpoints and EndpointSlices
/// in every namespace (what the stream carries).
///
/// # Errors
/// [`ApiServerError::Forbidden`].
pub fn authorize(
    api: &ApiServer,
    user: Option<&UserInfo>,
    node: &str,
) -> Result<(), ApiServerError> {
    let Some(user) = user else {
        return Err(ApiServerError::Forbidden(
            "the request carries no authenticated user".to_owned(),
        ));
    };
    if let Some(own) = authz::node::node_of(user) {
        if own == node {
            return Ok(());
        }
        return Err(ApiServerError::Forbidden(format!(
            "node {own:?} may only follow its own node-sync stream, not node {node:?}'s"
        )));
    }
    for kind in [
        Kind::Pod,
        Kind::Service,
        Kind::Endpoints,
        Kind::EndpointSlice,
    ] {
        api.authorize(Some(user), &Attributes::resource("watch", kind, "", "", ""))?;
    }
    Ok(())
}

/// Streams node `node`'s view into `out` until the receiver goes away.
pub async fn run(
    api: ApiServer,
    node: String,
    resume_revision: i64,
    out: mpsc::Sender<Result<NodeSyncMessage, Status>>,
) {
    let mut position = if resume_revision > 0 {
        Position::After(resume_revision)
    } else {
        Position::Snapshot
    };
    loop {
        let after = match position {
            Position::Snapshot => match snapshot(&api, &node).await {
                Ok(snapshot) => {
                    let revision = snapshot.revision;
                    if send(&out, Message::Snapshot(snapshot)).await.is_err() {
                        return;
                    }
                    revision
                }
                Err(status) => {
                    let _ = out.send(Err(status)).await;
                    return;
                }
            },
            Position::After(revision) => revision,
        };
        let mut watcher = match api.store().watch(KeyRange::prefix("/registry/"), after + 1) {
            Ok(watcher) => watcher,
            Err(WatchError::Compacted { .. }) => {
                position = Position::Snapshot;
                continue;
            }
            Err(err) => {
                let _ = out.send(Err(status_of(watch_error(&err)))).await;
                return;
            }
        };
        let (mut seen, mut told) = (after, after);
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        position = loop {
            tokio::select! {
                next = watcher.next() => match next {
                    Some(Ok(batch)) => {
                        for event in batch.events {
                            let Some(change) = change_for(&node, event, batch.revision) else {
                                continue;
                            };
                            if send(&out, Message::Change(change)).await.is_err() {
                                return;
                            }
                            told = batch.revision;
                        }
                        seen = batch.revision;
                    }
                    Some(Err(WatchError::Lagged { resume_from })) => {
                        break Position::After(resume_from - 1);
                    }
                    Some(Err(WatchError::Compacted { .. })) => break Position::Snapshot,
                    Some(Err(err)) => {
                        let _ = out.send(Err(status_of(watch_error(&err)))).await;
                        return;
                    }
                    None => return,
                },
                _ = ticker.tick() => {
                    if seen > told {
                        if send(&out, Message::Bookmark(Bookmark { revision: seen })).await.is_err() {
                            return;
                        }
                        told = seen;
                    }
                }
                () = out.closed() => return,
            }
        };
    }
}

async fn send(
    out: &mpsc::Sender<Result<NodeSyncMessage, Status>>,
    message: Message,
) -> Result<(), ()> {
    out.send(Ok(NodeSyncMessage {
        message: Some(message),
    }))
    .await
    .map_err(|_| ())
}

fn on_node(object: &Value, node: &str) -> bool {
    object.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
}

/// Reads every pod on the node and every service and endpoints object, all
/// at one revision (one range over the registry).
async fn snapshot(api: &ApiServer, node: &str) -> Result<NodeSnapshot, Status> {
    let (range, revision) = api
        .store()
        .range(RangeRequest {
            range: KeyRange::prefix("/registry/"),
            ..RangeRequest::default()
        })
        .await
        .map_err(|err| status_of(err.into()))?;
    let mut snapshot = NodeSnapshot {
        revision,
        ..NodeSnapshot::default()
    };
    for kv in &range.kvs {
        let target = match Kind::of_key(&kv.key) {
            Some(Kind::Pod) => &mut snapshot.pods_json,
            Some(Kind::Service) => &mut snapshot.services_json,
            Some(Kind::Endpoints) => &mut snapshot.endpoints_json,
            Some(Kind::EndpointSlice) => &mut snapshot.endpoint_slices_json,
            _ => continue,
        };
        let object = decode(kv).map_err(status_of)?;
        if Kind::of_key(&kv.key) == Some(Kind::Pod) && !on_node(&object, node) {
            continue;
        }
        target.push(serde_json::to_vec(&object).unwrap_or_default());
    }
    Ok(snapshot)
}

/// What one store event means to this node, if anything.
fn change_for(node: &str, event: rudder_kvstore::Event, revision: i64) -> Option<NodeChange> {
    let kind = Kind::of_key(&event.kv.key)?;
    if !matches!(
        kind,
        Kind::Pod | Kind::Service | Kind::Endpoints | Kind::EndpointSlice
    ) {
        return None;
    }
    let prev = event.prev_kv.as_ref().and_then(|kv| decode(kv).ok());
    let (deleted, object) = match event.kind {
        EventKind::Put => {
            let object = decode(&event.kv).ok()?;
            if kind == Kind::Pod {
                let now = on_node(&object, node);
                let before = prev.as_ref().is_some_and(|p| on_node(p, node));
                match (before, now) {
                    (_, true) => (false, object),
                    // The pod left this node (rebinding is not allowed, but
                    // the agent must not keep running it if it happens).
                    (true, false) => (true, object),
                    (false, false) => return None,
                }
            } else {
                (false, object)
            }
        }
        EventKind::Delete => {
            let mut object = prev?;
            if kind == Kind::Pod && !on_node(&object, node) {
                return None;
            }
            set_resource_version(&mut object, revision);
            (true, object)
        }
    };
    Some(NodeChange {
        revision,
        kind: kind.name().to_owned(),
        deleted,
        object_json: serde_json::to_vec(&object).unwrap_or_default(),
    })
}
