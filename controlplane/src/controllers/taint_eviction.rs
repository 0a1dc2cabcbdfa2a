//! Taint-based eviction (Kubernetes' taint eviction controller): a pod on a
//! node with a `NoExecute` taint it does not tolerate is deleted at once; one
//! that tolerates every such taint with `tolerationSeconds` is deleted once
//! the taints have been there that long; one that tolerates them without a
//! time limit stays. The node lifecycle's own taints (`unreachable`,
//! `not-ready`) go through the same rule, with the configured eviction
//! timeout as the toleration of pods that state none (what the
//! DefaultTolerationSeconds admission gives every pod in Kubernetes).
//!
//! Time is counted from when this controller first saw the pod under a given
//! set of taints (its own clock), not from `timeAdded`, which another
//! machine's clock may have written; a restart of the controller starts the
//! count again, as Kubernetes' does.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use rudder_api::{
    core::{Pod, Taint},
    events::EventType,
    facts::{ObjectExt, PodExt},
    names::{NOT_READY_TAINT, UNREACHABLE_TAINT},
    taints::{Eviction, NO_EXECUTE, eviction},
};
use rudder_client::{Client, ClientError, EventRecorder};
use tokio::{task::JoinHandle, time::Instant};

use crate::informers::Informers;

/// How often the nodes' taints are looked at. Eviction needs no finer
/// resolution than this: tolerationSeconds counts whole seconds.
const PERIOD: Duration = Duration::from_millis(500);

/// Evicts pods from nodes whose `NoExecute` taints they do not tolerate.
#[derive(Debug, Clone)]
pub struct TaintEvictionController {
    client: Client,
    informers: Informers,
    events: EventRecorder,
    lifecycle_toleration: Duration,
}

/// Since when a pod has been under the node's current `NoExecute` taints.
#[derive(Debug)]
struct Exposure {
    taints: Vec<Taint>,
    since: Instant,
}

impl TaintEvictionController {
    /// A controller that gives pods without a toleration of their own
    /// `lifecycle_toleration` on nodes the lifecycle controller tainted.
    pub fn new(
        client: Client,
        informers: Informers,
        events: EventRecorder,
        lifecycle_toleration: Duration,
    ) -> Self {
        Self {
            client,
            informers,
            events,
            lifecycle_toleration,
        }
    }

    /// Spawns its periodic check.
    pub fn start(self, tasks: &mut Vec<JoinHandle<()>>) {
        tasks.push(tokio::spawn(async move {
            self.informers.synced().await;
            let mut exposures: HashMap<String, Exposure> = HashMap::new();
            loop {
                if let Err(err) = self.check(&mut exposures).await {
                    tracing::warn!(%err, "taint eviction check");
                }
                tokio::time::sleep(PERIOD).await;
            }
        }));
    }

    /// The toleration a pod that states none has for `taint`.
    fn implicit(&self, taint: &Taint) -> Option<Duration> {
        (taint.key == UNREACHABLE_TAINT || taint.key == NOT_READY_TAINT)
            .then_some(self.lifecycle_toleration)
    }

    async fn check(&self, exposures: &mut HashMap<String, Exposure>) -> Result<(), ClientError> {
        let mut exposed = HashSet::new();
        for node in self.informers.nodes.list() {
            let mut taints: Vec<Taint> = node
                .spec
                .taints
                .iter()
                .filter(|t| t.effect == NO_EXECUTE)
                .cloned()
                .collect();
            if taints.is_empty() {
                continue;
            }
            // Compare taint sets without the informational timestamp.
            for taint in &mut taints {
                taint.time_added = None;
            }
            taints.sort_by(|a, b| (&a.key, &a.value).cmp(&(&b.key, &b.value)));
            for pod in self.informers.pods.on_node(&node.metadata.name) {
                if !pod.is_active() {
                    continue;
                }
                let uid = pod.metadata.uid.clone();
                exposed.insert(uid.clone());
                let exposure = exposures.entry(uid).or_insert_with(|| Exposure {
                    taints: taints.clone(),
                    since: Instant::now(),
                });
                // A changed set of taints is a new exposure, as Kubernetes
                // reschedules the eviction when a node's taints change.
                if exposure.taints != taints {
                    exposure.taints = taints.clone();
                    exposure.since = Instant::now();
                }
                let due = match eviction(&pod.spec.tolerations, &taints, |t| self.implicit(t)) {
                    Eviction::Now => true,
                    Eviction::After(after) => exposure.since.elapsed() >= after,
                    Eviction::Never => false,
                };
                if due {
                    self.evict(&pod, &node.metadata.name, &taints).await?;
                }
            }
        }
        exposures.retain(|uid, _| exposed.contains(uid));
        Ok(())
    }

    async fn evict(&self, pod: &Pod, node: &str, taints: &[Taint]) -> Result<(), ClientError> {
        let key = pod.key();
        match self.client.delete::<Pod>(&key.namespace, &key.name).await {
            Ok(_) => {
                let names: Vec<&str> = taints.iter().map(|t| t.key.as_str()).collect();
                tracing::warn!(%node, pod = %key, taints = ?names, "evicted pod: NoExecute taint");
                self.events.record(
                    pod,
                    EventType::Normal,
                    "TaintManagerEviction",
                    format!(
                        "Marking for deletion Pod {key}: node {node} has NoExecute taint(s) {} it does not tolerate (any longer)",
                        names.join(", ")
                    ),
                );
                Ok(())
            }
            Err(ClientError::NotFound(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }
}
