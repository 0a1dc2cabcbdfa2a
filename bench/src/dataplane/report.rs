//! The markdown report: a goals table first, then one table per part, then
//! how it was measured.

use std::{fmt::Write as _, time::Duration};

use super::{
    Plan,
    connections::{self, ConnResult, Target},
    packet_cost::{self, PacketCost},
    programming::{self, Programming},
    store_to_nodes::{self, StoreToNodes},
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
    /// Part 1.
    pub packets: &'a [PacketCost],
    /// Part 2.
    pub connections: &'a [ConnResult],
    /// Part 3.
    pub programming: &'a Programming,
    /// Part 4.
    pub store_to_nodes: &'a StoreToNodes,
    /// Wall time of the whole run.
    pub took: Duration,
    /// 1-minute load average at the start and the end.
    pub load: (f64, f64),
}

/// One column of part 1.
type PacketPath = fn(&PacketCost) -> f64;

/// Largest per-packet cost at any count, relative to 10 services, that
/// still counts as flat.
const FLAT_LIMIT: f64 = 1.2;

/// The report as markdown.
pub fn render(inputs: &Inputs<'_>) -> String {
    let mut out = String::new();
    header(&mut out, inputs);
    goals(&mut out, inputs);
    packets(&mut out, inputs.packets);
    connections_section(&mut out, inputs.connections);
    programming_section(&mut out, inputs.programming);
    store_to_nodes_section(&mut out, inputs.store_to_nodes);
    how_measured(&mut out, inputs);
    out
}

fn header(out: &mut String, inputs: &Inputs<'_>) {
    let Inputs {
        machine,
        commit,
        plan,
        took,
        load,
        ..
    } = inputs;
    let _ = writeln!(
        out,
        "# Dataplane benchmark: rudder vs kube-proxy-style iptables\n"
    );
    let _ = writeln!(
        out,
        "Written by `cargo xtask bench dataplane` on {}{} in {:.0} s. Machine: {} cores ({}), \
         kernel {}, {}; load average {:.1} at the start, {:.1} at the end (on 2 cores, \
         anything above the benchmark's own ~2 is other work sharing the machine).\n",
        machine.date,
        commit
            .map(|c| format!(", commit `{c}`"))
            .unwrap_or_default(),
        took.as_secs_f64(),
        machine.cores,
        machine.cpu,
        machine.kernel,
        machine.iptables,
        load.0,
        load.1,
    );
    let _ = writeln!(
        out,
        "Every figure is the median of {} runs{}. **ratio** = rudder ÷ reference: above 1 is \
         better for rates, below 1 is better for costs and times. Absolute numbers drift on this \
         shared machine; ratios measured side by side in one run are the result.\n",
        plan.runs,
        if plan.quick {
            " (**--quick**: a smoke run with few samples, not a result)"
        } else {
            ""
        }
    );
}

