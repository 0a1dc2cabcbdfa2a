//! `cargo xtask cluster up|status|exec|down`: a whole rudder cluster in test
//! hosts (network namespaces on a private 198.18.0.0/24 underlay), left
//! running for a person or a script to use.
//!
//! - `up [--nodes N] [--control-planes 1|3]` builds what is needed, starts
//!   the control plane (one replica, or three replicating over Raft) and N
//!   nodes running `rudder-agent serve --controlplane` with rudder-cni, adds
//!   an outside host `client`, and waits until every node is Ready;
//! - `status` says which processes of the cluster still run and shows the
//!   nodes as the API sees them;
//! - `exec HOST -- CMD...` runs a command on a host (`client`, `node1`,
//!   `cp`, ...) with the project's binaries on its PATH and `KUBECONFIG` set
//!   to the admin credentials the control plane wrote;
//! - `down` removes every cluster: processes, namespaces, pins, files
//!   (also what a crashed `up` left).
//!
//! The root namespace has no route to the test hosts (DESIGN.md, "Test
//! hosts"): the API is reached from a host of the cluster, e.g.
//! `cargo xtask cluster exec client -- rudderctl get nodes`.
//!
//! What `up` made is recorded in `<tmp>/rudder-cluster-<pid>/cluster.json`.
//! Its test network is kept ([`netns::TestNetwork::keep`]): named after
//! the `up` process, which is gone once it returns, it would otherwise look
//! stale to the next test run's sweep; it stays until `down`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use netns::{Host, TestNetwork};
use serde_json::{Value, json};

use crate::{build_ebpf, shell};

/// Scratch directories of clusters start with this (under the temp dir).
const SCRATCH_PREFIX: &str = "rudder-cluster-";
/// The control plane's gRPC and HTTP ports on its host.
const GRPC_PORT: u16 = 7400;
const HTTP_PORT: u16 = 7401;
/// How long `up` waits for every node to be Ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// What `cluster up` builds.
#[derive(Clone, Copy, Debug)]
pub struct ClusterSpec {
    /// Node hosts, each running an agent.
    pub nodes: usize,
    /// Control-plane replicas: 1, or 3 replicating over Raft.
    pub control_planes: usize,
}

/// A host of a running cluster.
#[derive(Clone, Debug)]
pub struct ClusterHost {
    /// Its label (`cp`, `cp2`, `node1`, `client`).
    pub label: String,
    /// Its network namespace.
    pub netns: String,
    /// Its address on the underlay.
    pub addr: String,
}

/// A cluster `up` left running.
#[derive(Debug)]
pub struct Cluster {
    /// Where its data, logs and record live.
    pub scratch: PathBuf,
    /// The control plane's gRPC address (`https://198.18.0.1:7400`), or
    /// every replica's, comma-separated.
    pub server: String,
    /// Every host, control planes first, then nodes, then `client`.
    pub hosts: Vec<ClusterHost>,
    /// The project's binaries.
    pub bin: PathBuf,
    /// The administrator's kubeconfig (`None`: a plaintext cluster).
    pub kubeconfig: Option<PathBuf>,
}

impl Cluster {
    /// The host labelled `label`.
    ///
    /// # Errors
    /// When the cluster has no such host.
    pub fn host(&self, label: &str) -> Result<&ClusterHost> {
        self.hosts
            .iter()
            .find(|h| h.label == label)
            .with_context(|| {
                let labels: Vec<&str> = self.hosts.iter().map(|h| h.label.as_str()).collect();
                format!(
                    "no host {label:?} in the cluster (hosts: {})",
                    labels.join(", ")
                )
            })
    }

    /// The node hosts.
    pub fn nodes(&self) -> impl Iterator<Item = &ClusterHost> {
        self.hosts.iter().filter(|h| h.label.starts_with("node"))
    }

