//! The pod runtime's rounds: pod updates applied as they arrive, then a
//! round of sandboxes, container starts and restarts and probes, at least
//! every [`TICK`], with the pods' bandwidth limits brought up to date; the
//! statuses and events of a round go to the reporter.

use std::time::Duration;

use tokio::sync::{
    mpsc::{UnboundedReceiver, UnboundedSender},
    watch,
};

use super::{status_reporter::Report, updates::PodUpdate};
use crate::{bandwidth::BandwidthSync, pods::PodRuntime};

/// How often the pods get a round when nothing arrives: container
/// restarts, probes.
const TICK: Duration = Duration::from_millis(200);

/// Runs rounds until `stop` turns true; the round in progress then
/// finishes, so no sandbox is left half made. A round blocks (processes,
/// CNI plugins, probes), so it runs in place of this task's worker
/// (`block_in_place`: needs the multi-threaded runtime). `pods_from_api`:
/// the pods come from the control plane's node-sync stream.
pub(super) async fn run(
    mut runtime: PodRuntime,
    mut bandwidth: Option<BandwidthSync>,
    mut updates: UnboundedReceiver<PodUpdate>,
    reporter: Option<UnboundedSender<Report>>,
    mut stop: watch::Receiver<bool>,
    pods_from_api: bool,
) {
    // Until the first snapshot of the node's pods arrives, the runtime
    // knows none of the pods a previous agent left running: their limits
    // stay as they are rather than being taken off for a moment. (Without a
    // control plane only the CNI plugin's records set limits.)
    let mut heard_pods = !pods_from_api;
    while !*stop.borrow() {
        while let Ok(update) = updates.try_recv() {
            heard_pods |= apply(&mut runtime, update);
        }
        let (statuses, events, removed) = tokio::task::block_in_place(|| {
            let statuses = runtime.tick();
            if heard_pods && let Some(bandwidth) = bandwidth.as_mut() {
                bandwidth.sync(&runtime.pod_networks());
            }
            (statuses, runtime.take_events(), runtime.take_removed())
        });
        if let Some(reporter) = &reporter {
            for report in statuses {
                let _ = reporter.send(Report::Status(Box::new(report)));
            }
            for event in events {
                let _ = reporter.send(Report::Event(event));
            }
            for pod in removed {
                let _ = reporter.send(Report::Removed(pod));
            }
        }
        // Pods waiting for their sandbox: the next round at once.
        if runtime.has_waiting_sandboxes() {
            continue;
        }
        // A new pod should not wait for the next tick to start.
        tokio::select! {
            update = updates.recv() => match update {
                Some(update) => heard_pods |= apply(&mut runtime, update),
                None => tokio::time::sleep(TICK).await,
            },
            () = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Applies `update`; whether it was a snapshot of the node's pods.
fn apply(runtime: &mut PodRuntime, update: PodUpdate) -> bool {
    match update {
        PodUpdate::Resync(pods) => {
            runtime.resync(pods);
            return true;
        }
        PodUpdate::Upserted(pod) => runtime.upsert(pod),
        PodUpdate::Deleted(pod) => runtime.delete(&pod),
    }
    false
}
