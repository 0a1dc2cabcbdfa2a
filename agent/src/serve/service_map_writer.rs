//! Writing Service changes to the maps as they arrive, apart from the pod
//! rounds: CNI, process starts and probes never delay a map write.

use std::sync::{Arc, Mutex};

use tokio::{sync::mpsc::UnboundedReceiver, task::JoinHandle};

use super::{lock, updates::ServiceUpdate};
use crate::dataplane::services::ServiceDataplane;

/// Applies every update from `updates` to `services`, in order, until the
/// senders are gone. Map writes are system calls, so the writer runs on a
/// blocking thread of the runtime.
pub(super) fn spawn(
    mut updates: UnboundedReceiver<ServiceUpdate>,
    services: Arc<Mutex<ServiceDataplane>>,
) -> JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        while let Some(update) = updates.blocking_recv() {
            match update {
                ServiceUpdate::Resync {
                    services: all,
                    received,
                } => match lock(&services).resync(&all, received) {
                    Ok(writes) => {
                        tracing::info!(services = all.len(), writes, "services synced");
                    }
                    Err(err) => tracing::error!(%err, "syncing services"),
                },
                ServiceUpdate::Apply { change, received } => {
                    match lock(&services).apply(&change, received) {
                        Ok(writes) => tracing::debug!(writes, "services synced"),
                        Err(err) => tracing::error!(%err, "syncing services"),
                    }
                }
            }
        }
    })
}
