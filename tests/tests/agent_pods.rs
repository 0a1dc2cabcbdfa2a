//! The agent's embedded pod runtime, through the API as a user drives it:
//! pods bound to a node get a sandbox wired by the node's CNI plugins, run,
//! are probed Ready, talk across nodes, restart per policy, survive an
//! agent restart without being restarted, and leave nothing behind when
//! deleted.

use std::time::Duration;

use rudder_tests::control::{Cluster, bin, start_agent};
use serde_json::Value;

fn pod_manifest(name: &str, node: &str, command: &str, restart: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: web}}
spec:
  nodeName: {node}
  restartPolicy: {restart}
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: rudder/testapp
    command: {command}
    ports:
    - {{name: http, containerPort: 8080}}
    readinessProbe:
      httpGet: {{path: /, port: http}}
      periodSeconds: 1
"#
    )
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[test]
fn pods_run_are_ready_talk_across_nodes_restart_survive_the_agent_and_clean_up() {
    rudder_tests::require_root();
    let mut c = Cluster::new("pods");
    let app = bin("rudder-testapp");
    let serve =
        format!(r#"["{app}", "http", "--listen", "0.0.0.0:8080", "--name", "$(POD_NAME)"]"#);
    let crash = r#"["sh", "-c", "echo crashing; exit 3"]"#;
    let manifest = [
        pod_manifest("web-1", &c.nodes[0].name, &serve, "Always"),
        pod_manifest("web-2", &c.nodes[1].name, &serve, "Always"),
        pod_manifest("crasher", &c.nodes[0].name, crash, "Always"),
    ]
    .join("---\n");
    c.apply(&manifest);

    // Running, with an address from the node's subnet, and probed Ready.
    let web1 = c.wait_pod("web-1", "became Ready", ready);
    let web2 = c.wait_pod("web-2", "became Ready", ready);
    let ip1 = web1["status"]["podIP"]
        .as_str()
        .expect("web-1 has an IP")
        .to_owned();
    let ip2 = web2["status"]["podIP"]
        .as_str()
        .expect("web-2 has an IP")
        .to_owned();
    assert!(
        ip1.starts_with("10.244.1.") && ip2.starts_with("10.244.2."),
        "{ip1} {ip2}"
    );
    assert_eq!(web1["status"]["phase"], "Running");

    // node1 runs its pods in cgroups of their own.
    let groups: Vec<std::path::PathBuf> = std::fs::read_dir(c.pod_cgroup().path())
        .expect("pod cgroups")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert!(!groups.is_empty(), "pod cgroups under the root");
    assert!(
        groups
            .iter()
            .any(|g| !std::fs::read_to_string(g.join("cgroup.procs"))
                .unwrap_or_default()
                .trim()
                .is_empty()),
        "containers run inside their pod's cgroup: {groups:?}"
    );

    // Across nodes, pod to pod (routes from the agents, no NAT).
    let pod1_ns = std::fs::read_dir("/run/netns")
        .expect("netns dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&c.nodes[0].prefix))
        .collect::<Vec<_>>();
    assert_eq!(pod1_ns.len(), 2, "two sandboxes on node1: {pod1_ns:?}");
    let answer = c.nodes[0]
        .host
        .run(&[
            &app,
            "http-get",
            "--to",
            &format!("{ip2}:8080"),
            "--retry-ms",
            "5000",
        ])
        .expect("node1 reaches web-2");
    assert!(
        answer.starts_with("pod=web-2 "),
        "$(POD_NAME) expanded: {answer}"
    );

    // restartPolicy Always: the crashing container is restarted with backoff.
    let crasher = c.wait_pod("crasher", "restarted", |p| {
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 1
    });
    assert!(!ready(&crasher));
    let log = std::fs::read_dir(c.nodes[0].state.join("logs"))
        .expect("logs")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains("_crasher_"))
        .map(|e| std::fs::read_to_string(e.path().join("main.log")).unwrap_or_default())
        .unwrap_or_default();
    assert!(
        log.contains("crashing"),
        "container output is logged: {log:?}"
    );

    // An agent restart adopts the running pods: the same processes, same
    // address, no restart.
    let before = c.pod("web-1").expect("web-1");
    // web-1's sandbox: the node's namespace holding web-1's address.
    let sandbox = std::fs::read_dir("/run/netns")
        .expect("netns dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&c.nodes[0].prefix))
        .map(netns::Netns::existing)
        .find(|ns| {
            ns.ip(&["-4", "-o", "addr", "show"])
                .is_ok_and(|addrs| addrs.contains(&format!(" {ip1}/")))
        })
        .expect("web-1's sandbox");
    let processes = sandbox.pids();
    assert!(!processes.is_empty(), "web-1 runs in its sandbox");
    drop(c.nodes[0].agent.take());
    start_agent(&mut c.nodes[0]);
    // A pod started by the new agent shows it has run pod rounds with every
    // pod of its node, web-1 included: only then do web-1's facts prove
    // adoption (before that, the old agent's status is all there is).
    c.apply(&pod_manifest("witness", &c.nodes[0].name, &serve, "Always"));
    c.wait_pod("witness", "became Ready under the restarted agent", ready);
    let after = c.wait_pod("web-1", "stayed Ready", ready);
    let now = sandbox.pids();
    assert!(
        processes.iter().all(|pid| now.contains(pid)),
        "the restarted agent kept web-1's processes: {processes:?} before, {now:?} after"
    );
    assert_eq!(after["status"]["podIP"], before["status"]["podIP"]);
    assert_eq!(
        after["status"]["containerStatuses"][0]["restartCount"],
        before["status"]["containerStatuses"][0]["restartCount"]
    );
    assert_eq!(after["status"]["startTime"], before["status"]["startTime"]);

    // Deletion: processes stopped, sandbox and IP released.
    assert!(c.rudderctl(&["delete", "pod", "web-1"]).status.success());
    assert!(c.rudderctl(&["delete", "pod", "witness"]).status.success());
    let prefix = c.nodes[0].prefix.clone();
    let mut left = Vec::new();
    for _ in 0..100 {
        left = std::fs::read_dir("/run/netns")
            .expect("netns dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        if left.len() == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        left.len(),
        1,
        "only the crasher's sandbox is left on node1: {left:?}"
    );
    let ipam = c.scratch.join("ipam-1/pods");
    let leases: Vec<String> = std::fs::read_dir(&ipam)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !leases.contains(&ip1),
        "web-1's address is released: {leases:?}"
    );
}

/// Lines in a file (0 when it does not exist yet).
fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

/// Polls (bounded) until `check` holds; panics with `what` otherwise.
fn wait_for(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("never: {what}");
}

#[test]
fn startup_probe_holds_back_liveness_and_readiness_and_restarts_a_container_that_never_starts() {
    rudder_tests::require_root();
    let c = Cluster::new("startup");
    // The probes are exec probes that leave a line in a file each time they
    // run, so the test sees which probe ran, and in which order, without
    // measuring time. The startup probe passes once `go` exists.
    let marks = c.scratch.join("marks");
    std::fs::create_dir_all(&marks).expect("marks dir");
    let go = marks.join("go");
    let startup_ran = marks.join("startup");
    let liveness_ran = marks.join("liveness");
    let readiness_ran = marks.join("readiness");
    let mark = |file: &std::path::Path, then: &str| {
        format!(
            r#"{{exec: {{command: ["sh", "-c", "echo x >> {}; {then}"]}}, periodSeconds: 1, failureThreshold: 1000}}"#,
            file.display()
        )
    };
    let node = &c.nodes[0].name;
    let manifest = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: slow-start}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    command: ["sleep", "600"]
    startupProbe: {startup}
    livenessProbe: {liveness}
    readinessProbe: {readiness}
---
apiVersion: v1
kind: Pod
metadata: {{name: never-starts}}
spec:
  nodeName: {node}
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    command: ["sleep", "600"]
    startupProbe: {{exec: {{command: ["false"]}}, periodSeconds: 1, failureThreshold: 2}}
---
apiVersion: v1
kind: Pod
metadata: {{name: never-starts-once}}
spec:
  nodeName: {node}
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    command: ["sleep", "600"]
    startupProbe: {{exec: {{command: ["false"]}}, periodSeconds: 1, failureThreshold: 2}}
"#,
        startup = mark(&startup_ran, &format!("test -e {}", go.display())),
        liveness = mark(&liveness_ran, "true"),
        readiness = mark(&readiness_ran, "true"),
    );
    c.apply(&manifest);

    // Running, but the startup probe keeps failing: it runs again and
    // again, liveness and readiness not once, and the container is neither
    // started nor ready.
    c.wait_pod("slow-start", "ran", |p| p["status"]["phase"] == "Running");
    wait_for("the startup probe ran three times", || {
        lines(&startup_ran) >= 3
    });
    let pod = c.pod("slow-start").expect("slow-start");
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(status["started"], false, "{pod:#}");
    assert_eq!(status["ready"], false, "{pod:#}");
    assert_eq!(lines(&liveness_ran), 0, "liveness waits for startup");
    assert_eq!(lines(&readiness_ran), 0, "readiness waits for startup");

    // It passes: the container counts as started, readiness and liveness
    // take over, and the startup probe never runs again for it.
    std::fs::write(&go, "").expect("go");
    let pod = c.wait_pod("slow-start", "became Ready", ready);
    assert_eq!(pod["status"]["containerStatuses"][0]["started"], true);
    let startup_runs = lines(&startup_ran);
    std::fs::remove_file(&go).expect("remove go");
    let liveness_before = lines(&liveness_ran);
    wait_for("liveness ran three more times", || {
        lines(&liveness_ran) >= liveness_before + 3
    });
    assert_eq!(
        lines(&startup_ran),
        startup_runs,
        "the startup probe is done once it passed"
    );
    let pod = c.pod("slow-start").expect("slow-start");
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    assert!(ready(&pod), "still Ready: {pod:#}");

    // Never passing: failureThreshold failures kill the container, and the
    // restart policy decides what follows.
    let restarted = c.wait_pod("never-starts", "restarted", |p| {
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 1
    });
    assert!(!ready(&restarted));
    let failed = c.wait_pod("never-starts-once", "failed", |p| {
        p["status"]["phase"] == "Failed"
    });
    assert_eq!(
        failed["status"]["containerStatuses"][0]["restartCount"], 0,
        "restartPolicy Never: not restarted"
    );

    // What happened is told as Events, as the kubelet tells it.
    let events_of = |pod: &str| -> Vec<Value> {
        let out = c.rudderctl(&[
            "get",
            "events",
            "-o",
            "json",
            "--field-selector",
            &format!("involvedObject.name={pod}"),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Value = serde_json::from_slice(&out.stdout).expect("event list");
        list["items"].as_array().cloned().unwrap_or_default()
    };
    let has = |events: &[Value], type_: &str, reason: &str, message: &str| {
        events.iter().any(|e| {
            e["type"] == type_
                && e["reason"] == reason
                && e["message"].as_str().unwrap_or("").contains(message)
                && e["involvedObject"]["fieldPath"] == "spec.containers{main}"
                && e["source"]["component"] == "rudder-agent"
        })
    };
    wait_for("the agent's events about never-starts", || {
        let events = events_of("never-starts");
        has(&events, "Normal", "Started", "Started container main")
            && has(
                &events,
                "Warning",
                "Unhealthy",
                "Startup probe failed: command",
            )
            && has(
                &events,
                "Normal",
                "Killing",
                "Container main failed startup probe, will be restarted",
            )
    });
}

#[test]
fn a_pod_whose_server_never_answers_its_probes_holds_up_no_other_pod() {
    rudder_tests::require_root();
    let c = Cluster::new("hang");
    let app = bin("rudder-testapp");
    let node = &c.nodes[0].name;
    // Its server accepts connections (the kernel's backlog) and never
    // answers; its exec probe never ends. Both probes may take ten minutes.
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: wedged}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    command: ["{app}", "silent", "--listen", "0.0.0.0:8080"]
    readinessProbe: {{httpGet: {{path: /, port: 8080}}, timeoutSeconds: 600, periodSeconds: 1}}
    livenessProbe: {{exec: {{command: ["sleep", "600"]}}, timeoutSeconds: 600, periodSeconds: 1}}
"#
    ));
    c.wait_pod("wedged", "ran", |p| p["status"]["phase"] == "Running");

    // Another pod on the same node starts, reports its status and stops
    // while those probes hang.
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: neighbour}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    command: ["sleep", "600"]
    readinessProbe: {{exec: {{command: ["true"]}}, periodSeconds: 1}}
"#
    ));
    c.wait_pod("neighbour", "became Ready", ready);
    assert!(
        c.rudderctl(&["delete", "pod", "neighbour"])
            .status
            .success()
    );
    wait_for("the neighbour is gone", || c.pod("neighbour").is_none());

    let wedged = c.pod("wedged").expect("wedged");
    assert!(
        !ready(&wedged),
        "a probe that never answers is no pass: {wedged:#}"
    );
    assert_eq!(
        wedged["status"]["containerStatuses"][0]["restartCount"], 0,
        "a probe still running is no failure either"
    );
    assert!(c.rudderctl(&["delete", "pod", "wedged"]).status.success());
    wait_for("the wedged pod is gone", || c.pod("wedged").is_none());
}
