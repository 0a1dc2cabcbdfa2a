//! Ending a pod: SIGTERM to its containers, SIGKILL when the grace
//! period is over, then its sandbox and record are removed.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{
    PodRun, PodRuntime,
    events::ContainerNote,
    process::{self, ProcessState},
};

const DEFAULT_GRACE: Duration = Duration::from_secs(30);

impl PodRuntime {
    /// Starts a pod's termination: SIGTERM now, SIGKILL at the deadline.
    pub(super) fn terminate(&mut self, uid: &str) {
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
    pub(super) fn finish_termination(&mut self, run: &mut PodRun, now: Instant) -> bool {
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
}
