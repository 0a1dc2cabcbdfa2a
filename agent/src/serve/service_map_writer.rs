//! Writing the node-sync stream's Service changes to the maps as they
//! arrive, apart from the serve loop.

use std::sync::{Arc, Mutex};

use super::{lock, node_sync};
use crate::dataplane::services::ServiceDataplane;

/// Applies the node-sync stream's Service changes to the maps the moment
/// they arrive, on a thread of its own: the serve loop's pod work (CNI,
/// process starts, probes) never delays a map write. Pod updates are passed
/// on to the serve loop.
pub(super) struct ServiceMapWriter;

impl ServiceMapWriter {
    pub(super) fn spawn(
        updates: std::sync::mpsc::Receiver<node_sync::Received>,
        services: Arc<Mutex<ServiceDataplane>>,
        pods: std::sync::mpsc::Sender<node_sync::Desired>,
    ) {
        std::thread::spawn(move || {
            for node_sync::Received { desired, at } in updates {
                let result = match desired {
                    node_sync::Desired::Resync(all) => lock(&services).resync(&all, at),
                    node_sync::Desired::Apply(change) => lock(&services).apply(&change, at),
                    pod_update => {
                        if pods.send(pod_update).is_err() {
                            return;
                        }
                        continue;
                    }
                };
                match result {
                    Ok(writes) => tracing::debug!(writes, "services synced"),
                    Err(err) => tracing::error!(%err, "syncing services"),
                }
            }
        });
    }
}
