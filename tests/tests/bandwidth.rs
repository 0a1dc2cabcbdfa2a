//! Per-pod bandwidth limits.
//!
//! `bucket`: the kernel's bucket on crafted packets with BPF_PROG_TEST_RUN,
//! at a rate so low (1 kB/s) that the time the runs take refills nothing
//! measurable: the outcomes depend on packet sizes, not on timing.

/// A scratch directory, removed on drop (also when a test fails).
struct ScratchDir(std::path::PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

mod bucket {
    use dataplane_common::{
        bandwidth::BandwidthDirection,
        program_names::{SERVICE_FROM_POD, SERVICE_TO_POD},
    };
    use netns::TestNetwork;
    use rudder_agent::dataplane::Dataplane;
    use rudder_dataplane_maps::{BandwidthEntry, BandwidthMaps, BandwidthShape};
    use rudder_tests::{checksums_valid, internet_checksum, udp_packet};

    const TC_NEXT: i32 = -1;
    const TC_DROP: i32 = 2;
    /// ECN codepoints (low two bits of the IPv4 TOS byte).
    const ECT0: u8 = 0b10;
    const CE: u8 = 0b11;
    /// 1 kB/s with a 4.5 kB burst: each 1000-byte packet takes 1 s of it.
    /// The bucket admits while it holds any tokens, so five packets pass
    /// (the fifth into debt); marking starts past 2.25 s of backlog, the
    /// early-drop band past 3.375 s. The time the runs take (ms) is far
    /// from every threshold.
    const SHAPE: BandwidthShape = BandwidthShape {
        rate_bytes_per_sec: 1_000,
        burst_bytes: 4_500,
        flags: 0,
    };

    /// A UDP packet of exactly 1000 bytes (from the Ethernet header on)
    /// with the given ECN codepoint and a correct IPv4 checksum.
    fn packet(ecn: u8) -> Vec<u8> {
        let mut p = udp_packet([10, 244, 1, 5], [10, 244, 2, 7], 40000, 5001, &[7u8; 958]);
        assert_eq!(p.len(), 1000);
        p[15] = (p[15] & !0b11) | ecn;
        p[24] = 0;
        p[25] = 0;
        let sum = internet_checksum(&p[14..34]);
        p[24..26].copy_from_slice(&sum.to_be_bytes());
        assert!(checksums_valid(&p));
        p
    }

    fn arp() -> Vec<u8> {
        let mut p = vec![0xff; 6];
        p.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
        p.extend_from_slice(&[0u8; 28]);
        p
    }

    /// Runs `program` on each packet in turn with the limit `shape` set for
    /// `direction` on the test runner's device (the namespace's loopback);
    /// returns the verdicts with the packets as left, and the map entry.
    fn run(
        label: &str,
        program: &'static str,
        direction: BandwidthDirection,
        packets: &[Vec<u8>],
    ) -> (Vec<(i32, Vec<u8>)>, BandwidthEntry) {
        rudder_tests::require_root();
        let mut net = TestNetwork::new(label).expect("test network");
        let ns = net.add_namespace("prog").expect("namespace");
        let dir = net.bpffs_dir("prog");
        ns.enter(move || {
            let mut dp = Dataplane::load(&dir).expect("load dataplane");
            let lo = nix::net::if_::if_nametoindex("lo").expect("lo");
            let mut maps = BandwidthMaps::open(&dir).expect("bandwidth maps");
            maps.set(lo, direction, SHAPE).expect("set limit");
            let runs = packets
                .iter()
                .map(|p| {
                    let run = dp.run_program(program, p, 1).expect("test run");
                    (run.verdict, run.packet)
                })
                .collect();
            let entry = maps
                .entries()
                .expect("entries")
                .into_iter()
                .find(|e| e.ifindex == lo && e.direction == direction)
                .expect("the limit is listed");
            (runs, entry)
        })
        .expect("enter")
    }

    #[test]
    fn ecn_packets_pass_the_burst_get_marked_past_half_and_drop_when_empty() {
        let sent = vec![packet(ECT0); 6];
        let (runs, entry) = run("bwecn", SERVICE_TO_POD, BandwidthDirection::ToPod, &sent);
        let verdicts: Vec<i32> = runs.iter().map(|(v, _)| *v).collect();
        assert_eq!(
            verdicts,
            [TC_NEXT, TC_NEXT, TC_NEXT, TC_NEXT, TC_NEXT, TC_DROP],
            "{entry:?}"
        );
        // The first half of the burst passes untouched.
        for (run, sent) in runs[..3].iter().zip(&sent) {
            assert_eq!(&run.1, sent);
        }
        // Then CE, with the IPv4 checksum updated, and nothing else changed.
        for (verdict, marked) in &runs[3..5] {
            assert_eq!(*verdict, TC_NEXT);
            assert_eq!(marked[15] & 0b11, CE);
            assert!(checksums_valid(marked), "checksum after CE marking");
            let mut expected = sent[2].clone();
            expected[15] |= CE;
            expected[24..26].copy_from_slice(&marked[24..26]);
            assert_eq!(marked, &expected);
        }
        let c = entry.counters;
        assert_eq!((c.passed_packets, c.passed_bytes), (5, 5_000));
        assert_eq!((c.marked_packets, c.dropped_packets), (2, 1));
        assert_eq!(entry.limit.rate_bytes_per_sec, SHAPE.rate_bytes_per_sec);
    }

    #[test]
    fn packets_without_ecn_are_never_marked_and_dropped_once_the_burst_is_spent() {
        let sent = vec![packet(0); 7];
        let (runs, entry) = run(
            "bwnoecn",
            SERVICE_FROM_POD,
            BandwidthDirection::FromPod,
            &sent,
        );
        // Below the early-drop band (the first four) nothing is dropped;
        // all that pass are untouched.
        for (verdict, _) in &runs[..4] {
            assert_eq!(*verdict, TC_NEXT);
        }
        for (verdict, out) in &runs {
            if *verdict == TC_NEXT {
                assert_eq!(out, &sent[0], "a passed packet without ECN is untouched");
            } else {
                assert_eq!(*verdict, TC_DROP);
            }
        }
        // Five packets' worth at most: once a fifth passed the bucket is
        // empty, so of the last three (in the band or past it) at most one
        // passes, whatever the random draws.
        let late_drops = runs[4..].iter().filter(|(v, _)| *v == TC_DROP).count();
        assert!(late_drops >= 2, "{late_drops} of the last three dropped");
        let c = entry.counters;
        assert_eq!(c.marked_packets, 0);
        assert_eq!(c.passed_packets + c.dropped_packets, 7);
        assert!((4..=5).contains(&c.passed_packets), "{c:?}");
    }

    #[test]
    fn traffic_that_is_not_ipv4_passes_untouched_and_uncounted() {
        let sent = vec![arp(); 8];
        let (runs, entry) = run("bwarp", SERVICE_TO_POD, BandwidthDirection::ToPod, &sent);
        for (verdict, out) in &runs {
            assert_eq!(*verdict, TC_NEXT);
            assert_eq!(out, &sent[0]);
        }
        assert_eq!(
            entry.counters.passed_packets + entry.counters.dropped_packets,
            0
        );
    }

    #[test]
    fn the_other_direction_is_not_limited() {
        let sent = vec![packet(ECT0); 8];
        let (runs, _) = run("bwdir", SERVICE_FROM_POD, BandwidthDirection::ToPod, &sent);
        for (verdict, out) in &runs {
            assert_eq!(*verdict, TC_NEXT);
            assert_eq!(out, &sent[0]);
        }
    }
}

mod throughput {
    //! TCP throughput of pods in a hand-made cluster with the dataplane
    //! attached (see `rudder_tests::cluster`), limits set in the pinned map
    //! as the agent sets them. Bounds are generous: behaviour, not a
    //! benchmark (`cargo xtask bench bandwidth` measures). The lower bound
    //! of 0.6x catches the old failure: without the pods' 50 ms minimum RTO
    //! every tail drop at the queue-less bucket idled a flow for 200 ms and
    //! a single flow got about half its limit.

    use dataplane_common::bandwidth::{BandwidthCounters, BandwidthDirection};
    use rudder_agent::bandwidth::limits::shape;
    use rudder_dataplane_maps::BandwidthMaps;
    use rudder_tests::cluster::{Cluster, Pod};

    const LIMIT_BPS: u64 = 20_000_000;
    const IPERF_PORT: &str = "5201";

    /// Which way [`throughput_bps`] measures.
    #[derive(Clone, Copy)]
    enum Way {
        /// `from` sends to `to`.
        Send,
        /// `from` receives from `to` (iperf3 -R).
        Receive,
    }

    /// TCP goodput between `from` (iperf3 client) and `to` (server) over
    /// 3 s, bits/s, as the receiving side counted it.
    fn throughput_bps(from: &Pod, to: &Pod, way: Way) -> f64 {
        let server = to
            .spawn(&["iperf3", "-s", "-p", IPERF_PORT])
            .expect("iperf3 server");
        let addr = to.addr.to_string();
        let mut args = vec![
            "iperf3",
            "-c",
            &addr,
            "-p",
            IPERF_PORT,
            "-t",
            "3",
            "-J",
            "--connect-timeout",
            "5000",
        ];
        if matches!(way, Way::Receive) {
            args.push("-R");
        }
        // The server may not listen yet: retry the connection a few times.
        let mut last = String::new();
        for _ in 0..20 {
            match from.run(&args) {
                Ok(out) => {
                    let report: serde_json::Value =
                        serde_json::from_str(&out).expect("iperf3 JSON");
                    if let Some(bps) = report["end"]["sum_received"]["bits_per_second"].as_f64() {
                        return bps;
                    }
                    // iperf3 reports "the server is busy" and the like here.
                    last = report["error"].to_string();
                }
                Err(err) => {
                    last = err.to_string();
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
        drop(server);
        panic!("iperf3 from {} to {} never ran: {last}", from.name, to.name);
    }

    fn ifindex(cluster: &Cluster, pod: &Pod) -> u32 {
        let iface = pod.host_iface.clone();
        cluster.nodes[pod.node]
            .host
            .enter(move || nix::net::if_::if_nametoindex(iface.as_str()))
            .expect("enter node")
            .expect("pod veth")
    }

    fn counters(cluster: &Cluster, pod: &Pod, direction: BandwidthDirection) -> BandwidthCounters {
        let ifindex = ifindex(cluster, pod);
        BandwidthMaps::open(&cluster.nodes[pod.node].dir)
            .expect("bandwidth maps")
            .entries()
            .expect("entries")
            .into_iter()
            .find(|e| e.ifindex == ifindex && e.direction == direction)
            .expect("the limit is listed")
            .counters
    }

    fn limit(cluster: &Cluster, pod: &Pod, direction: BandwidthDirection, bps: Option<u64>) {
        let ifindex = ifindex(cluster, pod);
        let mut maps = BandwidthMaps::open(&cluster.nodes[pod.node].dir).expect("bandwidth maps");
        match bps {
            Some(bps) => maps.set(ifindex, direction, shape(bps, None)),
            None => maps.remove(ifindex, direction),
        }
        .expect("bandwidth map");
    }

    fn assert_near(what: &str, measured: f64, limit_bps: u64) {
        let ratio = measured / limit_bps as f64;
        eprintln!(
            "{what}: {:.1} Mbit/s, {ratio:.2} of the limit",
            measured / 1e6
        );
        assert!(
            (0.6..=1.3).contains(&ratio),
            "{what}: {:.1} Mbit/s against a limit of {} Mbit/s",
            measured / 1e6,
            limit_bps / 1_000_000
        );
    }

    #[test]
    fn limited_pod_stays_near_its_limit_both_ways_and_changes_apply_live() {
        rudder_tests::require_root();
        let mut cluster = Cluster::new("bwtput", 2);
        let limited = cluster.add_pod(0, "limited");
        let neighbour = cluster.add_pod(0, "neighbour");
        let local_peer = cluster.add_pod(0, "peer");
        let remote_peer = cluster.add_pod(1, "remote");
        // The pods' TCP settings, as the agent writes them in every pod.
        for pod in [&limited, &neighbour, &local_peer, &remote_peer] {
            let netns = std::path::PathBuf::from(format!("/run/netns/{}", pod.name()));
            rudder_agent::bandwidth::ecn::enable_in(&netns).expect("pod sysctls");
        }
        limit(
            &cluster,
            &limited,
            BandwidthDirection::FromPod,
            Some(LIMIT_BPS),
        );
        limit(
            &cluster,
            &limited,
            BandwidthDirection::ToPod,
            Some(LIMIT_BPS),
        );

        let out = throughput_bps(&limited, &remote_peer, Way::Send);
        assert_near("egress to another node", out, LIMIT_BPS);
        let counters = counters(&cluster, &limited, BandwidthDirection::FromPod);
        eprintln!("egress counters: {counters:?}");
        assert!(
            counters.marked_packets > 0,
            "ECN-capable TCP (tcp_ecn=1 in the pods) is marked before it is dropped: {counters:?}"
        );
        let into = throughput_bps(&limited, &remote_peer, Way::Receive);
        assert_near("ingress from another node", into, LIMIT_BPS);
        let same_node = throughput_bps(&limited, &local_peer, Way::Send);
        assert_near("egress to a pod on the same node", same_node, LIMIT_BPS);
        let neighbour_bps = throughput_bps(&neighbour, &local_peer, Way::Send);
        assert!(
            neighbour_bps > 4.0 * LIMIT_BPS as f64,
            "the unlimited neighbour got {:.1} Mbit/s",
            neighbour_bps / 1e6
        );

        let raised = 3 * LIMIT_BPS;
        limit(
            &cluster,
            &limited,
            BandwidthDirection::FromPod,
            Some(raised),
        );
        let out = throughput_bps(&limited, &remote_peer, Way::Send);
        assert_near("egress after the live change", out, raised);

        limit(&cluster, &limited, BandwidthDirection::FromPod, None);
        let out = throughput_bps(&limited, &remote_peer, Way::Send);
        assert!(
            out > 1.5 * raised as f64,
            "removing the limit left {:.1} Mbit/s",
            out / 1e6
        );
    }
}

mod agent_sync {
    //! The agent's half: `BandwidthSync` turns pod annotations (and
    //! rudder-cni's records) into map entries keyed by the pod's veth,
    //! follows changes, and turns ECN on in the pod's namespace.

    use std::{collections::BTreeMap, path::PathBuf};

    use dataplane_common::bandwidth::BandwidthDirection;
    use rudder_agent::bandwidth::{BandwidthSync, PodNetwork};
    use rudder_dataplane_maps::BandwidthMaps;
    use rudder_tests::cluster::{Cluster, Pod};

    use super::ScratchDir;

    fn network(pod: &Pod, annotations: &[(&str, &str)]) -> PodNetwork {
        PodNetwork {
            pod: format!("default/{}", pod.name),
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            host_interfaces: vec![pod.host_iface.clone()],
            netns: PathBuf::from("/run/netns").join(pod.netns.name()),
        }
    }

    /// Rates in bits/s per direction of `pod`'s veth after a sync round.
    fn rates(
        cluster: &Cluster,
        pod: &Pod,
        sync: &mut BandwidthSync,
        pods: &[PodNetwork],
    ) -> Vec<(BandwidthDirection, u64)> {
        let iface = pod.host_iface.clone();
        let dir = cluster.nodes[pod.node].dir.clone();
        cluster.nodes[pod.node]
            .host
            .enter(move || {
                sync.sync(pods);
                let ifindex = nix::net::if_::if_nametoindex(iface.as_str()).expect("veth");
                BandwidthMaps::open(&dir)
                    .expect("maps")
                    .entries()
                    .expect("entries")
                    .into_iter()
                    .filter(|e| e.ifindex == ifindex)
                    .map(|e| (e.direction, e.limit.rate_bytes_per_sec * 8))
                    .collect()
            })
            .expect("enter node")
    }

    #[test]
    fn annotations_set_change_and_lift_limits_and_cni_records_fill_in() {
        rudder_tests::require_root();
        let mut cluster = Cluster::new("bwsync", 1);
        let pod = cluster.add_pod(0, "web");
        let other = cluster.add_pod(0, "other");
        // Not under the node's bpffs directory: bpffs holds no plain files.
        let scratch =
            ScratchDir(std::env::temp_dir().join(format!("rdr-{}-bwsync", std::process::id())));
        let records = scratch.0.clone();
        std::fs::create_dir_all(&records).expect("records dir");
        let mut sync = BandwidthSync::open(&cluster.nodes[0].dir, records.clone()).expect("open");

        let egress = "kubernetes.io/egress-bandwidth";
        let ingress = "kubernetes.io/ingress-bandwidth";
        let limited = [network(&pod, &[(egress, "10M"), (ingress, "2M")])];
        assert_eq!(
            rates(&cluster, &pod, &mut sync, &limited),
            [
                (BandwidthDirection::FromPod, 10_000_000),
                (BandwidthDirection::ToPod, 2_000_000)
            ]
        );
        let ecn = pod
            .run(&["sysctl", "-n", "net.ipv4.tcp_ecn"])
            .expect("sysctl");
        assert_eq!(ecn.trim(), "1", "ECN is on in the pod's namespace");
        // Kernels before 6.11 have no such sysctl (the agent skips it there).
        if let Ok(rto_min) = pod.run(&["sysctl", "-n", "net.ipv4.tcp_rto_min_us"]) {
            assert_eq!(rto_min.trim(), "50000", "the pod's minimum RTO is 50 ms");
        }

        let changed = [network(&pod, &[(egress, "20M")])];
        assert_eq!(
            rates(&cluster, &pod, &mut sync, &changed),
            [(BandwidthDirection::FromPod, 20_000_000)]
        );
        let lifted = [network(&pod, &[])];
        assert!(rates(&cluster, &pod, &mut sync, &lifted).is_empty());

        // A veth no pod of the agent owns: rudder-cni's record applies.
        std::fs::write(
            records.join("other-eth0.json"),
            serde_json::json!({
                "network": "rudder", "containerID": "other", "ifname": "eth0",
                "hostVeth": other.host_iface, "ingressRate": 8_000_000, "ingressBurst": 800_000,
                "egressRate": 0, "egressBurst": 0
            })
            .to_string(),
        )
        .expect("record");
        assert_eq!(
            rates(&cluster, &other, &mut sync, &lifted),
            [(BandwidthDirection::ToPod, 8_000_000)]
        );
    }
}

mod real_agent {
    //! A real cluster (control plane, agents running pods): a pod's
    //! annotations reach its node's bandwidth map through the agent, the
    //! limit stays while the agent is down and after it restarts (the map
    //! is pinned and the new agent adopts the pod), and an edit still
    //! applies live under the new agent.

    use std::time::Duration;

    use dataplane_common::bandwidth::BandwidthDirection;
    use rudder_dataplane_maps::BandwidthMaps;
    use rudder_tests::control::{Cluster, bin, start_agent};
    use serde_json::Value;

    fn manifest(name: &str, node: &str, egress: &str) -> String {
        let app = bin("rudder-testapp");
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  annotations:
    kubernetes.io/egress-bandwidth: "{egress}"
    kubernetes.io/ingress-bandwidth: "5M"
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: rudder/testapp
    command: ["{app}", "http", "--listen", "0.0.0.0:8080", "--name", "{name}"]
"#
        )
    }

    fn running(pod: &Value) -> bool {
        pod["status"]["phase"] == "Running" && pod["status"]["podIP"].is_string()
    }

    /// The node's limits as (direction, bits/s), sorted.
    fn limits(bpffs: &std::path::Path) -> Vec<(BandwidthDirection, u64)> {
        let mut out: Vec<_> = BandwidthMaps::open(bpffs)
            .and_then(|maps| maps.entries())
            .map(|entries| {
                entries
                    .into_iter()
                    .map(|e| (e.direction, e.limit.rate_bytes_per_sec * 8))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Polls (bounded) until the node's limits are `want`.
    fn wait_limits(bpffs: &std::path::Path, want: &[(BandwidthDirection, u64)], what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let have = limits(bpffs);
            if have == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: the node's limits are {have:?}, not {want:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[test]
    fn annotated_limits_reach_the_map_survive_an_agent_restart_and_still_change_live() {
        rudder_tests::require_root();
        let mut c = Cluster::new("bwagent");
        let node = c.nodes[0].name.clone();
        let bpffs = c.nodes[0].bpffs.clone();
        c.apply(&manifest("limited", &node, "10M"));
        c.wait_pod("limited", "ran", running);
        let want = [
            (BandwidthDirection::FromPod, 10_000_000),
            (BandwidthDirection::ToPod, 5_000_000),
        ];
        wait_limits(&bpffs, &want, "the agent applied the annotations");

        drop(c.nodes[0].agent.take());
        assert_eq!(
            limits(&bpffs),
            want,
            "the limits stay while the agent is down"
        );
        start_agent(&mut c.nodes[0]);
        // A pod started by the new agent: it has run pod rounds since.
        c.apply(&manifest("witness", &node, "20M"));
        c.wait_pod("witness", "ran under the restarted agent", running);
        wait_limits(
            &bpffs,
            &[
                (BandwidthDirection::FromPod, 10_000_000),
                (BandwidthDirection::FromPod, 20_000_000),
                (BandwidthDirection::ToPod, 5_000_000),
                (BandwidthDirection::ToPod, 5_000_000),
            ],
            "the restarted agent kept the first pod's limits and added the witness's",
        );

        c.apply(&manifest("limited", &node, "30M"));
        wait_limits(
            &bpffs,
            &[
                (BandwidthDirection::FromPod, 20_000_000),
                (BandwidthDirection::FromPod, 30_000_000),
                (BandwidthDirection::ToPod, 5_000_000),
                (BandwidthDirection::ToPod, 5_000_000),
            ],
            "an edited annotation applies live under the new agent",
        );
    }
}

mod cni_capability {
    //! The CNI `bandwidth` capability end to end: rudder-cni invoked with
    //! `runtimeConfig.bandwidth` (as a container runtime invokes it) records
    //! the limits, the agent's sync puts them on the veth rudder-cni made,
    //! and DEL lifts them.

    use std::{
        io::Write,
        process::{Command, Stdio},
    };

    use dataplane_common::bandwidth::BandwidthDirection;
    use netns::{Host, Netns, TestNetwork};
    use rudder_agent::{bandwidth::BandwidthSync, dataplane::Dataplane};
    use rudder_dataplane_maps::BandwidthMaps;
    use serde_json::{Value, json};

    use super::ScratchDir;

    /// Runs rudder-cni `command` for `pod` in `node`; returns its stdout.
    fn cni(node: &Host, command: &str, pod: &Netns, config: &Value) -> String {
        let binary = rudder_tests::control::bin("rudder-cni");
        let netns = format!("/run/netns/{}", pod.name());
        let output = node
            .enter(|| {
                let mut child = Command::new(&binary)
                    .env_clear()
                    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                    .env("CNI_COMMAND", command)
                    .env("CNI_CONTAINERID", "ctr-bw")
                    .env("CNI_NETNS", &netns)
                    .env("CNI_IFNAME", "eth0")
                    .env("CNI_PATH", "/usr/lib/cni")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn rudder-cni");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(config.to_string().as_bytes())
                    .expect("config to rudder-cni");
                child.wait_with_output().expect("rudder-cni runs")
            })
            .expect("enter node");
        assert!(
            output.status.success(),
            "rudder-cni {command}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The node's limits as (ifindex, direction, bits/s) after a sync round
    /// with no pods of the agent's own.
    fn synced(
        node: &Host,
        sync: &mut BandwidthSync,
        bpffs: &std::path::Path,
    ) -> Vec<(u32, BandwidthDirection, u64)> {
        node.enter(|| {
            sync.sync(&[]);
            let mut out: Vec<_> = BandwidthMaps::open(bpffs)
                .expect("maps")
                .entries()
                .expect("entries")
                .into_iter()
                .map(|e| (e.ifindex, e.direction, e.limit.rate_bytes_per_sec * 8))
                .collect();
            out.sort();
            out
        })
        .expect("enter node")
    }

    #[test]
    fn runtime_config_bandwidth_reaches_the_veth_and_del_lifts_it() {
        rudder_tests::require_root();
        let mut network = TestNetwork::new("bwcni").expect("test network");
        let node = network.add_host("node").expect("node host");
        let pod = network.add_namespace("pod").expect("pod namespace");
        let bpffs = network.bpffs_dir("node");
        let pin = bpffs.clone();
        node.enter(move || Dataplane::load(&pin).map(drop))
            .expect("enter node")
            .expect("dataplane loads");
        let state = ScratchDir(std::env::temp_dir().join(format!("{}-bwcni", network.prefix())));
        std::fs::create_dir_all(&state.0).expect("scratch dir");
        let records = state.0.join("bandwidth");
        let config = json!({
            "cniVersion": "1.0.0", "name": "pods", "type": "rudder-cni", "bridge": "cni0",
            "ipam": {"subnet": "10.244.7.0/24", "dataDir": state.0.join("ipam")},
            "bandwidthDir": records,
            "runtimeConfig": {"bandwidth": {
                "ingressRate": 8_000_000, "ingressBurst": 800_000,
                "egressRate": 4_000_000, "egressBurst": 400_000
            }},
        });
        let result: Value =
            serde_json::from_str(&cni(&node, "ADD", &pod, &config)).expect("result");
        let veth = result["interfaces"][1]["name"]
            .as_str()
            .expect("host veth in the result")
            .to_owned();
        let name = veth.clone();
        let ifindex = node
            .enter(move || nix::net::if_::if_nametoindex(name.as_str()))
            .expect("enter node")
            .expect("the host veth exists");
        let mut sync = BandwidthSync::open(&bpffs, records).expect("bandwidth maps");
        assert_eq!(
            synced(&node, &mut sync, &bpffs),
            [
                (ifindex, BandwidthDirection::FromPod, 4_000_000),
                (ifindex, BandwidthDirection::ToPod, 8_000_000)
            ],
            "the runtimeConfig limits are on {veth}"
        );
        cni(&node, "DEL", &pod, &config);
        assert!(
            synced(&node, &mut sync, &bpffs).is_empty(),
            "DEL lifted the limits"
        );
    }
}
