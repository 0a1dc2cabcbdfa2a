//! A cluster driven through the control plane: `rudder-controlplane` on a
//! host of its own, node hosts running `rudder-agent serve --controlplane`
//! with rudder-cni, and an outside client host that runs `rudderctl`.
//!
//! Tests use [`Cluster::new`] (two nodes, node2 with the reference `tuning`
//! plugin chained after rudder-cni, node1's pods in cgroups of their own);
//! benchmarks use [`Cluster::build`] with their own [`ClusterOptions`].

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result};
use netns::{Host, HostProcess, TestNetwork};
use serde_json::Value;

/// Path of a workspace binary as a string.
pub fn bin(name: &str) -> String {
    crate::binary(name).display().to_string()
}

/// What kind of cluster to build.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Names the test network (keep it short).
    pub label: String,
    /// Number of node hosts (at most 200: each gets 10.244.N.0/24).
    pub nodes: usize,
    /// Where `rudder-controlplane`, `rudder-agent`, `rudder-cni`,
    /// `rudderctl` and `rudder-testapp` are.
    pub bin_dir: PathBuf,
    /// Chain the reference `tuning` plugin after rudder-cni on node2.
    pub chain_tuning_on_node2: bool,
    /// Run node1's pods in cgroups under [`Cluster::cgroup`].
    pub pod_cgroups_on_node1: bool,
    /// Write the processes' output to `<scratch>/logs/*.log` instead of
    /// pipes (a pipe nobody reads stalls a chatty process once it fills).
    pub log_to_files: bool,
    /// Extra arguments for `rudder-controlplane`.
    pub controlplane_args: Vec<String>,
    /// Control-plane replicas: 1, or 3 replicating over Raft. Replicas
    /// talk Raft in plaintext until that transport speaks TLS, so a
    /// replicated cluster is plaintext (no kubeconfig, agents unjoined).
    pub control_planes: usize,
}

impl ClusterOptions {
    /// The tests' cluster: two nodes, the binaries next to the test
    /// executable, tuning chained on node2, cgroups on node1.
    pub fn for_tests(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            nodes: 2,
            bin_dir: crate::binary("rudder-agent")
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            chain_tuning_on_node2: true,
            pod_cgroups_on_node1: true,
            log_to_files: false,
            controlplane_args: Vec::new(),
            control_planes: 1,
        }
    }
}

/// A node host with its agent.
pub struct Node {
    /// The node's host.
    pub host: Host,
    /// Its Node name.
    pub name: String,
    args: Vec<String>,
    program: PathBuf,
    log: Option<PathBuf>,
    /// Its agent, while running.
    pub agent: Option<HostProcess>,
    /// The agent's state directory.
    pub state: PathBuf,
    /// Prefix of its pod sandboxes.
    pub prefix: String,
    /// The node's bpffs directory (its pinned maps are under `maps/`).
    pub bpffs: PathBuf,
}

impl Node {
    /// Runs the agent from `program` from its next start on (an upgrade:
    /// the same flags, a new binary).
    pub fn set_program(&mut self, program: PathBuf) {
        self.program = program;
    }
}

/// Starts (or restarts) the node's agent.
///
/// # Panics
/// When the agent cannot be started.
pub fn start_agent(node: &mut Node) {
    try_start_agent(node).expect("agent");
}

/// Starts (or restarts) the node's agent.
///
/// # Errors
/// When the agent cannot be started.
pub fn try_start_agent(node: &mut Node) -> Result<()> {
    let mut cmd = std::process::Command::new(&node.program);
    cmd.args(&node.args).env("NO_COLOR", "1");
    let what = format!("agent {}", node.host.label);
    node.agent = Some(match &node.log {
        Some(log) => HostProcess::start_logged(cmd, what, log)?,
        None => HostProcess::start(cmd, what)?,
    });
    Ok(())
}

