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
    /// Accepted before or after the command (`rudderctl --server A get pods`).
    #[command(flatten)]
    server: server::ServerArgs,
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

fn main() -> std::process::ExitCode {
    restore_default_sigpipe();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // The chain of causes, never a backtrace: this is for users.
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let server = &cli.server;
    match cli.command {
        Command::Apply(args) => apply::run(args, server),
        Command::Get(args) => get::run(args, server),
        Command::Describe(args) => describe::run(args, server),
        Command::Delete(args) => delete::run(args, server),
        Command::Scale(args) => scale::run(args, server),
        Command::Logs(args) => logs::run(args, server),
        Command::Dataplane(command) => dataplane::run(command),
    }
}

/// Lets `rudderctl get pods | head` end quietly when `head` exits, as every
/// Unix filter does: Rust starts programs with SIGPIPE ignored, so each
/// `println!` after the reader left would panic with "Broken pipe" instead.
fn restore_default_sigpipe() {
    // SAFETY: called first thing in main, before any other thread exists;
    // SIG_DFL is a valid disposition for SIGPIPE and no handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
