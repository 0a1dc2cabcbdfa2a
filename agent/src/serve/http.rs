//! The agent's HTTP endpoint: `/metrics` (Prometheus) and
//! `/logs/<namespace>/<pod>/<container>` (container output, what `rudderctl
//! logs` reads; see [`super::logs`]), served by axum on the agent's runtime.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use anyhow::{Context, Result};
use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use super::logs::text;
use crate::dataplane::services::ServiceDataplane;

/// What the handlers read.
#[derive(Clone)]
struct Endpoint {
    services: Arc<Mutex<ServiceDataplane>>,
    /// The node's bpffs directory (bandwidth metrics are read from its maps).
    bpffs_dir: PathBuf,
}

/// Binds `listen` and serves on a task of its own.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(
    listen: SocketAddr,
    services: Arc<Mutex<ServiceDataplane>>,
    logs: Option<PathBuf>,
    bpffs_dir: PathBuf,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("agent endpoint on {listen}"))?;
    tracing::info!(%listen, "metrics at /metrics, container logs at /logs/<namespace>/<pod>/<container>");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route(
            "/logs/{namespace}/{pod}/{container}",
            get(super::logs::container_log).with_state(logs),
        )
        .fallback(not_found)
        .with_state(Endpoint {
            services,
            bpffs_dir,
        });
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(%err, "agent endpoint stopped");
        }
    });
    Ok(())
}

async fn metrics(State(endpoint): State<Endpoint>) -> Response {
    // Reading the maps makes system calls.
    let body = tokio::task::block_in_place(|| {
        let mut body = super::lock(&endpoint.services).metrics();
        body.push_str(&crate::bandwidth::metrics::render(&endpoint.bpffs_dir));
        body
    });
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn not_found() -> Response {
    text(
        StatusCode::NOT_FOUND,
        "not found: try /metrics or /logs/<namespace>/<pod>/<container>\n".to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_paths_say_what_is_served() {
        let response = not_found().await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
