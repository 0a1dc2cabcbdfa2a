//! Container logs over the agent's HTTP endpoint, as the kubelet serves
//! them: `/logs/<namespace>/<pod>/<container>` with `follow`, `previous`
//! (the run before a restart: the runtime keeps one, as `<container>.previous.log`),
//! `tailLines` and `limitBytes`. The embedded runtime writes a container's
//! output straight to its file (so a container outlives an agent restart),
//! which keeps no time per line: `sinceSeconds`, `sinceTime` and
//! `timestamps` are refused with a message saying so, not ignored.

use std::{
    io::SeekFrom,
    path::{Path as FsPath, PathBuf},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{Path, RawQuery, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// A plain-text response (what the agent's endpoint answers besides data).
pub(super) fn text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// What a log request asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct LogQuery {
    follow: bool,
    previous: bool,
    /// Only the last this many lines.
    tail_lines: Option<u64>,
    /// At most this many bytes (from the start of what is sent).
    limit_bytes: Option<u64>,
}

impl LogQuery {
    /// Reads the query string; the error is the response's text.
    fn parse(query: &str) -> Result<Self, String> {
        let mut parsed = LogQuery::default();
        let flag = |value: &str| matches!(value, "true" | "1" | "");
        let number = |name: &str, value: &str| {
            value
                .parse::<u64>()
                .map_err(|_| format!("{name}={value:?}: not a non-negative integer"))
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "follow" => parsed.follow = flag(value),
                "previous" => parsed.previous = flag(value),
                "tailLines" => parsed.tail_lines = Some(number(name, value)?),
                "limitBytes" => parsed.limit_bytes = Some(number(name, value)?),
                "sinceSeconds" | "sinceTime" | "timestamps"
                    if name != "timestamps" || flag(value) =>
                {
                    return Err(format!(
                        "{name} is not supported: rudder's embedded runtime writes container output straight to a file, which keeps no time per line"
                    ));
                }
                "timestamps" | "container" | "pretty" | "insecureSkipTLSVerifyBackend" => {}
                other => return Err(format!("unknown log option {other:?}")),
            }
        }
        Ok(parsed)
    }
}

/// The handler of `/logs/<namespace>/<pod>/<container>`; `logs` is the
/// runtime's log directory, `None` when the node runs no pods.
pub(super) async fn container_log(
    State(logs): State<Option<PathBuf>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(logs) = &logs else {
        return text(StatusCode::NOT_FOUND, "this node runs no pods\n".to_owned());
    };
    if let Err(message) = check_log_names(&namespace, &pod, &container) {
        return text(StatusCode::BAD_REQUEST, format!("{message}\n"));
    }
    let query = match LogQuery::parse(query.as_deref().unwrap_or_default()) {
        Ok(query) => query,
        Err(message) => return text(StatusCode::BAD_REQUEST, format!("{message}\n")),
    };
    let Some(dir) = find_pod_logs(logs, &namespace, &pod, &container) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no log of container {container:?} of pod {namespace}/{pod} on this node\n"),
        );
    };
    let file = if query.previous {
        let file = dir.join(format!("{container}.previous.log"));
        if !file.is_file() {
            return text(
                StatusCode::BAD_REQUEST,
                format!("previous terminated container {container:?} in pod {pod:?} not found\n"),
            );
        }
        file
    } else {
        dir.join(format!("{container}.log"))
    };
    match send_log(file, &query).await {
        Ok(response) => response,
        Err(err) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the log of container {container:?} of pod {namespace}/{pod}: {err}\n"),
        ),
    }
}

/// The request's names become file names: only what the API allows in
/// them passes (no `..`, no `/`, no `_` to match another pod's directory).
fn check_log_names(namespace: &str, pod: &str, container: &str) -> Result<(), String> {
    use rudder_api::validation::{is_dns_label, is_dns_subdomain};
    for (what, value, ok) in [
        ("namespace", namespace, is_dns_label(namespace)),
        ("pod name", pod, is_dns_subdomain(pod)),
        ("container name", container, is_dns_label(container)),
    ] {
        if !ok {
            return Err(format!(
                "{what} {value:?} is not valid: it must be a DNS-1123 {}",
                if what == "pod name" {
                    "subdomain"
                } else {
                    "label"
                }
            ));
        }
    }
    Ok(())
}

/// `<logs>/<namespace>_<pod>_<uid>/` of the newest uid that has a log of
/// `container`.
fn find_pod_logs(logs: &FsPath, namespace: &str, pod: &str, container: &str) -> Option<PathBuf> {
    let prefix = format!("{namespace}_{pod}_");
    std::fs::read_dir(logs)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .filter(|dir| dir.join(format!("{container}.log")).exists())
        .max_by_key(|dir| {
            std::fs::metadata(dir.join(format!("{container}.log")))
                .and_then(|m| m.modified())
                .ok()
        })
}

/// How often a followed log is looked at for more.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// How far back [`tail_offset`] reads at a time.
const TAIL_CHUNK: u64 = 64 * 1024;

