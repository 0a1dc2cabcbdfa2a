//! The scheduler: binds pending pods to nodes.
//!
//! One loop takes pods from a queue and, against an in-memory picture of
//! the nodes (what is bound there, and what this scheduler has *assumed*
//! there while a bind is in flight), runs the filters and scores of
//! [`plugins`] and picks the best node. Binding is a compare-and-swap
//! update of `spec.nodeName` on the pod's resourceVersion, done in the
//! background so the loop goes on with the next pod; a failed bind
//! forgets the assumption and queues the pod again.
//!
//! As in kube-scheduler, large clusters are not searched exhaustively: the
//! search stops once enough feasible nodes are found (at least 100, and a
//! share of the cluster that shrinks as it grows), starting each time where
//! the previous search stopped so all nodes get their turn.
//!
//! A pod that fits nowhere gets `PodScheduled=False` (reason
//! `Unschedulable`, message counting the reasons per node) and waits, with
//! backoff, until a node or a pod changes.

mod node_info;
pub mod plugins;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use rudder_api::{
    core::Pod,
    events::EventType,
    facts::{Conditions, ObjectExt, ObjectRef, PodExt},
};
use rudder_client::{Client, ClientError, EventRecorder, informer::Change, workqueue::WorkQueue};
use tokio::{sync::Semaphore, task::JoinHandle};

use self::plugins::{NodeCounts, NodeInfo, PodNeeds, Unfit};

use crate::informers::Informers;

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Share of nodes to search (1-100); `None`: adaptive, as
    /// kube-scheduler (50% minus 1% per 125 nodes, at least 5%).
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Binds in flight at once.
    pub bind_concurrency: usize,
    /// First wait of an unschedulable pod before it is tried again.
    pub initial_backoff: Duration,
    /// Longest wait.
    pub max_backoff: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            percentage_of_nodes_to_score: None,
            bind_concurrency: 256,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    nodes: HashMap<String, NodeInfo>,
    /// Node names in a stable order, for round-robin search starts.
    order: Vec<String>,
    next_start: usize,
    /// Pods counted on a node: bound, or assumed while binding.
    placed: HashMap<ObjectRef, (String, PodNeeds)>,
    /// Pods whose bind is in flight.
    assumed: HashSet<ObjectRef>,
    /// Unschedulable pods parked until something changes.
    parked: HashSet<ObjectRef>,
    /// Failed attempts per pod, for backoff.
    attempts: HashMap<ObjectRef, u32>,
}

impl State {
    fn place(&mut self, pod_key: &ObjectRef, node: &str, needs: PodNeeds) {
        if let Some((old_node, _)) = self.placed.get(pod_key)
            && old_node == node
        {
            return;
        }
        self.unplace(pod_key);
        if let Some(info) = self.nodes.get_mut(node) {
            info.account(&needs, 1);
        }
        self.placed
            .insert(pod_key.clone(), (node.to_owned(), needs));
    }

    fn unplace(&mut self, pod_key: &ObjectRef) {
        if let Some((node, needs)) = self.placed.remove(pod_key)
            && let Some(info) = self.nodes.get_mut(&node)
        {
            info.account(&needs, -1);
        }
    }
}

/// Binds pending pods to nodes.
#[derive(Debug, Clone)]
pub struct Scheduler {
    client: Client,
    informers: Informers,
    events: EventRecorder,
    config: SchedulerConfig,
    state: Arc<Mutex<State>>,
    queue: WorkQueue<ObjectRef>,
    binds: Arc<Semaphore>,
}

/// The outcome of one scheduling attempt.
enum Decision {
    Bind(String),
    Unschedulable(String),
}

