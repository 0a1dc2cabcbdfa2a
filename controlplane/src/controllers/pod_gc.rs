//! Pod garbage collection, as Kubernetes' PodGC does it for orphans: a
//! pod bound to a node that no longer exists has no agent to stop it and
//! remove its object, so it would stay (Terminating, or counted by
//! nobody) forever; once its node has been missing for a quarantine (a
//! node object may be re-created by its agent), it is removed with grace
//! 0, this incarnation only.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rudder_api::{Kind, facts::ObjectRef, meta::DeleteOptions};
use rudder_client::{Client, ClientError};
use tokio::task::JoinHandle;

use crate::informers::Informers;

/// How often pods are checked against the nodes.
const SWEEP_PERIOD: Duration = Duration::from_secs(2);

/// How long a pod's node must be missing before the pod is removed
/// (Kubernetes' PodGC quarantine).
pub const QUARANTINE: Duration = Duration::from_secs(40);

/// Removes the pods of nodes that are gone.
#[derive(Clone)]
pub struct PodGarbageCollector {
    client: Client,
    informers: Informers,
    quarantine: Duration,
    /// Pods (by uid) first seen without their node, and when.
    orphaned: Arc<Mutex<BTreeMap<String, Instant>>>,
}

impl PodGarbageCollector {
    /// A collector acting through `client` on what `informers` see,
    /// removing pods whose node has been missing for `quarantine`.
    pub fn new(client: Client, informers: Informers, quarantine: Duration) -> Self {
        Self {
            client,
            informers,
            quarantine,
            orphaned: Arc::default(),
        }
    }

    /// Spawns the periodic sweep (once the informers are synced).
    pub fn start(self, tasks: &mut Vec<JoinHandle<()>>) {
        tasks.push(tokio::spawn(async move {
            self.informers.synced().await;
            loop {
                if let Err(err) = self.sweep().await {
                    tracing::warn!(%err, "removing pods of deleted nodes");
                }
                tokio::time::sleep(SWEEP_PERIOD).await;
            }
        }));
    }

    /// Removes every pod bound to a node the cache does not have; returns
    /// how many.
    ///
    /// # Errors
    /// A delete failed other than by the pod being gone or replaced.
    pub async fn sweep(&self) -> Result<usize, ClientError> {
        let now = Instant::now();
        let due: Vec<_> = {
            let mut orphaned = self
                .orphaned
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let pods: Vec<_> = self
                .informers
                .pods
                .list()
                .into_iter()
                .filter(|pod| {
                    pod.spec.node_name.as_deref().is_some_and(|node| {
                        !node.is_empty()
                            && self
                                .informers
                                .nodes
                                .get(&ObjectRef::new("", node))
                                .is_none()
                    })
                })
                .collect();
            orphaned.retain(|uid, _| pods.iter().any(|p| &p.metadata.uid == uid));
            pods.into_iter()
                .filter(|pod| {
                    let since = *orphaned.entry(pod.metadata.uid.clone()).or_insert(now);
                    now.duration_since(since) >= self.quarantine
                })
                .collect()
        };
        let mut removed = 0;
        for pod in due {
            let node = pod.spec.node_name.clone().unwrap_or_default();
            let options = DeleteOptions {
                grace_period_seconds: Some(0),
                uid: pod.metadata.uid.clone(),
                ..DeleteOptions::default()
            };
            match self
                .client
                .delete_with(
                    Kind::Pod,
                    &pod.metadata.namespace,
                    &pod.metadata.name,
                    &options,
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(pod = %pod.metadata.name, %node, "removed a pod of a deleted node");
                    removed += 1;
                }
                Err(ClientError::NotFound(_) | ClientError::Conflict(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(removed)
    }
}
