//! The embedded pod runtime: a pod is a network namespace (its sandbox)
//! wired by the CNI plugins of the node's net.d, and its containers are
//! processes started inside it. The runtime follows the pods bound to this
//! node, restarts containers per restartPolicy with backoff, runs
//! startup/liveness/readiness probes, tears pods down (SIGTERM, grace
//! period, SIGKILL, CNI DEL, sandbox removed), and reports their status.
//!
//! What it started is recorded under the state directory, so a restarted
//! agent adopts running pods instead of restarting them.

mod bandwidth;
mod cgroup;
pub(crate) mod cni;
mod config;
mod deadline;
mod env;
mod events;
mod paths;
mod probe;
mod probe_schedule;
mod process;
mod record;
mod restart;
mod sandbox;
mod service_env;
mod status;
mod termination;

use std::{collections::BTreeMap, path::PathBuf, time::Instant};

use rudder_api::core::{Pod, PodStatus};

pub use self::{
    cni::{CniError, NetworkConfig},
    config::{HostInterfaceHook, PodRuntimeConfig, PrepareInterface},
    events::PodEvent,
    service_env::ServiceEnvironment,
    status::StatusReport,
    termination::RemovedPod,
};
use self::{
    paths::PodNames,
    record::{PodRecord, adopt, load_records},
    restart::{ContainerRun, new_container},
    status::{pod_status, stored_status_differs},
};

/// One pod the runtime runs: its spec as last heard, its sandbox once
/// made, and its containers.
#[derive(Debug)]
struct PodRun {
    pod: Pod,
    /// The pod's namespace, name and uid, checked for use in paths.
    names: PodNames,
    record: Option<PodRecord>,
    containers: Vec<ContainerRun>,
    /// Set when the pod is going: SIGKILL at this deadline.
    terminating: Option<Instant>,
    /// Why the sandbox is not up yet, and when to try again.
    sandbox_error: Option<(String, Instant)>,
    /// When the runtime first heard of the pod (sandboxes are made in
    /// this order).
    arrived: Instant,
}

/// The pods of this node.
pub struct PodRuntime {
    config: PodRuntimeConfig,
    pods: BTreeMap<String, PodRun>,
    reported: BTreeMap<String, PodStatus>,
    adopted: BTreeMap<String, PodRecord>,
    /// Events of this round; behind a lock because the per-pod steps take
    /// the runtime by shared reference (sandboxes are made on several
    /// threads at once).
    events: std::sync::Mutex<Vec<PodEvent>>,
    /// Pods whose termination finished this round.
    removed: Vec<RemovedPod>,
}

impl PodRuntime {
    /// A runtime that will adopt the pods a previous agent recorded.
    pub fn new(config: PodRuntimeConfig) -> Self {
        let adopted = load_records(&config.state_dir);
        Self {
            config,
            pods: BTreeMap::new(),
            reported: BTreeMap::new(),
            events: std::sync::Mutex::default(),
            removed: Vec::new(),
            adopted,
        }
    }

