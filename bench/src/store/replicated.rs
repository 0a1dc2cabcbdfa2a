//! The 3-replica mode: rudder's store as three Raft replicas against a
//! 3-member etcd cluster, all on 127.0.0.1, each member with its own data
//! directory on the same disk. Clients spread over all three endpoints
//! (followers forward writes to the leader in both stores). Besides the
//! puts and watch delivery of the single-node mode: linearizable and
//! serializable reads/s, and failover: the leader is killed with SIGKILL
//! under load, and the time from the kill to the first acknowledged put
//! sent after it is measured.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use rudder_kvstore::proto::etcdserverpb::{
    PutRequest, RangeRequest, StatusRequest, kv_client::KvClient,
    maintenance_client::MaintenanceClient,
};
use tonic::transport::Channel;

use super::{
    PHASE,
    measure::{connect, put_phase, watch_delivery},
    servers::{Server, free_port, peak_rss_mib, start_etcd_member, start_rudder_replica},
};
use crate::stats::percentile;

/// Members of a replicated store.
pub const MEMBERS: usize = 3;
/// Concurrent readers in the read phases.
const READERS: usize = 16;
/// How long failover may take before the run gives up on it.
const FAILOVER_LIMIT: Duration = Duration::from_secs(15);

/// One run's numbers for one replicated store.
#[derive(Debug, Clone, Default)]
pub struct ReplicatedSample {
    pub puts_1: f64,
    pub puts_64: f64,
    pub p50_1_ms: f64,
    pub p99_1_ms: f64,
    pub p50_64_ms: f64,
    pub p99_64_ms: f64,
    pub linearizable_reads: f64,
    pub serializable_reads: f64,
    pub watch_p99_ms: f64,
    pub failover_ms: f64,
    /// The largest peak RSS of the members.
    pub rss_mib: f64,
}

/// Which store a cluster runs.
#[derive(Debug, Clone, Copy)]
pub enum Flavour {
    Rudder,
    Etcd,
}

/// A running cluster: members by index, killed when dropped.
pub struct Cluster {
    ports: Vec<u16>,
    members: Vec<Option<Server>>,
}

impl Cluster {
    /// Starts `flavour`'s three members with data under `dir`.
    pub fn start(flavour: Flavour, binary: &Path, dir: &Path) -> Result<Self> {
        let ports = (0..MEMBERS)
            .map(|_| free_port())
            .collect::<Result<Vec<_>>>()?;
        let peer_ports = (0..MEMBERS)
            .map(|_| free_port())
            .collect::<Result<Vec<_>>>()?;
        let mut members = Vec::new();
        for i in 0..MEMBERS {
            let data = dir.join(format!("member-{}", i + 1));
            std::fs::create_dir_all(&data)?;
            members.push(Some(match flavour {
                Flavour::Rudder => start_rudder_replica(binary, &data, &ports, i)?,
                Flavour::Etcd => start_etcd_member(binary, &data, &ports, &peer_ports, i)?,
            }));
        }
        Ok(Self { ports, members })
    }
}

