//! The serve loop's source of desired state: pod updates from the
//! node-sync stream, or the services file re-read when it changes.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{
    ServeConfig, StateSource, lock, node_sync, service_map_writer::ServiceMapWriter, services_file,
};
use crate::dataplane::services::ServiceDataplane;

/// The source of desired state, polled by the serve loop.
pub(super) enum DesiredFeed {
    /// Pod updates from the node-sync stream (its Service changes are
    /// applied by [`ServiceMapWriter`] as they arrive); one update taken while
    /// waiting is kept for the next round.
    Stream(
        std::sync::mpsc::Receiver<node_sync::Desired>,
        Option<Box<node_sync::Desired>>,
    ),
    /// The services file and the last modification time seen (`None`
    /// until the first look, so a missing file is reported once).
    File(PathBuf, String, Option<Option<std::time::SystemTime>>),
}

impl DesiredFeed {
    pub(super) fn start(config: &ServeConfig, services: &Arc<Mutex<ServiceDataplane>>) -> Self {
        match &config.source {
            StateSource::ControlPlane(addr) => {
                let (tx, rx) = std::sync::mpsc::channel();
                node_sync::follow(addr.clone(), config.node.clone(), tx);
                let (pods_tx, pods_rx) = std::sync::mpsc::channel();
                ServiceMapWriter::spawn(rx, Arc::clone(services), pods_tx);
                Self::Stream(pods_rx, None)
            }
            StateSource::File(path) => Self::File(path.clone(), config.node.clone(), None),
        }
    }

    /// Waits up to `timeout`, returning early when a pod update arrives
    /// (a new pod should not wait for the next tick to start).
    pub(super) fn wait(&mut self, timeout: Duration) {
        match self {
            Self::Stream(rx, early) => {
                if early.is_none() {
                    *early = rx.recv_timeout(timeout).ok().map(Box::new);
                }
            }
            Self::File(..) => std::thread::sleep(timeout),
        }
    }

    /// Applies whatever arrived since the last call.
    pub(super) fn apply_pending(
        &mut self,
        services: &Mutex<ServiceDataplane>,
        mut runtime: Option<&mut crate::pods::PodRuntime>,
    ) {
        match self {
            Self::Stream(rx, early) => {
                let arrived = early.take().map(|d| *d).into_iter().chain(rx.try_iter());
                for desired in arrived {
                    let Some(runtime) = runtime.as_deref_mut() else {
                        continue;
                    };
                    match desired {
                        node_sync::Desired::Pods(pods) => runtime.resync(pods),
                        node_sync::Desired::PodUpserted(pod) => runtime.upsert(pod),
                        node_sync::Desired::PodDeleted(pod) => runtime.delete(&pod),
                        node_sync::Desired::Resync(_) | node_sync::Desired::Apply(_) => {
                            tracing::error!("a Service change reached the pod runtime; ignored");
                        }
                    }
                }
            }
            Self::File(path, node, seen) => {
                let stamp = std::fs::metadata(&*path).and_then(|m| m.modified()).ok();
                if *seen == Some(stamp) {
                    return;
                }
                *seen = Some(stamp);
                let received = Instant::now();
                match services_file::read(path, node) {
                    Ok(desired) => match lock(services).resync(&desired, received) {
                        Ok(writes) => {
                            tracing::info!(services = desired.len(), writes, "services synced")
                        }
                        Err(err) => tracing::error!(%err, "syncing services"),
                    },
                    Err(err) => {
                        tracing::error!(%err, "services file ignored; the maps keep their last state")
                    }
                }
            }
        }
    }
}
