//! The containers of a running pod: started in its sandbox with their
//! environment, checked each round, and restarted per the pod's
//! restartPolicy with exponential backoff (the restart state machine).

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use rudder_api::{core::Container, downward::Addresses, time::now_rfc3339};

use super::{
    PodRun, PodRuntime, cgroup, deadline,
    env::{base_env, container_env, expand},
    events::ContainerNote,
    paths,
    probe_schedule::{ProbeState, ProbeTarget, probe_container},
    process::{self, ProcessState},
    record::{PodRecord, Termination},
};

/// The waiting reason of a container the embedded runtime cannot start
/// (Kubernetes' reason for an image it may not pull).
pub(super) const NEVER_PULL_REASON: &str = "ErrImageNeverPull";

/// Why a container with an image and no command does not start.
pub(super) fn never_pull_message(container: &Container) -> String {
    format!(
        "rudder's embedded runtime pulls no images and runs commands on the node: container {:?} has image {:?} and no command; give it a command",
        container.name,
        container.image.as_deref().unwrap_or_default()
    )
}

const MAX_BACKOFF: Duration = Duration::from_secs(300);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(super) struct ContainerRun {
    pub(super) spec: Container,
    pub(super) pid: Option<u32>,
    /// The process's start time ([`process::start_time`]): with the pid,
    /// what tells it from an unrelated process that reused the pid.
    pub(super) pid_start: Option<u64>,
    pub(super) restart_count: i64,
    pub(super) started_at: Option<String>,
    pub(super) started_instant: Option<Instant>,
    pub(super) next_start: Instant,
    pub(super) backoff: Duration,
    pub(super) last_exit: Option<i32>,
    /// How the previous run ended (the status's `lastState`).
    pub(super) last_termination: Option<Termination>,
    pub(super) finished: bool,
    /// The image-but-no-command event was recorded.
    pub(super) never_pull_noted: bool,
    pub(super) ready: bool,
    /// The startup probe passed for this run of the container (or there is
    /// none): until then liveness and readiness are not probed.
    pub(super) startup_passed: bool,
    pub(super) startup: ProbeState,
    pub(super) readiness: ProbeState,
    pub(super) liveness: ProbeState,
}

impl PodRuntime {
    pub(super) fn run_containers(&self, run: &mut PodRun, record: &PodRecord, now: Instant) {
        let policy = run
            .pod
            .spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let netns = PathBuf::from("/run/netns").join(&record.sandbox);
        let log_dir = self.log_dir(run);
        let env_base = base_env(&run.pod, record.ip, &self.config.extra_path);
        let pod_ip = record.ip.map(|ip| ip.to_string());
        let host_ip = self.config.node_addr.to_string();
        let cgroup = self.config.cgroup_root.as_deref().and_then(|root| {
            cgroup::ensure(root, &record.sandbox, &run.pod)
                .map_err(|err| tracing::warn!(pod = %run.pod.metadata.name, %err, "pod cgroup; running without limits"))
                .ok()
        });
        let mut changed = false;
        for c in &mut run.containers {
            if let Some(pid) = c.pid {
                match process::check(pid, c.pid_start) {
                    ProcessState::Running => {}
                    ProcessState::Gone(code) => {
                        c.pid = None;
                        c.ready = false;
                        c.last_exit = code;
                        c.last_termination = Some(Termination::of(code, c.started_at.clone()));
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
                            c.next_start = deadline::after(now, c.backoff);
                            c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
                        } else {
                            c.finished = true;
                        }
                        tracing::info!(pod = %run.pod.metadata.name, container = %c.spec.name, ?code, restart, "container exited");
                    }
                }
            }
            if c.pid.is_none() && !c.finished && c.spec.command.is_empty() {
                // An image and no command: the embedded runtime runs
                // commands on the node and pulls nothing. Say so once and
                // wait, as the kubelet does with ErrImageNeverPull.
                if !c.never_pull_noted {
                    c.never_pull_noted = true;
                    changed = true;
                    self.note(
                        &run.pod,
                        Some(&c.spec.name),
                        ContainerNote {
                            warning: true,
                            reason: NEVER_PULL_REASON,
                            message: never_pull_message(&c.spec),
                        },
                    );
                }
                continue;
            }
            if c.pid.is_none() && !c.finished && now >= c.next_start {
                let links = run.pod.spec.enable_service_links.unwrap_or(true);
                let services = self
                    .config
                    .services
                    .vars(&run.pod.metadata.namespace, links);
                let addresses = Addresses {
                    pod_ip: pod_ip.as_deref(),
                    host_ip: Some(&host_ip),
                };
                let env = container_env(&run.pod, &c.spec, &env_base, services, addresses);
                let argv: Vec<String> = c
                    .spec
                    .command
                    .iter()
                    .chain(&c.spec.args)
                    .map(|a| expand(a, &env))
                    .collect();
                let (log, previous) = match (
                    paths::container_log(&log_dir, &c.spec.name, false),
                    paths::container_log(&log_dir, &c.spec.name, true),
                ) {
                    (Ok(log), Ok(previous)) => (log, previous),
                    (Err(err), _) | (_, Err(err)) => {
                        // The API refuses such names; never a path from one.
                        if !c.finished {
                            tracing::warn!(pod = %run.pod.metadata.name, %err, "not starting the container");
                            c.finished = true;
                            changed = true;
                        }
                        continue;
                    }
                };
                if c.started_at.is_some() {
                    // A restart: the run before it stays readable as
                    // `logs --previous` (one, as the kubelet keeps).
                    if let Err(err) = std::fs::rename(&log, &previous)
                        && err.kind() != std::io::ErrorKind::NotFound
                    {
                        tracing::warn!(pod = %run.pod.metadata.name, container = %c.spec.name, %err, "keeping the previous run's log");
                    }
                }
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
                        c.pid_start = process::start_time(pid);
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
                        c.next_start = deadline::after(now, c.backoff);
                        c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            if let (Some(pid), Some(ip)) = (c.pid, record.ip) {
                let mut notes = Vec::new();
                let target = ProbeTarget { ip, netns: &netns };
                changed |= probe_container(c, pid, &target, now, &mut notes);
                for note in notes {
                    self.note(&run.pod, Some(&c.spec.name), note);
                }
            }
        }
        if changed {
            self.save(run);
        }
    }
}

pub(super) fn new_container(spec: Container) -> ContainerRun {
    ContainerRun {
        spec,
        pid: None,
        pid_start: None,
        restart_count: 0,
        started_at: None,
        started_instant: None,
        next_start: Instant::now(),
        backoff: FIRST_BACKOFF,
        last_exit: None,
        last_termination: None,
        finished: false,
        never_pull_noted: false,
        ready: false,
        startup_passed: false,
        startup: ProbeState::default(),
        readiness: ProbeState::default(),
        liveness: ProbeState::default(),
    }
}
