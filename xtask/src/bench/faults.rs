//! `cargo xtask bench faults`: what a client of a Service sees (failed
//! requests, time to recovery) through scaling, a rolling update, an agent
//! kill and a node loss, in test hosts. Builds the kernel programs and the
//! release binaries, then runs `rudder-bench faults`, which writes
//! `docs/benchmarks/faults.md`. Needs root; takes a few minutes.

use anyhow::Result;

/// Runs the faults benchmark.
pub fn run() -> Result<()> {
    super::dataplane::run_bench("faults", "docs/benchmarks/faults.md")
}
