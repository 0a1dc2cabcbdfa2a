//! Authorisation against a real control plane on 127.0.0.1 (TLS, client
//! certificates of the cluster CA), driven by the real kubectl where a
//! user would use it and by the gRPC client where an agent or a
//! controller would: RBAC grants in a namespace and cluster-wide, default
//! deny, escalation refused, `kubectl auth can-i`, the node authoriser
//! and NodeRestriction, and the controllers and scheduler reconciling
//! under their own, non-master identities.

mod support;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use rudder_api::{
    Kind, Resource,
    coordination::{Lease, LeaseSpec},
    core::{Namespace, Node, NodeStatus, Pod},
    meta::{Condition, ObjectMeta},
    names::NODE_LEASE_NAMESPACE,
};
use rudder_client::{
    Client, ClientConfig, ClientError, ClientIdentity, Credentials, Kubeconfig, ListOptions,
};
use rudder_controlplane::{
    auth::MASTERS_GROUP,
    authz::bootstrap::{CONTROLLER_MANAGER_USER, SCHEDULER_USER},
    leader::LeaderConfig,
    manager::{ControllerClients, ControllerConfig, ControllerManager},
    pki::{ClientProfile, ClusterPki},
    server::RunningServer,
};
use serde_json::{Value, json};
use support::kubectl::{kubectl, kubectl_path, succeeded};

/// How long a grant may take to reach the authoriser's view, at most.
const PROPAGATION: Duration = Duration::from_secs(30);

struct Cluster {
    running: Option<RunningServer>,
    pki: Arc<ClusterPki>,
    dir: tempfile::TempDir,
    kubectl: PathBuf,
}

impl Cluster {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Arc::new(ClusterPki::load_or_create(&dir.path().join("pki")).expect("ca"));
        let running = support::start_tls(dir.path(), &pki).await;
        Self {
            running: Some(running),
            pki,
            dir,
            kubectl: kubectl_path(),
        }
    }

    /// A cluster with namespace `namespace`, the admin's client and the
    /// admin's kubeconfig.
    async fn with_namespace(namespace: &str) -> (Self, Client, PathBuf) {
        let cluster = Self::start().await;
        let admin = cluster.admin().await;
        create_namespace(&admin, namespace).await;
        let config = cluster.kubeconfig("kubernetes-admin", &[MASTERS_GROUP]);
        (cluster, admin, config)
    }

    fn server(&self) -> String {
        let running = self.running.as_ref().expect("running");
        format!("https://{}", running.grpc_addr)
    }

    fn identity(&self, user: &str, groups: &[&str]) -> ClientIdentity {
        let cert = self
            .pki
            .issue_client(&ClientProfile::new(user, groups))
            .expect("client certificate");
        ClientIdentity {
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
        }
    }

    /// A gRPC client as `user` in `groups`.
    async fn client(&self, user: &str, groups: &[&str]) -> Client {
        let config = ClientConfig {
            server: self.server(),
            credentials: Credentials {
                ca_pem: Some(self.pki.ca_pem().to_owned()),
                server_name: Some("localhost".into()),
                identity: Some(self.identity(user, groups)),
                token: None,
            },
            reload_from: None,
        };
        Client::connect_with(&config)
            .await
            .expect("client connects")
    }

    async fn admin(&self) -> Client {
        self.client("kubernetes-admin", &[MASTERS_GROUP]).await
    }

    /// A kubeconfig for `user` in `groups`; its path.
    fn kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("{}.kubeconfig", user.replace(':', "-")));
        let config = Kubeconfig::single(
            "rudder",
            &self.server(),
            self.pki.ca_pem(),
            user,
            Kubeconfig::certificate_user(&self.identity(user, groups)),
        );
        std::fs::write(&path, config.to_yaml()).expect("kubeconfig");
        path
    }

    /// Runs kubectl with `kubeconfig`: (success, stdout, stderr).
    async fn kubectl(&self, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
        kubectl(&self.kubectl, self.dir.path(), kubeconfig, args).await
    }

    /// Runs kubectl, failing the test when it fails.
    async fn kubectl_ok(&self, kubeconfig: &Path, args: &[&str]) -> String {
        succeeded(args, self.kubectl(kubeconfig, args).await)
    }

    /// Applies `manifest` as `kubeconfig`'s user.
    async fn apply(&self, kubeconfig: &Path, manifest: &str) -> (bool, String, String) {
        let path = self
            .dir
            .path()
            .join(format!("manifest-{}.yaml", manifest.len()));
        std::fs::write(&path, manifest).expect("manifest");
        let file = path.display().to_string();
        self.kubectl(kubeconfig, &["apply", "-f", &file, "--validate=false"])
            .await
    }

    async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

