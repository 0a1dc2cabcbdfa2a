//! Part 1: the per-packet cost of `svc_from_pod` (the tc program that
//! translates pod -> ClusterIP traffic) at 10 to 100,000 services, run on
//! crafted packets with BPF_PROG_TEST_RUN.
//!
//! Every sample is one run (`repeat = 1`): with a larger repeat count the
//! kernel runs the program again on the packet the previous run rewrote,
//! which no longer goes to a service, so the mean would mostly time the
//! untranslated path. The kernel times each run itself (the duration does
//! not include the syscall), with a fixed overhead of its own that the
//! floor column (an ARP frame, which the program passes after reading the
//! Ethernet header) shows.
//!
//! Conntrack is emptied before every round, so its occupancy is the same at
//! every service count. Each path is timed two ways: packets of one service in a row (the
//! service's map entries stay in the CPU caches: the cost of the lookups
//! themselves), and packets each to a randomly chosen service (at 100,000
//! services most lookups miss the caches and the TLB, as traffic spread
//! over every service would).

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use dataplane_common::program_names::SERVICE_FROM_POD;
use netns::TestNetwork;
use rudder_agent::dataplane::{
    Dataplane, MapSizes,
    services::{NodeServiceConfig, ServiceDataplane, ServiceState},
};
use rudder_dataplane_maps::ServiceMaps;
use rudder_tests::tcp_packet;

use super::{
    Plan,
    synthetic::{self, Picker, SERVICE_PORT, TARGET_PORT},
};
use crate::{interrupt, stats};

/// Service counts measured.
pub const SERVICE_COUNTS: [usize; 4] = [10, 1_000, 10_000, 100_000];

/// tc verdict of a program that leaves the packet to the next one.
const TC_NEXT: i32 = -1;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// Medians (of the per-round medians) at one service count, ns per packet.
#[derive(Clone, Debug)]
pub struct PacketCost {
    /// Services installed.
    pub services: usize,
    /// A packet of a flow conntrack knows (the common case), the same flow
    /// again and again.
    pub established_warm_ns: f64,
    /// The same, each packet of a flow to a random service.
    pub established_spread_ns: f64,
    /// The first packet of a flow (backend choice and two conntrack
    /// inserts), every flow to the same service.
    pub new_flow_warm_ns: f64,
    /// The same, each flow to a random service.
    pub new_flow_spread_ns: f64,
    /// A pod-to-pod packet (no service): what all other traffic pays.
    pub untranslated_ns: f64,
    /// An ARP frame: the test run's own overhead plus the Ethernet check.
    pub floor_ns: f64,
}

/// Measures every service count in one dataplane, growing the table.
///
/// # Errors
/// When the dataplane cannot be loaded, a sync fails, or a packet is not
/// translated as it should be (the numbers would be meaningless).
pub fn measure(plan: &Plan) -> Result<Vec<PacketCost>> {
    let mut net = TestNetwork::new("bpk").context("test network")?;
    let ns = net.add_namespace("prog").context("namespace")?;
    let dir = net.bpffs_dir("prog");
    let plan = plan.clone();
    ns.enter(move || measure_in_namespace(&dir, &plan))
        .context("entering the benchmark namespace")?
}

