//! Agents join with a bootstrap token and serve with their own node
//! certificate (`system:node:<name>`), never the admin's; with a short
//! certificate lifetime the agent renews it while serving, its node stays
//! Ready, and its node-sync stream keeps delivering pods.

use rudder_tests::{
    control::{Cluster, ClusterOptions},
    wait_for,
};

/// The client certificate (PEM) a kubeconfig embeds.
fn certificate_of(kubeconfig: &std::path::Path) -> String {
    let config = rudder_client::Kubeconfig::load(kubeconfig)
        .and_then(|k| k.client_config(kubeconfig, None))
        .expect("the node's kubeconfig reads");
    config
        .credentials
        .identity
        .expect("a client certificate")
        .cert_pem
}

fn node_ready(c: &Cluster, name: &str) -> bool {
    let out = c.rudderctl(&["get", "node", name, "-o", "json"]);
    let node: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    node["status"]["conditions"]
        .as_array()
        .and_then(|conds| conds.iter().find(|c| c["type"] == "Ready"))
        .is_some_and(|c| c["status"] == "True")
}

#[test]
fn agents_serve_with_node_certificates_and_renew_them_without_dropping_the_node() {
    rudder_tests::require_root();
    let mut options = ClusterOptions::for_tests("nodeid");
    options.nodes = 1;
    options.chain_tuning_on_node2 = false;
    options.pod_cgroups_on_node1 = false;
    options.log_to_files = true;
    // 60 s certificates: renewed about 30 s after they are issued.
    options.controlplane_args = vec!["--node-cert-validity-seconds".into(), "60".into()];
    let c = Cluster::build(&options).expect("test cluster");
    let name = c.nodes[0].name.clone();
    let kubeconfig = c.scratch.join("agent-config-1/agent.kubeconfig");
    let first = certificate_of(&kubeconfig);
    assert_eq!(
        rudder_client::bootstrap::common_name_of(&first).expect("CN"),
        format!("system:node:{name}"),
        "the agent serves as its node, not as the admin"
    );
    assert!(node_ready(&c, &name), "the node is Ready");

    let renewed = wait_for("the agent renews its node certificate", || {
        let now = certificate_of(&kubeconfig);
        (now != first).then_some(now)
    });
    assert_eq!(
        rudder_client::bootstrap::common_name_of(&renewed).expect("CN"),
        format!("system:node:{name}")
    );
    assert!(node_ready(&c, &name), "still Ready after the renewal");
    // The node-sync stream still delivers: a pod made now starts.
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: after-renewal
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: rudder/testapp
    command: ["sleep", "600"]
"#,
    );
    c.wait_pod("after-renewal", "Running after the renewal", |pod| {
        pod["status"]["phase"] == "Running"
    });
    // And it renews again (the renewed certificate is the one it uses).
    wait_for("a second renewal", || {
        (certificate_of(&kubeconfig) != renewed).then_some(())
    });
    assert!(node_ready(&c, &name), "still Ready after two renewals");
}
