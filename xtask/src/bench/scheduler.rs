//! `cargo xtask bench scheduler`: pods scheduled per second with simulated
//! nodes, against kube-scheduler's scheduler_perf thresholds; runs
//! `rudder-bench scheduler` (bench/src/scheduler/), which writes
//! docs/benchmarks/scheduler.md. The scheduler needs no kernel programs,
//! but rudder-bench links the agent, which embeds them: they are built
//! first, as for the other benchmarks.

use anyhow::Result;

use crate::{build_ebpf, shell};

/// Runs the scheduler benchmark.
pub fn run() -> Result<()> {
    let report = shell::workspace_root().join("docs/benchmarks/scheduler.md");
    build_ebpf::run()?;
    shell::run(
        shell::cargo()
            .args([
                "run",
                "--release",
                "-p",
                "rudder-bench",
                "--bin",
                "rudder-bench",
                "--",
                "scheduler",
            ])
            .args([
                "--nodes",
                "1000,5000",
                "--pods",
                "10000",
                "--deployment-replicas",
                "1000",
            ])
            .args(["--deployment-nodes", "1000", "--runs", "3", "--markdown"])
            .arg(report),
    )
}