/// The offset in `log` (of length `len`) where its last `lines` lines
/// begin (a last line without its newline counts).
async fn tail_offset(log: &mut tokio::fs::File, len: u64, lines: u64) -> std::io::Result<u64> {
    if lines == 0 {
        return Ok(len);
    }
    let mut newlines = 0;
    let mut end = len;
    let mut buf = vec![0u8; usize::try_from(TAIL_CHUNK).unwrap_or(65536)];
    // A final newline ends the last line; it does not start one.
    let mut skip_last = true;
    while end > 0 {
        let start = end.saturating_sub(TAIL_CHUNK);
        let n = usize::try_from(end - start).unwrap_or(0);
        log.seek(SeekFrom::Start(start)).await?;
        log.read_exact(&mut buf[..n]).await?;
        for i in (0..n).rev() {
            if buf[i] != b'\n' {
                skip_last = false;
                continue;
            }
            if skip_last {
                skip_last = false;
                continue;
            }
            newlines += 1;
            if newlines == lines {
                return Ok(start + i as u64 + 1);
            }
        }
        end = start;
    }
    Ok(0)
}

/// The log as asked (with its length, so the response needs no chunked
/// framing); with `follow`, then whatever is appended until the client
/// goes away or the log is removed (the pod is gone).
async fn send_log(file: PathBuf, query: &LogQuery) -> std::io::Result<Response> {
    let mut log = tokio::fs::File::open(&file).await?;
    let len = log.metadata().await?.len();
    let from = match query.tail_lines {
        Some(lines) => tail_offset(&mut log, len, lines).await?,
        None => 0,
    };
    log.seek(SeekFrom::Start(from)).await?;
    let headers = [(header::CONTENT_TYPE, "text/plain")];
    if query.follow && query.limit_bytes.is_none() {
        let body = Body::from_stream(chunks(log, LogEnd::Removed(file)));
        return Ok((headers, body).into_response());
    }
    let mut send = len - from;
    if let Some(limit) = query.limit_bytes {
        send = send.min(limit);
    }
    let body = Body::from_stream(chunks(log, LogEnd::Length(send)));
    Ok((headers, [(header::CONTENT_LENGTH, send.to_string())], body).into_response())
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
        let dir = std::env::temp_dir().join(format!("rudder-logs-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("c.log");
        std::fs::write(&file, text).expect("write");
        file
    }

    async fn body_of(file: &std::path::Path, query: &str) -> (Response, Vec<u8>) {
        let query = LogQuery::parse(query).expect("query");
        let response = send_log(file.to_path_buf(), &query)
            .await
            .expect("response");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        (Response::from_parts(parts, Body::empty()), bytes.to_vec())
    }

    #[test]
    fn log_requests_naming_paths_outside_the_log_directory_are_refused() {
        assert_eq!(check_log_names("default", "web-1.a", "app"), Ok(()));
        for (namespace, pod, container) in [
            ("..", "web", "app"),
            ("default", "..", "app"),
            ("default", "web", "../../../etc/shadow"),
            ("default", "web/../x", "app"),
            ("a_b", "web", "app"),
        ] {
            assert!(check_log_names(namespace, pod, container).is_err());
        }
    }

    #[tokio::test]
    async fn a_log_is_sent_whole_with_its_length() {
        let file = log_file("whole", "line 1\nline 2\n");
        let (response, body) = body_of(&file, "").await;
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "14");
        assert_eq!(body, b"line 1\nline 2\n");
        let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
    }

    #[tokio::test]
    async fn tail_lines_and_limit_bytes_cut_the_log_as_the_kubelet_does() {
        let file = log_file("tail", "one\ntwo\nthree\nfour\n");
        assert_eq!(body_of(&file, "tailLines=2").await.1, b"three\nfour\n");
        assert_eq!(body_of(&file, "tailLines=0").await.1, b"");
        assert_eq!(
            body_of(&file, "tailLines=10").await.1,
            b"one\ntwo\nthree\nfour\n"
        );
        assert_eq!(body_of(&file, "limitBytes=5").await.1, b"one\nt");
        std::fs::write(&file, "a\nb\nno newline").expect("write");
        assert_eq!(body_of(&file, "tailLines=2").await.1, b"b\nno newline");
        let big: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&file, &big).expect("write");
        assert_eq!(body_of(&file, "tailLines=1").await.1, b"line 19999\n");
        let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
    }

    #[test]
    fn options_without_per_line_times_are_refused_by_name() {
        for query in [
            "sinceSeconds=10",
            "sinceTime=2026-01-01T00:00:00Z",
            "timestamps=true",
        ] {
            let err = LogQuery::parse(query).expect_err(query);
            assert!(err.contains("keeps no time per line"), "{err}");
        }
        assert!(LogQuery::parse("tailLines=-1").is_err());
        assert!(LogQuery::parse("bogus=1").is_err());
        assert_eq!(
            LogQuery::parse("follow=true&previous=true&tailLines=3&timestamps=false"),
            Ok(LogQuery {
                follow: true,
                previous: true,
                tail_lines: Some(3),
                limit_bytes: None,
            })
        );
    }

    #[tokio::test]
    async fn a_followed_log_ends_when_the_log_is_removed() {
        let file = log_file("follow", "started\n");
        let query = LogQuery::parse("follow=true").expect("query");
        let response = send_log(file.clone(), &query).await.expect("response");
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
