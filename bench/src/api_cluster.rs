//! A whole cluster for the benchmarks that go through the control plane:
//! `rudder-controlplane` and node hosts running `rudder-agent serve` with
//! rudder-cni, built by the tests' fixture (`rudder_tests::control`), and
//! an API client that runs on the cluster's outside client host (the root
//! namespace has no route to the test network).

use std::{future::Future, path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use rudder_api::core::Node;
use rudder_client::{Client, ListOptions};
use rudder_tests::control::{Cluster, ClusterOptions};

/// Builds a cluster of `nodes` nodes from the release binaries in `bin_dir`,
/// every process logging to a file (a chatty agent must not stall on a
/// full pipe).
///
/// # Errors
/// When a host or process cannot be made.
pub fn build(label: &str, nodes: usize, bin_dir: &Path) -> Result<Cluster> {
    Cluster::build(&ClusterOptions {
        label: label.to_owned(),
        nodes,
        bin_dir: bin_dir.to_path_buf(),
        chain_tuning_on_node2: false,
        pod_cgroups_on_node1: false,
        log_to_files: true,
        controlplane_args: Vec::new(),
        control_planes: 1,
    })
    .context("building the cluster")
}

/// Runs `work` with an API client on the cluster's client host, on a
/// thread of its own with a single-threaded runtime. Waits (bounded) for
/// the API server and for every node to register Ready first.
///
/// # Errors
/// When the cluster does not come up or `work` fails.
pub fn with_client<T, F, Fut>(cluster: &Cluster, work: F) -> Result<T>
where
    T: Send,
    F: FnOnce(Client) -> Fut + Send,
    Fut: Future<Output = Result<T>>,
{
    let config = match &cluster.kubeconfig {
        Some(kubeconfig) => rudder_client::Kubeconfig::load(kubeconfig)
            .and_then(|k| k.client_config(kubeconfig, None))
            .context("the cluster's admin kubeconfig")?,
        None => rudder_client::ClientConfig::insecure(&cluster.server),
    };
    let nodes = cluster.nodes.len();
    cluster.client.enter(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("tokio runtime")?;
        runtime.block_on(async move {
            let client = connect(&config).await?;
            wait_nodes_ready(&client, nodes).await?;
            work(client).await
        })
    })?
}

/// Connects, retrying for up to 30 s while the server starts.
async fn connect(config: &rudder_client::ClientConfig) -> Result<Client> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match Client::connect_with(config).await {
            Ok(client) => return Ok(client),
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(err).context("the API server did not come up in 30 s");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits up to 60 s for `count` Nodes with condition Ready=True.
async fn wait_nodes_ready(client: &Client, count: usize) -> Result<()> {
    for _ in 0..600 {
        let ready = client
            .list::<Node>(&ListOptions::default())
            .await
            .map(|list| {
                list.items
                    .iter()
                    .filter(|node| {
                        node.status.as_ref().is_some_and(|s| {
                            s.conditions
                                .iter()
                                .any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                    })
                    .count()
            })
            .unwrap_or(0);
        if ready >= count {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{count} nodes did not all register Ready in 60 s")
}
