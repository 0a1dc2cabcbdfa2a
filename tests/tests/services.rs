//! Service load balancing in test hosts: ClusterIP, NodePort (both traffic
//! policies), UDP, session affinity, hairpin, rejection without backends,
//! terminating backends, and that no iptables or nftables rule exists.

use std::{collections::BTreeSet, net::Ipv4Addr, time::Duration};

use rudder_agent::dataplane::{TcAttach, services::LoadBalancing};

use rudder_agent::dataplane::services::Protocol;
use rudder_tests::cluster::{Cluster, EndpointState, Pod, PortSpec, responders, seen_clients};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn testapp() -> String {
    rudder_tests::binary("rudder-testapp").display().to_string()
}

fn http_port(node_port: Option<u16>) -> PortSpec {
    PortSpec {
        name: "http",
        protocol: Protocol::Tcp,
        port: 80,
        target_port: 8080,
        node_port,
    }
}

/// Starts an HTTP responder in each pod and waits until all listen, so no
/// request reaches a backend before its server is up.
fn serve_http(pods: &[&Pod]) -> Vec<netns::HostProcess> {
    let app = testapp();
    let servers = pods
        .iter()
        .map(|p| {
            p.spawn(&[&app, "http", "--listen", "0.0.0.0:8080", "--name", &p.name])
                .expect("http server")
        })
        .collect();
    for pod in pods {
        pod.run(&[
            &app,
            "http-get",
            "--to",
            "127.0.0.1:8080",
            "--retry-ms",
            "5000",
        ])
        .unwrap_or_else(|e| panic!("{} never listened: {e}", pod.name));
    }
    servers
}

/// UDP 53 of a Service, to port 5353 of its pods.
fn dns_port() -> PortSpec {
    PortSpec {
        name: "dns",
        protocol: Protocol::Udp,
        port: 53,
        target_port: 5353,
        node_port: None,
    }
}

/// Starts a UDP echo server on port 5353 in each pod and waits until all answer.
fn serve_udp_echo(pods: &[&Pod]) -> Vec<netns::HostProcess> {
    let app = testapp();
    let servers = pods
        .iter()
        .map(|p| {
            p.spawn(&[&app, "udp-echo", "--listen", "0.0.0.0:5353"])
                .expect("udp echo")
        })
        .collect();
    for pod in pods {
        pod.run(&[&app, "udp", "--to", "127.0.0.1:5353", "--retry-ms", "5000"])
            .unwrap_or_else(|e| panic!("{} never listened: {e}", pod.name));
    }
    servers
}

