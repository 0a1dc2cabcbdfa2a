//! `rudder-bench bandwidth`: per-pod bandwidth limits, rudder's eBPF token
//! bucket against the reference CNI `bandwidth` plugin (TBF on the host
//! veth, ifb + TBF for the pod's egress), in one run on identical test
//! hosts, written to `docs/benchmarks/bandwidth.md`.
//!
//! Three node hosts, each a bridge with two pods (a limited one and its
//! peer): rudder-cni with rudder's dataplane attached and the limit set in
//! the pinned map as the agent sets it (its default burst for a rate);
//! the reference bridge + bandwidth with the burst Kubernetes passes for an
//! annotation (`math.MaxInt32` bits, the plugin's "default"); and the same
//! with a small tuned burst. For every rate and direction, each limiter in
//! turn (rotating order): iperf3 with 1 and with 4 streams between the
//! pods, the receiving side's veth counters sampled every 100 ms (from the
//! limit being set, so the first second is in), TCP retransmits, the
//! machine's softirq time, and, during the 1-stream run, `rudder-testapp
//! tcp-rr` from the limited pod to its peer (a second flow of the same pod
//! while the limit is saturated).

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use dataplane_common::bandwidth::{BandwidthCounters, BandwidthDirection};
use netns::{HostProcess, Netns, TestNetwork};
use rudder_agent::bandwidth::limits::shape;
use rudder_dataplane_maps::{BandwidthMaps, BandwidthShape};
use serde_json::{Value, json};

use crate::{
    cni::{
        RemoveOnDrop,
        plugin_node::{Plugin, PluginBinaries, PluginNode},
        traffic::{ECHO_PORT, IPERF_PORT, attach_dataplane, start_servers},
    },
    interrupt,
    machine::{self, Machine},
    report_file,
};

/// Counter sampling period (the overshoot window).
const WINDOW: Duration = Duration::from_millis(100);
/// The burst Kubernetes passes with an annotation's rate (bits): kubelet,
/// containerd and CRI-O all send `math.MaxInt32`.
const KUBERNETES_BURST_BITS: u64 = 2_147_483_647;

/// Options of `rudder-bench bandwidth`.
#[derive(clap::Args, Debug)]
pub struct Options {
    /// Where to write the report.
    #[arg(long, default_value = "docs/benchmarks/bandwidth.md")]
    out: PathBuf,
    /// 3 s runs instead of 10 s: a smoke test, not a result.
    #[arg(long)]
    quick: bool,
    /// Where the reference plugins are.
    #[arg(long, default_value = "/usr/lib/cni")]
    reference_dir: PathBuf,
    /// Commit the binaries were built from, for the report.
    #[arg(long)]
    commit: Option<String>,
}

/// Who limits a node's limited pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limiter {
    /// rudder's eBPF bucket on the host veth, the agent's default burst.
    Rudder,
    /// The same with the tuned reference row's burst (10 ms of the rate,
    /// at least two GSO packets): what the overshoot goal allows.
    RudderShortBurst,
    /// The reference plugin with the burst Kubernetes passes.
    TbfDefault,
    /// The reference plugin with a small burst.
    TbfTuned,
}

impl Limiter {
    const ALL: [Self; 4] = [
        Self::Rudder,
        Self::RudderShortBurst,
        Self::TbfDefault,
        Self::TbfTuned,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Rudder => "rudder",
            Self::RudderShortBurst => "rudder, tuned burst",
            Self::TbfDefault => "bandwidth plugin, Kubernetes burst",
            Self::TbfTuned => "bandwidth plugin, tuned burst",
        }
    }

    /// The burst in bytes at `rate_bps`.
    fn burst_bytes(self, rate_bps: u64) -> u64 {
        match self {
            Self::Rudder => shape(rate_bps, None).burst_bytes,
            Self::TbfDefault => KUBERNETES_BURST_BITS / 8,
            // 10 ms of the rate, at least two 64 KiB GSO packets.
            Self::TbfTuned | Self::RudderShortBurst => (rate_bps / 8 / 100).max(2 * 64 * 1024),
        }
    }
}

