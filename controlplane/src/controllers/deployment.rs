//! The Deployment controller: one ReplicaSet per pod template (named after
//! the template's hash), rolled over with `RollingUpdate` (within
//! `maxSurge`/`maxUnavailable`) or `Recreate`, old ReplicaSets kept as
//! revision history up to `revisionHistoryLimit`, and rollout state in
//! `status`.
//!
//! Bounds are computed so that they hold for pods, not just for replica
//! counts: a ReplicaSet counts as `max(spec.replicas, status.replicas)`
//! pods (a scaled-down set still has its pods until its status says they
//! are gone) and as `min(spec.replicas, status.availableReplicas)`
//! available pods.

use std::{sync::Arc, time::Duration};

use rudder_api::{
    Kind,
    apps::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec},
    core::{IntOrString, ObjectReference},
    events::EventType,
    facts::{Conditions, ObjectExt, ObjectRef},
    meta::{ObjectMeta, OwnerReference},
    names::{DEPLOYMENT_REVISION_ANNOTATION, TEMPLATE_HASH_LABEL},
};
use rudder_client::{Client, ClientError, EventRecorder, workqueue::WorkQueue};
use tokio::task::JoinHandle;

use super::{Requeue, spawn_workers};

use crate::informers::Informers;

const CACHE_WAIT: Duration = Duration::from_secs(10);

/// Rolls Deployments out through ReplicaSets.
#[derive(Debug, Clone)]
pub struct DeploymentController {
    client: Client,
    informers: Informers,
    events: EventRecorder,
    queue: WorkQueue<ObjectRef>,
}

