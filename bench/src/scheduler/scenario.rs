//! The scenarios, each run in a child process on a fresh in-process
//! control plane with simulated nodes: throughput (nodes and pending pods
//! first, then the scheduler) and a Deployment (everything running).

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use futures::{StreamExt, stream};
use rudder_api::{
    apps::{Deployment, DeploymentSpec, PodTemplateSpec},
    core::{Container, Node, NodeStatus, Pod, PodSpec, ResourceRequirements},
    meta::{Condition, LabelSelector, ObjectMeta},
};
use rudder_client::{Client, ListOptions, WatchEvent};
use rudder_controlplane::{
    manager::{ControllerConfig, ControllerManager},
    server::{self, RunningServer, Security, ServerConfig},
};

/// Pods a simulated node takes (its `pods` allocatable).
pub(super) const PODS_PER_NODE: usize = 110;

/// What one scenario run measured.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(super) struct Outcome {
    /// Seconds from the start (scheduler started, or Deployment created)
    /// to the last pod bound.
    pub(super) seconds: f64,
    /// Resident set at the end, KiB.
    pub(super) rss_kib: u64,
    /// Most pods any node got.
    pub(super) most_on_a_node: usize,
}

struct Plane {
    running: RunningServer,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn plane() -> Result<Plane> {
    let dir = tempfile::tempdir().context("temporary data dir")?;
    let running = server::start(ServerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        http_listen: None,
        compaction_interval: None,
        replication: None,
        security: Security::InsecurePlaintext,
        etcd_api: false,
    })
    .await?;
    let client = Client::connect(&running.grpc_addr.to_string()).await?;
    Ok(Plane {
        running,
        client,
        _dir: dir,
    })
}

fn requests() -> Option<ResourceRequirements> {
    Some(ResourceRequirements {
        requests: [
            ("cpu".to_owned(), "100m".to_owned()),
            ("memory".to_owned(), "128Mi".to_owned()),
        ]
        .into(),
        ..ResourceRequirements::default()
    })
}

fn pod_spec() -> PodSpec {
    PodSpec {
        containers: vec![Container {
            name: "app".into(),
            image: Some("pause".into()),
            resources: requests(),
            ..Container::default()
        }],
        ..PodSpec::default()
    }
}

