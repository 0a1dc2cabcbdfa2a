//! The kernel programs run on crafted packets with BPF_PROG_TEST_RUN: what
//! they return, that they leave every packet untouched (well-formed or
//! not), and what they count.

use dataplane_common::{CounterHook, program_names};
use netns::TestNetwork;
use rudder_agent::dataplane::{self, Dataplane};

/// TCX_NEXT / TC_ACT_UNSPEC: let the next program and the stack decide.
const TC_NEXT: i32 = -1;
/// XDP_PASS.
const XDP_PASS: i32 = 2;

/// A crafted packet, and whether the kernel's test runner accepts it for
/// skb (tc) programs: it refuses IPv4 frames shorter than an IPv4 header,
/// which XDP programs still get to see.
struct Case {
    what: &'static str,
    packet: Vec<u8>,
    skb_accepts: bool,
}

fn cases() -> Vec<Case> {
    let udp = rudder_tests::udp_packet([10, 244, 1, 5], [10, 96, 0, 10], 40000, 53, b"query");
    let mut truncated_ip = udp.clone();
    truncated_ip.truncate(14 + 10); // Ethernet + half an IPv4 header
    let mut truncated_udp = udp.clone();
    truncated_udp.truncate(14 + 20 + 4); // half a UDP header
    let mut bad_ihl = udp.clone();
    bad_ihl[14] = 0x41; // IHL 1: shorter than the minimum header
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    let case = |what, packet, skb_accepts| Case {
        what,
        packet,
        skb_accepts,
    };
    vec![
        case("udp", udp, true),
        case("ipv4 truncated inside the ip header", truncated_ip, false),
        case("ipv4 truncated inside the udp header", truncated_udp, true),
        case("ipv4 with bad ihl", bad_ihl, true),
        case("arp", arp, true),
        case("garbage", (0u8..=255).cycle().take(100).collect(), true),
    ]
}

#[test]
fn counting_programs_pass_every_packet_untouched_and_count_it() {
    rudder_tests::require_root();
    let mut net = TestNetwork::new("trun").expect("test network");
    // A fresh namespace: BPF_PROG_TEST_RUN runs skb programs as if on its
    // loopback device, so its counters start from nothing.
    let ns = net.add_namespace("prog").expect("namespace");
    let dir = net.bpffs_dir("prog");
    let loopback = ns
        .enter(|| nix::net::if_::if_nametoindex("lo"))
        .expect("enter")
        .expect("lo");

    let cases = cases();
    let dir_in = dir.clone();
    let cases_in = &cases;
    ns.enter(move || {
        let mut dp = Dataplane::load(&dir_in).expect("load dataplane");
        for Case {
            what,
            packet,
            skb_accepts,
        } in cases_in
        {
            for (program, verdict, skb) in [
                (program_names::COUNT_TC_INGRESS, TC_NEXT, true),
                (program_names::COUNT_TC_EGRESS, TC_NEXT, true),
                (program_names::COUNT_XDP, XDP_PASS, false),
            ] {
                if skb && !skb_accepts {
                    continue;
                }
                let run = dp
                    .run_program(program, packet, 1)
                    .unwrap_or_else(|e| panic!("{program} on {what}: {e}"));
                assert_eq!(run.verdict, verdict, "{program} on {what}");
                assert_eq!(&run.packet, packet, "{program} changed the {what} packet");
            }
        }
    })
    .expect("enter");

    let counters = dataplane::read_interface_counters(&dir).expect("read counters");
    for hook in CounterHook::ALL {
        let seen = cases
            .iter()
            .filter(|c| c.skb_accepts || hook == CounterHook::Xdp);
        let (packets, bytes) = seen.fold((0, 0), |(n, b), c| (n + 1, b + c.packet.len() as u64));
        let entry = counters
            .iter()
            .find(|c| c.ifindex == loopback && c.hook == hook)
            .unwrap_or_else(|| panic!("no {} counter for lo in {counters:?}", hook.as_str()));
        assert_eq!(entry.counters.packets, packets, "{} packets", hook.as_str());
        assert_eq!(entry.counters.bytes, bytes, "{} bytes", hook.as_str());
    }
}

