//! The underlay: a bridge in its own namespace, hosts plugged in by veths.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use crate::{NAME_PREFIX, Netns, NetnsError, Result};

/// Directory (on bpffs) under which test runs keep their nodes' pins.
pub const TEST_BPFFS_ROOT: &str = "/sys/fs/bpf/rudder-test";

/// Markers of networks left running on purpose ([`TestNetwork::keep`]):
/// one empty file per network prefix. On tmpfs, like the namespaces, so a
/// reboot forgets both.
const KEPT_DIR: &str = "/run/rudder-test/kept";

/// Prefix length of the underlay ([`crate::UNDERLAY`], 198.18.0.0/24).
pub const UNDERLAY_PREFIX_LEN: u8 = crate::UNDERLAY.prefix_len;

/// Distinguishes several networks made by one process (tests run in threads).
static NETWORK_SEQ: AtomicU32 = AtomicU32::new(0);

/// One private test network: an underlay bridge in its own namespace and the
/// hosts on it. Dropping it removes every namespace it created.
#[derive(Debug)]
pub struct TestNetwork {
    prefix: String,
    underlay: Netns,
    /// Every namespace this network created, underlay first.
    namespaces: Vec<Netns>,
    /// bpffs directories handed out by [`TestNetwork::bpffs_dir`].
    bpffs_dirs: Vec<PathBuf>,
    next_host: u8,
}

/// A test host: a network namespace with `eth0` on the underlay.
#[derive(Clone, Debug)]
pub struct Host {
    /// The host's namespace.
    pub netns: Netns,
    /// The host's short label (as given to [`TestNetwork::add_host`]).
    pub label: String,
    /// The host's address on the underlay (`eth0`).
    pub addr: Ipv4Addr,
}

impl std::ops::Deref for Host {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.netns
    }
}

impl TestNetwork {
    /// Creates an empty underlay. `label` names the network in namespace
    /// names (keep it short: `rdr-<pid>-<seq>-<label>-...`). Sweeps the
    /// leftovers of dead runs first.
    ///
    /// # Errors
    /// [`NetnsError::RangeTaken`] if the machine's own addresses or routes
    /// overlap the test range; `ip` failures.
    pub fn new(label: &str) -> Result<Self> {
        crate::check_root_namespace_clear()?;
        sweep_stale();
        let seq = NETWORK_SEQ.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{NAME_PREFIX}{}-{seq}-{label}", std::process::id());
        let mut network = Self {
            underlay: Netns::new(format!("{prefix}-ul")),
            prefix,
            namespaces: Vec::new(),
            bpffs_dirs: Vec::new(),
            next_host: 1,
        };
        let underlay = network.underlay.clone();
        network.create_namespace(&underlay)?;
        underlay.ip(&["link", "add", "br0", "type", "bridge"])?;
        underlay.ip(&["link", "set", "br0", "up"])?;
        Ok(network)
    }

    /// The underlay's namespace (holds the bridge `br0`).
    pub fn underlay(&self) -> &Netns {
        &self.underlay
    }