fn measure_in_namespace(dir: &Path, plan: &Plan) -> Result<Vec<PacketCost>> {
    let largest = SERVICE_COUNTS[SERVICE_COUNTS.len() - 1];
    let endpoints = largest * synthetic::ENDPOINTS_PER_SERVICE;
    let flows = plan.packet_samples * 3 + 1;
    let sizes = MapSizes {
        frontends: capacity(largest),
        backend_slots: capacity(endpoints),
        backends: capacity(endpoints),
        // Two entries per flow of a round, and no LRU eviction while measuring.
        conntrack: capacity(2 * flows).max(MapSizes::default().conntrack),
        ..MapSizes::default()
    };
    let mut dp = Dataplane::load_with(dir, &sizes).context("loading the dataplane")?;
    let config = NodeServiceConfig {
        node_addr: Ipv4Addr::new(192, 0, 2, 1),
        hairpin_addr: Ipv4Addr::new(169, 254, 42, 1),
        snat_ports: 40000..=49999,
        uplink_ifindex: 1,
    };
    let mut services = ServiceDataplane::open(dir, &config).context("opening the service maps")?;
    let all = synthetic::services(largest, None);
    let mut flows = FlowSource::default();
    let mut picker = Picker::new(0x5eed);
    let mut results = Vec::new();
    for count in SERVICE_COUNTS {
        interrupt::check()?;
        let states: Vec<ServiceState> = all[..count].iter().map(|s| s.state()).collect();
        services
            .resync(&states, Instant::now())
            .with_context(|| format!("installing {count} services"))?;
        let mut established_warm = Vec::new();
        let mut established = Vec::new();
        let mut new_flow_warm = Vec::new();
        let mut new_flow = Vec::new();
        let mut untranslated = Vec::new();
        let mut floor = Vec::new();
        for _ in 0..plan.runs {
            interrupt::check()?;
            empty_conntrack(dir)?;
            let mut run = Run {
                dp: &mut dp,
                flows: &mut flows,
                picker: &mut picker,
                count,
                samples: plan.packet_samples,
            };
            established_warm.push(run.established_warm()?);
            established.push(run.established()?);
            new_flow_warm.push(run.new_flows(false)?);
            new_flow.push(run.new_flows(true)?);
            untranslated.push(run.untranslated()?);
            floor.push(run.floor()?);
        }
        let cost = PacketCost {
            services: count,
            established_warm_ns: stats::median(&established_warm),
            established_spread_ns: stats::median(&established),
            new_flow_warm_ns: stats::median(&new_flow_warm),
            new_flow_spread_ns: stats::median(&new_flow),
            untranslated_ns: stats::median(&untranslated),
            floor_ns: stats::median(&floor),
        };
        println!(
            "   {count:>7} services: established {:.0}/{:.0} ns, new flow {:.0}/{:.0} ns \
             (one service/random services), untranslated {:.0} ns, floor {:.0} ns",
            cost.established_warm_ns,
            cost.established_spread_ns,
            cost.new_flow_warm_ns,
            cost.new_flow_spread_ns,
            cost.untranslated_ns,
            cost.floor_ns
        );
        results.push(cost);
    }
    drop(services);
    drop(dp);
    let _ = std::fs::remove_dir_all(PathBuf::from(dir));
    Ok(results)
}

/// Deletes every conntrack entry.
fn empty_conntrack(dir: &Path) -> Result<()> {
    let mut maps = ServiceMaps::open(dir).context("opening the service maps")?;
    let keys: Vec<_> = maps
        .conntrack
        .keys()
        .collect::<Result<_, _>>()
        .context("listing conntrack")?;
    for key in keys {
        maps.conntrack.remove(&key).context("emptying conntrack")?;
    }
    Ok(())
}

/// Map capacity for `entries`, with a little room.
fn capacity(entries: usize) -> u32 {
    u32::try_from(entries + entries / 8 + 64).unwrap_or(u32::MAX)
}

/// Hands out flows (client address, source port) never used before.
#[derive(Default)]
struct FlowSource {
    next: u32,
}

impl FlowSource {
    /// A fresh client in 10.244.1.0/24 .. and source port.
    fn next(&mut self) -> ([u8; 4], u16) {
        let n = self.next;
        self.next += 1;
        let client = u32::from_be_bytes([10, 244, 1, 2]) + n / 60_000;
        let port = 1_024 + u16::try_from(n % 60_000).unwrap_or(0);
        (client.to_be_bytes(), port)
    }
}

/// One round of samples at one service count.
struct Run<'a> {
    dp: &'a mut Dataplane,
    flows: &'a mut FlowSource,
    picker: &'a mut Picker,
    count: usize,
    samples: usize,
}

