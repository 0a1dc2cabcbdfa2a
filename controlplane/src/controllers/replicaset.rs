//! The ReplicaSet controller: keeps `spec.replicas` active pods from the
//! template, replacing pods that are deleted or fail, and reports counts
//! in `status`.

use std::{collections::HashSet, sync::Arc, time::Duration};

use futures::future::join_all;
use rudder_api::{
    Kind,
    apps::{ReplicaSet, ReplicaSetStatus},
    core::Pod,
    events::EventType,
    facts::{ObjectExt, ObjectRef, PodExt},
    meta::{ObjectMeta, OwnerReference},
    selector::Selector,
};
use rudder_client::{Client, ClientError, EventRecorder, workqueue::WorkQueue};
use tokio::task::JoinHandle;

use super::{Requeue, spawn_workers};

use crate::informers::Informers;

/// How long a controller waits for its cache to show its own writes.
const CACHE_WAIT: Duration = Duration::from_secs(10);
/// Pods created or deleted at once per ReplicaSet.
const BURST: usize = 64;

/// Keeps each ReplicaSet's pods at its replica count.
#[derive(Debug, Clone)]
pub struct ReplicaSetController {
    client: Client,
    informers: Informers,
    events: EventRecorder,
    queue: WorkQueue<ObjectRef>,
}

impl ReplicaSetController {
    /// A controller over the shared informers, reporting to `events`.
    pub fn new(client: Client, informers: Informers, events: EventRecorder) -> Self {
        Self {
            client,
            informers,
            events,
            queue: WorkQueue::default(),
        }
    }

    /// Registers its handlers and spawns its workers.
    pub fn start(self, tasks: &mut Vec<JoinHandle<()>>) {
        let queue = self.queue.clone();
        self.informers
            .replica_sets
            .on_change(move |change| queue.add(change.object().key()));
        let queue = self.queue.clone();
        self.informers.pods.on_change(move |change| {
            for pod in change.old().into_iter().chain([change.object()]) {
                if let Some(owner) = pod.controller()
                    && owner.kind == "ReplicaSet"
                {
                    queue.add(ObjectRef::new(
                        pod.metadata.namespace.as_str(),
                        owner.name.as_str(),
                    ));
                }
            }
        });
        let controller = self.clone();
        spawn_workers(
            "replicaset",
            self.informers.clone(),
            self.queue.clone(),
            4,
            move |key: ObjectRef| {
                let controller = controller.clone();
                async move { controller.reconcile(&key).await }
            },
            tasks,
        );
    }

    /// The active pods a ReplicaSet controls.
    pub fn pods_of(informers: &Informers, set: &ReplicaSet) -> Vec<Arc<Pod>> {
        let Ok(selector) = Selector::from_label_selector(&set.spec.selector) else {
            return Vec::new();
        };
        let hint = set.spec.selector.match_labels.iter().next();
        informers
            .pods
            .select(
                &set.metadata.namespace,
                &selector,
                hint.map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .into_iter()
            .filter(|pod| pod.controller().is_some_and(|o| o.uid == set.metadata.uid))
            .collect()
    }

    async fn reconcile(&self, key: &ObjectRef) -> Result<Requeue, ClientError> {
        let Some(set) = self.informers.replica_sets.get(key) else {
            return Ok(Requeue::No);
        };
        if set.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::No);
        }
        let owned = Self::pods_of(&self.informers, &set);
        // Finished pods are replaced; removing them keeps the set tidy.
        let finished: Vec<_> = owned
            .iter()
            .filter(|p| !p.is_active() && p.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        let mut active: Vec<_> = owned.into_iter().filter(|p| p.is_active()).collect();
        let wanted = usize::try_from(set.spec.replicas.unwrap_or(1)).unwrap_or(0);
        let mut deleted = HashSet::new();
        for pod in &finished {
            self.delete_pod(pod, &mut deleted).await?;
        }
        if active.len() < wanted {
            let template = pod_from(&set);
            let missing = wanted - active.len();
            let mut highest = 0;
            let mut created = 0;
            // Slow start: a template that cannot be created fails once,
            // not a thousand times.
            let mut batch = 1;
            while created < missing {
                let count = batch.min(missing - created);
                let results = join_all((0..count).map(|_| self.client.create(&template))).await;
                for result in results {
                    let pod = match result {
                        Ok(pod) => pod,
                        Err(err) => {
                            self.events.record(
                                &*set,
                                EventType::Warning,
                                "FailedCreate",
                                format!("Error creating: {err}"),
                            );
                            return Err(err);
                        }
                    };
                    self.events.record(
                        &*set,
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!("Created pod: {}", pod.metadata.name),
                    );
                    highest = highest.max(pod.revision());
                    created += 1;
                }
                batch = (batch * 2).min(BURST);
            }
            tracing::info!(replicaset = %key, created, "created pods");
            self.informers
                .pods
                .wait_for_revision(highest, CACHE_WAIT)
                .await;
        } else if active.len() > wanted {
            active.sort_by_key(|pod| deletion_rank(pod));
            let surplus: Vec<_> = active.drain(..active.len() - wanted).collect();
            for chunk in surplus.chunks(BURST) {
                let results = join_all(chunk.iter().map(|pod| {
                    self.client
                        .delete::<Pod>(&pod.metadata.namespace, &pod.metadata.name)
                }))
                .await;
                for (pod, result) in chunk.iter().zip(results) {
                    match result {
                        Ok(_) => {
                            self.events.record(
                                &*set,
                                EventType::Normal,
                                "SuccessfulDelete",
                                format!("Deleted pod: {}", pod.metadata.name),
                            );
                            deleted.insert(pod.key());
                        }
                        Err(ClientError::NotFound(_)) => {
                            deleted.insert(pod.key());
                        }
                        Err(err) => return Err(err),
                    }
                }
            }
            tracing::info!(replicaset = %key, deleted = surplus.len(), "deleted pods");
        }
        if !deleted.is_empty() {
            let pods = self.informers.pods.clone();
            // A deleted pod on a node stays, terminating, until its agent
            // has stopped it: it no longer counts once it is marked.
            pods.wait_until(CACHE_WAIT, |pods| {
                deleted.iter().all(|key| {
                    pods.get(key)
                        .is_none_or(|pod| pod.metadata.deletion_timestamp.is_some())
                })
            })
            .await;
        }
        self.update_status(&set).await
    }

