//! The cluster keeps serving while it changes, judged as a user judges
//! Kubernetes: a client loop runs through the Service the whole time, one
//! new connection every 20 ms and none retried, and every failed request
//! counts. Over a control plane and three nodes:
//! - scaling a Deployment 3 -> 6 -> 2 fails no request: a pod scaled
//!   away is deleted gracefully, leaves the Endpoints at once, and drains
//!   (its server answers 1.5 s after SIGTERM) before its agent removes it;
//! - a rolling update of the pods' command and env (maxSurge 1,
//!   maxUnavailable 0 by default: a new pod is Ready before an old one
//!   goes) fails no request;
//! - a deleted pod shows Terminating in `get` and `get -w`, gets SIGTERM,
//!   SIGKILL when it outlives its grace period, and its object goes only
//!   once its processes and sandbox are gone;
//! - kill -9 of an agent breaks no established connection, new ones keep
//!   working, and the restarted agent adopts its pods;
//! - a node lost entirely (agent and pods killed, link down): it turns
//!   NotReady within the grace period, its pods are recreated on the
//!   others, the Endpoints drop its pods, and the Service answers every
//!   request again (only connections to the lost node's pods fail meanwhile);
//! - kill -9 of the leader of a 3-replica control plane: the cluster keeps
//!   accepting changes, the agents reconnect to the survivors (their
//!   watches resume: a pod created after the kill runs, their leases are
//!   renewed), the Service keeps answering, and the restarted replica
//!   rejoins.

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
fn scaling_a_deployment_up_and_down_fails_no_request() {
    rudder_tests::require_root();
    let c = cluster("fscale");
    wait_for_replicas(&c, 3);
    let client = client_loop(&c);
    let scaled = c.rudderctl(&["scale", "deployment/web", "--replicas", "6"]);
    assert!(scaled.status.success(), "scale to 6");
    wait_for_replicas(&c, 6);
    let six = web_pod_names(&c);
    assert_eq!(six.len(), 6);
    let scaled = c.rudderctl(&["scale", "deployment/web", "--replicas", "2"]);
    assert!(scaled.status.success(), "scale to 2");
    // The four pods scaled away are Terminating, then gone.
    wait_until("pods scaled away show Terminating", || {
        let table = String::from_utf8_lossy(&c.rudderctl(&["get", "pods", "-l", "app=web"]).stdout)
            .into_owned();
        table.lines().any(|line| line.contains("Terminating"))
    });
    wait_for_replicas(&c, 2);
    wait_until("the terminated pods' objects are removed", || {
        web_pod_names(&c).len() == 2
    });
    let summary = client.finish().expect("summary");
    assert!(
        summary.responders.len() >= 3 && summary.responders.is_subset(&six),
        "the loop was answered by the Deployment's pods: {}",
        summary.raw
    );
    assert_eq!(
        summary.failed, 0,
        "no request failed while scaling 3 -> 6 -> 2: {}",
        summary.raw
    );
}

#[test]
fn a_rolling_update_of_command_and_env_fails_no_request() {
    rudder_tests::require_root();
    let c = cluster("froll");
    wait_for_replicas(&c, 3);
    let before = web_pod_names(&c);
    let mut deployment = json(&c, &["get", "deployment", "web", "-o", "json"]);
    let container = &mut deployment["spec"]["template"]["spec"]["containers"][0];
    container["env"] = serde_json::json!([{"name": "VERSION", "value": "2"}]);
    // The new command drains a little longer: a change of the command.
    if let Some(drain) = container["command"]
        .as_array_mut()
        .and_then(|args| args.last_mut())
    {
        *drain = serde_json::json!("1600");
    }
    if let Some(meta) = deployment["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
    }
    let file = c.scratch.join("rolling-update.json");
    std::fs::write(&file, deployment.to_string()).expect("manifest");
    let client = client_loop(&c);
    let applied = c.rudderctl(&["apply", "-f", &file.display().to_string()]);
    assert!(applied.status.success(), "apply the new template");
    wait_until("three new pods and none of the old", || {
        let now = web_pod_names(&c);
        now.len() == 3 && now.is_disjoint(&before)
    });
    wait_for_replicas(&c, 3);
    let new_pods = web_pod_names(&c);
    let summary = client.finish().expect("summary");
    assert!(
        summary.responders.iter().any(|p| new_pods.contains(p)),
        "the new pods answered the loop: {}",
        summary.raw
    );
    assert_eq!(
        summary.failed, 0,
        "no request failed during the rolling update: {}",
        summary.raw
    );
}

/// A pod that ignores SIGTERM (only SIGKILL ends it) and one that exits on
/// it; both with a 2 s grace period.
const STOPPING_PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    command: ["sh", "-c", "trap '' TERM; sleep 600"]
---
apiVersion: v1
kind: Pod
metadata: {name: polite}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 600
  containers:
  - name: main
    command: ["sleep", "600"]