/// A node host with a limited pod and its peer.
struct LimitNode {
    limiter: Limiter,
    node: PluginNode,
    limited: Netns,
    peer_ip: Ipv4Addr,
    /// Host-side veths (name, ifindex) in the node's namespace.
    limited_veth: (String, u32),
    peer_veth: (String, u32),
    /// The bridge's ADD result for the limited pod (the bandwidth plugin's
    /// prevResult).
    bridge_result: Value,
    /// rudder's bpffs directory (rudder's node only).
    bpffs: Option<PathBuf>,
    /// Whether the reference plugin is added now.
    tbf_added: bool,
    _servers: Vec<HostProcess>,
}

/// One measurement.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    /// Goodput / limit.
    fraction: f64,
    /// Highest 100 ms window / limit.
    overshoot: f64,
    retransmits: u64,
    /// Second flow's round trip, µs (1-stream runs).
    rr_p50_us: Option<f64>,
    rr_p99_us: Option<f64>,
    /// Softirq CPU ms per Gbit passed (whole machine).
    softirq_ms_per_gbit: f64,
    /// rudder's counters for the run (rudder rows).
    counters: Option<BandwidthCounters>,
}

/// One row of the report.
struct Row {
    rate_bps: u64,
    direction: BandwidthDirection,
    limiter: Limiter,
    one: Run,
    four: Run,
}

/// Runs the benchmark and writes the report.
///
/// # Errors
/// When a host, pod or server cannot be made, or a run fails.
pub fn run(options: &Options) -> Result<()> {
    let started = Instant::now();
    let machine = Machine::describe();
    let seconds: u64 = if options.quick { 3 } else { 10 };
    let binaries = PluginBinaries::find(&options.reference_dir)?;
    let bandwidth_plugin = options.reference_dir.join("bandwidth");
    if !bandwidth_plugin.is_file() {
        bail!(
            "{} is missing: `cargo xtask setup` installs containernetworking-plugins",
            bandwidth_plugin.display()
        );
    }
    let testapp = std::env::current_exe()?.with_file_name("rudder-testapp");
    if !testapp.is_file() {
        bail!("{} is not built", testapp.display());
    }
    let mut network = TestNetwork::new("bwbench").context("test network")?;
    let state = std::env::temp_dir().join(format!("{}-state", network.prefix()));
    std::fs::create_dir_all(&state)?;
    let _state_guard = RemoveOnDrop(state.clone());
    let mut nodes = Vec::new();
    for (i, limiter) in Limiter::ALL.into_iter().enumerate() {
        let subnet = u8::try_from(i + 1).unwrap_or(1);
        nodes.push(limit_node(
            &mut network,
            limiter,
            subnet,
            &binaries,
            &state,
            &testapp,
        )?);
    }
    let rates: &[u64] = &[10_000_000, 100_000_000, 1_000_000_000];
    let mut rows = Vec::new();
    let mut turn = 0;
    for &rate_bps in rates {
        for direction in BandwidthDirection::ALL {
            let mut results: Vec<(Limiter, Run, Run)> = Vec::new();
            for k in 0..nodes.len() {
                let index = (k + turn) % nodes.len();
                let node = &mut nodes[index];
                let mut runs = [Run::default(); 2];
                for (slot, streams) in [1u32, 4].into_iter().enumerate() {
                    interrupt::check()?;
                    let run = measure(
                        node,
                        &bandwidth_plugin,
                        rate_bps,
                        direction,
                        streams,
                        seconds,
                        &testapp,
                    )
                    .with_context(|| {
                        format!(
                            "{} at {} {}, {streams} streams",
                            node.limiter.label(),
                            mbit(rate_bps),
                            direction.as_str()
                        )
                    })?;
                    println!(
                        "   {} {} {} x{streams}: {:.3} of the limit, peak 100 ms {:.2}x, {} retransmits{}",
                        mbit(rate_bps),
                        direction.as_str(),
                        node.limiter.label(),
                        run.fraction,
                        run.overshoot,
                        run.retransmits,
                        run.rr_p99_us
                            .map(|p| format!(", tcp-rr p99 {p:.0} µs"))
                            .unwrap_or_default()
                    );
                    runs[slot] = run;
                }
                results.push((node.limiter, runs[0], runs[1]));
            }
            turn += 1;
            results.sort_by_key(|(limiter, ..)| Limiter::ALL.iter().position(|l| l == limiter));
            for (limiter, one, four) in results {
                rows.push(Row {
                    rate_bps,
                    direction,
                    limiter,
                    one,
                    four,
                });
            }
        }
    }
    drop(nodes);
    let text = render(
        &rows,
        &machine,
        options,
        seconds,
        started.elapsed(),
        &binaries.reference_version,
    );
    report_file::write(&options.out, &text)?;
    println!("wrote {}", options.out.display());
    Ok(())
}

