//! `cargo xtask bench bandwidth`: per-pod bandwidth limits, rudder's eBPF
//! token bucket against the reference `bandwidth` plugin (TBF), at 10M,
//! 100M and 1G, both directions. Builds the kernel programs and the release
//! binaries, then runs `rudder-bench bandwidth`, which writes
//! `docs/benchmarks/bandwidth.md`. Needs root; about ten minutes
//! (`rudder-bench bandwidth --quick` for a smoke run).

use anyhow::Result;

/// Runs the bandwidth benchmark.
pub fn run() -> Result<()> {
    super::dataplane::run_bench("bandwidth", "docs/benchmarks/bandwidth.md")
}
