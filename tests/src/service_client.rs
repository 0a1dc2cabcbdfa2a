//! What a user's client sees of a Service while the cluster changes: the
//! pieces the faults tests and `cargo xtask bench faults` share. A
//! [`ServiceLoop`] runs `rudder-testapp http-loop` in a pod's sandbox
//! (one new connection every 20 ms, none retried); the waits poll the API
//! (bounded) for pods and Endpoints.

use std::{collections::BTreeSet, path::PathBuf, process::Child, time::Duration};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::control::{Cluster, ClusterOptions};

/// The app the faults tests and benchmark serve: a Deployment `web` of
/// three HTTP responders naming their pod (readiness-probed every second,
/// 2 s grace period, draining 1.5 s after SIGTERM as a well-behaved
/// server does while its endpoints stop sending it new connections), its ClusterIP Service `web`, and a pod `client` on
/// node1 the client loops run in.
const WEB_APP: &str = r#"
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
        command: ["APP", "http", "--listen", "0.0.0.0:8080", "--name", "$(POD_NAME)", "--drain-ms", "1500"]
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

/// Builds a cluster and applies the web app to it (see [`WEB_APP`]).
///
/// # Errors
/// When the cluster cannot be built.
pub fn web_cluster(options: &ClusterOptions) -> Result<Cluster> {
    let c = Cluster::build(options)?;
    let testapp = c.program("rudder-testapp").display().to_string();
    c.apply(
        &WEB_APP
            .replace("APP", &testapp)
            .replace("NODE1", &c.nodes[0].name),
    );
    Ok(c)
}

/// Whether a pod's Ready condition is True.
pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// `rudderctl ARGS -o json` (ARGS include `-o json`) parsed, or null.
pub fn json(c: &Cluster, args: &[&str]) -> Value {
    serde_json::from_slice(&c.rudderctl(args).stdout).unwrap_or(Value::Null)
}

/// Addresses of the pods labelled `app=<app>` that are Ready and not being deleted.
pub fn ready_pod_ips(c: &Cluster, app: &str) -> BTreeSet<String> {
    json(
        c,
        &["get", "pods", "-l", &format!("app={app}"), "-o", "json"],
    )["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| pod_ready(p) && p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_owned))
        .collect()
}

/// Ready addresses in the Endpoints named `service`.
pub fn endpoint_ips(c: &Cluster, service: &str) -> BTreeSet<String> {
    json(c, &["get", "endpoints", service, "-o", "json"])["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(str::to_owned))
        .collect()
}

/// Waits (up to `limit`) until exactly `count` pods of `app` are Ready and
/// the Endpoints of the same name list exactly them.
///
/// # Errors
/// When they do not in time, with what was seen last.
pub fn wait_for_replicas(c: &Cluster, app: &str, count: usize, limit: Duration) -> Result<()> {
    let started = std::time::Instant::now();
    let (mut pods, mut endpoints) = (BTreeSet::new(), BTreeSet::new());
    while started.elapsed() < limit {
        pods = ready_pod_ips(c, app);
        endpoints = endpoint_ips(c, app);
        if pods.len() == count && endpoints == pods {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("never {count} Ready {app} pods in the Endpoints: pods {pods:?}, endpoints {endpoints:?}")
}

/// The sandbox of the pod `name` on node `node` (the namespace holding its address).
///
/// # Errors
/// When the pod has no address or no sandbox holds it.
pub fn pod_sandbox(c: &Cluster, node: usize, name: &str) -> Result<netns::Netns> {
    let pod = c.wait_pod(name, "got an address", |p| {
        p["status"]["podIP"].as_str().is_some()
    });
    let ip = pod["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    std::fs::read_dir("/run/netns")?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&c.nodes[node].prefix))
        .map(netns::Netns::existing)
        .find(|ns| {
            ns.ip(&["-4", "-o", "addr", "show"])
                .is_ok_and(|addrs| addrs.contains(&format!(" {ip}/")))
        })
        .with_context(|| format!("no sandbox on node{} holds {name}'s {ip}", node + 1))
}

/// The ClusterIP:port of a Service's first port.
///
/// # Errors
/// When the Service has no ClusterIP yet.
pub fn cluster_ip(c: &Cluster, service: &str) -> Result<String> {
    let svc = json(c, &["get", "service", service, "-o", "json"]);
    let ip = svc["spec"]["clusterIP"]
        .as_str()
        .with_context(|| format!("service {service} has no ClusterIP"))?;
    let port = svc["spec"]["ports"][0]["port"].as_i64().unwrap_or(80);
    Ok(format!("{ip}:{port}"))
}

/// A client loop through a Service from a pod's sandbox, until
/// [`ServiceLoop::finish`] (it stops by itself after `limit`).
pub struct ServiceLoop {
    child: Child,
    stop: PathBuf,
    started: std::time::Instant,
}

/// What a [`ServiceLoop`] saw.
#[derive(Debug)]
pub struct LoopSummary {
    /// Requests made.
    pub requests: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Milliseconds from the loop's start to its last failure.
    pub last_failure_ms: Option<u64>,
    /// Pods that answered.
    pub responders: BTreeSet<String>,
    /// The whole JSON summary, for messages.
    pub raw: Value,
}

impl ServiceLoop {
    /// Starts `http-loop --to target` in `sandbox`.
    ///
    /// # Errors
    /// When the client cannot be started.
    pub fn start(
        c: &Cluster,
        sandbox: &netns::Netns,
        target: &str,
        limit: Duration,
    ) -> Result<Self> {
        let scratch = &c.scratch;
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stop = scratch.join(format!("stop-loop-{seq}"));
        let child = sandbox
            .command(&c.program("rudder-testapp").display().to_string())
            .args(["http-loop", "--to", target, "--interval-ms", "20"])
            .args(["--timeout-ms", "2000"])
            .args(["--duration-ms", &limit.as_millis().to_string()])
            .arg("--stop-file")
            .arg(&stop)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting the client loop")?;
        Ok(Self {
            child,
            stop,
            started: std::time::Instant::now(),
        })
    }

    /// Time since the loop started (to relate failures to events).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops the loop and reads its summary.
    ///
    /// # Errors
    /// When the loop did not print one.
    pub fn finish(self) -> Result<LoopSummary> {
        std::fs::write(&self.stop, "")?;
        let out = self.child.wait_with_output()?;
        let raw: Value = serde_json::from_slice(&out.stdout).context("client loop summary")?;
        let _ = std::fs::remove_file(&self.stop);
        Ok(LoopSummary {
            requests: raw["requests"].as_u64().unwrap_or(0),
            failed: raw["failed"].as_u64().unwrap_or(0),
            last_failure_ms: raw["last_failure_ms"].as_u64(),
            responders: raw["responders"]
                .as_object()
                .map(|r| r.keys().cloned().collect())
                .unwrap_or_default(),
            raw,
        })
    }
}
