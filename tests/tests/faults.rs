//! The cluster keeps serving while it changes, judged as a user judges
//! Kubernetes: a client loop runs through the Service the whole time, one
//! new connection every 20 ms and none retried, and every failed request
//! counts. Over a control plane and three nodes:
//! - scaling a Deployment 3 -> 6 fails no request (scaling down is not
//!   here yet: without graceful deletion a removed pod stops before the
//!   nodes stop sending it new connections, and one or two of them fail);
//! - kill -9 of an agent breaks no established connection, new ones keep
//!   working, and the restarted agent adopts its pods.

use std::{collections::BTreeSet, path::PathBuf, process::Child, time::Duration};

use rudder_tests::control::{Cluster, ClusterOptions, bin, start_agent};
use serde_json::Value;

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        command: ["APP", "http", "--listen", "0.0.0.0:8080", "--name", "$(POD_NAME)"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: NODE1
  containers:
  - name: main
    command: ["sleep", "600"]
"#;

fn cluster(label: &str) -> Cluster {
    let mut options = ClusterOptions::for_tests(label);
    options.nodes = 3;
    options.chain_tuning_on_node2 = false;
    options.pod_cgroups_on_node1 = false;
    options.log_to_files = true;
    let c = Cluster::build(&options).expect("test cluster");
    c.apply(
        &APP.replace("APP", &bin("rudder-testapp"))
            .replace("NODE1", &c.nodes[0].name),
    );
    c
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn json(c: &Cluster, args: &[&str]) -> Value {
    serde_json::from_slice(&c.rudderctl(args).stdout).unwrap_or(Value::Null)
}

/// Addresses of the web pods that are Ready.
fn ready_web_ips(c: &Cluster) -> BTreeSet<String> {
    json(c, &["get", "pods", "-l", "app=web", "-o", "json"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| ready(p) && p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_owned))
        .collect()
}

/// Ready addresses in the Service's Endpoints.
fn endpoint_ips(c: &Cluster) -> BTreeSet<String> {
    json(c, &["get", "endpoints", "web", "-o", "json"])["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(str::to_owned))
        .collect()
}

/// Waits (bounded) until exactly `count` web pods are Ready and the
/// Endpoints list exactly them.
fn wait_for_replicas(c: &Cluster, count: usize) {
    let (mut pods, mut endpoints) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..600 {
        pods = ready_web_ips(c);
        endpoints = endpoint_ips(c);
        if pods.len() == count && endpoints == pods {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("never {count} Ready web pods in the Endpoints: pods {pods:?}, endpoints {endpoints:?}");
}

/// The client pod's sandbox (its namespace holds the client pod's address).
fn client_sandbox(c: &Cluster) -> netns::Netns {
    let pod = c.wait_pod("client", "Running", |p| {
        p["status"]["podIP"].as_str().is_some()
    });
    let ip = pod["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    std::fs::read_dir("/run/netns")
        .expect("netns dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&c.nodes[0].prefix))
        .map(netns::Netns::existing)
        .find(|ns| {
            ns.ip(&["-4", "-o", "addr", "show"])
                .is_ok_and(|addrs| addrs.contains(&format!(" {ip}/")))
        })
        .expect("the client pod's sandbox")
}

/// A client loop through the Service from the client pod, running until
/// [`ServiceLoop::finish`] (bounded at 120 s by itself).
struct ServiceLoop {
    child: Child,
    stop: PathBuf,
}

impl ServiceLoop {
    fn start(c: &Cluster, target: &str) -> Self {
        let stop = c.scratch.join(format!("stop-{}", std::process::id()));
        let child = client_sandbox(c)
            .command(&bin("rudder-testapp"))
            .args(["http-loop", "--to", target, "--interval-ms", "20"])
            .args(["--timeout-ms", "2000", "--duration-ms", "120000"])
            .arg("--stop-file")
            .arg(&stop)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("client loop");
        Self { child, stop }
    }

    /// Stops the loop; its summary.
    fn finish(self) -> Value {
        std::fs::write(&self.stop, "").expect("stop file");
        let out = self.child.wait_with_output().expect("client loop ends");
        serde_json::from_slice(&out.stdout).expect("client loop summary")
    }
}

fn cluster_ip(c: &Cluster) -> String {
    let svc = json(c, &["get", "service", "web", "-o", "json"]);
    format!(
        "{}:80",
        svc["spec"]["clusterIP"].as_str().expect("a ClusterIP")
    )
}

#[test]
fn scaling_a_deployment_up_fails_no_request() {
    rudder_tests::require_root();
    let c = cluster("fscale");
    wait_for_replicas(&c, 3);
    let client = ServiceLoop::start(&c, &cluster_ip(&c));
    let scaled = c.rudderctl(&["scale", "deployment/web", "--replicas", "6"]);
    assert!(scaled.status.success(), "scale to 6");
    wait_for_replicas(&c, 6);
    // New pods join the Service: the loop goes on until one of them answered.
    let new_pods: BTreeSet<String> =
        json(&c, &["get", "pods", "-l", "app=web", "-o", "json"])["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
    assert_eq!(new_pods.len(), 6);
    let summary = client.finish();
    let answered: BTreeSet<&str> = summary["responders"]
        .as_object()
        .map(|r| r.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert!(
        answered.len() >= 3 && answered.iter().all(|p| new_pods.contains(*p)),
        "the loop was answered by the Deployment's pods: {summary}"
    );
    assert_eq!(
        summary["failed"], 0,
        "no request failed while scaling 3 -> 6: {summary}"
    );
}

#[test]
fn killing_an_agent_breaks_no_connection_and_it_adopts_its_pods() {
    rudder_tests::require_root();
    let mut c = cluster("fagent");
    wait_for_replicas(&c, 3);
    let target = cluster_ip(&c);
    // An established connection, kept alive across the kill: 40 requests
    // 100 ms apart on one connection.
    let session = client_sandbox(&c)
        .command(&bin("rudder-testapp"))
        .args(["http-get", "--to", &target, "--keep-alive", "--count", "40"])
        .args(["--interval-ms", "100", "--retry-ms", "5000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("keep-alive session");
    let client = ServiceLoop::start(&c, &target);
    let before = ready_web_ips(&c);
    // kill -9 of node1's agent (it holds the client pod and web pods).
    // Dropping the handle SIGKILLs the process.
    drop(c.nodes[0].agent.take().expect("node1's agent"));
    start_agent(&mut c.nodes[0]);
    let out = session.wait_with_output().expect("session ends");
    assert!(
        out.status.success(),
        "the established connection survived the kill: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        40,
        "every request of the kept-alive connection was answered"
    );
    // The restarted agent adopts its pods: the same pods stay Ready.
    wait_for_replicas(&c, 3);
    assert_eq!(ready_web_ips(&c), before, "the same pods, adopted");
    let summary = client.finish();
    assert_eq!(
        summary["failed"], 0,
        "new connections kept working through the agent's kill and restart: {summary}"
    );
}
