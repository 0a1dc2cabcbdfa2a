//! Garbage collection: ReplicaSets and Pods whose owners are all gone are
//! deleted (a deleted Deployment takes its ReplicaSets, and through them
//! their pods, with it).
//!
//! Owners deleted with a propagation policy wait for the collector: one
//! with the `orphan` finalizer is removed from its dependents'
//! `ownerReferences` (they stay, unowned), one with `foregroundDeletion`
//! has its dependents deleted first (in the foreground too, so a
//! Deployment waits for its ReplicaSets and they for their pods); then the
//! collector removes the finalizer and the API server the owner.
//!
//! An owner missing from the cache may just be newer than the cache, so
//! before deleting, the collector asks the API server: only an owner that
//! is not found there (or is a different incarnation, another uid) counts
//! as gone. The delete carries the dependent's resourceVersion, so an
//! object adopted meanwhile is not deleted.

use std::{sync::Arc, time::Duration};

use rudder_api::{
    Kind,
    apps::{Deployment, ReplicaSet},
    core::Pod,
    facts::{ObjectExt, ObjectRef},
    meta::{
        DeleteOptions, FOREGROUND_FINALIZER, ORPHAN_FINALIZER, ObjectMeta, OwnerReference,
        PropagationPolicy,
    },
};
use rudder_client::{Client, ClientError, informer::Change, workqueue::WorkQueue};
use tokio::task::JoinHandle;

use super::{Requeue, spawn_workers};

use crate::informers::Informers;

/// An object to look at: a dependent (is its owner gone?) or an owner
/// being deleted with a propagation policy (what do its dependents need?).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Work {
    /// A dependent: its kind and key.
    Dependent(Kind, ObjectRef),
    /// An owner being deleted: its kind and key.
    Owner(Kind, ObjectRef),
}

impl std::fmt::Display for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dependent(kind, key) => write!(f, "{kind} {key}"),
            Self::Owner(kind, key) => write!(f, "{kind} {key} (owner being deleted)"),
        }
    }
}

/// How long an owner waiting for its dependents waits before the
/// collector looks again, should no dependent's event come.
const OWNER_RECHECK: Duration = Duration::from_secs(5);

/// Whether `meta` is an owner's, deleted with a policy that waits for the
/// collector.
fn awaits_collector(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
        && meta
            .finalizers
            .iter()
            .any(|f| f == ORPHAN_FINALIZER || f == FOREGROUND_FINALIZER)
}

/// Deletes objects whose owners are gone.
#[derive(Debug, Clone)]
pub struct GarbageCollector {
    client: Client,
    informers: Informers,
    queue: WorkQueue<Work>,
}

impl GarbageCollector {
    /// A collector over the shared informers.
    pub fn new(client: Client, informers: Informers) -> Self {
        Self {
            client,
            informers,
            queue: WorkQueue::default(),
        }
    }

