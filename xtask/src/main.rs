//! Project automation for rudder: `cargo xtask <command>`.
//!
//! - `setup`: installs what the project needs on a fresh machine (idempotent).
//! - `build-ebpf`: builds the kernel programs with the nightly toolchain.
//! - `test`: builds the kernel programs, then runs every test (root tests too).
//! - `demo`: brings up test hosts and shows the dataplane counting traffic.
//! - `bench <name>`: a benchmark side by side with its reference.

mod bench;
mod build_ebpf;
mod demo;
mod setup;
mod shell;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "rudder project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the toolchain pieces and Debian packages rudder needs (idempotent).
    Setup,
    /// Build the kernel programs (dataplane-ebpf) with the nightly toolchain.
    BuildEbpf,
    /// Build the kernel programs, then run every test in the workspace.
    Test {
        /// Extra arguments passed to `cargo nextest run` (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Bring up a control plane and two nodes in test hosts, apply
    /// examples/web.yaml and show it served; leaves it running.
    Demo {
        /// Remove a demo cluster left running.
        #[arg(long)]
        down: bool,
    },
    /// Run a benchmark side by side with its reference; writes docs/benchmarks/<name>.md.
    Bench {
        /// Which benchmark (dataplane, store, cni, scheduler).
        name: String,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::run(),
        Command::BuildEbpf => build_ebpf::run().map(|object| {
            println!("kernel programs built: {}", object.display());
        }),
        Command::Test { args } => test(&args),
        Command::Demo { down: true } => demo::down(),
        Command::Demo { down: false } => demo::run(),
        Command::Bench { name } => bench::run(&name),
    }
}

/// Builds the kernel programs and runs the whole test suite with nextest.
///
/// Tests that need root run too (CI is root); they skip themselves with a
/// message when run unprivileged.
fn test(extra: &[String]) -> Result<()> {
    build_ebpf::run()?;
    // nextest builds test binaries only; the tests also run the workspace's
    // programs (rudder-agent, rudder-testapp, ...).
    shell::run(shell::cargo().args(["build", "--workspace", "--bins"]))?;
    let mut cmd = shell::cargo();
    cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    cmd.args(extra);
    shell::run(&mut cmd)
}
