//! The netlink layer against the kernel, each test inside throwaway
//! namespaces it makes (needs root). Dropping the [`TestNetwork`] removes
//! them, also when an assertion fails.

use std::{
    net::Ipv4Addr,
    os::unix::fs::MetadataExt,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use netns::TestNetwork;
use rudder_netlink::{
    Errno, Ipv4Subnet, LinkEvent, LinkMonitor, LinkState, NamespaceError, NetworkNamespace,
    NextHop, RouteSocket, RouteState, RouteType, VethEnd,
};

/// A network with one bare namespace; `body` runs on a thread inside it.
fn in_scratch_namespace<T: Send>(label: &str, body: impl FnOnce() -> T + Send) -> T {
    assert!(
        netns::have_privileges(),
        "rudder-netlink kernel tests create network namespaces: run them as root"
    );
    let mut network = TestNetwork::new(label).expect("test network");
    let scratch = network.add_namespace("nl").expect("scratch namespace");
    scratch.enter(body).expect("enter the scratch namespace")
}

fn subnet(s: &str) -> Ipv4Subnet {
    s.parse().expect("subnet")
}

fn link(socket: &mut RouteSocket, name: &str) -> LinkState {
    socket
        .link(name)
        .expect("look up")
        .unwrap_or_else(|| panic!("no link {name}"))
}

/// A bridge `br0` (up, 10.1.0.1/24) with one veth port `v0h` (up) whose
/// peer `v0p` is in the same namespace, up too, so the bridge has carrier.
fn bridge_with_port(socket: &mut RouteSocket) -> (LinkState, LinkState) {
    socket
        .create_bridge("br0", [0x02, 0, 0, 0, 0, 1], None)
        .expect("create bridge");
    let bridge = link(socket, "br0");
    socket
        .add_address(bridge.index, Ipv4Addr::new(10, 1, 0, 1), 24)
        .expect("bridge address");
    let here = NetworkNamespace::open("/proc/thread-self/ns/net").expect("this namespace");
    socket
        .create_veth(
            &VethEnd {
                name: "v0h",
                mac: [0x02, 0, 0, 0, 0, 2],
                master: Some(bridge.index),
                mtu: None,
            },
            &VethEnd {
                name: "v0p",
                mac: [0x02, 0, 0, 0, 0, 3],
                master: None,
                mtu: None,
            },
            here.fd(),
        )
        .expect("create veth");
    let peer = link(socket, "v0p");
    socket.set_up(peer.index).expect("peer up");
    (bridge, link(socket, "v0h"))
}

fn routes_to(socket: &mut RouteSocket, dst: Ipv4Subnet) -> Vec<RouteState> {
    let mut routes = socket.routes().expect("list routes");
    routes.retain(|route| route.dst == dst);
    routes
}

#[test]
fn routes_are_replaced_listed_and_deleted() {
    in_scratch_namespace("nlrt", || {
        let mut socket = RouteSocket::open().expect("socket");
        let (bridge, _) = bridge_with_port(&mut socket);
        let pods = subnet("10.244.2.0/24");
        let (first, second) = (Ipv4Addr::new(10, 1, 0, 2), Ipv4Addr::new(10, 1, 0, 3));

        for _ in 0..2 {
            socket
                .replace_route(pods, NextHop::Gateway(first))
                .expect("replace is idempotent");
        }
        let routes = routes_to(&mut socket, pods);
        assert_eq!(
            routes,
            [RouteState {
                dst: pods,
                gw: Some(first),
                oif: Some(bridge.index),
                kind: RouteType::Unicast,
            }]
        );
        socket
            .replace_route(pods, NextHop::Gateway(second))
            .expect("replace the gateway");
        let routes = routes_to(&mut socket, pods);
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!(routes[0].gw, Some(second));

        let services = subnet("10.96.0.0/12");
        for _ in 0..2 {
            socket
                .replace_route(services, NextHop::Blackhole)
                .expect("blackhole");
        }
        let routes = routes_to(&mut socket, services);
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!((routes[0].kind, routes[0].gw), (RouteType::BlackHole, None));

        let stale = socket.delete_route(pods, NextHop::Gateway(first));
        assert_eq!(
            stale.expect_err("no such route").errno(),
            Some(Errno::ESRCH)
        );
        socket
            .delete_route(pods, NextHop::Gateway(second))
            .expect("delete");
        assert!(routes_to(&mut socket, pods).is_empty());
        socket
            .delete_route(services, NextHop::Blackhole)
            .expect("delete blackhole");
        assert!(routes_to(&mut socket, services).is_empty());

        let unreachable = socket.replace_route(pods, NextHop::Gateway(Ipv4Addr::new(10, 9, 9, 9)));
        assert_eq!(
            unreachable.expect_err("no link reaches it").errno(),
            Some(Errno::ENETUNREACH)
        );
    });
}

#[test]
fn links_are_listed_and_ports_follow_their_bridge() {
    in_scratch_namespace("nllk", || {
        let mut socket = RouteSocket::open().expect("socket");
        let (bridge, port) = bridge_with_port(&mut socket);
        let mut names: Vec<String> = socket
            .links()
            .expect("list links")
            .into_iter()
            .map(|link| link.name)
            .collect();
        names.sort();
        assert_eq!(names, ["br0", "lo", "v0h", "v0p"]);
        assert_eq!(port.master, Some(bridge.index));
        let ports = socket.ports_of(bridge.index).expect("ports");
        assert_eq!(
            ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["v0h"]
        );
        assert_eq!(socket.link("nope").expect("look up"), None);
        let again = socket.create_bridge("br0", [0x02, 0, 0, 0, 0, 1], None);
        assert_eq!(again.expect_err("exists").errno(), Some(Errno::EEXIST));

        socket.delete_link("v0h").expect("delete the port");
        assert!(socket.ports_of(bridge.index).expect("ports").is_empty());
        let gone = socket.delete_link("v0h");
        assert_eq!(gone.expect_err("gone").errno(), Some(Errno::ENODEV));
    });
}

/// Waits (bounded) for an event that `wanted` accepts.
fn wait_for(monitor: &mut LinkMonitor, what: &str, wanted: impl Fn(&LinkEvent) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let events = monitor.wait(Duration::from_secs(1)).expect("wait");
        if events.iter().any(&wanted) {
            return;
        }
    }
    panic!("no notification: {what}");
}

