//! The real kubectl (found on PATH; `cargo xtask setup` installs it)
//! against a control plane on 127.0.0.1: discovery, version, create,
//! get in its table, wide, name, json, yaml and jsonpath forms, delete.

use std::{
    io::Read,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use rudder_client::{ClientIdentity, Kubeconfig};
use rudder_controlplane::{
    auth::{Authenticator, MASTERS_GROUP, StaticTokens},
    pki::{ClientProfile, ClusterPki},
    server::{self, RunningServer, Security, ServerConfig, TlsSettings},
};

/// How long one kubectl command may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

fn kubectl_path() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
        .expect("kubectl is not on PATH: run `cargo xtask setup`, which installs it")
}

/// A control plane and a kubeconfig pointing kubectl at its HTTP port.
struct Cluster {
    _running: RunningServer,
    dir: tempfile::TempDir,
    server: String,
    kubectl: PathBuf,
}

impl Cluster {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // As users run it: TLS, and the admin's client certificate of the
        // cluster CA in a kubeconfig kubectl reads as it is.
        let pki = ClusterPki::load_or_create(&dir.path().join("pki")).expect("ca");
        let serving = pki
            .issue_serving(&["localhost".into()], &["127.0.0.1".parse().expect("ip")])
            .expect("serving cert");
        let running = server::start(ServerConfig {
            data_dir: dir.path().join("data"),
            listen: "127.0.0.1:0".parse().expect("addr"),
            http_listen: Some("127.0.0.1:0".parse().expect("addr")),
            compaction_interval: None,
            replication: None,
            security: Security::Tls(TlsSettings {
                client_ca_pem: pki.ca_pem().to_owned(),
                serving,
                authenticator: Authenticator::new(StaticTokens::default()),
                node_certificates: None,
            }),
            etcd_api: false,
        })
        .await
        .expect("server starts");
        let server = format!("https://{}", running.http_addr.expect("http listens"));
        let admin = pki
            .issue_client(&ClientProfile::new("kubernetes-admin", &[MASTERS_GROUP]))
            .expect("admin certificate");
        let kubeconfig = Kubeconfig::single(
            "rudder",
            &server,
            pki.ca_pem(),
            "kubernetes-admin",
            Kubeconfig::certificate_user(&ClientIdentity {
                cert_pem: admin.cert_pem,
                key_pem: admin.key_pem,
            }),
        )
        .to_yaml();
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).expect("kubeconfig");
        Self {
            _running: running,
            dir,
            server,
            kubectl: kubectl_path(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs kubectl with `args` against the cluster (through the
    /// kubeconfig), bounded by [`COMMAND_TIMEOUT`]: (success, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut command = Command::new(&self.kubectl);
        command
            .arg(format!(
                "--kubeconfig={}",
                self.path("kubeconfig").display()
            ))
            .arg(format!("--cache-dir={}", self.path("cache").display()))
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let described = format!("kubectl {}", args.join(" "));
        tokio::task::spawn_blocking(move || run_bounded(command, &described))
            .await
            .expect("kubectl task")
    }

    /// Runs kubectl and returns its stdout, failing the test on failure.
    async fn ok(&self, args: &[&str]) -> String {
        let (success, stdout, stderr) = self.run(args).await;
        assert!(
            success,
            "kubectl {} failed:\n{stderr}\n{stdout}",
            args.join(" ")
        );
        stdout
    }
}

fn run_bounded(mut command: Command, described: &str) -> (bool, String, String) {
    let mut child = command.spawn().expect("kubectl starts");
    let mut stdout_pipe = child.stdout.take().expect("stdout");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let stdout_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout_pipe.read_to_string(&mut text);
        text
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("kubectl wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{described} did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout_reader.join().expect("stdout reader");
    let stderr = stderr_reader.join().expect("stderr reader");
    (status.success(), stdout, stderr)
}

const MANIFEST: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: [sleep, '1000']
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 2
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
";

/// The header line of a kubectl table, its columns split on runs of
/// two or more spaces.
fn header(table: &str) -> Vec<String> {
    let first = table.lines().next().unwrap_or("");
    first
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The table line whose first cells are `start`.
fn line_starting<'a>(table: &'a str, start: &[&str]) -> Option<&'a str> {
    table.lines().find(|line| {
        let cells: Vec<&str> = line.split_whitespace().collect();
        cells.len() >= start.len() && cells[..start.len()] == *start
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_discovers_the_api_and_reports_the_version() {
    let cluster = Cluster::start().await;

    let version = cluster.ok(&["version", "-o", "json"]).await;
    let version: serde_json::Value = serde_json::from_str(&version).expect("version json");
    assert_eq!(version["serverVersion"]["major"], "1");
    assert_eq!(version["serverVersion"]["minor"], "32");
    assert!(
        version["serverVersion"]["gitVersion"]
            .as_str()
            .is_some_and(|v| v.contains("rudder")),
        "{version}"
    );

    let versions = cluster.ok(&["api-versions"]).await;
    let versions: Vec<&str> = versions.lines().collect();
    for expected in ["v1", "apps/v1", "coordination.k8s.io/v1"] {
        assert!(versions.contains(&expected), "{expected} in {versions:?}");
    }

    let resources = cluster.ok(&["api-resources"]).await;
    assert_eq!(
        header(&resources),
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    for row in [
        &["pods", "po", "v1", "true", "Pod"][..],
        &["deployments", "deploy", "apps/v1", "true", "Deployment"],
        &["nodes", "no", "v1", "false", "Node"],
        &["leases", "coordination.k8s.io/v1", "true", "Lease"],
    ] {
        assert!(
            line_starting(&resources, row).is_some(),
            "{row:?} in\n{resources}"
        );
    }
    let in_all = cluster
        .ok(&["api-resources", "--categories=all", "-o", "name"])
        .await;
    let mut in_all: Vec<&str> = in_all.lines().collect();
    in_all.sort_unstable();
    assert_eq!(
        in_all,
        ["deployments.apps", "pods", "replicasets.apps", "services"]
    );

    // --server alone, without the kubeconfig's cluster, works as well.
    let (success, stdout, stderr) = cluster
        .run(&["--server", &cluster.server, "cluster-info"])
        .await;
    assert!(success, "cluster-info: {stderr}");
    assert!(
        stdout.contains(&format!("is running at {}", cluster.server)),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_gets_and_deletes() {
    let cluster = Cluster::start().await;
    let manifest = cluster.path("manifest.yaml");
    std::fs::write(&manifest, MANIFEST).expect("manifest");
    let file = manifest.to_str().expect("utf-8 path");

    let created = cluster
        .ok(&["create", "-f", file, "--validate=false"])
        .await;
    assert_eq!(
        created.lines().collect::<Vec<_>>(),
        [
            "pod/web created",
            "deployment.apps/api created",
            "service/web created"
        ]
    );

    let (success, pods, stderr) = cluster.run(&["get", "pods", "-v=6"]).await;
    assert!(success, "{stderr}");
    // Discovery fell back from the aggregated form without complaint (the
    // columns below are the server's Table: kubectl has none of its own).
    assert!(
        !stderr.contains("\"Unhandled Error\"") && !stderr.contains("couldn't get"),
        "{stderr}"
    );
    assert_eq!(
        header(&pods),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert!(
        line_starting(&pods, &["web", "0/1", "Pending", "0"]).is_some(),
        "{pods}"
    );

    let wide = cluster.ok(&["get", "pods", "-o", "wide"]).await;
    assert_eq!(
        header(&wide),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
    assert!(
        line_starting(&wide, &["web", "0/1", "Pending"]).is_some_and(|l| l.contains("<none>")),
        "{wide}"
    );

    let both = cluster.ok(&["get", "svc,deploy", "-A"]).await;
    assert!(
        line_starting(&both, &["default", "service/web", "ClusterIP"]).is_some(),
        "{both}"
    );
    assert!(
        line_starting(&both, &["default", "deployment.apps/api", "0/2"]).is_some(),
        "{both}"
    );
    assert!(both.starts_with("NAMESPACE "), "{both}");

    let json = cluster.ok(&["get", "pod", "web", "-o", "json"]).await;
    let pod: serde_json::Value = serde_json::from_str(&json).expect("pod json");
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["spec"]["containers"][0]["image"], "busybox:1.36");
    let yaml = cluster.ok(&["get", "pod", "web", "-o", "yaml"]).await;
    assert!(
        yaml.contains("kind: Pod") && yaml.contains("  name: web"),
        "{yaml}"
    );
    assert_eq!(
        cluster.ok(&["get", "pod", "web", "-o", "name"]).await,
        "pod/web\n"
    );
    assert_eq!(
        cluster
            .ok(&[
                "get",
                "pod",
                "web",
                "-o",
                "jsonpath={.spec.containers[0].name}"
            ])
            .await,
        "c"
    );
    let (success, _, stderr) = cluster.run(&["get", "pod", "missing"]).await;
    assert!(!success);
    assert!(stderr.contains(r#"pods "missing" not found"#), "{stderr}");

    // apply without OpenAPI needs --validate=false; a second apply of the
    // same manifest changes nothing.
    let namespace = cluster.path("namespace.yaml");
    std::fs::write(
        &namespace,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n",
    )
    .expect("namespace manifest");
    let namespace = namespace.to_str().expect("utf-8 path");
    let apply = ["apply", "-f", namespace, "--validate=false"];
    assert_eq!(cluster.ok(&apply).await, "namespace/demo created\n");
    assert_eq!(cluster.ok(&apply).await, "namespace/demo unchanged\n");
    assert!(
        line_starting(
            &cluster.ok(&["get", "ns", "demo"]).await,
            &["demo", "Active"]
        )
        .is_some()
    );

    let deleted = cluster.ok(&["delete", "pod", "web", "--wait=false"]).await;
    assert_eq!(deleted, "pod \"web\" deleted\n");
    let (success, stdout, stderr) = cluster.run(&["get", "pods"]).await;
    assert!(success, "{stderr}");
    assert!(
        stdout.is_empty() && stderr.contains("No resources found in default namespace."),
        "{stdout}{stderr}"
    );
}
