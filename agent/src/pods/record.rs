//! Pod records: what the runtime started, written under the state
//! directory so a restarted agent adopts running pods instead of
//! restarting them.

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use rudder_api::time::now_rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    PodRun, PodRuntime,
    process::{self, ProcessState},
};

/// What a restarted agent needs to adopt a pod.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct PodRecord {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) uid: String,
    pub(super) sandbox: String,
    pub(super) ip: Option<Ipv4Addr>,
    pub(super) cni_result: Value,
    pub(super) started: String,
    pub(super) containers: Vec<ContainerRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct ContainerRecord {
    pub(super) name: String,
    pub(super) pid: Option<u32>,
    pub(super) restart_count: i64,
    pub(super) started_at: Option<String>,
    /// The startup probe passed (or there is none); a record written before
    /// startup probes existed reads `false`, so the probe runs again.
    #[serde(default)]
    pub(super) startup_passed: bool,
    /// How its previous run ended (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) last_termination: Option<Termination>,
}

/// The records a previous agent left in `state_dir`, by pod uid; an
/// unreadable record is logged and skipped.
pub(super) fn load_records(state_dir: &Path) -> BTreeMap<String, PodRecord> {
    let mut adopted = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(state_dir.join("pods")) {
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
    adopted
}

impl PodRuntime {
    pub(super) fn record_path(&self, uid: &str) -> PathBuf {
        self.config
            .state_dir
            .join("pods")
            .join(format!("{uid}.json"))
    }

    /// Persists the record with the containers' current pids.
    pub(super) fn save(&self, run: &mut PodRun) {
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
                last_termination: c.last_termination.clone(),
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

/// Takes over a recorded pod: its sandbox, address and running processes.
pub(super) fn adopt(run: &mut PodRun, record: PodRecord) {
    for c in &mut run.containers {
        if let Some(saved) = record.containers.iter().find(|s| s.name == c.spec.name) {
            c.restart_count = saved.restart_count;
            c.started_at = saved.started_at.clone();
            c.last_termination = saved.last_termination.clone();
            c.pid = saved
                .pid
                .filter(|pid| process::check(*pid) == ProcessState::Running);
            c.startup_passed = saved.startup_passed || c.spec.startup_probe.is_none();
        }
    }
    tracing::info!(pod = %format!("{}/{}", record.namespace, record.name), "adopted after restart");
    run.record = Some(record);
}

/// How one run of a container ended, as Kubernetes reports it in
/// `lastState.terminated`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Termination {
    pub(super) exit_code: i32,
    /// `Completed` (exit 0) or `Error`.
    pub(super) reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) started_at: Option<String>,
    pub(super) finished_at: String,
}

impl Termination {
    pub(super) fn of(code: Option<i32>, started_at: Option<String>) -> Self {
        // A process adopted after an agent restart is not our child: its
        // status is lost, and Kubernetes says 137 (killed) for the same.
        let exit_code = code.unwrap_or(137);
        Termination {
            exit_code,
            reason: if exit_code == 0 { "Completed" } else { "Error" }.to_owned(),
            started_at,
            finished_at: now_rfc3339(),
        }
    }
}