impl DeploymentController {
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
            .deployments
            .on_change(move |change| queue.add(change.object().key()));
        let queue = self.queue.clone();
        self.informers.replica_sets.on_change(move |change| {
            let set = change.object();
            if let Some(owner) = set.controller()
                && owner.kind == "Deployment"
            {
                queue.add(ObjectRef::new(
                    set.metadata.namespace.as_str(),
                    owner.name.as_str(),
                ));
            }
        });
        let controller = self.clone();
        spawn_workers(
            "deployment",
            self.informers.clone(),
            self.queue.clone(),
            2,
            move |key: ObjectRef| {
                let controller = controller.clone();
                async move { controller.reconcile(&key).await }
            },
            tasks,
        );
    }

    fn sets_of(&self, deployment: &Deployment) -> Vec<Arc<ReplicaSet>> {
        self.informers
            .replica_sets
            .in_namespace(&deployment.metadata.namespace)
            .into_iter()
            .filter(|set| {
                set.controller()
                    .is_some_and(|o| o.uid == deployment.metadata.uid)
            })
            .collect()
    }

    async fn reconcile(&self, key: &ObjectRef) -> Result<Requeue, ClientError> {
        let Some(deployment) = self.informers.deployments.get(key) else {
            return Ok(Requeue::No);
        };
        if deployment.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::No);
        }
        let hash = template_hash(&deployment);
        let sets = self.sets_of(&deployment);
        let (new, mut old): (Vec<_>, Vec<_>) = sets
            .into_iter()
            .partition(|set| set.metadata.labels.get(TEMPLATE_HASH_LABEL) == Some(&hash));
        old.sort_by_key(|set| revision(set));
        let mut new = new.into_iter().next();
        let replicas = deployment.spec.replicas.unwrap_or(1).max(0);
        let paused = deployment.spec.paused == Some(true);
        let recreate = deployment
            .spec
            .strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref())
            == Some("Recreate");
        let (surge, unavailable) = bounds(&deployment, replicas);

        if new.is_none() && !paused {
            let next_revision = old.iter().map(|s| revision(s)).max().unwrap_or(0) + 1;
            let old_pods: i64 = old.iter().map(|s| pods(s)).sum();
            let initial = if recreate {
                if old_pods > 0 { 0 } else { replicas }
            } else {
                replicas.min((replicas + surge - old_pods).max(0))
            };
            let created = self
                .client
                .create(&new_set(&deployment, &hash, next_revision, initial))
                .await;
            let created = match created {
                Ok(created) => created,
                // Created by an earlier round whose cache wait timed out.
                Err(ClientError::AlreadyExists(_)) => return Ok(Requeue::After(CACHE_WAIT / 10)),
                Err(err) => return Err(err),
            };
            tracing::info!(deployment = %key, replicaset = %created.metadata.name, revision = next_revision, "created ReplicaSet");
            self.events.record(
                &*deployment,
                EventType::Normal,
                "ScalingReplicaSet",
                format!(
                    "Scaled up replica set {} to {initial}",
                    created.metadata.name
                ),
            );
            self.settle(&created).await;
            new = self.informers.replica_sets.get(&created.key());
        }
        let Some(new) = new else {
            return self.update_status(&deployment, None, &old).await;
        };

        if !paused {
            let changed = if recreate {
                self.recreate(&new, &old, replicas).await?
            } else {
                self.roll(&new, &old, replicas, surge, unavailable).await?
            };
            if changed {
                // The next round looks at the settled sets.
                return Ok(Requeue::After(Duration::ZERO));
            }
            self.prune_history(&deployment, &old).await?;
        }
        self.update_revision(&deployment, &new).await?;
        self.update_status(&deployment, Some(&new), &old).await
    }

    /// One step of a rolling update; returns whether it scaled anything.
    async fn roll(
        &self,
        new: &ReplicaSet,
        old: &[Arc<ReplicaSet>],
        replicas: i64,
        surge: i64,
        unavailable: i64,
    ) -> Result<bool, ClientError> {
        let new_spec = new.spec.replicas.unwrap_or(0);
        if new_spec > replicas {
            self.scale(new, replicas).await?;
            return Ok(true);
        }
        let total: i64 = pods(new) + old.iter().map(|s| pods(s)).sum::<i64>();
        if new_spec < replicas {
            let room = replicas + surge - total;
            if room > 0 {
                self.scale(new, replicas.min(new_spec + room)).await?;
                return Ok(true);
            }
        }
        let old_spec: i64 = old.iter().map(|s| s.spec.replicas.unwrap_or(0)).sum();
        if old_spec == 0 {
            return Ok(false);
        }
        let min_available = replicas - unavailable;
        let mut changed = false;
        // Old pods that are not available can go without lowering
        // availability, as long as capacity stays within bounds.
        let new_unavailable = (new_spec - available(new)).max(0);
        let all_spec = new_spec + old_spec;
        let mut budget = all_spec - min_available - new_unavailable;
        for set in old {
            if budget <= 0 {
                break;
            }
            let settled = set.status.as_ref().is_some_and(|st| {
                st.replicas == set.spec.replicas.unwrap_or(0)
                    && st.observed_generation == Some(set.metadata.generation)
            });
            let spec = set.spec.replicas.unwrap_or(0);
            let unhealthy = spec - available(set);
            if settled && unhealthy > 0 {
                let take = unhealthy.min(budget);
                self.scale(set, spec - take).await?;
                budget -= take;
                changed = true;
            }
        }
        if changed {
            return Ok(true);
        }
        let available_now: i64 = available(new) + old.iter().map(|s| available(s)).sum::<i64>();
        let mut removable = available_now - min_available;
        for set in old {
            if removable <= 0 {
                break;
            }
            let spec = set.spec.replicas.unwrap_or(0);
            if spec == 0 {
                continue;
            }
            let take = spec.min(removable);
            self.scale(set, spec - take).await?;
            removable -= take;
            changed = true;
        }
        Ok(changed)
    }

    async fn recreate(
        &self,
        new: &ReplicaSet,
        old: &[Arc<ReplicaSet>],
        replicas: i64,
    ) -> Result<bool, ClientError> {
        let mut changed = false;
        for set in old {
            if set.spec.replicas.unwrap_or(0) > 0 {
                self.scale(set, 0).await?;
                changed = true;
            }
        }
        let old_pods: i64 = old.iter().map(|s| pods(s)).sum();
        if !changed && old_pods == 0 && new.spec.replicas.unwrap_or(0) != replicas {
            self.scale(new, replicas).await?;
            changed = true;
        }
        Ok(changed)
    }

    async fn scale(&self, set: &ReplicaSet, replicas: i64) -> Result<(), ClientError> {
        let mut next = set.clone();
        next.spec.replicas = Some(replicas);
        let written = self.client.update(&next).await?;
        let from = set.spec.replicas.unwrap_or(0);
        tracing::info!(replicaset = %set.metadata.name, from, to = replicas, "scaled ReplicaSet");
        if let Some(owner) = set.controller() {
            let direction = if replicas > from { "up" } else { "down" };
            self.events.record_about(
                ObjectReference {
                    kind: Some(owner.kind.clone()),
                    namespace: Some(set.metadata.namespace.clone()),
                    name: Some(owner.name.clone()),
                    uid: Some(owner.uid.clone()),
                    api_version: Some(owner.api_version.clone()),
                    ..ObjectReference::default()
                },
                EventType::Normal,
                "ScalingReplicaSet",
                format!(
                    "Scaled {direction} replica set {} from {from} to {replicas}",
                    set.metadata.name
                ),
            );
        }
        self.settle(&written).await;
        Ok(())
    }

    /// Waits until the cache shows `set` at least as new as written.
    async fn settle(&self, set: &ReplicaSet) {
        self.informers
            .replica_sets
            .wait_for_revision(set.revision(), CACHE_WAIT)
            .await;
    }

    async fn prune_history(
        &self,
        deployment: &Deployment,
        old: &[Arc<ReplicaSet>],
    ) -> Result<(), ClientError> {
        let limit =
            usize::try_from(deployment.spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
        let idle: Vec<_> = old
            .iter()
            .filter(|s| s.spec.replicas.unwrap_or(0) == 0 && pods(s) == 0)
            .collect();
        if idle.len() <= limit {
            return Ok(());
        }
        for set in &idle[..idle.len() - limit] {
            match self
                .client
                .delete::<ReplicaSet>(&set.metadata.namespace, &set.metadata.name)
                .await
            {
                Ok(_) | Err(ClientError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    async fn update_revision(
        &self,
        deployment: &Deployment,
        new: &ReplicaSet,
    ) -> Result<(), ClientError> {
        let revision = revision(new).to_string();
        if deployment
            .metadata
            .annotations
            .get(DEPLOYMENT_REVISION_ANNOTATION)
            == Some(&revision)
        {
            return Ok(());
        }
        let mut next = deployment.clone();
        next.metadata
            .annotations
            .insert(DEPLOYMENT_REVISION_ANNOTATION.to_owned(), revision);
        let written = self.client.update(&next).await?;
        self.informers
            .deployments
            .wait_for_revision(written.revision(), CACHE_WAIT)
            .await;
        Ok(())
    }

    async fn update_status(
        &self,
        deployment: &Deployment,
        new: Option<&ReplicaSet>,
        old: &[Arc<ReplicaSet>],
    ) -> Result<Requeue, ClientError> {
        let all: Vec<&ReplicaSet> = new.into_iter().chain(old.iter().map(|s| &**s)).collect();
        let field = |f: fn(&ReplicaSet) -> i64| all.iter().map(|s| f(s)).sum::<i64>();
        let replicas = deployment.spec.replicas.unwrap_or(1);
        let (_, unavailable) = bounds(deployment, replicas);
        let total = field(|s| s.status.as_ref().map_or(0, |st| st.replicas));
        let ready = field(|s| {
            s.status
                .as_ref()
                .and_then(|st| st.ready_replicas)
                .unwrap_or(0)
        });
        let available_pods = field(|s| {
            s.status
                .as_ref()
                .and_then(|st| st.available_replicas)
                .unwrap_or(0)
        });
        let updated = new
            .and_then(|s| s.status.as_ref())
            .map_or(0, |st| st.replicas);
        let mut status = deployment.status.clone().unwrap_or_default();
        let previous = status.clone();
        status = DeploymentStatus {
            observed_generation: Some(deployment.metadata.generation),
            replicas: Some(total),
            updated_replicas: Some(updated),
            ready_replicas: Some(ready),
            available_replicas: Some(available_pods),
            unavailable_replicas: Some((replicas - available_pods).max(0)),
            conditions: status.conditions,
            collision_count: status.collision_count,
        };
        if available_pods >= replicas - unavailable {
            status.conditions.set_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".to_owned(),
            );
        } else {
            status.conditions.set_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                format!(
                    "{available_pods} of at least {} pods available",
                    replicas - unavailable
                ),
            );
        }
        let complete = updated == replicas && available_pods == replicas && total == replicas;
        let new_name = new.map_or_else(String::new, |s| s.metadata.name.clone());
        if complete {
            status.conditions.set_condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet {new_name:?} has successfully progressed."),
            );
        } else {
            status.conditions.set_condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!(
                    "ReplicaSet {new_name:?} is progressing: {updated} of {replicas} updated, {available_pods} available."
                ),
            );
        }
        if status != previous {
            let mut next = deployment.clone();
            next.status = Some(status);
            let written = self.client.update_status(&next).await?;
            self.informers
                .deployments
                .wait_for_revision(written.revision(), CACHE_WAIT)
                .await;
        }
        Ok(Requeue::No)
    }
}

