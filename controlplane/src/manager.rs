//! The controller manager: campaigns for the leader lease and, while this
//! replica leads, runs the controllers and the scheduler over one set of
//! shared informers; on lost leadership it stops them all.

use std::time::Duration;

use rudder_client::{Client, EventRecorder};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    controllers::{
        deployment, endpoints, event_ttl, gc, namespace, node_lifecycle, pod_gc, replicaset,
        taint_eviction,
    },
    informers::Informers,
    leader::{self, LeaderConfig},
    scheduler::{Scheduler, SchedulerConfig},
};

/// What to run and with which timings.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Run the controllers.
    pub controllers: bool,
    /// Run the scheduler.
    pub scheduler: bool,
    /// A node whose lease is not renewed for this long becomes NotReady.
    pub node_grace_period: Duration,
    /// Pods that state no toleration of the node lifecycle's NoExecute
    /// taints (`unreachable`, `not-ready`) are evicted this long after the
    /// taint appears (and recreated elsewhere by their controllers); what
    /// DefaultTolerationSeconds gives pods in Kubernetes.
    pub pod_eviction_timeout: Duration,
    /// Leader election; `None` runs unconditionally (one replica, tests).
    pub leader: Option<LeaderConfig>,
    /// Scheduler settings.
    pub scheduling: SchedulerConfig,
    /// Events are deleted this long after their last occurrence.
    pub event_ttl: Duration,
    /// Pods of a node that no longer exists are removed once it has been
    /// missing this long.
    pub orphan_pod_quarantine: Duration,
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
            orphan_pod_quarantine: pod_gc::QUARANTINE,
        }
    }
}

/// The API clients of the controllers and of the scheduler: each calls
/// the API under its own identity (`system:kube-controller-manager`,
/// `system:kube-scheduler`), authorised like any other client.
#[derive(Debug, Clone)]
pub struct ControllerClients {
    /// The controllers' client (also the leader election's and, when the
    /// controllers run, the shared informers').
    pub controllers: Client,
    /// The scheduler's client.
    pub scheduler: Client,
}

impl ControllerClients {
    /// One client for both (tests, benchmarks, `--insecure-plaintext`).
    pub fn shared(client: Client) -> Self {
        Self {
            controllers: client.clone(),
            scheduler: client,
        }
    }
}

/// The controllers and the scheduler of one control-plane process.
#[derive(Debug)]
pub struct ControllerManager {
    supervisor: JoinHandle<()>,
}

impl ControllerManager {
    /// Starts campaigning for leadership (or, without leader election,
    /// starts at once); while leading, runs what `config` enables, every
    /// part with the one `client`.
    pub fn start(client: Client, config: ControllerConfig) -> Self {
        Self::start_with(ControllerClients::shared(client), config)
    }

    /// [`ControllerManager::start`] with a client per component.
    pub fn start_with(clients: ControllerClients, config: ControllerConfig) -> Self {
        let supervisor = tokio::spawn(supervise(clients, config));
        Self { supervisor }
    }

    /// Stops everything.
    pub fn stop(self) {
        self.supervisor.abort();
    }
}

async fn supervise(clients: ControllerClients, config: ControllerConfig) {
    let client = if config.controllers {
        clients.controllers.clone()
    } else {
        clients.scheduler.clone()
    };
    let Some(leader_config) = config.leader.clone() else {
        // No election: run until the manager is stopped (aborted).
        let _running = AbortOnDrop(start_all(&clients, &config));
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
    follow_leadership(leading, || start_all(&clients, &config)).await;
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

fn start_all(clients: &ControllerClients, config: &ControllerConfig) -> Vec<JoinHandle<()>> {
    let informers = Informers::new();
    let mut tasks = Vec::new();
    let host = host_name();
    let client = &clients.controllers;
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
            events.clone(),
            config.node_grace_period,
        )
        .start(&mut tasks);
        taint_eviction::TaintEvictionController::new(
            client.clone(),
            informers.clone(),
            events,
            config.pod_eviction_timeout,
        )
        .start(&mut tasks);
        gc::GarbageCollector::new(client.clone(), informers.clone()).start(&mut tasks);
        event_ttl::EventExpiry::new(client.clone(), config.event_ttl).start(&mut tasks);
        namespace::NamespaceController::new(client.clone()).start(&mut tasks);
        pod_gc::PodGarbageCollector::new(
            client.clone(),
            informers.clone(),
            config.orphan_pod_quarantine,
        )
        .start(&mut tasks);
    }
    if config.scheduler {
        let client = &clients.scheduler;
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
    let informer_client = if config.controllers {
        &clients.controllers
    } else {
        &clients.scheduler
    };
    informers.run(informer_client, &mut tasks);
    tasks
}

/// This machine's host name, for the `source.host` of events.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
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
