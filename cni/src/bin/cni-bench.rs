//! `cni-bench`: ADD and DEL latency of rudder-cni next to the reference
//! bridge + host-local plugins (containernetworking-plugins), in one run,
//! in two identical node hosts. Writes a markdown table with ratios.
//!
//! ```text
//! cni-bench [--sandboxes N] [--runs R] [--reference-dir /usr/lib/cni] [--output FILE]
//! ```
//!
//! Each run ADDs then DELs N sandboxes per plugin, alternating the two
//! plugins call by call so machine noise hits both alike. Latency is wall
//! time from spawning the plugin (in the node's namespace, as a runtime
//! does) to its exit. Needs root; builds and removes its own namespaces.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use netns::{Host, Netns, TestNetwork};
use serde_json::{Value, json};

struct Options {
    sandboxes: usize,
    runs: usize,
    reference_dir: PathBuf,
    output: PathBuf,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        sandboxes: 200,
        runs: 3,
        reference_dir: PathBuf::from("/usr/lib/cni"),
        output: Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks/cni.md"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--sandboxes" => options.sandboxes = value()?.parse().context("--sandboxes")?,
            "--runs" => options.runs = value()?.parse().context("--runs")?,
            "--reference-dir" => options.reference_dir = value()?.into(),
            "--output" => options.output = value()?.into(),
            other => bail!(
                "unknown argument {other}; usage: cni-bench [--sandboxes N] [--runs R] [--reference-dir DIR] [--output FILE]"
            ),
        }
    }
    ensure!(
        (1..=250).contains(&options.sandboxes),
        "--sandboxes must be 1-250 (one /24 per plugin)"
    );
    ensure!(options.runs >= 1, "--runs must be at least 1");
    Ok(options)
}

/// One plugin under measurement, on its own node host.
struct Contender {
    label: &'static str,
    binary: PathBuf,
    config: Value,
    node: Host,
    cni_path: PathBuf,
    add: Vec<Vec<Duration>>,
    del: Vec<Vec<Duration>>,
}

impl Contender {
    /// Runs the plugin once in the node's namespace; returns its wall time.
    fn invoke(&self, command: &str, id: &str, sandbox: &Netns) -> anyhow::Result<Duration> {
        let stdin = self.config.to_string();
        let netns = format!("/run/netns/{}", sandbox.name());
        let (elapsed, output) = self.node.enter(|| -> anyhow::Result<_> {
            let start = Instant::now();
            let mut child = Command::new(&self.binary)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("CNI_COMMAND", command)
                .env("CNI_CONTAINERID", id)
                .env("CNI_NETNS", &netns)
                .env("CNI_IFNAME", "eth0")
                .env("CNI_PATH", &self.cni_path)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("spawn {}", self.binary.display()))?;
            if let Some(mut input) = child.stdin.take() {
                input.write_all(stdin.as_bytes())?;
            }
            let output = child.wait_with_output()?;
            Ok((start.elapsed(), output))
        })??;
        ensure!(
            output.status.success(),
            "{} {command} {id} failed: {}{}",
            self.label,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(elapsed)
    }
}

