//! The node lifecycle controller: nodes heartbeat by renewing a Lease named
//! after them in `kube-node-lease`. A node whose lease goes unrenewed for
//! the grace period becomes NotReady (condition `Ready=Unknown`, taint
//! `node.kubernetes.io/unreachable:NoExecute`); a node whose agent reports
//! NotReady gets `node.kubernetes.io/not-ready:NoExecute`. Either way its
//! pods are marked not ready at once (so the Endpoints controller withdraws
//! them); deleting them is taint-based eviction's job
//! (`taint_eviction.rs`), which honours the pods' NoExecute tolerations.
//!
//! Staleness is judged by this process's clock since it *saw* the lease
//! change, not by comparing the agent's timestamps with local time: clocks
//! of different machines disagree.

use std::{collections::HashMap, sync::Arc, time::Duration};

use rudder_api::{
    core::{Node, Pod, Taint},
    events::EventType,
    facts::{Conditions, NodeExt, ObjectRef, PodExt},
    names::{NODE_LEASE_NAMESPACE, NOT_READY_TAINT, UNREACHABLE_TAINT},
    taints::NO_EXECUTE,
    time::now_rfc3339,
};
use rudder_client::{Client, ClientError, EventRecorder};
use tokio::{task::JoinHandle, time::Instant};

use crate::informers::Informers;

/// Whether `taint` is one the node lifecycle puts on (and takes off) nodes:
/// [`UNREACHABLE_TAINT`] on silent nodes, [`NOT_READY_TAINT`] on nodes that
/// report NotReady; both go once the node is Ready again.
fn is_lifecycle_taint(taint: &Taint) -> bool {
    taint.key == UNREACHABLE_TAINT || taint.key == NOT_READY_TAINT
}
/// Reason on the Ready condition this controller writes.
pub const REASON: &str = "NodeStatusUnknown";

/// Watches node heartbeats and evicts pods from dead nodes.
#[derive(Debug, Clone)]
pub struct NodeLifecycleController {
    client: Client,
    informers: Informers,
    events: EventRecorder,
    grace: Duration,
}

#[derive(Debug)]
struct Seen {
    heartbeat: Option<String>,
    changed_at: Instant,
}

impl NodeLifecycleController {
    /// A controller with the given grace period.
    pub fn new(
        client: Client,
        informers: Informers,
        events: EventRecorder,
        grace: Duration,
    ) -> Self {
        Self {
            client,
            informers,
            events,
            grace,
        }
    }

    /// Spawns its periodic check.
    pub fn start(self, tasks: &mut Vec<JoinHandle<()>>) {
        tasks.push(tokio::spawn(async move {
            self.informers.synced().await;
            let period = (self.grace / 8).clamp(Duration::from_millis(100), Duration::from_secs(5));
            let mut seen: HashMap<String, Seen> = HashMap::new();
            loop {
                if let Err(err) = self.check(&mut seen).await {
                    tracing::warn!(%err, "node lifecycle check");
                }
                tokio::time::sleep(period).await;
            }
        }));
    }

    async fn check(&self, seen: &mut HashMap<String, Seen>) -> Result<(), ClientError> {
        let nodes = self.informers.nodes.list();
        seen.retain(|name, _| nodes.iter().any(|n| &n.metadata.name == name));
        for node in nodes {
            let name = node.metadata.name.clone();
            let heartbeat = self
                .informers
                .node_leases
                .get(&ObjectRef::new(NODE_LEASE_NAMESPACE, name.as_str()))
                .and_then(|lease| lease.spec.renew_time.clone());
            let entry = seen.entry(name.clone()).or_insert_with(|| Seen {
                heartbeat: heartbeat.clone(),
                changed_at: Instant::now(),
            });
            if entry.heartbeat != heartbeat {
                entry.heartbeat = heartbeat;
                entry.changed_at = Instant::now();
            }
            let silent = entry.changed_at.elapsed() >= self.grace;
            let ready = node.condition("Ready");
            let marked_by_us = ready.is_some_and(|c| c.reason.as_deref() == Some(REASON));
            let is_ready = ready.is_some_and(|c| c.status == "True");
            // A restarted agent reports Ready (its own reason) before this
            // check sees its lease renewed, so recovery is not only "our
            // NotReady mark is still there": a Ready node that still carries
            // the lifecycle taints has recovered too.
            let tainted = node.spec.taints.iter().any(is_lifecycle_taint);
            if silent && !marked_by_us {
                self.mark_not_ready(&node).await?;
            } else if !silent && (marked_by_us || (is_ready && tainted)) {
                self.mark_ready(&node, marked_by_us).await?;
            }
            let reports_not_ready = ready.is_some_and(|c| c.status == "False");
            if !silent && reports_not_ready {
                self.add_taint(&node, NOT_READY_TAINT).await?;
            }
            if silent || !is_ready {
                self.withdraw_pods(&name).await?;
            }
        }
        Ok(())
    }