"#;

#[test]
fn a_deleted_pod_terminates_gracefully_and_its_watch_shows_the_end() {
    rudder_tests::require_root();
    let c = cluster("fdelete");
    c.apply(&STOPPING_PODS.replace("NODE", &c.nodes[1].name));
    for name in ["stubborn", "polite"] {
        c.wait_pod(name, "Running", |p| p["status"]["phase"] == "Running");
    }
    let mut watch = c
        .client
        .netns
        .command(&c.program("rudderctl").display().to_string())
        .args(["get", "pods", "-w", "--server", &c.server])
        .arg("--kubeconfig")
        .arg(c.kubeconfig.as_ref().expect("a TLS cluster"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("rudderctl get -w");
    let deleted = c.rudderctl(&["delete", "pod", "stubborn", "polite"]);
    assert!(deleted.status.success(), "delete");
    // The grace period comes from the pod's own terminationGracePeriodSeconds.
    let marked = c
        .pod("stubborn")
        .expect("a deleted pod stays while it stops");
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 2);
    // The stubborn one outlives SIGTERM, so it is still there to be shown
    // (the polite one may be gone already: sleep exits on SIGTERM at once).
    let table = String::from_utf8_lossy(&c.rudderctl(&["get", "pods"]).stdout).into_owned();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("stubborn") && l.contains("Terminating")),
        "get shows Terminating:\n{table}"
    );
    // `sleep` exits on SIGTERM, long before its 600 s grace period: the
    // object goes once its processes and sandbox are gone. The stubborn
    // one is SIGKILLed when its 2 s are over.
    wait_until("both deleted pods are removed", || {
        c.pod("polite").is_none() && c.pod("stubborn").is_none()
    });
    let _ = watch.kill();
    let out = watch.wait_with_output().expect("watch output");
    let watched = String::from_utf8_lossy(&out.stdout).into_owned();
    for name in ["stubborn", "polite"] {
        let last = watched
            .lines()
            .rfind(|l| l.starts_with(name))
            .unwrap_or_default();
        assert!(
            last.contains("Terminating") && last.contains("0/1"),
            "the last watch row of {name} shows its end, not Running: {last:?}\n{watched}"
        );
    }
}