    /// Runs `rudderctl ARGS --server <cp>` on the client host; its stdout.
    ///
    /// # Errors
    /// When rudderctl cannot run or fails (its stderr says why).
    pub fn rudderctl(&self, args: &[&str]) -> Result<String> {
        let mut full: Vec<String> = vec![self.bin.join("rudderctl").display().to_string()];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        full.extend(["--server".to_owned(), self.server.clone()]);
        if let Some(kubeconfig) = &self.kubeconfig {
            full.extend(["--kubeconfig".to_owned(), kubeconfig.display().to_string()]);
        }
        let out = self.command("client", &full)?.output()?;
        if !out.status.success() {
            bail!(
                "rudderctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A command that runs `args` on host `label`, the project's binaries
    /// first on its PATH.
    ///
    /// # Errors
    /// When there is no such host or no command.
    pub fn command(&self, label: &str, args: &[String]) -> Result<Command> {
        let host = self.host(label)?;
        let (program, rest) = args.split_first().context("no command given")?;
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.netns, "env"])
            .arg(format!("PATH={path}"));
        // rudderctl (and later kubectl) find the admin credentials.
        if let Some(kubeconfig) = &self.kubeconfig {
            cmd.arg(format!("KUBECONFIG={}", kubeconfig.display()));
        }
        cmd.arg(program).args(rest);
        Ok(cmd)
    }

    fn record(&self) -> Value {
        json!({
            "server": self.server,
            "bin": self.bin,
            "kubeconfig": self.kubeconfig,
            "hosts": self.hosts.iter().map(|h| json!({
                "label": h.label, "netns": h.netns, "addr": h.addr,
            })).collect::<Vec<_>>(),
        })
    }

    fn from_record(scratch: PathBuf, record: &Value) -> Result<Self> {
        let text = |v: &Value, key: &str| -> Result<String> {
            v[key]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("cluster record lacks {key:?}"))
        };
        let hosts = record["hosts"]
            .as_array()
            .context("cluster record lacks hosts")?
            .iter()
            .map(|h| {
                Ok(ClusterHost {
                    label: text(h, "label")?,
                    netns: text(h, "netns")?,
                    addr: text(h, "addr")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            server: text(record, "server")?,
            bin: PathBuf::from(text(record, "bin")?),
            kubeconfig: record["kubeconfig"].as_str().map(PathBuf::from),
            scratch,
            hosts,
        })
    }
}

/// Builds the binaries the cluster runs (kernel programs included).
///
/// # Errors
/// When a build fails.
pub fn build() -> Result<PathBuf> {
    build_ebpf::run()?;
    shell::run(shell::cargo().args([
        "build",
        "--quiet",
        "--bins",
        "-p",
        "rudder-agent",
        "-p",
        "rudder-cli",
        "-p",
        "rudder-controlplane",
        "-p",
        "rudder-cni",
        "-p",
        "rudder-testapp",
    ]))?;
    Ok(shell::workspace_root().join("target/debug"))
}

/// `cluster up`: builds, starts and waits for the cluster; prints how to use it.
///
/// # Errors
/// When not root, a build fails, a process does not start, or the nodes do
/// not become Ready in time (the logs' directory is named).
pub fn up_command(spec: ClusterSpec) -> Result<()> {
    let cluster = up(spec)?;
    println!(
        "{}",
        cluster
            .rudderctl(&["get", "nodes", "-o", "wide"])?
            .trim_end()
    );
    println!(
        "\ncluster: up ({} control plane(s), {} node(s)); use it from a host of the cluster:\n   \
         cargo xtask cluster exec client -- rudderctl --server {} get nodes,pods,svc -o wide\n   \
         cargo xtask cluster status\n   \
         cargo xtask cluster down\n   \
         logs and data: {}",
        spec.control_planes,
        spec.nodes,
        cluster.server,
        cluster.scratch.display()
    );
    Ok(())
}

/// Brings a cluster up and returns it, running, once every node is Ready.
///
/// # Errors
/// See [`up_command`].
pub fn up(spec: ClusterSpec) -> Result<Cluster> {
    if !netns::have_privileges() {
        bail!("a cluster creates network namespaces and loads eBPF programs: run it as root");
    }
    if !matches!(spec.control_planes, 1 | 3) {
        bail!(
            "--control-planes {}: use 1, or 3 for a replicated control plane",
            spec.control_planes
        );
    }
    if !(1..=200).contains(&spec.nodes) {
        bail!("--nodes {}: use 1 to 200", spec.nodes);
    }
    let bin = build()?;
    let scratch = std::env::temp_dir().join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;

    let mut net = TestNetwork::new("cl").context("creating the test network")?;
    let cps: Vec<Host> = (1..=spec.control_planes)
        .map(|i| {
            net.add_host(&if i == 1 {
                "cp".to_owned()
            } else {
                format!("cp{i}")
            })
        })
        .collect::<Result<_, _>>()?;
    let nodes: Vec<Host> = (1..=spec.nodes)
        .map(|i| net.add_host(&format!("node{i}")))
        .collect::<Result<_, _>>()?;
    let client = net.add_host("client")?;
    // Replicas talk Raft in plaintext until that transport speaks TLS, so
    // a replicated cluster is a plaintext one; a single control plane
    // serves TLS and writes the admin kubeconfig everything else uses.
    let replicated = cps.len() > 1;
    let scheme = if replicated { "http" } else { "https" };
    // Agents and rudderctl get every replica: they use the first that
    // answers and move on when it goes away.
    let server = cps
        .iter()
        .map(|cp| format!("{scheme}://{}:{GRPC_PORT}", cp.addr))
        .collect::<Vec<_>>()
        .join(",");

    for (i, cp) in cps.iter().enumerate() {
        let mut args: Vec<String> = vec![
            bin.join("rudder-controlplane").display().to_string(),
            "--data-dir".into(),
            scratch.join(&cp.label).display().to_string(),
            "--listen".into(),
            format!("{}:{GRPC_PORT}", cp.addr),
            "--http-listen".into(),
            format!("{}:{HTTP_PORT}", cp.addr),
        ];
        if replicated {
            args.push("--insecure-plaintext".into());
            args.extend(["--node-id".into(), (i + 1).to_string()]);
            for (j, peer) in cps.iter().enumerate() {
                args.extend([
                    "--peer".into(),
                    format!("{}={}:{GRPC_PORT}", j + 1, peer.addr),
                ]);
            }
        }
        let mut cmd = cp.command(&args[0]);
        cmd.args(&args[1..]);
        spawn_logged(cmd, &scratch.join(format!("{}.log", cp.label)))?;
    }
    let kubeconfig = if replicated {
        None
    } else {
        Some(wait_for_kubeconfig(&scratch.join(&cps[0].label))?)
    };

    let cni_bin = scratch.join("cni-bin");
    std::fs::create_dir_all(&cni_bin)?;
    std::os::unix::fs::symlink(bin.join("rudder-cni"), cni_bin.join("rudder-cni"))?;
    // The nodes' pins live under a directory named after this run, so
    // `down` (or any later run's sweep) removes them.
    let pins = net.bpffs_dir("pins");
    for (i, node) in nodes.iter().enumerate() {
        let n = i + 1;
        node.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let netd = scratch.join(format!("net.d-{n}"));
        std::fs::create_dir_all(&netd)?;
        let conflist = json!({"cniVersion": "1.0.0", "name": "pods", "plugins": [{
            "type": "rudder-cni", "bridge": "cni0",
            "ipam": {"subnet": format!("10.244.{n}.0/24"), "dataDir": scratch.join(format!("ipam-{n}"))},
            "bandwidthDir": scratch.join(format!("bandwidth-{n}"))}]});
        std::fs::write(netd.join("10-pods.conflist"), conflist.to_string())?;
        // A TLS cluster's node joins with a bootstrap token and serves
        // with its own node certificate (never the admin's).
        let node_kubeconfig = match &kubeconfig {
            Some(_) => Some(join_node(
                &bin,
                &scratch.join(&cps[0].label),
                &server,
                node,
                &scratch.join(format!("agent-config-{n}")),
            )?),
            None => None,
        };
        // Started from here with --netns: the agent enters the node's
        // namespace itself (setns) and keeps the machine's bpffs.
        let mut cmd = Command::new(bin.join("rudder-agent"));
        cmd.args(["--netns", node.name(), "serve", "--node", &node.label])
            .args(["--controlplane", &server])
            .args(
                node_kubeconfig
                    .iter()
                    .flat_map(|path| ["--kubeconfig".into(), path.display().to_string()]),
            )
            .args(["--pod-cidr", &format!("10.244.{n}.0/24")])
            .args(["--metrics-listen", "0.0.0.0:10250"])
            .arg("--bpffs-root")
            .arg(&pins)
            .arg("--cni-conf-dir")
            .arg(&netd)
            .arg("--cni-bin-dir")
            .arg(&cni_bin)
            .arg("--state-dir")
            .arg(scratch.join(format!("state-{n}")))
            .arg("--extra-path")
            .arg(&bin)
            .args([
                "--sandbox-prefix",
                &format!("{}-{}", net.prefix(), node.label),
            ]);
        spawn_logged(cmd, &scratch.join(format!("agent-{n}.log")))?;
    }

    let host = |h: &Host| ClusterHost {
        label: h.label.clone(),
        netns: h.name().to_owned(),
        addr: h.addr.to_string(),
    };
    let cluster = Cluster {
        scratch: scratch.clone(),
        server,
        hosts: cps
            .iter()
            .chain(&nodes)
            .chain([&client])
            .map(host)
            .collect(),
        bin,
        kubeconfig,
    };
    std::fs::write(
        scratch.join("cluster.json"),
        serde_json::to_string_pretty(&cluster.record())?,
    )?;
    wait_until_ready(&cluster)?;
    // Leave it running: neither this process's exit nor another run's
    // sweep of stale test networks removes it; `down` does.
    net.keep()?;
    Ok(cluster)
}

/// Waits (bounded) until the API answers and lists every node Ready.
fn wait_until_ready(cluster: &Cluster) -> Result<()> {
    let wanted: Vec<String> = cluster.nodes().map(|n| n.label.clone()).collect();
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < READY_TIMEOUT {
        match cluster.rudderctl(&["get", "nodes", "-o", "json"]) {
            Ok(text) => {
                let list: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let ready: Vec<&str> = list["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|node| node_ready(node))
                    .filter_map(|node| node["metadata"]["name"].as_str())
                    .collect();
                if wanted.iter().all(|w| ready.contains(&w.as_str())) {
                    return Ok(());
                }
                last = format!("Ready so far: {ready:?} of {wanted:?}");
            }
            Err(err) => last = err.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "the nodes did not become Ready within {} s ({last}); logs are in {}",
        READY_TIMEOUT.as_secs(),
        cluster.scratch.display()
    )
}

fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The clusters `up` left (newest first), from their records.
fn running() -> Result<Vec<Cluster>> {
    let mut found: Vec<(std::time::SystemTime, Cluster)> = Vec::new();
    for entry in std::fs::read_dir(std::env::temp_dir())?.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(SCRATCH_PREFIX)
        {
            continue;
        }
        let record = entry.path().join("cluster.json");
        let Ok(text) = std::fs::read_to_string(&record) else {
            continue;
        };
        let modified = std::fs::metadata(&record)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a cluster record", record.display()))?;
        found.push((modified, Cluster::from_record(entry.path(), &value)?));
    }
    found.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    Ok(found.into_iter().map(|(_, c)| c).collect())
}

fn newest() -> Result<Cluster> {
    running()?
        .into_iter()
        .next()
        .context("no cluster is up: start one with `cargo xtask cluster up`")
}

/// `cluster status`: which hosts still run their processes, and the nodes.
///
/// # Errors
/// When no cluster is up.
pub fn status() -> Result<()> {
    let cluster = newest()?;
    println!("cluster in {}", cluster.scratch.display());
    for host in &cluster.hosts {
        let alive = Path::new("/run/netns").join(&host.netns).exists();
        let processes = if alive {
            Command::new("ip")
                .args(["netns", "pids", &host.netns])
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .count()
                })
                .unwrap_or(0)
        } else {
            0
        };
        let state = match (alive, processes) {
            (false, _) => "gone".to_owned(),
            (true, 0) => "up, no processes".to_owned(),
            (true, n) => format!("up, {n} process(es)"),
        };
        println!("   {:<8} {:<14} {state}", host.label, host.addr);
    }
    match cluster.rudderctl(&["get", "nodes", "-o", "wide"]) {
        Ok(table) => println!("\n{}", table.trim_end()),
        Err(err) => println!("\nthe API does not answer: {err:#}"),
    }
    Ok(())
}

/// `cluster exec HOST -- CMD...`: runs the command there, passing its exit code on.
///
/// # Errors
/// When no cluster is up, the host is unknown or the command cannot start.
pub fn exec(host: &str, command: &[String]) -> Result<std::process::ExitCode> {
    let cluster = newest()?;
    let status = cluster
        .command(host, command)?
        .status()
        .with_context(|| format!("running {command:?} on {host}"))?;
    Ok(std::process::ExitCode::from(
        u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
    ))
}

/// `cluster down`: removes every cluster, and the namespaces, pins and
/// processes of any run whose creator is gone.
///
/// # Errors
/// When the temp directory cannot be read.
pub fn down() -> Result<()> {
    let clusters = running()?;
    let mut removed = BTreeMap::new();
    for cluster in &clusters {
        for host in &cluster.hosts {
            removed.insert(host.netns.clone(), ());
        }
    }
    // Every network `up` kept (also one whose record is gone), with its
    // processes, pod sandboxes and bpffs pins; then what crashed runs left.
    for prefix in netns::kept_networks() {
        netns::remove_kept(&prefix);
    }
    netns::sweep_stale();
    for entry in std::fs::read_dir(std::env::temp_dir())?.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(SCRATCH_PREFIX)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let left: Vec<&String> = removed
        .keys()
        .filter(|ns| Path::new("/run/netns").join(ns).exists())
        .collect();
    if !left.is_empty() {
        bail!("namespaces still present after down: {left:?}");
    }
    println!("cluster: down ({} cluster(s) removed)", clusters.len());
    Ok(())
}

fn spawn_logged(mut cmd: Command, log: &Path) -> Result<()> {
    let file = std::fs::File::create(log)?;
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .env("NO_COLOR", "1");
    // Not waited for: the cluster outlives this process.
    std::mem::forget(
        cmd.spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?,
    );
    Ok(())
}

/// `rudder-agent join` for `node`, as an operator runs it: a token from
/// `rudder-controlplane token create` on the control plane's data dir,
/// the CA hash it prints, the agent inside the node's namespace. The
/// node's kubeconfig.
fn join_node(
    bin: &Path,
    cp_data: &Path,
    server: &str,
    node: &Host,
    config_dir: &Path,
) -> Result<PathBuf> {
    let created = Command::new(bin.join("rudder-controlplane"))
        .args(["token", "create", "--ttl", "2h", "--print-join-command"])
        .arg("--data-dir")
        .arg(cp_data)
        .output()?;
    if !created.status.success() {
        bail!(
            "rudder-controlplane token create: {}",
            String::from_utf8_lossy(&created.stderr)
        );
    }
    let printed = String::from_utf8_lossy(&created.stdout).into_owned();
    // Everything after `join`, with --server aimed at the node-side address.
    let mut args: Vec<String> = Vec::new();
    let mut words = printed
        .split_whitespace()
        .skip_while(|w| *w != "join")
        .skip(1);
    while let Some(word) = words.next() {
        let value = words.next().unwrap_or_default();
        let value = if word == "--server" { server } else { value };
        args.extend([word.to_owned(), value.to_owned()]);
    }
    let joined = Command::new(bin.join("rudder-agent"))
        .args(["--netns", node.name(), "join"])
        .args(&args)
        .args(["--node-name", &node.label, "--no-start", "--config-dir"])
        .arg(config_dir)
        .output()?;
    if !joined.status.success() {
        bail!(
            "rudder-agent join for {}: {}",
            node.label,
            String::from_utf8_lossy(&joined.stderr)
        );
    }
    Ok(config_dir.join("agent.kubeconfig"))
}

/// Waits (at most 30 s) for the admin kubeconfig the control plane with
/// data directory `data` writes on first start.
fn wait_for_kubeconfig(data: &Path) -> Result<PathBuf> {
    let path = data.join("pki/admin.kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.is_file() {
        if Instant::now() >= deadline {
            bail!(
                "the control plane wrote no {} in 30 s (see its log beside it)",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(path)
}
