//! The agent's HTTP endpoint: `/metrics` (Prometheus) and
//! `/logs/<namespace>/<pod>/<container>[?follow=true]` (container output,
//! what `rudderctl logs` reads).

use std::{
    io::{BufRead, BufReader, Read, Seek, SeekFrom, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result};

use crate::dataplane::services::ServiceDataplane;

/// Serves on `listen` from threads of its own.
///
/// # Errors
/// When the address cannot be bound.
pub fn serve(
    listen: SocketAddr,
    services: Arc<Mutex<ServiceDataplane>>,
    logs: Option<PathBuf>,
) -> Result<()> {
    let listener =
        TcpListener::bind(listen).with_context(|| format!("agent endpoint on {listen}"))?;
    tracing::info!(%listen, "metrics at /metrics, container logs at /logs/<namespace>/<pod>/<container>");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let services = Arc::clone(&services);
            let logs = logs.clone();
            std::thread::spawn(move || {
                let _ = handle(stream, &services, logs.as_deref());
            });
        }
    });
    Ok(())
}

fn handle(
    mut stream: TcpStream,
    services: &Mutex<ServiceDataplane>,
    logs: Option<&Path>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = String::new();
    BufReader::new(&stream).read_line(&mut request)?;
    let target = request.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path == "/metrics" {
        let body = super::lock(services).metrics();
        return respond(&mut stream, "200 OK", "text/plain; version=0.0.4", &body);
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let (Some(logs), ["logs", namespace, pod, container]) = (logs, parts.as_slice()) {
        let follow = query
            .split('&')
            .any(|kv| kv == "follow=true" || kv == "follow=1");
        return match find_log(logs, namespace, pod, container) {
            Some(file) => send_log(&mut stream, &file, follow),
            None => respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                &format!(
                    "no log of container {container:?} of pod {namespace}/{pod} on this node\n"
                ),
            ),
        };
    }
    respond(
        &mut stream,
        "404 Not Found",
        "text/plain",
        "not found: try /metrics or /logs/<namespace>/<pod>/<container>\n",
    )
}

fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &str) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// `<logs>/<namespace>_<pod>_<uid>/<container>.log` of the newest uid.
fn find_log(logs: &Path, namespace: &str, pod: &str, container: &str) -> Option<PathBuf> {
    let prefix = format!("{namespace}_{pod}_");
    std::fs::read_dir(logs)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path().join(format!("{container}.log")))
        .filter(|p| p.exists())
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// The log so far; with `follow`, then whatever is appended until the
/// client goes away or the log is removed (the pod is gone).
fn send_log(stream: &mut TcpStream, file: &Path, follow: bool) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
    )?;
    let mut log = std::fs::File::open(file)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = log.read(&mut buf)?;
        if n > 0 {
            stream.write_all(&buf[..n])?;
            continue;
        }
        if !follow || !file.exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
        // Notice truncation (a rotated log) rather than waiting forever.
        let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        if log.stream_position()? > len {
            log.seek(SeekFrom::Start(0))?;
        }
    }
}
