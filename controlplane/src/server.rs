//! Running a control-plane process: open the store, serve gRPC and HTTP,
//! stop cleanly on SIGTERM / Ctrl-C.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use rudder_api::proto::{node_sync_server::NodeSyncServer, resources_server::ResourcesServer};
use rudder_kvstore::proto::raft::raft_transport_server::RaftTransportServer;
use rudder_kvstore::{
    Store, StoreConfig,
    grpc::EtcdApi,
    raft::{RaftService, Replication},
};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::apiserver::{ApiServer, http};

/// How one control-plane process is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the store keeps its data.
    pub data_dir: PathBuf,
    /// gRPC address (resources, node sync, etcd-compatible store API).
    pub listen: SocketAddr,
    /// HTTP/JSON address; `None` disables it.
    pub http_listen: Option<SocketAddr>,
    /// Compaction interval of the store's history.
    pub compaction_interval: Option<Duration>,
    /// Run as one replica of a Raft group; `None` for a single node.
    pub replication: Option<Replication>,
}

/// A running control plane.
#[derive(Debug)]
pub struct RunningServer {
    /// The gRPC address actually bound (useful with port 0).
    pub grpc_addr: SocketAddr,
    /// The HTTP address actually bound.
    pub http_addr: Option<SocketAddr>,
    store: Store,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops serving and closes the store.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        self.store.shutdown().await;
    }
}

/// Opens the store and starts serving.
///
/// # Errors
/// When the data directory or the addresses cannot be used.
pub async fn start(config: ServerConfig) -> Result<RunningServer> {
    let mut store_config = StoreConfig::new(&config.data_dir);
    store_config.compaction_interval = config.compaction_interval;
    let (store, raft) = match config.replication.clone() {
        None => (Store::open(store_config).await, None),
        Some(replication) => match Store::open_replicated(store_config, replication).await {
            Ok((store, raft)) => (Ok(store), Some(raft)),
            Err(err) => (Err(err), None),
        },
    };
    let store =
        store.with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
    serve(store, raft, config).await
}

/// Starts serving an already opened store (and, replicated, the service
/// the other replicas talk to).
///
/// # Errors
/// When an address cannot be bound.
pub async fn serve(
    store: Store,
    raft: Option<RaftTransportServer<RaftService>>,
    config: ServerConfig,
) -> Result<RunningServer> {
    let api = ApiServer::new(store.clone());
    let (shutdown, stop) = tokio::sync::watch::channel(false);
    let grpc_listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the gRPC address {}", config.listen))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let (kv, watch, lease) = EtcdApi::new(store.clone()).services();
    let (maintenance, cluster) = EtcdApi::new(store.clone()).operator_services();
    let grpc = tonic::transport::Server::builder()
        .add_service(ResourcesServer::new(api.clone()))
        .add_service(NodeSyncServer::new(api.clone()))
        .add_service(kv)
        .add_service(watch)
        .add_service(lease)
        .add_service(maintenance)
        .add_service(cluster)
        .add_optional_service(raft);
    let mut grpc_stop = stop.clone();
    let mut tasks = vec![tokio::spawn(async move {
        // Without TCP_NODELAY the small HTTP/2 frames of a response wait for
        // the client's delayed ACK: milliseconds on every call.
        let incoming = TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
        let result = grpc
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = grpc_stop.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(err) = result {
            tracing::error!(error = %err, "gRPC server failed");
        }
    })];
    let mut http_addr = None;
    if let Some(addr) = config.http_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the HTTP address {addr}"))?;
        http_addr = Some(listener.local_addr()?);
        let router = http::router(api.clone());
        let mut http_stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let result = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = http_stop.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(err) = result {
                tracing::error!(error = %err, "HTTP server failed");
            }
        }));
    }
    // Replicated, the namespaces can only be written once a leader exists,
    // which needs this replica's transport up: create them in the background.
    let namespaces_api = api.clone();
    let mut namespaces_stop = stop.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            match namespaces_api.ensure_builtin_namespaces().await {
                Ok(()) => return,
                Err(err) => tracing::debug!(error = %err, "default namespaces not created yet"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = namespaces_stop.wait_for(|stop| *stop) => return,
            }
        }
    }));
    if config.replication.is_none() {
        api.ensure_builtin_namespaces()
            .await
            .context("creating the default namespaces")?;
    }
    tracing::info!(%grpc_addr, http_addr = ?http_addr, data_dir = %config.data_dir.display(), "control plane serving");
    Ok(RunningServer {
        grpc_addr,
        http_addr,
        store,
        shutdown,
        tasks,
    })
}
