//! Service load balancing in test hosts: ClusterIP, NodePort (both traffic
//! policies), UDP, session affinity, hairpin, rejection without backends,
//! terminating backends, and that no iptables or nftables rule exists.

use std::{collections::BTreeSet, net::Ipv4Addr, time::Duration};

use rudder_agent::dataplane::services::Protocol;
use rudder_tests::cluster::{Cluster, EndpointState, Pod, PortSpec, responders, seen_clients};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn testapp() -> String {
    rudder_tests::binary("rudder-testapp").display().to_string()
}

fn http_port(node_port: Option<u16>) -> PortSpec {
    PortSpec { name: "http", protocol: Protocol::Tcp, port: 80, target_port: 8080, node_port }
}

fn serve_http(pods: &[&Pod]) -> Vec<netns::HostProcess> {
    let app = testapp();
    pods.iter()
        .map(|p| p.spawn(&[&app, "http", "--listen", "0.0.0.0:8080", "--name", &p.name]).expect("http server"))
        .collect()
}

fn get(from: &netns::Netns, to: &str, count: u32) -> String {
    from.run(&[&testapp(), "http-get", "--to", to, "--count", &count.to_string(), "--retry-ms", "5000"])
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
        assert_eq!(client_addr, client.addr.to_string(), "ClusterIP keeps the pod's source address");
    }
}
