//! Agents in control-plane mode: they register their nodes, route to each
//! other's pods (nobody else adds a route), and a Service with Endpoints
//! applied with `rudderctl` is load-balanced on every node.

use std::time::Duration;

use netns::{Host, HostProcess, Netns, TestNetwork};

fn bin(name: &str) -> String {
    rudder_tests::binary(name).display().to_string()
}

/// A pod on node `n`'s bridge at 10.244.`n`.`index`.
fn pod(net: &mut TestNetwork, node: &Host, n: u8, name: &str, index: u8) -> Netns {
    let pod = net.add_namespace(name).expect("pod");
    let port = format!("veth{index}");
    node.ip(&[
        "link",
        "add",
        &port,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        pod.name(),
    ])
    .expect("veth");
    node.ip(&["link", "set", &port, "master", "cni0", "up"])
        .expect("bridge port");
    pod.ip(&[
        "addr",
        "add",
        &format!("10.244.{n}.{index}/24"),
        "dev",
        "eth0",
    ])
    .expect("addr");
    pod.ip(&["link", "set", "eth0", "up"]).expect("up");
    pod.ip(&["route", "add", "default", "via", &format!("10.244.{n}.1")])
        .expect("route");
    pod
}

const MANIFEST: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  ports:
  - name: http
    port: 80
    targetPort: 8080
    nodePort: 30080
---
apiVersion: v1
kind: Endpoints
metadata:
  name: web
  namespace: default
subsets:
- addresses:
  - ip: 10.244.1.2
    nodeName: NODE1
  - ip: 10.244.2.2
    nodeName: NODE2
  ports:
  - name: http
    port: 8080
"#;

fn responders(body: &str) -> Vec<String> {
    let mut seen: Vec<String> = body
        .lines()
        .filter_map(|l| {
            l.strip_prefix("pod=")
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned)
        })
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

#[test]
fn agents_register_route_between_nodes_and_serve_a_service_applied_through_the_api() {
    rudder_tests::require_root();
    let mut net = TestNetwork::new("api").expect("network");
    let cp = net.add_host("cp").expect("control plane host");
    let nodes = [
        net.add_host("node1").expect("node1"),
        net.add_host("node2").expect("node2"),
    ];
    let client = net.add_host("client").expect("client");
    let app = bin("rudder-testapp");

    // The control plane lives on the underlay like any other machine.
    let data = std::env::temp_dir().join(format!("{}-cp", net.prefix()));
    let listen = format!("{}:7400", cp.addr);
    let _cp = cp
        .spawn(&[
            &bin("rudder-controlplane"),
            "--data-dir",
            &data.display().to_string(),
            "--listen",
            &listen,
            "--http-listen",
            "off",
        ])
        .expect("control plane");
    let kubeconfig = rudder_tests::admin_kubeconfig(&data, Duration::from_secs(30))
        .expect("admin kubeconfig")
        .display()
        .to_string();
    let server = format!("https://{listen}");

    let mut servers: Vec<HostProcess> = Vec::new();
    let mut agents = Vec::new();
    let mut names = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let n = (i + 1) as u8;
        node.ip(&["link", "add", "cni0", "type", "bridge"])
            .expect("bridge");
        node.ip(&["addr", "add", &format!("10.244.{n}.1/24"), "dev", "cni0"])
            .expect("bridge addr");
        node.ip(&["link", "set", "cni0", "up"]).expect("bridge up");
        node.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            .expect("forwarding");
        let web = pod(&mut net, node, n, &format!("web{n}"), 2);
        servers.push(
            web.spawn(&[
                &app,
                "http",
                "--listen",
                "0.0.0.0:8080",
                "--name",
                &format!("web{n}"),
            ])
            .expect("server"),
        );
        let dir = net.bpffs_dir(&node.label);
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let mut cmd = std::process::Command::new(bin("rudder-agent"));
        cmd.args([
            "--netns",
            node.name(),
            "serve",
            "--node",
            &name,
            "--controlplane",
            &server,
            "--kubeconfig",
            &kubeconfig,
            // Announced in the Node object: the other agent routes it here.
            "--pod-cidr",
            &format!("10.244.{n}.0/24"),
        ])
        .arg("--bpffs-root")
        .arg(dir.parent().expect("root"))
        .env("NO_COLOR", "1");
        agents.push(HostProcess::start(cmd, format!("agent {}", node.label)).expect("agent"));
        names.push(name);
    }
    let tester = pod(&mut net, &nodes[0], 1, "tester", 9);

    // Applied as a user would, from a machine on the network.
    let manifest = MANIFEST
        .replace("NODE1", &names[0])
        .replace("NODE2", &names[1]);
    let file = std::env::temp_dir().join(format!("{}-web.yaml", net.prefix()));
    std::fs::write(&file, manifest).expect("manifest");
    let mut applied = None;
    for _ in 0..100 {
        let out = client
            .output(&[
                &bin("rudderctl"),
                "apply",
                "-f",
                &file.display().to_string(),
                "--server",
                &server,
                "--kubeconfig",
                &kubeconfig,
            ])
            .expect("rudderctl runs");
        if out.status.success() {
            applied = Some(String::from_utf8_lossy(&out.stdout).into_owned());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(&file);
    assert!(
        applied.is_some(),
        "rudderctl apply reached the control plane"
    );

    let get = |from: &Netns, to: &str| {
        from.run(&[
            &app,
            "http-get",
            "--to",
            to,
            "--count",
            "30",
            "--retry-ms",
            "15000",
        ])
        .unwrap_or_else(|e| panic!("{to}: {e}"))
    };
    assert_eq!(
        responders(&get(&tester, "10.96.0.10:80")),
        ["web1", "web2"],
        "ClusterIP from a pod"
    );
    for node in &nodes {
        assert_eq!(
            responders(&get(&client, &format!("{}:30080", node.addr))),
            ["web1", "web2"],
            "NodePort of {} from outside",
            node.label
        );
    }
    // Pod to pod across nodes, on the routes the agents installed from each
    // other's Node objects (the test adds none).
    let direct = tester
        .run(&[
            &app,
            "http-get",
            "--to",
            "10.244.2.2:8080",
            "--retry-ms",
            "10000",
        ])
        .expect("node1's pod reaches node2's pod");
    assert!(
        direct.starts_with("pod=web2 client=10.244.1.9:"),
        "no NAT between pods: {direct}"
    );
    // Agents register in the background of serving: a fast run gets here
    // before both have. Wait (bounded) for them.
    // The STATUS column must read exactly Ready ("NotReady" contains it).
    let ready = |row: &str| row.split_whitespace().nth(1) == Some("Ready");
    let registered = |table: &str| {
        names.iter().all(|name| {
            table
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name.as_str()))
                .is_some_and(ready)
        })
    };
    let mut nodes_table = String::new();
    for _ in 0..300 {
        nodes_table = client
            .run(&[
                &bin("rudderctl"),
                "get",
                "nodes",
                "--server",
                &server,
                "--kubeconfig",
                &kubeconfig,
            ])
            .expect("rudderctl get nodes");
        if registered(&nodes_table) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for name in &names {
        let row = nodes_table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()));
        assert!(
            row.is_some_and(ready),
            "{name} registered and Ready:\n{nodes_table}"
        );
    }
    drop(agents);
    let _ = std::fs::remove_dir_all(&data);
}
