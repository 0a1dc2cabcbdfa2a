//! Watches: a store watch on a kind's prefix, resumed from history when it
//! falls behind, each event turned into what a filtered watcher sees.

use rudder_api::Kind;
use rudder_kvstore::{EventKind, KeyRange, WatchError};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{
    ApiServer, ApiServerError, Filter,
    error::watch_error,
    storage::{decode, list_prefix, set_resource_version},
};

/// What a watch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object appeared (or started matching).
    Added,
    /// The object changed.
    Modified,
    /// The object went away (or stopped matching).
    Deleted,
}

impl EventType {
    /// Kubernetes' spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One watch event.
#[derive(Debug, Clone)]
pub struct ResourceEvent {
    /// What happened.
    pub type_: EventType,
    /// The object (its last state for a delete).
    pub object: Value,
    /// The revision of the change.
    pub revision: i64,
}

impl ApiServer {
    /// Watches objects of `kind` after `resource_version` ("" or "0":
    /// first an `Added` for every current object). Objects that start or
    /// stop matching the filter are reported as added or deleted.
    ///
    /// # Errors
    /// [`ApiServerError::Gone`] when the version is compacted;
    /// [`ApiServerError::BadRequest`] for a malformed version.
    pub async fn watch(
        &self,
        kind: Kind,
        filter: Filter,
        resource_version: &str,
    ) -> Result<mpsc::Receiver<Result<ResourceEvent, ApiServerError>>, ApiServerError> {
        let mut filter = filter;
        if !kind.namespaced() {
            filter.namespace.clear();
        }
        let (out, receiver) = mpsc::channel(256);
        let start = match resource_version {
            "" | "0" => {
                let (items, revision) = self.list(kind, &filter).await?;
                let out = out.clone();
                let initial: Vec<_> = items
                    .into_iter()
                    .map(|object| ResourceEvent {
                        type_: EventType::Added,
                        revision,
                        object,
                    })
                    .collect();
                // Sent from the watch task so a large list does not block here.
                (revision + 1, Some((out, initial)))
            }
            version => {
                let revision: i64 = version.parse().map_err(|_| {
                    ApiServerError::BadRequest(format!(
                        "resourceVersion {version:?} is not a number from a previous list or watch"
                    ))
                })?;
                (revision + 1, None)
            }
        };
        let (start, initial) = start;
        let range = KeyRange::prefix(list_prefix(kind, &filter.namespace));
        let mut watcher = self
            .store
            .watch(range.clone(), start)
            .map_err(|err| watch_error(&err))?;
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Some((out, initial)) = initial {
                for event in initial {
                    if out.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
            }
            while let Some(next) = watcher.next().await {
                let batch = match next {
                    Ok(batch) => batch,
                    // Cut off for falling behind a burst of writes: go on
                    // from history where it stopped. Handing the client a
                    // Gone instead would make it re-list everything, fall
                    // behind again while doing so, and never converge.
                    Err(WatchError::Lagged { resume_from }) => {
                        match store.watch(range.clone(), resume_from) {
                            Ok(resumed) => {
                                watcher = resumed;
                                continue;
                            }
                            Err(err) => {
                                let _ = out.send(Err(watch_error(&err))).await;
                                return;
                            }
                        }
                    }
                    Err(err) => {
                        let _ = out.send(Err(watch_error(&err))).await;
                        return;
                    }
                };
                for event in batch.events {
                    let Some(resource_event) = seen_through(&filter, event, batch.revision) else {
                        continue;
                    };
                    if out.send(resource_event).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(receiver)
    }
}

/// Turns one store event into what a filtered watcher sees, if anything.
fn seen_through(
    filter: &Filter,
    event: rudder_kvstore::Event,
    revision: i64,
) -> Option<Result<ResourceEvent, ApiServerError>> {
    let prev = match event.prev_kv.as_ref().map(decode).transpose() {
        Ok(prev) => prev,
        Err(err) => return Some(Err(err)),
    };
    let prev_matched = prev.as_ref().is_some_and(|p| filter.matches(p));
    match event.kind {
        EventKind::Put => {
            let object = match decode(&event.kv) {
                Ok(object) => object,
                Err(err) => return Some(Err(err)),
            };
            let type_ = match (prev_matched, filter.matches(&object)) {
                (true, true) => EventType::Modified,
                (false, true) => EventType::Added,
                (true, false) => EventType::Deleted,
                (false, false) => return None,
            };
            Some(Ok(ResourceEvent {
                type_,
                object,
                revision,
            }))
        }
        EventKind::Delete => {
            let mut object = prev.filter(|_| prev_matched)?;
            set_resource_version(&mut object, revision);
            Some(Ok(ResourceEvent {
                type_: EventType::Deleted,
                object,
                revision,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rudder_kvstore::{Store, StoreConfig};
    use serde_json::json;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(60);

    fn pod(name: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "pause"}]}
        })
    }

    #[tokio::test]
    async fn a_watcher_behind_a_burst_of_creates_gets_every_event_and_no_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        // One queued revision per store watcher: anything that does not
        // keep up is cut off at once.
        let store = Store::open(StoreConfig {
            watch_queue: 1,
            ..StoreConfig::new(dir.path())
        })
        .await
        .expect("store opens");
        let api = ApiServer::new(store);
        api.ensure_builtin_namespaces().await.expect("namespaces");
        let (_, revision) = api.list(Kind::Pod, &Filter::default()).await.expect("list");
        let mut events = api
            .watch(Kind::Pod, Filter::default(), &revision.to_string())
            .await
            .expect("watch");
        // Far more than the watch's buffers hold, all written before
        // anything is read.
        const PODS: usize = 600;
        for i in 0..PODS {
            api.create(Kind::Pod, pod(&format!("pod-{i}")))
                .await
                .expect("create");
        }
        for i in 0..PODS {
            let event = tokio::time::timeout(LIMIT, events.recv())
                .await
                .expect("an event within the limit")
                .expect("the watch goes on")
                .expect("no Gone: the watch resumes from history");
            assert_eq!(event.type_, EventType::Added);
            assert_eq!(
                event.object.pointer("/metadata/name"),
                Some(&json!(format!("pod-{i}"))),
                "in order, none missing"
            );
        }
    }
}
