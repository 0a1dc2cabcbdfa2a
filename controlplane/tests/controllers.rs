//! Controllers and scheduler against an in-process control plane on
//! 127.0.0.1 with ephemeral ports. Nodes are Node objects; a fake kubelet
//! in the test reports bound pods running and ready, as an agent would.
//! Waits are bounded; nothing asserts how long anything took.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rudder_api::{
    Kind,
    apps::{
        Deployment, DeploymentSpec, DeploymentStrategy, PodTemplateSpec, ReplicaSet, RollingUpdate,
    },
    coordination::{Lease, LeaseSpec},
    core::{
        Affinity, Container, ContainerPort, Endpoints, EnvVar, Event, IntOrString, Namespace, Node,
        NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, NodeStatus, Pod,
        PodStatus, PreferredSchedulingTerm, Service, ServicePort, ServiceSpec, Taint, Toleration,
    },
    events::EventType,
    facts::{Conditions, NodeExt, PodExt},
    meta::{Condition, DeleteOptions, LabelSelector, ObjectMeta, PropagationPolicy},
    names::NODE_LEASE_NAMESPACE,
};
use rudder_client::{Client, ClientError, EventRecorder, ListOptions, WatchEvent};
use rudder_controlplane::{
    controllers::event_ttl::EventExpiry,
    leader::LeaderConfig,
    manager::{ControllerConfig, ControllerManager},
    server::{self, RunningServer, Security, ServerConfig},
};

const LIMIT: Duration = Duration::from_secs(60);

struct Cluster {
    running: Option<RunningServer>,
    client: Client,
    manager: Option<ControllerManager>,
    kubelet: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(config: ControllerConfig) -> Self {
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
        let client = Client::connect(&running.grpc_addr.to_string())
            .await
            .expect("client connects");
        let mut leader = LeaderConfig::controlplane("test-replica".into());
        leader.lease_duration = Duration::from_secs(3);
        let manager = ControllerManager::start(
            client.clone(),
            ControllerConfig {
                leader: Some(leader),
                ..config
            },
        );
        let kubelet = tokio::spawn(fake_kubelet(client.clone()));
        Self {
            running: Some(running),
            client,
            manager: Some(manager),
            kubelet,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        self.kubelet.abort();
        if let Some(manager) = self.manager.take() {
            manager.stop();
        }
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

/// Reports every bound pod running and ready (unless labelled
/// `ready: "no"`), with an address, as an agent would.
async fn fake_kubelet(client: Client) {
    let mut next_ip = 2u32;
    let mut ips: HashMap<String, String> = HashMap::new();
    loop {
        if let Ok(pods) = client.list::<Pod>(&ListOptions::default()).await {
            for mut pod in pods.items {
                let Some(node) = pod.spec.node_name.clone() else {
                    continue;
                };
                if pod.metadata.deletion_timestamp.is_some() {
                    // A deleted pod is stopped at once, then removed, as
                    // an agent does after the grace period; a pod
                    // labelled `kubelet: lost` is on a node that never
                    // answers, so it stays terminating.
                    if pod.metadata.labels.get("kubelet").map(String::as_str) != Some("lost") {
                        let options = DeleteOptions {
                            grace_period_seconds: Some(0),
                            uid: pod.metadata.uid.clone(),
                            ..DeleteOptions::default()
                        };
                        let _ = client
                            .delete_with(
                                Kind::Pod,
                                &pod.metadata.namespace,
                                &pod.metadata.name,
                                &options,
                            )
                            .await;
                    }
                    continue;
                }
                if pod.metadata.labels.get("ready").map(String::as_str) == Some("no") {
                    continue;
                }
                let status = pod.status.get_or_insert_with(PodStatus::default);
                let already = status.pod_ip.is_some()
                    || status
                        .conditions
                        .iter()
                        .any(|c| c.reason.as_deref() == Some("NodeNotReady"));
                if already {
                    continue;
                }
                let ip = ips
                    .entry(pod.metadata.uid.clone())
                    .or_insert_with(|| {
                        next_ip += 1;
                        format!("10.244.{}.{}", next_ip / 250, next_ip % 250)
                    })
                    .clone();
                status.phase = Some("Running".into());
                status.pod_ip = Some(ip);
                status.host_ip = Some(format!("192.0.2.{}", node.len()));
                status.conditions.retain(|c| c.type_ != "Ready");
                status.conditions.push(Condition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(rudder_api::time::now_rfc3339()),
                    ..Condition::default()
                });
                let _ = client.update_status(&pod).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + LIMIT;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting until {what}");
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: name.into(),
        namespace: namespace.into(),
        ..ObjectMeta::default()
    }
}

async fn add_node(
    client: &Client,
    name: &str,
    labels: &[(&str, &str)],
    taints: Vec<Taint>,
    unschedulable: bool,
) {
    let mut node = Node {
        metadata: meta(name, ""),
        ..Node::default()
    };
    node.metadata.labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    node.spec.taints = taints;
    node.spec.unschedulable = Some(unschedulable);
    let mut created = client.create(&node).await.expect("node created");
    let resources: BTreeMap<String, String> = [
        ("cpu".to_owned(), "4".to_owned()),
        ("memory".to_owned(), "8Gi".to_owned()),
        ("pods".to_owned(), "110".to_owned()),
    ]
    .into();
    created.status = Some(NodeStatus {
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("AgentReady".into()),
            ..Condition::default()
        }],
        capacity: resources.clone(),
        allocatable: resources,
        ..NodeStatus::default()
    });
    client.update_status(&created).await.expect("node status");
}

fn template(labels: &[(&str, &str)], version: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: ObjectMeta {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..ObjectMeta::default()
        },
        spec: rudder_api::core::PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: Some("rudder-testapp".into()),
                command: vec!["rudder-testapp".into()],
                env: vec![EnvVar {
                    name: "VERSION".into(),
                    value: Some(version.into()),
                    ..EnvVar::default()
                }],
                ports: vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080,
                    ..ContainerPort::default()
                }],
                ..Container::default()
            }],
            ..rudder_api::core::PodSpec::default()
        },
    }
}

fn deployment(name: &str, replicas: i64, surge: i64, unavailable: i64) -> Deployment {
    Deployment {
        metadata: meta(name, "default"),
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: [("app".to_owned(), name.to_owned())].into(),
                ..LabelSelector::default()
            },
            template: template(&[("app", name)], "1"),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdate {
                    max_surge: Some(IntOrString::Int(surge)),
                    max_unavailable: Some(IntOrString::Int(unavailable)),
                }),
            }),
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

