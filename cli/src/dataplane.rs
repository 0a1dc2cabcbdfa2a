//! `rudderctl dataplane ...`: a node's eBPF maps, read directly from their
//! bpffs pins on that node (like `cilium-dbg bpf ...`).

use std::{collections::HashMap, net::Ipv4Addr, path::PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use dataplane_common::service::{
    BACKEND_DRAINING, BACKEND_LOCAL, Backend, BackendSlotKey, CT_CLOSING, CT_FORWARD, CT_REPLY,
    CT_SNAT, ConntrackEntry, ConntrackKey, FRONTEND_AFFINITY, FRONTEND_EXTERNAL_LOCAL,
    FRONTEND_MAGLEV, FRONTEND_NODE_PORT, Frontend, FrontendKey, ipv4_from_net, port_from_net,
};
use rudder_dataplane_maps::{
    BandwidthMaps, Protocol, ServiceMaps, monotonic_now_ns, read_interface_counters,
};

/// Where a node's pins live.
#[derive(clap::Args)]
pub struct NodePins {
    /// The node's name; its pins live in <bpffs-root>/<node>.
    #[arg(long, env = "RUDDER_NODE")]
    node: String,
    /// Directory on a bpffs holding every node's pins.
    #[arg(long, env = "RUDDER_BPFFS_ROOT", default_value = "/sys/fs/bpf/rudder")]
    bpffs_root: PathBuf,
}

impl NodePins {
    fn dir(&self) -> PathBuf {
        self.bpffs_root.join(&self.node)
    }
}

/// Subcommands of `rudderctl dataplane`.
#[derive(Subcommand)]
pub enum DataplaneCommand {
    /// Frontends (ClusterIP:port, NodeIP:NodePort) with their backends.
    Services {
        #[command(flatten)]
        pins: NodePins,
    },
    /// Backends by id.
    Backends {
        #[command(flatten)]
        pins: NodePins,
    },
    /// Conntrack entries of translated flows.
    Conntrack {
        #[command(flatten)]
        pins: NodePins,
    },
    /// Packet and byte counters per interface and hook.
    Counters {
        #[command(flatten)]
        pins: NodePins,
    },
    /// Per-pod bandwidth limits (by host veth and direction): rate, burst,
    /// which path enforces them, tokens left and what the bucket did.
    Bandwidth {
        #[command(flatten)]
        pins: NodePins,
    },
}

/// Runs one `rudderctl dataplane` subcommand.
pub fn run(command: DataplaneCommand) -> Result<()> {
    match command {
        DataplaneCommand::Services { pins } => print_services(&pins),
        DataplaneCommand::Backends { pins } => print_backends(&pins),
        DataplaneCommand::Conntrack { pins } => print_conntrack(&pins),
        DataplaneCommand::Counters { pins } => print_counters(&pins),
        DataplaneCommand::Bandwidth { pins } => print_bandwidth(&pins),
    }
}

fn print_counters(pins: &NodePins) -> Result<()> {
    let counters = read_interface_counters(&pins.dir())
        .with_context(|| format!("node {}: is its agent's dataplane loaded?", pins.node))?;
    println!(
        "{:<8} {:<11} {:>12} {:>14}",
        "IFINDEX", "HOOK", "PACKETS", "BYTES"
    );
    for c in counters {
        println!(
            "{:<8} {:<11} {:>12} {:>14}",
            c.ifindex,
            c.hook.as_str(),
            c.counters.packets,
            c.counters.bytes
        );
    }
    Ok(())
}

fn print_bandwidth(pins: &NodePins) -> Result<()> {
    let entries = BandwidthMaps::open(&pins.dir())
        .and_then(|maps| maps.entries())
        .with_context(|| format!("node {}: is its agent's dataplane loaded?", pins.node))?;
    let now = monotonic_now_ns();
    println!(
        "{:<8} {:<8} {:>12} {:>10} {:<17} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "IFINDEX",
        "POD DIR",
        "RATE",
        "BURST",
        "PATH",
        "TOKENS",
        "PASSED",
        "MARKED",
        "DROPPED",
        "DELAYED"
    );
    for entry in entries {
        let limit = &entry.limit;
        let c = &entry.counters;
        println!(
            "{:<8} {:<8} {:>12} {:>10} {:<17} {:>10} {:>10} {:>9} {:>9} {:>9}",
            entry.ifindex,
            entry.direction.as_str(),
            bits_per_second(limit.rate_bytes_per_sec.saturating_mul(8)),
            limit.burst_bytes,
            entry.path(),
            limit.tokens(now),
            c.passed_packets,
            c.marked_packets,
            c.dropped_packets,
            c.delayed_packets
        );
    }
    Ok(())
}

/// `20M` style (decimal units, as the annotations take them).
fn bits_per_second(bps: u64) -> String {
    match bps {
        b if b >= 1_000_000_000 && b % 1_000_000_000 == 0 => format!("{}G", b / 1_000_000_000),
        b if b >= 1_000_000 && b % 1_000_000 == 0 => format!("{}M", b / 1_000_000),
        b if b >= 1_000 && b % 1_000 == 0 => format!("{}k", b / 1_000),
        b => b.to_string(),
    }
}

fn open_maps(pins: &NodePins) -> Result<ServiceMaps> {
    ServiceMaps::open(&pins.dir())
        .with_context(|| format!("node {}: is its agent's dataplane loaded?", pins.node))
}

fn addr(net: u32, port: u16) -> String {
    format!(
        "{}:{}",
        Ipv4Addr::from(ipv4_from_net(net)),
        port_from_net(port)
    )
}

fn proto_name(number: u8) -> &'static str {
    Protocol::from_number(number).map_or("?", Protocol::as_str)
}

