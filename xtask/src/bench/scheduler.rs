//! `cargo xtask bench scheduler`: pods scheduled per second with simulated
//! nodes, against kube-scheduler's scheduler_perf thresholds; writes
//! docs/benchmarks/scheduler.md.

use anyhow::Result;

use crate::shell;

/// Runs the scheduler benchmark.
pub fn run() -> Result<()> {
    let report = shell::workspace_root().join("docs/benchmarks/scheduler.md");
    shell::run(
        shell::cargo()
            .args([
                "run",
                "--release",
                "-p",
                "rudder-controlplane",
                "--bin",
                "scheduler-bench",
                "--",
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
