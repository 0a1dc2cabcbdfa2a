//! The real kubectl (found on PATH; `cargo xtask setup` installs it)
//! against a control plane on 127.0.0.1: discovery, version, create,
//! get in its table, wide, name, json, yaml and jsonpath forms, delete;
//! and the admin kubeconfig `rudder-controlplane` writes serving kubectl
//! and gRPC on the one port it names.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

mod support;

use rudder_client::{ClientIdentity, Kubeconfig};
use rudder_controlplane::{
    auth::MASTERS_GROUP,
    pki::{ClientProfile, ClusterPki},
    server::RunningServer,
};
use support::kubectl::{kubectl, kubectl_path, succeeded};

/// A control plane and a kubeconfig pointing kubectl at its API port (the
/// one rudderctl's gRPC uses too).
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
        let running = support::start_tls(dir.path(), &pki).await;
        let server = format!("https://{}", running.grpc_addr);
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
        kubectl(
            &self.kubectl,
            self.dir.path(),
            &self.path("kubeconfig"),
            args,
        )
        .await
    }

    /// Runs kubectl and returns its stdout, failing the test on failure.
    async fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.run(args).await)
    }
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

    // Validated on the server (kubectl's default --validate=strict finds
    // fieldValidation in /openapi/v3 and sends it).
    let created = cluster.ok(&["create", "-f", file]).await;
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

    // apply with the default validation; a second apply of the same
    // manifest changes nothing.
    let namespace = cluster.path("namespace.yaml");
    std::fs::write(
        &namespace,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n",
    )
    .expect("namespace manifest");
    let namespace = namespace.to_str().expect("utf-8 path");
    let apply = ["apply", "-f", namespace];
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

