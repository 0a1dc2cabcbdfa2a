//! `cargo xtask bench <name>`: benchmarks run side by side with their
//! reference in one run; each writes a markdown table with ratios to
//! `docs/benchmarks/<name>.md`. Benchmarks report; tests assert.

mod api_security;
mod bandwidth;
mod cni;
mod dataplane;
mod faults;
mod scheduler;
mod store;

use anyhow::{Result, bail};

/// Benchmarks by name, with what they compare.
pub const BENCHMARKS: &[(&str, &str)] = &[
    (
        "dataplane",
        "eBPF service translation vs a kube-proxy-style iptables ruleset",
    ),
    ("store", "the replicated store vs etcd"),
    (
        "api-security",
        "the API with TLS, authentication and RBAC vs without them",
    ),
    (
        "bandwidth",
        "per-pod bandwidth limits vs the reference bandwidth plugin (TBF)",
    ),
    (
        "cni",
        "rudder-cni vs the reference bridge + host-local plugins",
    ),
    (
        "faults",
        "failed requests and recovery through scaling, a rolling update, an agent kill, a node loss",
    ),
    (
        "scheduler",
        "pods scheduled per second with simulated nodes, vs scheduler_perf thresholds",
    ),
];

/// Runs the benchmark `name`.
pub fn run(name: &str) -> Result<()> {
    match name {
        "dataplane" => dataplane::run(),
        "store" => store::run(),
        "api-security" => api_security::run(),
        "bandwidth" => bandwidth::run(),
        "cni" => cni::run(),
        "faults" => faults::run(),
        "scheduler" => scheduler::run(),
        other => {
            let known: Vec<String> = BENCHMARKS
                .iter()
                .map(|(n, what)| format!("  {n}: {what}"))
                .collect();
            bail!(
                "no benchmark named {other:?}; there are:\n{}",
                known.join("\n")
            )
        }
    }
}
