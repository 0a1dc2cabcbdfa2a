//! rudderctl: the command-line client of a rudder cluster.
//!
//! Today it inspects a node's dataplane maps directly from their bpffs pins,
//! like `cilium-dbg bpf ...`: `rudderctl dataplane counters --node N`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rudder_agent::dataplane;

#[derive(Parser)]
#[command(name = "rudderctl", version, about = "rudder cluster client")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect a node's eBPF maps (run on that node, as root).
    #[command(subcommand)]
    Dataplane(DataplaneCommand),
}

#[derive(Subcommand)]
enum DataplaneCommand {
    /// Packet and byte counters per interface and hook.
    Counters {
        /// The node's name; its pins live in <bpffs-root>/<node>.
        #[arg(long, env = "RUDDER_NODE")]
        node: String,
        /// Directory on a bpffs holding every node's pins.
        #[arg(long, env = "RUDDER_BPFFS_ROOT", default_value = "/sys/fs/bpf/rudder")]
        bpffs_root: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Dataplane(DataplaneCommand::Counters { node, bpffs_root }) => {
            let counters = dataplane::read_interface_counters(&bpffs_root.join(&node))
                .with_context(|| format!("node {node}: is its agent's dataplane loaded?"))?;
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
        }
    }
    Ok(())
}
