//! When a container's probes run and what their outcomes do: the startup
//! probe gates the others, failures kill the container, readiness follows
//! the thresholds. Each run is on its own thread, bounded by its timeout;
//! running one probe is [`super::probe`]'s job.

use std::{net::Ipv4Addr, path::Path, thread::JoinHandle, time::Instant};

use rudder_api::core::{Container, Probe};

use nix::sys::signal::Signal;

use super::{deadline, events::ContainerNote, probe, process, restart::ContainerRun};

/// One probe of one container: when it runs next, its run in progress,
/// and its streak of outcomes.
#[derive(Debug, Default)]
pub(super) struct ProbeState {
    pub(super) next: Option<Instant>,
    /// The run in progress: each probe runs on its own thread, bounded by
    /// its timeout, so a pod whose server never answers holds up nothing
    /// but its own probe; the round picks the outcome up when it is in.
    running: Option<JoinHandle<Result<(), String>>>,
    pub(super) successes: i64,
    pub(super) failures: i64,
}

/// Where a probe of a container runs: the pod's address and namespace.
pub(super) struct ProbeTarget<'a> {
    pub(super) ip: Ipv4Addr,
    pub(super) netns: &'a Path,
}

impl ProbeState {
    /// The outcome of a run that finished since the last look, and starts
    /// the next run when it is due (never two at once).
    fn poll(
        &mut self,
        probe: &Probe,
        container: &Container,
        target: &ProbeTarget<'_>,
        started: Instant,
        now: Instant,
    ) -> Option<Result<(), String>> {
        if let Some(running) = self.running.take_if(|r| r.is_finished()) {
            return Some(
                running
                    .join()
                    .unwrap_or_else(|_| Err("the probe panicked".to_owned())),
            );
        }
        if self.running.is_none() && due(self, probe, started, now) {
            let (probe, container) = (probe.clone(), container.clone());
            let (ip, netns) = (target.ip, target.netns.to_path_buf());
            let spawned = std::thread::Builder::new()
                .name(format!("probe-{}", container.name))
                .spawn(move || probe::run(&probe, &container, ip, &netns));
            match spawned {
                Ok(handle) => self.running = Some(handle),
                Err(err) => return Some(Err(format!("cannot start the probe: {err}"))),
            }
        }
        None
    }
}

/// Runs the probes that are due, as the kubelet does: while a startup
/// probe has not passed, only it runs (the container is neither live-checked
/// nor ready); `failureThreshold` failures of it or of the liveness probe
/// kill the container, which the restart policy then handles. Probes run
/// off the round ([`ProbeState::poll`]): an outcome counts in the round
/// after it came in. Returns whether the startup probe just passed (worth
/// recording).
pub(super) fn probe_container(
    c: &mut ContainerRun,
    pid: u32,
    target: &ProbeTarget<'_>,
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
                let Some(outcome) = c.startup.poll(&probe, &c.spec, target, started, now) else {
                    return false;
                };
                if let Err(why) = outcome {
                    notes.push(unhealthy("Startup", why));
                    c.startup.failures += 1;
                    if c.startup.failures >= probe.failure_threshold.unwrap_or(3).max(1) {
                        tracing::info!(container = %c.spec.name, failures = c.startup.failures, "startup probe failed; killing the container");
                        notes.push(killing("startup", &c.spec.name));
                        process::signal(pid, c.pid_start, Signal::SIGKILL);
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
        && let Some(outcome) = c.liveness.poll(&probe, &c.spec, target, started, now)
    {
        match outcome {
            Ok(()) => c.liveness.failures = 0,
            Err(why) => {
                notes.push(unhealthy("Liveness", why));
                c.liveness.failures += 1;
                if c.liveness.failures >= probe.failure_threshold.unwrap_or(3).max(1) {
                    tracing::info!(container = %c.spec.name, "liveness probe failed; restarting");
                    notes.push(killing("liveness", &c.spec.name));
                    process::signal(pid, c.pid_start, Signal::SIGKILL);
                    c.liveness.failures = 0;
                }
            }
        }
    }
    match c.spec.readiness_probe.clone() {
        None => c.ready = true,
        Some(probe) => {
            if let Some(outcome) = c.readiness.poll(&probe, &c.spec, target, started, now) {
                if let Err(why) = outcome {
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
fn due(state: &mut ProbeState, probe: &Probe, started: Instant, now: Instant) -> bool {
    let initial = deadline::seconds(probe.initial_delay_seconds, 0, 0);
    let period = deadline::seconds(probe.period_seconds, 10, 1);
    let next = state
        .next
        .unwrap_or_else(|| deadline::after(started, initial));
    if now < next {
        return false;
    }
    state.next = Some(deadline::after(now, period));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_timings_near_i64_max_schedule_without_panicking() {
        let probe = Probe {
            initial_delay_seconds: Some(i64::MAX),
            period_seconds: Some(i64::MAX),
            timeout_seconds: Some(i64::MAX),
            ..Probe::default()
        };
        let now = Instant::now();
        let mut state = ProbeState::default();
        assert!(
            !due(&mut state, &probe, now, now),
            "a 68-year delay is not due"
        );
        let mut ran = ProbeState {
            next: Some(now),
            ..ProbeState::default()
        };
        assert!(due(&mut ran, &probe, now, now));
        assert!(ran.next.is_some_and(|next| next > now));
    }
}
