//! Part 2: new connections through a ClusterIP, with 1,000 and 10,000
//! services present, on two identical hand-made clusters (the
//! `rudder_tests::cluster` fixture): one running rudder, one whose
//! dataplane is detached and which runs the kube-proxy-style ruleset on
//! both nodes instead. Each cluster has a client pod on node1 and three
//! HTTP responder pods on node2; the service under test (in the middle of
//! the service list, where kube-proxy's map-ordered KUBE-SERVICES puts a
//! service on average) has those three pods as endpoints.
//!
//! `rudder-testapp conn-bench` in the client pod opens connections in a
//! closed loop (one request each, `Connection: close`) for a bounded time,
//! and reports connections/s and latency percentiles of connect, request
//! and response. Paths: the ClusterIP on each cluster, and the three pod IPs
//! directly on each cluster (what the same traffic costs without a
//! service; on the iptables cluster it still traverses KUBE-SERVICES),
//! from a second client pod next to the first.

use std::{net::Ipv4Addr, path::Path, time::Instant};

use anyhow::{Context, Result, bail};
use dataplane_common::program_names::{SERVICE_FROM_NETWORK, SERVICE_TO_NETWORK, SERVICE_XDP};
use netns::HostProcess;
use rudder_agent::dataplane::{
    detach,
    services::{ServiceState, detach_pod_interface},
};
use rudder_tests::cluster::{Cluster, Pod, SERVICE_CIDR};
use serde::Deserialize;

use super::{
    Plan,
    kube_proxy::{self, Restore},
    synthetic::{self, BenchService, SERVICE_PORT, TARGET_PORT},
};
use crate::{interrupt, stats};

/// Service counts measured.
pub const SERVICE_COUNTS: [usize; 2] = [1_000, 10_000];

/// Where the client's connections go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The backend pods' addresses, on the rudder cluster.
    PodIpRudderHost,
    /// The ClusterIP, translated by rudder.
    ClusterIpRudder,
    /// The backend pods' addresses, on the iptables cluster.
    PodIpIptablesHost,
    /// The ClusterIP, translated by the iptables ruleset.
    ClusterIpIptables,
}

impl Target {
    /// Every target, in the order of the report.
    pub const ALL: [Self; 4] = [
        Self::PodIpRudderHost,
        Self::ClusterIpRudder,
        Self::PodIpIptablesHost,
        Self::ClusterIpIptables,
    ];

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::PodIpRudderHost => "pod IPs directly, rudder cluster",
            Self::ClusterIpRudder => "ClusterIP, rudder",
            Self::PodIpIptablesHost => "pod IPs directly, iptables cluster",
            Self::ClusterIpIptables => "ClusterIP, iptables",
        }
    }
}

/// Medians over the runs of one target at one service count.
#[derive(Clone, Debug)]
pub struct ConnResult {
    /// Services installed.
    pub services: usize,
    /// Where the connections went.
    pub target: Target,
    /// New connections per second.
    pub rate: f64,
    /// Median latency of connect + request + response, microseconds.
    pub p50_us: f64,
    /// 99th percentile of the same.
    pub p99_us: f64,
    /// Connections completed over all runs.
    pub connections: u64,
    /// Connections that failed over all runs.
    pub errors: u64,
}

/// What `rudder-testapp conn-bench` prints.
#[derive(Debug, Deserialize)]
struct ConnBenchOutput {
    connections: u64,
    errors: u64,
    rate: f64,
    latency_us: Latencies,
}

#[derive(Debug, Deserialize)]
struct Latencies {
    p50: f64,
    p99: f64,
}

/// One cluster under test.
struct Side {
    cluster: Cluster,
    /// Connects to the ClusterIP.
    client: Pod,
    /// Connects to the pod IPs. A client of its own: were one client to
    /// reach the same pod both ways, a new connection could meet the
    /// TIME_WAIT of an old one on the same server tuple, made with another
    /// timestamp offset (Linux derives it from the destination the client
    /// saw), and wait a second for a retransmission.
    direct: Pod,
    backends: Vec<Pod>,
    _servers: Vec<HostProcess>,
}

