//! Running a control-plane process: open the store, serve gRPC and HTTP,
//! stop cleanly on SIGTERM / Ctrl-C.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use rudder_api::proto::{
    certificates_server::CertificatesServer, node_sync_server::NodeSyncServer,
    resources_server::ResourcesServer,
};
use rudder_kvstore::proto::raft::raft_transport_server::RaftTransportServer;
use rudder_kvstore::{
    Store, StoreConfig,
    grpc::EtcdApi,
    raft::{RaftService, Replication},
};
use tokio::net::TcpListener;
use tonic::{
    service::interceptor::InterceptedService,
    transport::{Certificate, Identity, ServerTlsConfig, server::TcpIncoming},
};

use crate::{
    apiserver::{ApiServer, http},
    auth::{
        Authenticator,
        csr::NodeCertificates,
        grpc::{Audience, Authenticate},
        http::{TlsListener, TlsPeer},
    },
    pki::IssuedCert,
};

/// How the listeners are secured.
#[derive(Debug, Clone)]
pub enum Security {
    /// TLS on every listener, every request authenticated.
    Tls(TlsSettings),
    /// Plaintext and no authentication: everyone is `system:masters`.
    /// Only for `--insecure-plaintext` and in-process test servers.
    InsecurePlaintext,
}

/// The TLS material of the listeners.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The CA client certificates must chain to (PEM).
    pub client_ca_pem: String,
    /// The serving certificate and key.
    pub serving: IssuedCert,
    /// Who may call.
    pub authenticator: Authenticator,
    /// Signs node certificates (`rudder-agent join` and renewals); `None`
    /// when the control plane has no CA key.
    pub node_certificates: Option<NodeCertificates>,
}

/// How long a gRPC client may take to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// TLS and authentication, or plaintext.
    pub security: Security,
    /// Serve the raw etcd-compatible store API (KV, Watch, Lease,
    /// Maintenance, Cluster) to `system:masters`: it bypasses validation,
    /// so it is off unless asked for (`--enable-etcd-api`).
    pub etcd_api: bool,
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
    let (users, masters, certificates) = match &config.security {
        Security::Tls(tls) => (
            Authenticate::new(tls.authenticator.clone(), Audience::Users),
            Authenticate::new(tls.authenticator.clone(), Audience::Masters),
            tls.node_certificates.clone().map(|signer| {
                InterceptedService::new(
                    CertificatesServer::new(signer),
                    Authenticate::new(tls.authenticator.clone(), Audience::Bootstrap),
                )
            }),
        ),
        Security::InsecurePlaintext => (
            Authenticate::insecure(Audience::Users),
            Authenticate::insecure(Audience::Masters),
            None,
        ),
    };
    let mut builder = tonic::transport::Server::builder();
    if let Security::Tls(tls) = &config.security {
        builder = builder
            .tls_config(
                ServerTlsConfig::new()
                    .identity(Identity::from_pem(
                        &tls.serving.cert_pem,
                        &tls.serving.key_pem,
                    ))
                    .client_ca_root(Certificate::from_pem(&tls.client_ca_pem))
                    // Token users connect without a certificate.
                    .client_auth_optional(true)
                    .timeout(TLS_HANDSHAKE_TIMEOUT),
            )
            .context("the gRPC listener's TLS settings")?;
    }
    let (kv, watch, lease) = EtcdApi::new(store.clone()).services();
    let (maintenance, cluster) = EtcdApi::new(store.clone()).operator_services();
    let etcd = config.etcd_api;
    let grpc = builder
        .add_service(InterceptedService::new(
            ResourcesServer::new(api.clone()),
            users.clone(),
        ))
        .add_service(InterceptedService::new(
            NodeSyncServer::new(api.clone()),
            users,
        ))
        .add_optional_service(certificates)
        .add_optional_service(etcd.then(|| InterceptedService::new(kv, masters.clone())))
        .add_optional_service(etcd.then(|| InterceptedService::new(watch, masters.clone())))
        .add_optional_service(etcd.then(|| InterceptedService::new(lease, masters.clone())))
        .add_optional_service(etcd.then(|| InterceptedService::new(maintenance, masters.clone())))
        .add_optional_service(etcd.then(|| InterceptedService::new(cluster, masters.clone())))
        .add_optional_service(raft.map(|raft| InterceptedService::new(raft, masters)));
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
        let shutdown = async move {
            let _ = http_stop.wait_for(|stop| *stop).await;
        };
        let served = match &config.security {
            Security::Tls(tls) => {
                let listener = TlsListener::new(listener, http_tls(tls)?)?;
                let router = router.layer(axum::middleware::from_fn_with_state(
                    tls.authenticator.clone(),
                    crate::auth::http::authenticate,
                ));
                tokio::spawn(async move {
                    axum::serve(
                        listener,
                        router.into_make_service_with_connect_info::<TlsPeer>(),
                    )
                    .with_graceful_shutdown(shutdown)
                    .await
                })
            }
            Security::InsecurePlaintext => tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await
            }),
        };
        tasks.push(tokio::spawn(async move {
            match served.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::error!(error = %err, "HTTP server failed"),
                Err(err) => tracing::error!(error = %err, "HTTP server task failed"),
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

/// The HTTP listener's rustls settings: the serving certificate, client
/// certificates verified against the cluster CA when presented (token
/// users present none).
fn http_tls(tls: &TlsSettings) -> Result<std::sync::Arc<rustls::ServerConfig>> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(tls.client_ca_pem.as_bytes()) {
        roots
            .add(cert.context("the client CA is not PEM")?)
            .context("the client CA")?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .context("the client certificate verifier")?;
    let chain = CertificateDer::pem_slice_iter(tls.serving.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("the serving certificate is not PEM")?;
    let key = PrivateKeyDer::from_pem_slice(tls.serving.key_pem.as_bytes())
        .context("the serving key is not PEM")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("the serving certificate and key")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(std::sync::Arc::new(config))
}