#[test]
fn running_a_program_that_does_not_exist_is_a_clear_error() {
    rudder_tests::require_root();
    let mut net = TestNetwork::new("trne").expect("test network");
    let ns = net.add_namespace("prog").expect("namespace");
    let dir = net.bpffs_dir("prog");
    let err = ns
        .enter(move || {
            let mut dp = Dataplane::load(&dir).expect("load dataplane");
            dp.run_program("no_such_program", &[0u8; 64], 1)
                .expect_err("must fail")
                .to_string()
        })
        .expect("enter");
    assert!(
        err.contains("no_such_program") && err.contains("not in the object"),
        "{err}"
    );
}

mod translation {
    //! Service translation on crafted packets: addresses, ports, checksums,
    //! refusals, and packets that must pass untouched.

    use std::{net::Ipv4Addr, time::Instant};

    use dataplane_common::program_names::{
        SERVICE_FROM_NETWORK, SERVICE_FROM_POD, SERVICE_TO_POD, SERVICE_XDP,
    };
    use netns::TestNetwork;
    use rudder_agent::dataplane::{
        Dataplane,
        services::{
            Endpoint, EndpointPort, LoadBalancing, NodeServiceConfig, Protocol, ServiceChange,
            ServiceDataplane, ServiceName, ServicePort, ServiceState,
        },
    };
    use rudder_tests::{checksums_valid, tcp_packet, udp_packet};

    const TC_NEXT: i32 = -1;
    const TC_REDIRECT: i32 = 7;
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const CLIENT: [u8; 4] = [10, 244, 1, 9];
    const VIP: [u8; 4] = [10, 96, 0, 10];
    const BACKEND: [u8; 4] = [10, 244, 1, 5];

    fn service(backends: &[[u8; 4]]) -> ServiceState {
        let port = |name: &str, protocol, port| ServicePort {
            name: name.into(),
            protocol,
            port,
            node_port: (protocol == Protocol::Tcp).then_some(30080),
        };
        ServiceState {
            name: ServiceName::new("default", "web"),
            cluster_ip: Some(Ipv4Addr::from(VIP)),
            ports: vec![
                port("http", Protocol::Tcp, 80),
                port("dns", Protocol::Udp, 53),
            ],
            affinity_timeout_s: None,
            external_traffic_local: false,
            load_balancing: LoadBalancing::Random,
            endpoints: backends
                .iter()
                .map(|addr| Endpoint {
                    addr: Ipv4Addr::from(*addr),
                    ports: vec![
                        EndpointPort {
                            name: "http".into(),
                            protocol: Protocol::Tcp,
                            port: 8080,
                        },
                        EndpointPort {
                            name: "dns".into(),
                            protocol: Protocol::Udp,
                            port: 5353,
                        },
                    ],
                    ready: true,
                    terminating: false,
                    local: true,
                })
                .collect(),
        }
    }

    /// Runs `f` with a loaded dataplane whose only service is `web` with
    /// `backends`, in a namespace of its own.
    fn with_service<T: Send>(
        label: &str,
        backends: &[[u8; 4]],
        f: impl FnOnce(&mut Dataplane) -> T + Send,
    ) -> T {
        rudder_tests::require_root();
        let mut net = TestNetwork::new(label).expect("test network");
        let ns = net.add_namespace("prog").expect("namespace");
        let dir = net.bpffs_dir("prog");
        let svc = service(backends);
        ns.enter(move || {
            let mut dp = Dataplane::load(&dir).expect("load");
            let config = NodeServiceConfig {
                node_addr: Ipv4Addr::new(198, 18, 0, 1),
                hairpin_addr: Ipv4Addr::new(169, 254, 42, 1),
                snat_ports: 40000..=49999,
                uplink_ifindex: 1,
            };
            let mut services = ServiceDataplane::open(&dir, &config).expect("service maps");
            services
                .apply(&ServiceChange::Upsert(svc), Instant::now())
                .expect("apply");
            f(&mut dp)
        })
        .expect("enter")
    }

    fn addr(p: &[u8], at: usize) -> [u8; 4] {
        [p[at], p[at + 1], p[at + 2], p[at + 3]]
    }

