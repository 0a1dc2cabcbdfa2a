//! Part 4: store commit to maps written on every node, with 10,000
//! services present. A control plane and two nodes running `rudder-agent
//! serve`, which follow the node-sync stream; 10,000 Services (no selector)
//! and their Endpoints (three addresses each) are created through the API,
//! then one Endpoints object is changed again and again (one address
//! replaced by a new one). Each change is timed from just before its write
//! is sent to the API server (which acknowledges it once the store has
//! committed it) to the moment each node's pinned maps, read by this
//! process, hold the new address among the service's backends.

use std::{
    net::Ipv4Addr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use dataplane_common::service::{BackendSlotKey, FrontendKey, ipv4_to_net, port_to_net, proto};
use futures::{StreamExt as _, TryStreamExt as _};
use rudder_api::Kind;
use rudder_client::Client;
use rudder_dataplane_maps::ServiceMaps;
use serde_json::{Value, json};

use super::Plan;
use crate::{api_cluster, interrupt, stats};

/// Services (each with its Endpoints) present while changes are timed.
pub const SERVICES: usize = 10_000;
/// Node agents following the stream.
pub const NODES: usize = 2;
/// Creates in flight at once while installing.
const CREATES_IN_FLIGHT: usize = 64;
/// Longest one change may take to reach every node.
const CHANGE_LIMIT: Duration = Duration::from_secs(10);
/// Pause between changes (each is timed alone).
pub const CHANGE_GAP: Duration = Duration::from_millis(20);
/// The service whose Endpoints change (in the middle of the list).
const CHANGED: usize = SERVICES / 2;

/// What part 4 measured, in ms.
#[derive(Clone, Debug)]
pub struct StoreToNodes {
    /// Creating every Service and Endpoints through the API until both
    /// nodes' maps hold them all.
    pub install: Duration,
    /// Changes timed.
    pub changes: usize,
    /// Write acknowledged by the API server (committed), p50 and p99.
    pub acknowledged: (f64, f64),
    /// Per node: maps written, p50 and p99.
    pub per_node: Vec<(f64, f64)>,
    /// Maps written on every node (the last node), p50, p99 and the slowest.
    pub every_node: (f64, f64, f64),
}

/// Runs part 4 with the release binaries in `bin_dir`.
///
/// # Errors
/// When the cluster does not come up or a change does not reach a node in time.
pub fn measure(plan: &Plan, bin_dir: &Path) -> Result<StoreToNodes> {
    let cluster = api_cluster::build("sync", NODES, bin_dir)?;
    let pins: Vec<std::path::PathBuf> = cluster.nodes.iter().map(|n| n.bpffs.clone()).collect();
    let changes = plan.sync_changes;
    api_cluster::with_client(&cluster, move |client| async move {
        let started = Instant::now();
        let cluster_ip = install(&client).await?;
        let maps = wait_programmed(&pins).await?;
        let install_took = started.elapsed();
        println!(
            "   {SERVICES} services + endpoints through the API, on both nodes' maps in {:.1} s",
            install_took.as_secs_f64()
        );
        time_changes(&client, &maps, cluster_ip, changes)
            .await
            .map(|mut result| {
                result.install = install_took;
                result
            })
    })
    .with_context(|| {
        format!(
            "store-to-nodes benchmark (process logs are in {} until the cluster is removed)",
            cluster.scratch.join("logs").display()
        )
    })
}

fn service_name(i: usize) -> String {
    format!("svc-{i:05}")
}

/// Placeholder endpoint addresses, unique per service (nothing answers).
fn endpoints(i: usize, addresses: &[Ipv4Addr]) -> Value {
    let addresses: Vec<Value> = addresses
        .iter()
        .map(|ip| json!({"ip": ip.to_string()}))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": service_name(i), "namespace": "default"},
        "subsets": [{"addresses": addresses, "ports": [{"port": 8080, "protocol": "TCP"}]}]
    })
}

fn initial_addresses(i: usize) -> Vec<Ipv4Addr> {
    let [_, _, hi, lo] = u32::try_from(i).unwrap_or(0).to_be_bytes();
    (1..=3)
        .map(|k| Ipv4Addr::new(10, 240 + k, hi, lo))
        .collect()
}

/// Creates every Service and its Endpoints; returns the ClusterIP of the
/// service whose Endpoints will change.
async fn install(client: &Client) -> Result<Ipv4Addr> {
    let services: Vec<Value> = futures::stream::iter(0..SERVICES)
        .map(|i| async move {
            interrupt::check()?;
            let service = json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": service_name(i), "namespace": "default"},
                "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}
            });
            let created = client
                .create_json(Kind::Service, &service)
                .await
                .with_context(|| format!("creating service {}", service_name(i)))?;
            client
                .create_json(Kind::Endpoints, &endpoints(i, &initial_addresses(i)))
                .await
                .with_context(|| format!("creating endpoints {}", service_name(i)))?;
            anyhow::Ok(created)
        })
        .buffered(CREATES_IN_FLIGHT)
        .try_collect()
        .await?;
    services[CHANGED]["spec"]["clusterIP"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .context("the changed service got no ClusterIP")
}

