//! The controllers: each turns observed state into desired state for one
//! kind of object, as a client of the API server.
//!
//! Every controller follows the same shape: informers feed keys into its
//! [`WorkQueue`], workers take a key and reconcile it from the informers'
//! caches (idempotently; a failure requeues with backoff), and after a
//! write a controller waits until its cache shows the write before it
//! acts on that key again, so it never decides twice on a stale view.
//!
//! [`ControllerManager::start`] runs them all, and the scheduler, while
//! this replica holds the leader lease.

pub mod deployment;
pub mod endpoints;
pub mod event_ttl;
pub mod gc;
pub mod node_lifecycle;
pub mod replicaset;

use std::{future::Future, hash::Hash, time::Duration};

use rudder_api::{
    apps::{Deployment, ReplicaSet},
    client::{Client, ClientError, ListOptions},
    coordination::Lease,
    core::{Endpoints, Node, Pod, Service},
    events::EventRecorder,
    meta::{Condition, ObjectMeta},
};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    informer::Informer,
    leader::{self, LeaderConfig},
    scheduler::{Scheduler, SchedulerConfig},
    workqueue::WorkQueue,
};

/// Namespace of node heartbeat leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// What to run and with which timings.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Run the controllers.
    pub controllers: bool,
    /// Run the scheduler.
    pub scheduler: bool,
    /// A node whose lease is not renewed for this long becomes NotReady.
    pub node_grace_period: Duration,
    /// Pods of a node NotReady for this long are deleted (and recreated
    /// elsewhere by their controllers).
    pub pod_eviction_timeout: Duration,
    /// Leader election; `None` runs unconditionally (one replica, tests).
    pub leader: Option<LeaderConfig>,
    /// Scheduler settings.
    pub scheduling: SchedulerConfig,
    /// Events are deleted this long after their last occurrence.
    pub event_ttl: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            controllers: true,
            scheduler: true,
            node_grace_period: Duration::from_secs(40),
            pod_eviction_timeout: Duration::from_secs(300),
            leader: None,
            scheduling: SchedulerConfig::default(),
            event_ttl: Duration::from_secs(3600),
        }
    }
}

/// The informers the controllers and the scheduler share.
#[derive(Debug, Clone)]
pub struct Informers {
    /// Every pod.
    pub pods: Informer<Pod>,
    /// Every node.
    pub nodes: Informer<Node>,
    /// Every ReplicaSet.
    pub replica_sets: Informer<ReplicaSet>,
    /// Every Deployment.
    pub deployments: Informer<Deployment>,
    /// Every Service.
    pub services: Informer<Service>,
    /// Every Endpoints object.
    pub endpoints: Informer<Endpoints>,
    /// Node heartbeat leases.
    pub node_leases: Informer<Lease>,
}

impl Informers {
    fn new() -> Self {
        Self {
            pods: Informer::new(ListOptions::default()),
            nodes: Informer::new(ListOptions::default()),
            replica_sets: Informer::new(ListOptions::default()),
            deployments: Informer::new(ListOptions::default()),
            services: Informer::new(ListOptions::default()),
            endpoints: Informer::new(ListOptions::default()),
            node_leases: Informer::new(ListOptions {
                namespace: NODE_LEASE_NAMESPACE.to_owned(),
                ..ListOptions::default()
            }),
        }
    }

    fn run(&self, client: &Client, tasks: &mut Vec<JoinHandle<()>>) {
        tasks.push(tokio::spawn(self.pods.clone().run(client.clone())));
        tasks.push(tokio::spawn(self.nodes.clone().run(client.clone())));
        tasks.push(tokio::spawn(self.replica_sets.clone().run(client.clone())));
        tasks.push(tokio::spawn(self.deployments.clone().run(client.clone())));
        tasks.push(tokio::spawn(self.services.clone().run(client.clone())));
        tasks.push(tokio::spawn(self.endpoints.clone().run(client.clone())));
        tasks.push(tokio::spawn(self.node_leases.clone().run(client.clone())));
    }

    async fn synced(&self) {
        self.pods.synced().await;
        self.nodes.synced().await;
        self.replica_sets.synced().await;
        self.deployments.synced().await;
        self.services.synced().await;
        self.endpoints.synced().await;
        self.node_leases.synced().await;
    }
}

/// The controllers and the scheduler of one control-plane process.
#[derive(Debug)]
pub struct ControllerManager {
    supervisor: JoinHandle<()>,
}

