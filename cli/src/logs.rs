//! `rudderctl logs POD [-c CONTAINER] [-f] [-p] [--tail N] [--limit-bytes N]`:
//! a container's output, read
//! from the agent of the pod's node (its endpoint is announced on the Node
//! object, as the kubelet's is).

use std::io::{BufRead, BufReader, Read, Write};

use anyhow::{Context, Result, bail};
use rudder_api::core::{Node, Pod};

use crate::server::{ServerArgs, block_on, explain};

/// Node annotation with the agent's HTTP endpoint.
const AGENT_ENDPOINT_ANNOTATION: &str = "rudder.dev/agent-endpoint";

/// Arguments of `rudderctl logs`.
#[derive(clap::Args)]
pub struct LogsArgs {
    /// The pod.
    pod: String,
    /// The container (default: the pod's only container).
    #[arg(short, long)]
    container: Option<String>,
    /// Keep printing what the container writes.
    #[arg(short, long)]
    follow: bool,
    /// Namespace (default "default").
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The run before the container's last restart.
    #[arg(short, long)]
    previous: bool,
    /// Only the last N lines (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    tail: i64,
    /// At most this many bytes.
    #[arg(long)]
    limit_bytes: Option<u64>,
    /// Only lines newer than this (refused: the embedded runtime keeps no time per line).
    #[arg(long)]
    since: Option<String>,
    /// Prefix lines with their time (refused, for the same reason).
    #[arg(long)]
    timestamps: bool,
}

impl LogsArgs {
    /// The agent's query string for these flags ("" or `?a=b&...`).
    fn query(&self) -> String {
        let mut pairs = Vec::new();
        if self.follow {
            pairs.push("follow=true".to_owned());
        }
        if self.previous {
            pairs.push("previous=true".to_owned());
        }
        if self.tail >= 0 {
            pairs.push(format!("tailLines={}", self.tail));
        }
        if let Some(limit) = self.limit_bytes {
            pairs.push(format!("limitBytes={limit}"));
        }
        if self.since.is_some() {
            pairs.push("sinceSeconds=0".to_owned());
        }
        if self.timestamps {
            pairs.push("timestamps=true".to_owned());
        }
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    }
}

/// Runs `rudderctl logs`.
pub fn run(args: LogsArgs, server: &ServerArgs) -> Result<()> {
    let (endpoint, container) = block_on(async {
        let client = server.connect().await?;
        let pod: Pod = client
            .get(&args.namespace, &args.pod)
            .await
            .map_err(explain)?;
        let container = match &args.container {
            Some(name) => {
                if !pod.spec.containers.iter().any(|c| &c.name == name) {
                    let names: Vec<&str> = pod
                        .spec
                        .containers
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect();
                    bail!(
                        "pod {}/{} has no container {name:?} (it has: {})",
                        args.namespace,
                        args.pod,
                        names.join(", ")
                    );
                }
                name.clone()
            }
            None => match pod.spec.containers.as_slice() {
                [only] => only.name.clone(),
                many => {
                    let names: Vec<&str> = many.iter().map(|c| c.name.as_str()).collect();
                    bail!(
                        "pod {}/{} has several containers; choose one with -c ({})",
                        args.namespace,
                        args.pod,
                        names.join(", ")
                    );
                }
            },
        };
        let Some(node_name) = pod.spec.node_name.clone().filter(|n| !n.is_empty()) else {
            bail!(
                "pod {}/{} is not bound to a node yet: no logs",
                args.namespace,
                args.pod
            );
        };
        let node: Node = client.get("", &node_name).await.map_err(explain)?;
        let Some(endpoint) = node
            .metadata
            .annotations
            .get(AGENT_ENDPOINT_ANNOTATION)
            .cloned()
        else {
            bail!(
                "node {node_name} announces no agent endpoint (start its agent with --metrics-listen)"
            );
        };
        Ok((endpoint, container))
    })?;
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let path = format!(
        "/logs/{}/{}/{container}{}",
        args.namespace,
        args.pod,
        args.query()
    );
    let mut stream =
        std::net::TcpStream::connect(address).with_context(|| format!("agent at {address}"))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    // Status line and headers, then the body as it comes.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            bail!("agent at {address} closed the connection");
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("HTTP/1.1 200") {
        let mut body = String::new();
        let _ = stream.read_to_string(&mut body);
        bail!("{}", body.trim());
    }
    let mut out = std::io::stdout();
    // A followed log has no length: the agent sends it in chunks.
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        copy_chunked(&mut BufReader::new(stream), &mut out)?;
    } else {
        std::io::copy(&mut stream, &mut out)?;
    }
    out.flush()?;
    Ok(())
}

/// Copies a chunked HTTP/1.1 body to `out`, flushing after each chunk.
fn copy_chunked(body: &mut impl BufRead, out: &mut impl Write) -> Result<()> {
    loop {
        let mut size_line = String::new();
        if body.read_line(&mut size_line)? == 0 {
            return Ok(());
        }
        let size = size_line.trim().split(';').next().unwrap_or_default();
        let size = u64::from_str_radix(size, 16)
            .with_context(|| format!("bad chunk size {size:?} from the agent"))?;
        if size == 0 {
            return Ok(());
        }
        std::io::copy(&mut body.by_ref().take(size), out)?;
        out.flush()?;
        let mut crlf = String::new();
        body.read_line(&mut crlf)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_log_is_copied_without_its_framing() {
        let mut body: &[u8] = b"6\r\nline 1\r\n7\r\n\nline 2\r\n0\r\n\r\n";
        let mut out = Vec::new();
        copy_chunked(&mut body, &mut out).expect("chunked body");
        assert_eq!(out, b"line 1\nline 2");
    }
}
