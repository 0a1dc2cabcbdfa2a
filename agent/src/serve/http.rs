//! The agent's HTTP endpoint: `/metrics` (Prometheus) and
//! `/logs/<namespace>/<pod>/<container>[?follow=true]` (container output,
//! what `rudderctl logs` reads), served by axum on the agent's runtime.

use std::{
    io::SeekFrom,
    net::SocketAddr,
    path::{Path as FsPath, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result};
use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path, RawQuery, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::dataplane::services::ServiceDataplane;

/// What the handlers read.
#[derive(Clone)]
struct Endpoint {
    services: Arc<Mutex<ServiceDataplane>>,
    /// Container logs, when the node runs pods.
    logs: Option<PathBuf>,
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
        .route("/logs/{namespace}/{pod}/{container}", get(container_log))
        .fallback(not_found)
        .with_state(Endpoint {
            services,
            logs,
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

fn text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

async fn container_log(
    State(endpoint): State<Endpoint>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(logs) = &endpoint.logs else {
        return not_found().await;
    };
    let follow = query
        .unwrap_or_default()
        .split('&')
        .any(|kv| kv == "follow=true" || kv == "follow=1");
    let Some(file) = find_log(logs, &namespace, &pod, &container) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no log of container {container:?} of pod {namespace}/{pod} on this node\n"),
        );
    };
    match send_log(file, follow).await {
        Ok(response) => response,
        Err(err) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the log of container {container:?} of pod {namespace}/{pod}: {err}\n"),
        ),
    }
}

/// `<logs>/<namespace>_<pod>_<uid>/<container>.log` of the newest uid.
fn find_log(logs: &FsPath, namespace: &str, pod: &str, container: &str) -> Option<PathBuf> {
    let prefix = format!("{namespace}_{pod}_");
    std::fs::read_dir(logs)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path().join(format!("{container}.log")))
        .filter(|p| p.exists())
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// How often a followed log is looked at for more.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// The log so far (with its length, so the response needs no chunked
/// framing); with `follow`, then whatever is appended until the client
/// goes away or the log is removed (the pod is gone).
async fn send_log(file: PathBuf, follow: bool) -> std::io::Result<Response> {
    let log = tokio::fs::File::open(&file).await?;
    let headers = [(header::CONTENT_TYPE, "text/plain")];
    if follow {
        let body = Body::from_stream(chunks(log, LogEnd::Removed(file)));
        return Ok((headers, body).into_response());
    }
    let len = log.metadata().await?.len();
    let body = Body::from_stream(chunks(log, LogEnd::Length(len)));
    Ok((headers, [(header::CONTENT_LENGTH, len.to_string())], body).into_response())
}

/// Where a log response ends.
enum LogEnd {
    /// After this many bytes (what the log held when asked).
    Length(u64),
    /// When this file is gone; until then, whatever is appended is sent.
    Removed(PathBuf),
}

/// The bytes of `log` as they come, until `end`.
fn chunks(
    log: tokio::fs::File,
    end: LogEnd,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    futures_util::stream::try_unfold(
        (log, end, vec![0u8; 64 * 1024]),
        |(mut log, mut end, mut buf)| async move {
            loop {
                let wanted = match &end {
                    LogEnd::Length(0) => return Ok(None),
                    LogEnd::Length(left) => {
                        buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX))
                    }
                    LogEnd::Removed(_) => buf.len(),
                };
                let n = log.read(&mut buf[..wanted]).await?;
                if n > 0 {
                    if let LogEnd::Length(left) = &mut end {
                        *left -= n as u64;
                    }
                    let chunk = Bytes::copy_from_slice(&buf[..n]);
                    return Ok(Some((chunk, (log, end, buf))));
                }
                let LogEnd::Removed(file) = &end else {
                    // Shorter than it was: truncated while being read.
                    return Ok(None);
                };
                if !file.exists() {
                    return Ok(None);
                }
                tokio::time::sleep(FOLLOW_POLL).await;
                // Notice truncation (a rotated log) rather than waiting forever.
                let len = tokio::fs::metadata(file)
                    .await
                    .map(|m| m.len())
                    .unwrap_or(0);
                if log.stream_position().await? > len {
                    log.seek(SeekFrom::Start(0)).await?;
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn log_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rudder-http-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("c.log");
        std::fs::write(&file, text).expect("write");
        file
    }

    #[tokio::test]
    async fn a_log_is_sent_whole_with_its_length() {
        let file = log_file("whole", "line 1\nline 2\n");
        let response = send_log(file.clone(), false).await.expect("response");
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "14");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        assert_eq!(&body[..], b"line 1\nline 2\n");
        let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
    }

    #[tokio::test]
    async fn a_followed_log_ends_when_the_log_is_removed() {
        let file = log_file("follow", "started\n");
        let response = send_log(file.clone(), true).await.expect("response");
        assert!(response.headers().get(header::CONTENT_LENGTH).is_none());
        let mut body = response.into_body().into_data_stream();
        let first = body.next().await.expect("a chunk").expect("bytes");
        assert_eq!(&first[..], b"started\n");
        std::fs::remove_dir_all(file.parent().expect("dir")).expect("remove");
        let rest = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("the response ends once the log is gone");
        assert!(rest.is_none());
    }
}