/// A control-plane replica: its host and process.
pub struct ControlPlane {
    /// Its host.
    pub host: Host,
    /// Its gRPC address (`https://...` or, replicated, `http://...`).
    pub server: String,
    args: Vec<String>,
    log: Option<PathBuf>,
    process: Option<HostProcess>,
}

impl ControlPlane {
    /// Starts it (again) from `program`, with its flags and data directory.
    ///
    /// # Errors
    /// When it cannot be started.
    fn start(&mut self, program: &Path) -> Result<()> {
        let mut cmd = self.host.command(&program.display().to_string());
        cmd.args(&self.args).stdin(std::process::Stdio::null());
        let what = format!("control plane {}", self.host.label);
        self.process = Some(match &self.log {
            Some(file) => HostProcess::start_logged(cmd, what, file)?,
            None => HostProcess::start(cmd, what)?,
        });
        Ok(())
    }
}

/// Control-plane hosts, node hosts with agents, an outside client.
pub struct Cluster {
    /// The nodes.
    pub nodes: Vec<Node>,
    /// node1's pods get cgroups under this one (when asked for).
    pub cgroup: Option<crate::TestCgroup>,
    /// A host on the underlay that is not a node.
    pub client: Host,
    /// The control-plane replicas (one, or three).
    pub control_planes: Vec<ControlPlane>,
    /// The gRPC address agents and rudderctl use: the control plane's, or
    /// every replica's, comma-separated.
    pub server: String,
    /// The administrator's kubeconfig the control plane wrote (`None`: a
    /// replicated, plaintext cluster).
    pub kubeconfig: Option<PathBuf>,
    /// Scratch directory of this cluster.
    pub scratch: PathBuf,
    bin_dir: PathBuf,
    /// Drops last: removes every namespace of the test.
    _net: TestNetwork,
}

impl Cluster {
    /// The tests' cluster (see [`ClusterOptions::for_tests`]).
    ///
    /// # Panics
    /// When the test hosts cannot be made.
    pub fn new(label: &str) -> Self {
        Self::build(&ClusterOptions::for_tests(label)).expect("test cluster")
    }