fn mbit(bps: u64) -> String {
    if bps >= 1_000_000_000 {
        format!("{}G", bps / 1_000_000_000)
    } else {
        format!("{}M", bps / 1_000_000)
    }
}

/// A node host with its two pods wired and the peer's servers listening.
fn limit_node(
    network: &mut TestNetwork,
    limiter: Limiter,
    subnet: u8,
    binaries: &PluginBinaries,
    state: &Path,
    testapp: &Path,
) -> Result<LimitNode> {
    let plugin = match limiter {
        Limiter::Rudder | Limiter::RudderShortBurst => Plugin::Rudder,
        Limiter::TbfDefault | Limiter::TbfTuned => Plugin::Reference,
    };
    let label = format!("b{subnet}");
    let node = PluginNode::new(network, &label, plugin, subnet, binaries, state)?;
    let limited = network.add_namespace(&format!("{label}-limited"))?;
    let peer = network.add_namespace(&format!("{label}-peer"))?;
    let (_, bridge_result) = node.invoke("ADD", &format!("{label}-limited"), &limited)?;
    let bridge_result: Value =
        serde_json::from_str(&bridge_result).context("the bridge plugin's result")?;
    let peer_ip = node.add_pod(&format!("{label}-peer"), &peer)?;
    let limited_veth = host_veth(&node, &limited)?;
    let peer_veth = host_veth(&node, &peer)?;
    let bpffs = if plugin == Plugin::Rudder {
        let dir = network.bpffs_dir(&label);
        let ports = vec![limited_veth.0.clone(), peer_veth.0.clone()];
        attach_dataplane(&node.host, dir.clone(), ports)?;
        Some(dir)
    } else {
        None
    };
    // The pods' TCP settings (ECN, minimum RTO), as rudder's agent writes
    // them in every pod, for all rows: the hosts are identical.
    for pod in [&limited, &peer] {
        let netns = PathBuf::from(format!("/run/netns/{}", pod.name()));
        rudder_agent::bandwidth::ecn::enable_in(&netns).context("pod sysctls")?;
    }
    let log = state.join(format!("{label}-servers.log"));
    let servers = start_servers(&peer, "iperf3", &testapp.display().to_string(), &log)
        .with_context(|| format!("{label}'s peer pod"))?;
    Ok(LimitNode {
        limiter,
        node,
        limited,
        peer_ip,
        limited_veth,
        peer_veth,
        bridge_result,
        bpffs,
        tbf_added: false,
        _servers: servers,
    })
}

