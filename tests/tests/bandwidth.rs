//! Per-pod bandwidth limits.
//!
//! `bucket`: the kernel's bucket on crafted packets with BPF_PROG_TEST_RUN,
//! at a rate so low (1 kB/s) that the time the runs take refills nothing
//! measurable: the outcomes depend on packet sizes, not on timing.

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
        let (runs, entry) = run("bwnoecn", SERVICE_FROM_POD, BandwidthDirection::FromPod, &sent);
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
        assert_eq!(entry.counters.passed_packets + entry.counters.dropped_packets, 0);
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
