//! `cargo xtask demo`: the whole path on the embedded defaults, in test
//! hosts (network namespaces on a private 198.18.0.0/24 underlay, RFC 2544 space):
//!
//! - `rudder-controlplane` (single node, on-disk data dir) on host `cp`;
//! - two node hosts running `rudder-agent serve --controlplane`, each with
//!   rudder-cni as its CNI plugin;
//! - `rudderctl apply -f examples/web.yaml` from an outside host `client`:
//!   a Deployment of three HTTP responders, a ClusterIP and a NodePort
//!   Service; controllers, scheduler and agents take it from there;
//! - requests through the ClusterIP from a pod and through each node's
//!   NodePort from the client, answered by different pods.
//!
//! The cluster is left running; `cargo xtask demo --down` removes it (and
//! any later test run sweeps it too, as its creator is gone).

use std::{collections::BTreeMap, process::Command, time::Duration};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cluster::{self, ClusterSpec};

/// Removes the demo cluster (it is a `cargo xtask cluster`: namespaces,
/// processes, pins, files).
pub fn down() -> Result<()> {
    cluster::down()?;
    println!("demo: removed");
    Ok(())
}

/// Brings the demo cluster up and exercises it.
pub fn run() -> Result<()> {
    println!(
        "\n== test hosts on a private underlay (198.18.0.0/24): a control plane, two nodes, a client"
    );
    let c = cluster::up(ClusterSpec {
        nodes: 2,
        control_planes: 1,
    })?;
    let cp = c.host("cp")?;
    let (node1, node2) = (c.host("node1")?, c.host("node2")?);
    println!(
        "   cp = {}, node1 = {}, node2 = {}, client = {}",
        cp.addr,
        node1.addr,
        node2.addr,
        c.host("client")?.addr
    );
    println!(
        "   rudder-controlplane on cp (gRPC {}, HTTP https://{}:7401; TLS, admin credentials in $KUBECONFIG); rudder-agent serve on node1 and node2 \
         (pods 10.244.1.0/24, 10.244.2.0/24; CNI: rudder-cni); both nodes Ready",
        c.server, cp.addr
    );

    println!("\n== rudderctl apply -f examples/web.yaml (from the client host)");
    let manifest = crate::shell::workspace_root()
        .join("examples/web.yaml")
        .display()
        .to_string();
    for line in c.rudderctl(&["apply", "-f", &manifest])?.lines() {
        println!("   {line}");
    }

    println!("\n== waiting for the pods to be scheduled, started and Ready");
    let mut pods = Vec::new();
    for _ in 0..300 {
        let list: Value =
            serde_json::from_str(&c.rudderctl(&["get", "pods", "-l", "app=web", "-o", "json"])?)
                .unwrap_or(Value::Null);
        pods = list["items"].as_array().cloned().unwrap_or_default();
        if pods.len() == 3 && pods.iter().all(ready) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !(pods.len() == 3 && pods.iter().all(ready)) {
        bail!(
            "the pods did not become Ready; logs are in {}",
            c.scratch.display()
        );
    }
    // Endpoints follow readiness in batches: wait until they list all three.
    for _ in 0..100 {
        let ep: Value = serde_json::from_str(
            &c.rudderctl(&["get", "endpoints", "web", "-o", "json"])
                .unwrap_or_default(),
        )
        .unwrap_or(Value::Null);
        let ready: usize = ep["subsets"].as_array().map_or(0, |s| {
            s.iter()
                .map(|s| s["addresses"].as_array().map_or(0, Vec::len))
                .sum()
        });
        if ready == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for line in c.rudderctl(&["get", "pods", "-o", "wide"])?.lines() {
        println!("   {line}");
    }
    let svc: Value = serde_json::from_str(&c.rudderctl(&["get", "service", "web", "-o", "json"])?)?;
    let cluster_ip = svc["spec"]["clusterIP"]
        .as_str()
        .context("no ClusterIP")?
        .to_owned();

    let app = c.bin.join("rudder-testapp").display().to_string();
    let sandbox = std::fs::read_dir("/run/netns")?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // Sandboxes are `<node namespace>-<uid>`: the trailing dash keeps
        // the node's own namespace out (the node is no pod; its traffic to a
        // ClusterIP is not translated without the socket hook).
        .find(|n| n.starts_with(&format!("{}-", node1.netns)))
        .context("no pod sandbox on node1")?;
    println!("\n== ClusterIP {cluster_ip}:80 from a pod on node1 (12 new connections)");
    // Agents program what the control plane publishes a moment later: the
    // client retries each connection for up to 10 s.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &sandbox,
            &app,
            "http-get",
            "--to",
            &format!("{cluster_ip}:80"),
            "--count",
            "12",
            "--retry-ms",
            "10000",
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "requests through the ClusterIP failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or_default()
        );
    }
    print_answers(&String::from_utf8_lossy(&out.stdout));
    for node in [node1, node2] {
        println!(
            "\n== NodePort {}:30080 from the client host (12 new connections)",
            node.addr
        );
        let args: Vec<String> = [
            app.as_str(),
            "http-get",
            "--to",
            &format!("{}:30080", node.addr),
            "--count",
            "12",
            "--retry-ms",
            "10000",
        ]
        .map(str::to_owned)
        .to_vec();
        let out = c.command("client", &args)?.output()?;
        if !out.status.success() {
            bail!(
                "requests through the NodePort of {} failed: {}",
                node.label,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        print_answers(&String::from_utf8_lossy(&out.stdout));
    }
    let rules = c
        .command("node1", &["iptables-save".to_owned()])?
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    println!(
        "\n== iptables rules on node1: {}",
        rules.lines().filter(|l| l.starts_with('-')).count()
    );

    let server = &c.server;
    println!(
        "\n== the cluster keeps running. Use it from the client host, e.g.:\n   \
         cargo xtask cluster exec client -- rudderctl --server {server} get deploy,rs,pods,svc,ep -o wide\n   \
         cargo xtask cluster exec client -- rudderctl --server {server} scale deployment/web --replicas 5\n   \
         cargo xtask cluster exec client -- rudderctl --server {server} logs <pod>\n   \
         cargo xtask cluster exec client -- rudderctl --server {server} describe deployment web   (ends with its Events)\n   \
         logs of the control plane and agents: {}\n   \
         tear it down: cargo xtask demo --down (or cargo xtask cluster down)",
        c.scratch.display()
    );
    println!("demo: done");
    Ok(())
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn print_answers(body: &str) {
    let mut by_pod: BTreeMap<&str, usize> = BTreeMap::new();
    for line in body.lines() {
        if let Some(pod) = line
            .strip_prefix("pod=")
            .and_then(|r| r.split_whitespace().next())
        {
            *by_pod.entry(pod).or_default() += 1;
        }
    }
    if let Some(first) = body.lines().next() {
        println!("   first answer: {first}");
    }
    let counts: Vec<String> = by_pod
        .iter()
        .map(|(pod, n)| format!("{pod} x{n}"))
        .collect();
    println!("   answered by: {}", counts.join(", "));
}
