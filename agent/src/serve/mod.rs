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

pub mod from_api;
mod http;
pub mod node;
pub mod node_sync;
pub mod services_file;

use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, SocketAddr},
    ops::RangeInclusive,
    path::PathBuf,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use rudder_api::{
    core::ObjectReference,
    events::{EventRecorder, EventType},
};

use crate::dataplane::{
    Dataplane,
    services::{
        ConntrackTimeouts, NodeServiceConfig, ServiceDataplane, forget_pod_interface,
        install_service_blackhole,
    },
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
    /// Where the desired Services come from.
    pub source: DesiredSource,
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

/// Where `serve` hears which Services to serve.
#[derive(Clone, Debug)]
pub enum DesiredSource {
    /// The control plane's node-sync stream at this gRPC address.
    ControlPlane(String),
    /// A services file, re-read when it changes.
    File(PathBuf),
}

/// Set by SIGTERM/SIGINT.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Runs until SIGTERM or SIGINT.
///
/// # Errors
/// When the dataplane cannot be set up; problems while running (a bad
/// services file, a pod port that vanished) are logged and retried.
pub fn serve(config: &ServeConfig) -> Result<()> {
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let action = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::Handler(request_stop),
            nix::sys::signal::SaFlags::empty(),
            nix::sys::signal::SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic.
        unsafe { nix::sys::signal::sigaction(signal, &action) }
            .context("installing signal handlers")?;
    }
    let mut dataplane = Dataplane::load(&config.dir)?;
    dataplane.attach_uplink(&config.uplink)?;
    if config.xdp {
        dataplane.attach_uplink_fast_path(&config.uplink)?;
    }
    if let Some(cgroup) = &config.cgroup {
        dataplane.attach_sockets(cgroup)?;
    }
    install_service_blackhole(&config.service_cidr)?;
    let node_addr = interface_ipv4(&config.uplink)?;
    let uplink_ifindex = nix::net::if_::if_nametoindex(config.uplink.as_str())
        .with_context(|| format!("uplink {}", config.uplink))?;
    let services = Arc::new(Mutex::new(ServiceDataplane::open(
        &config.dir,
        &NodeServiceConfig {
            node_addr,
            hairpin_addr: config.hairpin_addr,
            snat_ports: config.snat_ports.clone(),
            uplink_ifindex,
        },
    )?));
    if let Some(listen) = config.metrics_listen {
        let logs = config.pods.as_ref().map(|p| p.state_dir.join("logs"));
        http::serve(listen, Arc::clone(&services), logs)?;
    }
    tracing::info!(node = %config.node, %node_addr, uplink = %config.uplink, "dataplane serving");

    if let DesiredSource::ControlPlane(addr) = &config.source {
        let identity = node::NodeIdentity {
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
        };
        let addr = addr.clone();
        std::thread::spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(node::run(addr, identity)),
                Err(err) => tracing::error!(%err, "cannot start the node runtime"),
            }
        });
    }
    let pod_ports = Arc::new(PodPorts {
        dataplane: Mutex::new(dataplane),
        attached: Mutex::default(),
        bridge: config.bridge.clone(),
        dir: config.dir.clone(),
    });
    let mut runtime = config.pods.clone().map(|mut pods| {
        pods.node_addr = node_addr;
        pods.host_interface_hook = Some(PodPorts::hook(&pod_ports));
        crate::pods::PodRuntime::new(pods)
    });
    let reporter = match (&config.source, &runtime) {
        (DesiredSource::ControlPlane(addr), Some(_)) => {
            Some(status_reporter(addr.clone(), config.node.clone()))
        }
        _ => None,
    };
    PodPorts::follow(pod_ports);
    let mut bandwidth = config
        .pods
        .as_ref()
        .map(|pods| crate::bandwidth::BandwidthSync::for_node(&config.dir, &pods.cni_conf_dir))
        .transpose()?;
    let mut desired = DesiredFeed::start(config, &services);
    let mut last_gc = Instant::now();
    while !STOP.load(Ordering::SeqCst) {
        desired.apply_pending(&services, runtime.as_mut());
        if let Some(runtime) = runtime.as_mut() {
            let statuses = runtime.tick();
            if let Some(bandwidth) = bandwidth.as_mut() {
                bandwidth.sync(&runtime.pod_networks());
            }
            let events = runtime.take_events();
            if let Some(reporter) = &reporter {
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
            match lock(&services).collect_conntrack(&ConntrackTimeouts::default()) {
                Ok(stats) => tracing::debug!(?stats, "conntrack collected"),
                Err(err) => tracing::warn!(%err, "conntrack collection"),
            }
        }
        // Pods waiting for their sandbox: the next round at once.
        let waiting = runtime
            .as_ref()
            .is_some_and(crate::pods::PodRuntime::has_waiting_sandboxes);
        if !waiting {
            desired.wait(TICK);
        }
    }
    tracing::info!("stopping; programs stay attached and maps pinned");
    Ok(())
}

