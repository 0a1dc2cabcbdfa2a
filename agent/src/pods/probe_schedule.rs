//! When a container's probes run and what their outcomes do: the startup
//! probe gates the others, failures kill the container, readiness follows
//! the thresholds. Running one probe is [`super::probe`]'s job.

use std::{net::Ipv4Addr, path::Path, time::Instant};

use nix::sys::signal::Signal;

use super::{deadline, events::ContainerNote, probe, process, restart::ContainerRun};

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ProbeState {
    pub(super) next: Option<Instant>,
    pub(super) successes: i64,
    pub(super) failures: i64,
}

/// Runs the probes that are due, as the kubelet does: while a startup
/// probe has not passed, only it runs (the container is neither live-checked
/// nor ready); `failureThreshold` failures of it or of the liveness probe
/// kill the container, which the restart policy then handles. Returns
/// whether the startup probe just passed (worth recording).
pub(super) fn probe_container(
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
    use rudder_api::core::Probe;

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