fn get(from: &netns::Netns, to: &str, count: u32) -> String {
    from.run(&[
        &testapp(),
        "http-get",
        "--to",
        to,
        "--count",
        &count.to_string(),
        "--retry-ms",
        "5000",
    ])
    .unwrap_or_else(|e| panic!("requests to {to} failed: {e}"))
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn clusterip_reaches_every_backend_on_two_nodes() {
    rudder_tests::require_root();
    let mut c = Cluster::new("cip", 2);
    let client = c.add_pod(0, "client");
    let web: Vec<Pod> = [(0, "web1"), (0, "web2"), (1, "web3"), (1, "web4")]
        .iter()
        .map(|(n, name)| c.add_pod(*n, name))
        .collect();
    let _servers = serve_http(&web.iter().collect::<Vec<_>>());
    let backends: Vec<_> = web.iter().map(|p| (p, EndpointState::Ready)).collect();
    let svc = c.service("web", VIP, &[http_port(None)], &backends);
    c.apply(&svc);

    let body = get(&client, "10.96.0.10:80", 60);
    let seen: BTreeSet<String> = responders(&body).into_iter().collect();
    assert_eq!(seen, names(&["web1", "web2", "web3", "web4"]), "{body}");
    for client_addr in seen_clients(&body) {
        assert_eq!(
            client_addr,
            client.addr.to_string(),
            "ClusterIP keeps the pod's source address"
        );
    }
}

/// A web service with backends web1, web2 on node1 and web3 on node2.
fn web_cluster(
    label: &str,
    node_port: Option<u16>,
) -> (Cluster, Vec<Pod>, Vec<netns::HostProcess>) {
    web_cluster_attached(label, node_port, TcAttach::for_running_kernel())
}

/// [`web_cluster`] with the uplinks' tc programs attached as `tc_attach` says.
fn web_cluster_attached(
    label: &str,
    node_port: Option<u16>,
    tc_attach: TcAttach,
) -> (Cluster, Vec<Pod>, Vec<netns::HostProcess>) {
    let mut c = Cluster::with_tc_attach(label, 2, tc_attach);
    let web: Vec<Pod> = [(0, "web1"), (0, "web2"), (1, "web3")]
        .iter()
        .map(|(n, name)| c.add_pod(*n, name))
        .collect();
    let servers = serve_http(&web.iter().collect::<Vec<_>>());
    let backends: Vec<_> = web.iter().map(|p| (p, EndpointState::Ready)).collect();
    let svc = c.service("web", VIP, &[http_port(node_port)], &backends);
    c.apply(&svc);
    (c, web, servers)
}

#[test]
fn requests_keep_working_while_backends_are_added_and_removed() {
    rudder_tests::require_root();
    let (mut c, web, _servers) = web_cluster("churn", None);
    let client = c.add_pod(1, "client");
    let extra = c.add_pod(1, "web4");
    let _extra_server = serve_http(&[&extra]);
    let app = testapp();
    // A bounded stream of requests, each on a new connection, while the
    // endpoints change under it.
    let stream = client
        .spawn(&[
            &app,
            "http-get",
            "--to",
            "10.96.0.10:80",
            "--count",
            "300",
            "--interval-ms",
            "10",
            "--retry-ms",
            "3000",
        ])
        .expect("client");
    let all: Vec<&Pod> = web.iter().chain([&extra]).collect();
    let steps: [&[(usize, EndpointState)]; 4] = [
        &[
            (0, EndpointState::Ready),
            (1, EndpointState::Ready),
            (2, EndpointState::Ready),
            (3, EndpointState::Ready),
        ],
        // web1 terminates: no new flows, its current ones finish...
        &[
            (0, EndpointState::Terminating),
            (1, EndpointState::Ready),
            (2, EndpointState::Ready),
            (3, EndpointState::Ready),
        ],
        // ...and then it is gone.
        &[
            (1, EndpointState::Ready),
            (2, EndpointState::Ready),
            (3, EndpointState::Ready),
        ],
        &[
            (0, EndpointState::Ready),
            (1, EndpointState::Ready),
            (3, EndpointState::Ready),
        ],
    ];
    for step in steps {
        std::thread::sleep(Duration::from_millis(300));
        let backends: Vec<_> = step.iter().map(|(i, st)| (all[*i], *st)).collect();
        let svc = c.service("web", VIP, &[http_port(None)], &backends);
        c.apply(&svc);
    }
    let (out, err) = wait(stream, Duration::from_secs(60));
    let answered = responders(&out);
    assert_eq!(
        answered.len(),
        300,
        "every request answered while endpoints changed; stderr: {err}"
    );
    // Once the last change is written, new flows go to the final endpoints
    // only (checked after the stream, not by guessing when in the stream
    // the change landed).
    let after: BTreeSet<String> = responders(&get(&client, "10.96.0.10:80", 30))
        .into_iter()
        .collect();
    assert_eq!(
        after,
        names(&["web1", "web2", "web4"]),
        "the final endpoints serve new flows"
    );
}

/// Waits (bounded) until node `node`'s conntrack map holds at least `count` entries.
fn wait_for_conntrack_entries(c: &Cluster, node: usize, count: usize) {
    let entries = || {
        c.nodes[node]
            .services
            .metrics()
            .lines()
            .find_map(|l| l.strip_prefix("rudder_dataplane_map_entries{map=\"CONNTRACK\"} "))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
    };
    for _ in 0..250 {
        if entries() >= count {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "node {node}: conntrack never held {count} entries (has {})",
        entries()
    );
}

/// Waits (bounded) for a process to finish and returns its output.
fn wait(mut process: netns::HostProcess, limit: Duration) -> (String, String) {
    let started = std::time::Instant::now();
    while process.is_running() && started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(50));
    }
    process.stop()
}

