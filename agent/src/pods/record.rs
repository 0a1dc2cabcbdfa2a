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
    paths::{self, PodNames},
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
    /// The process's start time, in clock ticks since boot (absent in
    /// older records: then only its network namespace identifies it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) pid_start: Option<u64>,
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

/// Records larger than this are not a record this agent wrote.
const MAX_RECORD_BYTES: u64 = 1 << 20;

/// The records a previous agent left in `state_dir`, by pod uid; an
/// unreadable record, or one whose names could lead out of the state
/// directory, is logged and skipped.
pub(super) fn load_records(state_dir: &Path) -> BTreeMap<String, PodRecord> {
    let mut adopted = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(paths::record_dir(state_dir)) else {
        return adopted;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            // A `.tmp` left by a crash mid-write: the record before it
            // was renamed over is the one that counts.
            continue;
        }
        match read_record(&path) {
            Ok(record) => {
                adopted.insert(record.uid.clone(), record);
            }
            Err(err) => tracing::warn!(file = %path.display(), %err, "skipping pod record"),
        }
    }
    adopted
}

/// Why a record file is not adopted.
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error("not a regular file of at most {MAX_RECORD_BYTES} bytes")]
    NotARecordFile,
    #[error(transparent)]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Unsafe(#[from] paths::UnsafeName),
    #[error("the file of pod uid {0:?} is not named <uid>.json")]
    Misnamed(String),
}

/// One record, re-checked: every name in it is one the runtime could have
/// written (a state file is input too).
fn read_record(path: &Path) -> Result<PodRecord, RecordError> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_file() || meta.len() > MAX_RECORD_BYTES {
        return Err(RecordError::NotARecordFile);
    }
    let record: PodRecord = serde_json::from_slice(&std::fs::read(path)?)?;
    record.names()?;
    if path.file_stem().and_then(|s| s.to_str()) != Some(record.uid.as_str()) {
        return Err(RecordError::Misnamed(record.uid));
    }
    Ok(record)
}

impl PodRecord {
    /// The pod's names, checked again (the record may have been read from
    /// disk), with its sandbox's.
    ///
    /// # Errors
    /// When one of them is not safe in a path.
    pub(super) fn names(&self) -> Result<PodNames, paths::UnsafeName> {
        let names = PodNames::check(&self.namespace, &self.name, &self.uid)?;
        names.check_sandbox(&self.sandbox)?;
        for c in &self.containers {
            paths::container_log(Path::new(""), &c.name, false)?;
        }
        Ok(names)
    }
}

impl PodRuntime {
    pub(super) fn record_path(&self, names: &PodNames) -> PathBuf {
        names.record_path(&self.config.state_dir)
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
                pid_start: c.pid_start,
                restart_count: c.restart_count,
                started_at: c.started_at.clone(),
                startup_passed: c.startup_passed,
                last_termination: c.last_termination.clone(),
            })
            .collect();
        let path = self.record_path(&run.names);
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
///
/// A container whose process is still the recorded one keeps the
/// readiness the control plane last heard for it, until its readiness
/// probe says otherwise: restarting the agent changes nothing about the
/// container, and starting it out not ready would take the pod out of its
/// Services' endpoints for a probe period, ending the connections every
/// node had to it.
pub(super) fn adopt(run: &mut PodRun, record: PodRecord) {
    let reported = run.pod.status.as_ref();
    for c in &mut run.containers {
        let was_ready = reported.is_some_and(|status| {
            status
                .container_statuses
                .iter()
                .any(|s| s.name == c.spec.name && s.ready)
        });
        if let Some(saved) = record.containers.iter().find(|s| s.name == c.spec.name) {
            c.restart_count = saved.restart_count;
            c.started_at = saved.started_at.clone();
            c.last_termination = saved.last_termination.clone();
            c.pid = saved
                .pid
                .filter(|pid| is_the_recorded_process(saved, *pid, &record));
            c.pid_start = c.pid.and(saved.pid_start);
            c.startup_passed = saved.startup_passed || c.spec.startup_probe.is_none();
            c.ready = was_ready && c.pid.is_some() && c.startup_passed;
        }
    }
    tracing::info!(pod = %format!("{}/{}", record.namespace, record.name), "adopted after restart");
    run.record = Some(record);
}

