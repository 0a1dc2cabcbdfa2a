//! The embedded pod runtime: a pod is a network namespace (its sandbox)
//! wired by the CNI plugins of the node's net.d, and its containers are
//! processes started inside it. The runtime follows the pods bound to this
//! node, restarts containers per restartPolicy with backoff, runs
//! startup/liveness/readiness probes, tears pods down (SIGTERM, grace
//! period, SIGKILL, CNI DEL, sandbox removed), and reports their status.
//!
//! What it started is recorded under the state directory, so a restarted
//! agent adopts running pods instead of restarting them.

mod cgroup;
pub(crate) mod cni;
mod probe;
mod process;

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;
use rudder_api::{
    core::{Container, ContainerStatus, Pod, PodIp, PodStatus},
    meta::Condition,
    time::now_rfc3339,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use self::cni::{CniError, NetworkConfig};
use self::process::ProcessState;

/// How the runtime runs pods.
#[derive(Clone, Debug)]
pub struct PodRuntimeConfig {
    /// This node's name.
    pub node: String,
    /// This node's address (the pods' hostIP).
    pub node_addr: Ipv4Addr,
    /// Records and container logs live here.
    pub state_dir: PathBuf,
    /// CNI network configurations (net.d).
    pub cni_conf_dir: PathBuf,
    /// CNI plugin binaries.
    pub cni_bin_dir: PathBuf,
    /// Sandbox names are `<prefix>-<pod uid>` (unique per node).
    pub sandbox_prefix: String,
    /// cgroup v2 directory pods' cgroups are made under, if any.
    pub cgroup_root: Option<PathBuf>,
    /// Directories put before the standard ones in containers' PATH (the
    /// embedded runtime resolves `command[0]` there; it pulls no images).
    pub extra_path: Vec<PathBuf>,
    /// Called with each host-side interface of a new sandbox once CNI ADD
    /// has wired it and before its containers start, so they never run
    /// without the node's service translation. `None`: nothing to do.
    pub host_interface_hook: Option<HostInterfaceHook>,
}

/// See [`PodRuntimeConfig::host_interface_hook`]: attaches whatever the
/// node runs on a pod's host-side interface; an error is logged (the
/// caller also retries on its own).
#[derive(Clone)]
pub struct HostInterfaceHook(pub std::sync::Arc<PrepareInterface>);

/// What a [`HostInterfaceHook`] runs: given an interface name, prepares it
/// or says why it could not.
pub type PrepareInterface = dyn Fn(&str) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for HostInterfaceHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostInterfaceHook")
    }
}

/// A pod status to write to the API.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusReport {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (a report for an older incarnation must not be written).
    pub uid: String,
    /// The status.
    pub status: PodStatus,
}

/// Something that happened to a pod, to be told as an Event (the
/// kubelet's `Started`, `Killing`, `Unhealthy`, `BackOff`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEvent {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's uid.
    pub uid: String,
    /// The container it is about, if one.
    pub container: Option<String>,
    /// A warning rather than routine.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// For humans.
    pub message: String,
}

/// What happened to one container during a round, before it is tied to
/// its pod.
struct ContainerNote {
    warning: bool,
    reason: &'static str,
    message: String,
}

