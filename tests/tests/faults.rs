//! The cluster keeps serving while it changes, judged as a user judges
//! Kubernetes: a client loop runs through the Service the whole time, one
//! new connection every 20 ms and none retried, and every failed request
//! counts. Over a control plane and three nodes:
//! - scaling a Deployment 3 -> 6 fails no request (scaling down is not
//!   here yet: without graceful deletion a removed pod stops before the
//!   nodes stop sending it new connections, and one or two of them fail);
//! - kill -9 of an agent breaks no established connection, new ones keep
//!   working, and the restarted agent adopts its pods.

use std::{collections::BTreeSet, time::Duration};

use rudder_tests::{
    control::{Cluster, ClusterOptions, bin, start_agent},
    service_client::{ServiceLoop, cluster_ip, json, pod_sandbox, ready_pod_ips, web_cluster},
};

/// Longest any wait or loop here may take.
const LIMIT: Duration = Duration::from_secs(60);

fn cluster(label: &str) -> Cluster {
    let mut options = ClusterOptions::for_tests(label);
    options.nodes = 3;
    options.chain_tuning_on_node2 = false;
    options.pod_cgroups_on_node1 = false;
    options.log_to_files = true;
    web_cluster(&options).expect("test cluster with the web app")
}

fn wait_for_replicas(c: &Cluster, count: usize) {
    rudder_tests::service_client::wait_for_replicas(c, "web", count, LIMIT).expect("replicas");
}

fn client_loop(c: &Cluster) -> ServiceLoop {
    let sandbox = pod_sandbox(c, 0, "client").expect("client sandbox");
    let target = cluster_ip(c, "web").expect("ClusterIP");
    ServiceLoop::start(c, &sandbox, &target, LIMIT * 2).expect("client loop")
}

#[test]
fn scaling_a_deployment_up_fails_no_request() {
    rudder_tests::require_root();
    let c = cluster("fscale");
    wait_for_replicas(&c, 3);
    let client = client_loop(&c);
    let scaled = c.rudderctl(&["scale", "deployment/web", "--replicas", "6"]);
    assert!(scaled.status.success(), "scale to 6");
    wait_for_replicas(&c, 6);
    // New pods join the Service: the loop goes on until one of them answered.
    let new_pods: BTreeSet<String> =
        json(&c, &["get", "pods", "-l", "app=web", "-o", "json"])["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
    assert_eq!(new_pods.len(), 6);
    let summary = client.finish().expect("summary");
    assert!(
        summary.responders.len() >= 3 && summary.responders.is_subset(&new_pods),
        "the loop was answered by the Deployment's pods: {}",
        summary.raw
    );
    assert_eq!(
        summary.failed, 0,
        "no request failed while scaling 3 -> 6: {}",
        summary.raw
    );
}

#[test]
fn killing_an_agent_breaks_no_connection_and_it_adopts_its_pods() {
    rudder_tests::require_root();
    let mut c = cluster("fagent");
    wait_for_replicas(&c, 3);
    let target = cluster_ip(&c, "web").expect("ClusterIP");
    // An established connection, kept alive across the kill: 40 requests
    // 100 ms apart on one connection.
    let session = pod_sandbox(&c, 0, "client")
        .expect("client sandbox")
        .command(&bin("rudder-testapp"))
        .args(["http-get", "--to", &target, "--keep-alive", "--count", "40"])
        .args(["--interval-ms", "100", "--retry-ms", "5000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("keep-alive session");
    let client = client_loop(&c);
    let before = ready_pod_ips(&c, "web");
    // kill -9 of node1's agent (it holds the client pod and web pods).
    // Dropping the handle SIGKILLs the process.
    drop(c.nodes[0].agent.take().expect("node1's agent"));
    start_agent(&mut c.nodes[0]);
    let out = session.wait_with_output().expect("session ends");
    assert!(
        out.status.success(),
        "the established connection survived the kill: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        40,
        "every request of the kept-alive connection was answered"
    );
    // The restarted agent adopts its pods: the same pods stay Ready.
    wait_for_replicas(&c, 3);
    assert_eq!(ready_pod_ips(&c, "web"), before, "the same pods, adopted");
    let summary = client.finish().expect("summary");
    assert_eq!(
        summary.failed, 0,
        "new connections kept working through the agent's kill and restart: {}",
        summary.raw
    );
}
