//! scheduler-bench: scheduling throughput of rudder's scheduler against a
//! real in-process control plane (store on disk, API server over gRPC on
//! 127.0.0.1), with simulated nodes (Node objects, no agents).
//!
//! Scenarios, each on a fresh control plane:
//! - `N nodes, P pods`: the nodes and P pending pods are created first,
//!   then the scheduler starts; pods/s is P over the time until the last
//!   pod is bound (filter, score, and a compare-and-swap bind each).
//! - `Deployment of R replicas`: controllers and scheduler running; the
//!   time from creating the Deployment to all R pods bound.
//!
//! Memory is the process's resident set at the end: the control plane,
//! controllers and scheduler, plus this benchmark's own client.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::Parser;
use futures::{StreamExt, stream};
use rudder_api::{
    apps::{Deployment, DeploymentSpec, PodTemplateSpec},
    client::{Client, ListOptions, WatchEvent},
    core::{Container, Node, NodeStatus, Pod, PodSpec, ResourceRequirements},
    meta::{Condition, LabelSelector, ObjectMeta},
};
use rudder_controlplane::{
    controllers::{ControllerConfig, ControllerManager},
    server::{self, RunningServer, ServerConfig},
};

#[derive(Parser)]
#[command(name = "scheduler-bench", about = "rudder scheduler throughput")]
struct Args {
    /// Node counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    nodes: Vec<usize>,
    /// Pending pods to schedule per node count.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Replicas of the Deployment scenario (0: skip it).
    #[arg(long, default_value_t = 1000)]
    deployment_replicas: usize,
    /// Nodes of the Deployment scenario.
    #[arg(long, default_value_t = 1000)]
    deployment_nodes: usize,
    /// Runs of every scenario (the table shows the median).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Also write the markdown table to this file.
    #[arg(long)]
    markdown: Option<std::path::PathBuf>,
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
                    ("pods".to_owned(), "110".to_owned()),
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

async fn throughput(nodes: usize, pods: usize) -> Result<f64> {
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
    let elapsed = started.elapsed();
    manager.stop();
    plane.running.stop().await;
    #[expect(clippy::cast_precision_loss, reason = "pod counts are small")]
    let rate = pods as f64 / elapsed.as_secs_f64();
    Ok(rate)
}

async fn deployment(nodes: usize, replicas: usize) -> Result<(Duration, u64)> {
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
    let elapsed = started.elapsed();
    let rss = rss_kib();
    manager.stop();
    plane.running.stop().await;
    Ok((elapsed, rss))
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

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let runs = args.runs.max(1);
    let mut table = String::from(
        "| scenario | rudder (median) | reference: kube-scheduler scheduler_perf | ratio |\n|---|---|---|---|\n",
    );
    for &nodes in &args.nodes {
        let mut rates = Vec::new();
        for run in 0..runs {
            let rate = throughput(nodes, args.pods).await?;
            eprintln!(
                "{nodes} nodes, {} pods, run {}: {rate:.0} pods/s",
                args.pods,
                run + 1
            );
            rates.push(rate);
        }
        let rate = median(rates);
        // scheduler_perf's SchedulingBasic thresholds: 680 pods/s (5,000
        // nodes) to 810 pods/s, on large CI machines.
        let reference = if nodes >= 5000 { 680.0 } else { 810.0 };
        table.push_str(&format!(
            "| {nodes} nodes, {} pending pods: pods/s | {rate:.0} | {reference:.0} (threshold) | {:.2} |\n",
            args.pods,
            rate / reference
        ));
    }
    let mut rss = rss_kib();
    if args.deployment_replicas > 0 {
        let mut times = Vec::new();
        for run in 0..runs {
            let (elapsed, memory) =
                deployment(args.deployment_nodes, args.deployment_replicas).await?;
            eprintln!(
                "Deployment of {} replicas on {} nodes, run {}: all bound after {:.2} s, RSS {} MiB",
                args.deployment_replicas,
                args.deployment_nodes,
                run + 1,
                elapsed.as_secs_f64(),
                memory / 1024
            );
            times.push(elapsed.as_secs_f64());
            rss = rss.max(memory);
        }
        table.push_str(&format!(
            "| Deployment of {} replicas on {} nodes: created -> all bound | {:.2} s | - | - |\n",
            args.deployment_replicas,
            args.deployment_nodes,
            median(times)
        ));
    }
    table.push_str(&format!(
        "| process memory at the end (RSS: store, API server, controllers, scheduler, bench client) | {} MiB | - | - |\n",
        rss / 1024
    ));
    println!("{table}");
    if let Some(path) = args.markdown {
        std::fs::write(&path, &table).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
