//! A pod being deleted drains as on Kubernetes: its EndpointSlice entry
//! turns `terminating` (still `serving`) at once, the dataplane gives it no
//! new connections, and a connection it already has keeps being answered
//! until the pod's server goes. Through the real path: controller ->
//! EndpointSlice -> node sync -> agent -> kernel maps.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    time::Duration,
};

use rudder_tests::{
    control::{ClusterOptions, bin},
    service_client::{cluster_ip, json, pod_sandbox, wait_for_replicas, web_cluster},
    wait_for,
};
use serde_json::Value;

/// Two HTTP responders that keep answering for 20 s after SIGTERM (grace
/// 30 s), behind the ClusterIP Service `drainer`.
const DRAINER: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: drainer}
spec:
  replicas: 2
  selector: {matchLabels: {app: drainer}}
  template:
    metadata: {labels: {app: drainer}}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
      - name: web
        command: ["APP", "http", "--listen", "0.0.0.0:8080", "--name", "$(POD_NAME)", "--drain-ms", "20000"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: drainer}
spec:
  selector: {app: drainer}
  ports: [{port: 80, targetPort: http}]
"#;

/// The endpoints of the Service's slices: (pod name, ready, serving,
/// terminating).
fn slice_endpoints(slices: &Value) -> BTreeSet<(String, bool, bool, bool)> {
    slices["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            let flag = |name: &str| e["conditions"][name].as_bool().unwrap_or(false);
            (
                e["targetRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                flag("ready"),
                flag("serving"),
                flag("terminating"),
            )
        })
        .collect()
}

/// The pod an answer names (`pod=<name> client=<addr>`).
fn pod_of(answer: &str) -> String {
    answer
        .split_whitespace()
        .find_map(|field| field.strip_prefix("pod="))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_terminating_pod_keeps_its_connections_and_gets_no_new_ones() {
    rudder_tests::require_root();
    let mut options = ClusterOptions::for_tests("term");
    options.nodes = 2;
    let c = web_cluster(&options).expect("test cluster");
    let testapp = c.program("rudder-testapp").display().to_string();
    c.apply(&DRAINER.replace("APP", &testapp));
    wait_for_replicas(&c, "drainer", 2, Duration::from_secs(90)).expect("two drainers");
    let target = cluster_ip(&c, "drainer").expect("ClusterIP");
    let sandbox = pod_sandbox(&c, 0, "client").expect("client sandbox");

    // An established connection: 40 requests 100 ms apart on one
    // connection; its first answer names the pod that holds it.
    let mut session = sandbox
        .command(&bin("rudder-testapp"))
        .args(["http-get", "--to", &target, "--keep-alive", "--count", "40"])
        .args(["--interval-ms", "100", "--retry-ms", "5000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("keep-alive session");
    let mut answers = BufReader::new(session.stdout.take().expect("stdout"));
    let mut first = String::new();
    answers.read_line(&mut first).expect("first answer");
    let held_by = pod_of(&first);
    assert!(!held_by.is_empty(), "the session got an answer");

    let deleted = c.rudderctl(&["delete", "pod", &held_by]);
    assert!(deleted.status.success(), "delete {held_by}");
    let selector = "kubernetes.io/service-name=drainer";
    let endpoints = wait_for("its slice entry turns terminating, still serving", || {
        let slices = json(&c, &["get", "endpointslices", "-l", selector, "-o", "json"]);
        let endpoints = slice_endpoints(&slices);
        endpoints
            .contains(&(held_by.clone(), false, true, true))
            .then_some(endpoints)
    });
    assert!(
        endpoints
            .iter()
            .any(|(name, ready, _, terminating)| *name != held_by && *ready && !*terminating),
        "the other pod stays ready: {endpoints:?}"
    );

    // New connections: none to the terminating pod, once the nodes have
    // the change (waited for), and none in the 20 that follow.
    let new_connections = |count: &str| -> Vec<String> {
        let out = sandbox
            .command(&bin("rudder-testapp"))
            .args(["http-get", "--to", &target, "--count", count])
            .output()
            .expect("http-get");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(pod_of)
            .collect()
    };
    wait_for("new connections avoid the terminating pod", || {
        let names = new_connections("10");
        (names.len() == 10 && !names.contains(&held_by)).then_some(())
    });
    let names = new_connections("20");
    assert_eq!(names.len(), 20, "every new connection answered: {names:?}");
    assert!(
        !names.contains(&held_by),
        "no new connection reaches the terminating pod: {names:?}"
    );

    // The established connection was answered throughout, by its pod.
    let rest: Vec<String> = answers
        .lines()
        .map_while(Result::ok)
        .map(|l| pod_of(&l))
        .collect();
    let status = session.wait().expect("session ends");
    let mut stderr = String::new();
    if let Some(mut err) = session.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
    }
    assert!(status.success(), "the kept connection survived: {stderr}");
    assert_eq!(rest.len(), 39, "every request answered: {rest:?}");
    assert!(
        rest.iter().all(|name| *name == held_by),
        "by the pod that holds it: {rest:?}"
    );
    // v1 Endpoints never list the terminating pod (its replacement, made
    // by the ReplicaSet meanwhile, may be there).
    let v1 = json(&c, &["get", "endpoints", "drainer", "-o", "json"]);
    let listed: Vec<String> = v1["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["targetRef"]["name"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !listed.is_empty() && !listed.contains(&held_by),
        "v1 Endpoints keep ready pods only: {listed:?}"
    );
}
