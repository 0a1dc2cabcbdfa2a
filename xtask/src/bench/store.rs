//! `cargo xtask bench store`: rudder's store against etcd (Debian's
//! etcd-server) in one run, on the same machine and disk, both fsyncing.
//!
//! Both servers are driven by the same client code: rudder's store speaks
//! the etcd v3 wire API, so one tonic client measures both. Per run and
//! store: puts/s with 1 and with 64 concurrent clients (256-byte values),
//! p50/p99 put latency, watch delivery p99 (put sent -> event received by a
//! watcher), and peak resident memory. Medians over the runs go to
//! docs/benchmarks/store.md with rudder/etcd ratios. `RUDDER_BENCH_RUNS`
//! sets the number of runs (default 3); `RUDDER_BENCH_DIR` where the
//! stores keep their data (default: the target directory).
//!
//! Every phase is bounded in time and count; the servers listen on
//! 127.0.0.1 only and are killed when the run ends (also on failure).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use rudder_kvstore::proto::etcdserverpb::{
    PutRequest, RangeRequest, WatchCreateRequest, WatchRequest, kv_client::KvClient,
    watch_client::WatchClient, watch_request::RequestUnion,
};
use tonic::transport::Channel;

use crate::shell;

/// How long each throughput phase runs.
const PHASE: Duration = Duration::from_secs(5);
/// Most puts one client makes in a phase (bounds a very fast store).
const MAX_PUTS_PER_CLIENT: usize = 200_000;
/// Value size of every put.
const VALUE_SIZE: usize = 256;
/// Puts timed for watch delivery, and the gap between them.
const WATCH_PUTS: usize = 400;
const WATCH_GAP: Duration = Duration::from_millis(5);

/// Where the report goes, from the workspace root.
const REPORT: &str = "docs/benchmarks/store.md";
/// The heading from which the report's hand-written part starts; a run
/// rewrites everything above it.
const NOTES: &str = "## What made the difference";

/// One run's numbers for one store.
#[derive(Debug, Clone, Default)]
struct Sample {
    puts_1: f64,
    puts_64: f64,
    p50_1_ms: f64,
    p99_1_ms: f64,
    p50_64_ms: f64,
    p99_64_ms: f64,
    watch_p99_ms: f64,
    rss_mib: f64,
}