/// Whether `pid`, recorded for a container of `record`, still names that
/// container's process: it runs, started when the record says (if it says),
/// and lives in the pod's network namespace. A pid from a stale record
/// (after a reboot, or reused since) names an unrelated process, which is
/// never adopted, so never signalled.
pub(super) fn is_the_recorded_process(
    saved: &ContainerRecord,
    pid: u32,
    record: &PodRecord,
) -> bool {
    let netns = Path::new("/run/netns").join(&record.sandbox);
    let same = process::check(pid, saved.pid_start) == ProcessState::Running
        && process::in_netns(pid, &netns);
    if !same {
        tracing::info!(pod = %record.name, container = %saved.name, pid, "the recorded process is gone (its pid is not the container's)");
    }
    same
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

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f8e9a4c-1b2d-4e5f-8a9b-0c1d2e3f4a5b";

    fn record(namespace: &str, name: &str, uid: &str, sandbox: &str) -> PodRecord {
        PodRecord {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            sandbox: sandbox.into(),
            ip: None,
            cni_result: Value::Null,
            started: now_rfc3339(),
            containers: Vec::new(),
        }
    }

    /// A process that is not ours (its parent exits at once), as a pid in
    /// a stale record names after a reboot.
    fn unrelated_process() -> u32 {
        let out = std::process::Command::new("sh")
            .args(["-c", "sleep 30 >/dev/null 2>&1 & echo $!"])
            .output()
            .expect("sh runs");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a pid")
    }

    #[test]
    fn a_record_naming_an_unrelated_live_process_never_gets_it_killed() {
        let pid = unrelated_process();
        let start = process::start_time(pid).expect("its start time");
        let mut pod = record("default", "web", UID, "rudder-0f8e9a4c1b2d");
        let recorded = |pid_start| ContainerRecord {
            name: "main".into(),
            pid: Some(pid),
            pid_start,
            restart_count: 0,
            started_at: None,
            startup_passed: true,
            last_termination: None,
        };
        pod.containers = vec![recorded(Some(start + 1)), recorded(None)];
        // Another start time, or (an old record without one) not in the
        // pod's network namespace: not the container's process.
        for saved in &pod.containers {
            assert!(!is_the_recorded_process(saved, pid, &pod));
        }
        assert_eq!(
            process::check(pid, Some(start + 1)),
            ProcessState::Gone(None)
        );
        process::signal(pid, Some(start + 1), nix::sys::signal::Signal::SIGKILL);
        assert_eq!(process::check(pid, Some(start)), ProcessState::Running);
        // The right identity is signalled.
        process::signal(pid, Some(start), nix::sys::signal::Signal::SIGKILL);
        let gone = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            process::check(pid, Some(start)) != ProcessState::Running
        });
        assert!(gone, "the process itself is killed");
    }

    #[test]
    fn hostile_records_in_the_state_dir_are_not_adopted() {
        let state = std::env::temp_dir().join(format!("rudder-records-{}", std::process::id()));
        let pods = paths::record_dir(&state);
        std::fs::create_dir_all(&pods).expect("test setup");
        let write = |file: &str, record: &PodRecord| {
            std::fs::write(
                pods.join(file),
                serde_json::to_vec(record).expect("test setup"),
            )
            .expect("test setup");
        };
        write(
            &format!("{UID}.json"),
            &record("default", "web", UID, "rudder-0f8e9a4c1b2d"),
        );
        let other = "11111111-2222-4333-8444-555555555555";
        // A uid that walks out of the state dir, a sandbox that names
        // another directory, a name with a slash, a file named for
        // another uid.
        write(
            "a.json",
            &record("default", "web", "../../../../tmp/x", "rudder-x"),
        );
        let third = "66666666-7777-4888-9999-aaaaaaaaaaaa";
        write(
            &format!("{third}.json"),
            &record(
                "default",
                "web",
                third,
                "../../../sys/fs/cgroup-666666667777",
            ),
        );
        write(
            "b.json",
            &record("default", "a/../../b", other, "rudder-111111112222"),
        );
        write(
            "c.json",
            &record("default", "web", other, "rudder-111111112222"),
        );
        let mut escaping = record("default", "web", other, "rudder-111111112222");
        escaping.containers.push(ContainerRecord {
            name: "../../../etc/cron.d/x".into(),
            pid: None,
            pid_start: None,
            restart_count: 0,
            started_at: None,
            startup_passed: false,
            last_termination: None,
        });
        write(&format!("{other}.json"), &escaping);
        let adopted = load_records(&state);
        std::fs::remove_dir_all(&state).expect("test setup");
        assert_eq!(adopted.keys().collect::<Vec<_>>(), [UID]);
    }
}
