//! The CNI commands: what ADD, DEL, CHECK, STATUS, GC and VERSION do.

use std::net::Ipv4Addr;

use rudder_netlink::{Errno, InfoKind, LinkState, NetlinkError, RouteSocket, VethEnd, format_mac};
use serde_json::{Value, json};

use crate::{
    bandwidth::{self, BandwidthRecord},
    config::{self, NetConf},
    env::{Attachment, Command, Invocation},
    error::{CniError, Result},
    ipam::AllocationStore,
    names,
    result::{CniResult, Interface, IpConfig, Route},
    sandbox::Sandbox,
    version::CniVersion,
};

/// Runs one invocation; returns what goes to stdout (nothing for DEL,
/// CHECK, STATUS and GC).
///
/// # Errors
///
/// The failure, to be reported as the spec's error JSON with exit code 1.
pub fn run(invocation: &Invocation, stdin: &[u8]) -> Result<Option<Value>> {
    if invocation.command == Command::Version {
        return Ok(Some(version(stdin)));
    }
    let conf = NetConf::parse(stdin)?;
    match invocation.command {
        Command::Add => add(invocation, &conf).map(Some),
        Command::Del => del(invocation, &conf).map(|()| None),
        Command::Check => check(invocation, &conf).map(|()| None),
        Command::Status => status(&conf).map(|()| None),
        Command::Gc => gc(&conf).map(|()| None),
        Command::Version => Ok(Some(version(stdin))),
    }
}

/// The error JSON of the spec for `err`, in the version of the config on
/// stdin when it names a supported one.
pub fn error_json(err: &CniError, stdin: &[u8]) -> Value {
    let version = config::peek_version(stdin)
        .and_then(|v| CniVersion::parse(&v).ok())
        .unwrap_or(CniVersion::LATEST);
    let mut value = json!({
        "cniVersion": version.as_str(),
        "code": err.code(),
        "msg": err.to_string(),
    });
    if let Some(details) = err.details() {
        value["details"] = Value::from(details);
    }
    value
}

/// VERSION: the versions supported, in the version asked for (the newest
/// when none or an unknown one is asked for).
fn version(stdin: &[u8]) -> Value {
    let asked = config::peek_version(stdin)
        .and_then(|v| CniVersion::parse(&v).ok())
        .unwrap_or(CniVersion::LATEST);
    json!({
        "cniVersion": asked.as_str(),
        "supportedVersions": CniVersion::SUPPORTED.map(CniVersion::as_str),
    })
}

fn open_node_socket() -> Result<RouteSocket> {
    RouteSocket::open().map_err(|e| CniError::netlink("cannot open a netlink socket", e))
}

fn is_errno(err: &NetlinkError, errno: Errno) -> bool {
    err.errno() == Some(errno)
}

/// ADD: bridge (if missing), address, veth pair, sandbox configuration,
/// bandwidth record, result. A failure undoes what this call made.
fn add(invocation: &Invocation, conf: &NetConf) -> Result<Value> {
    let attachment = invocation.attachment()?;
    invocation.required_plugin_path()?;
    let sandbox = Sandbox::open_existing(invocation.required_netns()?)?;
    let mut node = open_node_socket()?;
    let bridge = ensure_bridge(&mut node, conf)?;
    let store = AllocationStore::open(conf.allocation_dir(), &conf.name)?;
    let ip = store.allocate(&attachment, &conf.ipam)?;
    let host_veth = names::host_veth_name(&attachment);
    let wired = create_veth(&mut node, conf, &attachment, &sandbox, &bridge, ip).and_then(|()| {
        let configured = configure_sandbox(conf, &attachment, &sandbox, ip);
        let recorded = configured.and_then(|()| record_bandwidth(conf, &attachment, &host_veth));
        if recorded.is_err() {
            // Deleting the host end takes the sandbox end with it.
            let _ = node.delete_link(&host_veth);
        }
        recorded
    });
    if let Err(err) = wired {
        let _ = store.release(&attachment);
        return Err(err);
    }
    let result = attachment_result(conf, &attachment, &sandbox, &bridge, &host_veth, ip);
    let result = match &conf.prev_result {
        Some(prev) => chain(prev, result),
        None => result,
    };
    Ok(result.to_value(conf.version))
}

