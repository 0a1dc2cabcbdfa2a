//! `cargo xtask demo`: a two-node cluster of test hosts whose Services are
//! load-balanced by rudder's eBPF dataplane, exercised end to end:
//!
//! - two node hosts and an outside client on a private underlay
//!   (192.0.2.0/24), each node with a pod bridge and three pods running an
//!   HTTP responder that names its pod;
//! - `rudder-agent serve` on each node, fed a services file with a
//!   ClusterIP + NodePort Service over the six pods;
//! - requests through the ClusterIP from a pod and through the NodePort of
//!   each node from the outside client, then the agents' own view
//!   (`rudderctl dataplane services`, `/metrics`).
//!
//! Everything it creates is removed when it ends (also on error); a demo
//! killed half-way is swept by the next run.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use netns::{Host, HostProcess, Netns, TestNetwork};

use crate::{build_ebpf, shell};

/// Runs the demo end to end.
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
        "rudder-testapp",
    ]))?;
    let bin = shell::workspace_root().join("target/debug");
    let app = bin.join("rudder-testapp").display().to_string();

    println!("\n== two nodes and an outside client on a private underlay (192.0.2.0/24)");
    let mut net = TestNetwork::new("demo").context("creating the test network")?;
    let nodes = [net.add_host("node1")?, net.add_host("node2")?];
    let client = net.add_host("client")?;
    for (i, node) in nodes.iter().enumerate() {
        let n = i + 1;
        node.ip(&["link", "add", "cni0", "type", "bridge"])?;
        node.ip(&["addr", "add", &format!("10.244.{n}.1/24"), "dev", "cni0"])?;
        node.ip(&["link", "set", "cni0", "up"])?;
        node.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let other = &nodes[1 - i];
        node.ip(&[
            "route",
            "add",
            &format!("10.244.{}.0/24", 2 - i),
            "via",
            &other.addr.to_string(),
        ])?;
        println!("   node{n} = {} (pods 10.244.{n}.0/24)", node.addr);
    }
    println!("   client = {}", client.addr);

    println!("\n== six pods, each running an HTTP responder that names itself");
    let mut pods = Vec::new();
    let mut servers: Vec<HostProcess> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for k in 1..=3u8 {
            let name = format!("web-{}{}", i + 1, k);
            let pod = add_pod(&mut net, node, i + 1, k + 1, &name)?;
            servers.push(pod.netns.spawn(&[
                &app,
                "http",
                "--listen",
                "0.0.0.0:8080",
                "--name",
                &name,
            ])?);
            pods.push(pod);
        }
    }
    let tester = add_pod(&mut net, &nodes[0], 1, 9, "tester")?;
    for pod in &pods {
        pod.netns.run(&[
            &app,
            "http-get",
            "--to",
            "127.0.0.1:8080",
            "--retry-ms",
            "5000",
        ])?;
        println!("   {} {} on {}", pod.name, pod.addr, pod.node);
    }

    println!("\n== rudder-agent serve on each node (Service web: 10.96.0.10:80, NodePort 30080)");
    let scratch = std::env::temp_dir().join(format!("{}-demo", net.prefix()));
    std::fs::create_dir_all(&scratch)?;
    let mut agents = Vec::new();
    let mut dirs = BTreeMap::new();
    for node in &nodes {
        let dir = net.bpffs_dir(&node.label);
        let node_name = dir
            .file_name()
            .context("bpffs dir name")?
            .to_string_lossy()
            .into_owned();
        let file = scratch.join(format!("{}.json", node.label));
        std::fs::write(&file, services_file(&pods, &node_name, &node.label))?;
        let mut cmd = std::process::Command::new(bin.join("rudder-agent"));
        cmd.args(["--netns", node.name(), "serve", "--node", &node_name])
            .arg("--bpffs-root")
            .arg(dir.parent().context("bpffs root")?)
            .arg("--services")
            .arg(&file)
            .args(["--metrics-listen", "127.0.0.1:9100"])
            .env("RUST_LOG", "warn");
        agents.push(HostProcess::start(
            cmd,
            format!("rudder-agent serve on {}", node.label),
        )?);
        dirs.insert(node.label.clone(), dir);
    }

    println!("\n== ClusterIP 10.96.0.10:80 from pod tester on node1 (12 new connections)");
    let body = tester.netns.run(&[
        &app,
        "http-get",
        "--to",
        "10.96.0.10:80",
        "--count",
        "12",
        "--retry-ms",
        "10000",
    ])?;
    print_answers(&body);
    for node in &nodes {
        println!(
            "\n== NodePort {}:30080 from the outside client (6 new connections)",
            node.addr
        );
        let body = client.run(&[
            &app,
            "http-get",
            "--to",
            &format!("{}:30080", node.addr),
            "--count",
            "6",
            "--retry-ms",
            "10000",
        ])?;
        print_answers(&body);
    }

    let node1_dir = &dirs["node1"];
    println!("\n== rudderctl dataplane services (node1's maps)");
    let out = std::process::Command::new(bin.join("rudderctl"))
        .args(["dataplane", "services", "--node"])
        .arg(node1_dir.file_name().context("name")?)
        .arg("--bpffs-root")
        .arg(node1_dir.parent().context("root")?)
        .output()?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("   {line}");
    }
    println!("\n== node1 agent metrics (excerpt of http://127.0.0.1:9100/metrics in node1)");
    let metrics = nodes[0].run(&[
        &app,
        "http-get",
        "--to",
        "127.0.0.1:9100",
        "--path",
        "/metrics",
    ])?;
    for line in metrics.lines().filter(|l| {
        l.starts_with("rudder_service_new_flows_total")
            || l.starts_with("rudder_dataplane_map_entries")
    }) {
        println!("   {line}");
    }
    let rules = nodes[0].run(&["iptables-save"]).unwrap_or_default();
    println!(
        "\n== iptables rules on node1: {}",
        rules.lines().filter(|l| l.starts_with('-')).count()
    );

    println!("\n== tearing down (agents, pods, namespaces, pins)");
    drop(agents);
    drop(servers);
    drop(net);
    let _ = std::fs::remove_dir_all(&scratch);
    println!("demo: done");
    Ok(())
}