    fn port(p: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([p[at], p[at + 1]])
    }

    #[test]
    fn tcp_to_a_clusterip_is_sent_to_the_backend_and_the_reply_comes_from_the_clusterip() {
        with_service("tcpx", &[BACKEND], |dp| {
            let syn = tcp_packet(CLIENT, VIP, 40000, 80, SYN, b"");
            let out = dp.run_program(SERVICE_FROM_POD, &syn, 1).expect("run");
            assert_eq!(out.verdict, TC_NEXT);
            assert_eq!(addr(&out.packet, 30), BACKEND, "destination is the backend");
            assert_eq!(
                port(&out.packet, 36),
                8080,
                "destination port is the target port"
            );
            assert_eq!(addr(&out.packet, 26), CLIENT, "source untouched");
            assert!(checksums_valid(&out.packet), "checksums after DNAT");

            let reply = tcp_packet(BACKEND, CLIENT, 8080, 40000, SYN | ACK, b"");
            let back = dp.run_program(SERVICE_TO_POD, &reply, 1).expect("run");
            assert_eq!(back.verdict, TC_NEXT);
            assert_eq!(
                addr(&back.packet, 26),
                VIP,
                "the reply comes from the ClusterIP"
            );
            assert_eq!(port(&back.packet, 34), 80);
            assert!(checksums_valid(&back.packet), "checksums after reverse NAT");

            // Later packets of the flow (with payload) follow the same path.
            let data = tcp_packet(CLIENT, VIP, 40000, 80, ACK, b"GET / HTTP/1.1\r\n\r\n");
            let out = dp.run_program(SERVICE_FROM_POD, &data, 1).expect("run");
            assert_eq!(addr(&out.packet, 30), BACKEND);
            assert!(checksums_valid(&out.packet));
        });
    }

    #[test]
    fn the_xdp_fast_path_translates_nodeport_traffic_with_incremental_checksums() {
        const NODE: [u8; 4] = [198, 18, 0, 1];
        const OUTSIDE: [u8; 4] = [198, 51, 100, 7];
        const XDP_PASS: i32 = 2;
        with_service("xdpx", &[BACKEND], |dp| {
            for payload in [&b""[..], b"odd", b"GET / HTTP/1.1\r\n\r\n"] {
                let packet = tcp_packet(OUTSIDE, NODE, 50000, 30080, SYN, payload);
                let out = dp.run_program(SERVICE_XDP, &packet, 1).expect("run");
                assert_eq!(out.verdict, XDP_PASS, "a local backend: on to the stack");
                assert_eq!(addr(&out.packet, 30), BACKEND);
                assert_eq!(port(&out.packet, 36), 8080);
                assert_eq!(
                    addr(&out.packet, 26),
                    OUTSIDE,
                    "Cluster policy, local backend: no SNAT"
                );
                assert!(
                    checksums_valid(&out.packet),
                    "incremental checksums with {} payload bytes",
                    payload.len()
                );
            }
            // ClusterIPs are not served from the network.
            let to_vip = tcp_packet(OUTSIDE, VIP, 50001, 80, SYN, b"");
            let out = dp.run_program(SERVICE_XDP, &to_vip, 1).expect("run");
            assert_eq!(out.packet, to_vip);
        });
    }

    #[test]
    fn udp_to_a_clusterip_is_translated_and_a_zero_checksum_stays_zero() {
        with_service("udpx", &[BACKEND], |dp| {
            let query = udp_packet(CLIENT, VIP, 40001, 53, b"query");
            let out = dp.run_program(SERVICE_FROM_POD, &query, 1).expect("run");
            assert_eq!(addr(&out.packet, 30), BACKEND);
            assert_eq!(port(&out.packet, 36), 5353);
            assert!(checksums_valid(&out.packet));

            let mut unchecked = udp_packet(CLIENT, VIP, 40002, 53, b"query");
            unchecked[40..42].copy_from_slice(&[0, 0]);
            let out = dp
                .run_program(SERVICE_FROM_POD, &unchecked, 1)
                .expect("run");
            assert_eq!(addr(&out.packet, 30), BACKEND);
            assert_eq!(
                &out.packet[40..42],
                &[0, 0],
                "no checksum stays no checksum"
            );
            assert!(checksums_valid(&out.packet));
        });
    }

