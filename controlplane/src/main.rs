//! `rudder-controlplane`: the store, the API server and the node-sync
//! stream in one process.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Result;
use clap::Parser;
use rudder_controlplane::server::{self, ServerConfig};

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
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let http_listen = match args.http_listen.as_str() {
        "off" | "" => None,
        addr => Some(addr.parse().map_err(|err| {
            anyhow::anyhow!("--http-listen {addr:?} is not an address like 127.0.0.1:7401: {err}")
        })?),
    };
    let running = server::start(ServerConfig {
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
    wait_for_signal().await;
    tracing::info!("shutting down");
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