    /// Registers its handlers and spawns its workers.
    pub fn start(self, tasks: &mut Vec<JoinHandle<()>>) {
        // An owner deleted: check its dependents.
        let queue = self.queue.clone();
        let sets = self.informers.replica_sets.clone();
        self.informers.deployments.on_change(move |change| {
            let deployment = change.object();
            match change {
                Change::Deleted(gone) => {
                    for set in sets.in_namespace(&gone.metadata.namespace) {
                        if owned_by(&set.metadata, &gone.metadata.uid) {
                            queue.add(Work::Dependent(Kind::ReplicaSet, set.key()));
                        }
                    }
                }
                _ if awaits_collector(&deployment.metadata) => {
                    queue.add(Work::Owner(Kind::Deployment, deployment.key()));
                }
                _ => {}
            }
        });
        let queue = self.queue.clone();
        let pods = self.informers.pods.clone();
        let deployments = self.informers.deployments.clone();
        self.informers.replica_sets.on_change(move |change| {
            let set = change.object();
            // An owner waiting for its dependents looks again when one
            // changes (is marked, or goes).
            for key in owners_of_kind(&set.metadata, "Deployment") {
                if deployments
                    .get(&key)
                    .is_some_and(|d| awaits_collector(&d.metadata))
                {
                    queue.add(Work::Owner(Kind::Deployment, key));
                }
            }
            match change {
                Change::Deleted(_) => {
                    for pod in pods.in_namespace(&set.metadata.namespace) {
                        if owned_by(&pod.metadata, &set.metadata.uid) {
                            queue.add(Work::Dependent(Kind::Pod, pod.key()));
                        }
                    }
                }
                _ if awaits_collector(&set.metadata) => {
                    queue.add(Work::Owner(Kind::ReplicaSet, set.key()));
                }
                // A new dependent: its owner may be gone already.
                Change::Added(_) if !set.metadata.owner_references.is_empty() => {
                    queue.add(Work::Dependent(Kind::ReplicaSet, set.key()));
                }
                _ => {}
            }
        });
        let queue = self.queue.clone();
        let sets = self.informers.replica_sets.clone();
        self.informers.pods.on_change(move |change| {
            let pod = change.object();
            for key in owners_of_kind(&pod.metadata, "ReplicaSet") {
                if sets
                    .get(&key)
                    .is_some_and(|s| awaits_collector(&s.metadata))
                {
                    queue.add(Work::Owner(Kind::ReplicaSet, key));
                }
            }
            if let Change::Added(pod) = change
                && !pod.metadata.owner_references.is_empty()
            {
                queue.add(Work::Dependent(Kind::Pod, pod.key()));
            }
        });
        // Owners deleted while no collector ran leave orphans that no event
        // will point at: sweep now and then.
        let sweeper = self.clone();
        tasks.push(tokio::spawn(async move {
            sweeper.informers.synced().await;
            loop {
                sweeper.sweep();
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }));
        let collector = self.clone();
        spawn_workers(
            "garbage-collector",
            self.informers.clone(),
            self.queue.clone(),
            2,
            move |work: Work| {
                let collector = collector.clone();
                async move {
                    match work {
                        Work::Dependent(kind, key) => collector.collect(kind, &key).await,
                        Work::Owner(kind, key) => collector.finalize_owner(kind, &key).await,
                    }
                }
            },
            tasks,
        );
    }

    fn sweep(&self) {
        for deployment in self.informers.deployments.list() {
            if awaits_collector(&deployment.metadata) {
                self.queue
                    .add(Work::Owner(Kind::Deployment, deployment.key()));
            }
        }
        for set in self.informers.replica_sets.list() {
            if awaits_collector(&set.metadata) {
                self.queue.add(Work::Owner(Kind::ReplicaSet, set.key()));
            }
            if !set.metadata.owner_references.is_empty() {
                self.queue.add(Work::Dependent(Kind::ReplicaSet, set.key()));
            }
        }
        for pod in self.informers.pods.list() {
            if !pod.metadata.owner_references.is_empty() {
                self.queue.add(Work::Dependent(Kind::Pod, pod.key()));
            }
        }
    }

    async fn collect(&self, kind: Kind, key: &ObjectRef) -> Result<Requeue, ClientError> {
        let meta: ObjectMeta = match kind {
            Kind::Pod => match self.informers.pods.get(key) {
                Some(pod) => Arc::unwrap_or_clone(pod).metadata,
                None => return Ok(Requeue::No),
            },
            Kind::ReplicaSet => match self.informers.replica_sets.get(key) {
                Some(set) => Arc::unwrap_or_clone(set).metadata,
                None => return Ok(Requeue::No),
            },
            _ => return Ok(Requeue::No),
        };
        if meta.owner_references.is_empty() {
            return Ok(Requeue::No);
        }
        for owner in &meta.owner_references {
            if self.owner_exists(&meta.namespace, owner).await? {
                return Ok(Requeue::No);
            }
        }
        let (namespace, name) = (key.namespace.as_str(), key.name.as_str());
        match self
            .client
            .delete_json(kind, namespace, name, &meta.resource_version)
            .await
        {
            Ok(_) => {
                tracing::info!(dependent = %Work::Dependent(kind, key.clone()), "deleted: its owner is gone");
                Ok(Requeue::No)
            }
            Err(ClientError::NotFound(_)) => Ok(Requeue::No),
            Err(err) => Err(err),
        }
    }

    /// An owner deleted with Orphan or Foreground: releases or deletes its
    /// dependents, then removes its finalizer (the API server then removes
    /// it).
    async fn finalize_owner(&self, kind: Kind, key: &ObjectRef) -> Result<Requeue, ClientError> {
        let meta = match kind {
            Kind::Deployment => self
                .informers
                .deployments
                .get(key)
                .map(|d| d.metadata.clone()),
            Kind::ReplicaSet => self
                .informers
                .replica_sets
                .get(key)
                .map(|s| s.metadata.clone()),
            _ => None,
        };
        let Some(meta) = meta.filter(awaits_collector) else {
            return Ok(Requeue::No);
        };
        let orphan = meta.finalizers.iter().any(|f| f == ORPHAN_FINALIZER);
        let dependents = self.dependents_of(kind, &meta);
        if orphan {
            for dependent in &dependents {
                self.release(dependent, &meta.uid).await?;
            }
            self.remove_finalizer(kind, key, ORPHAN_FINALIZER).await?;
            tracing::info!(owner = %Work::Owner(kind, key.clone()), released = dependents.len(), "dependents orphaned");
            return Ok(Requeue::No);
        }
        if dependents.is_empty() {
            self.remove_finalizer(kind, key, FOREGROUND_FINALIZER)
                .await?;
            tracing::info!(owner = %Work::Owner(kind, key.clone()), "dependents gone: deleting the owner");
            return Ok(Requeue::No);
        }
        for dependent in dependents
            .iter()
            .filter(|d| d.meta().deletion_timestamp.is_none())
        {
            let (dependent_kind, meta) = (dependent.kind(), dependent.meta());
            let options = DeleteOptions {
                resource_version: meta.resource_version.clone(),
                // Down the chain in the foreground too: a ReplicaSet
                // waits for its pods before it goes.
                propagation_policy: Some(PropagationPolicy::Foreground),
                ..DeleteOptions::default()
            };
            match self
                .client
                .delete_with(dependent_kind, &meta.namespace, &meta.name, &options)
                .await
            {
                Ok(_) | Err(ClientError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        // Their events bring the owner back; this is for a missed one.
        Ok(Requeue::After(OWNER_RECHECK))
    }

    /// The objects (cached) whose `ownerReferences` name `owner`.
    fn dependents_of(&self, kind: Kind, owner: &ObjectMeta) -> Vec<Owned> {
        match kind {
            Kind::Deployment => self
                .informers
                .replica_sets
                .in_namespace(&owner.namespace)
                .into_iter()
                .filter(|s| owned_by(&s.metadata, &owner.uid))
                .map(Owned::ReplicaSet)
                .collect(),
            Kind::ReplicaSet => self
                .informers
                .pods
                .in_namespace(&owner.namespace)
                .into_iter()
                .filter(|p| owned_by(&p.metadata, &owner.uid))
                .map(Owned::Pod)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Removes the owner `uid` from `dependent`'s `ownerReferences`.
    async fn release(&self, dependent: &Owned, uid: &str) -> Result<(), ClientError> {
        let result = match dependent {
            Owned::ReplicaSet(set) => {
                let mut set = ReplicaSet::clone(set);
                set.metadata.owner_references.retain(|o| o.uid != uid);
                self.client.update(&set).await.map(drop)
            }
            Owned::Pod(pod) => {
                let mut pod = Pod::clone(pod);
                pod.metadata.owner_references.retain(|o| o.uid != uid);
                self.client.update(&pod).await.map(drop)
            }
        };
        match result {
            Ok(()) | Err(ClientError::NotFound(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn remove_finalizer(
        &self,
        kind: Kind,
        key: &ObjectRef,
        finalizer: &str,
    ) -> Result<(), ClientError> {
        let result = match kind {
            Kind::Deployment => {
                let mut deployment: Deployment = self.client.get(&key.namespace, &key.name).await?;
                deployment.metadata.finalizers.retain(|f| f != finalizer);
                self.client.update(&deployment).await.map(drop)
            }
            Kind::ReplicaSet => {
                let mut set: ReplicaSet = self.client.get(&key.namespace, &key.name).await?;
                set.metadata.finalizers.retain(|f| f != finalizer);
                self.client.update(&set).await.map(drop)
            }
            _ => Ok(()),
        };
        match result {
            Ok(()) | Err(ClientError::NotFound(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn owner_exists(
        &self,
        namespace: &str,
        owner: &OwnerReference,
    ) -> Result<bool, ClientError> {
        let cached = match owner.kind.as_str() {
            "Deployment" => self
                .informers
                .deployments
                .get(&ObjectRef::new(namespace, owner.name.as_str()))
                .map(|d| d.metadata.uid.clone()),
            "ReplicaSet" => self
                .informers
                .replica_sets
                .get(&ObjectRef::new(namespace, owner.name.as_str()))
                .map(|s| s.metadata.uid.clone()),
            _ => None,
        };
        if cached.as_deref() == Some(owner.uid.as_str()) {
            return Ok(true);
        }
        let uid = match owner.kind.as_str() {
            "Deployment" => self
                .client
                .get::<Deployment>(namespace, &owner.name)
                .await
                .map(|d| d.metadata.uid),
            "ReplicaSet" => self
                .client
                .get::<ReplicaSet>(namespace, &owner.name)
                .await
                .map(|s| s.metadata.uid),
            // Owners of kinds this collector does not know are kept.
            _ => return Ok(true),
        };
        match uid {
            Ok(uid) => Ok(uid == owner.uid),
            Err(ClientError::NotFound(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }
}

/// A dependent as cached.
#[derive(Debug)]
enum Owned {
    ReplicaSet(Arc<ReplicaSet>),
    Pod(Arc<Pod>),
}

impl Owned {
    fn kind(&self) -> Kind {
        match self {
            Self::ReplicaSet(_) => Kind::ReplicaSet,
            Self::Pod(_) => Kind::Pod,
        }
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Self::ReplicaSet(set) => &set.metadata,
            Self::Pod(pod) => &pod.metadata,
        }
    }
}

/// The keys of the owners of kind `kind` that `meta` names.
fn owners_of_kind<'a>(meta: &'a ObjectMeta, kind: &'a str) -> impl Iterator<Item = ObjectRef> + 'a {
    meta.owner_references
        .iter()
        .filter(move |owner| owner.kind == kind)
        .map(|owner| ObjectRef::new(&meta.namespace, owner.name.as_str()))
}

fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().any(|o| o.uid == uid)
}
