//! Part 2: pod-to-pod traffic across the node bridge. On each of three node
//! hosts two pods are wired by one plugin: rudder-cni alone, rudder-cni
//! with rudder's dataplane attached to the pods' veths (what a rudder node
//! runs: the service programs see every packet), and the reference bridge +
//! host-local. Between the two pods of a node: TCP bulk throughput with
//! iperf3, and netperf-style TCP_RR (one byte each way per transaction on
//! one connection) with `rudder-testapp tcp-rr`. The three nodes take turns
//! within every run, in a rotating order.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use netns::{HostProcess, Netns, TestNetwork};
use rudder_agent::dataplane::Dataplane;
use serde::Deserialize;

use super::{
    Plan,
    plugin_node::{Plugin, PluginBinaries, PluginNode},
};
use crate::{interrupt, stats};

/// Port of the iperf3 server in the server pod.
pub const IPERF_PORT: u16 = 5201;
/// Port of the echo server in the server pod.
pub const ECHO_PORT: u16 = 7000;
/// Most transactions one TCP_RR run makes (its time limit usually ends it).
pub const MAX_TRANSACTIONS: u64 = 5_000_000;

/// The three ways a node's pods are wired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wiring {
    /// rudder-cni, nothing attached.
    Rudder,
    /// rudder-cni with rudder's tc programs on the pod veths.
    RudderWithDataplane,
    /// The reference bridge + host-local.
    Reference,
}

impl Wiring {
    /// All of them, in report order.
    pub const ALL: [Self; 3] = [Self::Rudder, Self::RudderWithDataplane, Self::Reference];

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Rudder => "rudder-cni",
            Self::RudderWithDataplane => "rudder-cni + rudder dataplane",
            Self::Reference => "bridge + host-local",
        }
    }
}

/// Medians over the runs for one wiring.
#[derive(Clone, Copy, Debug)]
pub struct TrafficResult {
    /// Which wiring.
    pub wiring: Wiring,
    /// TCP throughput, Gbit/s.
    pub gbits: f64,
    /// TCP_RR transactions per second.
    pub rr_rate: f64,
    /// TCP_RR round trip p50, µs.
    pub rr_p50_us: f64,
    /// TCP_RR round trip p99, µs.
    pub rr_p99_us: f64,
}

/// One node with its two pods and their servers.
struct PodPair {
    wiring: Wiring,
    client: Netns,
    server_ip: Ipv4Addr,
    _servers: Vec<HostProcess>,
}

/// Runs part 2.
///
/// # Errors
/// When a host, pod or server cannot be made, or a run fails.
pub fn measure(
    plan: &Plan,
    binaries: &PluginBinaries,
    testapp: &Path,
) -> Result<Vec<TrafficResult>> {
    let iperf3 = which("iperf3").context(
        "iperf3 is not installed; `cargo xtask setup` installs it (the throughput runs use it)",
    )?;
    let mut network = TestNetwork::new("cnitraffic").context("test network")?;
    let state = std::env::temp_dir().join(format!("{}-state", network.prefix()));
    let _state_guard = super::RemoveOnDrop(state.clone());
    std::fs::create_dir_all(&state)?;
    let app = testapp.display().to_string();
    let mut pairs = Vec::new();
    for (i, wiring) in Wiring::ALL.into_iter().enumerate() {
        let subnet = u8::try_from(i + 1).unwrap_or(1);
        pairs.push(pod_pair(
            &mut network,
            wiring,
            subnet,
            binaries,
            &state,
            &iperf3,
            &app,
        )?);
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); pairs.len()];
    for run in 0..plan.runs {
        for turn in 0..pairs.len() {
            interrupt::check()?;
            let index = (turn + run) % pairs.len();
            let sample = measure_pair(&pairs[index], plan, &iperf3, &app)?;
            println!(
                "   run {} {}: {:.2} Gbit/s, TCP_RR {:.0}/s (p50 {:.0} µs, p99 {:.0} µs)",
                run + 1,
                pairs[index].wiring.label(),
                sample.gbits,
                sample.rr_rate,
                sample.rr_p50_us,
                sample.rr_p99_us
            );
            samples[index].push(sample);
        }
    }
    Ok(pairs
        .iter()
        .zip(&samples)
        .map(|(pair, samples)| {
            let median = |field: fn(&Sample) -> f64| {
                stats::median(&samples.iter().map(field).collect::<Vec<_>>())
            };
            TrafficResult {
                wiring: pair.wiring,
                gbits: median(|s| s.gbits),
                rr_rate: median(|s| s.rr_rate),
                rr_p50_us: median(|s| s.rr_p50_us),
                rr_p99_us: median(|s| s.rr_p99_us),
            }
        })
        .collect())
}

/// One run's numbers for one wiring.
#[derive(Clone, Copy, Debug)]
struct Sample {
    gbits: f64,
    rr_rate: f64,
    rr_p50_us: f64,
    rr_p99_us: f64,
}