/// The node bridge, created with the gateway address if missing.
fn ensure_bridge(node: &mut RouteSocket, conf: &NetConf) -> Result<LinkState> {
    let name = &conf.bridge;
    let lookup = |node: &mut RouteSocket| {
        node.link(name)
            .map_err(|e| CniError::netlink(format!("cannot look up bridge {name}"), e))
    };
    let bridge = match lookup(node)? {
        Some(link) => link,
        None => {
            let mac = names::mac_for(conf.ipam.gateway);
            match node.create_bridge(name, mac, conf.mtu) {
                // Another ADD created it meanwhile: just as good.
                Err(e) if !is_errno(&e, Errno::EEXIST) => {
                    return Err(CniError::netlink(format!("cannot create bridge {name}"), e));
                }
                _ => {}
            }
            lookup(node)?.ok_or_else(|| {
                CniError::netlink(
                    format!("bridge {name} vanished right after its creation"),
                    NetlinkError::Kernel(Errno::ENODEV),
                )
            })?
        }
    };
    if bridge.kind != Some(InfoKind::Bridge) {
        return Err(CniError::InterfaceExists(format!(
            "interface {name} exists and is not a bridge (config key \"bridge\")"
        )));
    }
    if !bridge.up {
        node.set_up(bridge.index)
            .map_err(|e| CniError::netlink(format!("cannot set bridge {name} up"), e))?;
    }
    let (gateway, prefix) = (conf.ipam.gateway, conf.ipam.subnet.prefix_len());
    match node.add_address(bridge.index, gateway, prefix) {
        Err(e) if !is_errno(&e, Errno::EEXIST) => Err(CniError::netlink(
            format!("cannot add gateway address {gateway}/{prefix} to bridge {name}"),
            e,
        )),
        _ => Ok(bridge),
    }
}

/// The veth pair: host end on the bridge, sandbox end straight in the sandbox.
fn create_veth(
    node: &mut RouteSocket,
    conf: &NetConf,
    attachment: &Attachment,
    sandbox: &Sandbox,
    bridge: &LinkState,
    ip: Ipv4Addr,
) -> Result<()> {
    let host_name = names::host_veth_name(attachment);
    let host = VethEnd {
        name: &host_name,
        mac: names::host_veth_mac(attachment),
        master: Some(bridge.index),
        mtu: conf.mtu,
    };
    let peer = VethEnd {
        name: &attachment.ifname,
        mac: names::mac_for(ip),
        master: None,
        mtu: conf.mtu,
    };
    node.create_veth(&host, &peer, sandbox.fd()).map_err(|e| {
        if is_errno(&e, Errno::EEXIST) {
            CniError::InterfaceExists(format!(
                "cannot create veth {host_name} (node) / {} (in {}): an interface of that name exists",
                attachment.ifname,
                sandbox.path()
            ))
        } else {
            CniError::netlink(
                format!("cannot create veth {host_name} / {} in {}", attachment.ifname, sandbox.path()),
                e,
            )
        }
    })
}

/// Inside the sandbox: loopback up, the address, the routes.
fn configure_sandbox(
    conf: &NetConf,
    attachment: &Attachment,
    sandbox: &Sandbox,
    ip: Ipv4Addr,
) -> Result<()> {
    let ifname = &attachment.ifname;
    let at = sandbox.path();
    sandbox.run(|| {
        let mut socket = RouteSocket::open()
            .map_err(|e| CniError::netlink(format!("cannot open a netlink socket in {at}"), e))?;
        let link = socket
            .link(ifname)
            .map_err(|e| CniError::netlink(format!("cannot look up {ifname} in {at}"), e))?
            .ok_or_else(|| {
                CniError::netlink(
                    format!("{ifname} is missing in {at} right after its creation"),
                    NetlinkError::Kernel(Errno::ENODEV),
                )
            })?;
        let lo = socket
            .link("lo")
            .map_err(|e| CniError::netlink(format!("cannot look up lo in {at}"), e))?;
        if let Some(lo) = lo.filter(|lo| !lo.up) {
            socket
                .set_up(lo.index)
                .map_err(|e| CniError::netlink(format!("cannot set lo up in {at}"), e))?;
        }
        if !link.up {
            socket
                .set_up(link.index)
                .map_err(|e| CniError::netlink(format!("cannot set {ifname} up in {at}"), e))?;
        }
        let prefix = conf.ipam.subnet.prefix_len();
        socket.add_address(link.index, ip, prefix).map_err(|e| {
            CniError::netlink(format!("cannot add {ip}/{prefix} to {ifname} in {at}"), e)
        })?;
        for route in &conf.ipam.routes {
            match socket.add_route(route.dst, route.gw, link.index) {
                Ok(()) => {}
                // A second attachment of this network in the same sandbox
                // (eth1 beside eth0): the first interface's route wins, as
                // with the reference bridge plugin; the address is still
                // reachable on the subnet's own route.
                Err(e) if is_errno(&e, Errno::EEXIST) => {}
                Err(e) => {
                    return Err(CniError::netlink(
                        format!(
                            "cannot add route {} via {} dev {ifname} in {at}",
                            route.dst, route.gw
                        ),
                        e,
                    ));
                }
            }
        }
        Ok(())
    })
}