/// The host-side veth (name, ifindex) of `pod`'s eth0.
fn host_veth(node: &PluginNode, pod: &Netns) -> Result<(String, u32)> {
    let link = pod.run(&["ip", "-o", "link", "show", "eth0"])?;
    let ifindex: u32 = link
        .split_once("@if")
        .and_then(|(_, rest)| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no peer index in {link:?}"))?;
    let links = node.host.run(&["ip", "-o", "link"])?;
    let name = links
        .lines()
        .find(|l| l.starts_with(&format!("{ifindex}: ")))
        .and_then(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_owned())
        .with_context(|| format!("no interface {ifindex} on the node"))?;
    Ok((name, ifindex))
}

/// Puts the limit (only `direction`, at `rate_bps`) on `node`'s limited
/// pod, from a full bucket.
fn set_limit(
    node: &mut LimitNode,
    bandwidth_plugin: &Path,
    rate_bps: u64,
    direction: BandwidthDirection,
) -> Result<()> {
    if let Some(dir) = &node.bpffs {
        let mut maps = BandwidthMaps::open(dir)?;
        for d in BandwidthDirection::ALL {
            // Absent after the first run: nothing to remove then.
            let _ = maps.remove(node.limited_veth.1, d);
        }
        let limit = BandwidthShape {
            burst_bytes: node.limiter.burst_bytes(rate_bps),
            ..shape(rate_bps, None)
        };
        maps.set(node.limited_veth.1, direction, limit)?;
        return Ok(());
    }
    let id = format!("{}-limited", node.node.host.label);
    let (rate, burst) = (rate_bps, node.limiter.burst_bytes(rate_bps) * 8);
    let (ingress, egress) = match direction {
        BandwidthDirection::ToPod => ((rate, burst), (0, 0)),
        BandwidthDirection::FromPod => ((0, 0), (rate, burst)),
    };
    let config = |with_limits: bool| {
        let mut config = json!({
            "cniVersion": "1.0.0", "name": "bench", "type": "bandwidth",
            "prevResult": node.bridge_result,
        });
        if with_limits {
            config["ingressRate"] = ingress.0.into();
            config["ingressBurst"] = ingress.1.into();
            config["egressRate"] = egress.0.into();
            config["egressBurst"] = egress.1.into();
        }
        config
    };
    if node.tbf_added {
        node.node
            .invoke_plugin(bandwidth_plugin, &config(false), "DEL", &id, &node.limited)?;
        node.tbf_added = false;
        // The plugin's DEL removes its ifb but leaves the qdiscs it put on
        // the host veth; a second ADD would find them.
        let veth = node.limited_veth.0.as_str();
        for parent in ["ingress", "root"] {
            let _ = node
                .node
                .host
                .run(&["tc", "qdisc", "del", "dev", veth, parent]);
        }
    }
    node.node
        .invoke_plugin(bandwidth_plugin, &config(true), "ADD", &id, &node.limited)?;
    node.tbf_added = true;
    Ok(())
}

/// Bytes the node's interface `iface` has transmitted.
fn tx_bytes(iface: &str) -> Option<u64> {
    // The thread's namespace, not the process's.
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev").ok()?;
    dev.lines().find_map(|line| {
        let (name, stats) = line.split_once(':')?;
        if name.trim() != iface {
            return None;
        }
        // rx: 8 fields, then tx bytes.
        stats.split_whitespace().nth(8)?.parse().ok()
    })
}

/// The machine's softirq time so far, ms (from /proc/stat's `cpu` line).
fn softirq_ms() -> f64 {
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let line = stat.lines().find(|l| l.starts_with("cpu "))?;
            line.split_whitespace().nth(7)?.parse::<f64>().ok()
        })
        .map_or(0.0, |ticks| ticks * 1000.0 / ticks_per_sec)
}