/// A node host with two pods wired by `wiring`, servers listening in one.
fn pod_pair(
    network: &mut TestNetwork,
    wiring: Wiring,
    subnet: u8,
    binaries: &PluginBinaries,
    state: &Path,
    iperf3: &str,
    app: &str,
) -> Result<PodPair> {
    let plugin = match wiring {
        Wiring::Rudder | Wiring::RudderWithDataplane => Plugin::Rudder,
        Wiring::Reference => Plugin::Reference,
    };
    let label = format!("n{subnet}");
    let node = PluginNode::new(network, &label, plugin, subnet, binaries, state)?;
    let client = network.add_namespace(&format!("{label}-client"))?;
    let server = network.add_namespace(&format!("{label}-server"))?;
    node.add_pod(&format!("{label}-client"), &client)?;
    let server_ip = node.add_pod(&format!("{label}-server"), &server)?;
    if wiring == Wiring::RudderWithDataplane {
        let dir = network.bpffs_dir(&label);
        let ports = node
            .host
            .run(&["ip", "-o", "link", "show", "master", "cni0"])
            .context("listing the pod ports")?;
        let ports: Vec<String> = ports
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|name| name.trim().split('@').next().unwrap_or_default().to_owned())
            .collect();
        if ports.len() != 2 {
            bail!("expected two pod ports on {label}'s bridge, found {ports:?}");
        }
        attach_dataplane(&node.host, dir, ports)?;
    }
    let log = state.join(format!("{label}-servers.log"));
    let servers = start_servers(&server, iperf3, app, &log)
        .with_context(|| format!("{label}'s server pod"))?;
    Ok(PodPair {
        wiring,
        client,
        server_ip,
        _servers: servers,
    })
}

/// Loads rudder's dataplane pinned under `dir` in `host` and attaches it
/// to the pod veths `ports`.
///
/// # Errors
/// When the programs cannot be loaded or attached.
pub fn attach_dataplane(host: &Netns, dir: PathBuf, ports: Vec<String>) -> Result<()> {
    host.enter(move || -> Result<()> {
        let mut dataplane = Dataplane::load(&dir).context("loading rudder's dataplane")?;
        for port in &ports {
            dataplane
                .attach_pod_interface(port)
                .with_context(|| format!("attaching to {port}"))?;
        }
        Ok(())
    })?
}

/// Starts an iperf3 server on [`IPERF_PORT`] and `app tcp-echo` on
/// [`ECHO_PORT`] in `server`, logging to `log`, and waits (bounded) until
/// both listen.
///
/// # Errors
/// When either cannot be started or never listens.
pub fn start_servers(
    server: &Netns,
    iperf3: &str,
    app: &str,
    log: &Path,
) -> Result<Vec<HostProcess>> {
    let mut iperf = server.command(iperf3);
    iperf.args(["-s", "-p", &IPERF_PORT.to_string()]);
    let mut echo = server.command(app);
    echo.args(["tcp-echo", "--listen", &format!("0.0.0.0:{ECHO_PORT}")]);
    let servers = vec![
        HostProcess::start_logged(iperf, "iperf3 -s".into(), log)?,
        HostProcess::start_logged(echo, "tcp-echo".into(), log)?,
    ];
    for _ in 0..100 {
        let listening = server.run(&["ss", "-Hltn"]).unwrap_or_default();
        if [IPERF_PORT, ECHO_PORT]
            .iter()
            .all(|port| listening.contains(&format!(":{port} ")))
        {
            return Ok(servers);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("the servers never listened (see {})", log.display())
}

#[derive(Deserialize)]
struct IperfReport {
    end: IperfEnd,
}

#[derive(Deserialize)]
struct IperfEnd {
    sum_received: IperfSum,
}

#[derive(Deserialize)]
struct IperfSum {
    bits_per_second: f64,
}

#[derive(Deserialize)]
struct RrReport {
    rate: f64,
    latency_us: RrLatency,
}

#[derive(Deserialize)]
struct RrLatency {
    p50: f64,
    p99: f64,
}

/// One throughput run and one TCP_RR run from the client pod to the server pod.
fn measure_pair(pair: &PodPair, plan: &Plan, iperf3: &str, app: &str) -> Result<Sample> {
    let seconds = plan.traffic_seconds.to_string();
    // iperf3 stops itself after -t; `timeout` is the hard limit should it hang.
    let limit = (plan.traffic_seconds + 20).to_string();
    let server = pair.server_ip.to_string();
    let port = IPERF_PORT.to_string();
    let out = pair
        .client
        .run(&[
            "timeout", &limit, iperf3, "-c", &server, "-p", &port, "-t", &seconds, "-J",
        ])
        .with_context(|| format!("iperf3 on {}", pair.wiring.label()))?;
    let iperf: IperfReport = serde_json::from_str(&out).with_context(|| {
        format!(
            "reading iperf3's report {}",
            out.chars().take(300).collect::<String>()
        )
    })?;
    let duration_ms = (plan.traffic_seconds * 1000).to_string();
    let transactions = MAX_TRANSACTIONS.to_string();
    let out = pair
        .client
        .run(&[
            app,
            "tcp-rr",
            "--to",
            &format!("{server}:{ECHO_PORT}"),
            "--transactions",
            &transactions,
            "--duration-ms",
            &duration_ms,
        ])
        .with_context(|| format!("tcp-rr on {}", pair.wiring.label()))?;
    let rr: RrReport = serde_json::from_str(out.trim())
        .with_context(|| format!("reading tcp-rr's summary {out:?}"))?;
    Ok(Sample {
        gbits: iperf.end.sum_received.bits_per_second / 1e9,
        rr_rate: rr.rate,
        rr_p50_us: rr.latency_us.p50,
        rr_p99_us: rr.latency_us.p99,
    })
}

/// The first `program` on PATH.
fn which(program: &str) -> Option<String> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}
