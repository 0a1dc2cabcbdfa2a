//! `cargo xtask bench cni`: rudder-cni against the reference bridge +
//! host-local plugins (ADD/DEL latency over 200 sandboxes), measured by
//! `cni-bench` in identical test hosts; writes docs/benchmarks/cni.md.

use anyhow::Result;

use crate::shell;

/// Runs the CNI benchmark.
pub fn run() -> Result<()> {
    shell::run(shell::cargo().args(["build", "--release", "-p", "rudder-cni", "--bins"]))?;
    let root = shell::workspace_root();
    shell::run(
        std::process::Command::new(root.join("target/release/cni-bench"))
            .arg("--output")
            .arg(root.join("docs/benchmarks/cni.md")),
    )
}