async fn pods_of(client: &Client, app: &str) -> Vec<Pod> {
    client
        .list::<Pod>(&ListOptions {
            namespace: "default".into(),
            label_selector: format!("app={app}"),
            ..ListOptions::default()
        })
        .await
        .expect("list pods")
        .items
}

async fn rolled_out(client: &Client, name: &str, replicas: i64) -> bool {
    let Ok(d) = client.get::<Deployment>("default", name).await else {
        return false;
    };
    let Some(status) = d.status else { return false };
    status.observed_generation == Some(d.metadata.generation)
        && status.replicas == Some(replicas)
        && status.updated_replicas == Some(replicas)
        && status.available_replicas == Some(replicas)
        && pods_of(client, name)
            .await
            .iter()
            .filter(|p| p.is_ready())
            .count()
            == usize::try_from(replicas).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_scales_up_and_down_and_heals() {
    let cluster = Cluster::start(ControllerConfig::default()).await;
    let client = cluster.client.clone();
    add_node(&client, "node1", &[], vec![], false).await;
    add_node(&client, "node2", &[], vec![], false).await;
    let created = client
        .create(&deployment("web", 3, 1, 0))
        .await
        .expect("created");
    eventually("3 replicas are ready", || rolled_out(&client, "web", 3)).await;

    // Pods are spread over both nodes, and owned by the Deployment's set.
    let pods = pods_of(&client, "web").await;
    let nodes: BTreeSet<_> = pods
        .iter()
        .filter_map(|p| p.spec.node_name.clone())
        .collect();
    assert_eq!(nodes.len(), 2, "spread over both nodes: {nodes:?}");
    let sets = client
        .list::<ReplicaSet>(&ListOptions::default())
        .await
        .expect("sets")
        .items;
    assert_eq!(sets.len(), 1);
    assert_eq!(
        sets[0].metadata.owner_references[0].uid,
        created.metadata.uid
    );
    assert_eq!(
        sets[0]
            .metadata
            .annotations
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );

    let mut scaled = client
        .get::<Deployment>("default", "web")
        .await
        .expect("get");
    scaled.spec.replicas = Some(6);
    client.update(&scaled).await.expect("scale up");
    eventually("6 replicas are ready", || rolled_out(&client, "web", 6)).await;

    let mut scaled = client
        .get::<Deployment>("default", "web")
        .await
        .expect("get");
    scaled.spec.replicas = Some(2);
    client.update(&scaled).await.expect("scale down");
    eventually("2 replicas remain", || async {
        rolled_out(&client, "web", 2).await && pods_of(&client, "web").await.len() == 2
    })
    .await;

    // A deleted pod is replaced.
    let victim = pods_of(&client, "web").await.remove(0);
    client
        .delete::<Pod>("default", &victim.metadata.name)
        .await
        .expect("delete pod");
    eventually("the deleted pod is replaced", || async {
        let pods = pods_of(&client, "web").await;
        pods.len() == 2
            && pods.iter().all(|p| p.metadata.name != victim.metadata.name)
            && pods.iter().all(|p| p.is_ready())
    })
    .await;

    // Deleting the Deployment takes its ReplicaSet and pods with it.
    client
        .delete::<Deployment>("default", "web")
        .await
        .expect("delete");
    eventually("the set and pods are collected", || async {
        pods_of(&client, "web").await.is_empty()
            && client
                .list::<ReplicaSet>(&ListOptions::default())
                .await
                .is_ok_and(|l| l.items.is_empty())
    })
    .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_never_exceeds_surge_or_unavailable() {
    let cluster = Cluster::start(ControllerConfig::default()).await;
    let client = cluster.client.clone();
    add_node(&client, "node1", &[], vec![], false).await;
    add_node(&client, "node2", &[], vec![], false).await;
    let (replicas, surge, unavailable) = (5, 2, 1);
    client
        .create(&deployment("roll", replicas, surge, unavailable))
        .await
        .expect("created");
    eventually("version 1 is rolled out", || {
        rolled_out(&client, "roll", replicas)
    })
    .await;

    // Observe every pod change from here on.
    let options = ListOptions {
        namespace: "default".into(),
        label_selector: "app=roll".into(),
        ..ListOptions::default()
    };
    let list = client.list::<Pod>(&options).await.expect("list");
    let mut pods: HashMap<String, Pod> = list
        .items
        .into_iter()
        .map(|p| (p.metadata.name.clone(), p))
        .collect();
    let mut watch = client
        .watch::<Pod>(&options, &list.resource_version)
        .await
        .expect("watch");
    let done = Arc::new(AtomicBool::new(false));
    let observer_done = done.clone();
    let observer = tokio::spawn(async move {
        let (mut most, mut fewest_ready, mut events) = (pods.len(), pods.len(), 0usize);
        while !observer_done.load(Ordering::Relaxed) {
            let Ok(Some(event)) =
                tokio::time::timeout(Duration::from_millis(200), watch.next()).await
            else {
                continue;
            };
            match event.expect("watch event") {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                    pods.insert(p.metadata.name.clone(), p);
                }
                WatchEvent::Deleted(p) => {
                    pods.remove(&p.metadata.name);
                }
                WatchEvent::Bookmark { .. } => continue,
            }
            events += 1;
            // As in Kubernetes, a terminating pod no longer counts against
            // maxSurge: its replacement may start while it drains.
            most = most.max(pods.values().filter(|p| p.is_active()).count());
            fewest_ready = fewest_ready.min(pods.values().filter(|p| p.is_ready()).count());
        }
        (most, fewest_ready, events)
    });

    let mut next = client
        .get::<Deployment>("default", "roll")
        .await
        .expect("get");
    next.spec.template = template(&[("app", "roll")], "2");
    client.update(&next).await.expect("new template");
    eventually("version 2 is rolled out", || async {
        rolled_out(&client, "roll", replicas).await
            && pods_of(&client, "roll")
                .await
                .iter()
                .all(|p| p.spec.containers[0].env[0].value.as_deref() == Some("2"))
            && pods_of(&client, "roll").await.len() == 5
    })
    .await;
    done.store(true, Ordering::Relaxed);
    let (most, fewest_ready, events) = observer.await.expect("observer");
    assert!(events >= 10, "the watch saw the rollout ({events} events)");
    let most = i64::try_from(most).expect("count");
    let fewest_ready = i64::try_from(fewest_ready).expect("count");
    assert!(
        most <= replicas + surge,
        "{most} pods at once, more than {replicas}+{surge}"
    );
    assert!(
        fewest_ready >= replicas - unavailable,
        "only {fewest_ready} ready pods at one point, fewer than {replicas}-{unavailable}"
    );
    let d = client
        .get::<Deployment>("default", "roll")
        .await
        .expect("get");
    assert_eq!(
        d.metadata
            .annotations
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("2")
    );
    let conditions = d.status.expect("status").conditions;
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    );
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Progressing"
                && c.reason.as_deref() == Some("NewReplicaSetAvailable"))
    );
    // The old set is kept, scaled to zero, as revision history.
    let sets = client
        .list::<ReplicaSet>(&ListOptions::default())
        .await
        .expect("sets")
        .items;
    assert_eq!(sets.len(), 2);
    assert!(sets.iter().any(|s| s.spec.replicas == Some(0)));
    cluster.stop().await;
}