    async fn mark_not_ready(&self, node: &Node) -> Result<(), ClientError> {
        let mut next = node.clone();
        let status = next.status.get_or_insert_with(Default::default);
        status.conditions.set_condition(
            "Ready",
            "Unknown",
            REASON,
            format!(
                "rudder-agent stopped renewing its lease in {NODE_LEASE_NAMESPACE} for {:?}",
                self.grace
            ),
        );
        let updated = self.client.update_status(&next).await?;
        tracing::warn!(node = %node.metadata.name, "node stopped heartbeating: NotReady");
        self.events.record(
            node,
            EventType::Normal,
            "NodeNotReady",
            format!(
                "Node {} status is now: NodeNotReady (no heartbeat for {:?})",
                node.metadata.name, self.grace
            ),
        );
        self.add_taint(&updated, UNREACHABLE_TAINT).await
    }

    /// Puts the lifecycle taint `key` (NoExecute) on the node unless it is
    /// there; taint-based eviction takes it from there.
    async fn add_taint(&self, node: &Node, key: &str) -> Result<(), ClientError> {
        if node.spec.taints.iter().any(|t| t.key == key) {
            return Ok(());
        }
        let mut tainted = node.clone();
        tainted.spec.taints.push(Taint {
            key: key.to_owned(),
            value: None,
            effect: NO_EXECUTE.to_owned(),
            time_added: Some(now_rfc3339()),
        });
        self.client.update(&tainted).await?;
        Ok(())
    }

    /// Takes a node that heartbeats again out of NotReady: sets Ready
    /// unless its agent already has (`set_condition`: the condition is
    /// still our NotReady mark), removes the lifecycle taints, and records
    /// NodeReady once the first of those writes succeeded (a write from a
    /// stale cache fails on its resourceVersion, so a slow cache does not
    /// record the event twice).
    async fn mark_ready(&self, node: &Node, set_condition: bool) -> Result<(), ClientError> {
        let mut untainted = node.clone();
        if set_condition {
            let status = untainted.status.get_or_insert_with(Default::default);
            status.conditions.set_condition(
                "Ready",
                "True",
                "NodeHeartbeatResumed",
                "rudder-agent renews its lease again".to_owned(),
            );
            untainted = self.client.update_status(&untainted).await?;
            self.record_ready(node);
        }
        let before = untainted.spec.taints.len();
        untainted.spec.taints.retain(|t| !is_lifecycle_taint(t));
        if untainted.spec.taints.len() != before {
            self.client.update(&untainted).await?;
            if !set_condition {
                self.record_ready(node);
            }
        }
        Ok(())
    }

    fn record_ready(&self, node: &Node) {
        tracing::info!(node = %node.metadata.name, "node heartbeats again: Ready");
        self.events.record(
            node,
            EventType::Normal,
            "NodeReady",
            format!("Node {} status is now: NodeReady", node.metadata.name),
        );
    }

    /// Marks the node's pods not ready, which takes them out of Endpoints.
    async fn withdraw_pods(&self, node: &str) -> Result<(), ClientError> {
        for pod in self.informers.pods.on_node(node) {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if !pod.is_ready() {
                continue;
            }
            let mut next: Pod = Arc::unwrap_or_clone(pod);
            let status = next.status.get_or_insert_with(Default::default);
            status.conditions.set_condition(
                "Ready",
                "False",
                "NodeNotReady",
                format!("node {node:?} is not ready"),
            );
            match self.client.update_status(&next).await {
                Ok(_) | Err(ClientError::NotFound(_) | ClientError::Conflict(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}
