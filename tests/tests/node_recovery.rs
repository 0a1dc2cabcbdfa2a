//! A node whose agent is killed (-9) goes NotReady and gets the NoExecute
//! `node.kubernetes.io/unreachable` taint; once its restarted agent reports
//! Ready again the taint is gone, a NodeReady event says so, and new pods
//! are scheduled onto it again. And a user's update of a Node never drops
//! what its agent and the control plane own (its pod CIDR).

use rudder_tests::{
    control::{Cluster, ClusterOptions, start_agent},
    wait_for,
};
use serde_json::Value;

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const NOT_READY: &str = "node.kubernetes.io/not-ready";

fn get_json(c: &Cluster, args: &[&str]) -> Option<Value> {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend(["-o", "json"]);
    let out = c.rudderctl(&full);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn ready_status(node: &Value) -> Option<String> {
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str())
        .map(str::to_owned)
}

fn lifecycle_taints(node: &Value) -> Vec<String> {
    node["spec"]["taints"]
        .as_array()
        .map(|taints| {
            taints
                .iter()
                .filter_map(|t| t["key"].as_str())
                .filter(|key| *key == UNREACHABLE || *key == NOT_READY)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// How often a NodeReady event about `node` was recorded (repeats are
/// folded into one Event's `count`).
fn node_ready_events(c: &Cluster, node: &str) -> u64 {
    let Some(list) = get_json(c, &["events"]) else {
        return 0;
    };
    list["items"].as_array().map_or(0, |events| {
        events
            .iter()
            .filter(|e| {
                e["involvedObject"]["kind"] == "Node"
                    && e["involvedObject"]["name"] == node
                    && e["reason"] == "NodeReady"
            })
            .map(|e| e["count"].as_u64().unwrap_or(1))
            .sum()
    })
}

#[test]
fn a_node_whose_agent_was_killed_loses_its_unreachable_taint_once_ready_again() {
    rudder_tests::require_root();
    let mut options = ClusterOptions::for_tests("recover");
    // Agents renew their lease every third of its 40 s: a grace period
    // well above that keeps a live node from flapping, so the only
    // NotReady is the one the kill causes.
    options.controlplane_args = vec!["--node-grace-period-seconds".into(), "25".into()];
    let mut c = Cluster::build(&options).expect("test cluster");
    let name = c.nodes[1].name.clone();
    wait_for("node2 is Ready and untainted", || {
        let node = get_json(&c, &["node", &name])?;
        (ready_status(&node).as_deref() == Some("True") && lifecycle_taints(&node).is_empty())
            .then_some(())
    });

    // kill -9: no goodbye, the lease just stops being renewed.
    let agent = c.nodes[1].agent.take().expect("node2's agent runs");
    let pid = agent
        .pid()
        .and_then(|p| i32::try_from(p).ok())
        .expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the agent");
    drop(agent);
    wait_for(
        "node2 is NotReady (Unknown) and tainted unreachable",
        || {
            let node = get_json(&c, &["node", &name])?;
            (ready_status(&node).as_deref() == Some("Unknown")
                && lifecycle_taints(&node).contains(&UNREACHABLE.to_owned()))
            .then_some(())
        },
    );
    let ready_events_before = node_ready_events(&c, &name);

    start_agent(&mut c.nodes[1]);
    let node = wait_for("node2 is Ready again without lifecycle taints", || {
        let node = get_json(&c, &["node", &name])?;
        (ready_status(&node).as_deref() == Some("True") && lifecycle_taints(&node).is_empty())
            .then_some(node)
    });
    assert!(
        lifecycle_taints(&node).is_empty(),
        "no NoExecute lifecycle taint left: {:#?}",
        node["spec"]["taints"]
    );
    wait_for("a NodeReady event about node2", || {
        (node_ready_events(&c, &name) > ready_events_before).then_some(())
    });

    // The scheduler places pods there again: one that may only go to node2.
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: after-recovery
spec:
  nodeSelector:
    kubernetes.io/hostname: {name}
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: rudder/testapp
    command: ["sleep", "600"]
"#
    ));
    let pod = wait_for("the new pod is scheduled onto node2", || {
        let pod = c.pod("after-recovery")?;
        (pod["spec"]["nodeName"] == name.as_str()).then_some(pod)
    });
    assert_eq!(pod["spec"]["nodeName"], name.as_str());
}

#[test]
fn applying_a_node_manifest_with_only_labels_keeps_its_pod_cidr() {
    rudder_tests::require_root();
    let c = Cluster::build(&ClusterOptions::for_tests("nodeapply")).expect("test cluster");
    let name = c.nodes[1].name.clone();
    let cidr = wait_for("node2 has its pod CIDR", || {
        let node = get_json(&c, &["node", &name])?;
        node["spec"]["podCIDR"].as_str().map(str::to_owned)
    });

    // What a user writes to label a node when there is no `label` verb.
    c.apply(&format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    zone: blue\n"
    ));
    let node = wait_for("the label is there", || {
        let node = get_json(&c, &["node", &name])?;
        (node["metadata"]["labels"]["zone"] == "blue").then_some(node)
    });
    assert_eq!(
        node["spec"]["podCIDR"],
        cidr.as_str(),
        "pod CIDR kept: {node:#}"
    );
    assert_eq!(
        ready_status(&node).as_deref(),
        Some("True"),
        "status kept: {node:#}"
    );

    // Changing it is refused, naming the field; nothing changes.
    let manifest = format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\nspec:\n  podCIDR: 0.0.0.0/0\n"
    );
    let file = std::env::temp_dir().join(format!("rudder-node-{}.yaml", std::process::id()));
    std::fs::write(&file, manifest).expect("write manifest");
    let out = c.rudderctl(&["apply", "-f", file.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&file);
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a changed podCIDR is refused: {said}"
    );
    assert!(
        said.contains("spec.podCIDR"),
        "the error names the field: {said}"
    );
    let node = get_json(&c, &["node", &name]).expect("node");
    assert_eq!(node["spec"]["podCIDR"], cidr.as_str());
}