/// Retries `check` until it holds, for at most [`PROPAGATION`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PROPAGATION;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} did not happen in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An object of kind `T` with only a name.
fn named<T: Resource + Default>(name: &str) -> T {
    let mut object = T::default();
    object.metadata_mut().name = name.into();
    object
}

async fn create_namespace(admin: &Client, name: &str) {
    admin
        .create(&named::<Namespace>(name))
        .await
        .expect("namespace created");
}

const JANE_READS_DEV: &str = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: pod-reader
  namespace: dev
rules:
- apiGroups: [\"\"]
  resources: [pods, pods/status]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: jane-reads-pods
  namespace: dev
subjects:
- kind: User
  name: jane
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: Role
  name: pod-reader
  apiGroup: rbac.authorization.k8s.io
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_binding_grants_its_namespace_and_nothing_else() {
    let cluster = Cluster::start().await;
    let admin = cluster.admin().await;
    create_namespace(&admin, "dev").await;
    create_namespace(&admin, "prod").await;
    let admin_config = cluster.kubeconfig("kubernetes-admin", &[MASTERS_GROUP]);
    let (ok, out, err) = cluster.apply(&admin_config, JANE_READS_DEV).await;
    assert!(ok, "apply: {out}{err}");
    assert!(
        cluster
            .kubectl_ok(&admin_config, &["get", "roles", "-n", "dev"])
            .await
            .contains("pod-reader")
    );
    let bindings = cluster
        .kubectl_ok(&admin_config, &["get", "rolebindings", "-n", "dev"])
        .await;
    assert!(bindings.contains("Role/pod-reader"), "{bindings}");

    let jane = cluster.kubeconfig("jane", &[]);
    eventually("jane's binding reaching the authoriser", || async {
        cluster
            .kubectl(&jane, &["get", "pods", "-n", "dev"])
            .await
            .0
    })
    .await;
    let (ok, _, err) = cluster.kubectl(&jane, &["get", "pods", "-n", "prod"]).await;
    assert!(!ok, "jane may not list pods in prod");
    assert!(
        err.contains(
            "User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"prod\""
        ),
        "{err}"
    );
    let (ok, _, err) = cluster
        .kubectl(
            &jane,
            &[
                "run",
                "web",
                "-n",
                "dev",
                "--image=busybox",
                "--",
                "sleep",
                "1",
            ],
        )
        .await;
    assert!(!ok, "the role does not grant create");
    assert!(err.contains("cannot create resource \"pods\""), "{err}");
    let (ok, _, err) = cluster.kubectl(&jane, &["get", "nodes"]).await;
    assert!(!ok && err.contains("at the cluster scope"), "{err}");

    // The same refusal over gRPC, as PermissionDenied.
    let jane_grpc = cluster.client("jane", &[]).await;
    let listed = jane_grpc
        .list::<Pod>(&ListOptions {
            namespace: "prod".into(),
            ..ListOptions::default()
        })
        .await;
    assert!(
        matches!(listed, Err(ClientError::Forbidden(_))),
        "{listed:?}"
    );
    // Deleting the binding takes the grant away.
    cluster
        .kubectl_ok(
            &admin_config,
            &["delete", "rolebinding", "jane-reads-pods", "-n", "dev"],
        )
        .await;
    eventually("the revoked binding reaching the authoriser", || async {
        !cluster
            .kubectl(&jane, &["get", "pods", "-n", "dev"])
            .await
            .0
    })
    .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_role_binding_grants_every_namespace() {
    let (cluster, _, admin_config) = Cluster::with_namespace("team-a").await;
    // kubectl's typed client sends this one as protobuf.
    cluster
        .kubectl_ok(
            &admin_config,
            &[
                "create",
                "clusterrolebinding",
                "ops-view",
                "--clusterrole=view",
                "--group=ops",
            ],
        )
        .await;
    let listed = cluster
        .kubectl_ok(&admin_config, &["get", "clusterrolebindings", "-o", "wide"])
        .await;
    assert!(
        listed.contains("ops-view") && listed.contains("ClusterRole/view"),
        "{listed}"
    );
    let sam = cluster.kubeconfig("sam", &["ops"]);
    eventually("the group's binding reaching the authoriser", || async {
        cluster
            .kubectl(&sam, &["get", "pods", "--all-namespaces"])
            .await
            .0
    })
    .await;
    cluster
        .kubectl_ok(&sam, &["get", "deployments", "-n", "team-a"])
        .await;
    cluster
        .kubectl_ok(&sam, &["get", "services", "-n", "default"])
        .await;
    let (ok, _, err) = cluster
        .kubectl(&sam, &["create", "namespace", "mine"])
        .await;
    assert!(
        !ok && err.contains("cannot create resource \"namespaces\""),
        "{err}"
    );
    // What the view role does not forbid, an admin's kubectl creates.
    cluster
        .kubectl_ok(&admin_config, &["create", "namespace", "mine"])
        .await;
    // Someone in no group with a binding gets nothing.
    let (ok, _, err) = cluster
        .kubectl(
            &cluster.kubeconfig("sam-alone", &[]),
            &["get", "pods", "-A"],
        )
        .await;
    assert!(!ok && err.contains("forbidden"), "{err}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_bindings_is_denied_everything_but_discovery() {
    let cluster = Cluster::start().await;
    let nobody = cluster.client("nobody", &[]).await;
    for result in [
        nobody.list::<Pod>(&ListOptions::default()).await.map(drop),
        nobody
            .list::<Namespace>(&ListOptions::default())
            .await
            .map(drop),
        nobody.get::<Namespace>("", "default").await.map(drop),
    ] {
        assert!(
            matches!(result, Err(ClientError::Forbidden(_))),
            "{result:?}"
        );
    }
    let created = nobody.create(&named::<Namespace>("x")).await;
    assert!(
        matches!(created, Err(ClientError::Forbidden(_))),
        "{created:?}"
    );
    let config = cluster.kubeconfig("nobody", &[]);
    let version = cluster
        .kubectl_ok(&config, &["api-resources", "--api-group=apps"])
        .await;
    assert!(
        version.contains("deployments"),
        "discovery is open: {version}"
    );
    let (ok, _, err) = cluster.kubectl(&config, &["get", "pods"]).await;
    assert!(!ok, "listing is not");
    assert!(
        err.contains("User \"nobody\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""),
        "{err}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_answers_yes_and_no() {
    let (cluster, _, admin_config) = Cluster::with_namespace("dev").await;
    // As the operations guide grants a role (kubectl sends both as protobuf).
    let role = [
        "create",
        "role",
        "pod-reader",
        "-n",
        "dev",
        "--verb=get,list,watch",
        "--resource=pods,pods/status",
    ];
    cluster.kubectl_ok(&admin_config, &role).await;
    let bind = [
        "create",
        "rolebinding",
        "jane-reads",
        "-n",
        "dev",
        "--role=pod-reader",
        "--user=jane",
    ];
    cluster.kubectl_ok(&admin_config, &bind).await;
    let jane = cluster.kubeconfig("jane", &[]);
    eventually("jane's binding reaching the authoriser", || async {
        cluster
            .kubectl(&jane, &["auth", "can-i", "list", "pods", "-n", "dev"])
            .await
            .1
            .trim()
            == "yes"
    })
    .await;
    let (ok, out, _) = cluster
        .kubectl(&jane, &["auth", "can-i", "create", "pods", "-n", "dev"])
        .await;
    assert!(!ok && out.trim() == "no", "{out}");
    let (ok, out, _) = cluster
        .kubectl(&jane, &["auth", "can-i", "get", "pods", "-n", "prod"])
        .await;
    assert!(!ok && out.trim() == "no", "{out}");
    let (ok, out, _) = cluster
        .kubectl(&jane, &["auth", "can-i", "get", "pods/status", "-n", "dev"])
        .await;
    assert!(ok && out.trim() == "yes", "{out}");
    let out = cluster
        .kubectl_ok(&admin_config, &["auth", "can-i", "delete", "nodes"])
        .await;
    assert_eq!(out.trim(), "yes");
    cluster.stop().await;
}

/// A ClusterRole, as JSON.
fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
           "metadata": {"name": name}, "rules": rules})
}

/// Binds `role` (`ClusterRole/view`, `Role/readers`) to `user` as
/// `client`: in `namespace` (a RoleBinding) or, with "", cluster-wide.
async fn bind(
    client: &Client,
    namespace: &str,
    name: &str,
    role: &str,
    user: &str,
) -> Result<Value, ClientError> {
    let (role_kind, role_name) = role.split_once('/').expect("Kind/name");
    let kind = if namespace.is_empty() {
        Kind::ClusterRoleBinding
    } else {
        Kind::RoleBinding
    };
    let mut binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind.name(),
        "metadata": {"name": name},
        "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
        "roleRef": {"kind": role_kind, "name": role_name, "apiGroup": "rbac.authorization.k8s.io"},
    });
    if !namespace.is_empty() {
        binding["metadata"]["namespace"] = json!(namespace);
    }
    client.create_json(kind, &binding).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_grants_what_they_do_not_hold() {
    let cluster = Cluster::start().await;
    let admin = cluster.admin().await;
    create_namespace(&admin, "dev").await;
    // lead administers dev (the default `admin` role, which includes
    // writing Roles and RoleBindings there).
    bind(&admin, "dev", "lead-admin", "ClusterRole/admin", "lead")
        .await
        .expect("binding");
    let lead = cluster.client("lead", &[]).await;
    let role = |name: &str, rules: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": name, "namespace": "dev"}, "rules": rules})
    };
    let readers = role(
        "readers",
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]),
    );
    eventually("lead's binding reaching the authoriser", || async {
        lead.create_json(Kind::Role, &readers).await.is_ok()
    })
    .await;
    // Nodes are not lead's to grant, nor is anything at the cluster scope.
    let node_admin = role(
        "node-admin",
        json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["*"]}]),
    );
    let escalated = lead.create_json(Kind::Role, &node_admin).await;
    assert!(
        matches!(&escalated, Err(ClientError::Forbidden(m)) if m.contains("not currently held")),
        "{escalated:?}"
    );
    forbidden(
        "lead binds cluster-admin in dev",
        bind(
            &lead,
            "dev",
            "me-admin",
            "ClusterRole/cluster-admin",
            "lead",
        )
        .await,
    );
    forbidden(
        "lead binds view cluster-wide",
        bind(&lead, "", "me-view", "ClusterRole/view", "lead").await,
    );
    // What lead holds, lead may hand on.
    bind(&lead, "dev", "jane-reads", "Role/readers", "jane")
        .await
        .expect("a binding within lead's own permissions");
    bind(&lead, "dev", "jane-views", "ClusterRole/view", "jane")
        .await
        .expect("view is within admin");
    // With `bind` on the role, the holder's own permissions no longer matter.
    let may_bind = cluster_role(
        "bind-cluster-admin",
        json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                "verbs": ["bind"], "resourceNames": ["cluster-admin"]}]),
    );
    admin
        .create_json(Kind::ClusterRole, &may_bind)
        .await
        .expect("role");
    bind(
        &admin,
        "dev",
        "lead-binds",
        "ClusterRole/bind-cluster-admin",
        "lead",
    )
    .await
    .expect("binding");
    eventually("the bind grant reaching the authoriser", || async {
        bind(
            &lead,
            "dev",
            "ops-admin",
            "ClusterRole/cluster-admin",
            "ops",
        )
        .await
        .is_ok()
    })
    .await;
    cluster.stop().await;
}

