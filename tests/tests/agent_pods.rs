//! The agent's embedded pod runtime, through the API as a user drives it:
//! pods bound to a node get a sandbox wired by the node's CNI plugins, run,
//! are probed Ready, talk across nodes, restart per policy, survive an
//! agent restart without being restarted, and leave nothing behind when
//! deleted.

use std::{path::PathBuf, time::Duration};

use netns::{Host, HostProcess, TestNetwork};
use serde_json::Value;

fn bin(name: &str) -> String {
    rudder_tests::binary(name).display().to_string()
}

struct Node {
    host: Host,
    name: String,
    args: Vec<String>,
    agent: Option<HostProcess>,
    state: PathBuf,
    prefix: String,
}

fn start_agent(node: &mut Node) {
    let mut cmd = std::process::Command::new(bin("rudder-agent"));
    cmd.args(&node.args).env("NO_COLOR", "1");
    node.agent =
        Some(HostProcess::start(cmd, format!("agent {}", node.host.label)).expect("agent"));
}

struct Cluster {
    nodes: Vec<Node>,
    /// node1's pods get cgroups under this one.
    cgroup: rudder_tests::TestCgroup,
    client: Host,
    server: String,
    scratch: PathBuf,
    _cp: HostProcess,
    /// Drops last: removes every namespace of the test.
    _net: TestNetwork,
}

impl Cluster {
    fn new(label: &str) -> Self {
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
        let cgroup = rudder_tests::TestCgroup::new(label);
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

    fn rudderctl(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec![bin("rudderctl")];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        full.push("--server".into());
        full.push(self.server.clone());
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        self.client.output(&full).expect("rudderctl runs")
    }

    fn apply(&self, manifest: &str) {
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

    fn pod(&self, name: &str) -> Option<Value> {
        let out = self.rudderctl(&["get", "pod", name, "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Polls (bounded) until `check` holds for the pod; returns it.
    fn wait_pod(&self, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
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

fn pod_manifest(name: &str, node: &str, command: &str, restart: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: web}}
spec:
  nodeName: {node}
  restartPolicy: {restart}
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: rudder/testapp
    command: {command}
    ports:
    - {{name: http, containerPort: 8080}}
    readinessProbe:
      httpGet: {{path: /, port: http}}
      periodSeconds: 1
"#
    )
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[test]
fn pods_run_are_ready_talk_across_nodes_restart_survive_the_agent_and_clean_up() {
    rudder_tests::require_root();
    let mut c = Cluster::new("pods");
    let app = bin("rudder-testapp");
    let serve =
        format!(r#"["{app}", "http", "--listen", "0.0.0.0:8080", "--name", "$(POD_NAME)"]"#);
    let crash = r#"["sh", "-c", "echo crashing; exit 3"]"#;
    let manifest = [
        pod_manifest("web-1", &c.nodes[0].name, &serve, "Always"),
        pod_manifest("web-2", &c.nodes[1].name, &serve, "Always"),
        pod_manifest("crasher", &c.nodes[0].name, crash, "Always"),
    ]
    .join("---\n");
    c.apply(&manifest);

    // Running, with an address from the node's subnet, and probed Ready.
    let web1 = c.wait_pod("web-1", "became Ready", ready);
    let web2 = c.wait_pod("web-2", "became Ready", ready);
    let ip1 = web1["status"]["podIP"]
        .as_str()
        .expect("web-1 has an IP")
        .to_owned();
    let ip2 = web2["status"]["podIP"]
        .as_str()
        .expect("web-2 has an IP")
        .to_owned();
    assert!(
        ip1.starts_with("10.244.1.") && ip2.starts_with("10.244.2."),
        "{ip1} {ip2}"
    );
    assert_eq!(web1["status"]["phase"], "Running");

    // node1 runs its pods in cgroups of their own.
    let groups: Vec<std::path::PathBuf> = std::fs::read_dir(c.cgroup.path())
        .expect("pod cgroups")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert!(!groups.is_empty(), "pod cgroups under the root");
    assert!(
        groups
            .iter()
            .any(|g| !std::fs::read_to_string(g.join("cgroup.procs"))
                .unwrap_or_default()
                .trim()
                .is_empty()),
        "containers run inside their pod's cgroup: {groups:?}"
    );

    // Across nodes, pod to pod (routes from the agents, no NAT).
    let pod1_ns = std::fs::read_dir("/run/netns")
        .expect("netns dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&c.nodes[0].prefix))
        .collect::<Vec<_>>();
    assert_eq!(pod1_ns.len(), 2, "two sandboxes on node1: {pod1_ns:?}");
    let answer = c.nodes[0]
        .host
        .run(&[
            &app,
            "http-get",
            "--to",
            &format!("{ip2}:8080"),
            "--retry-ms",
            "5000",
        ])
        .expect("node1 reaches web-2");
    assert!(
        answer.starts_with("pod=web-2 "),
        "$(POD_NAME) expanded: {answer}"
    );

    // restartPolicy Always: the crashing container is restarted with backoff.
    let crasher = c.wait_pod("crasher", "restarted", |p| {
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 1
    });
    assert!(!ready(&crasher));
    let log = std::fs::read_dir(c.nodes[0].state.join("logs"))
        .expect("logs")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains("_crasher_"))
        .map(|e| std::fs::read_to_string(e.path().join("main.log")).unwrap_or_default())
        .unwrap_or_default();
    assert!(
        log.contains("crashing"),
        "container output is logged: {log:?}"
    );

    // An agent restart adopts the running pods: same address, no restart.
    let before = c.pod("web-1").expect("web-1");
    drop(c.nodes[0].agent.take());
    start_agent(&mut c.nodes[0]);
    std::thread::sleep(Duration::from_secs(2));
    let after = c.wait_pod("web-1", "stayed Ready", ready);
    assert_eq!(after["status"]["podIP"], before["status"]["podIP"]);
    assert_eq!(
        after["status"]["containerStatuses"][0]["restartCount"],
        before["status"]["containerStatuses"][0]["restartCount"]
    );
    assert_eq!(after["status"]["startTime"], before["status"]["startTime"]);

    // Deletion: processes stopped, sandbox and IP released.
    assert!(c.rudderctl(&["delete", "pod", "web-1"]).status.success());
    let prefix = c.nodes[0].prefix.clone();
    let mut left = Vec::new();
    for _ in 0..100 {
        left = std::fs::read_dir("/run/netns")
            .expect("netns dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        if left.len() == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        left.len(),
        1,
        "only the crasher's sandbox is left on node1: {left:?}"
    );
    let ipam = c.scratch.join("ipam-1/pods");
    let leases: Vec<String> = std::fs::read_dir(&ipam)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !leases.contains(&ip1),
        "web-1's address is released: {leases:?}"
    );
}
