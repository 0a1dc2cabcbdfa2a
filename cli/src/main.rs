//! rudderctl: the command-line client of a rudder cluster.
//!
//! One module per command family; `main` only parses and dispatches.

mod apply;
mod dataplane;
mod delete;
mod describe;
mod get;
mod logs;
mod manifest;
mod scale;
mod server;
mod table;

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
    /// Create or update the objects in manifests (-f FILE|DIR|-).
    Apply(apply::ApplyArgs),
    /// List objects or show one, as a table, YAML or JSON.
    Get(get::GetArgs),
    /// Show an object in detail.
    Describe(describe::DescribeArgs),
    /// Delete objects by name or by manifest.
    Delete(delete::DeleteArgs),
    /// Set the replicas of a Deployment or ReplicaSet.
    Scale(scale::ScaleArgs),
    /// Print a container's output (-f to follow it).
    Logs(logs::LogsArgs),
    /// Inspect a node's eBPF maps (run on that node, as root).
    #[command(subcommand)]
    Dataplane(dataplane::DataplaneCommand),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Apply(args) => apply::run(args),
        Command::Get(args) => get::run(args),
        Command::Describe(args) => describe::run(args),
        Command::Delete(args) => delete::run(args),
        Command::Scale(args) => scale::run(args),
        Command::Logs(args) => logs::run(args),
        Command::Dataplane(command) => dataplane::run(command),
    }
}
