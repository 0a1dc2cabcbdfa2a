//! What a container finds in its environment, through the real control
//! plane and agent: the downward API (`valueFrom.fieldRef`), `$(VAR)`
//! references to earlier variables, `HOSTNAME`, and the Service variables
//! Kubernetes injects (`WEB_SERVICE_HOST`, docker-link style `WEB_PORT_...`).

use std::collections::BTreeMap;

use rudder_tests::{control::Cluster, wait_for};

#[test]
fn containers_get_downward_api_fields_expanded_values_and_service_variables() {
    rudder_tests::require_root();
    let c = Cluster::new("podenv");
    let node = c.nodes[0].name.clone();
    c.apply(
        r"
apiVersion: v1
kind: Service
metadata:
  name: web-front
spec:
  selector: {app: nothing}
  ports:
  - {name: http, port: 80, targetPort: 8080}
",
    );
    let service = wait_for("the Service has its ClusterIP", || {
        let out = c.rudderctl(&["get", "service", "web-front", "-o", "json"]);
        let service: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        service["spec"]["clusterIP"].as_str().map(str::to_owned)
    });
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: env-reader
  labels: {{app: reader}}
spec:
  nodeName: {node}
  restartPolicy: Never
  containers:
  - name: main
    image: rudder/testapp
    command: ["sh", "-c", "env; sleep 600"]
    env:
    - name: MY_IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
    - name: MY_NODE
      valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}
    - name: MY_APP
      valueFrom: {{fieldRef: {{fieldPath: "metadata.labels['app']"}}}}
    - name: MY_HOST_IP
      valueFrom: {{fieldRef: {{fieldPath: status.hostIP}}}}
    - name: URL
      value: "http://$(MY_IP):8080/$(WEB_FRONT_SERVICE_HOST)"
"#
    ));
    let pod = c.wait_pod("env-reader", "Running with an IP", |pod| {
        pod["status"]["phase"] == "Running" && pod["status"]["podIP"].is_string()
    });
    let pod_ip = pod["status"]["podIP"].as_str().expect("podIP").to_owned();
    let env: BTreeMap<String, String> = wait_for("the container printed its environment", || {
        let out = c.rudderctl(&["logs", "env-reader"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let env: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        env.contains_key("URL").then_some(env)
    });
    let get = |name: &str| env.get(name).map_or("<unset>", String::as_str);
    assert_eq!(get("MY_IP"), pod_ip);
    assert_eq!(get("MY_NODE"), node);
    assert_eq!(get("MY_APP"), "reader");
    assert_eq!(
        get("MY_HOST_IP"),
        pod["status"]["hostIP"].as_str().unwrap_or("?")
    );
    assert_eq!(get("HOSTNAME"), "env-reader");
    assert_eq!(get("URL"), format!("http://{pod_ip}:8080/{service}"));
    assert_eq!(get("WEB_FRONT_SERVICE_HOST"), service);
    assert_eq!(get("WEB_FRONT_SERVICE_PORT"), "80");
    assert_eq!(get("WEB_FRONT_SERVICE_PORT_HTTP"), "80");
    assert_eq!(get("WEB_FRONT_PORT_80_TCP"), format!("tcp://{service}:80"));
    assert_eq!(get("WEB_FRONT_PORT_80_TCP_ADDR"), service);
}