struct Pod {
    name: String,
    netns: Netns,
    addr: String,
    node: String,
}

/// A pod: a namespace with `eth0` on `node`'s bridge, 10.244.`n`.`index`.
fn add_pod(net: &mut TestNetwork, node: &Host, n: usize, index: u8, name: &str) -> Result<Pod> {
    let netns = net.add_namespace(&format!("n{n}-{name}"))?;
    let port = format!("veth{index}");
    let addr = format!("10.244.{n}.{index}");
    node.ip(&[
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
    node.ip(&["link", "set", &port, "master", "cni0", "up"])?;
    netns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
    netns.ip(&["link", "set", "eth0", "up"])?;
    netns.ip(&["route", "add", "default", "via", &format!("10.244.{n}.1")])?;
    Ok(Pod {
        name: name.to_owned(),
        netns,
        addr,
        node: node.label.clone(),
    })
}

/// The services file for the node named `node_name` (`label` in the demo).
fn services_file(pods: &[Pod], node_name: &str, label: &str) -> String {
    let endpoints: Vec<String> = pods
        .iter()
        .map(|p| {
            let node = if p.node == label {
                node_name
            } else {
                p.node.as_str()
            };
            format!(r#"{{"ip": "{}", "node": "{node}"}}"#, p.addr)
        })
        .collect();
    format!(
        r#"{{"services": [{{"name": "web", "clusterIP": "10.96.0.10",
  "ports": [{{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}}],
  "endpoints": [{}]}}]}}"#,
        endpoints.join(", ")
    )
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
