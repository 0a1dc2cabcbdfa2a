//! `cargo xtask bench store`: rudder's store against etcd (Debian's
//! etcd-server) in one run, on the same machine and disk. Builds the kernel
//! programs and the release binaries, then runs `rudder-bench store`, which
//! writes `docs/benchmarks/store.md` (`RUDDER_BENCH_RUNS` sets the runs per
//! store). Needs etcd on `PATH` (`cargo xtask setup` installs it).

use anyhow::Result;

/// Runs the store benchmark.
pub fn run() -> Result<()> {
    super::dataplane::run_bench("store", "docs/benchmarks/store.md")
}