    /// Makes the runtime run exactly `pods` (a snapshot): new ones start,
    /// missing ones are torn down, recorded ones are adopted.
    pub fn resync(&mut self, pods: Vec<Pod>) {
        let wanted: std::collections::BTreeSet<String> =
            pods.iter().map(|p| p.metadata.uid.clone()).collect();
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|uid| !wanted.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.terminate(&uid);
        }
        for pod in pods {
            self.upsert(pod);
        }
        // Recorded pods the control plane no longer has: tear them down.
        let orphans: Vec<PodRecord> = std::mem::take(&mut self.adopted).into_values().collect();
        for record in orphans {
            tracing::info!(pod = %format!("{}/{}", record.namespace, record.name), "recorded pod no longer exists; removing");
            self.teardown_record(&record);
        }
    }

    /// A pod bound to this node appeared or changed.
    pub fn upsert(&mut self, pod: Pod) {
        if pod.spec.node_name.as_deref() != Some(self.config.node.as_str()) {
            return;
        }
        let uid = pod.metadata.uid.clone();
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let meta = &pod.metadata;
        let names = match PodNames::check(&meta.namespace, &meta.name, &meta.uid) {
            Ok(names) => names,
            Err(err) => {
                // The API refuses such pods; one that got through anyway
                // (an old store, a bug) is not run rather than given paths.
                tracing::warn!(pod = %format!("{}/{}", meta.namespace, meta.name), %err, "refusing to run the pod");
                return;
            }
        };
        if let Some(run) = self.pods.get_mut(&uid) {
            // Someone else rewrote what this agent reports (the node
            // lifecycle controller marks pods of an unreachable node not
            // ready): report again, so a node that comes back makes its
            // pods ready again, as the kubelet's status manager does.
            if self
                .reported
                .get(&uid)
                .is_some_and(|reported| stored_status_differs(reported, pod.status.as_ref()))
            {
                self.reported.remove(&uid);
            }
            run.pod = pod;
            if deleting {
                self.terminate(&uid);
            }
            return;
        }
        if deleting && !self.adopted.contains_key(&uid) {
            // Deleted and nothing of it runs here (never started, or
            // finished already): the object can go.
            self.removed.push(RemovedPod {
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid,
            });
            return;
        }
        let containers = pod
            .spec
            .containers
            .iter()
            .map(|c| new_container(c.clone()))
            .collect();
        let mut run = PodRun {
            pod,
            names,
            record: None,
            containers,
            terminating: None,
            sandbox_error: None,
            arrived: Instant::now(),
        };
        if let Some(record) = self.adopted.remove(&uid) {
            adopt(&mut run, record);
        }
        self.pods.insert(uid.clone(), run);
        if deleting {
            // Deleted while no agent ran it: what the previous agent
            // started stops gracefully.
            self.terminate(&uid);
        }
    }

    /// A pod was deleted (or left this node): tear it down.
    pub fn delete(&mut self, pod: &Pod) {
        self.terminate(&pod.metadata.uid);
    }

    /// One round: sandboxes, container starts and restarts, probes,
    /// terminations. Returns the statuses that changed.
    pub fn tick(&mut self) -> Vec<StatusReport> {
        let now = Instant::now();
        self.create_sandboxes(now);
        let uids: Vec<String> = self.pods.keys().cloned().collect();
        let mut reports = Vec::new();
        for uid in uids {
            let Some(mut run) = self.pods.remove(&uid) else {
                continue;
            };
            if run.terminating.is_some() {
                if self.finish_termination(&mut run, now) {
                    // The pod's final state, which its last watch event
                    // shows: containers terminated, not ready.
                    let status = pod_status(&run, &self.config);
                    if self.reported.remove(&uid).as_ref() != Some(&status) {
                        reports.push(StatusReport {
                            namespace: run.pod.metadata.namespace.clone(),
                            name: run.pod.metadata.name.clone(),
                            uid: uid.clone(),
                            status,
                        });
                    }
                    continue;
                }
                self.pods.insert(uid, run);
                continue;
            }
            if run.record.is_none() && run.sandbox_error.is_none() {
                // Not tried yet: a later round makes it; nothing to report.
                self.pods.insert(uid, run);
                continue;
            }
            if let Some(record) = run.record.clone() {
                self.run_containers(&mut run, &record, now);
            }
            let status = pod_status(&run, &self.config);
            if self.reported.get(&uid) != Some(&status) {
                self.reported.insert(uid.clone(), status.clone());
                reports.push(StatusReport {
                    namespace: run.pod.metadata.namespace.clone(),
                    name: run.pod.metadata.name.clone(),
                    uid: uid.clone(),
                    status,
                });
            }
            self.pods.insert(uid, run);
        }
        reports
    }

    /// Number of pods the runtime runs.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether the runtime runs no pod.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Every pod with a sandbox, as per-pod bandwidth limits need it.
    pub fn pod_networks(&self) -> Vec<crate::bandwidth::PodNetwork> {
        self.pods
            .values()
            .filter_map(|run| {
                let record = run.record.as_ref()?;
                Some(crate::bandwidth::PodNetwork {
                    pod: format!("{}/{}", record.namespace, record.name),
                    annotations: run.pod.metadata.annotations.clone(),
                    host_interfaces: cni::AddResult::read(&record.cni_result).host_interfaces(),
                    netns: PathBuf::from("/run/netns").join(&record.sandbox),
                })
            })
            .collect()
    }

    fn log_dir(&self, run: &PodRun) -> PathBuf {
        run.names.log_dir(&self.config.state_dir)
    }
}
