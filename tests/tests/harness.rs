//! The test-host harness: hosts talk over the private underlay, the test
//! apps answer, and nothing outlives a test — not on success, not on panic,
//! not after a run that was killed.

use std::{collections::BTreeSet, path::Path, process::Command};

use netns::{NAME_PREFIX, TEST_BPFFS_ROOT, TestNetwork};

fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn root_links() -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_owned()))
        .collect()
}

fn testapp() -> String {
    rudder_tests::binary("rudder-testapp").display().to_string()
}

#[test]
fn hosts_reach_each_other_over_tcp_udp_and_http() {
    rudder_tests::require_root();
    let mut net = TestNetwork::new("apps").expect("test network");
    let a = net.add_host("a").expect("host a");
    let b = net.add_host("b").expect("host b");
    let app = testapp();
    let _tcp = b
        .spawn(&[&app, "tcp-echo", "--listen", "0.0.0.0:7000"])
        .expect("tcp echo");
    let _udp = b
        .spawn(&[&app, "udp-echo", "--listen", "0.0.0.0:7001"])
        .expect("udp echo");
    let _http = b
        .spawn(&[&app, "http", "--listen", "0.0.0.0:8080", "--name", "web-b"])
        .expect("http");
    let to = |port: u16| format!("{}:{port}", b.addr);

    let echoed = a
        .run(&[
            &app,
            "tcp",
            "--to",
            &to(7000),
            "--message",
            "hello",
            "--retry-ms",
            "3000",
        ])
        .expect("tcp echo answers");
    assert_eq!(echoed.trim(), "hello");
    let echoed = a
        .run(&[
            &app,
            "udp",
            "--to",
            &to(7001),
            "--message",
            "datagram",
            "--retry-ms",
            "3000",
        ])
        .expect("udp echo answers");
    assert_eq!(echoed.trim(), "datagram");
    let body = a
        .run(&[
            &app,
            "http-get",
            "--to",
            &to(8080),
            "--count",
            "2",
            "--retry-ms",
            "3000",
        ])
        .expect("http answers");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "{body}");
    for line in lines {
        assert!(
            line.starts_with(&format!("pod=web-b client={}:", a.addr)),
            "the responder names itself and the client it saw: {line}"
        );
    }
}

#[test]
fn hosts_have_no_route_beyond_the_underlay() {
    rudder_tests::require_root();
    let mut net = TestNetwork::new("iso").expect("test network");
    let a = net.add_host("a").expect("host a");
    let routes = a.ip(&["-4", "route", "show"]).expect("routes");
    assert!(
        !routes.contains("default"),
        "a test host must not have a default route: {routes}"
    );
    let out = a
        .output(&["ping", "-c", "1", "-W", "1", "198.51.100.1"])
        .expect("ping runs");
    assert!(
        !out.status.success(),
        "an address off the underlay must be unreachable"
    );
}

#[test]
fn dropping_the_network_removes_namespaces_links_processes_and_pins() {
    rudder_tests::require_root();
    let links_before = root_links();
    let (prefix, pid, bpffs) = {
        let mut net = TestNetwork::new("drop").expect("test network");
        let a = net.add_host("a").expect("host a");
        net.add_host("b").expect("host b");
        net.add_namespace("pod").expect("namespace");
        let bpffs = net.bpffs_dir("a");
        std::fs::create_dir_all(TEST_BPFFS_ROOT).ok();
        let mut server = a
            .spawn(&[&testapp(), "tcp-echo", "--listen", "0.0.0.0:7000"])
            .expect("server");
        let pid = server.pid().expect("pid");
        assert!(server.is_running());
        // Leak the handle: the network must still kill the process.
        std::mem::forget(server);
        assert_eq!(
            namespaces_with_prefix(net.prefix()).len(),
            4,
            "underlay, two hosts, one namespace"
        );
        (net.prefix().to_owned(), pid, bpffs)
    };
    assert_eq!(namespaces_with_prefix(&prefix), Vec::<String>::new());
    assert!(!bpffs.exists(), "{} left behind", bpffs.display());
    // The killed process may linger as a zombie of this test process until
    // reaped; it must not be running.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z "),
        "process {pid} survived: {state}"
    );
    assert_eq!(
        root_links(),
        links_before,
        "no link appears in the root namespace"
    );
}

#[test]
fn a_panicking_test_still_tears_its_network_down() {
    rudder_tests::require_root();
    let prefix = std::sync::Mutex::new(String::new());
    let result = std::panic::catch_unwind(|| {
        let mut net = TestNetwork::new("pnc").expect("test network");
        net.add_host("a").expect("host a");
        *prefix.lock().unwrap_or_else(|e| e.into_inner()) = net.prefix().to_owned();
        panic!("the test fails here");
    });
    assert!(result.is_err());
    let prefix = prefix.into_inner().unwrap_or_else(|e| e.into_inner());
    assert!(!prefix.is_empty());
    assert_eq!(namespaces_with_prefix(&prefix), Vec::<String>::new());
}

#[test]
fn the_sweeper_removes_leftovers_of_dead_runs_only() {
    rudder_tests::require_root();
    // A pid that certainly belongs to no running process.
    let mut child = Command::new("true").spawn().expect("spawn true");
    let dead_pid = child.id();
    child.wait().expect("reap");
    let stale = format!("{NAME_PREFIX}{dead_pid}-0-stale-ul");
    let live = format!("{NAME_PREFIX}{}-9999-live-ul", std::process::id());
    for name in [&stale, &live] {
        assert!(
            Command::new("ip")
                .args(["netns", "add", name])
                .status()
                .expect("ip")
                .success()
        );
    }
    // A dead run's bpffs directory (bpffs is mounted by the dataplane; a
    // plain directory on whatever /sys/fs/bpf is works for the sweeper).
    let stale_pins = Path::new(TEST_BPFFS_ROOT).join(format!("{NAME_PREFIX}{dead_pid}-0-stale-a"));
    let made_pins = std::fs::create_dir_all(&stale_pins).is_ok();

    netns::sweep_stale();

    let remaining = namespaces_with_prefix(NAME_PREFIX);
    let _ = Command::new("ip").args(["netns", "delete", &live]).status();
    assert!(
        !remaining.contains(&stale),
        "the dead run's namespace is swept"
    );
    assert!(
        remaining.contains(&live),
        "a live run's namespace is left alone"
    );
    if made_pins {
        assert!(
            !stale_pins.exists(),
            "the dead run's bpffs directory is swept"
        );
    }
}