async fn create_nodes(client: &Client, count: usize) -> Result<()> {
    let results: Vec<Result<()>> = stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            async move {
                let node = Node {
                    metadata: ObjectMeta {
                        name: format!("node-{i}"),
                        labels: [
                            ("kubernetes.io/hostname".to_owned(), format!("node-{i}")),
                            (
                                "topology.kubernetes.io/zone".to_owned(),
                                format!("zone-{}", i % 3),
                            ),
                        ]
                        .into(),
                        ..ObjectMeta::default()
                    },
                    ..Node::default()
                };
                let mut created = client.create(&node).await?;
                let resources: BTreeMap<String, String> = [
                    ("cpu".to_owned(), "32".to_owned()),
                    ("memory".to_owned(), "256Gi".to_owned()),
                    ("pods".to_owned(), PODS_PER_NODE.to_string()),
                ]
                .into();
                created.status = Some(NodeStatus {
                    conditions: vec![Condition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        ..Condition::default()
                    }],
                    capacity: resources.clone(),
                    allocatable: resources,
                    ..NodeStatus::default()
                });
                client.update_status(&created).await?;
                Ok(())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn create_pods(client: &Client, count: usize) -> Result<()> {
    let results: Vec<Result<()>> = stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            async move {
                let pod = Pod {
                    metadata: ObjectMeta {
                        name: format!("pod-{i}"),
                        namespace: "default".into(),
                        labels: [("app".to_owned(), "bench".to_owned())].into(),
                        ..ObjectMeta::default()
                    },
                    spec: pod_spec(),
                    ..Pod::default()
                };
                client.create(&pod).await?;
                Ok(())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Waits until `count` pods are bound, counting from a watch started at
/// `version` (pods bound before it count through `already`).
async fn wait_bound(client: &Client, version: &str, count: usize) -> Result<()> {
    let mut watch = client
        .watch::<Pod>(&ListOptions::default(), version)
        .await?;
    let mut bound = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while bound.len() < count {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {count} pods bound after 10 minutes",
            bound.len()
        );
        let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(5), watch.next()).await
        else {
            continue;
        };
        if let WatchEvent::Added(pod) | WatchEvent::Modified(pod) = event?
            && pod.spec.node_name.is_some()
        {
            bound.insert(pod.metadata.uid);
        }
    }
    Ok(())
}

fn scheduler_only() -> ControllerConfig {
    ControllerConfig {
        controllers: false,
        scheduler: true,
        leader: None,
        ..ControllerConfig::default()
    }
}

/// Checks where the pods went: every one on a node that exists, no node
/// over its pod capacity. Returns the most pods on one node.
async fn check_placement(client: &Client, nodes: usize, pods: usize) -> Result<usize> {
    let listed = client.list::<Pod>(&ListOptions::default()).await?.items;
    anyhow::ensure!(
        listed.len() == pods,
        "{} pods listed, {pods} created",
        listed.len()
    );
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for pod in &listed {
        let node = pod
            .spec
            .node_name
            .as_deref()
            .with_context(|| format!("pod {} is not bound", pod.metadata.name))?;
        let index: usize = node
            .strip_prefix("node-")
            .and_then(|i| i.parse().ok())
            .with_context(|| format!("pod {} bound to unknown node {node}", pod.metadata.name))?;
        anyhow::ensure!(
            index < nodes,
            "pod {} bound to unknown node {node}",
            pod.metadata.name
        );
        *per_node.entry(node.to_owned()).or_insert(0) += 1;
    }
    let most = per_node.values().copied().max().unwrap_or(0);
    anyhow::ensure!(
        most <= PODS_PER_NODE,
        "a node got {most} pods; it takes {PODS_PER_NODE}"
    );
    Ok(most)
}

pub(super) async fn throughput(nodes: usize, pods: usize) -> Result<Outcome> {
    let plane = plane().await?;
    let setup = Instant::now();
    create_nodes(&plane.client, nodes).await?;
    create_pods(&plane.client, pods).await?;
    eprintln!(
        "setup: {nodes} nodes and {pods} pods created in {:.1} s, RSS {} MiB",
        setup.elapsed().as_secs_f64(),
        rss_kib() / 1024
    );
    let version = plane
        .client
        .list::<Pod>(&ListOptions {
            label_selector: "app=none".into(),
            ..ListOptions::default()
        })
        .await?
        .resource_version;
    let started = Instant::now();
    let manager = ControllerManager::start(plane.client.clone(), scheduler_only());
    wait_bound(&plane.client, &version, pods).await?;
    let seconds = started.elapsed().as_secs_f64();
    let rss_kib = rss_kib();
    manager.stop();
    let most_on_a_node = check_placement(&plane.client, nodes, pods).await?;
    plane.running.stop().await;
    Ok(Outcome {
        seconds,
        rss_kib,
        most_on_a_node,
    })
}

pub(super) async fn deployment(nodes: usize, replicas: usize) -> Result<Outcome> {
    let plane = plane().await?;
    create_nodes(&plane.client, nodes).await?;
    let manager = ControllerManager::start(
        plane.client.clone(),
        ControllerConfig {
            leader: None,
            ..ControllerConfig::default()
        },
    );
    let version = plane
        .client
        .list::<Pod>(&ListOptions::default())
        .await?
        .resource_version;
    let labels: BTreeMap<String, String> = [("app".to_owned(), "big".to_owned())].into();
    let started = Instant::now();
    plane
        .client
        .create(&Deployment {
            metadata: ObjectMeta {
                name: "big".into(),
                namespace: "default".into(),
                ..ObjectMeta::default()
            },
            spec: DeploymentSpec {
                replicas: Some(i64::try_from(replicas)?),
                selector: LabelSelector {
                    match_labels: labels.clone(),
                    ..LabelSelector::default()
                },
                template: PodTemplateSpec {
                    metadata: ObjectMeta {
                        labels,
                        ..ObjectMeta::default()
                    },
                    spec: pod_spec(),
                },
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        })
        .await?;
    wait_bound(&plane.client, &version, replicas).await?;
    let seconds = started.elapsed().as_secs_f64();
    let rss_kib = rss_kib();
    manager.stop();
    let most_on_a_node = check_placement(&plane.client, nodes, replicas).await?;
    plane.running.stop().await;
    Ok(Outcome {
        seconds,
        rss_kib,
        most_on_a_node,
    })
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
