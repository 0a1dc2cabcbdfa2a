//! Create, read, list, update and delete, with Kubernetes semantics:
//! server-owned metadata, resourceVersion compare-and-swap in the same
//! store transaction that writes, and each kind's
//! [`WriteHooks`](super::hooks::WriteHooks) joining
//! that transaction.

use rudder_api::{Kind, object};
use rudder_kvstore::{
    Compare, CompareOp, CompareTarget, KeyRange, KeyValue, Op, PutRequest, RangeRequest, TxnRequest,
};
use serde_json::{Value, json};

use super::{
    ApiServer, ApiServerError, Filter,
    deletion::ready_to_remove,
    error::{conflict, in_namespace, not_found},
    hooks::Claim,
    kind_hooks::hooks_for,
    storage::{
        decode, effective_namespace, encode, ensure_metadata, list_prefix, namespace_and_name,
        set_resource_version,
    },
};

/// Whether a write is made or only checked (`?dryRun=All`): a dry run
/// goes through defaulting, validation and the kind's hooks and answers
/// with what would be stored, but never reaches the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Store it.
    Persist,
    /// Check it and answer, store nothing.
    DryRun,
}

impl ApiServer {
    /// Creates an object: defaults, validates, assigns uid and timestamps,
    /// and writes it only if no object of that name exists.
    ///
    /// # Errors
    /// [`ApiServerError::AlreadyExists`], [`ApiServerError::Invalid`],
    /// [`ApiServerError::NotFound`] for a missing namespace.
    pub async fn create(&self, kind: Kind, raw: Value) -> Result<Value, ApiServerError> {
        self.create_with(kind, raw, Write::Persist).await
    }

    /// [`ApiServer::create`], or only its checks with [`Write::DryRun`].
    ///
    /// # Errors
    /// As [`ApiServer::create`].
    pub async fn create_with(
        &self,
        kind: Kind,
        mut raw: Value,
        write: Write,
    ) -> Result<Value, ApiServerError> {
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
        meta.remove("deletionGracePeriodSeconds");
        let (namespace, name) = namespace_and_name(&object);
        if kind.namespaced() {
            let Some(stored) = self.store.get(Kind::Namespace.key("", &namespace)).await? else {
                return Err(ApiServerError::NotFound(format!(
                    "namespace {namespace:?} not found: create it first (rudderctl apply -f a Namespace)"
                )));
            };
            // Nothing new may appear in a namespace whose contents are
            // being deleted (it would outlive it).
            if object::metadata_of(&decode(&stored)?)
                .deletion_timestamp
                .is_some()
            {
                return Err(ApiServerError::Conflict(format!(
                    "{} {name:?}: namespace {namespace:?} is being terminated: nothing new can be created in it",
                    kind.name().to_lowercase()
                )));
            }
        }
        let key = kind.key(&namespace, &name);
        if write == Write::DryRun {
            if self.store.get(key.as_str()).await?.is_some() {
                return Err(already_exists(kind, &namespace, &name));
            }
            hooks_for(kind)
                .before_create(&self.store, &mut object)
                .await?;
            return Ok(object);
        }
        // A Service's ClusterIP/NodePorts are claimed in the same
        // transaction; a lost race on a picked value just picks again.
        let mut attempts = 0;
        // Each attempt claims from what was submitted: a value picked by a
        // lost attempt is not one the user asked for.
        let submitted = object.clone();
        let response = loop {
            object.clone_from(&submitted);
            let claim = hooks_for(kind)
                .before_create(&self.store, &mut object)
                .await?;
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
            if let Some(err) = claim.requested_conflict(&self.store, kind, &name).await? {
                return Err(err);
            }
        };
        if !response.succeeded {
            return Err(already_exists(kind, &namespace, &name));
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
        raw: Value,
        status_only: bool,
    ) -> Result<Value, ApiServerError> {
        self.update_with(kind, raw, status_only, Write::Persist)
            .await
    }

    /// [`ApiServer::update`], or only its checks with [`Write::DryRun`].
    ///
    /// # Errors
    /// As [`ApiServer::update`].
    pub async fn update_with(
        &self,
        kind: Kind,
        mut raw: Value,
        status_only: bool,
        write: Write,
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
                "deletionGracePeriodSeconds",
            ] {
                match current_meta.get(field) {
                    Some(value) => meta.insert(field.into(), value.clone()),
                    None => meta.remove(field),
                };
            }
            meta.remove("resourceVersion");
        }
        let mut next = object::normalize(kind, next)?;
        // A status write leaves the spec alone: nothing for the hooks.
        let claim = if status_only {
            Claim::default()
        } else {
            hooks_for(kind)
                .before_update(&self.store, &mut next, &current)
                .await?
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
        if write == Write::DryRun {
            set_resource_version(&mut next, current_kv.mod_revision);
            return Ok(next);
        }
        if ready_to_remove(kind, &next) {
            // The last finalizer of an object being deleted is gone.
            return self.remove(kind, &namespace, &name, &current_kv).await;
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
            if let Some(err) = claim.requested_conflict(&self.store, kind, &name).await? {
                return Err(err);
            }
            return Err(conflict(kind, &name));
        }
        set_resource_version(&mut next, response.revision);
        Ok(next)
    }

    pub(super) async fn current(
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

fn already_exists(kind: Kind, namespace: &str, name: &str) -> ApiServerError {
    ApiServerError::AlreadyExists(format!(
        "{} {name:?} already exists{}",
        kind.plural(),
        in_namespace(kind, namespace)
    ))
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