#[test]
fn nodeport_with_cluster_policy_reaches_backends_on_every_node() {
    rudder_tests::require_root();
    let (c, _web, _servers) = web_cluster("npc", Some(30080));
    let node1 = &c.nodes[0].host;
    let body = get(&c.client, &format!("{}:30080", node1.addr), 45);
    let seen: BTreeSet<String> = responders(&body).into_iter().collect();
    assert_eq!(seen, names(&["web1", "web2", "web3"]), "{body}");
    for line in body.lines() {
        let client = seen_clients(line).pop().unwrap_or_default();
        if line.contains("pod=web3") {
            // Sent to node2: source-NATed to node1 so the reply returns via it.
            assert_eq!(client, node1.addr.to_string(), "{line}");
        } else {
            assert_eq!(
                client,
                c.client.addr.to_string(),
                "local backends see the client: {line}"
            );
        }
    }
}

#[test]
fn a_pod_reaches_every_backend_through_its_own_nodes_node_port() {
    rudder_tests::require_root();
    let (mut c, _web, _servers) = web_cluster("npp", Some(30081));
    let client = c.add_pod(0, "client");
    let node1 = c.nodes[0].host.addr;
    // Backends on this node and on the other: the replies of the remote one
    // arrive on the uplink and must come back to the pod as node1's.
    let body = get(&client, &format!("{node1}:30081"), 45);
    let seen: BTreeSet<String> = responders(&body).into_iter().collect();
    assert_eq!(seen, names(&["web1", "web2", "web3"]), "{body}");
}

#[test]
fn nodeport_with_local_policy_uses_local_backends_and_keeps_the_client_address() {
    rudder_tests::require_root();
    let (mut c, web, _servers) = web_cluster("npl", Some(30081));
    let backends: Vec<_> = web.iter().map(|p| (p, EndpointState::Ready)).collect();
    let mut svc = c.service("web", VIP, &[http_port(Some(30081))], &backends);
    svc.external_traffic_local = true;
    c.apply(&svc);
    for (node, expected) in [(0, names(&["web1", "web2"])), (1, names(&["web3"]))] {
        let addr = c.nodes[node].host.addr;
        let body = get(&c.client, &format!("{addr}:30081"), 30);
        let seen: BTreeSet<String> = responders(&body).into_iter().collect();
        assert_eq!(seen, expected, "node{}: {body}", node + 1);
        for client in seen_clients(&body) {
            assert_eq!(
                client,
                c.client.addr.to_string(),
                "Local keeps the client address"
            );
        }
    }
}

#[test]
fn udp_service_answers_from_its_backends() {
    rudder_tests::require_root();
    let mut c = Cluster::new("udp", 2);
    let client = c.add_pod(0, "client");
    let echo: Vec<Pod> = [(0, "dns1"), (1, "dns2")]
        .iter()
        .map(|(n, name)| c.add_pod(*n, name))
        .collect();
    let app = testapp();
    let _servers = serve_udp_echo(&echo.iter().collect::<Vec<_>>());
    let port = dns_port();
    let backends: Vec<_> = echo.iter().map(|p| (p, EndpointState::Ready)).collect();
    let svc = c.service("dns", Ipv4Addr::new(10, 96, 0, 53), &[port], &backends);
    c.apply(&svc);
    let out = client
        .run(&[
            &app,
            "udp",
            "--to",
            "10.96.0.53:53",
            "--message",
            "query",
            "--count",
            "20",
            "--retry-ms",
            "5000",
        ])
        .expect("udp answers through the service");
    assert_eq!(out.lines().filter(|l| *l == "query").count(), 20, "{out}");
}

#[test]
fn session_affinity_sends_a_client_to_one_backend() {
    rudder_tests::require_root();
    let (mut c, web, _servers) = web_cluster("aff", None);
    let client = c.add_pod(0, "client");
    let backends: Vec<_> = web.iter().map(|p| (p, EndpointState::Ready)).collect();
    let mut svc = c.service("web", VIP, &[http_port(None)], &backends);
    svc.affinity_timeout_s = Some(10_800);
    c.apply(&svc);
    let body = get(&client, "10.96.0.10:80", 30);
    let seen: BTreeSet<String> = responders(&body).into_iter().collect();
    assert_eq!(seen.len(), 1, "one client, one backend: {body}");
}

