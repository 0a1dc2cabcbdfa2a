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

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use netns::{Host, TestNetwork};
use serde_json::Value;

use crate::{build_ebpf, shell};

/// Where demo clusters keep their files; `--down` removes them.
const SCRATCH_GLOB: &str = "rudder-demo-";

/// Removes every demo cluster (namespaces, processes, pins, files).
pub fn down() -> Result<()> {
    netns::sweep_stale();
    for entry in std::fs::read_dir(std::env::temp_dir())?.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(SCRATCH_GLOB)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    println!("demo: removed");
    Ok(())
}

/// Brings the demo cluster up and exercises it.
pub fn run() -> Result<()> {
    if !netns::have_privileges() {
        bail!("the demo creates network namespaces and loads eBPF programs: run it as root");
    }
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
    let bin = shell::workspace_root().join("target/debug");
    let scratch = std::env::temp_dir().join(format!("{SCRATCH_GLOB}{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;

    println!("\n== test hosts on a private underlay (198.18.0.0/24)");
    let mut net = TestNetwork::new("demo").context("creating the test network")?;
    let cp = net.add_host("cp")?;
    let nodes = [net.add_host("node1")?, net.add_host("node2")?];
    let client = net.add_host("client")?;
    let server = format!("http://{}:7400", cp.addr);
    println!(
        "   cp = {}, node1 = {}, node2 = {}, client = {}",
        cp.addr, nodes[0].addr, nodes[1].addr, client.addr
    );

    background(
        &cp,
        &[
            &bin.join("rudder-controlplane").display().to_string(),
            "--data-dir",
            &scratch.join("cp").display().to_string(),
            "--listen",
            &format!("{}:7400", cp.addr),
            "--http-listen",
            &format!("{}:7401", cp.addr),
        ],
        &scratch.join("controlplane.log"),
    )?;
    println!(
        "   rudder-controlplane on cp (gRPC {server}, HTTP http://{}:7401)",
        cp.addr
    );

    let cni_bin = scratch.join("cni-bin");
    std::fs::create_dir_all(&cni_bin)?;
    std::os::unix::fs::symlink(bin.join("rudder-cni"), cni_bin.join("rudder-cni"))?;
    let mut names = Vec::new();
    // The nodes' pins live under a directory named after this run, so
    // `--down` (or any later run) sweeps them.
    let pins = net.bpffs_dir("pins");
    for (i, node) in nodes.iter().enumerate() {
        let n = i + 1;
        node.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let netd = scratch.join(format!("net.d-{n}"));
        std::fs::create_dir_all(&netd)?;
        let conflist = serde_json::json!({"cniVersion": "1.1.0", "name": "pods", "plugins": [{
            "type": "rudder-cni", "bridge": "cni0",
            "ipam": {"subnet": format!("10.244.{n}.0/24"), "dataDir": scratch.join(format!("ipam-{n}"))},
            "bandwidthDir": scratch.join(format!("bandwidth-{n}"))}]});
        std::fs::write(netd.join("10-pods.conflist"), conflist.to_string())?;
        let name = node.label.clone();
        // Started from here with --netns: the agent enters the node's
        // namespace itself (setns) and keeps the machine's bpffs.
        let mut cmd = Command::new(bin.join("rudder-agent"));
        cmd.args([
            "--netns",
            node.name(),
            "serve",
            "--node",
            &name,
            "--controlplane",
            &server,
        ])
        .args([
            "--pod-cidr",
            &format!("10.244.{n}.0/24"),
            "--metrics-listen",
            "0.0.0.0:10250",
        ])
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
        names.push(name);
    }
    println!(
        "   rudder-agent serve on node1 and node2 (pods 10.244.1.0/24, 10.244.2.0/24; CNI: rudder-cni)"
    );

    let rudderctl = bin.join("rudderctl").display().to_string();
    let ctl = |args: &[&str]| -> Result<String> {
        let mut full = vec![rudderctl.as_str()];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--server", &server]);
        Ok(client.run(&full)?)
    };
    // Both nodes registered first, so the scheduler can spread the pods.
    for _ in 0..100 {
        let nodes = ctl(&["get", "nodes"]).unwrap_or_default();
        if names.iter().all(|n| {
            nodes
                .lines()
                .any(|l| l.starts_with(n.as_str()) && l.contains("Ready"))
        }) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("\n== rudderctl apply -f examples/web.yaml (from the client host)");
    let manifest = shell::workspace_root()
        .join("examples/web.yaml")
        .display()
        .to_string();
    let mut applied = None;
    for _ in 0..100 {
        if let Ok(out) = ctl(&["apply", "-f", &manifest]) {
            applied = Some(out);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for line in applied.context("the control plane never answered")?.lines() {
        println!("   {line}");
    }

    println!("\n== waiting for the pods to be scheduled, started and Ready");
    let mut pods = Vec::new();
    for _ in 0..300 {
        let list: Value =
            serde_json::from_str(&ctl(&["get", "pods", "-l", "app=web", "-o", "json"])?)
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
            scratch.display()
        );
    }
    // Endpoints follow readiness in batches: wait until they list all three.
    for _ in 0..100 {
        let ep: Value = serde_json::from_str(
            &ctl(&["get", "endpoints", "web", "-o", "json"]).unwrap_or_default(),
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
    // ... and give the agents a moment to program them.
    std::thread::sleep(Duration::from_millis(500));
    for line in ctl(&["get", "pods", "-o", "wide"])?.lines() {
        println!("   {line}");
    }
    let svc: Value = serde_json::from_str(&ctl(&["get", "service", "web", "-o", "json"])?)?;
    let cluster_ip = svc["spec"]["clusterIP"]
        .as_str()
        .context("no ClusterIP")?
        .to_owned();

    let app = bin.join("rudder-testapp").display().to_string();
    let sandbox = std::fs::read_dir("/run/netns")?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // Sandboxes are `<node namespace>-<uid>`: the trailing dash keeps
        // the node's own namespace out (the node is no pod; its traffic to a
        // ClusterIP is not translated without the socket hook).
        .find(|n| n.starts_with(&format!("{}-node1-", net.prefix())))
        .context("no pod sandbox on node1")?;
    println!("\n== ClusterIP {cluster_ip}:80 from a pod on node1 (12 new connections)");
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
    for node in &nodes {
        println!(
            "\n== NodePort {}:30080 from the client host (12 new connections)",
            node.addr
        );
        print_answers(&client.run(&[
            &app,
            "http-get",
            "--to",
            &format!("{}:30080", node.addr),
            "--count",
            "12",
            "--retry-ms",
            "10000",
        ])?);
    }
    let rules = nodes[0].run(&["iptables-save"]).unwrap_or_default();
    println!(
        "\n== iptables rules on node1: {}",
        rules.lines().filter(|l| l.starts_with('-')).count()
    );

    // Leave it running: forget the handles that would tear it down.
    let client_ns = client.name().to_owned();
    std::mem::forget(net);
    println!(
        "\n== the cluster keeps running. Use it from the client host, e.g.:\n   \
         ip netns exec {client_ns} {rudderctl} --server {server} get deploy,rs,pods,svc,ep -o wide\n   \
         ip netns exec {client_ns} {rudderctl} --server {server} scale deployment/web --replicas 5\n   \
         ip netns exec {client_ns} {rudderctl} --server {server} logs <pod>\n   \
         ip netns exec {client_ns} {rudderctl} --server {server} describe deployment web   (ends with its Events)\n   \
         logs of the control plane and agents: {}\n   \
         tear it down: cargo xtask demo --down",
        scratch.display()
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

/// Starts a long-running program inside `host`, output to `log`; it
/// outlives this process.
fn background(host: &Host, args: &[&str], log: &Path) -> Result<()> {
    let mut cmd = host.command(args[0]);
    cmd.args(&args[1..]);
    spawn_logged(cmd, log)
}

fn spawn_logged(mut cmd: Command, log: &Path) -> Result<()> {
    let file = std::fs::File::create(log)?;
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .env("NO_COLOR", "1");
    // Not waited for: the demo leaves the cluster running.
    std::mem::forget(
        cmd.spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?,
    );
    Ok(())
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
