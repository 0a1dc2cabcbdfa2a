//! The markdown report: goals first, then one table per part, then how it
//! was measured.

use std::{fmt::Write as _, time::Duration};

use super::{
    Plan,
    plugin_latency::{Latency, PluginLatency},
    pod_startup::StartupResult,
    traffic::{TrafficResult, Wiring},
};
use crate::machine::Machine;

/// Everything the report is made from.
pub struct Inputs<'a> {
    /// Where it ran.
    pub machine: &'a Machine,
    /// Commit of the binaries.
    pub commit: Option<&'a str>,
    /// How much was run.
    pub plan: &'a Plan,
    /// containernetworking-plugins' version.
    pub reference_version: &'a str,
    /// Part 1.
    pub plugins: &'a PluginLatency,
    /// Part 2.
    pub traffic: &'a [TrafficResult],
    /// Part 3.
    pub startup: &'a [StartupResult],
    /// Wall time of the whole run.
    pub took: Duration,
    /// 1-minute load average at the start and the end.
    pub load: (f64, f64),
}

/// Throughput and request/response rate count as equal within this
/// fraction of the reference.
const EQUAL_WITHIN: f64 = 0.05;

/// The goal for pod startup p99 (issue 5), and Kubernetes' SLO.
const STARTUP_GOAL_MS: f64 = 1_000.0;
const STARTUP_SLO_MS: f64 = 5_000.0;

/// The four latency rows of part 1: name and which field.
const LATENCY_ROWS: [(&str, LatencyField); 4] = [
    ("ADD latency p50", |l| l.add_p50),
    ("ADD latency p99", |l| l.add_p99),
    ("DEL latency p50", |l| l.del_p50),
    ("DEL latency p99", |l| l.del_p99),
];

/// One figure of a plugin's latency.
type LatencyField = fn(&Latency) -> f64;

/// The report as markdown.
pub fn render(inputs: &Inputs<'_>) -> String {
    let mut out = String::new();
    header(&mut out, inputs);
    goals(&mut out, inputs);
    plugins_section(&mut out, inputs);
    traffic_section(&mut out, inputs.traffic);
    startup_section(&mut out, inputs.startup);
    how_measured(&mut out, inputs);
    out
}

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

fn header(out: &mut String, inputs: &Inputs<'_>) {
    let Inputs {
        machine,
        commit,
        plan,
        reference_version,
        took,
        load,
        ..
    } = inputs;
    let _ = writeln!(
        out,
        "# CNI benchmark: rudder-cni vs the reference bridge + host-local plugins\n"
    );
    let _ = writeln!(
        out,
        "Written by `cargo xtask bench cni` on {}{} in {:.0} s. Machine: {} cores ({}), kernel {}; \
         reference: containernetworking-plugins {reference_version}; load average {:.1} at the \
         start, {:.1} at the end (on 2 cores, anything above the benchmark's own ~2 is other work \
         sharing the machine).\n",
        machine.date,
        commit
            .map(|c| format!(", commit `{c}`"))
            .unwrap_or_default(),
        took.as_secs_f64(),
        machine.cores,
        machine.cpu,
        machine.kernel,
        load.0,
        load.1,
    );
    let _ = writeln!(
        out,
        "Parts 1 and 2 quote medians of {} runs{}. **ratio** = rudder ÷ reference: below 1 is \
         better for latencies, above 1 for rates. Absolute numbers drift on this shared machine; \
         ratios measured side by side in one run are the result.\n",
        plan.runs,
        if plan.quick {
            " (**--quick**: a smoke run with few samples, not a result)"
        } else {
            ""
        }
    );
}

