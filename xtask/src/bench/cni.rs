//! `cargo xtask bench cni`: rudder-cni and the pods it wires against the
//! reference bridge + host-local plugins: ADD/DEL latency, pod-to-pod
//! throughput and request/response rate, and pod startup through the whole
//! path (control plane, scheduler, agents). Builds the kernel programs and
//! the release binaries, then runs `rudder-bench cni`, which writes
//! `docs/benchmarks/cni.md`. Needs root; takes a few minutes.

use anyhow::Result;

/// Runs the CNI benchmark.
pub fn run() -> Result<()> {
    super::dataplane::run_bench("cni", "docs/benchmarks/cni.md")
}
