//! The API server: Kubernetes semantics (create/get/list/update/status/
//! delete/watch with resourceVersion compare-and-swap) on top of the store,
//! served over gRPC ([`grpc`]) and HTTP/JSON ([`http`]), plus the per-node
//! sync stream ([`nodesync`]).
//!
//! Objects are stored as JSON under `/registry/<plural>/[<namespace>/]<name>`
//! without `metadata.resourceVersion`: the store's `mod_revision` of the key
//! *is* the resourceVersion, filled in on every read, and updates compare
//! it in the same transaction that writes.

pub mod allocation;
pub mod grpc;
pub mod http;
pub mod nodesync;

use rudder_api::{ApiError, Kind, object, selector::FieldSelector, selector::Selector};
use rudder_kvstore::{
    Compare, CompareOp, CompareTarget, DeleteRequest, EventKind, KeyRange, KeyValue, Op,
    OpResponse, PutRequest, RangeRequest, Store, StoreError, TxnRequest, WatchError,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Errors of API operations, each mapping to one HTTP status / gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409, on create.
    #[error("{0}")]
    AlreadyExists(String),
    /// 409, a stale resourceVersion.
    #[error("{0}")]
    Conflict(String),
    /// 422 / 400: the object or request is invalid.
    #[error(transparent)]
    Invalid(#[from] ApiError),
    /// 400: a request that makes no sense.
    #[error("{0}")]
    BadRequest(String),
    /// 410: the resourceVersion has been compacted.
    #[error("{0}")]
    Gone(String),
    /// 503 / 500: the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

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

/// Which objects a list or watch covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Namespace, empty for all.
    pub namespace: String,
    /// Label selector.
    pub labels: Selector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl Filter {
    /// Parses selectors given as strings.
    ///
    /// # Errors
    /// [`ApiServerError::Invalid`] for a selector that does not parse.
    pub fn parse(namespace: &str, labels: &str, fields: &str) -> Result<Self, ApiServerError> {
        Ok(Self {
            namespace: namespace.to_owned(),
            labels: Selector::parse(labels)?,
            fields: FieldSelector::parse(fields)?,
        })
    }

    fn matches(&self, object: &Value) -> bool {
        (self.namespace.is_empty()
            || object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                == Some(self.namespace.as_str()))
            && self.labels.matches_object(object)
            && self.fields.matches_object(object)
    }
}

/// The API server's operations, shared by the gRPC and HTTP front ends.
#[derive(Debug, Clone)]
pub struct ApiServer {
    store: Store,
}

impl ApiServer {
    /// Serves objects kept in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates `default` and `kube-system` if missing.
    ///
    /// # Errors
    /// Store errors.
    pub async fn ensure_builtin_namespaces(&self) -> Result<(), ApiServerError> {
        for name in ["default", "kube-system"] {
            let namespace =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            match self.create(Kind::Namespace, namespace).await {
                Ok(_) | Err(ApiServerError::AlreadyExists(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Creates an object: defaults, validates, assigns uid and timestamps,
    /// and writes it only if no object of that name exists.
    ///
    /// # Errors
    /// [`ApiServerError::AlreadyExists`], [`ApiServerError::Invalid`],
    /// [`ApiServerError::NotFound`] for a missing namespace.
    pub async fn create(&self, kind: Kind, mut raw: Value) -> Result<Value, ApiServerError> {
        prepare_identity(kind, &mut raw)?;
        let mut object = object::normalize(kind, raw)?;
        let meta = ensure_metadata(&mut object);
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert(
            "creationTimestamp".into(),
            json!(rudder_api::time::now_rfc3339()),
        );
        meta.insert("generation".into(), json!(1));
        meta.remove("resourceVersion");
        meta.remove("deletionTimestamp");
        let (namespace, name) = namespace_and_name(&object);
        if kind.namespaced()
            && self
                .store
                .get(Kind::Namespace.key("", &namespace))
                .await?
                .is_none()
        {
            return Err(ApiServerError::NotFound(format!(
                "namespace {namespace:?} not found: create it first (rudderctl apply -f a Namespace)"
            )));
        }
        let key = kind.key(&namespace, &name);
        // A Service's ClusterIP/NodePorts are claimed in the same
        // transaction; a lost race on a picked value just picks again.
        let mut attempts = 0;
        // Each attempt claims from what was submitted: a value picked by a
        // lost attempt is not one the user asked for.
        let submitted = object.clone();
        let response = loop {
            object.clone_from(&submitted);
            let claim = if kind == Kind::Service {
                allocation::claim(&self.store, &mut object, None).await?
            } else {
                allocation::Claim::default()
            };
            let mut compare = vec![Compare {
                key: key.clone().into_bytes(),
                target: CompareTarget::CreateRevision(0),
                op: CompareOp::Equal,
            }];
            compare.extend(claim.compares.iter().cloned());
            let mut success = vec![Op::Put(PutRequest {
                key: key.clone().into_bytes(),
                value: encode(&object),
                lease: 0,
            })];
            success.extend(claim.ops.iter().cloned());
            let response = self
                .store
                .txn(TxnRequest {
                    compare,
                    success,
                    failure: vec![],
                })
                .await?;
            attempts += 1;
            if response.succeeded
                || claim.is_empty()
                || attempts >= 16
                || self.store.get(key.as_str()).await?.is_some()
            {
                break response;
            }
            if let Some(err) = claim.requested_conflict(&self.store, &name).await? {
                return Err(err);
            }
        };
        if !response.succeeded {
            return Err(ApiServerError::AlreadyExists(format!(
                "{} {name:?} already exists{}",
                kind.plural(),
                in_namespace(kind, &namespace)
            )));
        }
        set_resource_version(&mut object, response.revision);
        Ok(object)
    }

    /// Reads one object.
    ///
    /// # Errors
    /// [`ApiServerError::NotFound`].
    pub async fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiServerError> {
        let namespace = effective_namespace(kind, namespace);
        let kv = self.current(kind, &namespace, name).await?;
        decode(&kv)
    }

    /// Lists objects; returns them with the revision they were read at.
    ///
    /// # Errors
    /// Store errors.
    pub async fn list(
        &self,
        kind: Kind,
        filter: &Filter,
    ) -> Result<(Vec<Value>, i64), ApiServerError> {
        let scoped;
        let filter = if kind.namespaced() {
            filter
        } else {
            // A namespace means nothing to cluster-scoped kinds.
            scoped = Filter {
                namespace: String::new(),
                ..filter.clone()
            };
            &scoped
        };
        let prefix = list_prefix(kind, &filter.namespace);
        let (response, revision) = self
            .store
            .range(RangeRequest {
                range: KeyRange::prefix(prefix),
                ..RangeRequest::default()
            })
            .await?;
        let mut items = Vec::with_capacity(response.kvs.len());
        for kv in &response.kvs {
            let object = decode(kv)?;
            if filter.matches(&object) {
                items.push(object);
            }
        }
        Ok((items, revision))
    }

    /// Replaces an object (`status_only`: only its status). A set
    /// `metadata.resourceVersion` must equal the stored one.
    ///
    /// # Errors
    /// [`ApiServerError::Conflict`], [`ApiServerError::NotFound`],
    /// [`ApiServerError::Invalid`].
    pub async fn update(
        &self,
        kind: Kind,
        mut raw: Value,
        status_only: bool,
    ) -> Result<Value, ApiServerError> {
        prepare_identity(kind, &mut raw)?;
        let (namespace, name) = namespace_and_name(&raw);
        if name.is_empty() {
            return Err(ApiServerError::BadRequest(format!(
                "{}: metadata.name is required to update",
                kind.name().to_lowercase()
            )));
        }
        let current_kv = self.current(kind, &namespace, &name).await?;
        let current = decode(&current_kv)?;
        let wanted_version = object::metadata_of(&raw).resource_version;
        if !wanted_version.is_empty() && wanted_version != current_kv.mod_revision.to_string() {
            return Err(conflict(kind, &name));
        }
        let mut next = if status_only {
            if !kind.has_status() {
                return Err(ApiServerError::BadRequest(format!(
                    "{} has no status to update",
                    kind.plural()
                )));
            }
            let mut next = current.clone();
            next["status"] = raw.get("status").cloned().unwrap_or(Value::Null);
            next
        } else {
            let mut next = raw;
            if kind.has_status() {
                match current.get("status") {
                    Some(status) => next["status"] = status.clone(),
                    None => {
                        if let Some(map) = next.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            }
            next
        };
        // Server-owned metadata cannot be changed by a client.
        let current_meta = current.get("metadata").cloned().unwrap_or_default();
        {
            let meta = ensure_metadata(&mut next);
            for field in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
            ] {
                match current_meta.get(field) {
                    Some(value) => meta.insert(field.into(), value.clone()),
                    None => meta.remove(field),
                };
            }
            meta.remove("resourceVersion");
        }
        let mut next = object::normalize(kind, next)?;
        let claim = if kind == Kind::Service && !status_only {
            allocation::claim(&self.store, &mut next, Some(&current)).await?
        } else {
            allocation::Claim::default()
        };
        if next.get("spec") != current.get("spec") {
            let generation = current_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            ensure_metadata(&mut next).insert("generation".into(), json!(generation + 1));
        }
        let mut unchanged = current.clone();
        if let Some(meta) = unchanged.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        if next == unchanged {
            // Like Kubernetes, a no-op update writes nothing.
            return Ok(current);
        }
        let key = kind.key(&namespace, &name);
        let mut compare = vec![Compare {
            key: key.clone().into_bytes(),
            target: CompareTarget::ModRevision(current_kv.mod_revision),
            op: CompareOp::Equal,
        }];
        compare.extend(claim.compares.iter().cloned());
        let mut success = vec![Op::Put(PutRequest {
            key: key.into_bytes(),
            value: encode(&next),
            lease: 0,
        })];
        success.extend(claim.ops.iter().cloned());
        let response = self
            .store
            .txn(TxnRequest {
                compare,
                success,
                failure: vec![],
            })
            .await?;
        if !response.succeeded {
            if let Some(err) = claim.requested_conflict(&self.store, &name).await? {
                return Err(err);
            }
            return Err(conflict(kind, &name));
        }
        set_resource_version(&mut next, response.revision);
        Ok(next)
    }

    /// Deletes an object; `resource_version` (if not empty) must match.
    /// Returns its last state.
    ///
    /// # Errors
    /// [`ApiServerError::NotFound`], [`ApiServerError::Conflict`].
    pub async fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        resource_version: &str,
    ) -> Result<Value, ApiServerError> {
        let namespace = effective_namespace(kind, namespace);
        // Without a resourceVersion the caller asked to delete whatever is
        // there: a write that lands between our read and our transaction
        // (a controller updating status) is no conflict of theirs, so read
        // again and retry, as Kubernetes does.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self
                .delete_once(kind, &namespace, name, resource_version)
                .await
            {
                Err(ApiServerError::Conflict(_))
                    if resource_version.is_empty() && attempts < DELETE_ATTEMPTS => {}
                result => return result,
            }
        }
    }

    async fn delete_once(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        resource_version: &str,
    ) -> Result<Value, ApiServerError> {
        let current_kv = self.current(kind, namespace, name).await?;
        if !resource_version.is_empty() && resource_version != current_kv.mod_revision.to_string() {
            return Err(conflict(kind, name));
        }
        let key = kind.key(namespace, name);
        let mut success = vec![Op::Delete(DeleteRequest {
            range: KeyRange::key(key.clone()),
        })];
        if kind == Kind::Service {
            // Released in the same transaction that deletes the Service.
            success.extend(allocation::release_ops(&allocation::held_keys(&decode(
                &current_kv,
            )?)));
        }
        let response = self
            .store
            .txn(TxnRequest {
                compare: vec![Compare {
                    key: key.clone().into_bytes(),
                    target: CompareTarget::ModRevision(current_kv.mod_revision),
                    op: CompareOp::Equal,
                }],
                success,
                failure: vec![],
            })
            .await?;
        if !response.succeeded {
            return Err(conflict(kind, name));
        }
        let deleted = match response.responses.into_iter().next() {
            Some(OpResponse::Delete { mut prev_kvs }) => prev_kvs.pop(),
            _ => None,
        };
        match deleted {
            Some(kv) => decode(&kv),
            None => Err(not_found(kind, namespace, name)),
        }
    }

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
                    let Some(resource_event) = classify(&filter, event, batch.revision) else {
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

    async fn current(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<KeyValue, ApiServerError> {
        self.store
            .get(kind.key(namespace, name))
            .await?
            .ok_or_else(|| not_found(kind, namespace, name))
    }
}

/// Turns one store event into what a filtered watcher sees, if anything.
fn classify(
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

pub(crate) fn watch_error(err: &WatchError) -> ApiServerError {
    match err {
        WatchError::Compacted { .. } | WatchError::Lagged { .. } => {
            ApiServerError::Gone(format!("too old resource version: {err}"))
        }
        WatchError::FutureRevision { .. } => ApiServerError::BadRequest(err.to_string()),
        WatchError::Closed(_) => ApiServerError::Store(StoreError::Unavailable(err.to_string())),
    }
}

fn list_prefix(kind: Kind, namespace: &str) -> String {
    if kind.namespaced() && !namespace.is_empty() {
        format!("{}{namespace}/", kind.key_prefix())
    } else {
        kind.key_prefix()
    }
}

fn effective_namespace(kind: Kind, namespace: &str) -> String {
    match (kind.namespaced(), namespace) {
        (false, _) => String::new(),
        (true, "") => "default".to_owned(),
        (true, ns) => ns.to_owned(),
    }
}

/// Fills in the namespace and a generated name before validation.
fn prepare_identity(kind: Kind, raw: &mut Value) -> Result<(), ApiServerError> {
    if !raw.is_object() {
        return Err(ApiServerError::BadRequest(format!(
            "{}: the object must be a JSON/YAML mapping",
            kind.name().to_lowercase()
        )));
    }
    let meta = ensure_metadata(raw);
    if kind.namespaced() {
        let empty = meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if empty {
            meta.insert("namespace".into(), json!("default"));
        }
    }
    let name_empty = meta
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if name_empty && let Some(prefix) = meta.get("generateName").and_then(Value::as_str) {
        let suffix: String = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .chars()
            .take(5)
            .collect();
        let name = format!("{prefix}{suffix}");
        meta.insert("name".into(), json!(name));
    }
    Ok(())
}

fn ensure_metadata(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata") {
        Some(Value::Object(map)) => map,
        _ => unreachable!("metadata was just made an object"),
    }
}

fn namespace_and_name(object: &Value) -> (String, String) {
    let meta = object::metadata_of(object);
    (meta.namespace, meta.name)
}

fn set_resource_version(object: &mut Value, revision: i64) {
    ensure_metadata(object).insert("resourceVersion".into(), json!(revision.to_string()));
}

fn encode(object: &Value) -> Vec<u8> {
    let mut stored = object.clone();
    if let Some(meta) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&stored).unwrap_or_default()
}

fn decode(kv: &KeyValue) -> Result<Value, ApiServerError> {
    let mut object: Value = serde_json::from_slice(&kv.value).map_err(|err| {
        ApiServerError::Store(StoreError::Storage(format!(
            "object at {} is not JSON: {err}",
            String::from_utf8_lossy(&kv.key)
        )))
    })?;
    set_resource_version(&mut object, kv.mod_revision);
    Ok(object)
}

fn in_namespace(kind: Kind, namespace: &str) -> String {
    if kind.namespaced() {
        format!(" in namespace {namespace:?}")
    } else {
        String::new()
    }
}

fn not_found(kind: Kind, namespace: &str, name: &str) -> ApiServerError {
    ApiServerError::NotFound(format!(
        "{} {name:?} not found{}",
        kind.plural(),
        in_namespace(kind, namespace)
    ))
}

/// Tries of an unconditional delete racing other writers.
const DELETE_ATTEMPTS: usize = 16;

fn conflict(kind: Kind, name: &str) -> ApiServerError {
    ApiServerError::Conflict(format!(
        "operation cannot be fulfilled on {} {name:?}: the object has been modified; read it again and apply your changes to the latest version",
        kind.plural()
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rudder_kvstore::StoreConfig;

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