/// How often the serve loop runs when nothing arrives: container restarts,
/// probes, pod ports, conntrack collection.
const TICK: Duration = Duration::from_millis(200);

/// The source of desired state, polled by the serve loop.
enum DesiredFeed {
    /// Pod updates from the node-sync stream (its Service changes are
    /// applied by [`ServiceSync`] as they arrive); one update taken while
    /// waiting is kept for the next round.
    Stream(
        std::sync::mpsc::Receiver<node_sync::Desired>,
        Option<Box<node_sync::Desired>>,
    ),
    /// The services file and the last modification time seen (`None`
    /// until the first look, so a missing file is reported once).
    File(PathBuf, String, Option<Option<std::time::SystemTime>>),
}

impl DesiredFeed {
    fn start(config: &ServeConfig, services: &Arc<Mutex<ServiceDataplane>>) -> Self {
        match &config.source {
            DesiredSource::ControlPlane(addr) => {
                let (tx, rx) = std::sync::mpsc::channel();
                node_sync::follow(addr.clone(), config.node.clone(), tx);
                let (pods_tx, pods_rx) = std::sync::mpsc::channel();
                ServiceSync::spawn(rx, Arc::clone(services), pods_tx);
                Self::Stream(pods_rx, None)
            }
            DesiredSource::File(path) => Self::File(path.clone(), config.node.clone(), None),
        }
    }

    /// Waits up to `timeout`, returning early when a pod update arrives
    /// (a new pod should not wait for the next tick to start).
    fn wait(&mut self, timeout: Duration) {
        match self {
            Self::Stream(rx, early) => {
                if early.is_none() {
                    *early = rx.recv_timeout(timeout).ok().map(Box::new);
                }
            }
            Self::File(..) => std::thread::sleep(timeout),
        }
    }

    /// Applies whatever arrived since the last call.
    fn apply_pending(
        &mut self,
        services: &Mutex<ServiceDataplane>,
        mut runtime: Option<&mut crate::pods::PodRuntime>,
    ) {
        match self {
            Self::Stream(rx, early) => {
                let arrived = early.take().map(|d| *d).into_iter().chain(rx.try_iter());
                for desired in arrived {
                    let Some(runtime) = runtime.as_deref_mut() else {
                        continue;
                    };
                    match desired {
                        node_sync::Desired::Pods(pods) => runtime.resync(pods),
                        node_sync::Desired::PodUpserted(pod) => runtime.upsert(pod),
                        node_sync::Desired::PodDeleted(pod) => runtime.delete(&pod),
                        node_sync::Desired::Resync(_) | node_sync::Desired::Apply(_) => {
                            tracing::error!("a Service change reached the pod runtime; ignored");
                        }
                    }
                }
            }
            Self::File(path, node, seen) => {
                let stamp = std::fs::metadata(&*path).and_then(|m| m.modified()).ok();
                if *seen == Some(stamp) {
                    return;
                }
                *seen = Some(stamp);
                let received = Instant::now();
                match services_file::read(path, node) {
                    Ok(desired) => match lock(services).resync(&desired, received) {
                        Ok(writes) => {
                            tracing::info!(services = desired.len(), writes, "services synced")
                        }
                        Err(err) => tracing::error!(%err, "syncing services"),
                    },
                    Err(err) => {
                        tracing::error!(%err, "services file ignored; the maps keep their last state")
                    }
                }
            }
        }
    }
}