/// One iperf3 run (and, with one stream, a tcp-rr run beside it).
fn measure(
    node: &mut LimitNode,
    bandwidth_plugin: &Path,
    rate_bps: u64,
    direction: BandwidthDirection,
    streams: u32,
    seconds: u64,
    testapp: &Path,
) -> Result<Run> {
    set_limit(node, bandwidth_plugin, rate_bps, direction)?;
    let peer = node.peer_ip.to_string();
    // The receiving side's veth: its transmit counter is what got through.
    let receiver = match direction {
        BandwidthDirection::FromPod => node.peer_veth.0.clone(),
        BandwidthDirection::ToPod => node.limited_veth.0.clone(),
    };
    let sample_for = Duration::from_secs(seconds + 2);
    let host = &node.node.host;
    let limited = &node.limited;
    let soft_before = softirq_ms();
    let (samples, iperf, rr) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            host.enter(|| {
                let start = Instant::now();
                let mut samples = Vec::new();
                let mut next = start;
                while start.elapsed() < sample_for {
                    samples.push((Instant::now(), tx_bytes(&receiver).unwrap_or(0)));
                    next += WINDOW;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                samples
            })
        });
        let rr = (streams == 1).then(|| {
            let limited = limited.clone();
            let peer = peer.clone();
            scope.spawn(move || -> Result<Value> {
                // Once the bulk flow has filled the limit.
                std::thread::sleep(Duration::from_secs(1));
                let duration_ms = ((seconds - 2) * 1000).to_string();
                let out = limited.run(&[
                    &testapp.display().to_string(),
                    "tcp-rr",
                    "--to",
                    &format!("{peer}:{ECHO_PORT}"),
                    "--duration-ms",
                    &duration_ms,
                    "--timeout-ms",
                    "5000",
                ])?;
                Ok(serde_json::from_str(out.trim())?)
            })
        });
        let limit = (seconds + 20).to_string();
        let secs = seconds.to_string();
        let port = IPERF_PORT.to_string();
        let p = streams.to_string();
        let mut args = vec![
            "timeout", &limit, "iperf3", "-c", &peer, "-p", &port, "-t", &secs, "-P", &p, "-J",
        ];
        if direction == BandwidthDirection::ToPod {
            args.push("-R");
        }
        let iperf = limited.run(&args);
        let samples = sampler.join().expect("sampler thread");
        let rr = rr.map(|h| h.join().expect("tcp-rr thread"));
        (samples, iperf, rr)
    });
    let soft_ms = softirq_ms() - soft_before;
    let samples = samples?;
    let report: Value = serde_json::from_str(&iperf?).context("iperf3's JSON")?;
    let received = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("iperf3 reported no result: {}", report["error"]))?;
    let retransmits = report["end"]["sum_sent"]["retransmits"]
        .as_u64()
        .unwrap_or(0);
    // Each window over the time it really took (a late wakeup on a loaded
    // machine makes a window longer, not its rate higher).
    let window_bps = samples.windows(2).map(|w| {
        let seconds = w[1].0.duration_since(w[0].0).as_secs_f64().max(1e-3);
        w[1].1.saturating_sub(w[0].1) as f64 * 8.0 / seconds
    });
    let peak = window_bps.fold(0.0, f64::max);
    let passed_bits = samples
        .last()
        .zip(samples.first())
        .map_or(0, |(last, first)| last.1.saturating_sub(first.1)) as f64
        * 8.0;
    let (rr_p50_us, rr_p99_us) = match rr {
        Some(rr) => {
            let rr = rr?;
            (
                rr["latency_us"]["p50"].as_f64(),
                rr["latency_us"]["p99"].as_f64(),
            )
        }
        None => (None, None),
    };
    let counters = match &node.bpffs {
        Some(dir) => BandwidthMaps::open(dir)?
            .entries()?
            .into_iter()
            .find(|e| e.ifindex == node.limited_veth.1 && e.direction == direction)
            .map(|e| e.counters),
        None => None,
    };
    Ok(Run {
        fraction: received / rate_bps as f64,
        overshoot: peak / rate_bps as f64,
        retransmits,
        rr_p50_us,
        rr_p99_us,
        softirq_ms_per_gbit: if passed_bits > 0.0 {
            soft_ms / (passed_bits / 1e9)
        } else {
            0.0
        },
        counters,
    })
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.2}", ours / theirs)
    } else {
        "–".into()
    }
}

fn opt(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.0}"))
}

