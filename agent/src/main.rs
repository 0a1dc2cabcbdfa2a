//! rudder-agent: the node daemon.
//!
//! ```text
//! rudder-agent [--netns NS] dataplane attach --node N --iface eth0 [--iface ...]
//! rudder-agent [--netns NS] dataplane detach --node N --iface eth0
//! ```

use std::{fs::File, path::PathBuf};

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
    /// Operate the node's eBPF dataplane.
    #[command(subcommand)]
    Dataplane(DataplaneCommand),
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