fn record_bandwidth(conf: &NetConf, attachment: &Attachment, host_veth: &str) -> Result<()> {
    let Some(limits) = conf.bandwidth else {
        return Ok(());
    };
    BandwidthRecord {
        network: conf.name.clone(),
        container_id: attachment.container_id.clone(),
        ifname: attachment.ifname.clone(),
        host_veth: host_veth.to_owned(),
        limits,
    }
    .write(&conf.bandwidth_dir)
    .map(drop)
}

/// What this plugin did, as a result: bridge, host veth, sandbox interface.
fn attachment_result(
    conf: &NetConf,
    attachment: &Attachment,
    sandbox: &Sandbox,
    bridge: &LinkState,
    host_veth: &str,
    ip: Ipv4Addr,
) -> CniResult {
    let gateway = conf.ipam.gateway;
    CniResult {
        interfaces: vec![
            Interface {
                name: conf.bridge.clone(),
                mac: bridge.mac.map(format_mac),
                ..Interface::default()
            },
            Interface {
                name: host_veth.to_owned(),
                mac: Some(format_mac(names::host_veth_mac(attachment))),
                mtu: conf.mtu,
                ..Interface::default()
            },
            Interface {
                name: attachment.ifname.clone(),
                mac: Some(format_mac(names::mac_for(ip))),
                mtu: conf.mtu,
                sandbox: Some(sandbox.path().to_owned()),
                ..Interface::default()
            },
        ],
        ips: vec![IpConfig {
            address: format!("{ip}/{}", conf.ipam.subnet.prefix_len()),
            gateway: Some(gateway.into()),
            interface: Some(2),
            extra: Default::default(),
        }],
        routes: conf
            .ipam
            .routes
            .iter()
            .map(|route| Route {
                dst: route.dst.to_string(),
                gw: Some(route.gw.into()),
                extra: Default::default(),
            })
            .collect(),
        dns: conf.dns.clone(),
    }
}

/// Appends this plugin's result to the previous plugin's.
fn chain(prev: &CniResult, mut ours: CniResult) -> CniResult {
    let mut merged = prev.clone();
    let offset = merged.interfaces.len();
    for ip in &mut ours.ips {
        ip.interface = ip.interface.map(|i| i + offset);
    }
    merged.interfaces.append(&mut ours.interfaces);
    merged.ips.append(&mut ours.ips);
    merged.routes.append(&mut ours.routes);
    if !ours.dns.is_empty() {
        merged.dns = ours.dns;
    }
    merged
}

/// DEL: host veth (and so its peer), address, bandwidth record; whatever is
/// already gone is skipped.
fn del(invocation: &Invocation, conf: &NetConf) -> Result<()> {
    let attachment = invocation.attachment()?;
    let host_veth = names::host_veth_name(&attachment);
    let mut node = open_node_socket()?;
    match node.delete_link(&host_veth) {
        Err(e) if !is_errno(&e, Errno::ENODEV) => {
            return Err(CniError::netlink(
                format!("cannot delete veth {host_veth}"),
                e,
            ));
        }
        _ => {}
    }
    let dir = conf.allocation_dir();
    if dir.is_dir() {
        AllocationStore::open(dir, &conf.name)?.release(&attachment)?;
    }
    bandwidth::remove_record(&conf.bandwidth_dir, &attachment)
}