/// Runs part 2.
///
/// # Errors
/// When a cluster cannot be built, a service does not answer, or a load
/// run fails.
pub fn measure(plan: &Plan, testapp: &Path) -> Result<Vec<ConnResult>> {
    let app = testapp.display().to_string();
    println!("   building the rudder cluster and the iptables cluster");
    let rudder = side("bcr", &app)?;
    let iptables = side("bci", &app)?;
    strip_dataplane(&iptables)?;
    let endpoints: Vec<Ipv4Addr> = rudder.backends.iter().map(|p| p.addr).collect();
    let same: Vec<Ipv4Addr> = iptables.backends.iter().map(|p| p.addr).collect();
    if endpoints != same {
        bail!("the two clusters addressed their pods differently: {endpoints:?} vs {same:?}");
    }
    let mut rudder = rudder;
    let mut results = Vec::new();
    for count in SERVICE_COUNTS {
        interrupt::check()?;
        let target_index = count / 2;
        let services = synthetic::services(count, Some((target_index, &endpoints)));
        let vip = synthetic::UNDER_TEST_IP;
        program(&mut rudder, &iptables, &services)?;
        let to = |target: Target| -> Vec<String> {
            match target {
                Target::ClusterIpRudder | Target::ClusterIpIptables => {
                    vec![format!("{vip}:{SERVICE_PORT}")]
                }
                _ => endpoints
                    .iter()
                    .map(|a| format!("{a}:{TARGET_PORT}"))
                    .collect(),
            }
        };
        let client = |target: Target| match target {
            Target::PodIpRudderHost => &rudder.direct,
            Target::ClusterIpRudder => &rudder.client,
            Target::PodIpIptablesHost => &iptables.direct,
            Target::ClusterIpIptables => &iptables.client,
        };
        // Every path must work before it is timed: a short warm-up that
        // may not fail at all.
        for target in Target::ALL {
            let warm = conn_bench(
                client(target),
                &app,
                &to(target),
                plan.concurrency,
                500,
                300,
            )?;
            if warm.errors > 0 || warm.connections == 0 {
                bail!(
                    "{} at {count} services: {} of {} warm-up connections failed",
                    target.label(),
                    warm.errors,
                    warm.errors + warm.connections
                );
            }
        }
        let mut runs: Vec<(Target, ConnBenchOutput)> = Vec::new();
        for run in 0..plan.runs {
            let mut order = Target::ALL;
            order.rotate_left(run % Target::ALL.len());
            for target in order {
                interrupt::check()?;
                let out = conn_bench(
                    client(target),
                    &app,
                    &to(target),
                    plan.concurrency,
                    plan.conn_duration_ms,
                    u64::MAX,
                )?;
                println!(
                    "   {count:>6} services, {:<34} {:>7.0} conn/s, p50 {:>5.0} us, p99 {:>6.0} us{}",
                    target.label(),
                    out.rate,
                    out.latency_us.p50,
                    out.latency_us.p99,
                    if out.errors > 0 {
                        format!(", {} failed", out.errors)
                    } else {
                        String::new()
                    }
                );
                runs.push((target, out));
            }
        }
        for target in Target::ALL {
            let mine: Vec<&ConnBenchOutput> = runs
                .iter()
                .filter(|(t, _)| *t == target)
                .map(|(_, o)| o)
                .collect();
            let median = |f: fn(&ConnBenchOutput) -> f64| {
                stats::median(&mine.iter().map(|o| f(o)).collect::<Vec<_>>())
            };
            results.push(ConnResult {
                services: count,
                target,
                rate: median(|o| o.rate),
                p50_us: median(|o| o.latency_us.p50),
                p99_us: median(|o| o.latency_us.p99),
                connections: mine.iter().map(|o| o.connections).sum(),
                errors: mine.iter().map(|o| o.errors).sum(),
            });
        }
    }
    Ok(results)
}

