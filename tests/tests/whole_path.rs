//! The whole path, as a new user walks it: examples/web.yaml (a Deployment
//! of three HTTP responders, a ClusterIP and a NodePort Service) applied to
//! the control plane; controllers make ReplicaSet and pods, the scheduler
//! spreads them over both nodes, agents run them, Endpoints follow their
//! readiness, and the Services answer from different pods: through the
//! ClusterIP from a pod, through the NodePort from an outside host.

use std::collections::BTreeSet;

use rudder_tests::control::{Cluster, bin, start_agent};
use serde_json::Value;

fn pods(c: &Cluster) -> Vec<Value> {
    let out = c.rudderctl(&["get", "pods", "-l", "app=web", "-o", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    list["items"].as_array().cloned().unwrap_or_default()
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn names(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter_map(|l| {
            l.strip_prefix("pod=")
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned)
        })
        .collect()
}

/// Applies examples/web.yaml and waits (bounded) for its three pods to be Ready.
fn run_web_example(c: &Cluster) -> Vec<Value> {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/web.yaml"))
            .expect("examples/web.yaml");
    c.apply(&manifest);
    let mut running = Vec::new();
    for _ in 0..300 {
        running = pods(c);
        if running.len() == 3 && running.iter().all(ready) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        running.len() == 3 && running.iter().all(ready),
        "three web pods Ready: {running:#?}"
    );
    running
}

/// The ClusterIP of Service `name`.
fn cluster_ip(c: &Cluster, name: &str) -> String {
    let svc = c.rudderctl(&["get", "service", name, "-o", "json"]);
    let svc: Value = serde_json::from_slice(&svc.stdout).expect("service json");
    svc["spec"]["clusterIP"]
        .as_str()
        .expect("a ClusterIP was allocated")
        .to_owned()
}

/// The name of a pod sandbox on node1.
fn node1_sandbox(c: &Cluster) -> String {
    std::fs::read_dir("/run/netns")
        .expect("netns")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(&c.nodes[0].prefix))
        .expect("a pod sandbox on node1")
}

#[test]
fn examples_web_yaml_is_served_by_pods_on_both_nodes() {
    rudder_tests::require_root();
    let c = Cluster::new("whole");
    let running = run_web_example(&c);
    let nodes: BTreeSet<&str> = running
        .iter()
        .filter_map(|p| p["spec"]["nodeName"].as_str())
        .collect();
    assert_eq!(
        nodes.len(),
        2,
        "the scheduler spreads the Deployment over both nodes"
    );

    // Endpoints follow readiness in batches: wait until they list all three.
    let pod_ips: BTreeSet<String> = running
        .iter()
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_owned))
        .collect();
    let mut endpoint_ips = BTreeSet::new();
    for _ in 0..100 {
        let ep: Value = serde_json::from_slice(
            &c.rudderctl(&["get", "endpoints", "web", "-o", "json"])
                .stdout,
        )
        .unwrap_or(Value::Null);
        endpoint_ips = ep["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["ip"].as_str().map(str::to_owned))
            .collect();
        if endpoint_ips == pod_ips {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        endpoint_ips, pod_ips,
        "the Endpoints list every Ready pod's address"
    );
    let cluster_ip = cluster_ip(&c, "web");

    let app = bin("rudder-testapp");
    // From a pod: the first web pod's sandbox on node1.
    let sandbox = node1_sandbox(&c);
    let all: BTreeSet<String> = running
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    // Agents program what the control plane publishes a moment later:
    // retry (bounded) until every pod has answered.
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &sandbox,
                &app,
                "http-get",
                "--to",
                &format!("{cluster_ip}:80"),
                "--count",
                "30",
                "--retry-ms",
                "15000",
            ])
            .output()
            .expect("client runs");
        if !out.status.success() {
            eprintln!(
                "ClusterIP attempt failed (retrying): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        seen.extend(names(&String::from_utf8_lossy(&out.stdout)));
        if seen == all {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(seen, all, "the ClusterIP answers from every pod");

    // Through each node's NodePort from outside (externalTrafficPolicy
    // Cluster): every pod answers, wherever it runs.
    for node in &c.nodes {
        let mut seen = BTreeSet::new();
        for _ in 0..20 {
            let body = c
                .client
                .run(&[
                    &app,
                    "http-get",
                    "--to",
                    &format!("{}:30080", node.host.addr),
                    "--count",
                    "30",
                    "--retry-ms",
                    "15000",
                ])
                .expect("NodePort answers");
            seen.extend(names(&body));
            if seen == all {
                break;
            }
        }
        assert_eq!(
            seen, all,
            "NodePort of {} answers from every pod",
            node.host.label
        );
    }
}

/// Kills a child process when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An upgrade as `install.sh --restart` does it: the binaries replaced by
/// copies at a new path, then the control plane and both agents restarted
/// from there. A keep-alive connection from a pod through the ClusterIP is
/// answered throughout, the pods keep running, and the store keeps its
/// objects.
#[test]
fn an_upgrade_restarting_every_process_keeps_connections_and_the_store() {
    rudder_tests::require_root();
    let mut c = Cluster::new("upg");
    let before = run_web_example(&c);
    let uids = |list: &[Value]| -> BTreeSet<String> {
        list.iter()
            .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
            .collect()
    };
    let cluster_ip = cluster_ip(&c, "web");
    let sandbox = node1_sandbox(&c);
    let requests = 80;
    let session = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &sandbox,
            &bin("rudder-testapp"),
            "http-get",
        ])
        .args(["--to", &format!("{cluster_ip}:80"), "--keep-alive"])
        .args([
            "--count",
            &requests.to_string(),
            "--interval-ms",
            "100",
            "--retry-ms",
            "3000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("client runs");
    let mut session = KillOnDrop(session);

    let new_bin = c.scratch.join("upgraded-bin");
    std::fs::create_dir_all(&new_bin).expect("new bin dir");
    for program in ["rudder-controlplane", "rudder-agent"] {
        std::fs::copy(c.program(program), new_bin.join(program)).expect("copy binary");
    }
    c.restart_controlplane(&new_bin.join("rudder-controlplane"))
        .expect("control plane restarted");
    for node in &mut c.nodes {
        drop(node.agent.take());
        node.set_program(new_bin.join("rudder-agent"));
        start_agent(node);
        let pid = node
            .agent
            .as_ref()
            .and_then(netns::HostProcess::pid)
            .expect("agent pid");
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("agent exe");
        assert!(
            exe.starts_with(&new_bin),
            "{} runs {}",
            node.name,
            exe.display()
        );
    }

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while session.0.try_wait().expect("client state").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the client did not finish in 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read as _;
    if let Some(mut stdout) = session.0.stdout.take() {
        stdout.read_to_string(&mut out).expect("client output");
    }
    if let Some(mut stderr) = session.0.stderr.take() {
        stderr.read_to_string(&mut err).expect("client errors");
    }
    let answered = out.lines().filter(|l| l.starts_with("pod=")).count();
    assert_eq!(
        answered, requests,
        "every request answered across the upgrade; stderr: {err}"
    );
    let after = pods(&c);
    assert_eq!(
        uids(&after),
        uids(&before),
        "the same pods, kept by the store and the agents"
    );
    assert!(
        after.iter().all(ready),
        "still Ready after the upgrade: {after:#?}"
    );
}