fn service(name: &str, app: &str) -> Service {
    Service {
        metadata: meta(name, "default"),
        spec: ServiceSpec {
            selector: [("app".to_owned(), app.to_owned())].into(),
            ports: vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                ..ServicePort::default()
            }],
            ..ServiceSpec::default()
        },
        ..Service::default()
    }
}

fn addresses(endpoints: &Endpoints) -> (Vec<String>, Vec<String>, Vec<i64>) {
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    let mut ports = Vec::new();
    for subset in &endpoints.subsets {
        ready.extend(subset.addresses.iter().map(|a| a.ip.clone()));
        not_ready.extend(subset.not_ready_addresses.iter().map(|a| a.ip.clone()));
        ports.extend(subset.ports.iter().map(|p| p.port));
    }
    ready.sort();
    not_ready.sort();
    (ready, not_ready, ports)
}

async fn set_pod_status(client: &Client, name: &str, ip: &str, ready: bool) {
    let mut pod = client.get::<Pod>("default", name).await.expect("pod");
    pod.status = Some(PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some(ip.into()),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Condition::default()
        }],
        ..PodStatus::default()
    });
    client.update_status(&pod).await.expect("status written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_readiness() {
    let cluster = Cluster::start(ControllerConfig::default()).await;
    let client = cluster.client.clone();
    client.create(&service("ep", "ep")).await.expect("service");
    for name in ["ep-a", "ep-b"] {
        let mut pod = Pod {
            metadata: meta(name, "default"),
            spec: template(&[], "1").spec,
            ..Pod::default()
        };
        // Bound already, and kept away from the fake kubelet: this test
        // writes the status itself.
        pod.metadata.labels = [
            ("app".to_owned(), "ep".to_owned()),
            ("ready".to_owned(), "no".to_owned()),
        ]
        .into();
        pod.spec.node_name = Some("node1".into());
        client.create(&pod).await.expect("pod");
    }
    set_pod_status(&client, "ep-a", "10.244.1.10", true).await;
    set_pod_status(&client, "ep-b", "10.244.1.11", false).await;
    let endpoints_are = |ready: Vec<&'static str>, not_ready: Vec<&'static str>| {
        let client = client.clone();
        move || {
            let client = client.clone();
            let (ready, not_ready) = (ready.clone(), not_ready.clone());
            async move {
                client
                    .get::<Endpoints>("default", "ep")
                    .await
                    .is_ok_and(|e| {
                        let (r, n, ports) = addresses(&e);
                        r == ready
                            && n == not_ready
                            && ports.iter().all(|p| *p == 8080)
                            && e.subsets
                                .iter()
                                .flat_map(|s| &s.addresses)
                                .all(|a| a.node_name.as_deref() == Some("node1"))
                    })
            }
        }
    };
    eventually(
        "a ready, b not ready",
        endpoints_are(vec!["10.244.1.10"], vec!["10.244.1.11"]),
    )
    .await;
    set_pod_status(&client, "ep-b", "10.244.1.11", true).await;
    eventually(
        "both ready",
        endpoints_are(vec!["10.244.1.10", "10.244.1.11"], vec![]),
    )
    .await;
    set_pod_status(&client, "ep-a", "10.244.1.10", false).await;
    eventually(
        "a not ready",
        endpoints_are(vec!["10.244.1.11"], vec!["10.244.1.10"]),
    )
    .await;
    client
        .delete::<Pod>("default", "ep-b")
        .await
        .expect("delete");
    eventually("b removed", endpoints_are(vec![], vec!["10.244.1.10"])).await;
    client
        .delete::<Service>("default", "ep")
        .await
        .expect("delete service");
    eventually("the endpoints go with the service", || async {
        matches!(
            client.get::<Endpoints>("default", "ep").await,
            Err(ClientError::NotFound(_))
        )
    })
    .await;
    cluster.stop().await;
}