/// A cluster of two nodes: a client pod on node1, three HTTP responders on
/// node2, all listening before this returns.
fn side(label: &str, app: &str) -> Result<Side> {
    let mut cluster = Cluster::new(label, 2);
    let client = cluster.add_pod(0, "client");
    let direct = cluster.add_pod(0, "direct");
    let backends: Vec<Pod> = (1..=3)
        .map(|i| cluster.add_pod(1, &format!("web{i}")))
        .collect();
    // Room for the many short connections of a run (these namespaces only).
    for pod in [&client, &direct] {
        pod.run(&["sysctl", "-qw", "net.ipv4.ip_local_port_range=10000 65000"])
            .context("client port range")?;
    }
    let mut servers = Vec::new();
    for pod in &backends {
        let listen = format!("0.0.0.0:{TARGET_PORT}");
        servers.push(pod.spawn(&[app, "http", "--listen", &listen, "--name", &pod.name])?);
    }
    for pod in &backends {
        let local = format!("127.0.0.1:{TARGET_PORT}");
        pod.run(&[app, "http-get", "--to", &local, "--retry-ms", "5000"])
            .with_context(|| format!("{} never listened", pod.name))?;
    }
    Ok(Side {
        cluster,
        client,
        direct,
        backends,
        _servers: servers,
    })
}

/// Turns a rudder cluster into a plain one: every program detached from
/// the nodes' uplinks and pod veths, the service CIDR blackhole removed.
/// What is left is bridges, veths and routes, as kube-proxy would find them.
fn strip_dataplane(side: &Side) -> Result<()> {
    for node in &side.cluster.nodes {
        for program in [SERVICE_FROM_NETWORK, SERVICE_TO_NETWORK, SERVICE_XDP] {
            detach(&node.dir, program, "eth0").context("detaching the uplink programs")?;
        }
        node.host
            .ip(&["route", "del", "blackhole", SERVICE_CIDR])
            .context("removing the service blackhole route")?;
    }
    for pod in side.backends.iter().chain([&side.client, &side.direct]) {
        let node = &side.cluster.nodes[pod.node];
        // The pods' filters are found by interface name: in the node.
        node.host
            .enter(|| detach_pod_interface(&node.dir, &pod.host_iface))?
            .context("detaching the pod programs")?;
    }
    for node in &side.cluster.nodes {
        let attached = node.host.run(&["bpftool", "net", "show"])?;
        if attached.contains("svc_") {
            bail!(
                "{} still has service programs attached:\n{attached}",
                node.host.name()
            );
        }
    }
    Ok(())
}

/// Installs `services` on both clusters: rudder's maps on every rudder
/// node, the ruleset (replacing the nat table) on every iptables node.
fn program(rudder: &mut Side, iptables: &Side, services: &[BenchService]) -> Result<()> {
    let states: Vec<ServiceState> = services.iter().map(BenchService::state).collect();
    for node in &mut rudder.cluster.nodes {
        node.services
            .resync(&states, Instant::now())
            .context("installing the services on a rudder node")?;
    }
    for node in &iptables.cluster.nodes {
        let list = services.to_vec();
        kube_proxy::restore(&node.host.netns, Restore::Replace, move || {
            kube_proxy::full_restore(&list)
        })?;
        // Conntrack keeps closed connections for 120 s by default; runs
        // make more than the table holds in that time. Forgetting them
        // sooner changes no per-connection cost.
        node.host
            .run(&[
                "sysctl",
                "-qw",
                "net.netfilter.nf_conntrack_tcp_timeout_time_wait=5",
            ])
            .context("conntrack TIME_WAIT timeout")?;
    }
    println!("   installed {} services on both clusters", services.len());
    Ok(())
}

/// One bounded conn-bench run from `client`.
fn conn_bench(
    client: &Pod,
    app: &str,
    to: &[String],
    concurrency: u32,
    duration_ms: u64,
    connections: u64,
) -> Result<ConnBenchOutput> {
    let concurrency = concurrency.to_string();
    let duration = duration_ms.to_string();
    let connections = connections.min(1_000_000).to_string();
    let mut args = vec![
        app,
        "conn-bench",
        "--concurrency",
        &concurrency,
        "--duration-ms",
        &duration,
        "--connections",
        &connections,
        "--timeout-ms",
        "2000",
    ];
    for target in to {
        args.extend(["--to", target.as_str()]);
    }
    let out = client
        .run(&args)
        .with_context(|| format!("conn-bench to {}", to.join(",")))?;
    serde_json::from_str(out.trim())
        .with_context(|| format!("reading conn-bench's summary {out:?}"))
}
