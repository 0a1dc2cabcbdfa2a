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