async fn renew(client: &Client, node: &str) {
    let now = rudder_api::time::now_rfc3339();
    match client.get::<Lease>(NODE_LEASE_NAMESPACE, node).await {
        Ok(mut lease) => {
            lease.spec.renew_time = Some(now);
            let _ = client.update(&lease).await;
        }
        Err(_) => {
            let lease = Lease {
                metadata: meta(node, NODE_LEASE_NAMESPACE),
                spec: LeaseSpec {
                    holder_identity: Some(node.into()),
                    lease_duration_seconds: Some(2),
                    renew_time: Some(now),
                    ..LeaseSpec::default()
                },
                ..Lease::default()
            };
            let _ = client.create(&lease).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_ready_nodes_pods_are_replaced_on_another_node() {
    let cluster = Cluster::start(ControllerConfig {
        node_grace_period: Duration::from_secs(3),
        pod_eviction_timeout: Duration::from_secs(2),
        ..ControllerConfig::default()
    })
    .await;
    let client = cluster.client.clone();
    add_node(&client, "alive", &[], vec![], true).await;
    add_node(&client, "doomed", &[], vec![], false).await;
    // Both nodes heartbeat (timestamps have second precision, so the
    // heartbeat changes at least every second).
    let doomed_beats = Arc::new(AtomicBool::new(true));
    let beats = doomed_beats.clone();
    let heart = client.clone();
    let heartbeat = tokio::spawn(async move {
        loop {
            renew(&heart, "alive").await;
            if beats.load(Ordering::Relaxed) {
                renew(&heart, "doomed").await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    client
        .create(&service("moving", "moving"))
        .await
        .expect("service");
    client
        .create(&deployment("moving", 2, 1, 0))
        .await
        .expect("deployment");
    eventually("both pods run on the only schedulable node", || async {
        rolled_out(&client, "moving", 2).await
            && pods_of(&client, "moving")
                .await
                .iter()
                .all(|p| p.spec.node_name.as_deref() == Some("doomed"))
    })
    .await;
    let mut alive = client.get::<Node>("", "alive").await.expect("node");
    alive.spec.unschedulable = Some(false);
    client.update(&alive).await.expect("uncordon");

    doomed_beats.store(false, Ordering::Relaxed);
    eventually("the silent node is NotReady and tainted", || async {
        client.get::<Node>("", "doomed").await.is_ok_and(|n| {
            n.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "Unknown")
            }) && n
                .spec
                .taints
                .iter()
                .any(|t| t.key == "node.kubernetes.io/unreachable")
        })
    })
    .await;
    eventually(
        "the pods run on the other node and back the service",
        || async {
            let pods = pods_of(&client, "moving").await;
            let endpoints = client.get::<Endpoints>("default", "moving").await;
            pods.len() == 2
                && pods
                    .iter()
                    .all(|p| p.spec.node_name.as_deref() == Some("alive") && p.is_ready())
                && endpoints.is_ok_and(|e| {
                    let all: Vec<_> = e
                        .subsets
                        .iter()
                        .flat_map(|s| s.addresses.iter().chain(&s.not_ready_addresses))
                        .collect();
                    all.len() == 2 && all.iter().all(|a| a.node_name.as_deref() == Some("alive"))
                })
        },
    )
    .await;
    heartbeat.abort();
    cluster.stop().await;
}

/// A restarted agent reports Ready (reason `AgentReady`) before the node
/// lifecycle controller sees its lease renewed: the node must still lose
/// its unreachable taint, get a NodeReady event and take new pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_agent_reports_ready_again_loses_its_unreachable_taint() {
    let cluster = Cluster::start(ControllerConfig {
        node_grace_period: Duration::from_secs(3),
        ..ControllerConfig::default()
    })
    .await;
    let client = cluster.client.clone();
    add_node(&client, "flaky", &[], vec![], false).await;
    let beating = Arc::new(AtomicBool::new(true));
    let beats = beating.clone();
    let heart = client.clone();
    let heartbeat = tokio::spawn(async move {
        loop {
            if beats.load(Ordering::Relaxed) {
                renew(&heart, "flaky").await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let unreachable = |node: &Node| {
        node.spec
            .taints
            .iter()
            .any(|t| t.key == "node.kubernetes.io/unreachable")
    };
    eventually("the node heartbeats and is Ready", || async {
        client
            .get::<Node>("", "flaky")
            .await
            .is_ok_and(|n| n.is_ready() && !unreachable(&n))
    })
    .await;

    beating.store(false, Ordering::Relaxed);
    eventually("the silent node is NotReady and tainted", || async {
        client.get::<Node>("", "flaky").await.is_ok_and(|n| {
            n.condition("Ready").is_some_and(|c| c.status == "Unknown") && unreachable(&n)
        })
    })
    .await;

    // The agent comes back: it reports Ready with its own reason first,
    // then renews its lease.
    let mut node = client.get::<Node>("", "flaky").await.expect("node");
    node.status
        .get_or_insert_with(Default::default)
        .conditions
        .set_condition(
            "Ready",
            "True",
            "AgentReady",
            "rudder-agent is ready".to_owned(),
        );
    client.update_status(&node).await.expect("agent status");
    beating.store(true, Ordering::Relaxed);
    eventually("the recovered node is Ready and untainted", || async {
        client
            .get::<Node>("", "flaky")
            .await
            .is_ok_and(|n| n.is_ready() && n.spec.taints.is_empty())
    })
    .await;
    eventually("a NodeReady event is recorded", || async {
        has_event(
            &events_about(&client, "Node", "flaky").await,
            "Normal",
            "NodeReady",
            "NodeReady",
        )
    })
    .await;
    client
        .create(&Pod {
            metadata: meta("after-recovery", "default"),
            spec: template(&[], "1").spec,
            ..Pod::default()
        })
        .await
        .expect("pod");
    eventually("a new pod is scheduled onto the recovered node", || async {
        bound_to(&client, "after-recovery").await.as_deref() == Some("flaky")
    })
    .await;
    heartbeat.abort();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_and_node_selectors_are_respected() {
    let cluster = Cluster::start(ControllerConfig::default()).await;
    let client = cluster.client.clone();
    let db_taint = Taint {
        key: "dedicated".into(),
        value: Some("db".into()),
        effect: "NoSchedule".into(),
        ..Taint::default()
    };
    add_node(
        &client,
        "db",
        &[("role", "db")],
        vec![db_taint.clone()],
        false,
    )
    .await;
    add_node(&client, "web", &[("role", "web")], vec![], false).await;
    let pod = |name: &str, selector: Option<&str>, tolerate: bool| {
        let mut pod = Pod {
            metadata: meta(name, "default"),
            spec: template(&[], "1").spec,
            ..Pod::default()
        };
        pod.metadata.labels = [("app".to_owned(), "placement".to_owned())].into();
        if let Some(role) = selector {
            pod.spec.node_selector = [("role".to_owned(), role.to_owned())].into();
        }
        if tolerate {
            pod.spec.tolerations = vec![Toleration {
                key: Some("dedicated".into()),
                value: Some("db".into()),
                effect: Some("NoSchedule".into()),
                ..Toleration::default()
            }];
        }
        pod
    };
    for i in 0..4 {
        client
            .create(&pod(&format!("free-{i}"), None, false))
            .await
            .expect("pod");
    }
    client
        .create(&pod("db-tolerating", Some("db"), true))
        .await
        .expect("pod");
    client
        .create(&pod("db-intolerant", Some("db"), false))
        .await
        .expect("pod");
    client
        .create(&pod("nowhere", Some("gpu"), true))
        .await
        .expect("pod");
    let node_of = |name: &'static str| {
        let client = client.clone();
        async move {
            client
                .get::<Pod>("default", name)
                .await
                .ok()
                .and_then(|p| p.spec.node_name)
        }
    };
    eventually("placeable pods are bound", || async {
        let pods = pods_of(&client, "placement").await;
        pods.iter().filter(|p| p.spec.node_name.is_some()).count() == 5
    })
    .await;
    for pod in pods_of(&client, "placement").await {
        if pod.metadata.name.starts_with("free-") {
            assert_eq!(
                pod.spec.node_name.as_deref(),
                Some("web"),
                "untolerated taint avoided"
            );
        }
    }
    assert_eq!(node_of("db-tolerating").await.as_deref(), Some("db"));
    let reason = |name: &'static str| {
        let client = client.clone();
        async move {
            client.get::<Pod>("default", name).await.ok().and_then(|p| {
                p.status?
                    .conditions
                    .into_iter()
                    .find(|c| {
                        c.type_ == "PodScheduled"
                            && c.status == "False"
                            && c.reason.as_deref() == Some("Unschedulable")
                    })
                    .and_then(|c| c.message)
            })
        }
    };
    eventually("the intolerant pod says why it waits", || async {
        reason("db-intolerant").await.is_some_and(|m| {
            m.starts_with("0/2 nodes are available")
                && m.contains("1 node(s) had untolerated taint {dedicated=db: NoSchedule}")
                && m.contains("1 node(s) didn't match Pod's node affinity/selector")
        })
    })
    .await;
    eventually("the pod without matching nodes says why", || async {
        reason("nowhere")
            .await
            .is_some_and(|m| m.contains("2 node(s) didn't match Pod's node affinity/selector"))
    })
    .await;
    assert_eq!(node_of("db-intolerant").await, None);

    // Lifting the taint lets the waiting pod in: node changes retry it.
    let mut db = client.get::<Node>("", "db").await.expect("node");
    db.spec.taints.clear();
    client.update(&db).await.expect("untaint");
    eventually(
        "the waiting pod is bound once the taint is gone",
        || async { node_of("db-intolerant").await.as_deref() == Some("db") },
    )
    .await;
    assert_eq!(node_of("nowhere").await, None);
    cluster.stop().await;
}

/// The node a pod of the default namespace is bound to, if any.
async fn bound_to(client: &Client, pod: &str) -> Option<String> {
    client
        .get::<Pod>("default", pod)
        .await
        .ok()
        .and_then(|p| p.spec.node_name)
}

fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.into(),
        operator: operator.into(),
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

fn expressions(requirements: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: requirements,
        match_fields: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_and_preferred_node_affinity_are_respected() {
    let cluster = Cluster::start(ControllerConfig::default()).await;
    let client = cluster.client.clone();
    let nodes: [(&str, &[(&str, &str)]); 3] = [
        ("a1", &[("zone", "a"), ("disk", "ssd"), ("cores", "4")]),
        ("a2", &[("zone", "a"), ("disk", "hdd"), ("cores", "8")]),
        ("b1", &[("zone", "b"), ("disk", "ssd"), ("cores", "16")]),
    ];
    for (name, labels) in nodes {
        add_node(&client, name, labels, vec![], false).await;
    }
    let pod = |name: &str, affinity: NodeAffinity| {
        let mut pod = Pod {
            metadata: meta(name, "default"),
            spec: template(&[], "1").spec,
            ..Pod::default()
        };
        pod.metadata.labels = [("app".to_owned(), "affinity".to_owned())].into();
        pod.spec.affinity = Some(Affinity {
            node_affinity: Some(affinity),
            ..Affinity::default()
        });
        pod
    };
    let required = |terms: Vec<NodeSelectorTerm>| NodeAffinity {
        required_during_scheduling_ignored_during_execution: Some(NodeSelector {
            node_selector_terms: terms,
        }),
        ..NodeAffinity::default()
    };
    // Zone a, and among its nodes rather the one with an SSD: the
    // preference outweighs the emptier node for every one of them.
    for i in 0..3 {
        let mut affinity = required(vec![expressions(vec![requirement("zone", "In", &["a"])])]);
        affinity.preferred_during_scheduling_ignored_during_execution =
            vec![PreferredSchedulingTerm {
                weight: 100,
                preference: expressions(vec![requirement("disk", "In", &["ssd"])]),
            }];
        client
            .create(&pod(&format!("zone-a-ssd-{i}"), affinity))
            .await
            .expect("pod");
    }
    // Terms are ORed; Gt compares integers.
    let big_or_named = required(vec![
        expressions(vec![
            requirement("zone", "In", &["a"]),
            requirement("cores", "Gt", &["4"]),
        ]),
        NodeSelectorTerm {
            match_expressions: Vec::new(),
            match_fields: vec![requirement("metadata.name", "In", &["nowhere"])],
        },
    ]);
    client
        .create(&pod("big-in-a", big_or_named))
        .await
        .expect("pod");
    let by_name = NodeSelectorTerm {
        match_expressions: Vec::new(),
        match_fields: vec![requirement("metadata.name", "In", &["b1"])],
    };
    client
        .create(&pod("named-b1", required(vec![by_name])))
        .await
        .expect("pod");
    client
        .create(&pod(
            "needs-gpu",
            required(vec![expressions(vec![requirement("gpu", "Exists", &[])])]),
        ))
        .await
        .expect("pod");

    eventually("placeable pods are bound", || async {
        let pods = pods_of(&client, "affinity").await;
        pods.iter().filter(|p| p.spec.node_name.is_some()).count() == 5
    })
    .await;
    let placed: BTreeMap<String, Option<String>> = pods_of(&client, "affinity")
        .await
        .into_iter()
        .map(|p| (p.metadata.name, p.spec.node_name))
        .collect();
    for i in 0..3 {
        assert_eq!(
            placed[&format!("zone-a-ssd-{i}")].as_deref(),
            Some("a1"),
            "{placed:?}"
        );
    }
    assert_eq!(placed["big-in-a"].as_deref(), Some("a2"), "{placed:?}");
    assert_eq!(placed["named-b1"].as_deref(), Some("b1"), "{placed:?}");
    assert_eq!(placed["needs-gpu"], None, "{placed:?}");

    eventually("the pod no node suits says why", || async {
        client
            .get::<Pod>("default", "needs-gpu")
            .await
            .ok()
            .and_then(|p| {
                p.status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == "PodScheduled" && c.status == "False")?
                    .message
            })
            .is_some_and(|m| {
                m == "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
            })
    })
    .await;
    // A node gaining the label is a node change: the waiting pod is retried.
    let mut b1 = client.get::<Node>("", "b1").await.expect("node");
    b1.metadata.labels.insert("gpu".into(), "true".into());
    client.update(&b1).await.expect("label");
    eventually(
        "the waiting pod lands on the node that now has a GPU",
        || async { bound_to(&client, "needs-gpu").await.as_deref() == Some("b1") },
    )
    .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_no_schedule_taints_are_avoided_while_other_nodes_fit() {
    let cluster = Cluster::start(ControllerConfig::default()).await;
    let client = cluster.client.clone();
    let spot = Taint {
        key: "spot".into(),
        value: None,
        effect: "PreferNoSchedule".into(),
        ..Taint::default()
    };
    // The untainted node first: a scheduler that has not seen the tainted
    // one yet still places the plain pods right.
    add_node(&client, "regular", &[], vec![], false).await;
    add_node(&client, "spot", &[], vec![spot], false).await;
    let pod = |name: &str, tolerate: bool| {
        let mut pod = Pod {
            metadata: meta(name, "default"),
            spec: template(&[], "1").spec,
            ..Pod::default()
        };
        pod.metadata.labels = [("app".to_owned(), "soft".to_owned())].into();
        if tolerate {
            pod.spec.tolerations = vec![Toleration {
                key: Some("spot".into()),
                operator: Some("Exists".into()),
                ..Toleration::default()
            }];
        }
        pod
    };
    for i in 0..3 {
        client
            .create(&pod(&format!("plain-{i}"), false))
            .await
            .expect("pod");
    }
    eventually("the plain pods are bound", || async {
        pods_of(&client, "soft")
            .await
            .iter()
            .filter(|p| p.spec.node_name.is_some())
            .count()
            == 3
    })
    .await;
    for pod in pods_of(&client, "soft").await {
        assert_eq!(
            pod.spec.node_name.as_deref(),
            Some("regular"),
            "{} avoids the soft taint while the other node fits",
            pod.metadata.name
        );
    }
    // A pod that tolerates it goes where there is most room.
    client.create(&pod("tolerant", true)).await.expect("pod");
    eventually(
        "the tolerant pod lands on the emptier, tainted node",
        || async { bound_to(&client, "tolerant").await.as_deref() == Some("spot") },
    )
    .await;
    cluster.stop().await;
}

/// Taint-based eviction: a NoExecute taint evicts the pods that do not
/// tolerate it at once, those that tolerate it for `tolerationSeconds` once
/// that has passed, and leaves those that tolerate it without a limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_execute_taints_evict_pods_as_their_tolerations_say() {
    let cluster = Cluster::start(ControllerConfig {
        // No lease is renewed here: keep the lifecycle controller from
        // calling the node unreachable during the test.
        node_grace_period: Duration::from_secs(600),
        ..ControllerConfig::default()
    })
    .await;
    let client = cluster.client.clone();
    add_node(&client, "gpu", &[], vec![], false).await;
    let pod = |name: &str, toleration_seconds: Option<Option<i64>>| {
        let mut pod = Pod {
            metadata: meta(name, "default"),
            spec: template(&[], "1").spec,
            ..Pod::default()
        };
        pod.metadata.labels = [("app".to_owned(), "tainted".to_owned())].into();
        pod.spec.node_name = Some("gpu".into());
        if let Some(seconds) = toleration_seconds {
            pod.spec.tolerations = vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: seconds,
                ..Toleration::default()
            }];
        }
        pod
    };
    for (name, seconds) in [
        ("intolerant", None),
        ("brief", Some(Some(2))),
        ("patient", Some(None)),
    ] {
        client.create(&pod(name, seconds)).await.expect("pod");
    }
    eventually("the pods run", || async {
        let pods = pods_of(&client, "tainted").await;
        pods.len() == 3 && pods.iter().all(PodExt::is_ready)
    })
    .await;
    let names = || async {
        pods_of(&client, "tainted")
            .await
            .into_iter()
            .map(|p| p.metadata.name)
            .collect::<BTreeSet<_>>()
    };
    // A NoSchedule taint evicts nobody.
    let mut node = client.get::<Node>("", "gpu").await.expect("node");
    node.spec.taints.push(Taint {
        key: "dedicated".into(),
        effect: "NoSchedule".into(),
        ..Taint::default()
    });
    node = client.update(&node).await.expect("NoSchedule taint");
    node.spec.taints.push(Taint {
        key: "dedicated".into(),
        effect: "NoExecute".into(),
        ..Taint::default()
    });
    client.update(&node).await.expect("NoExecute taint");
    eventually(
        "the pod that tolerates nothing is evicted, with an event",
        || async {
            !names().await.contains("intolerant")
                && has_event(
                    &events_about(&client, "Pod", "intolerant").await,
                    "Normal",
                    "TaintManagerEviction",
                    "dedicated",
                )
        },
    )
    .await;
    eventually(
        "the pod that tolerates the taint for 2 s is evicted after them",
        || async { !names().await.contains("brief") },
    )
    .await;
    let patient = client
        .get::<Pod>("default", "patient")
        .await
        .expect("the pod that tolerates the taint without a limit stays");
    assert!(
        patient.metadata.deletion_timestamp.is_none(),
        "the patient pod is not being deleted"
    );
    cluster.stop().await;
}

async fn events_about(client: &Client, kind: &str, name: &str) -> Vec<Event> {
    client
        .list::<Event>(&ListOptions {
            field_selector: format!("involvedObject.kind={kind},involvedObject.name={name}"),
            ..ListOptions::default()
        })
        .await
        .expect("list events")
        .items
}

fn has_event(events: &[Event], type_: &str, reason: &str, message_part: &str) -> bool {
    events.iter().any(|e| {
        e.type_.as_deref() == Some(type_)
            && e.reason.as_deref() == Some(reason)
            && e.message.as_deref().unwrap_or("").contains(message_part)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tell_what_the_controllers_and_the_scheduler_did() {
    let cluster = Cluster::start(ControllerConfig::default()).await;
    let client = cluster.client.clone();
    add_node(&client, "n1", &[], vec![], false).await;
    client
        .create(&deployment("evented", 2, 1, 0))
        .await
        .expect("deployment");
    eventually("the deployment rolls out", || {
        rolled_out(&client, "evented", 2)
    })
    .await;
    eventually(
        "the deployment's event names its new ReplicaSet",
        || async {
            let events = events_about(&client, "Deployment", "evented").await;
            has_event(
                &events,
                "Normal",
                "ScalingReplicaSet",
                "Scaled up replica set evented-",
            )
        },
    )
    .await;
    let set = client
        .list::<ReplicaSet>(&ListOptions {
            namespace: "default".into(),
            label_selector: "app=evented".into(),
            ..ListOptions::default()
        })
        .await
        .expect("list sets")
        .items
        .pop()
        .expect("a ReplicaSet");
    let pods = pods_of(&client, "evented").await;
    eventually(
        "the ReplicaSet's events name each pod it created",
        || async {
            let events = events_about(&client, "ReplicaSet", &set.metadata.name).await;
            pods.iter().all(|pod| {
                has_event(
                    &events,
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created pod: {}", pod.metadata.name),
                )
            })
        },
    )
    .await;
    for pod in &pods {
        eventually("each pod's event says where it was scheduled", || async {
            let events = events_about(&client, "Pod", &pod.metadata.name).await;
            has_event(&events, "Normal", "Scheduled", "to n1")
                && events
                    .iter()
                    .all(|e| e.involved_object.uid.as_deref() == Some(&*pod.metadata.uid))
        })
        .await;
    }

    let mut stuck = Pod {
        metadata: meta("needs-gpu", "default"),
        spec: template(&[], "1").spec,
        ..Pod::default()
    };
    stuck.spec.node_selector = [("gpu".to_owned(), "yes".to_owned())].into();
    client.create(&stuck).await.expect("pod");
    eventually("an unschedulable pod gets a warning saying why", || async {
        let events = events_about(&client, "Pod", "needs-gpu").await;
        has_event(
            &events,
            "Warning",
            "FailedScheduling",
            "0/1 nodes are available",
        )
    })
    .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_events_fold_into_one_and_expire_after_their_ttl() {
    let cluster = Cluster::start(ControllerConfig {
        controllers: false,
        scheduler: false,
        ..ControllerConfig::default()
    })
    .await;
    let client = cluster.client.clone();
    let (recorder, writer) = EventRecorder::start(client.clone(), "test", "host");
    let node = Node {
        metadata: meta("flaky", ""),
        ..Node::default()
    };
    for _ in 0..3 {
        recorder.record(&node, EventType::Warning, "Flapping", "lost its lease");
    }
    recorder.record(&node, EventType::Normal, "Recovered", "renews again");
    eventually(
        "three occurrences are one event counted three times",
        || async {
            let events = events_about(&client, "Node", "flaky").await;
            let flapping: Vec<_> = events
                .iter()
                .filter(|e| e.reason.as_deref() == Some("Flapping"))
                .collect();
            events.len() == 2 && flapping.len() == 1 && flapping[0].count == Some(3)
        },
    )
    .await;
    let events = events_about(&client, "Node", "flaky").await;
    assert!(
        events.iter().all(|e| e.metadata.namespace == "default"),
        "events about cluster-scoped objects live in default"
    );
    writer.abort();

    let expiry = EventExpiry::new(client.clone(), Duration::from_secs(3600));
    let now = std::time::SystemTime::now();
    assert_eq!(
        expiry.sweep(now).await.expect("sweep"),
        0,
        "fresh events stay"
    );
    assert_eq!(
        expiry
            .sweep(now + Duration::from_secs(2 * 3600))
            .await
            .expect("sweep"),
        2,
        "expired events go"
    );
    assert!(events_about(&client, "Node", "flaky").await.is_empty());
    cluster.stop().await;
}

#[tokio::test]
async fn a_replicaset_replaces_a_terminating_pod_without_counting_it() {
    let cluster = Cluster::start(ControllerConfig::default()).await;
    let client = cluster.client.clone();
    add_node(&client, "n1", &[], vec![], false).await;
    // The node never confirms a pod stopped: deleted pods stay terminating.
    let mut web = deployment("lost", 2, 1, 0);
    web.spec.template = template(&[("app", "lost"), ("kubelet", "lost")], "1");
    client.create(&web).await.expect("create");
    eventually("2 ready pods", || async {
        rolled_out(&client, "lost", 2).await
    })
    .await;
    let victim = pods_of(&client, "lost").await.remove(0);
    let marked = client
        .delete::<Pod>("default", &victim.metadata.name)
        .await
        .expect("delete");
    assert!(
        marked.metadata.deletion_timestamp.is_some(),
        "a bound pod is marked, not removed"
    );
    eventually("a replacement runs next to the terminating pod", || async {
        let pods = pods_of(&client, "lost").await;
        let active = pods
            .iter()
            .filter(|p| p.is_active() && p.is_ready())
            .count();
        let terminating = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .count();
        active == 2 && terminating == 1
    })
    .await;
    eventually(
        "the set counts 2 replicas, not the terminating pod",
        || async {
            let sets = client
                .list::<ReplicaSet>(&ListOptions::default())
                .await
                .expect("list")
                .items;
            sets.len() == 1 && sets[0].status.as_ref().map(|s| s.replicas) == Some(2)
        },
    )
    .await;
    cluster.stop().await;
}

#[tokio::test]
async fn deleting_a_namespace_deletes_what_is_in_it_then_the_namespace() {
    let cluster = Cluster::start(ControllerConfig::default()).await;
    let client = cluster.client.clone();
    add_node(&client, "n1", &[], vec![], false).await;
    client
        .create(&Namespace {
            metadata: meta("shop", ""),
            ..Namespace::default()
        })
        .await
        .expect("namespace");
    let mut web = deployment("web", 2, 1, 0);
    web.metadata.namespace = "shop".into();
    client.create(&web).await.expect("deployment");
    let mut stuck = Pod {
        metadata: meta("stuck", "shop"),
        ..Pod::default()
    };
    stuck.metadata.labels = [("kubelet".to_owned(), "lost".to_owned())].into();
    stuck.spec = template(&[], "1").spec;
    stuck.spec.node_name = Some("n1".into());
    client.create(&stuck).await.expect("pod");
    let in_shop = |kind: Kind| {
        let client = client.clone();
        async move {
            client
                .list_json(
                    kind,
                    &ListOptions {
                        namespace: "shop".into(),
                        ..ListOptions::default()
                    },
                )
                .await
                .expect("list")
                .items
        }
    };
    eventually("the deployment's pods exist", || async {
        in_shop(Kind::Pod).await.len() == 3
    })
    .await;
    let deleted = client
        .delete::<Namespace>("", "shop")
        .await
        .expect("delete namespace");
    assert_eq!(
        deleted.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    // Nothing new may appear in it meanwhile.
    let mut late = stuck.clone();
    late.metadata = meta("late", "shop");
    let refused = client.create(&late).await.expect_err("create refused");
    assert!(
        refused.to_string().contains("being terminated"),
        "{refused}"
    );
    eventually("only the pod no node confirms is left", || async {
        in_shop(Kind::Deployment).await.is_empty()
            && in_shop(Kind::ReplicaSet).await.is_empty()
            && in_shop(Kind::Pod).await.len() == 1
    })
    .await;
    assert!(
        client.get::<Namespace>("", "shop").await.is_ok(),
        "the namespace waits for its last pod"
    );
    let force = DeleteOptions {
        grace_period_seconds: Some(0),
        ..DeleteOptions::default()
    };
    client
        .delete_with(Kind::Pod, "shop", "stuck", &force)
        .await
        .expect("force delete");
    eventually("the namespace is gone", || async {
        matches!(
            client.get::<Namespace>("", "shop").await,
            Err(ClientError::NotFound(_))
        )
    })
    .await;
    cluster.stop().await;
}

#[tokio::test]
async fn pods_of_a_deleted_node_are_removed_after_the_quarantine() {
    let cluster = Cluster::start(ControllerConfig {
        orphan_pod_quarantine: Duration::from_secs(1),
        ..ControllerConfig::default()
    })
    .await;
    let client = cluster.client.clone();
    add_node(&client, "gone", &[], vec![], false).await;
    add_node(&client, "kept", &[], vec![], false).await;
    for (name, node) in [("orphan", "gone"), ("housed", "kept")] {
        let mut pod = Pod {
            metadata: meta(name, "default"),
            ..Pod::default()
        };
        // No agent will ever confirm these stopped.
        pod.metadata.labels = [("kubelet".to_owned(), "lost".to_owned())].into();
        pod.spec = template(&[], "1").spec;
        pod.spec.node_name = Some(node.into());
        client.create(&pod).await.expect("pod");
    }
    client
        .delete::<Pod>("default", "orphan")
        .await
        .expect("graceful delete marks it");
    client
        .delete::<Node>("", "gone")
        .await
        .expect("delete node");
    eventually("the deleted node's pod is removed", || async {
        matches!(
            client.get::<Pod>("default", "orphan").await,
            Err(ClientError::NotFound(_))
        )
    })
    .await;
    assert!(
        client.get::<Pod>("default", "housed").await.is_ok(),
        "a pod of an existing node stays"
    );
    cluster.stop().await;
}

async fn replica_sets_of(client: &Client, app: &str) -> Vec<ReplicaSet> {
    client
        .list::<ReplicaSet>(&ListOptions {
            namespace: "default".into(),
            label_selector: format!("app={app}"),
            ..ListOptions::default()
        })
        .await
        .expect("list replica sets")
        .items
}

fn with_policy(policy: PropagationPolicy) -> DeleteOptions {
    DeleteOptions {
        propagation_policy: Some(policy),
        ..DeleteOptions::default()
    }
}

/// `kubectl delete --cascade=orphan`: the Deployment goes, its ReplicaSet
/// and pods stay, no longer owned by it (and nobody collects them).
#[tokio::test]
async fn deleting_an_owner_with_orphan_keeps_its_dependents_unowned() {
    let cluster = Cluster::start(ControllerConfig::default()).await;
    let client = cluster.client.clone();
    add_node(&client, "n1", &[], vec![], false).await;
    client
        .create(&deployment("web", 2, 1, 0))
        .await
        .expect("deployment");
    eventually("two pods run", || async {
        pods_of(&client, "web").await.len() == 2
    })
    .await;
    let set = replica_sets_of(&client, "web").await.remove(0);
    let pods_before: BTreeSet<String> = pods_of(&client, "web")
        .await
        .into_iter()
        .map(|p| p.metadata.uid)
        .collect();
    client
        .delete_with(
            Kind::Deployment,
            "default",
            "web",
            &with_policy(PropagationPolicy::Orphan),
        )
        .await
        .expect("delete with Orphan");
    eventually("the deployment is gone", || async {
        matches!(
            client.get::<Deployment>("default", "web").await,
            Err(ClientError::NotFound(_))
        )
    })
    .await;
    let sets = replica_sets_of(&client, "web").await;
    assert_eq!(sets.len(), 1, "the ReplicaSet stays");
    assert_eq!(sets[0].metadata.uid, set.metadata.uid);
    assert!(
        sets[0].metadata.owner_references.is_empty(),
        "no longer owned: {:?}",
        sets[0].metadata
    );
    // Once the collector has handled a later owner's deletion (its
    // ReplicaSet collected in the background), it has seen this one's.
    client
        .create(&deployment("probe", 1, 1, 0))
        .await
        .expect("probe deployment");
    eventually("the probe has its ReplicaSet", || async {
        !replica_sets_of(&client, "probe").await.is_empty()
    })
    .await;
    client
        .delete_with(
            Kind::Deployment,
            "default",
            "probe",
            &with_policy(PropagationPolicy::Background),
        )
        .await
        .expect("delete the probe");
    eventually("the probe's ReplicaSet is collected", || async {
        replica_sets_of(&client, "probe").await.is_empty()
    })
    .await;
    let pods_after: BTreeSet<String> = pods_of(&client, "web")
        .await
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.metadata.uid)
        .collect();
    assert_eq!(pods_after, pods_before, "the same pods run on");
    assert_eq!(replica_sets_of(&client, "web").await.len(), 1);
    cluster.stop().await;
}

/// `kubectl delete --cascade=foreground`: the Deployment stays, marked,
/// until its ReplicaSet is gone, which stays until its pods are gone.
#[tokio::test]
async fn deleting_an_owner_in_the_foreground_waits_for_its_dependents() {
    let cluster = Cluster::start(ControllerConfig::default()).await;
    let client = cluster.client.clone();
    add_node(&client, "n1", &[], vec![], false).await;
    // Its pods are on a node that never confirms a deletion.
    let mut lost = deployment("lost", 2, 1, 0);
    lost.spec
        .template
        .metadata
        .labels
        .insert("kubelet".into(), "lost".into());
    client.create(&lost).await.expect("deployment");
    eventually("two pods run", || async {
        pods_of(&client, "lost").await.len() == 2
    })
    .await;
    let marked = client
        .delete_with(
            Kind::Deployment,
            "default",
            "lost",
            &with_policy(PropagationPolicy::Foreground),
        )
        .await
        .expect("delete in the foreground");
    assert!(
        marked["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "foregroundDeletion")),
        "{marked:#}"
    );
    eventually("its pods are terminating", || async {
        let pods = pods_of(&client, "lost").await;
        pods.len() == 2 && pods.iter().all(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    let sets = replica_sets_of(&client, "lost").await;
    assert_eq!(sets.len(), 1, "the ReplicaSet waits for its pods");
    assert!(sets[0].metadata.deletion_timestamp.is_some());
    assert!(
        client.get::<Deployment>("default", "lost").await.is_ok(),
        "the Deployment waits for its ReplicaSet"
    );
    // The node's pods end: then the ReplicaSet goes, then the Deployment.
    for pod in pods_of(&client, "lost").await {
        let force = DeleteOptions {
            grace_period_seconds: Some(0),
            ..DeleteOptions::default()
        };
        client
            .delete_with(Kind::Pod, "default", &pod.metadata.name, &force)
            .await
            .expect("force delete");
    }
    eventually("the ReplicaSet and the Deployment are gone", || async {
        replica_sets_of(&client, "lost").await.is_empty()
            && matches!(
                client.get::<Deployment>("default", "lost").await,
                Err(ClientError::NotFound(_))
            )
    })
    .await;
    cluster.stop().await;
}