fn goals(out: &mut String, inputs: &Inputs<'_>) {
    let [ours, reference] = inputs.plugins;
    let _ = writeln!(out, "## Goals (issue 5)\n");
    let _ = writeln!(out, "| goal | rudder | reference | ratio | target | met |");
    let _ = writeln!(out, "|---|---:|---:|---:|---|---|");
    for (name, field) in LATENCY_ROWS {
        let (r, f) = (field(ours), field(reference));
        let _ = writeln!(
            out,
            "| {name}, faster than the reference | {r:.2} ms | {f:.2} ms | {:.2} | < 1 | {} |",
            r / f,
            met(r < f)
        );
    }
    let at = |wiring: Wiring| inputs.traffic.iter().find(|t| t.wiring == wiring);
    if let Some(reference) = at(Wiring::Reference) {
        for wiring in [Wiring::Rudder, Wiring::RudderWithDataplane] {
            let Some(ours) = at(wiring) else { continue };
            let rows: [(&str, String, String, f64); 2] = [
                (
                    "TCP throughput",
                    format!("{:.2} Gbit/s", ours.gbits),
                    format!("{:.2} Gbit/s", reference.gbits),
                    ours.gbits / reference.gbits,
                ),
                (
                    "TCP_RR rate",
                    format!("{:.0}/s", ours.rr_rate),
                    format!("{:.0}/s", reference.rr_rate),
                    ours.rr_rate / reference.rr_rate,
                ),
            ];
            for (name, r, f, ratio) in rows {
                let _ = writeln!(
                    out,
                    "| {name} pod to pod, {} vs reference: equal | {r} | {f} | \
                     {ratio:.3} | 1 ± {EQUAL_WITHIN:.2} | {} |",
                    wiring.label(),
                    met((ratio - 1.0).abs() <= EQUAL_WITHIN)
                );
            }
        }
    }
    for result in inputs.startup {
        let _ = writeln!(
            out,
            "| pod startup p99 (create → Running with IP), {} pods {} | {:.0} ms | Kubernetes SLO \
             {STARTUP_SLO_MS:.0} ms | {:.3} | < {STARTUP_GOAL_MS:.0} ms | {} |",
            result.pods,
            result.shape.label(),
            result.running_p99,
            result.running_p99 / STARTUP_SLO_MS,
            met(result.running_p99 < STARTUP_GOAL_MS)
        );
    }
    out.push('\n');
}

fn plugins_section(out: &mut String, inputs: &Inputs<'_>) {
    let [ours, reference] = inputs.plugins;
    let _ = writeln!(
        out,
        "## 1. ADD and DEL latency, {} sandboxes per plugin per run\n",
        inputs.plan.sandboxes
    );
    let _ = writeln!(
        out,
        "| metric | rudder-cni | bridge + host-local | ratio | better |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---|");
    for (name, field) in LATENCY_ROWS {
        let (r, f) = (field(ours), field(reference));
        let _ = writeln!(
            out,
            "| {name} (ms) | {r:.2} | {f:.2} | {:.2} | {} |",
            r / f,
            if r <= f { "rudder-cni" } else { "reference" }
        );
    }
    out.push('\n');
}

fn traffic_section(out: &mut String, traffic: &[TrafficResult]) {
    let _ = writeln!(out, "## 2. Pod to pod across the node bridge\n");
    let _ = writeln!(
        out,
        "| pods wired by | TCP throughput | ratio | TCP_RR transactions/s | ratio | TCP_RR p50 | TCP_RR p99 |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let Some(reference) = traffic.iter().find(|t| t.wiring == Wiring::Reference) else {
        return;
    };
    for t in traffic {
        let _ = writeln!(
            out,
            "| {} | {:.2} Gbit/s | {:.3} | {:.0} | {:.3} | {:.0} µs | {:.0} µs |",
            t.wiring.label(),
            t.gbits,
            t.gbits / reference.gbits,
            t.rr_rate,
            t.rr_rate / reference.rr_rate,
            t.rr_p50_us,
            t.rr_p99_us,
        );
    }
    out.push('\n');
}

