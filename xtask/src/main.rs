//! Project automation for rudder: `cargo xtask <command>`.
//!
//! - `setup`: installs what the project needs on a fresh machine (idempotent).
//! - `build-ebpf`: builds the kernel programs with the nightly toolchain.
//! - `test`: builds the kernel programs, then runs every test (root tests too).
//! - `demo`: brings up a cluster in test hosts and shows it serving examples/web.yaml.
//! - `cluster up|status|exec|down`: a whole cluster in test hosts, left running.
//! - `bench <name>`: a benchmark side by side with its reference.
//! - `vm up|smoke|ssh|down`: a cluster on qemu/KVM virtual machines.
//! - `dist [--out DIR]`: the release bundle (binaries, units, conflist, install.sh).

mod bench;
mod build_ebpf;
mod cluster;
mod demo;
mod dist;
mod setup;
mod shell;
mod vm;

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
    /// A whole cluster in test hosts, left running: up, status, exec, down.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Run a benchmark side by side with its reference; writes docs/benchmarks/<name>.md.
    Bench {
        /// Which benchmark (dataplane, store, cni, scheduler, faults).
        name: String,
    },
    /// A cluster on qemu/KVM virtual machines: up, smoke, ssh, down.
    #[command(subcommand)]
    Vm(VmCommand),
    /// Build the release bundle: binaries, systemd units, the CNI conflist,
    /// default configs and install.sh (a tree and a tar.gz).
    Dist {
        /// Where the bundle goes (default target/dist).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum VmCommand {
    /// Build (or reuse) the Debian image and boot a control-plane VM and N
    /// workers on a private bridge; leaves them running.
    Up {
        /// Worker VMs.
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
    /// Up, provision with vagrant/provision/, the smoke test, down.
    Smoke {
        /// Worker VMs.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Leave the VMs running afterwards.
        #[arg(long)]
        keep: bool,
    },
    /// Run a command on a VM (cp, w1, ...), or a shell without one.
    Ssh {
        /// The VM's label.
        vm: String,
        /// The command and its arguments (after `--`).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Remove every VM, tap, bridge, namespace and overlay.
    Down,
    /// Build the Debian image the VMs boot, unless a matching one is cached.
    Image,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Build and start a control plane (1 or 3 replicas), N nodes and a
    /// client host; wait until every node is Ready.
    Up {
        /// Node hosts, each running rudder-agent.
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        /// Control-plane replicas: 1, or 3 replicating over Raft.
        #[arg(long, default_value_t = 1)]
        control_planes: usize,
    },
    /// Which hosts still run, and the nodes as the API sees them.
    Status,
    /// Run a command on a host of the cluster (client, cp, node1, ...).
    Exec {
        /// The host's label.
        host: String,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Remove every cluster: processes, namespaces, pins, files.
    Down,
}

fn main() -> Result<std::process::ExitCode> {
    let done = |()| std::process::ExitCode::SUCCESS;
    match Cli::parse().command {
        Command::Setup => setup::run().map(done),
        Command::BuildEbpf => build_ebpf::run().map(|object| {
            println!("kernel programs built: {}", object.display());
            std::process::ExitCode::SUCCESS
        }),
        Command::Test { args } => test(&args).map(done),
        Command::Demo { down: true } => demo::down().map(done),
        Command::Demo { down: false } => demo::run().map(done),
        Command::Cluster(ClusterCommand::Up {
            nodes,
            control_planes,
        }) => cluster::up_command(cluster::ClusterSpec {
            nodes,
            control_planes,
        })
        .map(done),
        Command::Cluster(ClusterCommand::Status) => cluster::status().map(done),
        Command::Cluster(ClusterCommand::Exec { host, command }) => cluster::exec(&host, &command),
        Command::Cluster(ClusterCommand::Down) => cluster::down().map(done),
        Command::Bench { name } => bench::run(&name).map(done),
        Command::Vm(command) => vm::guarded(|| match command {
            VmCommand::Up { workers } => vm::up_command(workers),
            VmCommand::Smoke { workers, keep } => vm::smoke(workers, keep),
            VmCommand::Ssh { vm, command } => vm::ssh(&vm, &command),
            VmCommand::Down => vm::down().map(done),
            VmCommand::Image => vm::image_command(),
        }),
        Command::Dist { out } => dist::run(out.as_deref()).map(|_| std::process::ExitCode::SUCCESS),
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