async fn register_node(client: &Client, name: &str) -> Result<Node, ClientError> {
    client.create(&named::<Node>(name)).await
}

fn lease(name: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: name.into(),
            namespace: NODE_LEASE_NAMESPACE.into(),
            ..ObjectMeta::default()
        },
        spec: LeaseSpec {
            holder_identity: Some(name.into()),
            lease_duration_seconds: Some(40),
            renew_time: Some(rudder_api::time::now_rfc3339()),
            ..LeaseSpec::default()
        },
        ..Lease::default()
    }
}

fn pod_on(name: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "9"]}]}})
}

fn forbidden<T: std::fmt::Debug>(what: &str, result: Result<T, ClientError>) {
    assert!(
        matches!(&result, Err(ClientError::Forbidden(_))),
        "{what}: {result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_touches_only_its_own_objects_and_pods() {
    let cluster = Cluster::start().await;
    let admin = cluster.admin().await;
    let a = cluster.client("system:node:a", &["system:nodes"]).await;
    let b = cluster.client("system:node:b", &["system:nodes"]).await;
    register_node(&a, "a").await.expect("a registers itself");
    forbidden("a registers b", register_node(&a, "b").await);
    let node_b = register_node(&b, "b").await.expect("b registers itself");
    let mut changed = node_b.clone();
    changed
        .metadata
        .labels
        .insert("taken".into(), "over".into());
    forbidden("a updates b's Node", a.update(&changed).await);
    let mut status = node_b.clone();
    status.status = Some(NodeStatus {
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "False".into(),
            ..Condition::default()
        }],
        ..NodeStatus::default()
    });
    forbidden("a updates b's Node status", a.update_status(&status).await);
    b.update_status(&status)
        .await
        .expect("b updates its own status");
    forbidden("a deletes b", a.delete::<Node>("", "b").await);
    // Its own Node, but neither its taints nor admins' labels.
    let mut own_node: Node = a.get("", "a").await.expect("a reads itself");
    own_node.metadata.labels.insert("zone".into(), "z1".into());
    let own_node = a.update(&own_node).await.expect("a labels itself");
    let mut tainted = own_node.clone();
    tainted.spec.taints.push(rudder_api::core::Taint {
        key: "mine".into(),
        effect: "NoSchedule".into(),
        ..rudder_api::core::Taint::default()
    });
    forbidden("a taints itself", a.update(&tainted).await);
    let mut claimed = own_node;
    claimed
        .metadata
        .labels
        .insert("node-restriction.kubernetes.io/tier".into(), "gold".into());
    forbidden("a claims an admin's label", a.update(&claimed).await);

    a.create(&lease("a")).await.expect("a's lease");
    forbidden("a creates b's lease", a.create(&lease("b")).await);
    let lease_b = b.create(&lease("b")).await.expect("b's lease");
    forbidden("a renews b's lease", a.update(&lease_b).await);
    let mut elsewhere = lease("a");
    elsewhere.metadata.namespace = "default".into();
    forbidden(
        "a's lease outside kube-node-lease",
        a.create(&elsewhere).await,
    );

    admin
        .create_json(Kind::Pod, &pod_on("on-a", "a"))
        .await
        .expect("pod on a");
    admin
        .create_json(Kind::Pod, &pod_on("on-b", "b"))
        .await
        .expect("pod on b");
    forbidden(
        "a creates a pod",
        a.create_json(Kind::Pod, &pod_on("mine", "a")).await,
    );
    let mut own: Pod = a.get("default", "on-a").await.expect("a reads its pod");
    forbidden("a reads b's pod", a.get::<Pod>("default", "on-b").await);
    forbidden(
        "a lists every pod",
        a.list::<Pod>(&ListOptions::default()).await,
    );
    own.status.get_or_insert_with(Default::default).phase = Some("Running".into());
    let reported = a
        .update_status(&own)
        .await
        .expect("a reports its pod's status");
    let mut respec = reported.clone();
    respec.spec.containers[0].command = vec!["sh".into(), "-c".into(), "evil".into()];
    forbidden("a changes its pod's spec", a.update(&respec).await);
    let mut other: Pod = admin.get("default", "on-b").await.expect("pod on b");
    other.status.get_or_insert_with(Default::default).phase = Some("Failed".into());
    forbidden("a reports b's pod", a.update_status(&other).await);
    forbidden(
        "a deletes b's pod",
        a.delete::<Pod>("default", "on-b").await,
    );
    a.delete::<Pod>("default", "on-a")
        .await
        .expect("a removes its own pod");

    // Reads an agent needs.
    a.list::<Node>(&ListOptions::default())
        .await
        .expect("nodes");
    a.list::<rudder_api::core::Service>(&ListOptions::default())
        .await
        .expect("services");
    forbidden(
        "a lists namespaces",
        a.list::<Namespace>(&ListOptions::default()).await,
    );
    // Its own node-sync stream, not another's.
    let mut own_sync = a.node_sync("a", 0).await.expect("a's stream");
    assert!(own_sync.next().await.expect("a snapshot").is_ok());
    let other_sync = match b.node_sync("a", 0).await {
        Ok(mut stream) => stream.next().await.expect("an answer").map(drop),
        Err(err) => Err(err),
    };
    forbidden("b follows a's stream", other_sync);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_and_scheduler_reconcile_under_their_own_identities() {
    let cluster = Cluster::start().await;
    let admin = cluster.admin().await;
    let controllers = cluster.client(CONTROLLER_MANAGER_USER, &[]).await;
    let scheduler = cluster.client(SCHEDULER_USER, &[]).await;
    // Neither is all-powerful.
    forbidden(
        "the scheduler deletes a namespace",
        scheduler.delete::<Namespace>("", "default").await,
    );
    forbidden(
        "the controllers write RBAC",
        controllers
            .create_json(Kind::ClusterRole, &cluster_role("mine", json!([])))
            .await,
    );
    let mut leader = LeaderConfig::controlplane("authz-test".into());
    leader.lease_duration = Duration::from_secs(3);
    let manager = ControllerManager::start_with(
        ControllerClients {
            controllers,
            scheduler,
        },
        ControllerConfig {
            leader: Some(leader),
            ..ControllerConfig::default()
        },
    );
    // A node that can take pods (registered by the admin, with a lease).
    let node = register_node(&admin, "n1").await.expect("node");
    let mut ready = node;
    ready.status = Some(NodeStatus {
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Condition::default()
        }],
        allocatable: [("cpu", "4"), ("memory", "8Gi"), ("pods", "110")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ..NodeStatus::default()
    });
    admin.update_status(&ready).await.expect("node ready");
    admin.create(&lease("n1")).await.expect("node lease");
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "busybox", "command": ["sleep", "99"]}]}}}
    });
    admin
        .create_json(Kind::Deployment, &deployment)
        .await
        .expect("deployment");
    eventually("two pods of the deployment bound to n1", || async {
        admin
            .list::<Pod>(&ListOptions::default())
            .await
            .is_ok_and(|pods| {
                pods.items
                    .iter()
                    .filter(|p| p.spec.node_name.as_deref() == Some("n1"))
                    .count()
                    == 2
            })
    })
    .await;
    manager.stop();
    cluster.stop().await;
}
