//! rudderctl: the command-line client of a rudder cluster.
//!
//! One module per command family; `main` only parses and dispatches.

mod dataplane;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    Dataplane(dataplane::DataplaneCommand),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Dataplane(command) => dataplane::run(command),
    }
}