fn goals(out: &mut String, inputs: &Inputs<'_>) {
    let _ = writeln!(out, "## Goals (issue 3)\n");
    let _ = writeln!(out, "| goal | rudder | reference | ratio | target | met |");
    let _ = writeln!(out, "|---|---:|---:|---:|---|---|");
    if let (Some(first), Some(last)) = (inputs.packets.first(), inputs.packets.last()) {
        let paths: [(&str, PacketPath); 4] = [
            ("established flow, one service", |p| p.established_warm_ns),
            ("established flow, random services", |p| {
                p.established_spread_ns
            }),
            ("new flow, one service", |p| p.new_flow_warm_ns),
            ("new flow, random services", |p| p.new_flow_spread_ns),
        ];
        for (path, cost) in paths {
            let worst = inputs
                .packets
                .iter()
                .map(|p| cost(p) / cost(first))
                .fold(f64::NAN, f64::max);
            let _ = writeln!(
                out,
                "| per-packet cost flat in services ({path}): {} vs {} services | {:.0} ns | \
                 {:.0} ns | {:.2} | every count ≤ {FLAT_LIMIT:.1}× the cost at {} (worst {:.2}) | {} |",
                int(last.services),
                int(first.services),
                cost(last),
                cost(first),
                cost(last) / cost(first),
                int(first.services),
                worst,
                met(worst <= FLAT_LIMIT),
            );
        }
    }
    let at = |services: usize, target: Target| {
        inputs
            .connections
            .iter()
            .find(|c| c.services == services && c.target == target)
    };
    let big = connections::SERVICE_COUNTS[connections::SERVICE_COUNTS.len() - 1];
    if let (Some(rudder), Some(ipt), Some(direct)) = (
        at(big, Target::ClusterIpRudder),
        at(big, Target::ClusterIpIptables),
        at(big, Target::PodIpRudderHost),
    ) {
        let vs_ipt = rudder.rate / ipt.rate;
        let _ = writeln!(
            out,
            "| new connections/s through a ClusterIP, {} services, vs iptables | {:.0}/s | \
             {:.0}/s | {vs_ipt:.2} | ≥ 2 | {} |",
            int(big),
            rudder.rate,
            ipt.rate,
            met(vs_ipt >= 2.0)
        );
        let vs_direct = rudder.rate / direct.rate;
        let _ = writeln!(
            out,
            "| the same, vs the pod IPs directly (rudder cluster) | {:.0}/s | {:.0}/s | \
             {vs_direct:.2} | ≥ 0.90 | {} |",
            rudder.rate,
            direct.rate,
            met(vs_direct >= 0.9)
        );
    }
    let p = inputs.programming;
    let _ = writeln!(
        out,
        "| install {} services × 3 endpoints | {} | {} (iptables-restore) | {:.3} | < 1 s | {} |",
        int(programming::SERVICES),
        duration(p.rudder_install),
        duration(p.iptables_install),
        ratio(p.rudder_install, p.iptables_install),
        met(p.rudder_install < Duration::from_secs(1))
    );
    let _ = writeln!(
        out,
        "| one endpoint change to its map write, p99, {} services present | {} (CPU time \
         p99 {}) | {} (partial iptables-restore) | {:.4} | < 1 ms | {} |",
        int(programming::SERVICES),
        duration(p.rudder_change.1),
        duration(p.rudder_change_cpu.1),
        duration(p.iptables_change.1),
        ratio(p.rudder_change.1, p.iptables_change.1),
        met(p.rudder_change.1 < Duration::from_millis(1))
    );
    let sync = inputs.store_to_nodes;
    let _ = writeln!(
        out,
        "| store commit → maps written on every node ({} agents), p99, {} services present \
         (issue 5) | {:.1} ms | | | < 100 ms | {} |",
        store_to_nodes::NODES,
        int(store_to_nodes::SERVICES),
        sync.every_node.1,
        met(sync.every_node.1 < 100.0)
    );
    out.push('\n');
}

fn packets(out: &mut String, packets: &[PacketCost]) {
    let _ = writeln!(
        out,
        "## 1. Per-packet cost of `svc_from_pod` (ns/packet, BPF_PROG_TEST_RUN)\n"
    );
    let _ = writeln!(
        out,
        "The reference for flatness is the same path at {} services. (The kernel cannot run an \
         iptables ruleset on a crafted packet; iptables' per-connection cost shows in part 2.)",
        int(packet_cost::SERVICE_COUNTS[0])
    );
    let _ = writeln!(
        out,
        "*One service*: packets of one service in a row (its map entries stay in the CPU \
         caches). *Random services*: each packet to a randomly chosen service, so with many \
         services lookups miss the caches. Ratios are to the same column at {} services.\n",
        int(packet_cost::SERVICE_COUNTS[0])
    );
    let _ = writeln!(
        out,
        "| services | established, one service | established, random services | new flow, \
         one service | new flow, random services | untranslated (pod IP) | floor (ARP frame) |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|");
    let Some(first) = packets.first() else {
        return;
    };
    let cell = |value: f64, reference: f64| format!("{value:.0} ({:.2}×)", value / reference);
    for p in packets {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} |",
            int(p.services),
            cell(p.established_warm_ns, first.established_warm_ns),
            cell(p.established_spread_ns, first.established_spread_ns),
            cell(p.new_flow_warm_ns, first.new_flow_warm_ns),
            cell(p.new_flow_spread_ns, first.new_flow_spread_ns),
            p.untranslated_ns,
            p.floor_ns,
        );
    }
    out.push('\n');
}

