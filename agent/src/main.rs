//! rudder-agent: the node daemon.
//!
//! ```text
//! rudder-agent [--netns NS] serve --node N --controlplane ADDR | --services FILE [--uplink eth0] [--xdp] ...
//! rudder-agent [--netns NS] dataplane attach --node N --iface eth0 [--iface ...]
//! rudder-agent [--netns NS] dataplane detach --node N --iface eth0
//! ```

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rudder_agent::dataplane::{self, Dataplane};

#[derive(Parser)]
#[command(name = "rudder-agent", version, about = "rudder node agent")]
struct Cli {
    /// Network namespace (under /run/netns) this node lives in. The agent
    /// enters it with setns, keeping the machine's mounts (bpffs pins must
    /// outlive the agent, which `ip netns exec`'s private /sys would not allow).
    #[arg(long, global = true, env = "RUDDER_NETNS")]
    netns: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node: its pods (with --controlplane), its dataplane kept equal
    /// to the desired Services, conntrack collection, metrics.
    Serve(Box<ServeArgs>),
    /// Operate the node's eBPF dataplane.
    #[command(subcommand)]
    Dataplane(DataplaneCommand),
    /// Join a cluster (kubeadm join): check the control plane's CA against
    /// the pinned hash, get a node certificate with the bootstrap token,
    /// write agent.kubeconfig and agent.env, start rudder-agent.service.
    Join(JoinArgs),
}

#[derive(clap::Args)]
struct JoinArgs {
    /// The control plane's gRPC address, `https://host:port`.
    #[arg(long)]
    server: String,
    /// The bootstrap token (`<id>.<secret>`) from `rudder-controlplane
    /// init` or `rudder-controlplane token create`.
    #[arg(long, env = "RUDDER_JOIN_TOKEN", hide_env_values = true)]
    token: String,
    /// `sha256:<hex>` of the cluster CA's public key, as `init` printed.
    #[arg(long)]
    ca_cert_hash: String,
    /// This node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Where agent.kubeconfig and agent.env go.
    #[arg(long, env = "RUDDER_CONFIG_DIR", default_value = "/etc/rudder")]
    config_dir: PathBuf,
    /// Do not start rudder-agent.service.
    #[arg(long)]
    no_start: bool,
    /// More `serve` options for agent.env (after `--`), e.g. `--pod-cidr 10.244.1.0/24`.
    #[arg(last = true)]
    serve_args: Vec<String>,
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    node: NodeDir,
    /// The control plane's gRPC address (`https://host:port`): Services,
    /// Endpoints and this node's pods come from its node-sync stream. A
    /// replicated control plane: every replica's, comma-separated (the
    /// agent uses one and moves to the next when it goes away).
    #[arg(
        long,
        env = "RUDDER_CONTROLPLANE",
        conflicts_with = "services",
        required_unless_present = "services"
    )]
    controlplane: Option<String>,
    /// The kubeconfig with the cluster CA and this node's credentials
    /// (without it the control plane must be --insecure-plaintext).
    #[arg(long, env = "RUDDER_KUBECONFIG", conflicts_with = "services")]
    kubeconfig: Option<PathBuf>,
    /// Or: a file of Services with their endpoints (JSON; see the
    /// serve::services_file docs), for a node without a control plane.
    #[arg(long)]
    services: Option<PathBuf>,
    /// The uplink interface; NodePorts are served on its address.
    #[arg(long, default_value = "eth0")]
    uplink: String,
    /// Attach the XDP NodePort fast path (needs complete checksums on the
    /// uplink, as physical NICs deliver).
    #[arg(long)]
    xdp: bool,
    /// How tc programs attach: `tcx` (links, kernel 6.6+), `tc` (clsact
    /// filters over netlink, any kernel) or `auto` (TCX where the kernel
    /// has it).
    #[arg(long, env = "RUDDER_ATTACH_MODE", default_value = "auto")]
    attach_mode: dataplane::AttachMode,
    /// The pod bridge; its ports get service translation.
    #[arg(long, default_value = "cni0")]
    bridge: String,
    /// cgroup v2 directory whose processes get connect-time translation.
    #[arg(long)]
    cgroup: Option<PathBuf>,
    /// The service CIDR; untranslated packets to it are blackholed.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// Where to serve Prometheus metrics (/metrics).
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Source ports for NodePort SNAT, FIRST-LAST (keep them out of the
    /// ephemeral range).
    #[arg(long, default_value = "40000-49999", value_parser = parse_port_range)]
    snat_ports: std::ops::RangeInclusive<u16>,
    /// Source address of hairpin flows (must route from pods to their gateway).
    #[arg(long, default_value = "169.254.42.1")]
    hairpin_addr: std::net::Ipv4Addr,
    /// Seconds between conntrack collections.
    #[arg(long, default_value_t = 10)]
    gc_interval_s: u64,
    /// This node's pod subnet (with --controlplane: announced in the Node
    /// object; the other nodes route it here). Inside --cluster-cidr.
    #[arg(long)]
    pod_cidr: Option<String>,
    /// The cluster's pod network (kube-proxy's --cluster-cidr). Routes to
    /// other nodes' pod CIDRs are installed only inside it and never over
    /// this node's own or an older node's: a Node object claiming
    /// 0.0.0.0/0 or another node's CIDR reroutes nothing.
    #[arg(long, default_value = "10.244.0.0/16", value_parser = rudder_netlink::Ipv4Subnet::parse_network)]
    cluster_cidr: rudder_netlink::Ipv4Subnet,
    /// Seconds the node counts as alive without renewing its lease.
    #[arg(long, default_value_t = 40)]
    lease_seconds: u64,
    /// Pod records and container logs (default /var/lib/rudder/<node>).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// CNI network configurations, as a container runtime reads them.
    #[arg(long, default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// CNI plugin binaries.
    #[arg(long, default_value = "/opt/cni/bin")]
    cni_bin_dir: PathBuf,
    /// Pod sandboxes (network namespaces) are named <prefix>-<pod uid>
    /// (default: rudder-<node>).
    #[arg(long)]
    sandbox_prefix: Option<String>,
    /// A cgroup v2 directory: each pod gets a group under it with its
    /// memory and cpu limits.
    #[arg(long)]
    pod_cgroup_root: Option<PathBuf>,
    /// A directory put first in containers' PATH (repeatable).
    #[arg(long = "extra-path")]
    extra_path: Vec<PathBuf>,
}