    /// The prefix of every namespace name in this network.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Adds a host: a namespace with loopback up and `eth0` on the underlay,
    /// addressed 198.18.0.N/24 in order of creation. No default route.
    pub fn add_host(&mut self, label: &str) -> Result<Host> {
        let index = self.next_host;
        if index > 250 {
            return Err(NetnsError::Full(self.prefix.clone()));
        }
        self.next_host += 1;
        let netns = Netns::new(format!("{}-{label}", self.prefix));
        self.create_namespace(&netns)?;
        let addr = crate::UNDERLAY.host(index);
        let port = format!("h{index}");
        // Both ends are created inside namespaces: the root namespace never
        // holds a link of the test network, not even for a moment.
        self.underlay.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            netns.name(),
        ])?;
        self.underlay
            .ip(&["link", "set", &port, "master", "br0", "up"])?;
        netns.ip(&["link", "set", "lo", "up"])?;
        netns.ip(&[
            "addr",
            "add",
            &format!("{addr}/{UNDERLAY_PREFIX_LEN}"),
            "dev",
            "eth0",
        ])?;
        netns.ip(&["link", "set", "eth0", "up"])?;
        Ok(Host {
            netns,
            label: label.to_owned(),
            addr,
        })
    }

    /// Adds a bare namespace (loopback up, no links), e.g. a pod sandbox the
    /// caller wires itself. It is deleted with the network.
    pub fn add_namespace(&mut self, label: &str) -> Result<Netns> {
        let netns = Netns::new(format!("{}-{label}", self.prefix));
        self.create_namespace(&netns)?;
        netns.ip(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// A bpffs directory for a node of this network (not created: the
    /// dataplane creates it, mounting bpffs if needed). Removed, with every
    /// pin in it, when the network drops.
    pub fn bpffs_dir(&mut self, label: &str) -> PathBuf {
        let dir = Path::new(TEST_BPFFS_ROOT).join(format!("{}-{label}", self.prefix));
        self.bpffs_dirs.push(dir.clone());
        dir
    }

    /// Leaves the network running after its creator exits (a cluster made
    /// for a person to use): neither dropping it nor another run's
    /// [`sweep_stale`] removes it, only [`remove_kept`]. Returns its prefix.
    ///
    /// # Errors
    /// When the marker cannot be written (the network is then removed).
    pub fn keep(self) -> Result<String> {
        let marker = Path::new(KEPT_DIR).join(&self.prefix);
        std::fs::create_dir_all(KEPT_DIR)
            .and_then(|()| std::fs::write(&marker, b""))
            .map_err(|source| NetnsError::Spawn {
                command: format!("writing {}", marker.display()),
                source,
            })?;
        let prefix = self.prefix.clone();
        std::mem::forget(self);
        Ok(prefix)
    }

    fn create_namespace(&mut self, netns: &Netns) -> Result<()> {
        ip(&["netns", "add", netns.name()])?;
        self.namespaces.push(netns.clone());
        Ok(())
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        // Hosts first, so nothing is left running while the underlay goes.
        for netns in self.namespaces.iter().rev() {
            remove_namespace(netns);
        }
        // Namespaces others made under this network's prefix (an agent's
        // pod sandboxes named after the test): everything named by this
        // run goes.
        for name in names_with_prefix(Path::new("/run/netns"), &format!("{}-", self.prefix)) {
            remove_namespace(&Netns::new(name));
        }
        // Unpinning frees the links and maps once no process holds them.
        for dir in &self.bpffs_dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Kills every process in the namespace, then deletes it (its links go
/// with it, and so do their veth peers in other namespaces).
fn remove_namespace(netns: &Netns) {
    for pid in netns.pids() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = ip(&["netns", "delete", netns.name()]);
}

/// The prefixes of the networks left running with [`TestNetwork::keep`].
pub fn kept_networks() -> Vec<String> {
    names_with_prefix(Path::new(KEPT_DIR), NAME_PREFIX)
}

/// Removes a network left running with [`TestNetwork::keep`]: every
/// namespace named under its prefix (hosts, underlay, the pod sandboxes
/// its agents made), with their processes, its bpffs pins, its marker.
pub fn remove_kept(prefix: &str) {
    let under = format!("{prefix}-");
    let mut namespaces = names_with_prefix(Path::new("/run/netns"), &under);
    // Hosts' sandboxes (`<prefix>-<host>-...`) before the hosts, the
    // underlay (`<prefix>-ul`) last.
    namespaces.sort_by_key(|n| (n == &format!("{prefix}-ul"), std::cmp::Reverse(n.len())));
    for name in namespaces {
        remove_namespace(&Netns::new(name));
    }
    for name in names_with_prefix(Path::new(TEST_BPFFS_ROOT), &under) {
        let _ = std::fs::remove_dir_all(Path::new(TEST_BPFFS_ROOT).join(name));
    }
    let _ = std::fs::remove_file(Path::new(KEPT_DIR).join(prefix));
}

/// Removes the namespaces and bpffs directories of runs whose process is
/// gone. Only names this crate makes (`rdr-<pid>-...`) are considered; live
/// runs and kept networks are left alone.
pub fn sweep_stale() {
    for name in stale_names(Path::new("/run/netns")) {
        remove_namespace(&Netns::new(name));
    }
    for name in stale_names(Path::new(TEST_BPFFS_ROOT)) {
        let _ = std::fs::remove_dir_all(Path::new(TEST_BPFFS_ROOT).join(name));
    }
}

/// Entries of `dir` whose names start with `prefix`.
fn names_with_prefix(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Entries of `dir` named by a run whose process no longer exists.
fn stale_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let kept = kept_networks();
    entries
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            run_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .filter(|name| !kept.iter().any(|prefix| is_under(name, prefix)))
        .collect()
}

/// Whether `name` belongs to the network `prefix` (is it, or starts with
/// `<prefix>-`).
fn is_under(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
}

/// The pid of the run that made `name` (`rdr-<pid>-...`).
fn run_pid(name: &str) -> Option<u32> {
    name.strip_prefix(NAME_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Runs `ip ARGS` in the current namespace; fails unless it exits 0.
pub(crate) fn ip(args: &[&str]) -> Result<String> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| NetnsError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(NetnsError::Command {
            command,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::{is_under, run_pid};

    #[test]
    fn run_pid_reads_only_names_this_crate_makes() {
        assert_eq!(run_pid("rdr-4242-0-cnt-ul"), Some(4242));
        assert_eq!(run_pid("rdr-x-0"), None);
        assert_eq!(run_pid("cni-1234"), None);
        assert_eq!(run_pid("rdr-"), None);
    }

    #[test]
    fn a_kept_prefix_covers_its_own_names_only() {
        assert!(is_under("rdr-42-0-cl", "rdr-42-0-cl"));
        assert!(is_under("rdr-42-0-cl-node1", "rdr-42-0-cl"));
        assert!(is_under("rdr-42-0-cl-node1-pod-x", "rdr-42-0-cl"));
        assert!(!is_under("rdr-42-0-clx-node1", "rdr-42-0-cl"));
        assert!(!is_under("rdr-42-1-cl-node1", "rdr-42-0-cl"));
    }
}