impl Run<'_> {
    /// Opens `samples` flows to random services, then times one packet of
    /// each: the median ns.
    fn established(&mut self) -> Result<f64> {
        let mut open = Vec::with_capacity(self.samples);
        for _ in 0..self.samples {
            let (client, port) = self.flows.next();
            let vip = synthetic::cluster_ip(self.picker.below(self.count)).octets();
            let syn = tcp_packet(client, vip, port, SERVICE_PORT, SYN, b"");
            self.translate(&syn)?;
            open.push(tcp_packet(client, vip, port, SERVICE_PORT, ACK, b"GET /"));
        }
        let mut times = Vec::with_capacity(open.len());
        for packet in &open {
            times.push(self.translate(packet)?);
        }
        Ok(stats::median(&times))
    }

    /// Opens one flow to a random service, then times `samples` packets
    /// of it: the median ns.
    fn established_warm(&mut self) -> Result<f64> {
        let (client, port) = self.flows.next();
        let vip = synthetic::cluster_ip(self.picker.below(self.count)).octets();
        self.translate(&tcp_packet(client, vip, port, SERVICE_PORT, SYN, b""))?;
        let packet = tcp_packet(client, vip, port, SERVICE_PORT, ACK, b"GET /");
        let mut times = Vec::with_capacity(self.samples);
        for _ in 0..self.samples {
            times.push(self.translate(&packet)?);
        }
        Ok(stats::median(&times))
    }

    /// Times the first packet of `samples` new flows, each to a random
    /// service if `spread`, else all to one.
    fn new_flows(&mut self, spread: bool) -> Result<f64> {
        let mut times = Vec::with_capacity(self.samples);
        let one = self.picker.below(self.count);
        for _ in 0..self.samples {
            let (client, port) = self.flows.next();
            let service = if spread {
                self.picker.below(self.count)
            } else {
                one
            };
            let vip = synthetic::cluster_ip(service).octets();
            let syn = tcp_packet(client, vip, port, SERVICE_PORT, SYN, b"");
            times.push(self.translate(&syn)?);
        }
        Ok(stats::median(&times))
    }

    /// Times pod-to-pod packets, which must pass untouched.
    fn untranslated(&mut self) -> Result<f64> {
        let mut times = Vec::with_capacity(self.samples);
        for i in 0..self.samples {
            let (client, port) = self.flows.next();
            let server = [10, 244, 2, 2 + u8::try_from(i % 200).unwrap_or(0)];
            let packet = tcp_packet(client, server, port, TARGET_PORT, ACK, b"GET /");
            let run = self.dp.run_program(SERVICE_FROM_POD, &packet, 1)?;
            if run.verdict != TC_NEXT || run.packet != packet {
                bail!("a pod-to-pod packet was changed (verdict {})", run.verdict);
            }
            times.push(run.duration.as_nanos() as f64);
        }
        Ok(stats::median(&times))
    }

    /// Times an ARP frame (the program's shortest path).
    fn floor(&mut self) -> Result<f64> {
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 10, 244, 1, 2]);
        arp.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 244, 1, 1]);
        let mut times = Vec::with_capacity(self.samples);
        for _ in 0..self.samples {
            let run = self.dp.run_program(SERVICE_FROM_POD, &arp, 1)?;
            times.push(run.duration.as_nanos() as f64);
        }
        Ok(stats::median(&times))
    }

    /// Runs the program once on a packet to a ClusterIP and checks that it
    /// went to one of the service's endpoints; returns the kernel's time.
    fn translate(&mut self, packet: &[u8]) -> Result<f64> {
        let run = self.dp.run_program(SERVICE_FROM_POD, packet, 1)?;
        let dst = Ipv4Addr::new(
            run.packet[30],
            run.packet[31],
            run.packet[32],
            run.packet[33],
        );
        let dport = u16::from_be_bytes([run.packet[36], run.packet[37]]);
        if run.verdict != TC_NEXT || !synthetic::is_placeholder(dst) || dport != TARGET_PORT {
            bail!(
                "a packet to a ClusterIP was not translated: verdict {}, destination {dst}:{dport}",
                run.verdict
            );
        }
        Ok(run.duration.as_nanos() as f64)
    }
}