fn parse_port_range(text: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let (first, last) = text
        .split_once('-')
        .ok_or("expected FIRST-LAST, e.g. 40000-49999")?;
    let first: u16 = first.parse().map_err(|e| format!("first port: {e}"))?;
    let last: u16 = last.parse().map_err(|e| format!("last port: {e}"))?;
    if first == 0 || last < first {
        return Err(format!("{first}-{last} is not a range of ports"));
    }
    Ok(first..=last)
}

#[derive(clap::Args)]
struct NodeDir {
    /// The node's name; its pins live in <bpffs-root>/<node>.
    #[arg(long, env = "RUDDER_NODE")]
    node: String,
    /// Directory on a bpffs holding every node's pins.
    #[arg(long, env = "RUDDER_BPFFS_ROOT", default_value = "/sys/fs/bpf/rudder")]
    bpffs_root: PathBuf,
}

impl NodeDir {
    fn dir(&self) -> PathBuf {
        self.bpffs_root.join(&self.node)
    }
}

#[derive(Subcommand)]
enum DataplaneCommand {
    /// Load the kernel programs and attach the packet counters to interfaces.
    /// Links stay pinned after the agent exits; running it again switches
    /// them to the programs of this binary without a gap.
    Attach {
        #[command(flatten)]
        node: NodeDir,
        /// Interface to attach to (repeatable).
        #[arg(long = "iface", required = true)]
        ifaces: Vec<String>,
    },
    /// Detach the packet counters from interfaces (removes the pinned links).
    Detach {
        #[command(flatten)]
        node: NodeDir,
        /// Interface to detach from (repeatable).
        #[arg(long = "iface", required = true)]
        ifaces: Vec<String>,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Some(netns) = &cli.netns {
        enter_netns(netns)?;
    }
    match cli.command {
        Command::Serve(args) => {
            let args = *args;
            let dir = args.node.dir();
            let node_name = args.node.node.clone();
            let pods = args
                .controlplane
                .as_ref()
                .map(|_| rudder_agent::pods::PodRuntimeConfig {
                    node: node_name.clone(),
                    // Filled in by `serve` once the uplink address is known.
                    node_addr: std::net::Ipv4Addr::UNSPECIFIED,
                    state_dir: args
                        .state_dir
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("/var/lib/rudder").join(&node_name)),
                    cni_conf_dir: args.cni_conf_dir.clone(),
                    cni_bin_dir: args.cni_bin_dir.clone(),
                    sandbox_prefix: args
                        .sandbox_prefix
                        .clone()
                        .unwrap_or_else(|| format!("rudder-{node_name}")),
                    cgroup_root: args.pod_cgroup_root.clone(),
                    extra_path: args.extra_path.clone(),
                    // Set by `serve`, which owns the dataplane.
                    host_interface_hook: None,
                    // Filled by `serve`'s node-sync stream.
                    services: rudder_agent::pods::ServiceEnvironment::default(),
                });
            if let Some(pod_cidr) = &args.pod_cidr {
                let subnet = rudder_netlink::Ipv4Subnet::parse_network(pod_cidr)
                    .map_err(|err| anyhow::anyhow!("--pod-cidr: {err}"))?;
                if !args.cluster_cidr.covers(subnet) {
                    anyhow::bail!(
                        "--pod-cidr {subnet} is not inside --cluster-cidr {}",
                        args.cluster_cidr
                    );
                }
            }
            let has_controlplane = args.controlplane.is_some();
            let config = rudder_agent::serve::ServeConfig {
                node: args.node.node,
                dir,
                uplink: args.uplink,
                xdp: args.xdp,
                attach_mode: args.attach_mode,
                bridge: args.bridge,
                cgroup: args.cgroup,
                service_cidr: args.service_cidr,
                source: match (args.controlplane, args.services) {
                    (Some(addr), _) => rudder_agent::serve::StateSource::ControlPlane(api_access(
                        &addr,
                        args.kubeconfig.as_deref(),
                    )?),
                    (None, Some(file)) => rudder_agent::serve::StateSource::File(file),
                    (None, None) => anyhow::bail!("give --controlplane or --services"),
                },
                metrics_listen: args.metrics_listen,
                snat_ports: args.snat_ports,
                hairpin_addr: args.hairpin_addr,
                gc_interval: std::time::Duration::from_secs(args.gc_interval_s),
                pod_cidr: args.pod_cidr,
                cluster_cidr: args.cluster_cidr,
                lease_duration: std::time::Duration::from_secs(args.lease_seconds.max(3)),
                pods,
            };
            // Built only now: the runtime's threads must start inside the
            // node's network namespace, which `enter_netns` entered above.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the agent's runtime")?;
            // A node certificate is renewed into the kubeconfig before it
            // expires; the clients re-read the file when they connect.
            if let (Some(path), true) = (&args.kubeconfig, has_controlplane) {
                runtime.spawn(rudder_agent::join::renew_forever(
                    path.clone(),
                    node_name.clone(),
                ));
            }
            let served = runtime.block_on(rudder_agent::serve::serve(&config));
            // Tasks still running (streams, followers) end with the process.
            runtime.shutdown_background();
            served?;
        }
        Command::Join(args) => {
            let node_name = match args.node_name {
                Some(name) => name,
                None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .context("reading the host name (or give --node-name)")?
                    .trim()
                    .to_lowercase(),
            };
            let options = rudder_agent::join::JoinOptions {
                server: args.server,
                token: args.token,
                ca_cert_hash: args.ca_cert_hash,
                node_name,
                config_dir: args.config_dir,
                no_start: args.no_start,
                serve_args: args.serve_args,
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a runtime")?
                .block_on(rudder_agent::join::join(&options))?;
        }
        Command::Dataplane(DataplaneCommand::Attach { node, ifaces }) => {
            let mut dataplane = Dataplane::load(&node.dir())?;
            for iface in &ifaces {
                dataplane.attach_counters(iface)?;
                tracing::info!(iface, dir = %node.dir().display(), "packet counters attached");
            }
        }
        Command::Dataplane(DataplaneCommand::Detach { node, ifaces }) => {
            for iface in &ifaces {
                dataplane::detach_counters(&node.dir(), iface)?;
                tracing::info!(iface, "packet counters detached");
            }
        }
    }
    Ok(())
}

/// Moves this (still single-threaded) process into the node's network namespace.
fn enter_netns(name: &str) -> Result<()> {
    let path = format!("/run/netns/{name}");
    let file = File::open(&path).with_context(|| format!("node network namespace {path}"))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering network namespace {name}"))?;
    Ok(())
}

/// How the agent reaches the API server: the kubeconfig's credentials
/// (its server replaced by `--controlplane`), or plaintext without one.
fn api_access(addr: &str, kubeconfig: Option<&Path>) -> Result<rudder_client::ClientConfig> {
    let Some(path) = kubeconfig else {
        return Ok(rudder_client::ClientConfig::insecure(addr));
    };
    let mut config = rudder_client::Kubeconfig::load(path)
        .and_then(|k| k.client_config(path, None))
        .with_context(|| format!("--kubeconfig {}", path.display()))?;
    config.server = addr
        .split(',')
        .map(|one| {
            if one.contains("://") {
                one.to_owned()
            } else {
                format!("https://{one}")
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    // A renewed certificate is written into this file: read it again on
    // every connect.
    config.reload_from = Some(path.to_path_buf());
    Ok(config)
}
