//! rudderctl against a real control plane (in-process, 127.0.0.1, an
//! ephemeral port): apply, get, scale, delete, and the wording of errors.

use std::{path::Path, process::Command};

use rudder_controlplane::server::{self, Security, ServerConfig};
use serde_json::Value;

fn rudderctl(server: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut command = Command::new(env!("CARGO_BIN_EXE_rudderctl"));
    command
        .args(args)
        .env("RUDDER_SERVER", server)
        .env("RUDDER_CONFIG", "/nonexistent")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("rudderctl runs");
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), stdin) {
        pipe.write_all(input.as_bytes()).expect("stdin");
    }
    let output = child.wait_with_output().expect("rudderctl finishes");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every field of `wanted` is in `actual` with the same value.
fn contains(actual: &Value, wanted: &Value, path: &str) {
    match (actual, wanted) {
        (Value::Object(a), Value::Object(w)) => {
            for (key, value) in w {
                let inner = a
                    .get(key)
                    .unwrap_or_else(|| panic!("{path}.{key} is missing after the round trip"));
                contains(inner, value, &format!("{path}.{key}"));
            }
        }
        (Value::Array(a), Value::Array(w)) => {
            assert_eq!(a.len(), w.len(), "{path}: length changed");
            for (i, (a, w)) in a.iter().zip(w).enumerate() {
                contains(a, w, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(actual, wanted, "{path} changed"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_scale_delete_round_trip_kubernetes_manifests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = server::start(ServerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        http_listen: None,
        compaction_interval: None,
        replication: None,
        security: Security::InsecurePlaintext,
        etcd_api: false,
    })
    .await
    .expect("server starts");
    let addr = running.grpc_addr.to_string();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/web.yaml");
    let manifest = manifest.to_string_lossy().into_owned();
    let blocking_addr = addr.clone();
    tokio::task::spawn_blocking(move || {
        let addr = blocking_addr.as_str();
        let (ok, out, err) = rudderctl(addr, &["apply", "-f", &manifest], None);
        assert!(ok, "apply failed: {err}");
        assert_eq!(out, "deployment.apps/web created\nservice/web created\nservice/web-nodeport created\n");
        let (ok, out, _) = rudderctl(addr, &["apply", "-f", &manifest], None);
        assert!(ok);
        assert_eq!(out, "deployment.apps/web unchanged\nservice/web unchanged\nservice/web-nodeport unchanged\n");

        // Every field written in the manifest comes back from get -o yaml.
        let text = std::fs::read_to_string(&manifest).expect("manifest");
        let documents: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
            .collect();
        for (kind, document) in [("deployment", &documents[0]), ("service", &documents[1])] {
            let (ok, out, err) = rudderctl(addr, &["get", kind, "web", "-o", "yaml"], None);
            assert!(ok, "get failed: {err}");
            let got: Value = serde_yaml_ng::from_str(&out).expect("get -o yaml is YAML");
            contains(&got, document, kind);
            assert!(got["metadata"]["resourceVersion"].is_string());
        }

        let (ok, out, _) = rudderctl(addr, &["get", "svc"], None);
        assert!(ok);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("NAME") && lines[0].contains("TYPE") && lines[0].contains("CLUSTER-IP"), "{out}");
        let row = |name: &str| lines.iter().find(|l| l.split_whitespace().next() == Some(name)).copied().unwrap_or_default();
        assert!(row("web").contains("ClusterIP") && row("web").contains("80/TCP"), "{out}");
        assert!(row("web-nodeport").contains("NodePort") && row("web-nodeport").contains("80:30080/TCP"), "{out}");

        // Several names of one kind: one table; a missing one is reported
        // and fails the command after the others are shown.
        let (ok, out, err) = rudderctl(addr, &["get", "svc", "web-nodeport", "web"], None);
        assert!(ok, "get svc web-nodeport web failed: {err}");
        let names: Vec<&str> = out.lines().filter_map(|l| l.split_whitespace().next()).collect();
        assert_eq!(names, ["NAME", "web-nodeport", "web"], "{out}");
        let (ok, out, err) = rudderctl(addr, &["get", "svc", "web", "nope", "-o", "name"], None);
        assert!(!ok, "a missing name fails the command");
        assert_eq!(out, "service/web\n");
        assert!(err.contains("Error from server (NotFound): services \"nope\" not found"), "{err}");

        // A reader that stops early (`| head`) ends rudderctl quietly, not with a panic.
        let mut child = Command::new(env!("CARGO_BIN_EXE_rudderctl"))
            .args(["get", "svc", "web", "-o", "yaml"])
            .env("RUDDER_SERVER", addr)
            .env("RUDDER_CONFIG", "/nonexistent")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("rudderctl runs");
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("rudderctl finishes");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_ne!(output.status.code(), Some(101), "exit code 101 is a panic: {stderr}");

        // Several kinds at once, kubectl-style, with --server before the command.
        let (ok, out, err) = rudderctl("unused:1", &["--server", addr, "get", "deploy,svc"], None);
        assert!(ok, "get deploy,svc failed: {err}");
        let names: Vec<&str> = out.lines().filter_map(|l| l.split_whitespace().next()).collect();
        assert_eq!(names, ["NAME", "deployment.apps/web", "NAME", "service/web", "service/web-nodeport"], "{out}");

        let (ok, out, err) = rudderctl(addr, &["scale", "deployment/web", "--replicas", "5"], None);
        assert!(ok, "scale failed: {err}");
        assert_eq!(out, "deployment.apps/web scaled\n");
        let (_, out, _) = rudderctl(addr, &["get", "deploy", "web", "-o", "json"], None);
        let got: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(got["spec"]["replicas"], 5);
        assert_eq!(got["metadata"]["generation"], 2);

        // describe ends with the Events about the object; get lists them.
        let (ok, out, _) = rudderctl(addr, &["describe", "deployment", "web"], None);
        assert!(ok);
        assert!(out.ends_with("Events:             <none>\n"), "{out}");
        let uid = got["metadata"]["uid"].as_str().expect("uid");
        let event = format!(
            "apiVersion: v1\nkind: Event\nmetadata: {{name: web.1, namespace: default}}\n\
             involvedObject: {{kind: Deployment, name: web, namespace: default, uid: {uid}}}\n\
             reason: ScalingReplicaSet\nmessage: Scaled up replica set web-1 to 5\n\
             source: {{component: deployment-controller}}\ncount: 2\n"
        );
        let (ok, _, err) = rudderctl(addr, &["apply", "-f", "-"], Some(&event));
        assert!(ok, "apply event failed: {err}");
        let (ok, out, _) = rudderctl(addr, &["describe", "deployment", "web"], None);
        assert!(ok);
        let events = out.split("Events:\n").nth(1).unwrap_or_default();
        let lines: Vec<&str> = events.lines().collect();
        assert!(lines[0].split_whitespace().eq(["Type", "Reason", "Age", "From", "Message"]), "{out}");
        assert!(
            lines[2].contains("Normal") && lines[2].contains("ScalingReplicaSet") && lines[2].contains("(x2)")
                && lines[2].contains("deployment-controller") && lines[2].ends_with("Scaled up replica set web-1 to 5"),
            "{out}"
        );
        let (ok, out, _) = rudderctl(addr, &["get", "events"], None);
        assert!(ok);
        assert!(out.starts_with("LAST SEEN") && out.contains("deployment/web"), "{out}");
        let no_object = "apiVersion: v1\nkind: Event\nmetadata: {name: orphan}\nreason: X\n";
        let (ok, _, err) = rudderctl(addr, &["apply", "-f", "-"], Some(no_object));
        assert!(!ok);
        assert!(err.contains("involvedObject.kind: required"), "{err}");

        // Errors name the object and field, kubectl-style.
        let bad = "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec:\n  ports: [{port: 70000}]\n";
        let (ok, _, err) = rudderctl(addr, &["apply", "-f", "-"], Some(bad));
        assert!(!ok);
        assert!(
            err.contains("Error from server (Invalid): service \"bad\": spec.ports[0].port: port 70000 out of range 1-65535"),
            "{err}"
        );
        let (ok, _, err) = rudderctl(addr, &["get", "pod", "nope"], None);
        assert!(!ok);
        assert!(err.contains("Error from server (NotFound): pods \"nope\" not found"), "{err}");

        let (ok, out, _) = rudderctl(addr, &["delete", "-f", &manifest], None);
        assert!(ok);
        assert_eq!(out, "deployment.apps \"web\" deleted\nservice \"web\" deleted\nservice \"web-nodeport\" deleted\n");
        let (ok, _, err) = rudderctl(addr, &["get", "deploy"], None);
        assert!(ok);
        assert!(err.contains("No resources found"), "{err}");
        let (ok, out, _) = rudderctl(addr, &["get", "ns"], None);
        assert!(ok);
        assert!(out.contains("default") && out.contains("kube-system"), "{out}");
    })
    .await
    .expect("rudderctl checks");
    running.stop().await;
}
