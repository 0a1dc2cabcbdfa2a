//! Pod status as the runtime sees it (phase, conditions, container
//! states), and whether the stored status needs writing again.

use std::collections::BTreeMap;

use rudder_api::{
    core::{ContainerStatus, PodIp, PodStatus},
    meta::Condition,
};
use serde_json::json;

use super::{
    PodRun, PodRuntimeConfig,
    restart::{NEVER_PULL_REASON, never_pull_message},
};

/// A pod status to write to the API.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusReport {
    #[expect(missing_docs, reason = "the pod's own namespace")]
    pub namespace: String,
    #[expect(missing_docs, reason = "the pod's own name")]
    pub name: String,
    /// The pod's uid: a report for an older incarnation of the pod (same
    /// name, another uid) must not be written.
    pub uid: String,
    /// What the runtime sees of the pod.
    pub status: PodStatus,
}

/// Whether the status stored in the API says something else than what
/// this agent last reported, in the fields the agent owns.
pub(super) fn stored_status_differs(reported: &PodStatus, stored: Option<&PodStatus>) -> bool {
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

/// The pod's status as the runtime sees it.
pub(super) fn pod_status(run: &PodRun, config: &PodRuntimeConfig) -> PodStatus {
    let record = run.record.as_ref();
    let ip = record.and_then(|r| r.ip);
    let statuses: Vec<ContainerStatus> = run
        .containers
        .iter()
        .map(|c| {
            let state = if c.pid.is_some() {
                json!({"running": {"startedAt": c.started_at}})
            } else if let (true, Some(ended)) = (c.finished, &c.last_termination) {
                json!({ "terminated": ended })
            } else if c.finished {
                let code = c.last_exit.unwrap_or(0);
                json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}})
            } else if record.is_none() {
                json!({"waiting": {"reason": "ContainerCreating", "message": run.sandbox_error.as_ref().map(|(e, _)| e.clone())}})
            } else if c.spec.command.is_empty() {
                json!({"waiting": {"reason": NEVER_PULL_REASON, "message": never_pull_message(&c.spec)}})
            } else if c.restart_count > 0 || c.last_exit.is_some() {
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!(
                    "back-off {}s restarting failed container={} pod={}",
                    c.backoff.as_secs(), c.spec.name, run.pod.metadata.name
                )}})
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
                last_state: c
                    .last_termination
                    .as_ref()
                    .filter(|_| !c.finished)
                    .map(|t| json!({ "terminated": t })),
                // The embedded runtime has no images and no container IDs.
                image_id: None,
                container_id: None,
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
        host_ips: vec![json!({"ip": config.node_addr.to_string()})],
        qos_class: None,
        nominated_node_name: None,
        init_container_statuses: Vec::new(),
        ephemeral_container_statuses: Vec::new(),
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
}