#[test]
fn maglev_picks_the_same_backend_for_a_flow_on_every_node() {
    rudder_tests::require_root();
    let (mut c, web, _servers) = web_cluster("mag", Some(30082));
    let backends: Vec<_> = web.iter().map(|p| (p, EndpointState::Ready)).collect();
    let mut svc = c.service("web", VIP, &[http_port(Some(30082))], &backends);
    svc.load_balancing = LoadBalancing::Maglev;
    c.apply(&svc);
    // The same flows (source address and ports, service) through either
    // node land on the same backends: Maglev hashes the flow, and both nodes
    // built identical tables. Cluster policy, so every backend is eligible.
    let app = testapp();
    let via = |node: usize| {
        let addr = c.nodes[node].host.addr;
        c.client
            .run(&[
                &app,
                "http-get",
                "--to",
                &format!("{addr}:30082"),
                "--count",
                "12",
                "--source-port-base",
                "41000",
                "--retry-ms",
                "5000",
            ])
            .expect("requests")
    };
    let (one, two) = (responders(&via(0)), responders(&via(1)));
    assert_eq!(one.len(), 12);
    assert_eq!(one, two, "same flows, same backends on both nodes");
    let distinct: BTreeSet<&String> = one.iter().collect();
    assert!(
        distinct.len() > 1,
        "different flows spread over backends: {one:?}"
    );
}

#[test]
fn a_pod_reaching_its_own_service_is_answered_by_itself() {
    rudder_tests::require_root();
    let mut c = Cluster::new("hair", 1);
    let web = c.add_pod(0, "web1");
    let _server = serve_http(&[&web]);
    let svc = c.service(
        "web",
        VIP,
        &[http_port(None)],
        &[(&web, EndpointState::Ready)],
    );
    c.apply(&svc);
    let body = get(&web, "10.96.0.10:80", 5);
    assert_eq!(responders(&body), vec!["web1"; 5], "{body}");
}

#[test]
fn a_service_without_backends_refuses_connections_promptly() {
    rudder_tests::require_root();
    let mut c = Cluster::new("rej", 1);
    let client = c.add_pod(0, "client");
    let ports = [http_port(None), dns_port()];
    let svc = c.service("empty", VIP, &ports, &[]);
    c.apply(&svc);
    let app = testapp();
    for (kind, target) in [("tcp", "10.96.0.10:80"), ("udp", "10.96.0.10:53")] {
        let out = client
            .output(&[&app, kind, "--to", target, "--timeout-ms", "3000"])
            .expect("client runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{kind} to an empty service must fail"
        );
        assert!(
            err.contains("refused"),
            "{kind}: refused, not timed out: {err}"
        );
    }
}

#[test]
fn a_terminating_backend_gets_no_new_flows_but_keeps_its_connection() {
    a_draining_backend_gets_no_new_flows_but_keeps_its_connection(
        "term",
        EndpointState::Terminating,
    );
}

/// kube-proxy leaves a not-ready pod's conntrack entries alone: a readiness
/// probe failing for a moment does not reset the connections it serves.
#[test]
fn a_backend_that_turns_not_ready_gets_no_new_flows_but_keeps_its_connection() {
    a_draining_backend_gets_no_new_flows_but_keeps_its_connection("unrdy", EndpointState::NotReady);
}

fn a_draining_backend_gets_no_new_flows_but_keeps_its_connection(
    label: &str,
    draining: EndpointState,
) {
    rudder_tests::require_root();
    let mut c = Cluster::new(label, 1);
    let client = c.add_pod(0, "client");
    let (a, b) = (c.add_pod(0, "web1"), c.add_pod(0, "web2"));
    let _servers = serve_http(&[&a, &b]);
    let svc = c.service(
        "web",
        VIP,
        &[http_port(None)],
        &[(&a, EndpointState::Ready)],
    );
    c.apply(&svc);
    // One kept-alive connection to web1: 30 requests, 100 ms apart.
    let app = testapp();
    let session = client
        .spawn(&[
            &app,
            "http-get",
            "--to",
            "10.96.0.10:80",
            "--keep-alive",
            "--count",
            "30",
            "--interval-ms",
            "100",
            "--retry-ms",
            "3000",
        ])
        .expect("session");
    // The session's connection exists (both directions tracked) before
    // web1 starts draining.
    wait_for_conntrack_entries(&c, 0, 2);
    let svc = c.service(
        "web",
        VIP,
        &[http_port(None)],
        &[(&a, draining), (&b, EndpointState::Ready)],
    );
    c.apply(&svc);
    let fresh = get(&client, "10.96.0.10:80", 20);
    assert_eq!(
        responders(&fresh),
        vec!["web2"; 20],
        "new flows avoid the {draining:?} backend"
    );
    let (out, err) = wait(session, Duration::from_secs(30));
    assert_eq!(
        responders(&out),
        vec!["web1"; 30],
        "the established connection went on: {err}"
    );
}

