//! `rudder-agent serve`: the node's dataplane as a daemon. It loads and
//! attaches the programs (uplink, every pod port of the node bridge as pods
//! come and go, optionally a cgroup for connect-time translation), keeps the
//! service maps equal to the desired state, collects conntrack, and serves
//! Prometheus metrics. Desired state comes from the control plane's
//! node-sync stream ([`node_sync`]), or from a services file
//! ([`services_file`]) for a node without a control plane.
//!
//! Exiting leaves every program attached and every map pinned: forwarding
//! goes on while no agent runs, and the next one takes over without a gap.

mod feed;
pub mod from_api;
mod http;
pub mod node;
pub mod node_sync;
mod pod_ports;
mod service_map_writer;
pub mod services_file;
mod setup;
mod status_reporter;
mod stop;

use std::{
    net::{Ipv4Addr, SocketAddr},
    ops::RangeInclusive,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Result;

use self::{
    feed::DesiredFeed,
    pod_ports::PodPorts,
    setup::{NodeDataplane, start_dataplane},
    status_reporter::{Report, status_reporter},
};
use crate::{
    dataplane::services::{ConntrackTimeouts, ServiceDataplane},
    pods::PodRuntime,
};

/// How `serve` runs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// This node's name (endpoints on it are local).
    pub node: String,
    /// The node's bpffs directory.
    pub dir: PathBuf,
    /// The uplink interface (NodePorts are served on its address).
    pub uplink: String,
    /// Attach the XDP NodePort fast path to the uplink.
    pub xdp: bool,
    /// The pod bridge whose ports get service translation.
    pub bridge: String,
    /// cgroup v2 directory for connect-time translation, if any.
    pub cgroup: Option<PathBuf>,
    /// The service CIDR (blackholed).
    pub service_cidr: String,
    /// Where the Services to serve (and the pods to run) come from.
    pub source: StateSource,
    /// Where to serve /metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// Source ports for NodePort SNAT.
    pub snat_ports: RangeInclusive<u16>,
    /// Source address of hairpin flows.
    pub hairpin_addr: Ipv4Addr,
    /// How often conntrack is collected.
    pub gc_interval: Duration,
    /// This node's pod subnet, announced in its Node object (control-plane
    /// mode); other nodes route it via this node's address.
    pub pod_cidr: Option<String>,
    /// How long the node counts as alive without renewing its lease.
    pub lease_duration: Duration,
    /// Pod runtime settings (control-plane mode runs the pods bound here).
    pub pods: Option<crate::pods::PodRuntimeConfig>,
}

/// Where `serve` hears the state it makes real: the Services to serve
/// and, from a control plane, the pods bound to this node.
#[derive(Clone, Debug)]
pub enum StateSource {
    /// The control plane's node-sync stream at this gRPC address.
    ControlPlane(String),
    /// A services file, re-read when it changes.
    File(PathBuf),
}

/// Runs until SIGTERM or SIGINT.
///
/// # Errors
/// When the dataplane cannot be set up; problems while running (a bad
/// services file, a pod port that vanished) are logged and retried.
pub fn serve(config: &ServeConfig) -> Result<()> {
    stop::install_handlers()?;
    let NodeDataplane {
        dataplane,
        node_addr,
        services,
    } = start_dataplane(config)?;
    if let Some(listen) = config.metrics_listen {
        let logs = config.pods.as_ref().map(|p| p.state_dir.join("logs"));
        http::serve(listen, Arc::clone(&services), logs)?;
    }
    tracing::info!(node = %config.node, %node_addr, uplink = %config.uplink, "dataplane serving");

    if let StateSource::ControlPlane(addr) = &config.source {
        node::spawn(addr.clone(), node_identity(config, node_addr));
    }
    let pod_ports = Arc::new(PodPorts {
        dataplane: Mutex::new(dataplane),
        attached: Mutex::default(),
        bridge: config.bridge.clone(),
        dir: config.dir.clone(),
    });
    let runtime = config.pods.clone().map(|mut pods| {
        pods.node_addr = node_addr;
        pods.host_interface_hook = Some(PodPorts::hook(&pod_ports));
        PodRuntime::new(pods)
    });
    let reporter = match (&config.source, &runtime) {
        (StateSource::ControlPlane(addr), Some(_)) => {
            Some(status_reporter(addr.clone(), config.node.clone()))
        }
        _ => None,
    };
    PodPorts::follow(pod_ports);
    let desired = DesiredFeed::start(config, &services);
    run_rounds(config, &services, desired, runtime, reporter.as_ref());
    tracing::info!("stopping; programs stay attached and maps pinned");
    Ok(())
}

/// What the node tells the control plane about itself.
fn node_identity(config: &ServeConfig, node_addr: Ipv4Addr) -> node::NodeIdentity {
    node::NodeIdentity {
        name: config.node.clone(),
        address: node_addr,
        pod_cidr: config.pod_cidr.clone().unwrap_or_default(),
        lease_duration: config.lease_duration,
        agent_endpoint: config.metrics_listen.map(|listen| {
            let ip = if listen.ip().is_unspecified() {
                node_addr.into()
            } else {
                listen.ip()
            };
            format!("http://{}", SocketAddr::new(ip, listen.port()))
        }),
    }
}

/// The serve loop, until a stop is requested: what arrived is applied,
/// the pods get a round (their statuses and events go to the reporter),
/// conntrack is collected when due, then it waits for the next update or
/// [`TICK`].
fn run_rounds(
    config: &ServeConfig,
    services: &Mutex<ServiceDataplane>,
    mut desired: DesiredFeed,
    mut runtime: Option<PodRuntime>,
    reporter: Option<&tokio::sync::mpsc::UnboundedSender<Report>>,
) {
    let mut last_gc = Instant::now();
    while !stop::requested() {
        desired.apply_pending(services, runtime.as_mut());
        if let Some(runtime) = runtime.as_mut() {
            let statuses = runtime.tick();
            let events = runtime.take_events();
            if let Some(reporter) = reporter {
                for report in statuses {
                    let _ = reporter.send(Report::Status(report));
                }
                for event in events {
                    let _ = reporter.send(Report::Event(event));
                }
            }
        }
        if last_gc.elapsed() >= config.gc_interval {
            last_gc = Instant::now();
            match lock(services).collect_conntrack(&ConntrackTimeouts::default()) {
                Ok(stats) => tracing::debug!(?stats, "conntrack collected"),
                Err(err) => tracing::warn!(%err, "conntrack collection"),
            }
        }
        // Pods waiting for their sandbox: the next round at once.
        let waiting = runtime
            .as_ref()
            .is_some_and(PodRuntime::has_waiting_sandboxes);
        if !waiting {
            desired.wait(TICK);
        }
    }
}

/// How often the serve loop runs when nothing arrives: container restarts,
/// probes, pod ports, conntrack collection.
const TICK: Duration = Duration::from_millis(200);

/// Locks a mutex shared by the serve loop's threads; a thread that
/// panicked holding it leaves the data usable (every write to it is
/// complete before the next one starts).
fn lock<T>(shared: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
