//! Bringing up the node's dataplane when `serve` starts: the programs
//! loaded and attached (uplink, XDP fast path, connect-time hook), the
//! service CIDR blackholed, and the service maps opened for the node's
//! address.

use std::{
    net::Ipv4Addr,
    sync::{Arc, Mutex},
};

use anyhow::{Context, Result};
use rudder_netlink::RouteSocket;

use super::ServeConfig;
use crate::dataplane::{
    Dataplane, KernelProbe, TcAttach,
    kernel::KernelNeeds,
    services::{NodeServiceConfig, ServiceDataplane, install_service_blackhole},
};

/// What [`start_dataplane`] brought up.
pub(super) struct NodeDataplane {
    /// The loaded programs (pod ports get attached to it as pods come).
    pub(super) dataplane: Dataplane,
    /// The uplink's address: the node's address.
    pub(super) node_addr: Ipv4Addr,
    /// The service maps, shared by whatever writes and reads them.
    pub(super) services: Arc<Mutex<ServiceDataplane>>,
}

/// Loads and attaches the programs and opens the service maps.
///
/// # Errors
/// When a program cannot be loaded or attached, the uplink has no IPv4
/// address, or the maps cannot be opened.
pub(super) fn start_dataplane(config: &ServeConfig) -> Result<NodeDataplane> {
    let tc_attach = probe_kernel(config)?;
    let mut dataplane = Dataplane::load(&config.dir)?;
    dataplane.set_tc_attach(tc_attach);
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
    Ok(NodeDataplane {
        dataplane,
        node_addr,
        services,
    })
}

/// Probes the kernel, logs what the agent will use, and refuses what it
/// cannot do (see [`KernelProbe::plan`]).
///
/// # Errors
/// The kernel's shortcoming, said for the operator.
fn probe_kernel(config: &ServeConfig) -> Result<TcAttach> {
    let probe = KernelProbe::run();
    let needs = KernelNeeds {
        attach_mode: config.attach_mode,
        socket_cgroup: config.cgroup.as_deref(),
        pod_cgroup_root: config.pods.as_ref().and_then(|p| p.cgroup_root.as_deref()),
    };
    let plan = probe
        .plan(&needs)
        .context("this kernel cannot run the rudder dataplane as configured")?;
    for line in probe.describe(&plan, &needs, config.xdp) {
        tracing::info!("kernel probe: {line}");
    }
    Ok(plan.tc)
}

/// The first IPv4 address of `iface`.
fn interface_ipv4(iface: &str) -> Result<Ipv4Addr> {
    let mut socket = RouteSocket::open().context("opening a netlink socket")?;
    let link = socket
        .link(iface)
        .with_context(|| format!("looking up {iface}"))?
        .with_context(|| format!("{iface} has no IPv4 address: there is no such interface"))?;
    let addresses = socket
        .addresses(link.index)
        .with_context(|| format!("listing the addresses of {iface}"))?;
    addresses
        .first()
        .map(|(addr, _)| *addr)
        .with_context(|| format!("{iface} has no IPv4 address"))
}
