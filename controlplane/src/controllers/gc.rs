//! Garbage collection: ReplicaSets and Pods whose owners are all gone are
//! deleted (a deleted Deployment takes its ReplicaSets, and through them
//! their pods, with it).
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
    facts::{ObjectExt, ObjectRef},
    meta::{ObjectMeta, OwnerReference},
};
use rudder_client::{Client, ClientError, informer::Change, workqueue::WorkQueue};
use tokio::task::JoinHandle;

use super::{Requeue, spawn_workers};

use crate::informers::Informers;

/// A dependent to check: its kind and key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dependent {
    kind: Kind,
    key: ObjectRef,
}

impl std::fmt::Display for Dependent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.key)
    }
}

/// Deletes objects whose owners are gone.
#[derive(Debug, Clone)]
pub struct GarbageCollector {
    client: Client,
    informers: Informers,
    queue: WorkQueue<Dependent>,
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
            if let Change::Deleted(gone) = change {
                for set in sets.in_namespace(&gone.metadata.namespace) {
                    if owned_by(&set.metadata, &gone.metadata.uid) {
                        queue.add(Dependent {
                            kind: Kind::ReplicaSet,
                            key: set.key(),
                        });
                    }
                }
            }
        });
        let queue = self.queue.clone();
        let pods = self.informers.pods.clone();
        self.informers.replica_sets.on_change(move |change| {
            let set = change.object();
            match change {
                Change::Deleted(_) => {
                    for pod in pods.in_namespace(&set.metadata.namespace) {
                        if owned_by(&pod.metadata, &set.metadata.uid) {
                            queue.add(Dependent {
                                kind: Kind::Pod,
                                key: pod.key(),
                            });
                        }
                    }
                }
                // A new dependent: its owner may be gone already.
                Change::Added(_) if !set.metadata.owner_references.is_empty() => {
                    queue.add(Dependent {
                        kind: Kind::ReplicaSet,
                        key: set.key(),
                    });
                }
                _ => {}
            }
        });
        let queue = self.queue.clone();
        self.informers.pods.on_change(move |change| {
            if let Change::Added(pod) = change
                && !pod.metadata.owner_references.is_empty()
            {
                queue.add(Dependent {
                    kind: Kind::Pod,
                    key: pod.key(),
                });
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
            move |dependent: Dependent| {
                let collector = collector.clone();
                async move { collector.collect(&dependent).await }
            },
            tasks,
        );
    }

    fn sweep(&self) {
        for set in self.informers.replica_sets.list() {
            if !set.metadata.owner_references.is_empty() {
                self.queue.add(Dependent {
                    kind: Kind::ReplicaSet,
                    key: set.key(),
                });
            }
        }
        for pod in self.informers.pods.list() {
            if !pod.metadata.owner_references.is_empty() {
                self.queue.add(Dependent {
                    kind: Kind::Pod,
                    key: pod.key(),
                });
            }
        }
    }

    async fn collect(&self, dependent: &Dependent) -> Result<Requeue, ClientError> {
        let meta: ObjectMeta = match dependent.kind {
            Kind::Pod => match self.informers.pods.get(&dependent.key) {
                Some(pod) => Arc::unwrap_or_clone(pod).metadata,
                None => return Ok(Requeue::No),
            },
            Kind::ReplicaSet => match self.informers.replica_sets.get(&dependent.key) {
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
        let (namespace, name) = (
            dependent.key.namespace.as_str(),
            dependent.key.name.as_str(),
        );
        match self
            .client
            .delete_json(dependent.kind, namespace, name, &meta.resource_version)
            .await
        {
            Ok(_) => {
                tracing::info!(dependent = %dependent, "deleted: its owner is gone");
                Ok(Requeue::No)
            }
            Err(ClientError::NotFound(_)) => Ok(Requeue::No),
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

fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().any(|o| o.uid == uid)
}