/// What a restarted agent needs to adopt a pod.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PodRecord {
    namespace: String,
    name: String,
    uid: String,
    sandbox: String,
    ip: Option<Ipv4Addr>,
    cni_result: Value,
    started: String,
    containers: Vec<ContainerRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ContainerRecord {
    name: String,
    pid: Option<u32>,
    restart_count: i64,
    started_at: Option<String>,
    /// The startup probe passed (or there is none); a record written before
    /// startup probes existed reads `false`, so the probe runs again.
    #[serde(default)]
    startup_passed: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct ProbeState {
    next: Option<Instant>,
    successes: i64,
    failures: i64,
}

#[derive(Debug)]
struct ContainerRun {
    spec: Container,
    pid: Option<u32>,
    restart_count: i64,
    started_at: Option<String>,
    started_instant: Option<Instant>,
    next_start: Instant,
    backoff: Duration,
    last_exit: Option<i32>,
    finished: bool,
    ready: bool,
    /// The startup probe passed for this run of the container (or there is
    /// none): until then liveness and readiness are not probed.
    startup_passed: bool,
    startup: ProbeState,
    readiness: ProbeState,
    liveness: ProbeState,
}

#[derive(Debug)]
struct PodRun {
    pod: Pod,
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
}

const MAX_BACKOFF: Duration = Duration::from_secs(300);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// Sandboxes made in one round at most, so the pods that are done get
/// their containers started and their status reported before the rest.
const SANDBOXES_PER_TICK: usize = 8;
/// Sandboxes made at once: making one mostly waits for processes (`ip`,
/// the CNI plugins), so a few side by side finish a burst of pods sooner.
const SANDBOX_WORKERS: usize = 4;

impl PodRuntime {
    /// A runtime that will adopt the pods a previous agent recorded.
    pub fn new(config: PodRuntimeConfig) -> Self {
        let mut adopted = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(config.state_dir.join("pods")) {
            for entry in entries.flatten() {
                let Ok(text) = std::fs::read_to_string(entry.path()) else {
                    continue;
                };
                match serde_json::from_str::<PodRecord>(&text) {
                    Ok(record) => {
                        adopted.insert(record.uid.clone(), record);
                    }
                    Err(err) => {
                        tracing::warn!(file = %entry.path().display(), %err, "unreadable pod record")
                    }
                }
            }
        }
        Self {
            config,
            pods: BTreeMap::new(),
            reported: BTreeMap::new(),
            events: std::sync::Mutex::default(),
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
        if deleting {
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
            record: None,
            containers,
            terminating: None,
            sandbox_error: None,
            arrived: Instant::now(),
        };
        if let Some(record) = self.adopted.remove(&uid) {
            adopt(&mut run, record);
        }
        self.pods.insert(uid, run);
    }

    /// The events since the last call.
    pub fn take_events(&mut self) -> Vec<PodEvent> {
        std::mem::take(
            self.events
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn note(&self, pod: &Pod, container: Option<&str>, note: ContainerNote) {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        events.push(PodEvent {
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            container: container.map(str::to_owned),
            warning: note.warning,
            reason: note.reason,
            message: note.message,
        });
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
                    self.reported.remove(&uid);
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

    /// Whether pods wait for a first try at their sandbox (the caller
    /// should run the next round at once rather than after a pause).
    pub fn has_waiting_sandboxes(&self) -> bool {
        self.pods.values().any(|run| {
            run.terminating.is_none() && run.record.is_none() && run.sandbox_error.is_none()
        })
    }

    /// Makes the sandboxes that are due (first tries, and retries whose
    /// time has come), oldest pods first, [`SANDBOX_WORKERS`] at a time and
    /// at most [`SANDBOXES_PER_TICK`] per round.
    fn create_sandboxes(&mut self, now: Instant) {
        let mut due: Vec<(Instant, String)> = self
            .pods
            .iter()
            .filter(|(_, run)| {
                run.terminating.is_none()
                    && run.record.is_none()
                    && run
                        .sandbox_error
                        .as_ref()
                        .is_none_or(|(_, retry)| now >= *retry)
            })
            .map(|(uid, run)| (run.arrived, uid.clone()))
            .collect();
        due.sort();
        let mut runs: Vec<PodRun> = due
            .iter()
            .take(SANDBOXES_PER_TICK)
            .filter_map(|(_, uid)| self.pods.remove(uid))
            .collect();
        if runs.is_empty() {
            return;
        }
        let per_worker = runs.len().div_ceil(SANDBOX_WORKERS);
        let runtime = &*self;
        std::thread::scope(|scope| {
            for batch in runs.chunks_mut(per_worker) {
                scope.spawn(move || {
                    for run in batch {
                        runtime.ensure_sandbox(run, now);
                    }
                });
            }
        });
        for run in runs {
            self.pods.insert(run.pod.metadata.uid.clone(), run);
        }
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
                    host_interfaces: host_interfaces(&record.cni_result),
                    netns: PathBuf::from("/run/netns").join(&record.sandbox),
                })
            })
            .collect()
    }

    fn sandbox_name(&self, uid: &str) -> String {
        let short: String = uid
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        format!("{}-{short}", self.config.sandbox_prefix)
    }

    fn log_dir(&self, pod: &Pod) -> PathBuf {
        let meta = &pod.metadata;
        self.config
            .state_dir
            .join("logs")
            .join(format!("{}_{}_{}", meta.namespace, meta.name, meta.uid))
    }

    /// Creates the sandbox and wires it with CNI; on failure undoes it and
    /// retries later.
    fn ensure_sandbox(&self, run: &mut PodRun, now: Instant) {
        if let Some((_, retry)) = &run.sandbox_error
            && now < *retry
        {
            return;
        }
        let meta = &run.pod.metadata;
        let sandbox = self.sandbox_name(&meta.uid);
        let result = (|| -> Result<PodRecord, String> {
            let network =
                NetworkConfig::load(&self.config.cni_conf_dir).map_err(|e| e.to_string())?;
            ip(&["netns", "add", &sandbox]).or_else(|e| {
                if e.contains("File exists") {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            let attachment = cni::Attachment {
                container_id: meta.uid.clone(),
                netns: PathBuf::from("/run/netns").join(&sandbox),
                ifname: "eth0".into(),
            };
            let runtime_config = json!({ "bandwidth": bandwidth(&run.pod) });
            match cni::add(
                &network,
                &self.config.cni_bin_dir,
                &attachment,
                &runtime_config,
            ) {
                Ok((cni_result, ip)) => Ok(PodRecord {
                    namespace: meta.namespace.clone(),
                    name: meta.name.clone(),
                    uid: meta.uid.clone(),
                    sandbox: sandbox.clone(),
                    ip,
                    cni_result,
                    started: now_rfc3339(),
                    containers: Vec::new(),
                }),
                Err(err) => {
                    let _ = ip(&["netns", "delete", &sandbox]);
                    Err(err.to_string())
                }
            }
        })();
        match result {
            Ok(record) => {
                if let Some(hook) = &self.config.host_interface_hook {
                    for iface in host_interfaces(&record.cni_result) {
                        if let Err(err) = (hook.0)(&iface) {
                            tracing::warn!(pod = %format!("{}/{}", record.namespace, record.name), iface, %err, "preparing the pod's host interface");
                        }
                    }
                }
                tracing::info!(pod = %format!("{}/{}", record.namespace, record.name), ip = ?record.ip, sandbox = %record.sandbox, "sandbox ready");
                std::fs::create_dir_all(self.log_dir(&run.pod)).ok();
                run.record = Some(record);
                run.sandbox_error = None;
                self.save(run);
            }
            Err(err) => {
                tracing::warn!(pod = %format!("{}/{}", meta.namespace, meta.name), %err, "sandbox failed; retrying");
                self.note(
                    &run.pod,
                    None,
                    ContainerNote {
                        warning: true,
                        reason: "FailedCreatePodSandBox",
                        message: format!("Failed to create pod sandbox: {err}"),
                    },
                );
                run.sandbox_error = Some((err, now + Duration::from_secs(2)));
            }
        }
    }

    fn run_containers(&self, run: &mut PodRun, record: &PodRecord, now: Instant) {
        let policy = run
            .pod
            .spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let netns = PathBuf::from("/run/netns").join(&record.sandbox);
        let log_dir = self.log_dir(&run.pod);
        let env_base = base_env(&run.pod, record.ip, &self.config.extra_path);
        let cgroup = self.config.cgroup_root.as_deref().and_then(|root| {
            cgroup::ensure(root, &record.sandbox, &run.pod)
                .map_err(|err| tracing::warn!(pod = %run.pod.metadata.name, %err, "pod cgroup; running without limits"))
                .ok()
        });
        let mut changed = false;
        for c in &mut run.containers {
            if let Some(pid) = c.pid {
                match process::check(pid) {
                    ProcessState::Running => {}
                    ProcessState::Gone(code) => {
                        c.pid = None;
                        c.ready = false;
                        c.last_exit = code;
                        changed = true;
                        let ran_long = c
                            .started_instant
                            .is_some_and(|s| s.elapsed() > Duration::from_secs(10));
                        if ran_long {
                            c.backoff = FIRST_BACKOFF;
                        }
                        let restart = match policy.as_str() {
                            "Never" => false,
                            "OnFailure" => code != Some(0),
                            _ => true,
                        };
                        if restart {
                            if c.backoff > FIRST_BACKOFF {
                                // Crashing again soon after a restart.
                                self.note(
                                    &run.pod,
                                    Some(&c.spec.name),
                                    ContainerNote {
                                        warning: true,
                                        reason: "BackOff",
                                        message: format!(
                                            "Back-off {:?} restarting failed container {} in pod {}",
                                            c.backoff, c.spec.name, run.pod.metadata.name
                                        ),
                                    },
                                );
                            }
                            c.next_start = now + c.backoff;
                            c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
                        } else {
                            c.finished = true;
                        }
                        tracing::info!(pod = %run.pod.metadata.name, container = %c.spec.name, ?code, restart, "container exited");
                    }
                }
            }
            if c.pid.is_none() && !c.finished && now >= c.next_start {
                let mut env = env_base.clone();
                env.extend(
                    c.spec
                        .env
                        .iter()
                        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())),
                );
                let argv: Vec<String> = c
                    .spec
                    .command
                    .iter()
                    .chain(&c.spec.args)
                    .map(|a| expand(a, &env))
                    .collect();
                let log = log_dir.join(format!("{}.log", c.spec.name));
                let launch = process::Launch {
                    argv: &argv,
                    env: &env,
                    working_dir: c.spec.working_dir.as_deref(),
                    netns: &netns,
                    log: &log,
                    cgroup: cgroup.as_deref(),
                };
                match process::start(&launch) {
                    Ok(pid) => {
                        if c.started_at.is_some() {
                            c.restart_count += 1;
                        }
                        c.pid = Some(pid);
                        c.started_at = Some(now_rfc3339());
                        c.started_instant = Some(now);
                        c.startup_passed = c.spec.startup_probe.is_none();
                        c.startup = ProbeState::default();
                        c.readiness = ProbeState::default();
                        c.liveness = ProbeState::default();
                        changed = true;
                        tracing::info!(pod = %run.pod.metadata.name, container = %c.spec.name, pid, "container started");
                        self.note(
                            &run.pod,
                            Some(&c.spec.name),
                            ContainerNote {
                                warning: false,
                                reason: "Started",
                                message: format!("Started container {}", c.spec.name),
                            },
                        );
                    }
                    Err(err) => {
                        tracing::warn!(pod = %run.pod.metadata.name, container = %c.spec.name, %err, "container failed to start");
                        self.note(
                            &run.pod,
                            Some(&c.spec.name),
                            ContainerNote {
                                warning: true,
                                reason: "Failed",
                                message: format!("Error: {err}"),
                            },
                        );
                        c.last_exit = Some(127);
                        c.next_start = now + c.backoff;
                        c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            if let (Some(pid), Some(ip)) = (c.pid, record.ip) {
                let mut notes = Vec::new();
                changed |= probe_container(c, pid, ip, &netns, now, &mut notes);
                for note in notes {
                    self.note(&run.pod, Some(&c.spec.name), note);
                }
            }
        }
        if changed {
            self.save(run);
        }
    }

    /// Starts a pod's termination: SIGTERM now, SIGKILL at the deadline.
    fn terminate(&mut self, uid: &str) {
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        if run.terminating.is_some() {
            return;
        }
        let grace = run
            .pod
            .spec
            .termination_grace_period_seconds
            .and_then(|g| u64::try_from(g).ok())
            .map_or(DEFAULT_GRACE, Duration::from_secs);
        let mut stopping = Vec::new();
        for c in &run.containers {
            if let Some(pid) = c.pid {
                process::signal(pid, Signal::SIGTERM);
                stopping.push(c.spec.name.clone());
            }
        }
        run.terminating = Some(Instant::now() + grace);
        tracing::info!(pod = %run.pod.metadata.name, ?grace, "terminating");
        let pod = run.pod.clone();
        for container in stopping {
            self.note(
                &pod,
                Some(&container),
                ContainerNote {
                    warning: false,
                    reason: "Killing",
                    message: format!("Stopping container {container}"),
                },
            );
        }
    }

    /// `true` once the pod is completely gone.
    fn finish_termination(&mut self, run: &mut PodRun, now: Instant) -> bool {
        let deadline = run.terminating.unwrap_or(now);
        let mut alive = false;
        for c in &mut run.containers {
            if let Some(pid) = c.pid {
                if process::check(pid) == ProcessState::Running {
                    if now >= deadline {
                        process::signal(pid, Signal::SIGKILL);
                    }
                    alive = true;
                } else {
                    c.pid = None;
                }
            }
        }
        if alive {
            return false;
        }
        if let Some(record) = run.record.take() {
            self.teardown_record(&record);
        }
        true
    }

    /// Kills what a record says runs, CNI DEL, removes the sandbox and the
    /// record.
    fn teardown_record(&self, record: &PodRecord) {
        for pid in record.containers.iter().filter_map(|c| c.pid) {
            if process::check(pid) == ProcessState::Running {
                process::signal(pid, Signal::SIGKILL);
            }
        }
        if let Ok(network) = NetworkConfig::load(&self.config.cni_conf_dir) {
            let attachment = cni::Attachment {
                container_id: record.uid.clone(),
                netns: PathBuf::from("/run/netns").join(&record.sandbox),
                ifname: "eth0".into(),
            };
            if let Err(err) = cni::delete(
                &network,
                &self.config.cni_bin_dir,
                &attachment,
                Some(&record.cni_result),
            ) {
                tracing::warn!(pod = %record.name, %err, "CNI DEL");
            }
        }
        let _ = ip(&["netns", "delete", &record.sandbox]);
        if let Some(root) = &self.config.cgroup_root {
            cgroup::remove(root, &record.sandbox);
        }
        let _ = std::fs::remove_file(self.record_path(&record.uid));
        tracing::info!(pod = %format!("{}/{}", record.namespace, record.name), "pod removed");
    }

    fn record_path(&self, uid: &str) -> PathBuf {
        self.config
            .state_dir
            .join("pods")
            .join(format!("{uid}.json"))
    }

    /// Persists the record with the containers' current pids.
    fn save(&self, run: &mut PodRun) {
        let Some(record) = run.record.as_mut() else {
            return;
        };
        record.containers = run
            .containers
            .iter()
            .map(|c| ContainerRecord {
                name: c.spec.name.clone(),
                pid: c.pid,
                restart_count: c.restart_count,
                started_at: c.started_at.clone(),
                startup_passed: c.startup_passed,
            })
            .collect();
        let path = self.record_path(&record.uid);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = path.with_extension("tmp");
        let written = serde_json::to_vec(record)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(err) = written {
            tracing::warn!(pod = %record.name, %err, "cannot record the pod; a restarted agent would not adopt it");
        }
    }
}

/// Names of the interfaces in a CNI result that are not in the sandbox:
/// the pod's host-side veth, and the bridge (the hook tells them apart).
fn host_interfaces(cni_result: &Value) -> Vec<String> {
    cni_result
        .get("interfaces")
        .and_then(Value::as_array)
        .map(|interfaces| {
            interfaces
                .iter()
                .filter(|i| {
                    i.get("sandbox")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                })
                .filter_map(|i| Some(i.get("name")?.as_str()?.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn new_container(spec: Container) -> ContainerRun {
    ContainerRun {
        spec,
        pid: None,
        restart_count: 0,
        started_at: None,
        started_instant: None,
        next_start: Instant::now(),
        backoff: FIRST_BACKOFF,
        last_exit: None,
        finished: false,
        ready: false,
        startup_passed: false,
        startup: ProbeState::default(),
        readiness: ProbeState::default(),
        liveness: ProbeState::default(),
    }
}

/// Takes over a recorded pod: its sandbox, address and running processes.
fn adopt(run: &mut PodRun, record: PodRecord) {
    for c in &mut run.containers {
        if let Some(saved) = record.containers.iter().find(|s| s.name == c.spec.name) {
            c.restart_count = saved.restart_count;
            c.started_at = saved.started_at.clone();
            c.pid = saved
                .pid
                .filter(|pid| process::check(*pid) == ProcessState::Running);
            c.startup_passed = saved.startup_passed || c.spec.startup_probe.is_none();
        }
    }
    tracing::info!(pod = %format!("{}/{}", record.namespace, record.name), "adopted after restart");
    run.record = Some(record);
}

/// Runs the probes that are due, as the kubelet does: while a startup
/// probe has not passed, only it runs (the container is neither live-checked
/// nor ready); `failureThreshold` failures of it or of the liveness probe
/// kill the container, which the restart policy then handles. Returns
/// whether the startup probe just passed (worth recording).
fn probe_container(
    c: &mut ContainerRun,
    pid: u32,
    ip: Ipv4Addr,
    netns: &Path,
    now: Instant,
    notes: &mut Vec<ContainerNote>,
) -> bool {
    let unhealthy = |kind: &str, why: String| ContainerNote {
        warning: true,
        reason: "Unhealthy",
        message: format!("{kind} probe failed: {why}"),
    };
    let killing = |kind: &str, name: &str| ContainerNote {
        warning: false,
        reason: "Killing",
        message: format!("Container {name} failed {kind} probe, will be restarted"),
    };
    let started = c.started_instant.unwrap_or(now);
    let mut startup_just_passed = false;
    if !c.startup_passed {
        c.ready = false;
        match c.spec.startup_probe.clone() {
            None => c.startup_passed = true,
            Some(probe) => {
                if !due(&mut c.startup, &probe, started, now) {
                    return false;
                }
                if let Err(why) = probe::run(&probe, &c.spec, ip, netns) {
                    notes.push(unhealthy("Startup", why));
                    c.startup.failures += 1;
                    if c.startup.failures >= probe.failure_threshold.unwrap_or(3).max(1) {
                        tracing::info!(container = %c.spec.name, failures = c.startup.failures, "startup probe failed; killing the container");
                        notes.push(killing("startup", &c.spec.name));
                        process::signal(pid, Signal::SIGKILL);
                        c.startup.failures = 0;
                    }
                    return false;
                }
                tracing::info!(container = %c.spec.name, "startup probe passed");
                c.startup_passed = true;
            }
        }
        startup_just_passed = true;
    }
    if let Some(probe) = c.spec.liveness_probe.clone()
        && due(&mut c.liveness, &probe, started, now)
    {
        match probe::run(&probe, &c.spec, ip, netns) {
            Ok(()) => c.liveness.failures = 0,
            Err(why) => {
                notes.push(unhealthy("Liveness", why));
                c.liveness.failures += 1;
                if c.liveness.failures >= probe.failure_threshold.unwrap_or(3).max(1) {
                    tracing::info!(container = %c.spec.name, "liveness probe failed; restarting");
                    notes.push(killing("liveness", &c.spec.name));
                    process::signal(pid, Signal::SIGKILL);
                    c.liveness.failures = 0;
                }
            }
        }
    }
    match c.spec.readiness_probe.clone() {
        None => c.ready = true,
        Some(probe) => {
            if due(&mut c.readiness, &probe, started, now) {
                if let Err(why) = probe::run(&probe, &c.spec, ip, netns) {
                    notes.push(unhealthy("Readiness", why));
                    c.readiness.failures += 1;
                    c.readiness.successes = 0;
                    if c.readiness.failures >= probe.failure_threshold.unwrap_or(3).max(1) {
                        c.ready = false;
                    }
                } else {
                    c.readiness.successes += 1;
                    c.readiness.failures = 0;
                    if c.readiness.successes >= probe.success_threshold.unwrap_or(1).max(1) {
                        c.ready = true;
                    }
                }
            }
        }
    }
    startup_just_passed
}

/// Whether a probe is due now (and schedules its next run).
fn due(
    state: &mut ProbeState,
    probe: &rudder_api::core::Probe,
    started: Instant,
    now: Instant,
) -> bool {
    let initial = Duration::from_secs(
        probe
            .initial_delay_seconds
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0),
    );
    let period = Duration::from_secs(
        probe
            .period_seconds
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(10)
            .max(1),
    );
    let next = state.next.unwrap_or(started + initial);
    if now < next {
        return false;
    }
    state.next = Some(now + period);
    true
}

/// Variables every container gets (a rudder convenience; Kubernetes needs
/// the downward API for the same).
fn base_env(pod: &Pod, ip: Option<Ipv4Addr>, extra_path: &[PathBuf]) -> Vec<(String, String)> {
    let mut path: Vec<String> = extra_path.iter().map(|p| p.display().to_string()).collect();
    path.push("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    vec![
        ("PATH".into(), path.join(":")),
        ("POD_NAME".into(), pod.metadata.name.clone()),
        ("POD_NAMESPACE".into(), pod.metadata.namespace.clone()),
        (
            "POD_IP".into(),
            ip.map(|i| i.to_string()).unwrap_or_default(),
        ),
    ]
}

/// Expands `$(NAME)` from `env`, as Kubernetes does in command and args;
/// `$$(NAME)` is a literal `$(NAME)`; unknown names stay as written.
fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("$(") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("$(");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        match rest[i + 2..].find(')') {
            Some(end) => {
                let name = &rest[i + 2..i + 2 + end];
                match env.iter().rev().find(|(k, _)| k == name) {
                    Some((_, value)) => out.push_str(value),
                    None => out.push_str(&rest[i..i + 3 + end]),
                }
                rest = &rest[i + 3 + end..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The bandwidth capability from the pod's `kubernetes.io/ingress-bandwidth`
/// and `egress-bandwidth` annotations (bits per second, with K/M/G).
fn bandwidth(pod: &Pod) -> Value {
    let rate = |key: &str| {
        pod.metadata
            .annotations
            .get(key)
            .and_then(|v| parse_bits(v))
    };
    let mut out = serde_json::Map::new();
    if let Some(r) = rate("kubernetes.io/ingress-bandwidth") {
        out.insert("ingressRate".into(), json!(r));
        out.insert("ingressBurst".into(), json!(r / 8));
    }
    if let Some(r) = rate("kubernetes.io/egress-bandwidth") {
        out.insert("egressRate".into(), json!(r));
        out.insert("egressBurst".into(), json!(r / 8));
    }
    Value::Object(out)
}

fn parse_bits(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// The pod's status as the runtime sees it.
/// Whether the status stored in the API says something else than what
/// this agent last reported, in the fields the agent owns.
fn stored_status_differs(reported: &PodStatus, stored: Option<&PodStatus>) -> bool {
    let Some(stored) = stored else {
        return true;
    };
    let conditions = |status: &PodStatus| -> BTreeMap<String, String> {
        status
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect()
    };
    // Only fields that survive the API round trip unchanged: comparing
    // anything the server normalizes would rewrite the status forever.
    reported.phase != stored.phase
        || reported.pod_ip != stored.pod_ip
        || conditions(reported) != conditions(stored)
}

fn pod_status(run: &PodRun, config: &PodRuntimeConfig) -> PodStatus {
    let record = run.record.as_ref();
    let ip = record.and_then(|r| r.ip);
    let statuses: Vec<ContainerStatus> = run
        .containers
        .iter()
        .map(|c| {
            let state = if c.pid.is_some() {
                json!({"running": {"startedAt": c.started_at}})
            } else if c.finished {
                let code = c.last_exit.unwrap_or(0);
                json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}})
            } else if record.is_none() {
                json!({"waiting": {"reason": "ContainerCreating", "message": run.sandbox_error.as_ref().map(|(e, _)| e.clone())}})
            } else if c.restart_count > 0 || c.last_exit.is_some() {
                json!({"waiting": {"reason": "CrashLoopBackOff"}})
            } else {
                json!({"waiting": {"reason": "ContainerCreating"}})
            };
            ContainerStatus {
                name: c.spec.name.clone(),
                ready: c.pid.is_some() && c.ready,
                restart_count: c.restart_count,
                image: c.spec.image.clone(),
                // Kubernetes: running and past its startup probe.
                started: Some(c.pid.is_some() && c.startup_passed),
                state: Some(state),
            }
        })
        .collect();
    let all_finished = run.containers.iter().all(|c| c.finished);
    let phase = if record.is_none() {
        "Pending"
    } else if all_finished && run.containers.iter().all(|c| c.last_exit == Some(0)) {
        "Succeeded"
    } else if all_finished {
        "Failed"
    } else if run
        .containers
        .iter()
        .any(|c| c.pid.is_some() || c.started_at.is_some())
    {
        "Running"
    } else {
        "Pending"
    };
    let ready = !statuses.is_empty() && statuses.iter().all(|s| s.ready);
    let condition = |kind: &str, ok: bool| Condition {
        type_: kind.into(),
        status: if ok { "True" } else { "False" }.into(),
        ..Condition::default()
    };
    PodStatus {
        phase: Some(phase.into()),
        conditions: vec![
            condition("PodScheduled", true),
            condition("Initialized", record.is_some()),
            condition("ContainersReady", ready),
            condition("Ready", ready),
        ],
        host_ip: Some(config.node_addr.to_string()),
        pod_ip: ip.map(|i| i.to_string()),
        pod_ips: ip
            .map(|i| vec![PodIp { ip: i.to_string() }])
            .unwrap_or_default(),
        start_time: record.map(|r| r.started.clone()),
        container_statuses: statuses,
        message: run.sandbox_error.as_ref().map(|(e, _)| e.clone()),
        reason: None,
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_rewritten_by_someone_else_is_reported_again() {
        let ready = |status: &str| PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some("10.244.1.5".into()),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: status.into(),
                ..Condition::default()
            }],
            ..PodStatus::default()
        };
        let reported = ready("True");
        let mut same = ready("True");
        same.conditions[0].last_transition_time = Some("2026-11-22T10:00:00Z".into());
        same.conditions[0].reason = Some("whatever".into());
        assert!(!stored_status_differs(&reported, Some(&same)));
        assert!(stored_status_differs(&reported, Some(&ready("False"))));
        assert!(stored_status_differs(&reported, None));
    }

    #[test]
    fn host_interfaces_are_the_ones_outside_the_sandbox() {
        let result = json!({"interfaces": [
            {"name": "cni0", "mac": "aa:aa:aa:aa:aa:aa"},
            {"name": "veth1234", "mac": "bb:bb:bb:bb:bb:bb", "sandbox": ""},
            {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/run/netns/p"}
        ]});
        assert_eq!(host_interfaces(&result), ["cni0", "veth1234"]);
        assert!(host_interfaces(&json!({"cniVersion": "1.0.0"})).is_empty());
    }

    #[test]
    fn variables_in_command_and_args_are_expanded_as_kubernetes_does() {
        let env = vec![("POD_NAME".to_owned(), "web-1".to_owned())];
        assert_eq!(expand("--name=$(POD_NAME)", &env), "--name=web-1");
        assert_eq!(expand("$$(POD_NAME)", &env), "$(POD_NAME)");
        assert_eq!(
            expand("$(MISSING) $(POD_NAME", &env),
            "$(MISSING) $(POD_NAME"
        );
    }

    #[test]
    fn bandwidth_annotations_become_the_cni_capability() {
        assert_eq!(parse_bits("10M"), Some(10_000_000));
        assert_eq!(parse_bits("1Gi"), Some(1 << 30));
        assert_eq!(parse_bits("fast"), None);
    }
}
