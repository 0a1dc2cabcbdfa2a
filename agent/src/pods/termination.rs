//! Ending a pod: SIGTERM to its containers, SIGKILL when the grace
//! period is over, then its sandbox and record are removed and the pod is
//! handed back as [`RemovedPod`], so the API object, kept while the pod
//! was terminating, can go.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{
    PodRun, PodRuntime, deadline,
    events::ContainerNote,
    process::{self, ProcessState},
};

const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// A pod whose processes and sandbox are gone: its API object may be
/// removed now (grace 0, this incarnation only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovedPod {
    #[expect(missing_docs, reason = "the pod's own namespace")]
    pub namespace: String,
    #[expect(missing_docs, reason = "the pod's own name")]
    pub name: String,
    /// The incarnation that ended.
    pub uid: String,
}

/// The grace period `pod` gets: what its deletion asked for, else its
/// spec's terminationGracePeriodSeconds.
fn grace_of(pod: &rudder_api::core::Pod) -> Duration {
    pod.metadata
        .deletion_grace_period_seconds
        .or(pod.spec.termination_grace_period_seconds)
        .map_or(DEFAULT_GRACE, |g| deadline::seconds(Some(g), 0, 0))
}

impl PodRuntime {
    /// Starts a pod's termination: SIGTERM now, SIGKILL at the deadline.
    pub(super) fn terminate(&mut self, uid: &str) {
        let Some(run) = self.pods.get_mut(uid) else {
            return;
        };
        let grace = grace_of(&run.pod);
        if let Some(kill_at) = run.terminating.as_mut() {
            // A second delete may shorten the grace period.
            *kill_at = (*kill_at).min(deadline::after(Instant::now(), grace));
            return;
        }
        let mut stopping = Vec::new();
        for c in &run.containers {
            if let Some(pid) = c.pid {
                process::signal(pid, c.pid_start, Signal::SIGTERM);
                stopping.push(c.spec.name.clone());
            }
        }
        run.terminating = Some(deadline::after(Instant::now(), grace));
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
                let state = process::check(pid, c.pid_start);
                if state == ProcessState::Running {
                    if now >= deadline {
                        process::signal(pid, c.pid_start, Signal::SIGKILL);
                    }
                    alive = true;
                } else {
                    c.pid = None;
                    if let ProcessState::Gone(code) = state {
                        c.last_exit = code;
                    }
                    c.finished = true;
                }
            }
        }
        if alive {
            return false;
        }
        if let Some(record) = run.record.take() {
            self.teardown_record(&record);
        }
        self.removed.push(RemovedPod {
            namespace: run.pod.metadata.namespace.clone(),
            name: run.pod.metadata.name.clone(),
            uid: run.pod.metadata.uid.clone(),
        });
        true
    }

    /// Pods whose termination finished since the last call.
    pub fn take_removed(&mut self) -> Vec<RemovedPod> {
        std::mem::take(&mut self.removed)
    }
}

#[cfg(test)]
mod tests {
    use rudder_api::core::Pod;

    use super::*;

    #[test]
    fn grace_periods_near_i64_max_are_clamped() {
        let mut pod = Pod::default();
        pod.spec.termination_grace_period_seconds = Some(i64::MAX);
        assert_eq!(grace_of(&pod), deadline::LONGEST);
        pod.metadata.deletion_grace_period_seconds = Some(-1);
        assert_eq!(grace_of(&pod), Duration::ZERO);
        let _ = deadline::after(Instant::now(), grace_of(&pod));
    }
}