fn percentile(samples: &[Duration], p: f64) -> f64 {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (ms.len() as f64)).ceil() as usize;
    ms[rank.clamp(1, ms.len()) - 1]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    ensure!(
        netns::have_privileges(),
        "cni-bench creates network namespaces: run it as root"
    );
    let ours = std::env::current_exe()?
        .parent()
        .context("executable directory")?
        .join("rudder-cni");
    ensure!(
        ours.is_file(),
        "{} is not built (cargo build --release -p rudder-cni)",
        ours.display()
    );
    let bridge = options.reference_dir.join("bridge");
    ensure!(
        bridge.is_file() && options.reference_dir.join("host-local").is_file(),
        "reference plugins missing in {}: install containernetworking-plugins",
        options.reference_dir.display()
    );
    let version = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "containernetworking-plugins"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();

    let mut network = TestNetwork::new("cnibench")?;
    let state = std::env::temp_dir().join(format!("{}-state", network.prefix()));
    let _state_guard = RemoveOnDrop(state.clone());
    let mut contenders = vec![
        Contender {
            label: "rudder-cni",
            binary: ours,
            config: json!({
                "cniVersion": "1.0.0", "name": "bench", "type": "rudder-cni", "bridge": "cni0",
                "ipam": {"subnet": "10.244.1.0/24", "dataDir": state.join("rudder")},
                "bandwidthDir": state.join("bandwidth"),
            }),
            node: network.add_host("ours")?,
            cni_path: options.reference_dir.clone(),
            add: Vec::new(),
            del: Vec::new(),
        },
        Contender {
            label: "bridge + host-local",
            binary: bridge,
            config: json!({
                "cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cni0",
                "isDefaultGateway": true,
                "ipam": {"type": "host-local", "subnet": "10.244.2.0/24", "dataDir": state.join("reference")},
            }),
            node: network.add_host("ref")?,
            cni_path: options.reference_dir.clone(),
            add: Vec::new(),
            del: Vec::new(),
        },
    ];
    let sandboxes: Vec<(Netns, Netns)> = (0..options.sandboxes)
        .map(|i| {
            Ok((
                network.add_namespace(&format!("a{i}"))?,
                network.add_namespace(&format!("b{i}"))?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    // One unmeasured round trip each: page cache, bridge creation.
    let (warm_a, warm_b) = (network.add_namespace("wa")?, network.add_namespace("wb")?);
    for (contender, pod) in contenders.iter().zip([&warm_a, &warm_b]) {
        contender.invoke("ADD", "warmup", pod)?;
        contender.invoke("DEL", "warmup", pod)?;
    }

    for run in 0..options.runs {
        for contender in &mut contenders {
            contender.add.push(Vec::new());
            contender.del.push(Vec::new());
        }
        for command in ["ADD", "DEL"] {
            for (i, (a, b)) in sandboxes.iter().enumerate() {
                let id = format!("sandbox-{run}-{i}");
                for (contender, pod) in contenders.iter_mut().zip([a, b]) {
                    let elapsed = contender.invoke(command, &id, pod)?;
                    let samples = if command == "ADD" {
                        &mut contender.add
                    } else {
                        &mut contender.del
                    };
                    if let Some(samples) = samples.last_mut() {
                        samples.push(elapsed);
                    }
                }
            }
        }
        eprintln!("cni-bench: run {} of {} done", run + 1, options.runs);
    }

    let stat = |samples: &[Vec<Duration>], p: f64| {
        median(samples.iter().map(|s| percentile(s, p)).collect())
    };
    let rows = [("ADD", 50.0), ("ADD", 99.0), ("DEL", 50.0), ("DEL", 99.0)];
    let mut table = String::new();
    table.push_str(
        "| metric | rudder-cni | bridge + host-local | reference / rudder-cni | better |\n",
    );
    table.push_str("|---|---:|---:|---:|---|\n");
    for (command, p) in rows {
        let [ours, reference] = [&contenders[0], &contenders[1]]
            .map(|c| stat(if command == "ADD" { &c.add } else { &c.del }, p));
        let better = if ours <= reference {
            "rudder-cni"
        } else {
            "reference"
        };
        table.push_str(&format!(
            "| {command} latency p{p:.0} (ms) | {ours:.2} | {reference:.2} | {:.2} | {better} |\n",
            reference / ours
        ));
    }
    let doc = format!(
        "# CNI benchmark: rudder-cni vs the reference bridge + host-local plugins\n\n\
         Written by `cni-bench` (`cargo build --release -p rudder-cni && sudo target/release/cni-bench`): \
         medians over {runs} run(s) of the p50/p99 of {n} sandboxes per plugin, ADD then DEL, \
         the two plugins alternating call by call, each on its own node host (a network namespace) \
         with its own bridge and /24. Latency is the wall time from spawning the plugin in the node's \
         namespace, as a runtime does, to its exit (so process start-up counts, and for the reference \
         the exec of host-local by bridge). Reference: containernetworking-plugins {version}. \
         Absolute numbers on these shared 2-core machines drift; compare the ratios.\n\n{table}",
        runs = options.runs,
        n = options.sandboxes,
        version = if version.is_empty() {
            "(version unknown)".to_owned()
        } else {
            version.replace('\n', " ")
        },
    );
    if let Some(dir) = options.output.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&options.output, &doc)
        .with_context(|| format!("write {}", options.output.display()))?;
    print!("{table}");
    eprintln!("cni-bench: wrote {}", options.output.display());
    Ok(())
}

/// Removes a directory when dropped (also on error paths).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
