//! The 3-replica mode: rudder's store as three Raft replicas against a
//! 3-member etcd cluster, all on 127.0.0.1, each member with its own data
//! directory on the same disk. Clients spread over all three endpoints
//! (followers forward writes to the leader in both stores). Besides the
//! puts and watch delivery of the single-node mode: linearizable and
//! serializable reads/s, and failover: the leader is killed with SIGKILL
//! under load, and the time from the kill to the first acknowledged put
//! sent after it is measured.

use std::{
    path::{Path, PathBuf},
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
/// Leader kills per run (the killed member restarts after each).
pub const KILLS: usize = 4;
/// How long the cluster sits idle while elections are counted.
pub const IDLE: Duration = Duration::from_secs(3);
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
    /// Per leader kill: ms to the first acknowledged put sent after it.
    pub failovers_ms: Vec<f64>,
    /// Raft terms that began while the cluster sat idle for [`IDLE`].
    pub idle_elections: u64,
    /// Raft terms that began during the put, read and watch phases.
    pub busy_elections: u64,
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
    flavour: Flavour,
    binary: PathBuf,
    dir: PathBuf,
    ports: Vec<u16>,
    peer_ports: Vec<u16>,
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
        let mut cluster = Self {
            flavour,
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            ports,
            peer_ports,
            members: (0..MEMBERS).map(|_| None).collect(),
        };
        for i in 0..MEMBERS {
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    /// Starts member `i` (again: its data directory is kept).
    fn spawn(&mut self, i: usize) -> Result<()> {
        let data = self.dir.join(format!("member-{}", i + 1));
        std::fs::create_dir_all(&data)?;
        self.members[i] = Some(match self.flavour {
            Flavour::Rudder => start_rudder_replica(&self.binary, &data, &self.ports, i)?,
            Flavour::Etcd => {
                start_etcd_member(&self.binary, &data, &self.ports, &self.peer_ports, i)?
            }
        });
        Ok(())
    }
}

/// What a member says of itself through Maintenance.Status (the same call
/// for both stores): its id, the leader's and the Raft term.
async fn member_status(port: u16) -> Option<(u64, u64, u64)> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .ok()?
        .connect_timeout(Duration::from_millis(300))
        .connect()
        .await
        .ok()?;
    let status = tokio::time::timeout(
        Duration::from_secs(1),
        MaintenanceClient::new(channel).status(StatusRequest {}),
    )
    .await
    .ok()?
    .ok()?
    .into_inner();
    Some((
        status.header.map_or(0, |h| h.member_id),
        status.leader,
        status.raft_term,
    ))
}

/// The index of the member that leads, once every running member answers
/// and names the same leader.
async fn leader(cluster: &Cluster) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut leaders = Vec::new();
        let mut leader_index = None;
        for (i, port) in cluster.ports.iter().enumerate() {
            if cluster.members[i].is_none() {
                continue;
            }
            let status = member_status(*port).await;
            leaders.push(status.map(|(_, leader, _)| leader));
            if let Some((me, leader, _)) = status
                && leader != 0
                && leader == me
            {
                leader_index = Some(i);
            }
        }
        let agreed = leaders.windows(2).all(|w| w[0] == w[1]);
        if let Some(i) = leader_index
            && agreed
        {
            return Ok(i);
        }
        if Instant::now() > deadline {
            anyhow::bail!("the members did not agree on a leader in 20 s: {leaders:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The highest Raft term any member reports: it grows by one or more with
/// every election, won or not.
async fn highest_term(ports: &[u16]) -> u64 {
    let mut highest = 0;
    for port in ports {
        if let Some((_, _, term)) = member_status(*port).await {
            highest = highest.max(term);
        }
    }
    highest
}

/// Measures `cluster`.
pub async fn measure(cluster: &mut Cluster) -> Result<ReplicatedSample> {
    let mut channels = Vec::new();
    for i in 0..8 {
        channels.push(connect(cluster.ports[i % MEMBERS]).await?);
    }
    leader(cluster).await?;
    let before_idle = highest_term(&cluster.ports).await;
    tokio::time::sleep(IDLE).await;
    let after_idle = highest_term(&cluster.ports).await;
    put_phase(&channels[..1], 1, Duration::from_millis(500), "warm").await?;
    let (puts_1, lat_1) = put_phase(&channels[..1], 1, PHASE, "one").await?;
    let (puts_64, lat_64) = put_phase(&channels, 64, PHASE, "many").await?;
    let linearizable_reads = read_phase(&channels, false).await?;
    let serializable_reads = read_phase(&channels, true).await?;
    let watch_p99_ms = watch_delivery(&channels[0]).await?;
    let after_busy = highest_term(&cluster.ports).await;
    let mut rss_mib: f64 = 0.0;
    for server in cluster.members.iter().flatten() {
        rss_mib = rss_mib.max(peak_rss_mib(server.pid())?);
    }
    let mut failovers_ms = Vec::new();
    for kill in 0..KILLS {
        if kill > 0 {
            // Everyone back and agreeing before the next kill.
            leader(cluster).await?;
        }
        failovers_ms.push(failover(cluster).await?);
    }
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
        failovers_ms,
        idle_elections: after_idle.saturating_sub(before_idle),
        busy_elections: after_busy.saturating_sub(after_idle),
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
    let leader = leader(cluster).await?;
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
    // It rejoins with its data directory, as after a crash.
    cluster.spawn(leader)?;
    Ok(first.duration_since(killed_at).as_secs_f64() * 1000.0)
}