/// `rudder-controlplane` as a user starts it (TLS, its own CA), killed
/// when dropped, also when an assertion fails.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_kubeconfig_serves_kubectl_and_grpc_on_one_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let _server = Process(
        Command::new(env!("CARGO_BIN_EXE_rudder-controlplane"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // Only the one port: the REST API must be on it.
            .args(["--http-listen", "off", "--no-controllers", "--no-scheduler"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rudder-controlplane starts"),
    );
    let kubeconfig = dir.path().join("data/pki/admin.kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        let connected = match Kubeconfig::load(&kubeconfig) {
            Ok(config) => {
                let config = config
                    .client_config(&kubeconfig, None)
                    .expect("the admin kubeconfig is complete");
                rudder_client::Client::connect_with(&config).await.ok()
            }
            Err(_) => None,
        };
        if let Some(client) = connected {
            break client;
        }
        assert!(
            Instant::now() < deadline,
            "no admin kubeconfig or no gRPC on port {port} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = std::fs::read_to_string(&kubeconfig).expect("admin kubeconfig");
    assert!(
        text.contains(&format!("server: https://127.0.0.1:{port}")),
        "{text}"
    );

    // kubectl writes through REST, gRPC reads it back ...
    let manifest = dir.path().join("ns.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shared}\n",
    )
    .expect("manifest");
    let kubectl_path = kubectl_path();
    let apply = ["apply", "-f", manifest.to_str().expect("utf-8")];
    let applied = succeeded(
        &apply,
        kubectl(&kubectl_path, dir.path(), &kubeconfig, &apply).await,
    );
    assert_eq!(applied, "namespace/shared created\n");
    let namespace: rudder_api::core::Namespace = client.get("", "shared").await.expect("gRPC get");
    assert_eq!(namespace.metadata.name, "shared");

    // ... and what gRPC writes, kubectl lists.
    let mut created = rudder_api::core::Namespace::default();
    created.metadata.name = "from-grpc".into();
    client.create(&created).await.expect("gRPC create");
    let get = ["get", "namespaces", "-o", "name"];
    let names = succeeded(
        &get,
        kubectl(&kubectl_path, dir.path(), &kubeconfig, &get).await,
    );
    let names: Vec<&str> = names.lines().collect();
    for expected in [
        "namespace/shared",
        "namespace/from-grpc",
        "namespace/default",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  labels: {app: api}
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
        ports:
        - containerPort: 80
";

const NODE: &str = "\
apiVersion: v1
kind: Node
metadata:
  name: n1
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_patches_in_all_three_types() {
    let cluster = Cluster::start().await;
    let manifest = cluster.path("deployment.yaml");
    std::fs::write(&manifest, DEPLOYMENT).expect("manifest");
    let file = manifest.to_str().expect("utf-8 path");
    let apply = ["apply", "-f", file];
    assert_eq!(cluster.ok(&apply).await, "deployment.apps/api created\n");
    let read = async |path: &str| {
        cluster
            .ok(&[
                "get",
                "deploy",
                "api",
                "-o",
                &format!("jsonpath={{{path}}}"),
            ])
            .await
    };

    // label and annotate send JSON merge patches.
    assert_eq!(
        cluster
            .ok(&["label", "deploy", "api", "tier=backend"])
            .await,
        "deployment.apps/api labeled\n"
    );
    assert_eq!(read(".metadata.labels.tier").await, "backend");
    assert_eq!(read(".metadata.labels.app").await, "api");
    cluster
        .ok(&["annotate", "deploy", "api", "note=hello"])
        .await;
    assert_eq!(read(".metadata.annotations.note").await, "hello");
    cluster.ok(&["label", "deploy", "api", "tier-"]).await;
    assert_eq!(read(".metadata.labels.tier").await, "");

    // set image: a strategic merge patch of one container by its name.
    assert_eq!(
        cluster
            .ok(&["set", "image", "deploy/api", "api=nginx:1.28"])
            .await,
        "deployment.apps/api image updated\n"
    );
    assert_eq!(
        read(".spec.template.spec.containers[0].image").await,
        "nginx:1.28"
    );
    assert_eq!(
        read(".spec.template.spec.containers[0].ports[0].containerPort").await,
        "80"
    );

    // patch in its three types.
    cluster
        .ok(&[
            "patch",
            "deploy",
            "api",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":3}}"#,
        ])
        .await;
    assert_eq!(read(".spec.replicas").await, "3");
    cluster
        .ok(&[
            "patch",
            "deploy",
            "api",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
        ])
        .await;
    assert_eq!(read(".spec.replicas").await, "4");
    cluster
        .ok(&[
            "patch",
            "deploy",
            "api",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}"#,
        ])
        .await;
    assert_eq!(
        read(".spec.template.spec.containers[*].name").await,
        "api sidecar"
    );
    let (success, _, stderr) = cluster
        .run(&[
            "patch",
            "deploy",
            "api",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/missing"}]"#,
        ])
        .await;
    assert!(!success);
    assert!(
        stderr.contains(r#""/spec/missing" does not exist"#),
        "{stderr}"
    );

    // scale goes through the scale subresource (a merge patch of a Scale).
    assert_eq!(
        cluster
            .ok(&["scale", "deploy", "api", "--replicas=5"])
            .await,
        "deployment.apps/api scaled\n"
    );
    assert_eq!(read(".spec.replicas").await, "5");
    let scale = cluster
        .ok(&[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments/api/scale",
        ])
        .await;
    let scale: serde_json::Value = serde_json::from_str(&scale).expect("Scale json");
    assert_eq!(
        (
            &scale["kind"],
            &scale["spec"]["replicas"],
            &scale["status"]["selector"]
        ),
        (
            &serde_json::json!("Scale"),
            &serde_json::json!(5),
            &serde_json::json!("app=api")
        )
    );
    let (success, _, stderr) = cluster
        .run(&[
            "patch",
            "deploy",
            "api",
            "--subresource=scale",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":-1}}"#,
        ])
        .await;
    assert!(
        !success && stderr.contains("Scale.spec.replicas must be a whole number from 0 up"),
        "{stderr}"
    );
    assert_eq!(read(".spec.replicas").await, "5");

    // rollout pause, resume and restart are patches too.
    cluster.ok(&["rollout", "pause", "deploy/api"]).await;
    assert_eq!(read(".spec.paused").await, "true");
    cluster.ok(&["rollout", "resume", "deploy/api"]).await;
    assert_eq!(read(".spec.paused").await, "");
    assert_eq!(
        cluster.ok(&["rollout", "restart", "deploy/api"]).await,
        "deployment.apps/api restarted\n"
    );
    assert!(
        !read(r".spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt")
            .await
            .is_empty()
    );

    // Client-side apply of a changed manifest: a three-way strategic merge
    // patch that keeps what others added (the sidecar).
    std::fs::write(&manifest, DEPLOYMENT.replace("nginx:1.27", "nginx:1.29")).expect("manifest");
    assert_eq!(cluster.ok(&apply).await, "deployment.apps/api configured\n");
    assert_eq!(
        read(".spec.template.spec.containers[*].image").await,
        "nginx:1.29 busybox:1.36"
    );
    // Applied again, kubectl sends only the container order it knows
    // ($setElementOrder), which keeps the sidecar where it was.
    cluster.ok(&apply).await;
    assert_eq!(
        read(".spec.template.spec.containers[*].name").await,
        "api sidecar"
    );

    // cordon, taint, uncordon: strategic merge patches of a node.
    let node = cluster.path("node.yaml");
    std::fs::write(&node, NODE).expect("node manifest");
    cluster
        .ok(&["create", "-f", node.to_str().expect("utf-8")])
        .await;
    assert_eq!(cluster.ok(&["cordon", "n1"]).await, "node/n1 cordoned\n");
    let node_field = async |path: &str| {
        cluster
            .ok(&["get", "node", "n1", "-o", &format!("jsonpath={{{path}}}")])
            .await
    };
    assert_eq!(node_field(".spec.unschedulable").await, "true");
    cluster
        .ok(&["taint", "nodes", "n1", "dedicated=infra:NoSchedule"])
        .await;
    assert_eq!(node_field(".spec.taints[0].key").await, "dedicated");
    assert_eq!(
        cluster.ok(&["uncordon", "n1"]).await,
        "node/n1 uncordoned\n"
    );
    assert_eq!(node_field(".spec.unschedulable").await, "");
    assert_eq!(node_field(".spec.taints[0].effect").await, "NoSchedule");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_dry_runs_and_diff_persist_nothing() {
    let cluster = Cluster::start().await;
    let manifest = cluster.path("deployment.yaml");
    std::fs::write(&manifest, DEPLOYMENT).expect("manifest");
    let file = manifest.to_str().expect("utf-8 path");
    let read_image = async || {
        cluster
            .run(&[
                "get",
                "deploy",
                "api",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ])
            .await
    };

    let dry = ["apply", "-f", file, "--dry-run=server"];
    assert_eq!(
        cluster.ok(&dry).await,
        "deployment.apps/api created (server dry run)\n"
    );
    let (found, _, stderr) = read_image().await;
    assert!(!found && stderr.contains("not found"), "{stderr}");

    let apply = ["apply", "-f", file];
    cluster.ok(&apply).await;
    let version = cluster
        .ok(&[
            "get",
            "deploy",
            "api",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await;
    std::fs::write(&manifest, DEPLOYMENT.replace("nginx:1.27", "nginx:1.29")).expect("manifest");
    assert_eq!(
        cluster.ok(&dry).await,
        "deployment.apps/api configured (server dry run)\n"
    );
    // kubectl diff: a server-side dry run of the patch, exit status 1 when
    // something would change.
    let (same, diff, stderr) = cluster.run(&["diff", "-f", file]).await;
    assert!(!same && stderr.is_empty(), "{stderr}");
    assert!(
        diff.contains("-      - image: nginx:1.27") && diff.contains("+      - image: nginx:1.29"),
        "{diff}"
    );
    cluster
        .ok(&["scale", "deploy", "api", "--replicas=7", "--dry-run=server"])
        .await;
    assert_eq!(
        cluster
            .ok(&["delete", "deploy", "api", "--dry-run=server"])
            .await,
        "deployment.apps \"api\" deleted (server dry run)\n"
    );
    let (found, image, _) = read_image().await;
    assert!(found);
    assert_eq!(image, "nginx:1.27");
    assert_eq!(
        cluster
            .ok(&[
                "get",
                "deploy",
                "api",
                "-o",
                "jsonpath={.metadata.resourceVersion}/{.spec.replicas}"
            ])
            .await,
        format!("{version}/2")
    );
}

/// A Deployment as users write them for Kubernetes, with fields rudder
/// keeps but does not model (volumes, mounts, security contexts, a service
/// account, DNS policy): these must pass strict validation.
const KUBERNETES_DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: store
  labels: {app: store}
spec:
  replicas: 1
  revisionHistoryLimit: 5
  selector:
    matchLabels: {app: store}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: store}
      annotations: {prometheus.io/scrape: 'true'}
    spec:
      serviceAccountName: store
      dnsPolicy: ClusterFirst
      securityContext: {runAsNonRoot: true, fsGroup: 2000}
      volumes:
      - name: data
        emptyDir: {sizeLimit: 1Gi}
      containers:
      - name: store
        image: registry.example/store:1.4
        args: [--data, /data]
        env:
        - {name: MODE, value: primary}
        ports:
        - {name: http, containerPort: 8080, protocol: TCP}
        volumeMounts:
        - {name: data, mountPath: /data}
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
        readinessProbe:
          httpGet: {path: /ready, port: http}
        lifecycle:
          preStop:
            exec: {command: [sleep, '5']}
        resources:
          requests: {cpu: 100m, memory: 64Mi}
";

/// The field kubectl would print after `explain <path>` names, and the
/// description under it.
fn explained_field<'a>(explained: &'a str, field: &str) -> Option<(&'a str, String)> {
    let mut lines = explained.lines();
    let line = lines.find(|line| line.trim_start().starts_with(&format!("{field}\t")))?;
    let description: Vec<&str> = lines
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    Some((line.trim(), description.join(" ")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explains_fields_with_the_types_descriptions() {
    let cluster = Cluster::start().await;

    let containers = cluster.ok(&["explain", "pods.spec.containers"]).await;
    assert!(
        containers.starts_with("KIND:       Pod\nVERSION:    v1\n"),
        "{containers}"
    );
    assert!(
        containers.contains("FIELD: containers <[]Container>"),
        "{containers}"
    );
    // The doc comments of api/src/core.rs, field by field.
    assert_eq!(
        explained_field(&containers, "image"),
        Some((
            "image\t<string>",
            "Image reference; recorded, resolved only by runtimes that pull.".to_owned()
        )),
        "{containers}"
    );
    assert_eq!(
        explained_field(&containers, "readinessProbe").map(|(line, _)| line),
        Some("readinessProbe\t<Probe>"),
        "{containers}"
    );
    let (mounts, described) =
        explained_field(&containers, "volumeMounts").expect("volumeMounts explained");
    assert_eq!(mounts, "volumeMounts\t<[]Object>");
    assert!(described.contains("Kept as written"), "{described}");

    let recursive = cluster.ok(&["explain", "deployment", "--recursive"]).await;
    assert!(
        recursive.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n"),
        "{recursive}"
    );
    for nested in [
        "  spec\t<DeploymentSpec>",
        "    replicas\t<integer>",
        "    template\t<PodTemplateSpec>",
        "        containers\t<[]Container>",
        "          livenessProbe\t<Probe>",
        "      matchLabels\t<map[string]string>",
    ] {
        assert!(
            recursive.lines().any(|line| line == nested),
            "{nested:?} in:\n{recursive}"
        );
    }

    let (found, _, stderr) = cluster.run(&["explain", "pods.spec.colour"]).await;
    assert!(!found);
    assert!(
        stderr.contains(r#"field "colour" does not exist"#),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_validates_on_the_server_by_default() {
    let cluster = Cluster::start().await;
    let manifest = cluster.path("store.yaml");
    let file = manifest.to_str().expect("utf-8 path").to_owned();
    let read = async |path: &str| {
        cluster
            .run(&[
                "get",
                "deploy",
                "store",
                "-o",
                &format!("jsonpath={{{path}}}"),
            ])
            .await
    };

    // An unknown field under --validate=strict: a clear error, nothing
    // stored. kubectl asked the server (fieldValidation=Strict), it did not
    // validate by itself.
    std::fs::write(
        &manifest,
        KUBERNETES_DEPLOYMENT.replace("  replicas: 1\n", "  replicas: 1\n  replica: 2\n"),
    )
    .expect("manifest");
    let (applied, _, stderr) = cluster
        .run(&["apply", "-f", &file, "--validate=strict", "-v=6"])
        .await;
    assert!(!applied);
    assert!(
        stderr
            .contains(r#"deployment "store": strict decoding error: unknown field "spec.replica""#),
        "{stderr}"
    );
    assert!(stderr.contains("fieldValidation=Strict"), "{stderr}");
    assert!(!stderr.contains("/openapi/v2"), "{stderr}");
    let (found, _, stderr) = read(".metadata.name").await;
    assert!(!found && stderr.contains("not found"), "{stderr}");

    // --validate=warn stores it and says what was unknown.
    let (applied, stdout, stderr) = cluster
        .run(&["apply", "-f", &file, "--validate=warn"])
        .await;
    assert!(applied, "{stderr}");
    assert_eq!(stdout, "deployment.apps/store created\n");
    assert!(
        stderr.contains(r#"Warning: unknown field "spec.replica""#),
        "{stderr}"
    );
    cluster.ok(&["delete", "deploy", "store"]).await;

    // A Deployment as written for Kubernetes applies with the default
    // validation, fields rudder does not model included, twice with a
    // change (a strategic merge patch computed from the served schema).
    std::fs::write(&manifest, KUBERNETES_DEPLOYMENT).expect("manifest");
    let (applied, stdout, stderr) = cluster.run(&["apply", "-f", &file]).await;
    assert!(applied, "{stderr}");
    assert_eq!(stdout, "deployment.apps/store created\n");
    assert!(stderr.is_empty(), "{stderr}");
    let (_, mount, _) = read(".spec.template.spec.containers[0].volumeMounts[0].mountPath").await;
    assert_eq!(mount, "/data");
    std::fs::write(
        &manifest,
        KUBERNETES_DEPLOYMENT
            .replace("registry.example/store:1.4", "registry.example/store:1.5")
            .replace("sizeLimit: 1Gi", "sizeLimit: 2Gi")
            .replace("drop: [ALL]", "drop: [ALL, NET_RAW]")
            .replace(
                "exec: {command: [sleep, '5']}",
                "exec: {command: [sleep, '9']}",
            ),
    )
    .expect("manifest");
    let (applied, stdout, stderr) = cluster.run(&["apply", "-f", &file]).await;
    assert!(applied, "{stderr}");
    assert_eq!(stdout, "deployment.apps/store configured\n");
    assert!(stderr.is_empty(), "{stderr}");
    let (_, image, _) = read(".spec.template.spec.containers[0].image").await;
    assert_eq!(image, "registry.example/store:1.5");
    let (_, limit, _) = read(".spec.template.spec.volumes[0].emptyDir.sizeLimit").await;
    assert_eq!(limit, "2Gi");
    let container = ".spec.template.spec.containers[0]";
    let (_, dropped, _) = read(&format!("{container}.securityContext.capabilities.drop")).await;
    assert_eq!(dropped, r#"["ALL","NET_RAW"]"#);
    let (_, hook, _) = read(&format!("{container}.lifecycle.preStop.exec.command[1]")).await;
    assert_eq!(hook, "9");

    // A patch that brings an unknown field is refused, and changes nothing.
    std::fs::write(
        &manifest,
        KUBERNETES_DEPLOYMENT.replace("        args:", "        colour: red\n        args:"),
    )
    .expect("manifest");
    let (applied, _, stderr) = cluster.run(&["apply", "-f", &file]).await;
    assert!(!applied);
    assert!(
        stderr.contains(r#"unknown field "spec.template.spec.containers[0].colour""#),
        "{stderr}"
    );
    let (_, image, _) = read(".spec.template.spec.containers[0].image").await;
    assert_eq!(image, "registry.example/store:1.5");

    // create and replace validate the same way.
    let pod = cluster.path("pod.yaml");
    let pod_file = pod.to_str().expect("utf-8 path");
    let pod_manifest = "apiVersion: v1\nkind: Pod\nmetadata: {name: solo}\n\
                        spec:\n  containers:\n  - {name: c, image: busybox, command: [sleep, '60']}\n";
    std::fs::write(
        &pod,
        pod_manifest.replace("image: busybox", "image: busybox, tty: true, size: 3"),
    )
    .expect("pod");
    let (created, _, stderr) = cluster.run(&["create", "-f", pod_file]).await;
    assert!(!created);
    assert!(
        stderr.contains(
            r#"pod "solo": strict decoding error: unknown field "spec.containers[0].size""#
        ),
        "{stderr}"
    );
    std::fs::write(&pod, pod_manifest).expect("pod");
    assert_eq!(
        cluster.ok(&["create", "-f", pod_file]).await,
        "pod/solo created\n"
    );
    std::fs::write(
        &pod,
        pod_manifest
            .replace("'60'", "'61'")
            .replace("{name: solo}", "{name: solo, labels: {tier: one}}"),
    )
    .expect("pod");
    assert_eq!(
        cluster.ok(&["replace", "-f", pod_file]).await,
        "pod/solo replaced\n"
    );
    std::fs::write(
        &pod,
        pod_manifest.replace("{name: solo}", "{name: solo, labelz: {tier: two}}"),
    )
    .expect("pod");
    let (replaced, _, stderr) = cluster.run(&["replace", "-f", pod_file]).await;
    assert!(!replaced);
    assert!(
        stderr.contains(r#"unknown field "metadata.labelz""#),
        "{stderr}"
    );
    assert_eq!(
        cluster
            .ok(&[
                "get",
                "pod",
                "solo",
                "-o",
                "jsonpath={.metadata.labels.tier}"
            ])
            .await,
        "one"
    );

    // A List (what `kubectl get -o yaml` writes) is validated by kubectl
    // itself against /openapi/v2, served as gnostic protobuf.
    let list = cluster.path("list.yaml");
    let listed = cluster.ok(&["get", "pods", "-o", "yaml"]).await;
    std::fs::write(&list, &listed).expect("list");
    let (applied, _, stderr) = cluster
        .run(&["apply", "-f", list.to_str().expect("utf-8"), "-v=6"])
        .await;
    assert!(applied, "{stderr}");
    assert!(stderr.contains("GET https://127.0.0.1"), "{stderr}");
    assert!(stderr.contains("/openapi/v2"), "{stderr}");
    std::fs::write(
        &list,
        listed.replacen("  kind: Pod\n", "  kind: Pod\n  colour: red\n", 1),
    )
    .expect("list");
    let (applied, _, stderr) = cluster
        .run(&["apply", "-f", list.to_str().expect("utf-8")])
        .await;
    assert!(!applied);
    assert!(
        stderr.contains(r#"unknown field "colour" in io.k8s.api.core.v1.Pod"#),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_applies_with_default_validation() {
    let cluster = Cluster::start().await;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut applied = 0;
    for entry in std::fs::read_dir(&examples).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue;
        }
        let file = path.to_str().expect("utf-8 path");
        let (ok, stdout, stderr) = cluster.run(&["apply", "-f", file]).await;
        assert!(ok, "{file}: {stderr}");
        assert!(stderr.is_empty(), "{file}: {stderr}");
        assert!(stdout.contains(" created"), "{file}: {stdout}");
        applied += 1;
    }
    assert!(applied > 0, "examples/ has manifests");
}

/// `kubectl delete --cascade=orphan|foreground` sends its propagation
/// policy in the DeleteOptions body: the Deployment waits, marked with the
/// finalizer the garbage collector works (no collector runs here; the
/// collector's side is tested in controllers.rs), and `--cascade=background`
/// removes it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_delete_cascade_sets_the_propagation_policy() {
    let cluster = Cluster::start().await;
    let manifest = cluster.path("deployment.yaml");
    let file = manifest.to_str().expect("utf-8 path");
    for (cascade, finalizer) in [("orphan", "orphan"), ("foreground", "foregroundDeletion")] {
        std::fs::write(&manifest, DEPLOYMENT).expect("manifest");
        cluster.ok(&["apply", "-f", file]).await;
        cluster
            .ok(&[
                "delete",
                "deploy",
                "api",
                &format!("--cascade={cascade}"),
                "--wait=false",
            ])
            .await;
        let marked = cluster
            .ok(&[
                "get",
                "deploy",
                "api",
                "-o",
                "jsonpath={.metadata.finalizers} {.metadata.deletionTimestamp}",
            ])
            .await;
        let (finalizers, deleted_at) = marked.split_once(' ').expect("two fields");
        assert_eq!(
            finalizers,
            format!("[\"{finalizer}\"]"),
            "--cascade={cascade}"
        );
        assert!(
            !deleted_at.is_empty(),
            "--cascade={cascade}: marked deleted"
        );
        // What the collector does once it has dealt with the dependents.
        cluster
            .ok(&[
                "patch",
                "deploy",
                "api",
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ])
            .await;
        let (found, _, stderr) = cluster.run(&["get", "deploy", "api"]).await;
        assert!(!found && stderr.contains("not found"), "{stderr}");
    }
    std::fs::write(&manifest, DEPLOYMENT).expect("manifest");
    cluster.ok(&["apply", "-f", file]).await;
    cluster
        .ok(&["delete", "deploy", "api", "--cascade=background"])
        .await;
    let (found, _, stderr) = cluster.run(&["get", "deploy", "api"]).await;
    assert!(!found && stderr.contains("not found"), "{stderr}");
}