fn web_pod_names(c: &Cluster) -> BTreeSet<String> {
    json(c, &["get", "pods", "-l", "app=web", "-o", "json"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// Polls `check` every 100 ms until it holds, for at most [`LIMIT`].
fn wait_until(what: &str, check: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while started.elapsed() < LIMIT {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("gave up waiting until {what}");
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
    let endpoints_version = |c: &Cluster| {
        json(c, &["get", "endpoints", "web", "-o", "json"])["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_owned)
    };
    let endpoints_before = endpoints_version(&c);
    assert!(endpoints_before.is_some(), "the Service has Endpoints");
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
    // Adopted containers keep their readiness: had the restarted agent
    // reported them not ready until their next probe, the Endpoints would
    // have lost and regained them (and every node rebalanced their flows).
    assert_eq!(
        endpoints_version(&c),
        endpoints_before,
        "the agent's restart left the Service's endpoints untouched"
    );
    let summary = client.finish().expect("summary");
    assert_eq!(
        summary.failed, 0,
        "new connections kept working through the agent's kill and restart: {}",
        summary.raw
    );
}

/// The lease `renewTime` of every node, by node.
fn lease_renewals(c: &Cluster) -> Vec<(String, String)> {
    c.nodes
        .iter()
        .map(|n| {
            let lease = json(
                c,
                &[
                    "get",
                    "lease",
                    &n.name,
                    "-n",
                    "kube-node-lease",
                    "-o",
                    "json",
                ],
            );
            (
                n.name.clone(),
                lease["spec"]["renewTime"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn killing_the_control_plane_leader_keeps_the_cluster_working() {
    rudder_tests::require_root();
    let mut options = ClusterOptions::for_tests("fleader");
    options.nodes = 2;
    options.control_planes = 3;
    options.chain_tuning_on_node2 = false;
    options.pod_cgroups_on_node1 = false;
    options.log_to_files = true;
    let mut c = web_cluster(&options).expect("replicated test cluster with the web app");
    wait_for_replicas(&c, 3);
    let client = client_loop(&c);
    let leader = rudder_tests::wait_for("the replicas to agree on a leader", || c.leader());
    survive_the_kill_of(&mut c, leader, 4);
    let new_leader =
        rudder_tests::wait_for("the survivors to agree on a new leader", || c.leader());
    assert_ne!(new_leader, leader, "a survivor leads");
    // The killed replica comes back and rejoins: all three agree again.
    c.start_controlplane(leader)
        .expect("restart the old leader");
    rudder_tests::wait_for("the restarted replica to agree on the leader", || {
        c.leader()
    });
    // The agents use the first replica they reach, in the order given
    // (cp1 first): when the leader was another one, they have not yet
    // moved. Kill cp1 too, so every run shows them moving.
    if leader != 0 {
        survive_the_kill_of(&mut c, 0, 5);
    }
    let summary = client.finish().expect("summary");
    assert_eq!(
        summary.failed, 0,
        "the Service answered throughout (the dataplane does not need the control plane): {}",
        summary.raw
    );
}

/// Kills control-plane replica `i`; then the survivors accept a change
/// (a scale to `replicas`, forwarded to the leader by whichever replica
/// rudderctl reaches), the controllers (maybe moved to a survivor with
/// their lease) create the new pod, the scheduler binds it and its node's
/// agent, through its resumed node sync, runs it; and every agent reaches
/// a survivor (its lease is renewed after the kill).
fn survive_the_kill_of(c: &mut Cluster, i: usize, replicas: usize) {
    let renewed_before = lease_renewals(c);
    c.kill_controlplane(i);
    let count = replicas.to_string();
    wait_until("a change is accepted after the kill", || {
        c.rudderctl(&["scale", "deployment/web", "--replicas", &count])
            .status
            .success()
    });
    wait_for_replicas(c, replicas);
    wait_until("every node's lease is renewed after the kill", || {
        lease_renewals(c)
            .iter()
            .zip(&renewed_before)
            .all(|((_, now), (_, before))| now != before)
    });
}

/// The grace period the node-loss test's control plane gives a silent node
/// (above the agents' 13.3 s lease renewal, so live nodes never flap).
const NODE_GRACE_SECONDS: u64 = 20;

#[test]
fn losing_a_node_recreates_its_pods_elsewhere_and_the_service_recovers() {
    rudder_tests::require_root();
    let mut options = ClusterOptions::for_tests("flost");
    options.nodes = 3;
    options.chain_tuning_on_node2 = false;
    options.pod_cgroups_on_node1 = false;
    options.log_to_files = true;
    options.controlplane_args = vec![
        "--node-grace-period-seconds".into(),
        NODE_GRACE_SECONDS.to_string(),
        "--pod-eviction-timeout-seconds".into(),
        "2".into(),
    ];
    let mut c = web_cluster(&options).expect("test cluster with the web app");
    // Spread the web pods so the lost node holds some.
    let scaled = c.rudderctl(&["scale", "deployment/web", "--replicas", "6"]);
    assert!(scaled.status.success(), "scale to 6");
    wait_for_replicas(&c, 6);
    let lost = 2;
    let lost_name = c.nodes[lost].name.clone();
    let on_lost = |c: &Cluster| -> BTreeSet<String> {
        json(c, &["get", "pods", "-l", "app=web", "-o", "json"])["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["spec"]["nodeName"].as_str() == Some(lost_name.as_str()))
            .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_owned))
            .collect()
    };
    let lost_pods = on_lost(&c);
    assert!(!lost_pods.is_empty(), "node3 runs web pods");
    let client = client_loop(&c);
    c.lose_node(lost).expect("lose node3");
    rudder_tests::wait_for("node3 to turn NotReady", || {
        let node = json(&c, &["get", "node", &lost_name, "-o", "json"]);
        node["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|cond| cond["type"] == "Ready" && cond["status"] != "True")
            .then_some(())
    });
    // Its pods are evicted and recreated on the live nodes, and the
    // Endpoints hold six Ready pods, none of node3's.
    rudder_tests::wait_for("six web pods ready elsewhere, in the Endpoints", || {
        let ready = ready_pod_ips(&c, "web");
        let endpoints = rudder_tests::service_client::endpoint_ips(&c, "web");
        (ready.len() == 6 && endpoints == ready && endpoints.is_disjoint(&lost_pods)).then_some(())
    });
    let during = client.finish().expect("summary");
    // Only connections to node3's pods may have failed; from now on none:
    // 60 new connections, none retried.
    let target = cluster_ip(&c, "web").expect("ClusterIP");
    let after = pod_sandbox(&c, 0, "client")
        .expect("client sandbox")
        .command(&bin("rudder-testapp"))
        .args([
            "http-get",
            "--to",
            &target,
            "--count",
            "60",
            "--interval-ms",
            "20",
        ])
        .output()
        .expect("http-get runs");
    assert!(
        after.status.success() && String::from_utf8_lossy(&after.stdout).lines().count() == 60,
        "the Service answers every request once the Endpoints moved: {}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert!(
        during.failed < during.requests,
        "the Service kept answering during the loss: {}",
        during.raw
    );
    eprintln!(
        "node loss: {} of {} requests failed while node3's pods were replaced",
        during.failed, during.requests
    );
}
