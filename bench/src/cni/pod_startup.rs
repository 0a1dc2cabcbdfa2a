//! Part 3: pod startup latency through the whole path. A control plane and
//! two nodes running `rudder-agent serve` with rudder-cni; pods are created
//! through the API without a node, so the scheduler binds them, the node's
//! agent makes the sandbox (CNI ADD), starts the container and reports the
//! status. Latency is measured from just before the create request is sent
//! to the moment a watch (opened before the first create) shows the pod
//! with phase Running and a podIP; the time to be bound to a node (the
//! first event with `spec.nodeName`) is recorded on the way.
//!
//! Two load shapes, each with fresh pods: pods created one after another
//! at a steady rate, and all of them at once.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use rudder_api::{Kind, core::Pod};
use rudder_client::{Client, ListOptions, WatchEvent};
use serde_json::json;

use super::Plan;
use crate::{api_cluster, interrupt, stats};

/// How the pods of one scenario are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One create every `1 / rate` seconds.
    Paced {
        /// Pods per second.
        per_second: u32,
    },
    /// Every create sent at once.
    Burst,
}

impl Shape {
    /// How the report names it.
    pub fn label(self) -> String {
        match self {
            Self::Paced { per_second } => format!("{per_second} pods/s"),
            Self::Burst => "all at once".to_owned(),
        }
    }
}

/// What one scenario measured (ms).
#[derive(Clone, Debug)]
pub struct StartupResult {
    /// How the pods were created.
    pub shape: Shape,
    /// Pods created.
    pub pods: usize,
    /// create -> Running with podIP, p50.
    pub running_p50: f64,
    /// create -> Running with podIP, p99.
    pub running_p99: f64,
    /// create -> Running with podIP, the slowest.
    pub running_max: f64,
    /// create -> bound to a node, p50.
    pub bound_p50: f64,
    /// create -> bound to a node, p99.
    pub bound_p99: f64,
    /// Pods per node (node name -> count).
    pub spread: BTreeMap<String, usize>,
}

/// Longest a scenario may take before it counts as failed.
const SCENARIO_LIMIT: Duration = Duration::from_secs(180);

/// Runs part 3.
///
/// # Errors
/// When the cluster does not come up or a pod does not start in time.
pub fn measure(plan: &Plan, bin_dir: &Path) -> Result<Vec<StartupResult>> {
    let cluster = api_cluster::build("podstart", 2, bin_dir)?;
    let shapes = [Shape::Paced { per_second: 10 }, Shape::Burst];
    let pods = plan.startup_pods;
    let sandbox_prefixes: Vec<String> = cluster.nodes.iter().map(|n| n.prefix.clone()).collect();
    let node_namespaces: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| n.host.name().to_owned())
        .collect();
    api_cluster::with_client(&cluster, move |client| async move {
        let mut results = Vec::new();
        for (i, shape) in shapes.into_iter().enumerate() {
            interrupt::check()?;
            let namespace = format!("startup-{i}");
            let result = scenario(&client, &namespace, shape, pods).await?;
            println!(
                "   {}: create -> Running with IP p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms \
                 (bound p50 {:.0} ms, p99 {:.0} ms); per node {:?}",
                shape.label(),
                result.running_p50,
                result.running_p99,
                result.running_max,
                result.bound_p50,
                result.bound_p99,
                result.spread
            );
            results.push(result);
            remove_pods(&client, &namespace, &sandbox_prefixes, &node_namespaces).await?;
        }
        Ok(results)
    })
    .with_context(|| {
        format!(
            "pod startup benchmark (process logs are in {} until the cluster is removed)",
            cluster.scratch.join("logs").display()
        )
    })
}

/// When each pod was sent, bound and seen running.
#[derive(Clone, Copy, Debug, Default)]
struct Timeline {
    sent: Option<Instant>,
    bound: Option<Instant>,
    running: Option<Instant>,
}