#[test]
fn link_monitor_sees_ports_join_and_go() {
    in_scratch_namespace("nlmon", || {
        let mut monitor = LinkMonitor::open().expect("subscribe");
        let mut socket = RouteSocket::open().expect("socket");
        let (bridge, _) = bridge_with_port(&mut socket);
        wait_for(&mut monitor, "v0h joins br0", |event| {
            matches!(event, LinkEvent::Changed(link)
                if link.name == "v0h" && link.master == Some(bridge.index))
        });
        socket.delete_link("v0h").expect("delete the port");
        wait_for(
            &mut monitor,
            "v0h removed",
            |event| matches!(event, LinkEvent::Removed(link) if link.name == "v0h"),
        );
        assert!(
            monitor.wait(Duration::ZERO).is_ok(),
            "an empty queue is no error"
        );
    });
}

/// The inode that identifies a namespace.
fn namespace_inode(path: &str) -> u64 {
    std::fs::metadata(path).expect("namespace file").ino()
}

#[test]
fn named_namespaces_are_created_entered_and_deleted() {
    assert!(
        netns::have_privileges(),
        "rudder-netlink kernel tests create network namespaces: run them as root"
    );
    // The network removes every namespace named under its prefix when it
    // drops, so a failing assertion leaves nothing behind.
    let network = TestNetwork::new("nlns").expect("test network");
    let name = format!("{}-made", network.prefix());
    let path = format!("/run/netns/{name}");

    let made = NetworkNamespace::create_named(&name).expect("create");
    assert_eq!(made.path().to_str(), Some(path.as_str()));
    assert!(matches!(
        NetworkNamespace::create_named(&name),
        Err(NamespaceError::Exists { .. })
    ));
    let inode = namespace_inode(&path);
    assert_ne!(inode, namespace_inode("/proc/thread-self/ns/net"));
    let inside = made
        .run(|| namespace_inode("/proc/thread-self/ns/net"))
        .expect("run inside");
    assert_eq!(inside, inode);
    assert_ne!(
        namespace_inode("/proc/thread-self/ns/net"),
        inode,
        "the caller's thread stays where it was"
    );

    // As `ip netns add` leaves it: a loopback, down.
    let links = made
        .route_socket()
        .expect("socket inside")
        .links()
        .expect("links");
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!((links[0].name.as_str(), links[0].up), ("lo", false));

    let mut readlink = Command::new("readlink");
    readlink.arg("/proc/self/ns/net").stdout(Stdio::piped());
    let out = made
        .spawn(readlink)
        .expect("spawn inside")
        .wait_with_output()
        .expect("readlink");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("net:[{inode}]")
    );

    let reopened = NetworkNamespace::open_named(&name).expect("open by name");
    assert_eq!(namespace_inode(&reopened.path().to_string_lossy()), inode);
    drop(reopened);
    drop(made);
    NetworkNamespace::delete_named(&name).expect("delete");
    assert!(!std::path::Path::new(&path).exists());
    let err = NetworkNamespace::open_named(&name).expect_err("gone");
    assert!(err.is_not_found(), "{err}");
    let err = NetworkNamespace::delete_named(&name).expect_err("gone");
    assert!(err.is_not_found(), "{err}");
}