/// A Node is an API object anyone allowed to write Nodes can make up: one
/// claiming every address, or another node's pods, must not reroute the
/// nodes (the agents route only CIDRs inside the cluster's pod network
/// that no older node holds).
#[test]
fn a_node_object_claiming_every_address_or_another_nodes_pods_reroutes_nothing() {
    rudder_tests::require_root();
    let c = Cluster::build(&ClusterOptions::for_tests("noderogue")).expect("test cluster");
    let node2 = &c.nodes[1];
    let node2_cidr = wait_for("node2 has its pod CIDR", || {
        get_json(&c, &["node", &node2.name])?["spec"]["podCIDR"]
            .as_str()
            .map(str::to_owned)
    });
    let node_manifest = |name: &str, cidr: &str, addr: &str| {
        format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\nspec:\n  podCIDR: {cidr}\n  podCIDRs: [{cidr}]\n\
             status:\n  addresses:\n  - {{type: InternalIP, address: {addr}}}\n"
        )
    };
    c.apply(&node_manifest("rogue-all", "0.0.0.0/0", "198.18.0.250"));
    c.apply(&node_manifest("rogue-thief", &node2_cidr, "198.18.0.251"));
    // Made after the rogues: once node1 routes it, it has seen them too.
    c.apply(&node_manifest("honest", "10.244.77.0/24", "198.18.0.252"));
    let host = &c.nodes[0].host;
    let routes = wait_for("node1 routes the honest node's pods", || {
        let routes = host.ip(&["route", "show"]).ok()?;
        routes
            .contains("10.244.77.0/24 via 198.18.0.252")
            .then_some(routes)
    });
    assert!(
        !routes.contains("198.18.0.250") && !routes.lines().any(|l| l.starts_with("default")),
        "no route for the node claiming 0.0.0.0/0: {routes}"
    );
    assert!(
        routes.contains(&format!("{node2_cidr} via {}", node2.host.addr))
            && !routes.contains("198.18.0.251"),
        "node2's pods still routed to node2: {routes}"
    );
}

#[test]
fn a_no_execute_taint_evicts_the_pods_that_do_not_tolerate_it() {
    rudder_tests::require_root();
    let c = Cluster::build(&ClusterOptions::for_tests("noexec")).expect("test cluster");
    let name = c.nodes[1].name.clone();
    for (pod, toleration) in [
        ("intolerant", ""),
        (
            "patient",
            "  tolerations:\n  - key: dedicated\n    operator: Exists\n    effect: NoExecute\n",
        ),
    ] {
        c.apply(&format!(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: {pod}
spec:
  nodeSelector:
    kubernetes.io/hostname: {name}
  terminationGracePeriodSeconds: 2
{toleration}  containers:
  - name: main
    image: rudder/testapp
    command: ["sleep", "600"]
"#
        ));
    }
    for pod in ["intolerant", "patient"] {
        wait_for(&format!("{pod} runs on node2"), || {
            let pod = c.pod(pod)?;
            (pod["status"]["phase"] == "Running").then_some(())
        });
    }

    // What a user writes to taint a node when there is no `taint` verb.
    c.apply(&format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\nspec:\n  taints:\n  - key: dedicated\n    value: gpu\n    effect: NoExecute\n"
    ));
    wait_for(
        "the pod that does not tolerate the taint is evicted and gone",
        || c.pod("intolerant").is_none().then_some(()),
    );
    let patient = c.pod("patient").expect("the tolerating pod stays");
    assert_eq!(patient["status"]["phase"], "Running", "{patient:#}");
    assert!(
        patient["metadata"]["deletionTimestamp"].is_null(),
        "the tolerating pod is not being deleted: {patient:#}"
    );
    let events = get_json(&c, &["events"]).expect("events");
    let evicted = events["items"].as_array().is_some_and(|items| {
        items.iter().any(|e| {
            e["involvedObject"]["name"] == "intolerant" && e["reason"] == "TaintManagerEviction"
        })
    });
    assert!(evicted, "an event says why the pod went: {events:#}");
}