async fn scenario(
    client: &Client,
    namespace: &str,
    shape: Shape,
    pods: usize,
) -> Result<StartupResult> {
    client
        .create_json(
            Kind::Namespace,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        )
        .await
        .with_context(|| format!("creating namespace {namespace}"))?;
    let options = ListOptions {
        namespace: namespace.to_owned(),
        ..ListOptions::default()
    };
    let revision = client.list::<Pod>(&options).await?.resource_version;
    let mut watch = client.watch::<Pod>(&options, &revision).await?;
    let timelines: Arc<Mutex<BTreeMap<String, Timeline>>> = Arc::default();
    let spread: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let watcher = {
        let timelines = Arc::clone(&timelines);
        let spread = Arc::clone(&spread);
        async move {
            let mut running = 0;
            while running < pods {
                let event = match watch.next().await {
                    Some(event) => event.context("pod watch")?,
                    None => bail!("the pod watch ended"),
                };
                let now = Instant::now();
                let (WatchEvent::Added(pod) | WatchEvent::Modified(pod)) = event else {
                    continue;
                };
                let mut timelines = timelines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let timeline = timelines.entry(pod.metadata.name.clone()).or_default();
                if let Some(node) = pod.spec.node_name.as_ref().filter(|n| !n.is_empty())
                    && timeline.bound.is_none()
                {
                    timeline.bound = Some(now);
                    spread
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(pod.metadata.name.clone(), node.clone());
                }
                let status = pod.status.unwrap_or_default();
                let has_ip = status.pod_ip.as_ref().is_some_and(|ip| !ip.is_empty());
                if timeline.running.is_none()
                    && status.phase.as_deref() == Some("Running")
                    && has_ip
                {
                    timeline.running = Some(now);
                    running += 1;
                }
            }
            anyhow::Ok(())
        }
    };
    let creator = async {
        let started = Instant::now();
        let create = |i: usize| {
            let timelines = Arc::clone(&timelines);
            async move {
                let name = format!("pod-{i}");
                let manifest = json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "main", "command": ["sleep", "600"]}]
                    }
                });
                let sent = Instant::now();
                timelines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(name.clone())
                    .or_default()
                    .sent = Some(sent);
                client
                    .create_json(Kind::Pod, &manifest)
                    .await
                    .with_context(|| format!("creating pod {name}"))?;
                anyhow::Ok(())
            }
        };
        match shape {
            Shape::Paced { per_second } => {
                let gap = Duration::from_secs(1) / per_second.max(1);
                for i in 0..pods {
                    let due = started + gap * u32::try_from(i).unwrap_or(u32::MAX);
                    tokio::time::sleep_until(due.into()).await;
                    create(i).await?;
                }
            }
            Shape::Burst => {
                futures::future::try_join_all((0..pods).map(create)).await?;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(SCENARIO_LIMIT, async { tokio::try_join!(watcher, creator) })
        .await
        .with_context(|| {
            let timelines = timelines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let running = timelines.values().filter(|t| t.running.is_some()).count();
            format!(
                "{}: only {running} of {pods} pods were Running after {} s",
                shape.label(),
                SCENARIO_LIMIT.as_secs()
            )
        })??;
    let timelines = timelines
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let since_sent = |at: fn(&Timeline) -> Option<Instant>| -> Vec<f64> {
        timelines
            .values()
            .filter_map(|t| Some(at(t)?.saturating_duration_since(t.sent?).as_secs_f64() * 1e3))
            .collect()
    };
    let running = since_sent(|t| t.running);
    let bound = since_sent(|t| t.bound);
    let mut per_node = BTreeMap::new();
    for node in spread
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .values()
    {
        *per_node.entry(node.clone()).or_insert(0) += 1;
    }
    Ok(StartupResult {
        shape,
        pods: running.len(),
        running_p50: stats::percentile(&running, 0.50),
        running_p99: stats::percentile(&running, 0.99),
        running_max: stats::percentile(&running, 1.0),
        bound_p50: stats::percentile(&bound, 0.50),
        bound_p99: stats::percentile(&bound, 0.99),
        spread: per_node,
    })
}

/// Deletes the scenario's pods and waits (bounded) until the agents have
/// removed their sandboxes and the pods' veths are off the node bridges,
/// so the next scenario starts on empty nodes: a teardown still running
/// would hold the kernel's RTNL lock against the next scenario's ADDs.
async fn remove_pods(
    client: &Client,
    namespace: &str,
    sandbox_prefixes: &[String],
    node_namespaces: &[String],
) -> Result<()> {
    let options = ListOptions {
        namespace: namespace.to_owned(),
        ..ListOptions::default()
    };
    for pod in client.list::<Pod>(&options).await?.items {
        client.delete::<Pod>(namespace, &pod.metadata.name).await?;
    }
    for _ in 0..1200 {
        let left = std::fs::read_dir("/run/netns")
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        sandbox_prefixes
                            .iter()
                            .any(|p| name.starts_with(p.as_str()))
                    })
                    .count()
            })
            .unwrap_or(0);
        let ports = node_namespaces
            .iter()
            .map(|ns| bridge_ports(ns))
            .sum::<usize>();
        if left == 0 && ports == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the agents did not remove the pods of {namespace} in 120 s")
}

/// Links attached to a node's pod bridge (`cni0`): one host-side veth per
/// pod still wired.
fn bridge_ports(node_namespace: &str) -> usize {
    std::process::Command::new("ip")
        .args(["-n", node_namespace, "-o", "link", "show", "master", "cni0"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).lines().count())
        .unwrap_or(0)
}