/// Opens every node's maps and waits (bounded) until each holds every service.
async fn wait_programmed(pins: &[std::path::PathBuf]) -> Result<Vec<ServiceMaps>> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut maps = Vec::new();
    for dir in pins {
        loop {
            match ServiceMaps::open(dir) {
                Ok(opened) => {
                    maps.push(opened);
                    break;
                }
                Err(err) if Instant::now() >= deadline => {
                    return Err(err).context("a node's maps were never pinned");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    for (n, node) in maps.iter().enumerate() {
        loop {
            interrupt::check()?;
            let count = node.frontends.keys().filter(Result::is_ok).count();
            if count >= SERVICES {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "node {} holds {count} of {SERVICES} services after 600 s",
                    n + 1
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(maps)
}

/// Whether `maps` list `addr` among the backends of the frontend `key`.
fn serves(maps: &ServiceMaps, key: &FrontendKey, addr: u32) -> bool {
    let Ok(frontend) = maps.frontends.get(key, 0) else {
        return false;
    };
    (1..=u32::from(frontend.backend_count)).any(|slot| {
        maps.slots
            .get(
                &BackendSlotKey {
                    frontend_id: frontend.id,
                    slot,
                },
                0,
            )
            .and_then(|id| maps.backends.get(&id, 0))
            .is_ok_and(|backend| backend.addr == addr)
    })
}

async fn time_changes(
    client: &Client,
    maps: &[ServiceMaps],
    cluster_ip: Ipv4Addr,
    changes: usize,
) -> Result<StoreToNodes> {
    let key = FrontendKey {
        addr: ipv4_to_net(cluster_ip.octets()),
        port: port_to_net(80),
        proto: proto::TCP,
        pad: 0,
    };
    let mut addresses = initial_addresses(CHANGED);
    let mut acknowledged = Vec::new();
    let mut per_node: Vec<Vec<f64>> = vec![Vec::new(); maps.len()];
    let mut every_node = Vec::new();
    for change in 0..changes {
        interrupt::check()?;
        let [_, _, hi, lo] = u32::try_from(change + 1).unwrap_or(0).to_be_bytes();
        let fresh = Ipv4Addr::new(10, 250, hi, lo);
        addresses[0] = fresh;
        let object = endpoints(CHANGED, &addresses);
        let want = ipv4_to_net(fresh.octets());
        let sent = Instant::now();
        client
            .update_json(Kind::Endpoints, &object, false)
            .await
            .with_context(|| format!("change {change}: updating the endpoints"))?;
        acknowledged.push(sent.elapsed().as_secs_f64() * 1e3);
        // Busy-wait on the maps: a few lookups per node every 50 µs.
        let mut written: Vec<Option<f64>> = vec![None; maps.len()];
        while written.iter().any(Option::is_none) {
            for (node, slot) in maps.iter().zip(&mut written) {
                if slot.is_none() && serves(node, &key, want) {
                    *slot = Some(sent.elapsed().as_secs_f64() * 1e3);
                }
            }
            if sent.elapsed() > CHANGE_LIMIT {
                bail!(
                    "change {change} had not reached every node after {CHANGE_LIMIT:?}: {written:?}"
                );
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        let times: Vec<f64> = written.into_iter().flatten().collect();
        for (samples, t) in per_node.iter_mut().zip(&times) {
            samples.push(*t);
        }
        every_node.push(times.iter().copied().fold(0.0, f64::max));
        tokio::time::sleep(CHANGE_GAP).await;
    }
    let p = |samples: &[f64]| {
        (
            stats::percentile(samples, 0.50),
            stats::percentile(samples, 0.99),
        )
    };
    let (every_p50, every_p99) = p(&every_node);
    println!(
        "   {changes} endpoint changes: acknowledged p50 {:.1} ms p99 {:.1} ms; on every node p50 {every_p50:.1} ms p99 {every_p99:.1} ms",
        p(&acknowledged).0,
        p(&acknowledged).1
    );
    Ok(StoreToNodes {
        install: Duration::ZERO,
        changes,
        acknowledged: p(&acknowledged),
        per_node: per_node.iter().map(|s| p(s)).collect(),
        every_node: (every_p50, every_p99, stats::percentile(&every_node, 1.0)),
    })
}