fn connections_section(out: &mut String, results: &[ConnResult]) {
    let _ = writeln!(out, "## 2. New connections through a ClusterIP\n");
    let _ = writeln!(
        out,
        "| services | path | connections/s | p50 latency | p99 latency | failed / made |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|");
    for r in results {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} µs | {:.0} µs | {} / {} |",
            int(r.services),
            r.target.label(),
            r.rate,
            r.p50_us,
            r.p99_us,
            r.errors,
            int(usize::try_from(r.connections).unwrap_or(usize::MAX)),
        );
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "| services | rudder ClusterIP vs | connections/s: rudder | reference | ratio | p99: rudder | reference | ratio |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|");
    for services in connections::SERVICE_COUNTS {
        let at = |target: Target| {
            results
                .iter()
                .find(|c| c.services == services && c.target == target)
        };
        let Some(rudder) = at(Target::ClusterIpRudder) else {
            continue;
        };
        for reference in [Target::ClusterIpIptables, Target::PodIpRudderHost] {
            let Some(other) = at(reference) else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.0}/s | {:.0}/s | {:.2} | {:.0} µs | {:.0} µs | {:.2} |",
                int(services),
                reference.label(),
                rudder.rate,
                other.rate,
                rudder.rate / other.rate,
                rudder.p99_us,
                other.p99_us,
                rudder.p99_us / other.p99_us,
            );
        }
    }
    out.push('\n');
}

fn programming_section(out: &mut String, p: &Programming) {
    let _ = writeln!(
        out,
        "## 3. Programming time, {} services\n",
        int(programming::SERVICES)
    );
    let _ = writeln!(out, "| measurement | rudder | iptables | ratio |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| install {} services × 3 endpoints into empty tables | {} ({} map writes) | {} ({} rules) | {:.3} |",
        int(programming::SERVICES),
        duration(p.rudder_install),
        int(p.rudder_writes),
        duration(p.iptables_install),
        int(p.iptables_rules),
        ratio(p.rudder_install, p.iptables_install)
    );
    for (label, r, i) in [
        ("p50", p.rudder_change.0, p.iptables_change.0),
        ("p99", p.rudder_change.1, p.iptables_change.1),
    ] {
        let _ = writeln!(
            out,
            "| one endpoint change, {label} (rudder: {} changes, {:.0} map writes each; iptables: {} changes) | {} | {} | {:.4} |",
            p.rudder_changes,
            p.rudder_change_writes,
            p.iptables_changes,
            duration(r),
            duration(i),
            ratio(r, i)
        );
    }
    let _ = writeln!(
        out,
        "| one endpoint change, CPU time of the applying thread (p50 / p99): rudder's cost without \
         waiting for the CPU | {} / {} | | |",
        duration(p.rudder_change_cpu.0),
        duration(p.rudder_change_cpu.1)
    );
    out.push('\n');
}