fn startup_section(out: &mut String, startup: &[StartupResult]) {
    let _ = writeln!(
        out,
        "## 3. Pod startup latency: API create → Running with a pod IP\n"
    );
    let _ = writeln!(
        out,
        "| pods created | pods | p50 | p99 | slowest | create → bound p50 | create → bound p99 | pods per node |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
    for s in startup {
        // Node names carry the run's prefix; the last part says which.
        let spread: Vec<String> = s
            .spread
            .iter()
            .map(|(n, c)| format!("{}: {c}", n.rsplit('-').next().unwrap_or(n)))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {} |",
            s.shape.label(),
            s.pods,
            s.running_p50,
            s.running_p99,
            s.running_max,
            s.bound_p50,
            s.bound_p99,
            spread.join(", ")
        );
    }
    out.push('\n');
}

fn how_measured(out: &mut String, inputs: &Inputs<'_>) {
    let plan = inputs.plan;
    let _ = writeln!(out, "## How measured\n");
    let lines = [
        "All hosts are network namespaces on a private underlay (192.0.2.0/24) made by the \
         benchmark and removed at its end; no packet leaves them. Each plugin wires pods on a node \
         host of its own, with its own bridge (`cni0`) and /24, configured as \
         `{\"type\": \"rudder-cni\", \"bridge\": \"cni0\", \"ipam\": {\"subnet\": ...}}` and \
         `{\"type\": \"bridge\", \"bridge\": \"cni0\", \"isDefaultGateway\": true, \"ipam\": \
         {\"type\": \"host-local\", \"subnet\": ...}}` (cniVersion 1.0.0)."
            .to_owned(),
        format!(
            "**Part 1.** Each run ADDs then DELs {} sandboxes per plugin, the two plugins \
             alternating call by call so machine noise hits both alike, after one unmeasured \
             ADD/DEL each. Latency is the wall time from spawning the plugin in the node's \
             namespace, with the CNI_* environment and the configuration on stdin as a runtime \
             does, to its exit: process start-up counts, and for the reference the exec of \
             `host-local` by `bridge`. Each run's p50 and p99 (nearest rank); medians over the runs.",
            plan.sandboxes
        ),
        format!(
            "**Part 2.** Three node hosts with a client and a server pod each: wired by rudder-cni; \
             by rudder-cni with rudder's dataplane loaded and its tc programs attached to both pod \
             veths (what a rudder node runs: `svc_from_pod` and `svc_to_pod` see every packet, \
             with no services defined); by bridge + host-local. Throughput: `iperf3 -c <server \
             pod> -t {s}` (one TCP stream, {s} s, received bits/s; `timeout` kills a hung run). \
             Request/response: `rudder-testapp tcp-rr` against `rudder-testapp tcp-echo`, one \
             connection with TCP_NODELAY, one byte each way per transaction (netperf's TCP_RR), \
             for {s} s or {} transactions, whichever ends first. In every run the three nodes \
             take turns in a rotating order; medians over the runs. Both ends run on this \
             2-core machine, so throughput is bounded by CPU, not by a link.",
            super::traffic::MAX_TRANSACTIONS,
            s = plan.traffic_seconds,
        ),
        format!(
            "**Part 3.** `rudder-controlplane` (single node, fsyncing store; scheduler and \
             controllers on) and two node hosts running `rudder-agent serve` with rudder-cni, \
             built with the tests' `rudder_tests::control` fixture from the release binaries. \
             Per load shape, {} pods (one container, `sleep 600`, no image to pull, no probes) in \
             a fresh namespace, created through the gRPC API without a node: the scheduler binds \
             them, the node's agent creates the sandbox, runs rudder-cni ADD, starts the \
             container and reports the status. Latency runs from just before each create \
             request is sent to the watch event (a watch on the namespace, opened before the \
             first create, from the client host) that first shows the pod with phase `Running` \
             and a `podIP`; *bound* is the first event with `spec.nodeName`. Shapes: one create \
             every 100 ms (10 pods/s), and every create sent at once. Between shapes the pods \
             are deleted and the agents remove their sandboxes. Kubernetes' SLO (p99 ≤ 5 s) \
             measures the same span, excluding image pulls.",
            plan.startup_pods
        ),
    ];
    for line in lines {
        let _ = writeln!(out, "- {line}");
    }
}