#[test]
fn node_hosts_have_no_iptables_or_nftables_rules_and_blackhole_the_service_cidr() {
    rudder_tests::require_root();
    let (c, _web, _servers) = web_cluster("rules", Some(30083));
    for node in &c.nodes {
        let routes = node
            .host
            .ip(&["route", "show", "type", "blackhole"])
            .expect("routes");
        assert!(
            routes.contains(rudder_tests::cluster::SERVICE_CIDR),
            "{}: {routes}",
            node.host.label
        );
        let nft = node
            .host
            .run(&["nft", "list", "ruleset"])
            .expect("nft runs");
        assert!(
            nft.trim().is_empty(),
            "{}: nft ruleset not empty: {nft}",
            node.host.label
        );
        let ipt = node
            .host
            .run(&["iptables-save"])
            .expect("iptables-save runs");
        let rules: Vec<&str> = ipt.lines().filter(|l| l.starts_with('-')).collect();
        assert!(
            rules.is_empty(),
            "{}: iptables rules: {rules:?}",
            node.host.label
        );
    }
}

#[test]
fn an_agent_restart_under_traffic_loses_no_established_connection() {
    rudder_tests::require_root();
    let (mut c, web, _servers) = web_cluster("rst", Some(30084));
    let client = c.add_pod(0, "client");
    let app = testapp();
    // Long-lived connections (ClusterIP from a pod, NodePort from outside)
    // and a stream of new connections, all running across two restarts.
    let session = client
        .spawn(&[
            &app,
            "http-get",
            "--to",
            "10.96.0.10:80",
            "--keep-alive",
            "--count",
            "40",
            "--interval-ms",
            "50",
            "--retry-ms",
            "3000",
        ])
        .expect("pod session");
    let node1 = c.nodes[0].host.addr;
    let outside = c
        .client
        .spawn(&[
            &app,
            "http-get",
            "--to",
            &format!("{node1}:30084"),
            "--keep-alive",
            "--count",
            "40",
            "--interval-ms",
            "50",
            "--retry-ms",
            "3000",
        ])
        .expect("outside session");
    let stream = client
        .spawn(&[
            &app,
            "http-get",
            "--to",
            "10.96.0.10:80",
            "--count",
            "200",
            "--interval-ms",
            "10",
            "--retry-ms",
            "3000",
        ])
        .expect("new connections");
    std::thread::sleep(Duration::from_millis(400));
    // The table is rebuilt from the pinned maps with the same ids, so the
    // resync after a restart has nothing to write.
    assert_eq!(c.restart_agent(0), 0, "a restart rewrites no map entry");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(c.restart_agent(0), 0);
    assert_eq!(c.restart_agent(1), 0);
    for (what, process, expected) in [
        ("pod session", session, 40),
        ("outside session", outside, 40),
        ("new connections", stream, 200),
    ] {
        let (out, err) = wait(process, Duration::from_secs(60));
        assert_eq!(
            responders(&out).len(),
            expected,
            "{what}: every request answered across restarts; stderr: {err}"
        );
    }
    let links = std::fs::read_dir(c.nodes[0].dir.join("links"))
        .expect("links")
        .count();
    // Uplink: 2 tc programs and XDP, as pinned links.
    assert_eq!(links, 3, "restarts switch links, they do not add any");
    // Pods' veths carry tc filters: still one per direction.
    for pod in web.iter().filter(|p| p.node == 0).chain([&client]) {
        for direction in ["ingress", "egress"] {
            let filters = c.nodes[0]
                .host
                .run(&["tc", "filter", "show", "dev", &pod.host_iface, direction])
                .expect("tc filter show");
            let programs = filters
                .lines()
                .filter(|l| l.contains(" bpf ") && l.contains(" handle "))
                .count();
            assert_eq!(
                programs, 1,
                "{} {direction}: restarts replace the filter's program, they do not add one:\n{filters}",
                pod.name
            );
        }
    }
}