    async fn delete_pod(
        &self,
        pod: &Pod,
        deleted: &mut HashSet<ObjectRef>,
    ) -> Result<(), ClientError> {
        match self
            .client
            .delete::<Pod>(&pod.metadata.namespace, &pod.metadata.name)
            .await
        {
            Ok(_) | Err(ClientError::NotFound(_)) => {
                deleted.insert(pod.key());
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    async fn update_status(&self, set: &ReplicaSet) -> Result<Requeue, ClientError> {
        let pods: Vec<_> = Self::pods_of(&self.informers, set)
            .into_iter()
            .filter(|p| p.is_active())
            .collect();
        let min_ready = Duration::from_secs(
            u64::try_from(set.spec.min_ready_seconds.unwrap_or(0)).unwrap_or(0),
        );
        let mut requeue = Requeue::No;
        let ready = pods.iter().filter(|p| p.is_ready()).count();
        let available = pods
            .iter()
            .filter(|p| match ready_for(p) {
                Some(for_) if for_ >= min_ready => true,
                Some(for_) => {
                    requeue = Requeue::After(min_ready - for_ + Duration::from_millis(100));
                    false
                }
                None => false,
            })
            .count();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let status = ReplicaSetStatus {
            replicas: count(pods.len()),
            fully_labeled_replicas: Some(count(pods.len())),
            ready_replicas: Some(count(ready)),
            available_replicas: Some(count(available)),
            observed_generation: Some(set.metadata.generation),
            conditions: set
                .status
                .as_ref()
                .map(|status| status.conditions.clone())
                .unwrap_or_default(),
        };
        if set.status.as_ref() != Some(&status) {
            let mut next = set.clone();
            next.status = Some(status);
            let written = self.client.update_status(&next).await?;
            self.informers
                .replica_sets
                .wait_for_revision(written.revision(), CACHE_WAIT)
                .await;
        }
        Ok(requeue)
    }
}

/// How long a pod has been ready (None: not ready).
fn ready_for(pod: &Pod) -> Option<Duration> {
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    let since = ready
        .last_transition_time
        .as_deref()
        .and_then(rudder_api::time::parse_rfc3339);
    Some(since.map_or(Duration::MAX, |t| t.elapsed().unwrap_or(Duration::ZERO)))
}

/// Which pods go first when scaling down: unscheduled, then pending, then
/// not ready, then the youngest.
fn deletion_rank(pod: &Pod) -> (u8, u8, u8, std::cmp::Reverse<String>) {
    let unscheduled = u8::from(pod.spec.node_name.is_some());
    let running = u8::from(pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
    let ready = u8::from(pod.is_ready());
    let created = pod.metadata.creation_timestamp.clone().unwrap_or_default();
    (unscheduled, running, ready, std::cmp::Reverse(created))
}

/// A new pod of `set`.
pub fn pod_from(set: &ReplicaSet) -> Pod {
    let template = &set.spec.template;
    Pod {
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        metadata: ObjectMeta {
            generate_name: format!("{}-", set.metadata.name),
            namespace: set.metadata.namespace.clone(),
            labels: template.metadata.labels.clone(),
            annotations: template.metadata.annotations.clone(),
            owner_references: vec![OwnerReference {
                api_version: Kind::ReplicaSet.api_version().to_owned(),
                kind: "ReplicaSet".to_owned(),
                name: set.metadata.name.clone(),
                uid: set.metadata.uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }],
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}