/// Applies the node-sync stream's Service changes to the maps the moment
/// they arrive, on a thread of its own: the serve loop's pod work (CNI,
/// process starts, probes) never delays a map write. Pod updates are passed
/// on to the serve loop.
struct ServiceSync;

impl ServiceSync {
    fn spawn(
        updates: std::sync::mpsc::Receiver<node_sync::Received>,
        services: Arc<Mutex<ServiceDataplane>>,
        pods: std::sync::mpsc::Sender<node_sync::Desired>,
    ) {
        std::thread::spawn(move || {
            for node_sync::Received { desired, at } in updates {
                let result = match desired {
                    node_sync::Desired::Resync(all) => lock(&services).resync(&all, at),
                    node_sync::Desired::Apply(change) => lock(&services).apply(&change, at),
                    pod_update => {
                        if pods.send(pod_update).is_err() {
                            return;
                        }
                        continue;
                    }
                };
                match result {
                    Ok(writes) => tracing::debug!(writes, "services synced"),
                    Err(err) => tracing::error!(%err, "syncing services"),
                }
            }
        });
    }
}

/// What the serve loop hands the reporter thread.
enum Report {
    Status(crate::pods::StatusReport),
    Event(crate::pods::PodEvent),
}

/// Pod status writes the reporter keeps in flight at once.
const STATUS_WRITES_IN_FLIGHT: usize = 16;

/// Writes pod statuses (latest per pod wins; a conflict is retried with
/// the fresh object) and pod events to the API from a thread of its own,
/// so a slow API server never holds up the pods.
fn status_reporter(addr: String, node: String) -> tokio::sync::mpsc::UnboundedSender<Report> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Report>();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            tracing::error!("cannot start the status reporter");
            return;
        };
        runtime.block_on(async move {
            let mut client = None;
            let mut events = None;
            while let Some(first) = rx.recv().await {
                let mut latest = std::collections::BTreeMap::new();
                let mut happened = Vec::new();
                for report in
                    std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok()))
                {
                    match report {
                        Report::Status(status) => {
                            latest.insert(status.uid.clone(), status);
                        }
                        Report::Event(event) => happened.push(event),
                    }
                }
                if client.is_none() {
                    client = rudder_api::client::Client::connect(&addr).await.ok();
                }
                let Some(c) = client.as_ref() else { continue };
                // Runs on this thread's runtime, between and during the
                // status writes below.
                let (recorder, _) = events
                    .get_or_insert_with(|| EventRecorder::start(c.clone(), "rudder-agent", &node));
                for event in happened {
                    record_pod_event(recorder, event);
                }
                // Several writes in flight: the store commits what queued up
                // together, so a burst of new pods is not reported one fsync
                // at a time.
                let mut writes = tokio::task::JoinSet::new();
                for report in latest.into_values() {
                    while writes.len() >= STATUS_WRITES_IN_FLIGHT {
                        writes.join_next().await;
                    }
                    let c = c.clone();
                    writes.spawn(async move {
                        if let Err(err) = write_status(&c, &report).await {
                            tracing::warn!(pod = %report.name, %err, "reporting pod status");
                        }
                    });
                }
                while writes.join_next().await.is_some() {}
            }
        });
    });
    tx
}

fn record_pod_event(recorder: &EventRecorder, event: crate::pods::PodEvent) {
    let involved = ObjectReference {
        kind: Some("Pod".to_owned()),
        namespace: Some(event.namespace),
        name: Some(event.name),
        uid: Some(event.uid),
        api_version: Some("v1".to_owned()),
        field_path: event
            .container
            .map(|container| format!("spec.containers{{{container}}}")),
        ..ObjectReference::default()
    };
    let type_ = if event.warning {
        EventType::Warning
    } else {
        EventType::Normal
    };
    recorder.record_about(involved, type_, event.reason, event.message);
}

