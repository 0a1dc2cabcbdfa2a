//! Running a control-plane process: open the store, serve gRPC and the
//! REST API on one port ([`crate::api_port`]), stop cleanly on SIGTERM /
//! Ctrl-C.

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
use tonic::service::{RoutesBuilder, interceptor::InterceptedService};

use crate::{
    api_port::{Accept, ApiPort},
    apiserver::{ApiServer, http},
    auth::{
        Authenticator,
        csr::NodeCertificates,
        grpc::{Audience, Authenticate},
        http::TlsListener,
    },
    authz::{Authorizer, RbacView},
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

/// The largest request a client may send, over gRPC or HTTP: what
/// kube-apiserver accepts (3 MiB; an object's annotations alone may hold
/// 256 KiB). A larger one is refused with a clear error (gRPC
/// `OutOfRange`, HTTP 413) before it is buffered, and the server stays up.
/// Answers (lists) may be larger: clients raise their own decoding limit.
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;

/// How one control-plane process is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the store keeps its data.
    pub data_dir: PathBuf,
    /// The API address: gRPC (resources, node sync, etcd-compatible store
    /// API) and the Kubernetes REST API on one port.
    pub listen: SocketAddr,
    /// A second address serving the same (the REST API's port before the
    /// two shared one); `None` disables it.
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
    let (shutdown, stop) = tokio::sync::watch::channel(false);
    let api = ApiServer::new(store.clone());
    if config.replication.is_none() {
        // Before the view's first list, so that it starts with them.
        ensure_builtin_objects(&api)
            .await
            .context("creating the default namespaces and RBAC policy")?;
    }
    let view = RbacView::start(&api, &stop);
    let api = api.with_authorizer(Authorizer::new(view.clone()));
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
    let (kv, watch, lease) = EtcdApi::new(store.clone()).services();
    let (maintenance, cluster) = EtcdApi::new(store.clone()).operator_services();
    let mut grpc = RoutesBuilder::default();
    grpc.add_service(InterceptedService::new(
        ResourcesServer::new(api.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
        users.clone(),
    ))
    .add_service(InterceptedService::new(
        NodeSyncServer::new(api.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
        users,
    ));
    if let Some(certificates) = certificates {
        grpc.add_service(certificates);
    }
    if config.etcd_api {
        grpc.add_service(InterceptedService::new(kv, masters.clone()))
            .add_service(InterceptedService::new(watch, masters.clone()))
            .add_service(InterceptedService::new(lease, masters.clone()))
            .add_service(InterceptedService::new(maintenance, masters.clone()))
            .add_service(InterceptedService::new(cluster, masters.clone()));
    }
    if let Some(raft) = raft {
        grpc.add_service(InterceptedService::new(raft, masters));
    }
    let mut rest =
        http::router(api.clone()).layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES));
    let tls = match &config.security {
        Security::Tls(tls) => {
            rest = rest.layer(axum::middleware::from_fn_with_state(
                tls.authenticator.clone(),
                crate::auth::http::authenticate,
            ));
            Some(api_tls(tls)?)
        }
        Security::InsecurePlaintext => {
            rest = rest.layer(axum::middleware::from_fn(insecure_user));
            None
        }
    };
    let port = ApiPort {
        grpc: grpc.routes(),
        rest,
    };
    let accept = |listener: TcpListener| -> Result<Accept> {
        Ok(match &tls {
            Some(tls) => Accept::Tls(TlsListener::new(listener, tls.clone())?),
            None => Accept::Plain(listener),
        })
    };
    let mut tasks = vec![tokio::spawn(
        port.clone().serve(accept(grpc_listener)?, stop.clone()),
    )];
    // The old second port for the REST API serves the same as the first.
    let mut http_addr = None;
    if let Some(addr) = config.http_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the HTTP address {addr}"))?;
        http_addr = Some(listener.local_addr()?);
        tasks.push(tokio::spawn(port.serve(accept(listener)?, stop.clone())));
    }
    // Replicated, the namespaces and the policy can only be written once a
    // leader exists, which needs this replica's transport up: create them
    // in the background.
    if config.replication.is_some() {
        let builtin_api = api.clone();
        let mut builtin_stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match ensure_builtin_objects(&builtin_api).await {
                    Ok(()) => return,
                    Err(err) => {
                        tracing::debug!(error = %err, "default namespaces and policy not created yet");
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = builtin_stop.wait_for(|stop| *stop) => return,
                }
            }
        }));
    } else if !view.wait_synced(Duration::from_secs(30)).await {
        anyhow::bail!("the RBAC view did not load the policy from the store within 30 s");
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

/// The default namespaces and the bootstrap RBAC policy.
async fn ensure_builtin_objects(api: &ApiServer) -> Result<(), crate::apiserver::ApiServerError> {
    api.ensure_builtin_namespaces().await?;
    crate::authz::bootstrap::ensure(api).await
}

/// `--insecure-plaintext`: every REST caller is the all-powerful
/// [`insecure_user`](crate::auth::grpc::insecure_user), as every gRPC caller is.
async fn insecure_user(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    request
        .extensions_mut()
        .insert(crate::auth::grpc::insecure_user());
    next.run(request).await
}

/// The API port's rustls settings: the serving certificate, client
/// certificates verified against the cluster CA when presented (token
/// users present none), HTTP/2 (gRPC, and REST clients that offer it) or
/// HTTP/1.1.
fn api_tls(tls: &TlsSettings) -> Result<std::sync::Arc<rustls::ServerConfig>> {
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
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(std::sync::Arc::new(config))
}