impl ControllerManager {
    /// Starts campaigning for leadership (or, without leader election,
    /// starts at once); while leading, runs what `config` enables.
    pub fn start(client: Client, config: ControllerConfig) -> Self {
        let supervisor = tokio::spawn(supervise(client, config));
        Self { supervisor }
    }

    /// Stops everything.
    pub fn stop(self) {
        self.supervisor.abort();
    }
}

async fn supervise(client: Client, config: ControllerConfig) {
    let Some(leader_config) = config.leader.clone() else {
        // No election: run until the manager is stopped (aborted).
        let _running = AbortOnDrop(start_all(&client, &config));
        std::future::pending::<()>().await;
        return;
    };
    let (leading_tx, leading) = watch::channel(false);
    // Aborted with the supervisor: nothing outlives it.
    let _election = AbortOnDrop(vec![tokio::spawn(leader::run(
        client.clone(),
        leader_config,
        leading_tx,
    ))]);
    follow_leadership(leading, || start_all(&client, &config)).await;
    tracing::error!("leader election ended; controllers and scheduler stopped");
}

/// Runs what `start` starts while `leading` is true and aborts it when
/// leadership is lost. Returns, with everything stopped, once the election
/// is gone (its sender dropped): a closed channel must not be taken for a
/// change, or this would restart everything in a loop that never yields.
async fn follow_leadership(
    mut leading: watch::Receiver<bool>,
    mut start: impl FnMut() -> Vec<JoinHandle<()>>,
) {
    loop {
        if leading.wait_for(|l| *l).await.is_err() {
            return;
        }
        let running = AbortOnDrop(start());
        let lost = leading.wait_for(|l| !*l).await;
        drop(running);
        if lost.is_err() {
            return;
        }
    }
}

struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

fn start_all(client: &Client, config: &ControllerConfig) -> Vec<JoinHandle<()>> {
    let informers = Informers::new();
    let mut tasks = Vec::new();
    let host = host_name();
    if config.controllers {
        let (events, writer) =
            EventRecorder::start(client.clone(), "rudder-controller-manager", &host);
        tasks.push(writer);
        replicaset::ReplicaSetController::new(client.clone(), informers.clone(), events.clone())
            .start(&mut tasks);
        deployment::DeploymentController::new(client.clone(), informers.clone(), events.clone())
            .start(&mut tasks);
        endpoints::EndpointsController::new(client.clone(), informers.clone(), events.clone())
            .start(&mut tasks);
        node_lifecycle::NodeLifecycleController::new(
            client.clone(),
            informers.clone(),
            events,
            config.node_grace_period,
            config.pod_eviction_timeout,
        )
        .start(&mut tasks);
        gc::GarbageCollector::new(client.clone(), informers.clone()).start(&mut tasks);
        event_ttl::EventExpiry::new(client.clone(), config.event_ttl).start(&mut tasks);
    }
    if config.scheduler {
        let (events, writer) = EventRecorder::start(client.clone(), "rudder-scheduler", &host);
        tasks.push(writer);
        Scheduler::new(
            client.clone(),
            informers.clone(),
            events,
            config.scheduling.clone(),
        )
        .start(&mut tasks);
    }
    informers.run(client, &mut tasks);
    tasks
}

/// This machine's host name, for the `source.host` of events.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

/// What a reconcile asks of its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Done until something changes.
    No,
    /// Look again after this long (e.g. a pod becomes available later).
    After(Duration),
}

