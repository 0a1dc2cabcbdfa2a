//! Deletion as Kubernetes does it: an object that still has work to do
//! before it goes is not removed but marked. A pod bound to a node gets
//! `deletionTimestamp` (now + its grace period) and
//! `deletionGracePeriodSeconds`, and its node's agent stops it (SIGTERM,
//! the grace period, SIGKILL, sandbox torn down) and then removes it with
//! grace 0. An object with finalizers stays until the last one is removed;
//! a Namespace gets the `kubernetes` finalizer, which the namespace
//! controller removes once everything in it is gone. An owner deleted
//! with `propagationPolicy` Orphan or Foreground gets the `orphan` or
//! `foregroundDeletion` finalizer, which the garbage collector removes
//! once it has released or deleted the owner's dependents.

use rudder_api::{Kind, meta::DeleteOptions, object};
use rudder_kvstore::{
    Compare, CompareOp, CompareTarget, DeleteRequest, KeyRange, KeyValue, Op, OpResponse,
    PutRequest, TxnRequest,
};
use serde_json::{Value, json};

use super::{
    ApiServer, ApiServerError,
    error::{conflict, not_found},
    kind_hooks::hooks_for,
    storage::{decode, encode, ensure_metadata, set_resource_version},
};

/// The finalizer every deleted Namespace carries until the namespace
/// controller has deleted what is in it (`spec.finalizers`, as in
/// Kubernetes).
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// Grace a pod gets when neither the request nor its spec names one.
const DEFAULT_POD_GRACE_SECONDS: i64 = 30;

/// Largest grace period a request may name (as pod validation bounds
/// terminationGracePeriodSeconds: the agent adds it to a clock).
const MAX_GRACE_SECONDS: i64 = i32::MAX as i64;

/// What one delete does to the stored object.
enum Deletion {
    /// Remove it from the store now.
    Remove,
    /// Keep it, marked as being deleted.
    Mark(Value),
    /// It is being deleted already, no sooner than this request asks.
    AlreadyMarked,
}

