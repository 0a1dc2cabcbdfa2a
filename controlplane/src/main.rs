//! `rudder-controlplane`: the store, the API server and the node-sync
//! stream in one process, with the controllers and the scheduler running
//! in whichever replica holds the leader lease.

use std::collections::BTreeMap;
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use clap::Parser;
use rudder_client::{ClientIdentity, Kubeconfig};
use rudder_controlplane::{
    apiserver::allocation::{self, ServiceRanges},
    auth::{Authenticator, BootstrapTokens, MASTERS_GROUP, StaticTokens, csr::NodeCertificates},
    authz::bootstrap,
    leader::LeaderConfig,
    manager::{ControllerClients, ControllerConfig, ControllerManager},
    pki::{self, ClientProfile, ClusterPki, IssuedCert},
    server::{self, Security, ServerConfig, TlsSettings},
};
use rudder_kvstore::raft::{RaftTiming, Replication};

mod init;

#[derive(Parser)]
#[command(name = "rudder-controlplane", version, about = "rudder control plane")]
struct Args {
    /// Directory holding the store (created if missing).
    #[arg(
        long,
        global = true,
        env = "RUDDER_DATA_DIR",
        default_value = "/var/lib/rudder/controlplane"
    )]
    data_dir: PathBuf,
    /// The API address: gRPC (resources, node sync, the etcd-compatible
    /// store API) and the Kubernetes REST API kubectl uses, on one port.
    #[arg(
        long,
        global = true,
        env = "RUDDER_LISTEN",
        default_value = "127.0.0.1:7400"
    )]
    listen: SocketAddr,
    /// A second address serving the same as --listen (it was the REST API's
    /// own port before the two shared one; "off" to disable).
    #[arg(
        long,
        global = true,
        env = "RUDDER_HTTP_LISTEN",
        default_value = "127.0.0.1:7401"
    )]
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
    #[command(flatten)]
    security: SecurityArgs,
    /// Without a subcommand: serve.
    #[command(subcommand)]
    command: Option<init::Command>,
}