    #[test]
    fn a_syn_to_a_service_without_backends_is_answered_with_a_reset() {
        with_service("rstx", &[], |dp| {
            let syn = tcp_packet(CLIENT, VIP, 40000, 80, SYN, b"");
            let out = dp.run_program(SERVICE_FROM_POD, &syn, 1).expect("run");
            assert_eq!(out.verdict, TC_REDIRECT, "sent back where it came from");
            let rst = &out.packet;
            assert_eq!(rst.len(), 54);
            assert_eq!(&rst[0..6], &syn[6..12], "to the sender's MAC");
            assert_eq!(addr(rst, 26), VIP);
            assert_eq!(addr(rst, 30), CLIENT);
            assert_eq!((port(rst, 34), port(rst, 36)), (80, 40000));
            assert_eq!(rst[34 + 13], 0x14, "RST|ACK");
            let ack = u32::from_be_bytes([rst[42], rst[43], rst[44], rst[45]]);
            assert_eq!(ack, 1001, "acknowledges the SYN");
            assert!(checksums_valid(rst));
        });
    }

    #[test]
    fn udp_to_a_service_without_backends_gets_port_unreachable() {
        with_service("icmpx", &[], |dp| {
            let query = udp_packet(CLIENT, VIP, 40001, 53, b"query");
            let out = dp.run_program(SERVICE_FROM_POD, &query, 1).expect("run");
            assert_eq!(out.verdict, TC_REDIRECT);
            let icmp = &out.packet;
            assert_eq!(icmp.len(), 70);
            assert_eq!(icmp[23], 1, "ICMP");
            assert_eq!((icmp[34], icmp[35]), (3, 3), "destination/port unreachable");
            assert_eq!(
                &icmp[42..70],
                &query[14..42],
                "quotes the original IP header and 8 bytes"
            );
            assert_eq!(
                rudder_tests::internet_checksum(&icmp[14..34]),
                0,
                "IP checksum"
            );
            assert_eq!(
                rudder_tests::internet_checksum(&icmp[34..70]),
                0,
                "ICMP checksum"
            );
        });
    }

    #[test]
    fn packets_the_translation_does_not_understand_pass_untouched() {
        with_service("passx", &[BACKEND], |dp| {
            let syn = tcp_packet(CLIENT, VIP, 40000, 80, SYN, b"");
            let mut fragment = syn.clone();
            fragment[20] = 0x20; // more fragments
            let ip_csum = rudder_tests::internet_checksum(&{
                let mut h = fragment[14..34].to_vec();
                h[10] = 0;
                h[11] = 0;
                h
            });
            fragment[24..26].copy_from_slice(&ip_csum.to_be_bytes());
            let mut truncated_tcp = syn.clone();
            truncated_tcp.truncate(14 + 20 + 10);
            let mut bad_ihl = syn.clone();
            bad_ihl[14] = 0x44;
            let mut ipv6 = syn.clone();
            ipv6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            let other_port = tcp_packet(CLIENT, VIP, 40000, 81, SYN, b"");
            let icmp = {
                let mut p = udp_packet(CLIENT, VIP, 0, 0, b"");
                p[23] = 1;
                p
            };
            for (what, packet) in [
                ("fragment", fragment),
                ("truncated tcp header", truncated_tcp),
                ("ihl below 5", bad_ihl),
                ("ipv6 ethertype", ipv6),
                ("a port the service does not have", other_port),
                ("icmp", icmp),
            ] {
                for program in [
                    SERVICE_FROM_POD,
                    SERVICE_TO_POD,
                    SERVICE_FROM_NETWORK,
                    SERVICE_XDP,
                ] {
                    let out = dp
                        .run_program(program, &packet, 1)
                        .unwrap_or_else(|e| panic!("{program} on {what}: {e}"));
                    let pass = if program == SERVICE_XDP { 2 } else { TC_NEXT };
                    assert_eq!(out.verdict, pass, "{program} on {what}");
                    assert_eq!(out.packet, packet, "{program} changed the {what} packet");
                }
            }
        });
    }
}
