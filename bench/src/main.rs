//! rudder-bench: rudder's benchmarks, each run side by side with its
//! reference in test hosts, writing a markdown report with ratios.
//! `cargo xtask bench <name>` builds everything and runs this binary.
//!
//! ```text
//! rudder-bench dataplane [--out docs/benchmarks/dataplane.md] [--runs 5] [--quick]
//! rudder-bench bandwidth [--out docs/benchmarks/bandwidth.md] [--quick]
//! rudder-bench cni [--out docs/benchmarks/cni.md] [--runs 3] [--quick]
//! rudder-bench scheduler [--nodes 1000,5000] [--pods 10000] [--runs 3] [--markdown docs/benchmarks/scheduler.md]
//! rudder-bench faults [--out docs/benchmarks/faults.md]
//! rudder-bench store [--out docs/benchmarks/store.md] [--runs 3]
//! rudder-bench api-security [--out docs/benchmarks/api-security.md] [--runs 3]
//! ```
//! Needs root (all but `scheduler` and `store`): the benchmarks create network namespaces and load eBPF
//! programs. Packets only travel between namespaces a benchmark made, every
//! load loop is bounded in count and time, and everything is removed at the
//! end (also on failure and Ctrl-C; a run killed outright is swept by the
//! next one).

mod api_cluster;
mod api_security;
mod bandwidth;
mod cni;
mod dataplane;
mod faults;
mod interrupt;
mod machine;
mod report_file;
mod scheduler;
mod stats;
mod store;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rudder-bench", version, about = "rudder's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// eBPF service translation vs a kube-proxy-style iptables ruleset.
    Dataplane(dataplane::Options),
    /// rudder-cni and the pods it wires vs the reference bridge + host-local plugins.
    Cni(cni::Options),
    /// Per-pod bandwidth limits vs the reference bandwidth plugin (TBF).
    Bandwidth(bandwidth::Options),
    /// Scheduler throughput with simulated nodes vs scheduler_perf thresholds.
    Scheduler(scheduler::Options),
    /// What a Service's client sees through scaling, a rolling update, an
    /// agent kill and a node loss.
    Faults(faults::Options),
    /// rudder's store vs etcd through the etcd v3 API.
    Store(store::Options),
    /// The API with TLS, authentication and RBAC vs without them.
    ApiSecurity(api_security::Options),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // The scheduler, store and api-security benchmarks run on 127.0.0.1
    // and need no namespaces; the others do.
    if let Command::Scheduler(options) = &cli.command {
        return scheduler::run(options);
    }
    if let Command::ApiSecurity(options) = &cli.command {
        return api_security::run(options);
    }
    if !matches!(cli.command, Command::Store(_)) && !netns::have_privileges() {
        bail!("the benchmarks create network namespaces and load eBPF programs: run as root");
    }
    interrupt::install()?;
    match cli.command {
        Command::Dataplane(options) => dataplane::run(&options),
        Command::Cni(options) => cni::run(&options),
        Command::Bandwidth(options) => bandwidth::run(&options),
        Command::Scheduler(_) => unreachable!("run above, without privileges"),
        Command::Faults(options) => faults::run(&options),
        Command::Store(options) => store::run(&options),
        Command::ApiSecurity(_) => unreachable!("run above, without privileges"),
    }
}