#[test]
fn processes_in_the_cgroup_connect_straight_to_backends() {
    rudder_tests::require_root();
    let mut c = Cluster::new("sock", 1);
    let web: Vec<Pod> = ["web1", "web2"].iter().map(|n| c.add_pod(0, n)).collect();
    let _servers = serve_http(&web.iter().collect::<Vec<_>>());
    let dns = c.add_pod(0, "dns1");
    let app = testapp();
    let _echo = serve_udp_echo(&[&dns]);
    let backends: Vec<_> = web.iter().map(|p| (p, EndpointState::Ready)).collect();
    c.apply(&c.service("web", VIP, &[http_port(None)], &backends));
    let dns_port = dns_port();
    c.apply(&c.service(
        "dns",
        Ipv4Addr::new(10, 96, 0, 53),
        &[dns_port],
        &[(&dns, EndpointState::Ready)],
    ));

    let cgroup = rudder_tests::TestCgroup::new("sock");
    let dir = c.nodes[0].dir.clone();
    let path = cgroup.path().to_path_buf();
    c.nodes[0]
        .host
        .enter(move || {
            let mut dp =
                rudder_agent::dataplane::Dataplane::load(&dir).map_err(|e| e.to_string())?;
            dp.attach_sockets(&path).map_err(|e| e.to_string())
        })
        .expect("enter node")
        .expect("attach socket hooks");

    // A host process on the node (no pod veth on its way, so no tc program
    // could translate): only the connect-time hook can take it to a backend.
    let node = &c.nodes[0].host;
    let out = cgroup.output_in(
        node,
        &[
            &app,
            "http-get",
            "--to",
            "10.96.0.10:80",
            "--count",
            "20",
            "--retry-ms",
            "3000",
        ],
    );
    assert!(
        out.status.success(),
        "the host reaches the ClusterIP: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let seen: BTreeSet<String> = responders(&body).into_iter().collect();
    assert_eq!(seen, names(&["web1", "web2"]), "{body}");

    // Unconnected UDP: sendmsg picks the backend, recvmsg restores the
    // service as the reply's source.
    let udp = cgroup.output_in(
        node,
        &[
            &app,
            "udp",
            "--to",
            "10.96.0.53:53",
            "--unconnected",
            "--message",
            "q",
            "--count",
            "3",
            "--retry-ms",
            "3000",
        ],
    );
    assert!(
        udp.status.success(),
        "the host reaches the UDP service: {}",
        String::from_utf8_lossy(&udp.stderr)
    );
    let out = String::from_utf8_lossy(&udp.stdout).into_owned();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["q from=10.96.0.53:53"; 3],
        "{out}"
    );

    // None of it went through per-packet NAT.
    let metrics = c.nodes[0].services.metrics();
    assert!(
        metrics.contains("rudder_dataplane_map_entries{map=\"CONNTRACK\"} 0"),
        "{metrics}"
    );

    // A process outside the cgroup is not translated: the blackhole route
    // refuses it.
    let outside = node
        .output(&[
            &app,
            "http-get",
            "--to",
            "10.96.0.10:80",
            "--timeout-ms",
            "1000",
        ])
        .expect("runs");
    assert!(
        !outside.status.success(),
        "outside the cgroup there is no translation"
    );
}

