//! `rudderctl dataplane ...`: a node's eBPF maps, read directly from their
//! bpffs pins on that node (like `cilium-dbg bpf ...`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use rudder_agent::dataplane;

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
    /// Packet and byte counters per interface and hook.
    Counters {
        #[command(flatten)]
        pins: NodePins,
    },
}

/// Runs one `rudderctl dataplane` subcommand.
pub fn run(command: DataplaneCommand) -> Result<()> {
    match command {
        DataplaneCommand::Counters { pins } => {
            let counters = dataplane::read_interface_counters(&pins.dir())
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
        }
    }
    Ok(())
}
