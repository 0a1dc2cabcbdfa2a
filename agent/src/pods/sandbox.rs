//! Pod sandboxes: the network namespace of each pod, wired by the CNI
//! plugins of the node's net.d, made a few at a time and oldest first, and
//! torn down (CNI DEL, namespace removed) with the pod's record.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;
use rudder_api::time::now_rfc3339;
use rudder_netlink::{NamespaceError, NetworkNamespace};
use serde_json::{Value, json};

use super::{
    NetworkConfig, PodRun, PodRuntime, bandwidth, cgroup, cni,
    events::ContainerNote,
    process,
    record::{PodRecord, is_the_recorded_process},
};

/// Sandboxes made in one round at most, so the pods that are done get
/// their containers started and their status reported before the rest.
const SANDBOXES_PER_TICK: usize = 8;
/// Sandboxes made at once: making one mostly waits for processes (the CNI
/// plugins), so a few side by side finish a burst of pods sooner.
const SANDBOX_WORKERS: usize = 4;

/// Why a pod's sandbox could not be made (its text is the pod's status
/// message and the `FailedCreatePodSandBox` event).
#[derive(Debug, thiserror::Error)]
enum SandboxError {
    /// No usable network configuration, or a plugin failed.
    #[error(transparent)]
    Cni(#[from] cni::CniError),
    /// The network namespace could not be created.
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
}

impl PodRuntime {
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
    pub(super) fn create_sandboxes(&mut self, now: Instant) {
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

    /// Creates the sandbox and wires it with CNI; on failure undoes it and
    /// retries later.
    fn ensure_sandbox(&self, run: &mut PodRun, now: Instant) {
        if let Some((_, retry)) = &run.sandbox_error
            && now < *retry
        {
            return;
        }
        let meta = &run.pod.metadata;
        let sandbox = run.names.sandbox(&self.config.sandbox_prefix);
        let result = (|| -> Result<PodRecord, SandboxError> {
            let network = NetworkConfig::load(&self.config.cni_conf_dir)?;
            match NetworkNamespace::create_named(&sandbox) {
                // A sandbox made before (a retry, an agent restart) is reused.
                Ok(_) | Err(NamespaceError::Exists { .. }) => {}
                Err(err) => return Err(err.into()),
            }
            let attachment = cni::Attachment {
                container_id: meta.uid.clone(),
                netns: PathBuf::from("/run/netns").join(&sandbox),
                ifname: "eth0".into(),
            };
            let runtime_config = json!({ "bandwidth": bandwidth::capability(&run.pod) });
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
                    let _ = NetworkNamespace::delete_named(&sandbox);
                    Err(err.into())
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
                std::fs::create_dir_all(self.log_dir(run)).ok();
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
                run.sandbox_error = Some((err.to_string(), now + Duration::from_secs(2)));
            }
        }
    }

    /// Kills what a record says runs, CNI DEL, removes the sandbox and the
    /// record.
    pub(super) fn teardown_record(&self, record: &PodRecord) {
        let names = match record.names() {
            Ok(names) => names,
            Err(err) => {
                // Records are checked when read and made from checked
                // names; one that fails here is left alone, not followed.
                tracing::warn!(pod = %record.name, %err, "not tearing down a pod record with unsafe names");
                return;
            }
        };
        for c in &record.containers {
            if let Some(pid) = c.pid
                && is_the_recorded_process(c, pid, record)
            {
                process::signal(pid, c.pid_start, Signal::SIGKILL);
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
        let _ = NetworkNamespace::delete_named(&record.sandbox);
        if let Some(root) = &self.config.cgroup_root {
            cgroup::remove(root, &record.sandbox);
        }
        let _ = std::fs::remove_file(self.record_path(&names));
        tracing::info!(pod = %format!("{}/{}", record.namespace, record.name), "pod removed");
    }
}

/// Names of the interfaces in a CNI result that are not in the sandbox:
/// the pod's host-side veth, and the bridge (the hook tells them apart).
fn host_interfaces(cni_result: &Value) -> Vec<String> {
    cni::AddResult::read(cni_result).host_interfaces()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
