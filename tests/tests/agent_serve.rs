//! `rudder-agent serve` as a process: it follows its services file, serves
//! metrics, and a restart (SIGTERM, start again) under traffic breaks
//! nothing, because programs stay attached and maps pinned while it is down.

use std::{path::Path, time::Duration};

use netns::{Host, HostProcess, Netns, TestNetwork};

fn bin(name: &str) -> String {
    rudder_tests::binary(name).display().to_string()
}

/// A pod on `node`'s bridge at 10.244.1.`index`.
fn pod(net: &mut TestNetwork, node: &Host, name: &str, index: u8) -> Netns {
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
        &format!("10.244.1.{index}/24"),
        "dev",
        "eth0",
    ])
    .expect("addr");
    pod.ip(&["link", "set", "eth0", "up"]).expect("up");
    pod.ip(&["route", "add", "default", "via", "10.244.1.1"])
        .expect("route");
    pod
}

fn write_services(path: &Path, node: &str, endpoints: &[&str]) {
    let endpoints: Vec<String> = endpoints
        .iter()
        .map(|ip| format!(r#"{{"ip": "{ip}", "node": "{node}"}}"#))
        .collect();
    let text = format!(
        r#"{{"services": [{{"name": "web", "clusterIP": "10.96.0.10",
            "ports": [{{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}}],
            "endpoints": [{}]}}]}}"#,
        endpoints.join(", ")
    );
    // Write then rename: the agent never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write services");
    std::fs::rename(&tmp, path).expect("rename services");
}

fn start_agent(node: &Host, dir: &Path, services: &Path) -> HostProcess {
    let agent = bin("rudder-agent");
    let root = dir.parent().expect("root").display().to_string();
    let name = dir
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    // Started from the root namespace with --netns (setns), as the agent
    // must be, so its bpffs pins live in the machine's mount namespace.
    let mut cmd = std::process::Command::new(agent);
    cmd.args([
        "--netns",
        node.name(),
        "serve",
        "--node",
        &name,
        "--bpffs-root",
        &root,
    ])
    .args([
        "--services",
        &services.display().to_string(),
        "--metrics-listen",
        "127.0.0.1:9100",
    ])
    .env("NO_COLOR", "1");
    netns::HostProcess::start(cmd, "rudder-agent serve".into()).expect("agent starts")
}

fn responders(body: &str) -> Vec<&str> {
    body.lines()
        .filter_map(|l| {
            l.strip_prefix("pod=")
                .and_then(|r| r.split_whitespace().next())
        })
        .collect()
}

#[test]
fn the_agent_follows_its_services_file_serves_metrics_and_restarts_without_a_gap() {
    rudder_tests::require_root();
    let mut net = TestNetwork::new("serve").expect("network");
    let node = net.add_host("node1").expect("node");
    let client = net.add_host("client").expect("client");
    node.ip(&["link", "add", "cni0", "type", "bridge"])
        .expect("bridge");
    node.ip(&["addr", "add", "10.244.1.1/24", "dev", "cni0"])
        .expect("bridge addr");
    node.ip(&["link", "set", "cni0", "up"]).expect("bridge up");
    node.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        .expect("forwarding");
    let app = bin("rudder-testapp");
    let pods: Vec<Netns> = ["web1", "web2", "pclient"]
        .iter()
        .zip(2..)
        .map(|(n, i)| pod(&mut net, &node, n, i))
        .collect();
    let _servers: Vec<HostProcess> = pods[..2]
        .iter()
        .zip(["web1", "web2"])
        .map(|(p, name)| {
            p.spawn(&[&app, "http", "--listen", "0.0.0.0:8080", "--name", name])
                .expect("server")
        })
        .collect();
    let scratch = std::env::temp_dir().join(format!("{}-services", net.prefix()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let services = scratch.join("services.json");
    let dir = net.bpffs_dir("node1");
    // The agent's node name is its bpffs directory's name.
    let node_name = dir
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    write_services(&services, &node_name, &["10.244.1.2", "10.244.1.3"]);
    let agent = start_agent(&node, &dir, &services);

    let get = |from: &Netns, to: &str, count: &str| {
        from.run(&[
            &app,
            "http-get",
            "--to",
            to,
            "--count",
            count,
            "--retry-ms",
            "10000",
        ])
        .unwrap_or_else(|e| panic!("{to}: {e}"))
    };
    let body = get(&pods[2], "10.96.0.10:80", "30");
    let mut seen: Vec<&str> = responders(&body);
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, ["web1", "web2"], "ClusterIP from a pod: {body}");
    let body = get(&client, &format!("{}:30080", node.addr), "10");
    assert_eq!(responders(&body).len(), 10, "NodePort from outside: {body}");

    let metrics = node
        .run(&[
            &app,
            "http-get",
            "--to",
            "127.0.0.1:9100",
            "--path",
            "/metrics",
            "--retry-ms",
            "5000",
        ])
        .expect("metrics");
    for wanted in [
        "rudder_dataplane_map_entries{map=\"FRONTENDS\"} 2",
        "rudder_dataplane_sync_latency_seconds_count",
        "rudder_service_new_flows_total{service=\"default/web\",frontend=\"10.96.0.10:80/TCP\"}",
    ] {
        assert!(metrics.contains(wanted), "metrics lack {wanted}: {metrics}");
    }

    // The file changes: web1 goes. The agent notices within a second or two.
    write_services(&services, &node_name, &["10.244.1.3"]);
    let mut last = Vec::new();
    for _ in 0..50 {
        last = responders(&get(&pods[2], "10.96.0.10:80", "10"))
            .into_iter()
            .map(str::to_owned)
            .collect();
        if last.iter().all(|r| r == "web2") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        last.iter().all(|r| r == "web2"),
        "web1 removed from the file: {last:?}"
    );

    // Stop the agent, keep using the services, start it again: nothing
    // notices, not even a kept-alive connection.
    let session = pods[2]
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
        .expect("session");
    std::thread::sleep(Duration::from_millis(300));
    let (_, log) = agent.stop();
    assert!(log.contains("programs stay attached"), "agent log: {log}");
    assert_eq!(
        responders(&get(&pods[2], "10.96.0.10:80", "5")),
        vec!["web2"; 5],
        "no agent, still served"
    );
    let agent = start_agent(&node, &dir, &services);
    let mut session = session;
    let started = std::time::Instant::now();
    while session.is_running() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (out, err) = session.stop();
    assert_eq!(
        responders(&out),
        vec!["web2"; 30],
        "kept-alive connection across the restart: {err}"
    );
    drop(agent);
    let _ = std::fs::remove_dir_all(&scratch);
}