/// Which path ran for a row.
fn path(row: &Row) -> String {
    match row.limiter {
        Limiter::Rudder | Limiter::RudderShortBurst => {
            let total = row.one.counters.unwrap_or_default();
            let marked = row.one.counters.map_or(0, |c| c.marked_packets);
            let dropped = row.one.counters.map_or(0, |c| c.dropped_packets);
            let path = if total.delayed_packets > 0 {
                "EDT"
            } else {
                "token bucket + ECN"
            };
            format!(
                "{path}, burst {} KiB ({marked} CE, {dropped} dropped in the 1-stream run)",
                row.limiter.burst_bytes(row.rate_bps) / 1024
            )
        }
        Limiter::TbfDefault | Limiter::TbfTuned => format!(
            "TBF, burst {} KiB{}",
            row.limiter.burst_bytes(row.rate_bps) / 1024,
            if row.direction == BandwidthDirection::FromPod {
                " (via ifb)"
            } else {
                ""
            }
        ),
    }
}

/// Whether `holds` for every rudder (default burst) row and its
/// Kubernetes-burst reference row.
fn compare(rows: &[Row], holds: impl Fn(&Row, &Row) -> bool) -> bool {
    rows.iter()
        .filter(|r| r.limiter == Limiter::Rudder)
        .all(|ours| {
            rows.iter()
                .find(|r| {
                    r.limiter == Limiter::TbfDefault
                        && r.rate_bps == ours.rate_bps
                        && r.direction == ours.direction
                })
                .is_some_and(|tbf| holds(ours, tbf))
        })
}

/// rudder's default-burst rows over `reference`'s.
fn ratio_table(out: &mut String, rows: &[Row], reference: Limiter) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "\n## Ratios: rudder / {}\n", reference.label());
    let _ = writeln!(
        out,
        "| limit | dir | goodput (1 / 4 streams) | peak 100 ms | retransmits (1 / 4 streams) | tcp-rr p99 | softirq/Gbit |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for ours in rows.iter().filter(|r| r.limiter == Limiter::Rudder) {
        let Some(theirs) = rows.iter().find(|r| {
            r.limiter == reference && r.rate_bps == ours.rate_bps && r.direction == ours.direction
        }) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} / {} | {} | {} / {} | {} | {} |",
            mbit(ours.rate_bps),
            ours.direction.as_str(),
            ratio(ours.one.fraction, theirs.one.fraction),
            ratio(ours.four.fraction, theirs.four.fraction),
            ratio(ours.one.overshoot, theirs.one.overshoot),
            ratio(ours.one.retransmits as f64, theirs.one.retransmits as f64),
            ratio(ours.four.retransmits as f64, theirs.four.retransmits as f64),
            ratio(
                ours.one.rr_p99_us.unwrap_or(0.0),
                theirs.one.rr_p99_us.unwrap_or(0.0)
            ),
            ratio(ours.one.softirq_ms_per_gbit, theirs.one.softirq_ms_per_gbit)
        );
    }
}