/// TLS and authentication.
#[derive(clap::Args)]
struct SecurityArgs {
    /// Where the cluster CA (`ca.crt`, `ca.key`) and the admin kubeconfig
    /// live; a CA is made there on first start unless one is given.
    /// Default: `<data-dir>/pki`.
    #[arg(long, global = true, env = "RUDDER_PKI_DIR")]
    pki_dir: Option<PathBuf>,
    /// The serving certificate to use instead of one signed by the
    /// cluster CA at start (with --tls-private-key-file).
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The serving certificate's key.
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// Another name or address clients reach this server by, for the
    /// serving certificate (repeat for each).
    #[arg(long = "tls-san", value_name = "NAME|IP")]
    tls_sans: Vec<String>,
    /// The address written into the admin kubeconfig (default: the
    /// --listen address, or 127.0.0.1 when that is unspecified).
    #[arg(long, global = true)]
    advertise_address: Option<std::net::IpAddr>,
    /// How long node certificates (`rudder-agent join`, renewals) are
    /// valid, in seconds; agents renew at two thirds of it.
    #[arg(long, default_value_t = 365 * 24 * 3600, value_parser = clap::value_parser!(u64).range(60..=10 * 365 * 24 * 3600))]
    node_cert_validity_seconds: u64,
    /// Static bearer tokens (kube-apiserver's --token-auth-file format:
    /// `token,user,uid,"group1,group2"` per line).
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Serve the raw etcd-compatible store API (KV, Watch, Lease, ...) to
    /// system:masters. It bypasses validation: off unless needed.
    #[arg(long)]
    enable_etcd_api: bool,
    /// Serve plaintext with no authentication at all: anyone who can reach
    /// the ports can do anything. For throwaway local experiments only.
    #[arg(long)]
    insecure_plaintext: bool,
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
    if let Some(command) = &args.command {
        return init::run(&args, command);
    }
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
    let security = security(&args, http_listen)?;
    let running = server::start(ServerConfig {
        replication,
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        http_listen,
        compaction_interval: (args.compaction_interval_seconds > 0)
            .then(|| Duration::from_secs(args.compaction_interval_seconds)),
        security: security.server.clone(),
        etcd_api: args.security.enable_etcd_api,
    })
    .await?;
    if let Some(pki) = &security.pki {
        let path = admin_kubeconfig(&args, pki, running.grpc_addr)?;
        println!(
            "rudder-controlplane: admin credentials in {}",
            path.display()
        );
        println!(
            "rudder-controlplane: nodes join with the CA hash {}",
            pki.ca_hash()
        );
    }
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
        let connect = |user: &'static str| {
            let config = controller_client_config(&security, running.grpc_addr, user);
            async move { anyhow::Ok(rudder_client::Client::connect_with(&config?).await?) }
        };
        let clients = ControllerClients {
            controllers: connect(bootstrap::CONTROLLER_MANAGER_USER).await?,
            scheduler: connect(bootstrap::SCHEDULER_USER).await?,
        };
        let identity = format!(
            "{}-{}-{}",
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim(),
            std::process::id(),
            running.grpc_addr
        );
        Some(ControllerManager::start_with(
            clients,
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

/// What [`server::start`] needs and what the rest of `main` uses.
struct SecuritySetup {
    server: Security,
    pki: Option<std::sync::Arc<ClusterPki>>,
}

fn security(args: &Args, http_listen: Option<SocketAddr>) -> Result<SecuritySetup> {
    let sec = &args.security;
    if sec.insecure_plaintext {
        tracing::warn!(
            "--insecure-plaintext: the API is served WITHOUT TLS and WITHOUT authentication; \
             anyone who can reach {} can run any command on every node",
            args.listen
        );
        eprintln!(
            "WARNING: --insecure-plaintext: no TLS, no authentication; never use this on a network others can reach"
        );
        return Ok(SecuritySetup {
            server: Security::InsecurePlaintext,
            pki: None,
        });
    }
    if args.replication_requested() {
        anyhow::bail!(
            "replicated control planes (--peer) still talk Raft in plaintext: start them with --insecure-plaintext"
        );
    }
    let pki_dir = args.pki_dir();
    let pki = ClusterPki::load_or_create(&pki_dir)?;
    let serving = match (&sec.tls_cert_file, &sec.tls_private_key_file) {
        (Some(cert), Some(key)) => IssuedCert {
            cert_pem: std::fs::read_to_string(cert)
                .with_context(|| format!("--tls-cert-file {}", cert.display()))?,
            key_pem: std::fs::read_to_string(key)
                .with_context(|| format!("--tls-private-key-file {}", key.display()))?,
        },
        _ => {
            let (names, ips) = serving_names(args, http_listen);
            let mut serving = pki.issue_serving(&names, &ips)?;
            // The CA travels with the chain: `rudder-agent join` finds it
            // there and checks it against the pinned hash.
            serving.cert_pem.push_str(pki.ca_pem());
            serving
        }
    };
    let tokens = match &sec.token_auth_file {
        Some(path) => StaticTokens::load(path)?,
        None => StaticTokens::default(),
    };
    let pki = std::sync::Arc::new(pki);
    Ok(SecuritySetup {
        server: Security::Tls(TlsSettings {
            client_ca_pem: pki.ca_pem().to_owned(),
            serving,
            authenticator: Authenticator::new(tokens)
                .with_bootstrap_tokens(BootstrapTokens::in_dir(&pki_dir)),
            node_certificates: Some(NodeCertificates::new(
                pki.clone(),
                Duration::from_secs(sec.node_cert_validity_seconds),
            )),
        }),
        pki: Some(pki),
    })
}

impl Args {
    fn replication_requested(&self) -> bool {
        !self.peers.is_empty()
    }

    /// `--pki-dir`, or `<data-dir>/pki`.
    fn pki_dir(&self) -> PathBuf {
        self.security
            .pki_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("pki"))
    }
}

/// The serving certificate's names: the host name, localhost, the listen
/// and advertise addresses, and every --tls-san.
fn serving_names(
    args: &Args,
    http_listen: Option<SocketAddr>,
) -> (Vec<String>, Vec<std::net::IpAddr>) {
    let mut names = vec!["localhost".to_owned()];
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let hostname = hostname.trim();
    if !hostname.is_empty() {
        names.push(hostname.to_owned());
    }
    let mut ips: Vec<std::net::IpAddr> = vec![
        std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::Ipv6Addr::LOCALHOST.into(),
    ];
    ips.extend(
        [Some(args.listen), http_listen]
            .into_iter()
            .flatten()
            .map(|addr| addr.ip())
            .filter(|ip| !ip.is_unspecified()),
    );
    ips.extend(args.security.advertise_address);
    for san in &args.security.tls_sans {
        match san.parse() {
            Ok(ip) => ips.push(ip),
            Err(_) => names.push(san.clone()),
        }
    }
    ips.sort();
    ips.dedup();
    names.dedup();
    (names, ips)
}

/// Writes `<pki>/admin.kubeconfig` on first start (an existing one is
/// kept: an operator may have moved it or changed it).
fn admin_kubeconfig(args: &Args, pki: &ClusterPki, grpc: SocketAddr) -> Result<PathBuf> {
    let path = pki.dir().join("admin.kubeconfig");
    if path.exists() {
        return Ok(path);
    }
    let ip = args.security.advertise_address.unwrap_or(match grpc.ip() {
        ip if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip => ip,
    });
    let server = format!("https://{}", SocketAddr::new(ip, grpc.port()));
    let cert = pki.issue_client(&ClientProfile::new("kubernetes-admin", &[MASTERS_GROUP]))?;
    let config = Kubeconfig::single(
        "rudder",
        &server,
        pki.ca_pem(),
        "kubernetes-admin",
        Kubeconfig::certificate_user(&ClientIdentity {
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
        }),
    );
    pki::write_private(&path, &config.to_yaml())?;
    Ok(path)
}

/// The in-process controllers and scheduler call the API like any client,
/// each as its own `user` (no group: RBAC's bootstrap bindings name the
/// users) with a certificate of the cluster CA that lives only in memory.
fn controller_client_config(
    security: &SecuritySetup,
    grpc: SocketAddr,
    user: &str,
) -> Result<rudder_client::ClientConfig> {
    let local = SocketAddr::new(
        match grpc.ip() {
            ip if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
            ip => ip,
        },
        grpc.port(),
    );
    let Some(pki) = &security.pki else {
        return Ok(rudder_client::ClientConfig::insecure(&local.to_string()));
    };
    let cert = pki.issue_client(&ClientProfile::new(user, &[]))?;
    Ok(rudder_client::ClientConfig {
        server: format!("https://{local}"),
        credentials: rudder_client::Credentials {
            ca_pem: Some(pki.ca_pem().to_owned()),
            server_name: Some("localhost".to_owned()),
            identity: Some(ClientIdentity {
                cert_pem: cert.cert_pem,
                key_pem: cert.key_pem,
            }),
            token: None,
        },
        reload_from: None,
    })
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