impl Scheduler {
    /// A scheduler over the shared informers, reporting to `events`.
    pub fn new(
        client: Client,
        informers: Informers,
        events: EventRecorder,
        config: SchedulerConfig,
    ) -> Self {
        let binds = Arc::new(Semaphore::new(config.bind_concurrency.max(1)));
        Self {
            client,
            informers,
            events,
            state: Arc::new(Mutex::new(State::default())),
            queue: WorkQueue::new(config.initial_backoff, config.max_backoff),
            config,
            binds,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers its handlers and spawns the scheduling loop.
    pub fn start(self, tasks: &mut Vec<JoinHandle<()>>) {
        let scheduler = self.clone();
        self.informers.nodes.on_change(move |change| {
            let name = change.object().metadata.name.clone();
            {
                let mut state = scheduler.lock();
                match change {
                    Change::Deleted(_) => {
                        state.nodes.remove(&name);
                        state.order.retain(|n| n != &name);
                    }
                    Change::Added(node) | Change::Updated(_, node) => {
                        match state.nodes.get_mut(&name) {
                            Some(info) => info.set_node(node.clone()),
                            None => {
                                let mut info = NodeInfo::new(node.clone());
                                // Pods bound before their node was seen.
                                for (node_name, needs) in state.placed.values() {
                                    if node_name == &name {
                                        info.account(needs, 1);
                                    }
                                }
                                state.nodes.insert(name.clone(), info);
                                state.order.push(name);
                            }
                        }
                    }
                }
            }
            scheduler.unpark_all();
        });
        let scheduler = self.clone();
        self.informers.pods.on_change(move |change| {
            scheduler.pod_changed(change);
        });
        let scheduler = self.clone();
        tasks.push(tokio::spawn(async move {
            scheduler.informers.pods.synced().await;
            scheduler.informers.nodes.synced().await;
            tracing::debug!(
                nodes = scheduler.informers.nodes.len(),
                pending = scheduler.queue.len(),
                "scheduler caches synced"
            );
            loop {
                let key = scheduler.queue.get().await;
                scheduler.schedule(&key).await;
                scheduler.queue.done(&key);
            }
        }));
        // Parked pods are retried now and then even if no event says
        // anything changed (a missed event must not strand a pod).
        let scheduler = self.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(scheduler.config.max_backoff * 3).await;
                scheduler.unpark_all();
            }
        }));
    }

    fn pod_changed(&self, change: &Change<Pod>) {
        let pod = change.object();
        let pod_key = pod.key();
        let gone = matches!(change, Change::Deleted(_)) || !pod.is_active();
        let mut freed = false;
        {
            let mut state = self.lock();
            if gone {
                freed = state.placed.contains_key(&pod_key);
                state.unplace(&pod_key);
                state.assumed.remove(&pod_key);
                state.parked.remove(&pod_key);
                state.attempts.remove(&pod_key);
            } else if let Some(node) = pod.spec.node_name.as_deref().filter(|n| !n.is_empty()) {
                state.place(&pod_key, node, PodNeeds::of(pod));
                state.assumed.remove(&pod_key);
                state.parked.remove(&pod_key);
                state.attempts.remove(&pod_key);
            } else if !state.assumed.contains(&pod_key) && !state.parked.contains(&pod_key) {
                drop(state);
                self.queue.add(pod_key);
            }
        }
        if freed {
            self.unpark_all();
        }
    }

    /// Something changed that may make parked pods fit: queue them, each
    /// after its backoff.
    fn unpark_all(&self) {
        let parked: Vec<(ObjectRef, u32)> = {
            let mut state = self.lock();
            let keys: Vec<ObjectRef> = state.parked.drain().collect();
            keys.into_iter()
                .map(|k| {
                    let attempts = state.attempts.get(&k).copied().unwrap_or(0);
                    (k, attempts)
                })
                .collect()
        };
        for (pod_key, attempts) in parked {
            let delay = self
                .config
                .initial_backoff
                .saturating_mul(1u32 << attempts.min(16).saturating_sub(1))
                .min(self.config.max_backoff);
            self.queue.add_after(pod_key, delay);
        }
    }

    async fn schedule(&self, pod_key: &ObjectRef) {
        let Some(pod) = self.informers.pods.get(pod_key) else {
            return;
        };
        if pod.spec.node_name.as_deref().is_some_and(|n| !n.is_empty()) || !pod.is_active() {
            return;
        }
        let needs = PodNeeds::of(&pod);
        let decision = {
            let mut state = self.lock();
            if state.assumed.contains(pod_key) {
                return;
            }
            let decision = self.find_node(&mut state, &pod, &needs);
            match &decision {
                Decision::Bind(node) => {
                    state.place(pod_key, node, needs);
                    state.assumed.insert(pod_key.clone());
                }
                Decision::Unschedulable(_) => {
                    state.parked.insert(pod_key.clone());
                    *state.attempts.entry(pod_key.clone()).or_insert(0) += 1;
                }
            }
            decision
        };
        match decision {
            Decision::Bind(node) => {
                let Ok(permit) = self.binds.clone().acquire_owned().await else {
                    return;
                };
                let scheduler = self.clone();
                let pod_key = pod_key.clone();
                tokio::spawn(async move {
                    scheduler.bind(&pod_key, &pod, &node).await;
                    drop(permit);
                });
            }
            Decision::Unschedulable(message) => {
                tracing::debug!(pod = %pod_key, %message, "unschedulable");
                self.record_unschedulable(&pod, message).await;
            }
        }
    }

    fn find_node(&self, state: &mut State, pod: &Pod, needs: &PodNeeds) -> Decision {
        let total = state.order.len();
        if total == 0 {
            return Decision::Unschedulable("0/0 nodes are available: no nodes registered.".into());
        }
        let wanted = self.nodes_to_find(total);
        let start = state.next_start % total;
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(wanted);
        let mut reasons: BTreeMap<Unfit, usize> = BTreeMap::new();
        let mut visited = 0;
        for i in 0..total {
            visited += 1;
            let name = &state.order[(start + i) % total];
            let Some(info) = state.nodes.get(name) else {
                continue;
            };
            match plugins::filter(pod, needs, info) {
                Ok(()) => {
                    feasible.push(info);
                    if feasible.len() >= wanted {
                        break;
                    }
                }
                Err(unfit) => *reasons.entry(unfit).or_insert(0) += 1,
            }
        }
        state.next_start = (start + visited) % total;
        if feasible.is_empty() {
            let detail = reasons
                .iter()
                .map(|(reason, count)| format!("{count} {reason}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Decision::Unschedulable(format!("0/{total} nodes are available: {detail}."));
        }
        let counts: Vec<(&NodeInfo, NodeCounts)> = feasible
            .into_iter()
            .map(|info| (info, NodeCounts::of(pod, needs, info)))
            .collect();
        let most = NodeCounts::most(counts.iter().map(|(_, c)| c));
        let mut best: Option<(&NodeInfo, f64)> = None;
        for (info, node_counts) in &counts {
            let score = plugins::score(needs, info, node_counts, &most);
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((info, score));
            }
        }
        match best {
            Some((info, _)) => Decision::Bind(info.node.metadata.name.clone()),
            None => Decision::Unschedulable("no node scored".into()),
        }
    }

    fn nodes_to_find(&self, total: usize) -> usize {
        const MIN_FEASIBLE: usize = 100;
        if total <= MIN_FEASIBLE {
            return total;
        }
        let percent = self.config.percentage_of_nodes_to_score.map_or_else(
            || (50usize.saturating_sub(total / 125)).max(5),
            |p| usize::try_from(p.clamp(1, 100)).unwrap_or(100),
        );
        (total * percent / 100).max(MIN_FEASIBLE)
    }

    async fn bind(&self, pod_key: &ObjectRef, pod: &Pod, node: &str) {
        match self.try_bind(pod, node).await {
            Ok(()) => {
                tracing::debug!(pod = %pod_key, %node, "bound");
                self.events.record(
                    pod,
                    EventType::Normal,
                    "Scheduled",
                    format!("Successfully assigned {pod_key} to {node}"),
                );
                if pod
                    .condition("PodScheduled")
                    .is_some_and(|c| c.status != "True")
                {
                    self.record_scheduled(pod_key, node).await;
                }
            }
            Err(err) => {
                {
                    let mut state = self.lock();
                    state.unplace(pod_key);
                    state.assumed.remove(pod_key);
                }
                if !matches!(err, ClientError::NotFound(_)) {
                    tracing::debug!(pod = %pod_key, %node, %err, "bind failed; retrying");
                    self.queue.add_rate_limited(pod_key.clone());
                }
            }
        }
    }

    /// Sets `spec.nodeName` with a compare-and-swap; a stale cached pod is
    /// read again once (it may just be behind a status write).
    async fn try_bind(&self, pod: &Pod, node: &str) -> Result<(), ClientError> {
        let mut next = pod.clone();
        next.spec.node_name = Some(node.to_owned());
        match self.client.update(&next).await {
            Err(ClientError::Conflict(_)) => {
                let mut fresh: Pod = self
                    .client
                    .get(&pod.metadata.namespace, &pod.metadata.name)
                    .await?;
                if fresh.metadata.uid != pod.metadata.uid
                    || fresh
                        .spec
                        .node_name
                        .as_deref()
                        .is_some_and(|n| !n.is_empty())
                {
                    return Err(ClientError::NotFound(
                        "the pod was bound or replaced meanwhile".into(),
                    ));
                }
                fresh.spec.node_name = Some(node.to_owned());
                self.client.update(&fresh).await.map(drop)
            }
            other => other.map(drop),
        }
    }

    async fn record_scheduled(&self, pod_key: &ObjectRef, node: &str) {
        let Ok(mut pod) = self
            .client
            .get::<Pod>(&pod_key.namespace, &pod_key.name)
            .await
        else {
            return;
        };
        let status = pod.status.get_or_insert_with(Default::default);
        if status.conditions.set_condition(
            "PodScheduled",
            "True",
            "Scheduled",
            format!("bound to {node}"),
        ) {
            let _ = self.client.update_status(&pod).await;
        }
    }

    async fn record_unschedulable(&self, pod: &Pod, message: String) {
        self.events
            .record(pod, EventType::Warning, "FailedScheduling", message.clone());
        let mut next = pod.clone();
        let status = next.status.get_or_insert_with(Default::default);
        if status.phase.is_none() {
            status.phase = Some("Pending".to_owned());
        }
        if status
            .conditions
            .set_condition("PodScheduled", "False", "Unschedulable", message)
        {
            match self.client.update_status(&next).await {
                Ok(_) | Err(ClientError::NotFound(_) | ClientError::Conflict(_)) => {}
                Err(err) => {
                    tracing::warn!(pod = %pod.metadata.name, %err, "recording why the pod is unschedulable")
                }
            }
        }
    }
}
