//! The packet counters, attached by the agent's dataplane module inside two
//! test hosts, count the traffic the hosts exchange.

use dataplane_common::CounterHook;
use netns::{Host, TestNetwork};
use rudder_agent::dataplane::{self, Dataplane, InterfaceCounters};

/// ICMP echo of ping's default 56-byte payload, as a frame: 14 + 20 + 8 + 56.
const PING_FRAME: u64 = 98;
const PINGS: u64 = 5;

fn eth0_index(host: &Host) -> u32 {
    host.enter(|| nix::net::if_::if_nametoindex("eth0"))
        .expect("enter host")
        .expect("eth0 exists")
}

fn counter(all: &[InterfaceCounters], ifindex: u32, hook: CounterHook) -> (u64, u64) {
    all.iter()
        .find(|c| c.ifindex == ifindex && c.hook == hook)
        .map_or((0, 0), |c| (c.counters.packets, c.counters.bytes))
}

fn attach(host: &Host, dir: &std::path::Path) {
    let dir = dir.to_path_buf();
    host.enter(move || {
        let mut dp = Dataplane::load(&dir)?;
        dp.attach_counters("eth0")
    })
    .expect("enter host")
    .expect("attach counters");
}

#[test]
fn counters_count_traffic_between_two_hosts_at_every_hook() {
    rudder_tests::require_root();
    let mut net = TestNetwork::new("cnt").expect("test network");
    let a = net.add_host("a").expect("host a");
    let b = net.add_host("b").expect("host b");
    let (dir_a, dir_b) = (net.bpffs_dir("a"), net.bpffs_dir("b"));
    attach(&a, &dir_a);
    attach(&b, &dir_b);

    let before_a = dataplane::read_interface_counters(&dir_a).expect("read a");
    let before_b = dataplane::read_interface_counters(&dir_b).expect("read b");
    a.run(&[
        "ping",
        "-c",
        &PINGS.to_string(),
        "-i",
        "0.05",
        "-W",
        "2",
        &b.addr.to_string(),
    ])
    .expect("a pings b");
    let after_a = dataplane::read_interface_counters(&dir_a).expect("read a");
    let after_b = dataplane::read_interface_counters(&dir_b).expect("read b");

    let (ia, ib) = (eth0_index(&a), eth0_index(&b));
    // a sends PINGS requests and receives PINGS replies; b the other way
    // round. Neighbour discovery may add a few packets, never remove any.
    for (host, idx, before, after) in [
        ("a", ia, &before_a, &after_a),
        ("b", ib, &before_b, &after_b),
    ] {
        for hook in CounterHook::ALL {
            let (p0, b0) = counter(before, idx, hook);
            let (p1, b1) = counter(after, idx, hook);
            let (packets, bytes) = (p1 - p0, b1 - b0);
            assert!(
                (PINGS..PINGS + 10).contains(&packets),
                "host {host} {}: {packets} packets counted for {PINGS} pings",
                hook.as_str()
            );
            assert!(
                bytes >= PINGS * PING_FRAME,
                "host {host} {}: {bytes} bytes counted, want at least {}",
                hook.as_str(),
                PINGS * PING_FRAME
            );
        }
    }
}

#[test]
fn reattaching_switches_pinned_links_and_keeps_the_counts() {
    rudder_tests::require_root();
    let mut net = TestNetwork::new("reat").expect("test network");
    let a = net.add_host("a").expect("host a");
    let b = net.add_host("b").expect("host b");
    let dir = net.bpffs_dir("a");
    attach(&a, &dir);
    a.run(&[
        "ping",
        "-c",
        "3",
        "-i",
        "0.05",
        "-W",
        "2",
        &b.addr.to_string(),
    ])
    .expect("a pings b");
    let first = dataplane::read_interface_counters(&dir).expect("read");
    let ia = eth0_index(&a);
    let (sent_before, _) = counter(&first, ia, CounterHook::TcEgress);
    assert!(
        sent_before >= 3,
        "counted {sent_before} sent packets before the restart"
    );

    // A second agent (a restart) loads the programs again: the pinned maps
    // are reused and the pinned links switched, not duplicated.
    attach(&a, &dir);
    let links = std::fs::read_dir(dir.join("links"))
        .expect("links dir")
        .count();
    assert_eq!(links, 3, "one pinned link per hook after a re-attach");
    a.run(&[
        "ping",
        "-c",
        "3",
        "-i",
        "0.05",
        "-W",
        "2",
        &b.addr.to_string(),
    ])
    .expect("a pings b again");
    let second = dataplane::read_interface_counters(&dir).expect("read");
    let (sent_after, _) = counter(&second, ia, CounterHook::TcEgress);
    assert!(
        (sent_before + 3..sent_before + 13).contains(&sent_after),
        "after the restart {sent_after} sent packets, before {sent_before}: counts must carry over and not double"
    );
}

#[test]
fn detaching_stops_counting() {
    rudder_tests::require_root();
    let mut net = TestNetwork::new("det").expect("test network");
    let a = net.add_host("a").expect("host a");
    let b = net.add_host("b").expect("host b");
    let dir = net.bpffs_dir("a");
    attach(&a, &dir);
    dataplane::detach_counters(&dir, "eth0").expect("detach");
    let before = dataplane::read_interface_counters(&dir).expect("read");
    a.run(&[
        "ping",
        "-c",
        "3",
        "-i",
        "0.05",
        "-W",
        "2",
        &b.addr.to_string(),
    ])
    .expect("a pings b");
    let after = dataplane::read_interface_counters(&dir).expect("read");
    assert_eq!(before, after, "nothing counted once detached");
}