#[test]
fn conntrack_collection_removes_flows_of_removed_backends_and_closed_flows() {
    rudder_tests::require_root();
    let mut c = Cluster::new("ctgc", 1);
    let client = c.add_pod(0, "client");
    let web: Vec<Pod> = ["web1", "web2"].iter().map(|n| c.add_pod(0, n)).collect();
    let _servers = serve_http(&web.iter().collect::<Vec<_>>());
    c.apply(&c.service(
        "web",
        VIP,
        &[http_port(None)],
        &[(&web[0], EndpointState::Ready)],
    ));
    get(&client, "10.96.0.10:80", 5);
    let entries = |c: &Cluster| -> usize {
        let metrics = c.nodes[0].services.metrics();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("rudder_dataplane_map_entries{map=\"CONNTRACK\"} "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX)
    };
    assert_eq!(entries(&c), 10, "five flows, two entries each");

    // Generous timeouts: nothing is idle long enough, only orphans go.
    let generous = rudder_agent::dataplane::services::ConntrackTimeouts::default();
    let stats = c.nodes[0]
        .services
        .collect_conntrack(&generous)
        .expect("gc");
    assert_eq!(
        (stats.scanned, stats.expired, stats.orphaned),
        (10, 0, 0),
        "{stats:?}"
    );

    // web1 leaves the service: its backend is deleted, its flows can never
    // recover, and collection removes them.
    c.apply(&c.service(
        "web",
        VIP,
        &[http_port(None)],
        &[(&web[1], EndpointState::Ready)],
    ));
    let stats = c.nodes[0]
        .services
        .collect_conntrack(&generous)
        .expect("gc");
    assert_eq!(stats.orphaned, 10, "{stats:?}");
    assert_eq!(entries(&c), 0);

    // Closed flows go after the (here zero) closing timeout. The last FIN
    // may still be on its way when the client returns: collect (bounded)
    // until the three flows' six entries are gone, and never more.
    get(&client, "10.96.0.10:80", 3);
    let strict = rudder_agent::dataplane::services::ConntrackTimeouts {
        tcp_closing: Duration::ZERO,
        ..generous
    };
    let mut expired = 0;
    for _ in 0..100 {
        expired += c.nodes[0]
            .services
            .collect_conntrack(&strict)
            .expect("gc")
            .expired;
        if expired >= 6 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(expired, 6, "three closed flows, both directions");
    assert_eq!(entries(&c), 0);
}

/// Kernels before 6.6 (Debian 12's 6.1) have no TCX: the uplink gets tc
/// clsact filters over netlink (`--attach-mode tc`). Forced here on a
/// kernel that has TCX: ClusterIP and NodePort reach every backend, a
/// long-lived connection survives agent restarts, and the restarts
/// replace the filters' programs without adding filters or links.
#[test]
fn tc_filter_attachment_serves_clusterip_and_nodeport_across_restarts() {
    rudder_tests::require_root();
    let (mut c, _web, _servers) = web_cluster_attached("tcf", Some(30085), TcAttach::Filter);
    let client = c.add_pod(0, "client");
    let body = get(&client, "10.96.0.10:80", 45);
    let all = names(&["web1", "web2", "web3"]);
    assert_eq!(
        responders(&body).into_iter().collect::<BTreeSet<_>>(),
        all,
        "{body}"
    );
    let node1 = c.nodes[0].host.addr;
    let body = get(&c.client, &format!("{node1}:30085"), 45);
    assert_eq!(
        responders(&body).into_iter().collect::<BTreeSet<_>>(),
        all,
        "{body}"
    );

    let app = testapp();
    let session = client
        .spawn(&[
            &app,
            "http-get",
            "--to",
            "10.96.0.10:80",
            "--keep-alive",
            "--count",
            "30",
            "--interval-ms",
            "50",
            "--retry-ms",
            "3000",
        ])
        .expect("pod session");
    assert_eq!(c.restart_agent(0), 0, "a restart rewrites no map entry");
    assert_eq!(c.restart_agent(0), 0);
    let (out, err) = wait(session, Duration::from_secs(60));
    assert_eq!(
        responders(&out).len(),
        30,
        "every request answered; stderr: {err}"
    );

    // Only the XDP program is a pinned link; tc programs are filters, one
    // per direction after the restarts.
    let links: Vec<String> = std::fs::read_dir(c.nodes[0].dir.join("links"))
        .expect("links")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(links, ["svc_xdp@eth0"], "no TCX link on the uplink");
    for direction in ["ingress", "egress"] {
        let filters = c.nodes[0]
            .host
            .run(&["tc", "filter", "show", "dev", "eth0", direction])
            .expect("tc filter show");
        let programs = filters
            .lines()
            .filter(|l| l.contains(" bpf ") && l.contains(" handle "))
            .count();
        assert_eq!(programs, 1, "eth0 {direction}: one filter:\n{filters}");
    }
}
