//! `cargo xtask bench api-security`: the API's cost of TLS, authentication
//! and RBAC, against the same control plane without them, in one run.
//! Builds the release binaries, then runs `rudder-bench api-security`,
//! which writes `docs/benchmarks/api-security.md` (`RUDDER_BENCH_RUNS` sets
//! the runs per configuration). Runs on 127.0.0.1; needs no root.

use anyhow::Result;

/// Runs the API security benchmark.
pub fn run() -> Result<()> {
    super::dataplane::run_bench("api-security", "docs/benchmarks/api-security.md")
}