fn store_to_nodes_section(out: &mut String, sync: &StoreToNodes) {
    let _ = writeln!(
        out,
        "## 4. Store commit to maps written on every node, {} services\n",
        int(store_to_nodes::SERVICES)
    );
    let _ = writeln!(
        out,
        "{} changes of one Endpoints object; times from sending the write to the API server.\n",
        sync.changes
    );
    let _ = writeln!(out, "| from the write sent to | p50 | p99 |");
    let _ = writeln!(out, "|---|---:|---:|");
    let _ = writeln!(
        out,
        "| the write acknowledged (committed and fsynced by the store) | {:.1} ms | {:.1} ms |",
        sync.acknowledged.0, sync.acknowledged.1
    );
    for (n, (p50, p99)) in sync.per_node.iter().enumerate() {
        let _ = writeln!(
            out,
            "| node{}'s maps written | {p50:.1} ms | {p99:.1} ms |",
            n + 1
        );
    }
    let _ = writeln!(
        out,
        "| **every node's maps written** (slowest: {:.1} ms) | **{:.1} ms** | **{:.1} ms** |",
        sync.every_node.2, sync.every_node.0, sync.every_node.1
    );
    let _ = writeln!(
        out,
        "\nInstalling the {} Services and Endpoints through the API (64 creates in flight) until \
         both nodes' maps held them all took {:.1} s.\n",
        int(store_to_nodes::SERVICES),
        sync.install.as_secs_f64()
    );
}