/// Runs `workers` workers taking keys from `queue` once `informers` are
/// synced, calling `reconcile` for each.
pub fn spawn_workers<K, F, Fut>(
    name: &'static str,
    informers: Informers,
    queue: WorkQueue<K>,
    workers: usize,
    reconcile: F,
    tasks: &mut Vec<JoinHandle<()>>,
) where
    K: Clone + Eq + Hash + Send + Sync + std::fmt::Display + 'static,
    F: Fn(K) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Requeue, ClientError>> + Send,
{
    for _ in 0..workers {
        let queue = queue.clone();
        let reconcile = reconcile.clone();
        let informers = informers.clone();
        tasks.push(tokio::spawn(async move {
            informers.synced().await;
            loop {
                let key = queue.get().await;
                match reconcile(key.clone()).await {
                    Ok(requeue) => {
                        queue.forget(&key);
                        if let Requeue::After(delay) = requeue {
                            queue.add_after(key.clone(), delay);
                        }
                    }
                    Err(err) => {
                        // Conflicts are the normal price of optimistic
                        // concurrency: look again soon, quietly.
                        if matches!(err, ClientError::Conflict(_)) {
                            tracing::debug!(controller = name, %key, %err, "retrying");
                        } else {
                            tracing::warn!(controller = name, %key, %err, "retrying");
                        }
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        }));
    }
}

/// The namespace/name key of an object.
pub fn key(meta: &ObjectMeta) -> String {
    if meta.namespace.is_empty() {
        meta.name.clone()
    } else {
        format!("{}/{}", meta.namespace, meta.name)
    }
}

/// Splits a `namespace/name` key.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// Whether a pod's `Ready` condition is `True`.
pub fn pod_ready(pod: &Pod) -> bool {
    condition(
        pod.status.as_ref().map(|s| s.conditions.as_slice()),
        "Ready",
    )
    .is_some_and(|c| c.status == "True")
}

/// Whether a pod is active: not being deleted, not finished.
pub fn pod_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// The condition of `type_` in `conditions`.
pub fn condition<'a>(conditions: Option<&'a [Condition]>, type_: &str) -> Option<&'a Condition> {
    conditions?.iter().find(|c| c.type_ == type_)
}

/// Sets a condition, keeping its transition time unless the status
/// changes; returns whether anything changed.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) -> bool {
    let now = rudder_api::time::now_rfc3339();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status == status
                && existing.reason.as_deref() == Some(reason)
                && existing.message.as_deref() == Some(message.as_str())
            {
                return false;
            }
            if existing.status != status {
                existing.last_transition_time = Some(now);
            }
            existing.status = status.to_owned();
            existing.reason = Some(reason.to_owned());
            existing.message = Some(message);
            true
        }
        None => {
            conditions.push(Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: Some(reason.to_owned()),
                message: Some(message),
                last_transition_time: Some(now),
                last_heartbeat_time: None,
            });
            true
        }
    }
}

/// The controlling owner reference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&rudder_api::meta::OwnerReference> {
    meta.owner_references
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Parses a store revision (a resourceVersion).
pub fn revision_of(meta: &ObjectMeta) -> i64 {
    meta.resource_version.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    /// A starter that counts its calls and refuses a second one.
    fn start_once(starts: &Arc<AtomicUsize>) -> impl FnMut() -> Vec<JoinHandle<()>> + use<> {
        let starts = starts.clone();
        move || {
            let previous = starts.fetch_add(1, Ordering::SeqCst);
            assert_eq!(previous, 0, "started again without losing leadership");
            vec![tokio::spawn(std::future::pending())]
        }
    }

    #[tokio::test]
    async fn leadership_starts_once_and_an_ended_election_stops_everything() {
        let (leading_tx, leading) = watch::channel(false);
        let starts = Arc::new(AtomicUsize::new(0));
        let follower = tokio::spawn(follow_leadership(leading, start_once(&starts)));
        leading_tx.send_replace(true);
        tokio::task::yield_now().await;
        // The election ends while leading (e.g. its task died): the
        // follower must stop, not restart on the closed channel.
        drop(leading_tx);
        tokio::time::timeout(Duration::from_secs(30), follower)
            .await
            .expect("the follower returns once the election is gone")
            .expect("no restart");
        assert_eq!(starts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn lost_leadership_stops_and_regained_leadership_restarts() {
        let (leading_tx, leading) = watch::channel(false);
        // Each start hands over a receiver that closes when the started
        // task is aborted.
        let (terms_tx, mut terms) = tokio::sync::mpsc::unbounded_channel();
        let follower = tokio::spawn(follow_leadership(leading, move || {
            let (alive, stopped) = tokio::sync::oneshot::channel::<()>();
            terms_tx.send(stopped).expect("test listens");
            vec![tokio::spawn(async move {
                let _alive = alive;
                std::future::pending::<()>().await;
            })]
        }));
        for _ in 0..2 {
            leading_tx.send_replace(true);
            let stopped = tokio::time::timeout(Duration::from_secs(30), terms.recv())
                .await
                .expect("started while leading")
                .expect("a term");
            leading_tx.send_replace(false);
            let ended = tokio::time::timeout(Duration::from_secs(30), stopped)
                .await
                .expect("stopped after losing leadership");
            assert!(ended.is_err(), "the term's task was aborted");
        }
        drop(leading_tx);
        tokio::time::timeout(Duration::from_secs(30), follower)
            .await
            .expect("returns once the election is gone")
            .expect("follower did not panic");
        assert!(
            terms.try_recv().is_err(),
            "no start after the election ended"
        );
    }
}
