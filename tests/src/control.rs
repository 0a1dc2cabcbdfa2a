//! A cluster driven through the control plane: `rudder-controlplane` on a
//! host of its own, two node hosts running `rudder-agent serve
//! --controlplane` with rudder-cni (node2 with the reference `tuning`
//! plugin chained after it), and an outside client host that runs
//! `rudderctl`.

use std::{path::PathBuf, time::Duration};

use netns::{Host, HostProcess, TestNetwork};
use serde_json::Value;

/// Path of a workspace binary as a string.
pub fn bin(name: &str) -> String {
    crate::binary(name).display().to_string()
}

/// A node host with its agent.
pub struct Node {
    /// The node's host.
    pub host: Host,
    /// Its Node name.
    pub name: String,
    args: Vec<String>,
    /// Its agent, while running.
    pub agent: Option<HostProcess>,
    /// The agent's state directory.
    pub state: PathBuf,
    /// Prefix of its pod sandboxes.
    pub prefix: String,
}

/// Starts (or restarts) the node's agent.
pub fn start_agent(node: &mut Node) {
    let mut cmd = std::process::Command::new(bin("rudder-agent"));
    cmd.args(&node.args).env("NO_COLOR", "1");
    node.agent =
        Some(HostProcess::start(cmd, format!("agent {}", node.host.label)).expect("agent"));
}

/// A control plane host, two node hosts with agents, an outside client.
pub struct Cluster {
    /// The nodes.
    pub nodes: Vec<Node>,
    /// node1's pods get cgroups under this one.
    pub cgroup: crate::TestCgroup,
    /// A host on the underlay that is not a node.
    pub client: Host,
    /// The control plane's gRPC address.
    pub server: String,
    /// Scratch directory of this cluster.
    pub scratch: PathBuf,
    _cp: HostProcess,
    /// Drops last: removes every namespace of the test.
    _net: TestNetwork,
}

impl Cluster {
    /// Builds it and starts every process.
    ///
    /// # Panics
    /// When the test hosts cannot be made.
    pub fn new(label: &str) -> Self {
        let mut net = TestNetwork::new(label).expect("network");
        let cp = net.add_host("cp").expect("cp");
        let hosts = [
            net.add_host("node1").expect("node1"),
            net.add_host("node2").expect("node2"),
        ];
        let client = net.add_host("client").expect("client");
        let scratch = std::env::temp_dir().join(format!("{}-pods", net.prefix()));
        std::fs::create_dir_all(&scratch).expect("scratch");
        let listen = format!("{}:7400", cp.addr);
        let cp_process = cp
            .spawn(&[
                &bin("rudder-controlplane"),
                "--data-dir",
                &scratch.join("cp").display().to_string(),
                "--listen",
                &listen,
                "--http-listen",
                "off",
            ])
            .expect("control plane");
        let server = format!("http://{listen}");
        // One CNI bin directory, as on a node: rudder-cni beside the
        // reference plugins.
        let cni_bin = scratch.join("cni-bin");
        std::fs::create_dir_all(&cni_bin).expect("cni bin");
        std::os::unix::fs::symlink(bin("rudder-cni"), cni_bin.join("rudder-cni"))
            .expect("rudder-cni");
        std::os::unix::fs::symlink("/usr/lib/cni/tuning", cni_bin.join("tuning")).expect("tuning");
        let cgroup = crate::TestCgroup::new(label);
        let mut nodes = Vec::new();
        for (i, host) in hosts.into_iter().enumerate() {
            let n = i + 1;
            host.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])
                .expect("forwarding");
            let dir = net.bpffs_dir(&host.label);
            let name = dir
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            // The node's CNI configuration, as a runtime would find it:
            // rudder-cni, and on node2 the reference `tuning` plugin chained
            // after it (a runtime must run whatever the list says).
            let netd = scratch.join(format!("net.d-{n}"));
            std::fs::create_dir_all(&netd).expect("net.d");
            let mut plugins = vec![serde_json::json!({
                "type": "rudder-cni", "bridge": "cni0",
                "bandwidthDir": scratch.join(format!("bandwidth-{n}")),
                "ipam": {"subnet": format!("10.244.{n}.0/24"), "dataDir": scratch.join(format!("ipam-{n}"))}
            })];
            if n == 2 {
                plugins.push(serde_json::json!({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_redirects": "0"}}));
            }
            // 1.0.0: the reference plugins in Debian predate CNI 1.1.0.
            let conflist =
                serde_json::json!({"cniVersion": "1.0.0", "name": "pods", "plugins": plugins});
            std::fs::write(netd.join("10-pods.conflist"), conflist.to_string()).expect("conflist");
            let state = scratch.join(format!("state-{n}"));
            let prefix = format!("{}-n{n}", net.prefix());
            let args: Vec<String> = [
                "--netns",
                host.name(),
                "serve",
                "--node",
                &name,
                "--bpffs-root",
                &dir.parent().expect("root").display().to_string(),
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
                &crate::binary("rudder-testapp")
                    .parent()
                    .expect("bin dir")
                    .display()
                    .to_string(),
                "--metrics-listen",
                "0.0.0.0:10250",
                "--sandbox-prefix",
                &prefix,
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            let mut args = args;
            if n == 1 {
                args.extend([
                    "--pod-cgroup-root".to_owned(),
                    cgroup.path().display().to_string(),
                ]);
            }
            let mut node = Node {
                host,
                name,
                args,
                agent: None,
                state,
                prefix,
            };
            start_agent(&mut node);
            nodes.push(node);
        }
        Self {
            nodes,
            cgroup,
            client,
            server,
            scratch,
            _cp: cp_process,
            _net: net,
        }
    }

    /// Runs rudderctl from the client host against the control plane.
    pub fn rudderctl(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec![bin("rudderctl")];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        full.push("--server".into());
        full.push(self.server.clone());
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        self.client.output(&full).expect("rudderctl runs")
    }

    /// `rudderctl apply -f` of a manifest, retried while the server starts.
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

    /// Polls (bounded) until `check` holds for the pod; returns it.
    /// Polls (bounded) until `check` holds for the pod; returns it.
    pub fn wait_pod(&self, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let mut last = None;
        for _ in 0..150 {
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
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}