impl ApiServer {
    /// Deletes an object: removes it, or marks it as being deleted when it
    /// has work to do first (a pod on a node, finalizers, a namespace's
    /// contents). Returns its state after the request.
    ///
    /// # Errors
    /// [`ApiServerError::NotFound`], [`ApiServerError::Conflict`] for a
    /// failed precondition, [`ApiServerError::BadRequest`] for a grace
    /// period out of range.
    pub async fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value, ApiServerError> {
        if let Some(grace) = options.grace_period_seconds
            && !(0..=MAX_GRACE_SECONDS).contains(&grace)
        {
            return Err(ApiServerError::BadRequest(format!(
                "gracePeriodSeconds {grace} out of range 0-{MAX_GRACE_SECONDS}"
            )));
        }
        let namespace = super::storage::effective_namespace(kind, namespace);
        // Without a resourceVersion the caller asked to delete whatever is
        // there: a write that lands between our read and our transaction
        // (a controller updating status) is no conflict of theirs, so read
        // again and retry, as Kubernetes does.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.delete_once(kind, &namespace, name, options).await {
                Err(ApiServerError::Conflict(_))
                    if options.resource_version.is_empty() && attempts < DELETE_ATTEMPTS => {}
                result => return result,
            }
        }
    }

    async fn delete_once(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value, ApiServerError> {
        let current_kv = self.current(kind, namespace, name).await?;
        if !options.resource_version.is_empty()
            && options.resource_version != current_kv.mod_revision.to_string()
        {
            return Err(conflict(kind, name));
        }
        let current = decode(&current_kv)?;
        if !options.uid.is_empty() && object::metadata_of(&current).uid != options.uid {
            return Err(ApiServerError::Conflict(format!(
                "{} {name:?}: precondition failed: uid in precondition {:?} does not match the object's",
                kind.name().to_lowercase(),
                options.uid
            )));
        }
        match deletion_of(kind, &current, options) {
            Deletion::Remove => self.remove(kind, namespace, name, &current_kv).await,
            Deletion::AlreadyMarked => Ok(current),
            Deletion::Mark(next) => {
                self.put_if_unchanged(kind, namespace, name, &current_kv, next)
                    .await
            }
        }
    }

    /// Removes the object `current` from the store, if it is unchanged.
    pub(super) async fn remove(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        current: &KeyValue,
    ) -> Result<Value, ApiServerError> {
        let key = kind.key(namespace, name);
        let mut success = vec![Op::Delete(DeleteRequest {
            range: KeyRange::key(key.clone()),
        })];
        success.extend(hooks_for(kind).before_delete(current)?);
        let response = self
            .store
            .txn(TxnRequest {
                compare: vec![unchanged(&key, current)],
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

    async fn put_if_unchanged(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        current: &KeyValue,
        mut next: Value,
    ) -> Result<Value, ApiServerError> {
        let key = kind.key(namespace, name);
        let response = self
            .store
            .txn(TxnRequest {
                compare: vec![unchanged(&key, current)],
                success: vec![Op::Put(PutRequest {
                    key: key.clone().into_bytes(),
                    value: encode(&next),
                    lease: 0,
                })],
                failure: vec![],
            })
            .await?;
        if !response.succeeded {
            return Err(conflict(kind, name));
        }
        set_resource_version(&mut next, response.revision);
        Ok(next)
    }
}

fn unchanged(key: &str, current: &KeyValue) -> Compare {
    Compare {
        key: key.as_bytes().to_vec(),
        target: CompareTarget::ModRevision(current.mod_revision),
        op: CompareOp::Equal,
    }
}

/// Whether `object`, being deleted, has nothing left to wait for: no
/// finalizer and no grace period (an update that removes the last
/// finalizer of such an object removes it).
pub(super) fn ready_to_remove(kind: Kind, object: &Value) -> bool {
    let meta = &object["metadata"];
    meta.get("deletionTimestamp").is_some_and(|t| !t.is_null())
        && meta["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) == 0
        && pending_finalizers(kind, object) == 0
}

fn pending_finalizers(kind: Kind, object: &Value) -> usize {
    let count = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    let spec = if kind == Kind::Namespace {
        count("/spec/finalizers")
    } else {
        0
    };
    count("/metadata/finalizers") + spec
}

/// The grace period a delete gives `object`: pods bound to a node get the
/// request's or their spec's; everything else, and a pod no agent runs,
/// goes at once.
fn grace_of(kind: Kind, object: &Value, options: &DeleteOptions) -> i64 {
    if kind != Kind::Pod {
        return 0;
    }
    let bound = object
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|node| !node.is_empty());
    if !bound {
        return 0;
    }
    options.grace_period_seconds.unwrap_or_else(|| {
        object
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_POD_GRACE_SECONDS)
    })
}

fn deletion_of(kind: Kind, current: &Value, options: &DeleteOptions) -> Deletion {
    let grace = grace_of(kind, current, options);
    let meta = &current["metadata"];
    let marked = meta.get("deletionTimestamp").is_some_and(|t| !t.is_null());
    let mut next = current.clone();
    if kind == Kind::Namespace && !marked {
        add_namespace_finalizer(&mut next);
    }
    // Only kinds that own dependents here wait for the collector (it
    // would never release the finalizer of another kind).
    if !marked
        && matches!(kind, Kind::Deployment | Kind::ReplicaSet)
        && let Some(finalizer) = options.propagation_policy.and_then(|p| p.finalizer())
    {
        add_finalizer(&mut next, finalizer);
    }
    if grace == 0 && pending_finalizers(kind, &next) == 0 {
        return Deletion::Remove;
    }
    let previous_grace = meta["deletionGracePeriodSeconds"].as_i64();
    // A second delete may shorten the grace period, never lengthen it.
    if marked && previous_grace.is_some_and(|previous| previous <= grace) {
        return Deletion::AlreadyMarked;
    }
    let deadline = std::time::SystemTime::now()
        + std::time::Duration::from_secs(u64::try_from(grace).unwrap_or(0));
    let next_meta = ensure_metadata(&mut next);
    next_meta.insert(
        "deletionTimestamp".into(),
        json!(rudder_api::time::format_rfc3339(deadline)),
    );
    next_meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    next_meta.remove("resourceVersion");
    if kind == Kind::Namespace {
        next["status"]["phase"] = json!("Terminating");
    }
    Deletion::Mark(next)
}

fn add_finalizer(object: &mut Value, finalizer: &str) {
    let meta = ensure_metadata(object);
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(list) = list.as_array_mut()
        && !list.iter().any(|f| f == finalizer)
    {
        list.push(json!(finalizer));
    }
}

fn add_namespace_finalizer(namespace: &mut Value) {
    if !namespace.get("spec").is_some_and(Value::is_object) {
        namespace["spec"] = json!({});
    }
    let finalizers = &mut namespace["spec"]["finalizers"];
    if !finalizers.is_array() {
        *finalizers = json!([]);
    }
    if let Some(list) = finalizers.as_array_mut()
        && !list.iter().any(|f| f == NAMESPACE_FINALIZER)
    {
        list.push(json!(NAMESPACE_FINALIZER));
    }
}

/// Tries of an unconditional delete racing other writers.
const DELETE_ATTEMPTS: usize = 16;
