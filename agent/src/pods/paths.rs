//! Every file and namespace name the runtime derives from a pod: its
//! record, its log directory and files, its sandbox (network namespace and
//! cgroup). They come only from [`PodNames`], whose parts were checked to
//! be what the API server allows (a DNS label namespace, a DNS subdomain
//! name, a UUID uid), so no value, from the API or read back from a state
//! file, can name a path outside the state directory.

use std::path::{Path, PathBuf};

use rudder_api::validation::{is_dns_label, is_dns_subdomain, is_uid};

/// A pod's namespace, name and uid, checked for use in file names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PodNames {
    namespace: String,
    name: String,
    uid: String,
}

/// A part of a pod that may not become a file or namespace name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum UnsafeName {
    /// Not a DNS-1123 label.
    #[error("namespace {0:?} is not a DNS-1123 label")]
    Namespace(String),
    /// Not a DNS-1123 subdomain.
    #[error("pod name {0:?} is not a DNS-1123 subdomain")]
    Name(String),
    /// Not a UUID.
    #[error("pod uid {0:?} is not a UUID")]
    Uid(String),
    /// Not a DNS-1123 label.
    #[error("container name {0:?} is not a DNS-1123 label")]
    Container(String),
    /// Not what this runtime names the pod's sandbox.
    #[error("sandbox {0:?} is not a sandbox name of the pod's uid")]
    Sandbox(String),
}

/// Sandbox names (`<prefix>-<12 characters of the uid>`) are network
/// namespace and cgroup directory names: kept short and plain.
const MAX_SANDBOX_NAME: usize = 64;

impl PodNames {
    /// The pod's parts, if every one is safe in a file name.
    ///
    /// # Errors
    /// The first part that is not.
    pub(super) fn check(namespace: &str, name: &str, uid: &str) -> Result<Self, UnsafeName> {
        if !is_dns_label(namespace) {
            return Err(UnsafeName::Namespace(namespace.to_owned()));
        }
        if !is_dns_subdomain(name) {
            return Err(UnsafeName::Name(name.to_owned()));
        }
        if !is_uid(uid) {
            return Err(UnsafeName::Uid(uid.to_owned()));
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
        })
    }

    /// `<state>/pods/<uid>.json`.
    pub(super) fn record_path(&self, state_dir: &Path) -> PathBuf {
        record_dir(state_dir).join(format!("{}.json", self.uid))
    }

    /// `<state>/logs/<namespace>_<name>_<uid>` (the kubelet's layout under
    /// /var/log/pods).
    pub(super) fn log_dir(&self, state_dir: &Path) -> PathBuf {
        state_dir
            .join("logs")
            .join(format!("{}_{}_{}", self.namespace, self.name, self.uid))
    }

    /// The sandbox's name: `<prefix>-<the uid's first 12 hex digits>`.
    pub(super) fn sandbox(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.sandbox_suffix())
    }

    fn sandbox_suffix(&self) -> String {
        self.uid
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect()
    }

    /// Checks a sandbox name read back from a record: one this runtime
    /// could have made for this uid, with any plain prefix (an agent may
    /// have been started with another `--sandbox-prefix` before).
    ///
    /// # Errors
    /// When it is not.
    pub(super) fn check_sandbox(&self, sandbox: &str) -> Result<(), UnsafeName> {
        let suffix = format!("-{}", self.sandbox_suffix());
        let plain = sandbox.len() <= MAX_SANDBOX_NAME
            && sandbox
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            && sandbox.len() > suffix.len()
            && sandbox.ends_with(&suffix);
        if plain {
            Ok(())
        } else {
            Err(UnsafeName::Sandbox(sandbox.to_owned()))
        }
    }
}

/// `<state>/pods`: where the records live.
pub(super) fn record_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("pods")
}

/// A container's log file in its pod's log directory (`previous`: the run
/// before the last restart).
///
/// # Errors
/// When the container's name is not a DNS-1123 label.
pub(super) fn container_log(
    log_dir: &Path,
    container: &str,
    previous: bool,
) -> Result<PathBuf, UnsafeName> {
    if !is_dns_label(container) {
        return Err(UnsafeName::Container(container.to_owned()));
    }
    let suffix = if previous { ".previous.log" } else { ".log" };
    Ok(log_dir.join(format!("{container}{suffix}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f8e9a4c-1b2d-4e5f-8a9b-0c1d2e3f4a5b";

    #[test]
    fn hostile_pod_parts_never_become_paths() {
        for (namespace, name, uid) in [
            ("..", "web", UID),
            ("default", "../../etc", UID),
            ("default", "a/b", UID),
            ("default", "web", "../../../../etc/passwd"),
            ("default", "web", "0f8e9a4c-1b2d-4e5f-8a9b-0c1d2e3f4a5b/.."),
            ("", "web", UID),
        ] {
            assert!(
                PodNames::check(namespace, name, uid).is_err(),
                "{namespace:?} {name:?} {uid:?} accepted"
            );
        }
        let names = PodNames::check("default", "web.v1", UID).expect("test setup");
        let state = Path::new("/var/lib/rudder/agent");
        assert_eq!(
            names.record_path(state),
            state.join("pods").join(format!("{UID}.json"))
        );
        assert_eq!(
            names.log_dir(state),
            state.join("logs").join(format!("default_web.v1_{UID}"))
        );
        assert_eq!(names.sandbox("rudder"), "rudder-0f8e9a4c1b2d");
    }

    #[test]
    fn only_sandbox_names_of_the_uid_are_read_back() {
        let names = PodNames::check("default", "web", UID).expect("test setup");
        assert_eq!(names.check_sandbox("rudder-0f8e9a4c1b2d"), Ok(()));
        assert_eq!(names.check_sandbox("other_prefix-0f8e9a4c1b2d"), Ok(()));
        for hostile in [
            "../../sys/fs/cgroup-0f8e9a4c1b2d",
            "rudder-ffffffffffff",
            "-0f8e9a4c1b2d",
            "",
        ] {
            assert!(
                names.check_sandbox(hostile).is_err(),
                "{hostile:?} accepted"
            );
        }
    }

    #[test]
    fn container_logs_stay_in_the_pod_log_directory() {
        let dir = Path::new("/state/logs/default_web_x");
        assert_eq!(
            container_log(dir, "app", true).expect("test setup"),
            dir.join("app.previous.log")
        );
        for hostile in ["../../../etc/shadow", "a/b", "..", ""] {
            assert!(container_log(dir, hostile, false).is_err());
        }
    }
}