fn print_services(pins: &NodePins) -> Result<()> {
    let maps = open_maps(pins)?;
    let mut frontends: Vec<(FrontendKey, Frontend)> =
        maps.frontends.iter().collect::<Result<_, _>>()?;
    frontends.sort_by_key(|(k, _)| (k.addr.swap_bytes(), k.port.swap_bytes(), k.proto));
    let backends: HashMap<u32, Backend> = maps.backends.iter().collect::<Result<_, _>>()?;
    println!("{:<26} {:>4} {:<24} BACKENDS", "FRONTEND", "ID", "FLAGS");
    for (key, frontend) in frontends {
        let mut flags = Vec::new();
        for (bit, name) in [
            (FRONTEND_NODE_PORT, "nodeport"),
            (FRONTEND_EXTERNAL_LOCAL, "local"),
            (FRONTEND_AFFINITY, "affinity"),
            (FRONTEND_MAGLEV, "maglev"),
        ] {
            if frontend.flags & bit != 0 {
                flags.push(name);
            }
        }
        let slots: Vec<String> = (1..=u32::from(frontend.backend_count))
            .map(|slot| {
                let id = maps
                    .slots
                    .get(
                        &BackendSlotKey {
                            frontend_id: frontend.id,
                            slot,
                        },
                        0,
                    )
                    .ok();
                match id.and_then(|id| backends.get(&id).map(|b| (id, b))) {
                    Some((id, b)) => format!("{} (#{id})", addr(b.addr, b.port)),
                    None => format!("slot {slot}: missing"),
                }
            })
            .collect();
        let slots = if slots.is_empty() {
            "none: refusing connections".to_owned()
        } else {
            slots.join(", ")
        };
        println!(
            "{:<26} {:>4} {:<24} {slots}",
            format!("{}/{}", addr(key.addr, key.port), proto_name(key.proto)),
            frontend.id,
            if flags.is_empty() {
                "-".to_owned()
            } else {
                flags.join(",")
            },
        );
    }
    Ok(())
}

fn print_backends(pins: &NodePins) -> Result<()> {
    let maps = open_maps(pins)?;
    let mut backends: Vec<(u32, Backend)> = maps.backends.iter().collect::<Result<_, _>>()?;
    backends.sort_by_key(|(id, _)| *id);
    println!("{:>6} {:<22} {:<5} FLAGS", "ID", "ADDRESS", "PROTO");
    for (id, b) in backends {
        let mut flags = Vec::new();
        if b.flags & BACKEND_LOCAL != 0 {
            flags.push("local");
        }
        if b.flags & BACKEND_DRAINING != 0 {
            flags.push("draining");
        }
        println!(
            "{id:>6} {:<22} {:<5} {}",
            addr(b.addr, b.port),
            proto_name(b.proto),
            flags.join(",")
        );
    }
    Ok(())
}

fn print_conntrack(pins: &NodePins) -> Result<()> {
    let maps = open_maps(pins)?;
    let now = monotonic_now_ns();
    println!(
        "{:<5} {:<5} {:<22} {:<22} {:>7} {:>8} {:>7} {:<22} FLAGS",
        "DIR", "PROTO", "SOURCE", "DESTINATION", "BACKEND", "FRONTEND", "IDLE_S", "NAT"
    );
    for item in maps.conntrack.iter() {
        let (key, entry): (ConntrackKey, ConntrackEntry) = item?;
        let mut flags = Vec::new();
        if entry.flags & CT_CLOSING != 0 {
            flags.push("closing");
        }
        if entry.flags & CT_SNAT != 0 {
            flags.push("snat");
        }
        let nat = if entry.flags & CT_SNAT != 0 || key.direction == CT_REPLY {
            addr(entry.nat_addr, entry.nat_port)
        } else {
            "-".to_owned()
        };
        println!(
            "{:<5} {:<5} {:<22} {:<22} {:>7} {:>8} {:>7} {:<22} {}",
            if key.direction == CT_FORWARD {
                "fwd"
            } else {
                "reply"
            },
            proto_name(key.proto),
            addr(key.saddr, key.sport),
            addr(key.daddr, key.dport),
            entry.backend_id,
            entry.frontend_id,
            now.saturating_sub(entry.last_seen_ns) / 1_000_000_000,
            nat,
            flags.join(","),
        );
    }
    Ok(())
}
