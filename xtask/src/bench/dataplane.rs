//! `cargo xtask bench dataplane`: builds the kernel programs and the
//! workspace binaries (release), then runs `rudder-bench dataplane`, which
//! measures rudder's service dataplane side by side with a kube-proxy-style
//! iptables ruleset in test hosts and writes `docs/benchmarks/dataplane.md`.
//!
//! The benchmark itself lives in the `rudder-bench` crate: it links the
//! agent, which embeds the kernel programs this command builds first, so
//! xtask cannot depend on it. Needs root; takes a few minutes.

use std::{path::PathBuf, process::Command};

use anyhow::Result;

use crate::{build_ebpf, shell};

/// Runs the dataplane benchmark.
pub fn run() -> Result<()> {
    run_bench("dataplane", "docs/benchmarks/dataplane.md")
}

/// Builds the kernel programs and the release binaries, then runs
/// `rudder-bench <name> --out <report>` (also for the other benchmarks that
/// link the agent).
pub fn run_bench(name: &str, report: &str) -> Result<()> {
    build_ebpf::run()?;
    shell::run(shell::cargo().args(["build", "--release", "--workspace", "--bins"]))?;
    let root = shell::workspace_root();
    let bench = target_dir().join("release/rudder-bench");
    let report = root.join(report);
    let mut cmd = Command::new(bench);
    cmd.current_dir(&root).arg(name).arg("--out").arg(&report);
    if let Some(commit) =
        shell::output(
            Command::new("git")
                .current_dir(&root)
                .args(["rev-parse", "--short", "HEAD"]),
        )
    {
        cmd.args(["--commit", commit.trim()]);
    }
    shell::run(&mut cmd)
}

/// Where cargo puts the binaries: `$CARGO_TARGET_DIR` (relative to the
/// workspace root, as cargo reads it from there) or `<root>/target`.
fn target_dir() -> PathBuf {
    let root = shell::workspace_root();
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| root.join("target"), |dir| root.join(dir))
}
