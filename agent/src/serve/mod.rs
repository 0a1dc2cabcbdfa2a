//! `rudder-agent serve`: the node's dataplane as a daemon. It loads and
//! attaches the programs (uplink, every pod port of the node bridge as pods
//! come and go, optionally a cgroup for connect-time translation), keeps the
//! service maps equal to the desired state, collects conntrack, and serves
//! Prometheus metrics. Desired state comes from the control plane's
//! node-sync stream ([`node_sync`]), or from a services file
//! ([`services_file`]) for a node without a control plane.
//!
//! It runs as tasks of one tokio runtime (the caller's), each owning one
//! job: the source ([`node_sync`] or [`services_file`]) sends Service
//! changes to the map writer and pod changes to the pod rounds, whose
//! statuses and events go to the status reporter; the node's registration
//! and routes ([`node`]), the pod port follower, conntrack collection and
//! the HTTP endpoint run beside them.
//!
//! Exiting leaves every program attached and every map pinned: forwarding
//! goes on while no agent runs, and the next one takes over without a gap.

mod conntrack_gc;
pub mod from_api;
mod http;
mod logs;
pub mod node;
pub mod node_sync;
mod pod_ports;
mod pod_rounds;
mod service_map_writer;
pub mod services_file;
mod setup;
mod status_reporter;
pub mod updates;

use std::{
    net::{Ipv4Addr, SocketAddr},
    ops::RangeInclusive,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, watch},
};

use self::{
    node_sync::NodeSyncOutputs,
    pod_ports::PodPorts,
    setup::{NodeDataplane, start_dataplane},
    status_reporter::status_reporter,
};
use crate::{bandwidth::BandwidthSync, pods::PodRuntime};

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
    /// TCX or tc filters for the tc programs (auto: as the kernel allows).
    pub attach_mode: crate::dataplane::AttachMode,
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
    /// The cluster's pod network: routes to other nodes' pod CIDRs only
    /// inside it.
    pub cluster_cidr: rudder_netlink::Ipv4Subnet,
    /// How long the node counts as alive without renewing its lease.
    pub lease_duration: Duration,
    /// Pod runtime settings (control-plane mode runs the pods bound here).
    pub pods: Option<crate::pods::PodRuntimeConfig>,
}

/// Where `serve` hears the state it makes real: the Services to serve
/// and, from a control plane, the pods bound to this node.
#[derive(Clone, Debug)]
pub enum StateSource {
    /// The control plane's node-sync stream, reached with these settings.
    ControlPlane(rudder_client::ClientConfig),
    /// A services file, re-read when it changes.
    File(PathBuf),
}

/// Runs until SIGTERM or SIGINT, on the current tokio runtime, which must
/// be multi-threaded (the pod rounds and the pod port follower block in
/// place).
///
/// # Errors
/// When the dataplane cannot be set up; problems while running (a bad
/// services file, a pod port that vanished) are logged and retried.
pub async fn serve(config: &ServeConfig) -> Result<()> {
    let mut terminate = signal(SignalKind::terminate()).context("installing signal handlers")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing signal handlers")?;
    let NodeDataplane {
        dataplane,
        node_addr,
        services,
    } = start_dataplane(config)?;
    if let Some(listen) = config.metrics_listen {
        let logs = config.pods.as_ref().map(|p| p.state_dir.join("logs"));
        http::serve(listen, Arc::clone(&services), logs, config.dir.clone()).await?;
    }
    tracing::info!(node = %config.node, %node_addr, uplink = %config.uplink, "dataplane serving");

    if let StateSource::ControlPlane(addr) = &config.source {
        tokio::spawn(node::run(addr.clone(), node_identity(config, node_addr)));
    }
    let pod_ports = Arc::new(PodPorts {
        dataplane: Mutex::new(dataplane),
        attached: Mutex::default(),
        bridge: config.bridge.clone(),
        dir: config.dir.clone(),
    });
    let service_env = config
        .pods
        .as_ref()
        .map(|pods| pods.services.clone())
        .unwrap_or_default();
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
    tokio::spawn(PodPorts::follow(pod_ports));
    let (service_tx, service_rx) = mpsc::unbounded_channel();
    service_map_writer::spawn(service_rx, Arc::clone(&services));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (pod_tx, pod_rounds) = match runtime {
        Some(runtime) => {
            let (pod_tx, pod_rx) = mpsc::unbounded_channel();
            let bandwidth = config
                .pods
                .as_ref()
                .map(|pods| BandwidthSync::for_node(&config.dir, &pods.cni_conf_dir))
                .transpose()?;
            let pods_from_api = matches!(config.source, StateSource::ControlPlane(_));
            let rounds = tokio::spawn(pod_rounds::run(
                runtime,
                bandwidth,
                pod_rx,
                reporter,
                stop_rx,
                pods_from_api,
            ));
            (Some(pod_tx), Some(rounds))
        }
        None => (None, None),
    };
    match &config.source {
        StateSource::ControlPlane(addr) => {
            let outputs = NodeSyncOutputs {
                services: service_tx,
                pods: pod_tx,
                service_env,
            };
            tokio::spawn(node_sync::follow(
                addr.clone(),
                config.node.clone(),
                outputs,
            ));
        }
        StateSource::File(path) => {
            tokio::spawn(services_file::follow(
                path.clone(),
                config.node.clone(),
                service_tx,
            ));
        }
    }
    tokio::spawn(conntrack_gc::run(Arc::clone(&services), config.gc_interval));

    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    // The pod round in progress finishes; the other tasks end with the
    // runtime.
    let _ = stop_tx.send(true);
    if let Some(rounds) = pod_rounds {
        let _ = rounds.await;
    }
    tracing::info!("stopping; programs stay attached and maps pinned");
    Ok(())
}

/// What the node tells the control plane about itself.
fn node_identity(config: &ServeConfig, node_addr: Ipv4Addr) -> node::NodeIdentity {
    node::NodeIdentity {
        name: config.node.clone(),
        address: node_addr,
        pod_cidr: config.pod_cidr.clone().unwrap_or_default(),
        cluster_cidr: config.cluster_cidr,
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

/// Locks a mutex shared by serve's tasks; a task that panicked holding
/// it leaves the data usable (every write to it is
/// complete before the next one starts).
fn lock<T>(shared: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