fn render(
    rows: &[Row],
    machine: &Machine,
    options: &Options,
    seconds: u64,
    elapsed: Duration,
    reference_version: &str,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let commit = options
        .commit
        .as_deref()
        .map(|c| format!(" at commit {c}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "# Per-pod bandwidth limits: rudder vs the reference bandwidth plugin\n"
    );
    let _ = writeln!(
        out,
        "Written by `rudder-bench bandwidth{}` (what `cargo xtask bench bandwidth` runs) on {}{commit} \
         in {:.0} s. Machine: {} cores ({}), \
         kernel {}, load average {:.1} at the end; containernetworking-plugins {reference_version}. \
         {}{seconds} s iperf3 runs, one run per cell: on a shared 2-core machine, \
         expect noise of several percent.\n",
        if options.quick { " --quick" } else { "" },
        machine.date,
        elapsed.as_secs_f64(),
        machine.cores,
        machine.cpu,
        machine.kernel,
        machine::load_average(),
        if options.quick {
            "**Quick run: a smoke test, not a result.** "
        } else {
            ""
        },
    );
    let _ = writeln!(
        out,
        "Two pods on one node bridge; the limited pod's host veth carries the limit \
         (egress = out of the pod, ingress = into it). rudder: its eBPF token bucket \
         with the agent's default burst for the rate, and with the tuned reference row's \
         burst. Reference: bridge + the `bandwidth` plugin chained after it (TBF on the host \
         veth for ingress, ifb + TBF for egress, 25 ms latency), with the burst Kubernetes \
         passes for an annotation (`math.MaxInt32` bits) and with a tuned burst (10 ms of the \
         rate, at least 128 KiB). TCP is the hosts' default congestion control (`{}`); every \
         pod of every row has the TCP settings rudder's agent writes in pods \
         (`net.ipv4.tcp_ecn=1`, `net.ipv4.tcp_rto_min_us=50000`).\n",
        machine::output(&["sysctl", "-n", "net.ipv4.tcp_congestion_control"])
    );
    let _ = writeln!(
        out,
        "Columns: goodput of 1 and 4 iperf3 streams as a fraction of the limit; peak = the \
         highest 100 ms window of the receiving veth's transmit counter, sampled from the moment \
         the limit is set (first second included), over the limit (1 stream); retransmits \
         (iperf3's, 1 / 4 streams); tcp-rr p50/p99 (µs) of a second connection of the limited \
         pod during the 1-stream run; softirq = the whole machine's softirq CPU ms per Gbit \
         passed (1 stream; other work on the shared machine adds to it, which swamps the \
         low rates, where few Gbit pass). Ratios are rudder (default burst) / a reference \
         row; the Kubernetes-burst rows barely limit, so their retransmits are near zero.\n"
    );
    let _ = writeln!(
        out,
        "| limit | dir | limiter | 1 stream | 4 streams | peak 100 ms | retransmits | tcp-rr p50 / p99 µs | softirq ms/Gbit | path |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.3} | {:.3} | {:.2}x | {} / {} | {} / {} | {:.0} | {} |",
            mbit(row.rate_bps),
            row.direction.as_str(),
            row.limiter.label(),
            row.one.fraction,
            row.four.fraction,
            row.one.overshoot,
            row.one.retransmits,
            row.four.retransmits,
            opt(row.one.rr_p50_us),
            opt(row.one.rr_p99_us),
            row.one.softirq_ms_per_gbit,
            path(row)
        );
    }
    for reference in [Limiter::TbfDefault, Limiter::TbfTuned] {
        ratio_table(&mut out, rows, reference);
    }
    let goals = [
        (
            "goodput within 5% of the limit (1 and 4 streams)",
            rows.iter()
                .filter(|r| r.limiter == Limiter::Rudder)
                .all(|r| {
                    (r.one.fraction - 1.0).abs() <= 0.05 && (r.four.fraction - 1.0).abs() <= 0.05
                }),
        ),
        (
            "highest 100 ms window at most 1.1x the limit",
            rows.iter()
                .filter(|r| r.limiter == Limiter::Rudder)
                .all(|r| r.one.overshoot <= 1.1),
        ),
        (
            "retransmits at most a tenth of the Kubernetes-burst TBF's (1 and 4 streams)",
            compare(rows, |ours, tbf| {
                ours.one.retransmits * 10 <= tbf.one.retransmits
                    && ours.four.retransmits * 10 <= tbf.four.retransmits
            }),
        ),
        (
            "tcp-rr p99 at most a fifth of the Kubernetes-burst TBF's",
            compare(rows, |ours, tbf| {
                ours.one.rr_p99_us.unwrap_or(f64::MAX) * 5.0 <= tbf.one.rr_p99_us.unwrap_or(0.0)
            }),
        ),
    ];
    let _ = writeln!(out, "\n## Goals (rudder rows)\n");
    for (goal, met) in goals {
        let _ = writeln!(out, "- {goal}: {}", if met { "met" } else { "**not met**" });
    }
    out
}
