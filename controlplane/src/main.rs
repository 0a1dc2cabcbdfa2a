//! `rudder-controlplane`: the store, the API server and the node-sync
//! stream in one process, with the controllers and the scheduler running
//! in whichever replica holds the leader lease.

use std::collections::BTreeMap;
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use clap::Parser;
use rudder_controlplane::{
    apiserver::allocation::{self, ServiceRanges},
    leader::LeaderConfig,
    manager::{ControllerConfig, ControllerManager},
    server::{self, ServerConfig},
};
use rudder_kvstore::raft::{RaftTiming, Replication};

#[derive(Parser)]
#[command(name = "rudder-controlplane", version, about = "rudder control plane")]
struct Args {
    /// Directory holding the store (created if missing).
    #[arg(
        long,
        env = "RUDDER_DATA_DIR",
        default_value = "/var/lib/rudder/controlplane"
    )]
    data_dir: PathBuf,
    /// gRPC address: resources, node sync and the etcd-compatible store API.
    #[arg(long, env = "RUDDER_LISTEN", default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// HTTP/JSON address with Kubernetes paths ("off" to disable).
    #[arg(long, env = "RUDDER_HTTP_LISTEN", default_value = "127.0.0.1:7401")]
    http_listen: String,
    /// Seconds between compactions of the store's history (0: never).
    #[arg(long, default_value_t = 300)]
    compaction_interval_seconds: u64,
    /// This replica's id in a replicated control plane (with --peer).
    #[arg(long, env = "RUDDER_NODE_ID")]
    node_id: Option<u64>,
    /// A replica as ID=HOST:PORT (its --listen address), this one included;
    /// repeat for each. Without peers the store is a single node.
    #[arg(long = "peer", value_name = "ID=HOST:PORT")]
    peers: Vec<String>,
    /// Log entries between Raft snapshots.
    #[arg(long, default_value_t = 10_000)]
    snapshot_after_logs: u64,
    /// Milliseconds between a Raft leader's heartbeats (replicated only).
    #[arg(long, default_value_t = RaftTiming::default().heartbeat_ms)]
    heartbeat_interval_ms: u64,
    /// Milliseconds a follower hears nothing from a leader before it may
    /// stand, at least (each replica draws from this to twice this; at
    /// least twice the heartbeat interval).
    #[arg(long, default_value_t = RaftTiming::default().election_timeout_ms)]
    election_timeout_ms: u64,
    /// Do not run the controllers (Deployments, ReplicaSets, Endpoints,
    /// node lifecycle, garbage collection).
    #[arg(long)]
    no_controllers: bool,
    /// Do not run the scheduler.
    #[arg(long)]
    no_scheduler: bool,
    /// Seconds a node may go without renewing its lease before it becomes
    /// NotReady and its pods leave Endpoints.
    #[arg(long, default_value_t = 40)]
    node_grace_period_seconds: u64,
    /// Seconds a node may stay NotReady before its pods are deleted (and
    /// recreated elsewhere by their controllers).
    #[arg(long, default_value_t = 300)]
    pod_eviction_timeout_seconds: u64,
    /// Seconds an Event is kept after its last occurrence.
    #[arg(long, default_value_t = 3600)]
    event_ttl_seconds: u64,
    /// Range Service ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: String,
    /// Range Service NodePorts are allocated from.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
}

fn replication(args: &Args) -> Result<Option<Replication>> {
    if args.peers.is_empty() {
        if args.node_id.is_some() {
            anyhow::bail!("--node-id needs --peer ID=HOST:PORT for every replica");
        }
        return Ok(None);
    }
    let Some(node_id) = args.node_id else {
        anyhow::bail!("--peer needs --node-id: which of the replicas is this one?");
    };
    let mut peers = BTreeMap::new();
    for peer in &args.peers {
        let (id, addr) = peer
            .split_once('=')
            .with_context(|| format!("--peer {peer:?}: expected ID=HOST:PORT"))?;
        let id: u64 = id
            .parse()
            .with_context(|| format!("--peer {peer:?}: {id:?} is not a replica id"))?;
        peers.insert(id, addr.to_owned());
    }
    if !peers.contains_key(&node_id) {
        anyhow::bail!("--node-id {node_id} is not among the --peer ids");
    }
    Ok(Some(Replication {
        node_id,
        peers,
        snapshot_after_logs: args.snapshot_after_logs,
        timing: RaftTiming {
            heartbeat_ms: args.heartbeat_interval_ms,
            election_timeout_ms: args.election_timeout_ms,
        },
    }))
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .init();
    let args = Args::parse();
    let http_listen = match args.http_listen.as_str() {
        "off" | "" => None,
        addr => Some(addr.parse().map_err(|err| {
            anyhow::anyhow!("--http-listen {addr:?} is not an address like 127.0.0.1:7401: {err}")
        })?),
    };
    let replication = replication(&args)?;
    let ranges = ServiceRanges::parse(
        &args.service_cluster_ip_range,
        &args.service_node_port_range,
    )?;
    let running = server::start(ServerConfig {
        replication,
        data_dir: args.data_dir,
        listen: args.listen,
        http_listen,
        compaction_interval: (args.compaction_interval_seconds > 0)
            .then(|| Duration::from_secs(args.compaction_interval_seconds)),
    })
    .await?;
    println!(
        "rudder-controlplane: gRPC on {}, HTTP on {}",
        running.grpc_addr,
        running
            .http_addr
            .map_or("(off)".to_owned(), |a| a.to_string())
    );
    // Replicated, the store takes writes once a leader exists: keep trying.
    let store = running.store().clone();
    tokio::spawn(async move {
        while let Err(err) = allocation::configure(&store, &ranges).await {
            tracing::debug!(error = %err, "service ranges not written yet");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tracing::info!(%ranges, "service ranges");
    });
    let controllers = if args.no_controllers && args.no_scheduler {
        None
    } else {
        let client = rudder_client::Client::connect(&running.grpc_addr.to_string()).await?;
        let identity = format!(
            "{}-{}-{}",
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim(),
            std::process::id(),
            running.grpc_addr
        );
        Some(ControllerManager::start(
            client,
            ControllerConfig {
                controllers: !args.no_controllers,
                scheduler: !args.no_scheduler,
                node_grace_period: Duration::from_secs(args.node_grace_period_seconds),
                pod_eviction_timeout: Duration::from_secs(args.pod_eviction_timeout_seconds),
                event_ttl: Duration::from_secs(args.event_ttl_seconds),
                leader: Some(LeaderConfig::controlplane(identity)),
                ..ControllerConfig::default()
            },
        ))
    };
    wait_for_signal().await;
    tracing::info!("shutting down");
    if let Some(controllers) = controllers {
        controllers.stop();
    }
    running.stop().await;
    Ok(())
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(error = %err, "cannot watch SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
