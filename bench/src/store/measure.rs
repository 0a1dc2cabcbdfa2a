//! The load: puts from 1 and 64 clients, and watch delivery, through the
//! etcd v3 wire API that both stores speak.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use rudder_kvstore::proto::etcdserverpb::{
    PutRequest, RangeRequest, WatchCreateRequest, WatchRequest, kv_client::KvClient,
    watch_client::WatchClient, watch_request::RequestUnion,
};
use tonic::transport::Channel;

use super::{PHASE, Sample, servers::peak_rss_mib};
use crate::stats::percentile;

/// Most puts one client makes in a phase (bounds a very fast store).
const MAX_PUTS_PER_CLIENT: usize = 200_000;
/// Value size of every put.
const VALUE_SIZE: usize = 256;
/// Puts timed for watch delivery, and the gap between them.
pub const WATCH_PUTS: usize = 400;
pub const WATCH_GAP: Duration = Duration::from_millis(5);

/// A channel to the store on `port`, once it answers a range.
pub(super) async fn connect(port: u16) -> Result<Channel> {
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

/// Measures the store on `port` whose server process is `pid`.
pub async fn measure(port: u16, pid: u32) -> Result<Sample> {
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
        p50_1_ms: percentile(&lat_1, 0.5),
        p99_1_ms: percentile(&lat_1, 0.99),
        p50_64_ms: percentile(&lat_64, 0.5),
        p99_64_ms: percentile(&lat_64, 0.99),
        watch_p99_ms: watch_p99,
        rss_mib: peak_rss_mib(pid)?,
    })
}

/// `clients` concurrent writers over `channels` for `duration`; returns
/// puts/s and every latency in ms.
pub(super) async fn put_phase(
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
pub(super) async fn watch_delivery(channel: &Channel) -> Result<f64> {
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
    Ok(percentile(&delays, 0.99))
}
