//! The controllers: each turns observed state into desired state for one
//! kind of object, as a client of the API server.
//!
//! Every controller follows the same shape: informers feed keys into its
//! [`WorkQueue`], workers take a key and reconcile it from the informers'
//! caches (idempotently; a failure requeues with backoff), and after a
//! write a controller waits until its cache shows the write before it
//! acts on that key again, so it never decides twice on a stale view.
//!
//! [`crate::manager::ControllerManager`] runs them all, and the scheduler,
//! while this replica holds the leader lease.

pub mod deployment;
pub mod endpoint_slices;
pub mod endpoints;
pub mod event_ttl;
pub mod gc;
pub mod namespace;
pub mod node_lifecycle;
pub mod pod_gc;
pub mod replicaset;
pub mod taint_eviction;

use std::{future::Future, hash::Hash, time::Duration};

use rudder_client::{ClientError, workqueue::WorkQueue};
use tokio::task::JoinHandle;

use crate::informers::Informers;

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