/// The index of the member that leads, as the members report it through
/// Maintenance.Status (the same call for both stores).
async fn leader(ports: &[u16]) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, port) in ports.iter().enumerate() {
            let Ok(channel) = Channel::from_shared(format!("http://127.0.0.1:{port}"))?
                .connect()
                .await
            else {
                continue;
            };
            if let Ok(status) = MaintenanceClient::new(channel)
                .status(StatusRequest {})
                .await
            {
                let status = status.into_inner();
                let me = status.header.map_or(0, |h| h.member_id);
                if status.leader != 0 && status.leader == me {
                    return Ok(i);
                }
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("no member reported itself leader in 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Measures `cluster`.
pub async fn measure(cluster: &mut Cluster) -> Result<ReplicatedSample> {
    let mut channels = Vec::new();
    for i in 0..8 {
        channels.push(connect(cluster.ports[i % MEMBERS]).await?);
    }
    put_phase(&channels[..1], 1, Duration::from_millis(500), "warm").await?;
    let (puts_1, lat_1) = put_phase(&channels[..1], 1, PHASE, "one").await?;
    let (puts_64, lat_64) = put_phase(&channels, 64, PHASE, "many").await?;
    let linearizable_reads = read_phase(&channels, false).await?;
    let serializable_reads = read_phase(&channels, true).await?;
    let watch_p99_ms = watch_delivery(&channels[0]).await?;
    let mut rss_mib: f64 = 0.0;
    for server in cluster.members.iter().flatten() {
        rss_mib = rss_mib.max(peak_rss_mib(server.pid())?);
    }
    let failover_ms = failover(cluster).await?;
    Ok(ReplicatedSample {
        puts_1,
        puts_64,
        p50_1_ms: percentile(&lat_1, 0.5),
        p99_1_ms: percentile(&lat_1, 0.99),
        p50_64_ms: percentile(&lat_64, 0.5),
        p99_64_ms: percentile(&lat_64, 0.99),
        linearizable_reads,
        serializable_reads,
        watch_p99_ms,
        failover_ms,
        rss_mib,
    })
}

/// Reads/s of one key by [`READERS`] clients over `channels` for [`PHASE`].
async fn read_phase(channels: &[Channel], serializable: bool) -> Result<f64> {
    KvClient::new(channels[0].clone())
        .put(PutRequest {
            key: b"/bench/read".to_vec(),
            value: vec![b'r'; 256],
            ..PutRequest::default()
        })
        .await?;
    let start = Instant::now();
    let deadline = start + PHASE;
    let mut tasks = Vec::new();
    for reader in 0..READERS {
        let mut kv = KvClient::new(channels[reader % channels.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut reads: u32 = 0;
            while Instant::now() < deadline && reads < 1_000_000 {
                kv.range(RangeRequest {
                    key: b"/bench/read".to_vec(),
                    serializable,
                    ..RangeRequest::default()
                })
                .await?;
                reads += 1;
            }
            anyhow::Ok(reads)
        }));
    }
    let mut total = 0u32;
    for task in tasks {
        total += task.await??;
    }
    Ok(f64::from(total) / start.elapsed().as_secs_f64())
}

/// Kills the leader under load; ms from the kill to the first put sent
/// after it that was acknowledged (by a surviving member).
async fn failover(cluster: &mut Cluster) -> Result<f64> {
    let leader = leader(&cluster.ports).await?;
    let survivors: Vec<u16> = (0..MEMBERS)
        .filter(|&i| i != leader)
        .map(|i| cluster.ports[i])
        .collect();
    let acked: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for (w, port) in survivors.iter().cycle().take(8).enumerate() {
        let mut kv = KvClient::new(connect(*port).await?);
        let (acked, stop) = (acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..200_000usize {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let sent = Instant::now();
                let put = kv.put(PutRequest {
                    key: format!("/bench/failover/{w}/{}", i % 1000).into_bytes(),
                    value: vec![b'f'; 256],
                    ..PutRequest::default()
                });
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), put).await
                    && let Ok(mut acked) = acked.lock()
                {
                    acked.push((sent, Instant::now()));
                }
            }
        }));
    }
    // Load first, then the kill.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed_at = Instant::now();
    cluster.members[leader] = None;
    let deadline = killed_at + FAILOVER_LIMIT;
    let first = loop {
        let first = acked.lock().ok().and_then(|acked| {
            acked
                .iter()
                .filter(|(sent, _)| *sent >= killed_at)
                .map(|(_, at)| *at)
                .min()
        });
        if let Some(at) = first {
            break Some(at);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        let _ = writer.await;
    }
    let first = first.context("no put was acknowledged within 15 s of killing the leader")?;
    Ok(first.duration_since(killed_at).as_secs_f64() * 1000.0)
}