    /// Builds the hosts and starts every process.
    ///
    /// # Errors
    /// When a host, file or process cannot be made; whatever was made is
    /// removed.
    pub fn build(options: &ClusterOptions) -> Result<Self> {
        if !matches!(options.control_planes, 1 | 3) {
            anyhow::bail!(
                "{} control planes: use 1, or 3 replicating over Raft",
                options.control_planes
            );
        }
        let mut net = TestNetwork::new(&options.label)?;
        let cp_hosts = (1..=options.control_planes)
            .map(|i| {
                net.add_host(&if i == 1 {
                    "cp".to_owned()
                } else {
                    format!("cp{i}")
                })
            })
            .collect::<netns::Result<Vec<_>>>()?;
        let hosts = (1..=options.nodes)
            .map(|n| net.add_host(&format!("node{n}")))
            .collect::<netns::Result<Vec<_>>>()?;
        let client = net.add_host("client")?;
        let scratch = std::env::temp_dir().join(format!("{}-pods", net.prefix()));
        // Removed with the cluster, also when building it fails half-way.
        let scratch_guard = RemoveDir(scratch.clone());
        let logs = scratch.join("logs");
        std::fs::create_dir_all(&logs).context("scratch directory")?;
        let log = |name: &str| {
            options
                .log_to_files
                .then(|| logs.join(format!("{name}.log")))
        };
        let program = |name: &str| options.bin_dir.join(name);

        let replicated = cp_hosts.len() > 1;
        let peers: Vec<String> = cp_hosts
            .iter()
            .enumerate()
            .flat_map(|(i, h)| ["--peer".to_owned(), format!("{}={}:7400", i + 1, h.addr)])
            .collect();
        let mut control_planes = Vec::new();
        for (i, host) in cp_hosts.into_iter().enumerate() {
            let listen = format!("{}:7400", host.addr);
            let mut args = vec![
                "--data-dir".to_owned(),
                scratch.join(&host.label).display().to_string(),
            ];
            args.extend(["--listen", &listen, "--http-listen", "off"].map(str::to_owned));
            if replicated {
                // The etcd API serves `etcdctl endpoint status` (who leads).
                args.extend(
                    ["--insecure-plaintext", "--enable-etcd-api", "--node-id"].map(str::to_owned),
                );
                args.push((i + 1).to_string());
                args.extend(peers.iter().cloned());
            }
            args.extend(options.controlplane_args.iter().cloned());
            let scheme = if replicated { "http" } else { "https" };
            let mut cp = ControlPlane {
                server: format!("{scheme}://{listen}"),
                log: log(&host.label),
                host,
                args,
                process: None,
            };
            cp.start(&program("rudder-controlplane"))?;
            control_planes.push(cp);
        }
        let server = control_planes
            .iter()
            .map(|cp| cp.server.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let kubeconfig = if replicated {
            None
        } else {
            Some(crate::admin_kubeconfig(
                &scratch.join("cp"),
                Duration::from_secs(30),
            )?)
        };
        // One CNI bin directory, as on a node: rudder-cni beside the
        // reference plugins.
        let cni_bin = scratch.join("cni-bin");
        std::fs::create_dir_all(&cni_bin)?;
        std::os::unix::fs::symlink(program("rudder-cni"), cni_bin.join("rudder-cni"))?;
        if options.chain_tuning_on_node2 {
            std::os::unix::fs::symlink("/usr/lib/cni/tuning", cni_bin.join("tuning"))?;
        }
        let cgroup = options
            .pod_cgroups_on_node1
            .then(|| crate::TestCgroup::new(&options.label));
        let mut nodes = Vec::new();
        for (i, host) in hosts.into_iter().enumerate() {
            let n = i + 1;
            host.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
            let dir = net.bpffs_dir(&host.label);
            let name = dir
                .file_name()
                .context("bpffs directory name")?
                .to_string_lossy()
                .into_owned();
            // The node's CNI configuration, as a runtime would find it:
            // rudder-cni, maybe with the reference `tuning` plugin chained
            // after it (a runtime must run whatever the list says).
            let netd = scratch.join(format!("net.d-{n}"));
            std::fs::create_dir_all(&netd)?;
            let mut plugins = vec![serde_json::json!({
                "type": "rudder-cni", "bridge": "cni0",
                "bandwidthDir": scratch.join(format!("bandwidth-{n}")),
                "ipam": {"subnet": format!("10.244.{n}.0/24"), "dataDir": scratch.join(format!("ipam-{n}"))}
            })];
            if n == 2 && options.chain_tuning_on_node2 {
                plugins.push(serde_json::json!({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_redirects": "0"}}));
            }
            // 1.0.0: the reference plugins in Debian predate CNI 1.1.0.
            let conflist =
                serde_json::json!({"cniVersion": "1.0.0", "name": "pods", "plugins": plugins});
            std::fs::write(netd.join("10-pods.conflist"), conflist.to_string())?;
            let state = scratch.join(format!("state-{n}"));
            // The node's own credential, as `rudder-agent join` gets it
            // (a plaintext, replicated cluster has none).
            let node_kubeconfig = match &kubeconfig {
                Some(_) => Some(crate::join_node(
                    &options.bin_dir,
                    &scratch.join("cp"),
                    &server,
                    host.name(),
                    &name,
                    &scratch.join(format!("agent-config-{n}")),
                )?),
                None => None,
            };
            let prefix = format!("{}-n{n}", net.prefix());
            let mut args: Vec<String> = [
                "--netns",
                host.name(),
                "serve",
                "--node",
                &name,
                "--bpffs-root",
                &dir.parent().context("bpffs root")?.display().to_string(),
                "--controlplane",
                &server,
                "--pod-cidr",
                &format!("10.244.{n}.0/24"),
                "--cni-conf-dir",
                &netd.display().to_string(),
                "--cni-bin-dir",
                &cni_bin.display().to_string(),
                "--state-dir",
                &state.display().to_string(),
                "--extra-path",
                &options.bin_dir.display().to_string(),
                "--metrics-listen",
                "0.0.0.0:10250",
                "--sandbox-prefix",
                &prefix,
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            if let Some(path) = &node_kubeconfig {
                args.extend(["--kubeconfig".to_owned(), path.display().to_string()]);
            }
            if let (1, Some(cgroup)) = (n, &cgroup) {
                args.extend([
                    "--pod-cgroup-root".to_owned(),
                    cgroup.path().display().to_string(),
                ]);
            }
            let mut node = Node {
                log: log(&format!("agent-{}", host.label)),
                host,
                name,
                args,
                program: program("rudder-agent"),
                agent: None,
                state,
                prefix,
                bpffs: dir,
            };
            try_start_agent(&mut node)?;
            nodes.push(node);
        }
        std::mem::forget(scratch_guard);
        let cluster = Self {
            nodes,
            cgroup,
            client,
            control_planes,
            server,
            kubeconfig,
            scratch,
            bin_dir: options.bin_dir.clone(),
            _net: net,
        };
        // As a user's cluster would be before anything is applied: every
        // node registered and Ready, so the scheduler sees them all.
        cluster.wait_nodes_ready()?;
        Ok(cluster)
    }

    /// Polls (bounded: 90 s by the clock) until every node is registered
    /// and Ready.
    fn wait_nodes_ready(&self) -> Result<()> {
        let mut ready = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while std::time::Instant::now() < deadline {
            let out = self.rudderctl(&["get", "nodes", "-o", "json"]);
            let list: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            ready = list["items"].as_array().map_or(0, |nodes| {
                nodes
                    .iter()
                    .filter(|node| {
                        node["status"]["conditions"].as_array().is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
                    })
                    .count()
            });
            if ready == self.nodes.len() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!(
            "only {ready} of {} nodes became Ready; agent logs under {}",
            self.nodes.len(),
            self.scratch.display()
        )
    }

    /// Stops the control plane and starts `program` in its place with the
    /// same flags and data directory (an upgrade, or just a restart);
    /// returns once it serves again.
    ///
    /// # Errors
    /// When it cannot be started or does not answer within about 30 s.
    pub fn restart_controlplane(&mut self, program: &Path) -> Result<()> {
        let cp = &mut self.control_planes[0];
        if let Some(old) = cp.process.take() {
            old.stop();
        }
        cp.start(program)?;
        for _ in 0..300 {
            if self.rudderctl(&["get", "nodes"]).status.success() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!("the restarted control plane does not answer")
    }

    /// Node `i` stops entirely, as a machine that loses power: its agent
    /// and every process of its pods are killed, its link goes down. Its
    /// namespaces stay (the cluster removes them when it goes).
    ///
    /// # Errors
    /// When the link cannot be set down.
    pub fn lose_node(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        drop(node.agent.take());
        let sandboxes = format!("{}-", node.prefix);
        for entry in std::fs::read_dir("/run/netns")?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&sandboxes) {
                for pid in netns::Netns::existing(name).pids() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        node.host.ip(&["link", "set", "eth0", "down"])?;
        Ok(())
    }

    /// Kills replica `i` with SIGKILL.
    pub fn kill_controlplane(&mut self, i: usize) {
        drop(self.control_planes[i].process.take());
    }

    /// Starts replica `i` again (after [`Cluster::kill_controlplane`]).
    ///
    /// # Errors
    /// When it cannot be started.
    pub fn start_controlplane(&mut self, i: usize) -> Result<()> {
        let program = self.program("rudder-controlplane");
        self.control_planes[i].start(&program)
    }

    /// The index of the replica that leads, as every running replica
    /// reports it (`etcdctl endpoint status`: the real etcd client); `None`
    /// while they do not agree or have no leader.
    pub fn leader(&self) -> Option<usize> {
        let endpoints: Vec<&str> = self
            .control_planes
            .iter()
            .filter(|cp| cp.process.is_some())
            // etcdctl 3.4 sends an endpoint's scheme in :authority, which
            // an HTTP/2 server rightly refuses: give it host:port.
            .map(|cp| cp.server.trim_start_matches("http://"))
            .collect();
        let out = self
            .client
            .output(&[
                "etcdctl",
                "--endpoints",
                &endpoints.join(","),
                "--command-timeout=2s",
                "endpoint",
                "status",
                "-w",
                "json",
            ])
            .ok()?;
        let statuses: Value = serde_json::from_slice(&out.stdout).ok()?;
        let statuses = statuses.as_array()?;
        let leader = statuses.first()?["Status"]["leader"].as_u64()?;
        let agreed = statuses.len() == endpoints.len()
            && statuses
                .iter()
                .all(|s| s["Status"]["leader"].as_u64() == Some(leader));
        // Replica i has Raft id i + 1.
        let index = usize::try_from(leader).ok()?.checked_sub(1)?;
        (agreed && index < self.control_planes.len()).then_some(index)
    }

    /// Path of one of the cluster's programs (`rudder-testapp`, ...).
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// The cgroup node1's pods run under.
    ///
    /// # Panics
    /// When the cluster was built without pod cgroups.
    pub fn pod_cgroup(&self) -> &crate::TestCgroup {
        self.cgroup
            .as_ref()
            .expect("the cluster was built with pod cgroups on node1")
    }

    /// Runs rudderctl from the client host against the control plane.
    ///
    /// # Panics
    /// When rudderctl cannot be started.
    pub fn rudderctl(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec![self.bin_dir.join("rudderctl").display().to_string()];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        full.push("--server".into());
        full.push(self.server.clone());
        if let Some(kubeconfig) = &self.kubeconfig {
            full.push("--kubeconfig".into());
            full.push(kubeconfig.display().to_string());
        }
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        self.client.output(&full).expect("rudderctl runs")
    }

    /// `rudderctl apply -f` of a manifest, retried while the server starts.
    ///
    /// # Panics
    /// When it never succeeds.
    pub fn apply(&self, manifest: &str) {
        let file = self.scratch.join("manifest.yaml");
        std::fs::write(&file, manifest).expect("manifest");
        for _ in 0..100 {
            if self
                .rudderctl(&["apply", "-f", &file.display().to_string()])
                .status
                .success()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("rudderctl apply never succeeded");
    }

    /// A pod as JSON, if it exists.
    pub fn pod(&self, name: &str) -> Option<Value> {
        let out = self.rudderctl(&["get", "pod", name, "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Polls (bounded by a deadline, not a count: each poll is a rudderctl
    /// run, which takes long on a loaded machine) until `check` holds for
    /// the pod; returns it.
    ///
    /// # Panics
    /// When it does not within a minute and a half.
    pub fn wait_pod(&self, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        let mut last = None;
        while std::time::Instant::now() < deadline {
            if let Some(pod) = self.pod(name) {
                if check(&pod) {
                    return pod;
                }
                last = Some(pod);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("pod {name} never {what}: {last:#?}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            drop(node.agent.take());
        }
        if std::thread::panicking() {
            print_log_tails(&self.scratch.join("logs"));
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// How much of each log a failed test shows.
const FAILED_LOG_LINES: usize = 80;

/// Prints the end of every log under `dir` to stderr: a failed test's logs
/// are removed with its cluster, and CI shows only what the test printed.
fn print_log_tails(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    logs.sort();
    for log in logs {
        let Ok(text) = std::fs::read_to_string(&log) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(FAILED_LOG_LINES)..];
        eprintln!("---- last {} lines of {} ----", tail.len(), log.display());
        for line in tail {
            eprintln!("{line}");
        }
    }
}

/// Removes a directory when dropped (forgotten once the cluster owns it).
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
