//! `cargo xtask demo`: two node test hosts, the dataplane's packet counters
//! attached to their uplinks by `rudder-agent`, traffic between them from
//! `rudder-testapp`, and the counters read back with `rudderctl`.
//! Everything it creates is removed when it ends (also on error); a demo
//! killed half-way is swept by the next run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use netns::{Host, TestNetwork};

use crate::{build_ebpf, shell};

/// Runs the demo end to end.
pub fn run() -> Result<()> {
    if !netns::have_privileges() {
        bail!("the demo creates network namespaces and loads eBPF programs: run it as root");
    }
    build_ebpf::run()?;
    shell::run(shell::cargo().args(["build", "--quiet", "--bins"]))?;
    let bin = shell::workspace_root().join("target/debug");

    println!("\n== two node hosts on a private underlay (192.0.2.0/24)");
    let mut net = TestNetwork::new("demo").context("creating the test network")?;
    let nodes = [net.add_host("node1")?, net.add_host("node2")?];
    let mut dirs = Vec::new();
    for node in &nodes {
        println!("   {} = {} (netns {})", node.label, node.addr, node.name());
        let dir = net.bpffs_dir(&node.label);
        attach_counters(&bin, node, &dir)?;
        dirs.push(dir);
    }

    println!("\n== traffic: node1 -> node2 (HTTP x5, UDP echo x5, ping x5)");
    let app = bin.join("rudder-testapp").display().to_string();
    let _http = nodes[1].spawn(&[
        &app,
        "http",
        "--listen",
        "0.0.0.0:8080",
        "--name",
        "node2-web",
    ])?;
    let _udp = nodes[1].spawn(&[&app, "udp-echo", "--listen", "0.0.0.0:7001"])?;
    let to = |port: u16| format!("{}:{port}", nodes[1].addr);
    let answers = nodes[0].run(&[
        &app,
        "http-get",
        "--to",
        &to(8080),
        "--count",
        "5",
        "--retry-ms",
        "3000",
    ])?;
    for line in answers.lines() {
        println!("   http: {line}");
    }
    let echoes = nodes[0].run(&[
        &app,
        "udp",
        "--to",
        &to(7001),
        "--count",
        "5",
        "--retry-ms",
        "3000",
    ])?;
    println!("   udp: {} echoes", echoes.lines().count());
    nodes[0].run(&[
        "ping",
        "-c",
        "5",
        "-i",
        "0.1",
        "-W",
        "2",
        &nodes[1].addr.to_string(),
    ])?;
    println!("   ping: 5 replies");

    for (node, dir) in nodes.iter().zip(&dirs) {
        let root = dir.parent().context("bpffs dir has a parent")?;
        let node_name = dir.file_name().context("bpffs dir has a name")?;
        println!(
            "\n== {}: rudderctl dataplane counters --node {} --bpffs-root {} (eth0 is ifindex {})",
            node.label,
            node_name.to_string_lossy(),
            root.display(),
            eth0_index(node)?
        );
        let out = std::process::Command::new(bin.join("rudderctl"))
            .args(["dataplane", "counters", "--node"])
            .arg(node_name)
            .arg("--bpffs-root")
            .arg(root)
            .output()
            .context("running rudderctl")?;
        if !out.status.success() {
            bail!("rudderctl failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            println!("   {line}");
        }
    }
    println!("\n== tearing down (namespaces, links, pins)");
    drop(net);
    println!("demo: done");
    Ok(())
}

fn attach_counters(bin: &Path, node: &Host, dir: &Path) -> Result<()> {
    let status = std::process::Command::new(bin.join("rudder-agent"))
        .args([
            "--netns",
            node.name(),
            "dataplane",
            "attach",
            "--iface",
            "eth0",
        ])
        .arg("--node")
        .arg(dir.file_name().context("bpffs dir has a name")?)
        .arg("--bpffs-root")
        .arg(dir.parent().map_or_else(PathBuf::new, Path::to_path_buf))
        .env("RUST_LOG", "warn")
        .status()
        .context("running rudder-agent")?;
    if !status.success() {
        bail!(
            "rudder-agent could not attach the counters on {}",
            node.label
        );
    }
    println!(
        "   rudder-agent attached tc ingress/egress + XDP counters to {}:eth0",
        node.label
    );
    Ok(())
}

fn eth0_index(node: &Host) -> Result<String> {
    let out = node.ip(&["-o", "link", "show", "eth0"])?;
    Ok(out.split(':').next().unwrap_or("?").trim().to_owned())
}