/// Runs the benchmark: `RUDDER_BENCH_RUNS` runs per store (default 3).
pub fn run() -> Result<()> {
    if cfg!(debug_assertions) {
        // The load generator shares the two cores with the servers; an
        // unoptimized client would measure itself. Run the optimized one.
        println!("bench store: re-running the optimized xtask");
        return shell::run(shell::cargo().args([
            "run",
            "--release",
            "-q",
            "-p",
            "xtask",
            "--",
            "bench",
            "store",
        ]));
    }
    let runs: usize = match std::env::var("RUDDER_BENCH_RUNS") {
        Ok(text) => text
            .parse()
            .with_context(|| format!("RUDDER_BENCH_RUNS={text:?} is not a number"))?,
        Err(_) => 3,
    };
    let etcd = which("etcd").context(
        "etcd is not installed; `cargo xtask setup` installs Debian's etcd-server (the reference)",
    )?;
    println!("bench store: building rudder-controlplane (release)");
    shell::run(shell::cargo().args(["build", "--release", "-p", "rudder-controlplane"]))?;
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| shell::workspace_root().join("target"));
    let rudder = target.join("release/rudder-controlplane");
    // The stores fsync into this directory: it must be on the disk being
    // measured (not a tmpfs, where fsync costs nothing).
    let scratch = std::env::var_os("RUDDER_BENCH_DIR")
        .map_or_else(|| target.clone(), PathBuf::from)
        .join(format!("bench-store-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut samples: Vec<(Vec<Sample>, Vec<Sample>)> = Vec::new();
    let result = (|| -> Result<()> {
        for run in 1..=runs.max(1) {
            let mut pair = (Vec::new(), Vec::new());
            for (label, is_rudder) in [("rudder", true), ("etcd", false)] {
                let dir = scratch.join(format!("{label}-{run}"));
                std::fs::create_dir_all(&dir)?;
                let port = free_port()?;
                let server = if is_rudder {
                    start_rudder(&rudder, &dir, port)?
                } else {
                    start_etcd(&etcd, &dir, port, free_port()?)?
                };
                let sample = runtime.block_on(measure(port, server.pid()))?;
                drop(server);
                println!(
                    "bench store: run {run} {label}: {:.0} puts/s (1 client), {:.0} puts/s (64), p99 {:.2}/{:.2} ms, watch p99 {:.2} ms, RSS {:.1} MiB",
                    sample.puts_1,
                    sample.puts_64,
                    sample.p99_1_ms,
                    sample.p99_64_ms,
                    sample.watch_p99_ms,
                    sample.rss_mib
                );
                if is_rudder {
                    pair.0.push(sample);
                } else {
                    pair.1.push(sample);
                }
            }
            samples.push(pair);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    let rudder: Vec<Sample> = samples.iter().flat_map(|p| p.0.clone()).collect();
    let etcd_samples: Vec<Sample> = samples.iter().flat_map(|p| p.1.clone()).collect();
    let report = report(&rudder, &etcd_samples, &etcd_version(&etcd));
    let out = shell::workspace_root().join(REPORT);
    // Hand-written analysis below the table survives a new run.
    let notes = std::fs::read_to_string(&out)
        .ok()
        .and_then(|old| old.find(NOTES).map(|at| old[at..].to_owned()))
        .unwrap_or_default();
    let written = if notes.is_empty() {
        report.clone()
    } else {
        format!("{report}\n{notes}")
    };
    std::fs::write(&out, written).with_context(|| format!("writing {}", out.display()))?;
    println!("{report}");
    println!("bench store: wrote {}", out.display());
    Ok(())
}

/// A server process, killed when dropped.
struct Server(Child);

impl Server {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_rudder(binary: &Path, dir: &Path, port: u16) -> Result<Server> {
    let child = Command::new(binary)
        .args(["--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--http-listen", "off", "--compaction-interval-seconds", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Server(child))
}

fn start_etcd(binary: &Path, dir: &Path, port: u16, peer_port: u16) -> Result<Server> {
    let client = format!("http://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let child = Command::new(binary)
        .args(["--name", "bench", "--data-dir"])
        .arg(dir)
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("bench={peer}")])
        .args(["--logger", "zap", "--log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Server(child))
}

fn etcd_version(binary: &Path) -> String {
    shell::output(Command::new(binary).arg("--version"))
        .and_then(|out| out.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "etcd".to_owned())
}

async fn connect(port: u16) -> Result<Channel> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = async {
            let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))?
                .connect()
                .await?;
            KvClient::new(channel.clone())
                .range(RangeRequest {
                    key: b"/".to_vec(),
                    ..RangeRequest::default()
                })
                .await?;
            anyhow::Ok(channel)
        };
        match attempt.await {
            Ok(channel) => return Ok(channel),
            Err(err) if Instant::now() > deadline => {
                return Err(err.context(format!("store on port {port} did not come up in 20 s")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn measure(port: u16, pid: u32) -> Result<Sample> {
    let channels = {
        let mut channels = Vec::new();
        for _ in 0..8 {
            channels.push(connect(port).await?);
        }
        channels
    };
    // Warm up connections and the server's first allocations.
    put_phase(&channels[..1], 1, Duration::from_millis(500), "warm").await?;
    let (puts_1, lat_1) = put_phase(&channels[..1], 1, PHASE, "one").await?;
    let (puts_64, lat_64) = put_phase(&channels, 64, PHASE, "many").await?;
    let watch_p99 = watch_delivery(&channels[0]).await?;
    Ok(Sample {
        puts_1,
        puts_64,
        p50_1_ms: percentile(&lat_1, 50.0),
        p99_1_ms: percentile(&lat_1, 99.0),
        p50_64_ms: percentile(&lat_64, 50.0),
        p99_64_ms: percentile(&lat_64, 99.0),
        watch_p99_ms: watch_p99,
        rss_mib: peak_rss_mib(pid)?,
    })
}

/// `clients` concurrent writers over `channels` for `duration`; returns
/// puts/s and every latency in ms.
async fn put_phase(
    channels: &[Channel],
    clients: usize,
    duration: Duration,
    tag: &str,
) -> Result<(f64, Vec<f64>)> {
    let value = Arc::new(vec![b'x'; VALUE_SIZE]);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let mut kv = KvClient::new(channels[client % channels.len()].clone());
        let value = value.clone();
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in 0..MAX_PUTS_PER_CLIENT {
                if Instant::now() >= deadline {
                    break;
                }
                let began = Instant::now();
                kv.put(PutRequest {
                    key: format!("/bench/{tag}/{client}/{}", i % 1000).into_bytes(),
                    value: value.to_vec(),
                    ..PutRequest::default()
                })
                .await?;
                latencies.push(began.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let rate = all.len() as f64 / elapsed;
    Ok((rate, all))
}

/// p99 of the time from sending a put to a watcher receiving its event.
async fn watch_delivery(channel: &Channel) -> Result<f64> {
    let (requests, receiver) = tokio::sync::mpsc::channel(1);
    requests
        .send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"/watch/".to_vec(),
                range_end: b"/watch0".to_vec(),
                ..WatchCreateRequest::default()
            })),
        })
        .await?;
    let mut stream = WatchClient::new(channel.clone())
        .watch(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await?
        .into_inner();
    // The first response confirms the watch exists.
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .context("watch was not created in 10 s")??;
    let sent: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; WATCH_PUTS]));
    let writer = {
        let sent = sent.clone();
        let mut kv = KvClient::new(channel.clone());
        tokio::spawn(async move {
            for i in 0..WATCH_PUTS {
                if let Ok(mut sent) = sent.lock() {
                    sent[i] = Some(Instant::now());
                }
                kv.put(PutRequest {
                    key: format!("/watch/{i}").into_bytes(),
                    value: vec![b'w'; VALUE_SIZE],
                    ..PutRequest::default()
                })
                .await?;
                tokio::time::sleep(WATCH_GAP).await;
            }
            anyhow::Ok(())
        })
    };
    let mut delays = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while delays.len() < WATCH_PUTS {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(response) = tokio::time::timeout(left, stream.message())
            .await
            .context("watch events did not all arrive in 60 s")??
        else {
            bail!("watch stream ended early");
        };
        let received = Instant::now();
        for event in response.events {
            let key = String::from_utf8_lossy(&event.kv.unwrap_or_default().key).into_owned();
            let index: usize = key.trim_start_matches("/watch/").parse()?;
            let sent_at = sent.lock().ok().and_then(|s| s[index]);
            if let Some(sent_at) = sent_at {
                delays.push(received.duration_since(sent_at).as_secs_f64() * 1000.0);
            }
        }
    }
    writer.await??;
    Ok(percentile(&delays, 99.0))
}

fn percentile(values: &[f64], pct: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short vector"
    )]
    let index = ((pct / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Peak resident set (VmHWM) of the server process.
fn peak_rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no VmHWM in /proc/PID/status")?;
    Ok(kib / 1024.0)
}

fn median(samples: &[Sample], field: impl Fn(&Sample) -> f64) -> f64 {
    let values: Vec<f64> = samples.iter().map(field).collect();
    percentile(&values, 50.0)
}

fn report(rudder: &[Sample], etcd: &[Sample], etcd_version: &str) -> String {
    type Row = (&'static str, fn(&Sample) -> f64, bool);
    let rows: [Row; 8] = [
        ("puts/s, 1 client", |s| s.puts_1, true),
        ("puts/s, 64 clients", |s| s.puts_64, true),
        ("put latency p50, 1 client (ms)", |s| s.p50_1_ms, false),
        ("put latency p99, 1 client (ms)", |s| s.p99_1_ms, false),
        ("put latency p50, 64 clients (ms)", |s| s.p50_64_ms, false),
        ("put latency p99, 64 clients (ms)", |s| s.p99_64_ms, false),
        ("watch delivery p99 (ms)", |s| s.watch_p99_ms, false),
        ("peak RSS (MiB)", |s| s.rss_mib, false),
    ];
    let mut out = String::new();
    out.push_str("# Store benchmark: rudder vs etcd\n\n");
    out.push_str(&format!(
        "Written by `cargo xtask bench store`: medians of {} run(s) per store, \
         one store at a time on the same machine and disk, both fsyncing every \
         acknowledged write ({etcd_version}, single member). 256-byte values; \
         1 client, then 64 concurrent clients over 8 connections, {} s each; \
         watch delivery is the time from sending a put to a watcher receiving \
         its event ({WATCH_PUTS} puts, {} ms apart). The same tonic client \
         drives both (rudder speaks the etcd v3 wire API). Absolute numbers on \
         these shared 2-core machines drift; compare the ratios.\n\n",
        rudder.len(),
        PHASE.as_secs(),
        WATCH_GAP.as_millis(),
    ));
    out.push_str("| metric | rudder | etcd | rudder / etcd | better |\n|---|---:|---:|---:|---|\n");
    for (name, field, higher_is_better) in rows {
        let r = median(rudder, field);
        let e = median(etcd, field);
        let ratio = if e > 0.0 { r / e } else { 0.0 };
        let better = if (ratio >= 1.0) == higher_is_better {
            "rudder"
        } else {
            "etcd"
        };
        out.push_str(&format!(
            "| {name} | {r:.2} | {e:.2} | {ratio:.2} | {better} |\n"
        ));
    }
    out
}