async fn write_status(
    client: &rudder_api::client::Client,
    report: &crate::pods::StatusReport,
) -> Result<(), rudder_api::client::ClientError> {
    use rudder_api::client::ClientError;
    for _ in 0..5 {
        let mut pod: rudder_api::core::Pod = match client.get(&report.namespace, &report.name).await
        {
            Ok(pod) => pod,
            Err(ClientError::NotFound(_)) => return Ok(()),
            Err(err) => return Err(err),
        };
        if pod.metadata.uid != report.uid {
            return Ok(());
        }
        pod.status = Some(report.status.clone());
        match client.update_status(&pod).await {
            Ok(_) => return Ok(()),
            Err(ClientError::Conflict(_)) => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Locks a mutex shared by the serve loop's threads; a thread that
/// panicked holding it leaves the data usable (every write to it is
/// complete before the next one starts).
fn lock<T>(shared: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How often the pod bridge's ports are looked at.
const POD_PORT_POLL: Duration = Duration::from_millis(100);

/// The pod bridge's ports and the service translation on them. A new
/// pod's veth gets it from the pod runtime's hook, before the pod's
/// containers start; a thread following the bridge attaches whatever the
/// hook did not (pods adopted after an agent restart, veths made by other
/// means, attaches that failed) and forgets ports that are gone.
struct PodPorts {
    dataplane: Mutex<Dataplane>,
    /// Ports that have translation attached.
    attached: Mutex<BTreeSet<String>>,
    bridge: String,
    /// The node's bpffs directory.
    dir: PathBuf,
}

impl PodPorts {
    /// Attaches translation to `port` and remembers it.
    fn attach(&self, port: &str) -> Result<(), String> {
        lock(&self.dataplane)
            .attach_pod_interface(port)
            .map_err(|e| e.to_string())?;
        lock(&self.attached).insert(port.to_owned());
        Ok(())
    }

    /// The pod runtime's hook: every host-side interface of a new sandbox
    /// but the bridge itself is a pod's veth.
    fn hook(ports: &Arc<Self>) -> crate::pods::HostInterfaceHook {
        let ports = Arc::clone(ports);
        crate::pods::HostInterfaceHook(Arc::new(move |iface: &str| {
            if iface == ports.bridge {
                return Ok(());
            }
            ports.attach(iface)
        }))
    }

    /// Follows the bridge's ports on a thread of its own.
    fn follow(ports: Arc<Self>) {
        std::thread::spawn(move || {
            while !STOP.load(Ordering::SeqCst) {
                ports.sync();
                std::thread::sleep(POD_PORT_POLL);
            }
        });
    }

    /// Attaches translation to ports not attached yet and forgets the
    /// ports that are gone. A port whose attach failed stays unattached,
    /// so the next round tries again.
    fn sync(&self) {
        let current = match bridge_ports(&self.bridge) {
            Ok(ports) => ports,
            Err(err) => {
                tracing::debug!(%err, bridge = %self.bridge, "no pod bridge yet");
                return;
            }
        };
        let attached = lock(&self.attached).clone();
        for port in current.difference(&attached) {
            match self.attach(port) {
                Ok(()) => tracing::debug!(port, "pod port attached"),
                Err(err) => tracing::warn!(%err, port, "attaching a pod port"),
            }
        }
        for port in attached.difference(&current) {
            if let Err(err) = forget_pod_interface(&self.dir, port) {
                tracing::warn!(%err, port, "forgetting a pod port");
            }
            lock(&self.attached).remove(port);
        }
    }
}

/// Names of the interfaces enslaved to `bridge`.
fn bridge_ports(bridge: &str) -> Result<BTreeSet<String>> {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or_default().to_owned())
        .filter(|name| !name.is_empty())
        .collect())
}

/// The first IPv4 address of `iface`.
fn interface_ipv4(iface: &str) -> Result<Ipv4Addr> {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", iface])
        .output()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next()?.parse().ok())
        .with_context(|| format!("{iface} has no IPv4 address"))
}