/// Pods a set may have: its target, or more while it scales down.
fn pods(set: &ReplicaSet) -> i64 {
    let spec = set.spec.replicas.unwrap_or(0);
    let observed = set.status.as_ref().map_or(0, |st| st.replicas);
    spec.max(observed)
}

/// Pods of a set surely available: never more than it is scaled to.
fn available(set: &ReplicaSet) -> i64 {
    let spec = set.spec.replicas.unwrap_or(0);
    let available = set
        .status
        .as_ref()
        .and_then(|st| st.available_replicas)
        .unwrap_or(0);
    spec.min(available)
}

fn revision(set: &ReplicaSet) -> i64 {
    set.metadata
        .annotations
        .get(DEPLOYMENT_REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// `maxSurge` (rounded up) and `maxUnavailable` (rounded down) as pod
/// counts; never both zero, or nothing could move.
pub fn bounds(deployment: &Deployment, replicas: i64) -> (i64, i64) {
    let rolling = deployment
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let resolve = |value: Option<&IntOrString>, round_up: bool| match value {
        None => {
            if round_up {
                (replicas * 25 + 99) / 100
            } else {
                replicas * 25 / 100
            }
        }
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(text)) => {
            let percent: i64 = text.trim_end_matches('%').parse().unwrap_or(25);
            if round_up {
                (replicas * percent + 99) / 100
            } else {
                replicas * percent / 100
            }
        }
    };
    let surge = resolve(rolling.and_then(|r| r.max_surge.as_ref()), true);
    let unavailable = resolve(rolling.and_then(|r| r.max_unavailable.as_ref()), false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// A short, stable hash of the pod template.
pub fn template_hash(deployment: &Deployment) -> String {
    let json = serde_json::to_string(&deployment.spec.template).unwrap_or_default();
    // FNV-1a: unlike std's hasher, stable across Rust releases, so an
    // upgrade does not look like a new template to every Deployment.
    let hash = json.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    // Letters and digits that cannot spell words, as Kubernetes does.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut value = hash;
    let mut out = String::new();
    for _ in 0..10 {
        out.push(char::from(
            ALPHABET[usize::try_from(value % 27).unwrap_or(0)],
        ));
        value /= 27;
    }
    out
}

fn new_set(deployment: &Deployment, hash: &str, revision: i64, replicas: i64) -> ReplicaSet {
    let mut template = deployment.spec.template.clone();
    template
        .metadata
        .labels
        .insert(TEMPLATE_HASH_LABEL.to_owned(), hash.to_owned());
    let mut selector = deployment.spec.selector.clone();
    selector
        .match_labels
        .insert(TEMPLATE_HASH_LABEL.to_owned(), hash.to_owned());
    let mut labels = template.metadata.labels.clone();
    labels.insert(TEMPLATE_HASH_LABEL.to_owned(), hash.to_owned());
    ReplicaSet {
        api_version: "apps/v1".to_owned(),
        kind: "ReplicaSet".to_owned(),
        metadata: ObjectMeta {
            name: format!("{}-{hash}", deployment.metadata.name),
            namespace: deployment.metadata.namespace.clone(),
            labels,
            annotations: [(
                DEPLOYMENT_REVISION_ANNOTATION.to_owned(),
                revision.to_string(),
            )]
            .into(),
            owner_references: vec![OwnerReference {
                api_version: Kind::Deployment.api_version().to_owned(),
                kind: "Deployment".to_owned(),
                name: deployment.metadata.name.clone(),
                uid: deployment.metadata.uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }],
            ..ObjectMeta::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            selector,
            template,
            min_ready_seconds: deployment.spec.min_ready_seconds,
        },
        status: None,
    }
}