fn how_measured(out: &mut String, inputs: &Inputs<'_>) {
    let plan = inputs.plan;
    let _ = writeln!(out, "## How measured\n");
    let lines = [
        "All hosts are network namespaces on a private underlay (192.0.2.0/24) made by the \
         benchmark and removed at its end; no packet leaves them."
            .to_owned(),
        format!(
            "**Services.** N ClusterIP services (10.96.0.0/12), one TCP port each, three ready \
             endpoints each (placeholder addresses nothing answers on, except the service under \
             test in part 2). rudder gets them through `ServiceDataplane::resync`; the reference \
             gets the nat-table ruleset kube-proxy's iptables mode writes for them: `PREROUTING` \
             and `OUTPUT` jump to `KUBE-SERVICES` (one rule per service), `KUBE-SVC-<hash>` \
             chains with `-m statistic --mode random --probability` per endpoint, `KUBE-SEP-<hash>` \
             chains with hairpin masquerade marking and DNAT, `KUBE-POSTROUTING`/`KUBE-MARK-MASQ`, \
             loaded with `iptables-restore` inside the reference hosts' namespaces only ({} rules \
             at {} services).",
            int(inputs.programming.iptables_rules),
            int(programming::SERVICES)
        ),
        format!(
            "**Part 1.** `svc_from_pod` loaded with maps sized for {} services (300 Ki \
             endpoints), run with BPF_PROG_TEST_RUN on crafted Ethernet/IPv4/TCP packets; {} \
             samples per path per run, each to a randomly chosen service. One run per sample \
             (`repeat = 1`): the kernel re-runs a repeated test on the packet the previous run \
             rewrote, which no longer goes to a service, so a repeat count would mostly time \
             the untranslated path. The kernel's own timer is used (no syscall in it); the \
             floor column (an ARP frame, passed at once) is that timer's overhead and belongs \
             to every other column. Each sample's packet belongs to a different flow (except \
             for *established, one service*, which repeats one flow). *Established*: a flow opened by a SYN, then one ACK of it \
             timed (conntrack hit). *New flow*: a SYN of a never-seen flow (backend choice and \
             two conntrack inserts). *Untranslated*: a pod-to-pod packet. Conntrack is emptied before every run, so \
             its occupancy is the same at every service count.",
            int(packet_cost::SERVICE_COUNTS[packet_cost::SERVICE_COUNTS.len() - 1]),
            int(plan.packet_samples)
        ),
        format!(
            "**Part 2.** Two identical clusters from the `rudder_tests::cluster` fixture (two \
             nodes with a pod bridge each, pods as namespaces on veths, routes between the \
             nodes' pod subnets): one runs rudder; on the other every rudder program is detached \
             and the blackhole route removed, and both nodes get the ruleset (as kube-proxy \
             writes it on every node; conntrack's TIME_WAIT timeout is lowered to 5 s there so \
             the closed connections of the runs do not fill the table). A client pod on node1, \
             three `rudder-testapp http` pods on node2 behind the service under test, which is \
             in the middle of the service list (kube-proxy writes `KUBE-SERVICES` in map order, \
             so that is where a service is on average). `rudder-testapp conn-bench` runs {} \
             connections in flight in a closed loop for {} ms: each connects, sends one HTTP/1.1 \
             request with `Connection: close` and reads the whole response; latency is connect \
             to last byte. The four paths alternate within each run. Pod IPs: the same three \
             pods, addressed directly, round-robin.",
            plan.concurrency, plan.conn_duration_ms
        ),
        format!(
            "**Part 3.** Install: a freshly loaded dataplane (default map sizes) timed through \
             `ServiceDataplane::resync` of all services (table computation and every map \
             write), against `iptables-restore` (generating the text included) into an empty \
             nat table of a fresh namespace. Endpoint change: with all services present, one \
             endpoint of a random service is replaced by a new address, timed from the \
             change to `ServiceDataplane::apply` returning after its last map write ({} \
             changes), against the `iptables-restore --noflush` a kube-proxy partial sync runs \
             for it ({} changes): `KUBE-SERVICES` and the fixed chains rewritten in full, the \
             changed service's `KUBE-SVC`/`KUBE-SEP` chains rewritten and the gone endpoint's \
             chain deleted. iptables-restore runs from a thread inside the namespace, without \
             `ip netns exec`. Only the nat table is written (kube-proxy also rewrites its \
             filter chains), which favours the reference.",
            plan.endpoint_changes, plan.iptables_changes
        ),
        format!(
            "**Part 4.** The whole path: `rudder-controlplane` (single node, fsyncing store) and \
             {nodes} node hosts running `rudder-agent serve --controlplane`, built with the tests' \
             `rudder_tests::control` fixture from the release binaries. {services} Services \
             without a selector (ClusterIP, one TCP port) and their Endpoints (three placeholder \
             addresses each) are created through the gRPC API; the agents receive them on the \
             node-sync stream and program their maps. Then one Endpoints object (the service in \
             the middle of the list) is updated {changes} times, each time with one address \
             replaced by a new one, {gap} ms apart. Each change is timed from just before the \
             update request is sent to the API server (so the store's commit and fsync are \
             inside the time; the acknowledgement row shows their share) until each node's \
             pinned maps, read by the benchmark every 50 µs (a frontend lookup, the service's \
             slots and their backends), list the new address. *Every node* is the later of the \
             nodes for each change. There is no reference run here: kube-proxy batches changes \
             behind its `minSyncPeriod` rate limit, so its figure would measure that setting; \
             part 3 compares the map write itself with iptables-restore.",
            nodes = store_to_nodes::NODES,
            services = int(store_to_nodes::SERVICES),
            changes = plan.sync_changes,
            gap = store_to_nodes::CHANGE_GAP.as_millis(),
        ),
    ];
    for line in lines {
        let _ = writeln!(out, "- {line}");
    }
}

/// `12,345`.
fn int(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in the unit that reads best.
fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

fn ratio(rudder: Duration, reference: Duration) -> f64 {
    rudder.as_secs_f64() / reference.as_secs_f64()
}

fn met(yes: bool) -> &'static str {
    if yes { "yes" } else { "**no**" }
}

#[cfg(test)]
mod tests {
    use super::{duration, int};
    use std::time::Duration;

    #[test]
    fn numbers_read_well() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1_000), "1,000");
        assert_eq!(int(100_000), "100,000");
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(duration(Duration::from_micros(85)), "85 µs");
        assert_eq!(duration(Duration::from_micros(1_500)), "1.5 ms");
        assert_eq!(duration(Duration::from_millis(2_340)), "2.34 s");
    }
}