/// CHECK: the attachment is as ADD left it (prevResult is ADD's result).
fn check(invocation: &Invocation, conf: &NetConf) -> Result<()> {
    let attachment = invocation.attachment()?;
    invocation.required_plugin_path()?;
    let netns = invocation.required_netns()?;
    let sandbox = Sandbox::open_existing(netns)?;
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::config("prevResult", "missing: CHECK needs the result of ADD"))?;
    let ifname = &attachment.ifname;
    let index = prev.sandbox_interface(ifname, netns).ok_or_else(|| {
        CniError::CheckFailed(format!("prevResult has no interface {ifname} in {netns}"))
    })?;
    let expected: Vec<(Ipv4Addr, u8)> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(index))
        .filter_map(IpConfig::ipv4)
        .collect();
    if expected.is_empty() {
        return Err(CniError::CheckFailed(format!(
            "prevResult gives {ifname} no IPv4 address"
        )));
    }
    let expected_mac = prev.interfaces[index].mac.clone();

    let dir = conf.allocation_dir();
    let allocated = if dir.is_dir() {
        AllocationStore::open(dir, &conf.name)?.lookup(&attachment)?
    } else {
        None
    };
    match allocated {
        Some(ip) if expected.iter().any(|(e, _)| *e == ip) => {}
        Some(ip) => {
            return Err(CniError::CheckFailed(format!(
                "network {} allocated {ip} to {} {ifname}, prevResult says {:?}",
                conf.name, attachment.container_id, expected
            )));
        }
        None => {
            return Err(CniError::CheckFailed(format!(
                "network {} holds no address for {} {ifname}",
                conf.name, attachment.container_id
            )));
        }
    }

    let mut node = open_node_socket()?;
    let host_veth = names::host_veth_name(&attachment);
    let bridge = node
        .link(&conf.bridge)
        .map_err(|e| CniError::netlink(format!("cannot look up bridge {}", conf.bridge), e))?
        .ok_or_else(|| CniError::CheckFailed(format!("bridge {} is missing", conf.bridge)))?;
    let host = node
        .link(&host_veth)
        .map_err(|e| CniError::netlink(format!("cannot look up {host_veth}"), e))?
        .ok_or_else(|| CniError::CheckFailed(format!("host veth {host_veth} is missing")))?;
    if host.master != Some(bridge.index) {
        return Err(CniError::CheckFailed(format!(
            "host veth {host_veth} is not a port of bridge {}",
            conf.bridge
        )));
    }

    sandbox.run(|| {
        let mut socket = RouteSocket::open().map_err(|e| {
            CniError::netlink(format!("cannot open a netlink socket in {netns}"), e)
        })?;
        let link = socket
            .link(ifname)
            .map_err(|e| CniError::netlink(format!("cannot look up {ifname} in {netns}"), e))?
            .ok_or_else(|| CniError::CheckFailed(format!("{ifname} is missing in {netns}")))?;
        if !link.up {
            return Err(CniError::CheckFailed(format!(
                "{ifname} in {netns} is down"
            )));
        }
        if let (Some(want), Some(have)) = (&expected_mac, link.mac.map(format_mac))
            && !want.eq_ignore_ascii_case(&have)
        {
            return Err(CniError::CheckFailed(format!(
                "{ifname} in {netns} has hardware address {have}, prevResult says {want}"
            )));
        }
        let addresses = socket
            .addresses(link.index)
            .map_err(|e| CniError::netlink(format!("cannot list addresses in {netns}"), e))?;
        for (ip, prefix) in &expected {
            if !addresses.contains(&(*ip, *prefix)) {
                return Err(CniError::CheckFailed(format!(
                    "{ifname} in {netns} lacks {ip}/{prefix}"
                )));
            }
        }
        let routes = socket
            .routes()
            .map_err(|e| CniError::netlink(format!("cannot list routes in {netns}"), e))?;
        for route in &conf.ipam.routes {
            // On any interface: a second attachment of the network in the
            // sandbox leaves the route to the first one (see ADD).
            let present = routes
                .iter()
                .any(|r| r.dst == route.dst && r.gw == Some(route.gw));
            if !present {
                return Err(CniError::CheckFailed(format!(
                    "route {} via {} dev {ifname} is missing in {netns}",
                    route.dst, route.gw
                )));
            }
        }
        Ok(())
    })
}

/// STATUS: ADD can work if the allocation directory is writable.
fn status(conf: &NetConf) -> Result<()> {
    if !conf.version.has_gc_and_status() {
        return Err(CniError::CommandNeedsNewerVersion {
            command: "STATUS",
            version: conf.version.to_string(),
        });
    }
    AllocationStore::open(conf.allocation_dir(), &conf.name)
        .and_then(|store| store.probe_writable())
        .map_err(|err| CniError::NotAvailable(err.to_string()))
}

/// GC: release every allocation (and its veth and bandwidth record) whose
/// attachment is not in `cni.dev/valid-attachments`.
fn gc(conf: &NetConf) -> Result<()> {
    if !conf.version.has_gc_and_status() {
        return Err(CniError::CommandNeedsNewerVersion {
            command: "GC",
            version: conf.version.to_string(),
        });
    }
    let valid = conf.valid_attachments.as_ref().ok_or_else(|| {
        CniError::config(
            "cni.dev/valid-attachments",
            "missing: GC needs the list of attachments to keep",
        )
    })?;
    let keep = |attachment: &Attachment| valid.contains(attachment);
    let dir = conf.allocation_dir();
    if dir.is_dir() {
        let released = AllocationStore::open(dir, &conf.name)?.retain(keep)?;
        let stale: Vec<Attachment> = released
            .into_iter()
            .filter_map(|(_, owner)| owner)
            .collect();
        if !stale.is_empty() {
            let mut node = open_node_socket()?;
            for attachment in &stale {
                let host_veth = names::host_veth_name(attachment);
                match node.delete_link(&host_veth) {
                    Err(e) if !is_errno(&e, Errno::ENODEV) => {
                        return Err(CniError::netlink(
                            format!("cannot delete veth {host_veth}"),
                            e,
                        ));
                    }
                    _ => {}
                }
            }
        }
    }
    bandwidth::remove_records_except(&conf.bandwidth_dir, &conf.name, keep)
}
