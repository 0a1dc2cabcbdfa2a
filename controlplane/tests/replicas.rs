//! Three replicas as separate processes on 127.0.0.1: the leader is killed
//! with SIGKILL while clients write through every replica, and the recorded
//! history must show that every acknowledged write survived, none was
//! applied twice, and every watcher saw the same ordered sequence. The
//! killed replica then restarts and catches up. Leases, writes and reads
//! at a past revision work through a follower.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rudder_kvstore::proto::{
    etcdserverpb::{
        LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest,
        LeaseTimeToLiveRequest, PutRequest, RangeRequest, WatchCreateRequest, WatchRequest,
        kv_client::KvClient, lease_client::LeaseClient, watch_client::WatchClient,
        watch_request::RequestUnion,
    },
    raft::{StatusRequest, raft_transport_client::RaftTransportClient},
};
use tonic::transport::Channel;

/// The replica processes; all are killed when this is dropped, also when
/// an assertion fails.
struct Cluster {
    dir: tempfile::TempDir,
    addrs: Vec<String>,
    children: Vec<Option<Child>>,
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // Reserve three ports, then free them for the replicas.
        let listeners: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("port"))
            .collect();
        let addrs: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().expect("addr").to_string())
            .collect();
        drop(listeners);
        let mut cluster = Self {
            dir,
            addrs,
            children: vec![None, None, None],
        };
        for i in 0..3 {
            cluster.spawn(i);
        }
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rudder-controlplane"));
        command
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("n{}", i + 1)))
            .args(["--listen", &self.addrs[i], "--http-listen", "off"])
            // The store is under test: its raw etcd API, on loopback; Raft
            // between replicas does not speak TLS yet.
            .args(["--insecure-plaintext", "--enable-etcd-api"])
            .args(["--node-id", &(i + 1).to_string()])
            // Small snapshots so the restarted replica catches up through one.
            .args(["--snapshot-after-logs", "200"])
            .env("RUST_LOG", "warn,rudder_kvstore=info")
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.dir.path().join(format!("n{}.log", i + 1)))
                    .map_or_else(|_| Stdio::null(), Stdio::from),
            );
        for (j, addr) in self.addrs.iter().enumerate() {
            command.args(["--peer", &format!("{}={addr}", j + 1)]);
        }
        self.children[i] = Some(command.spawn().expect("replica starts"));
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            // std's kill() is SIGKILL: no chance to flush or say goodbye.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            // The data directory goes with the test: show what the replicas
            // said first.
            for i in 0..self.children.len() {
                let log = std::fs::read_to_string(self.dir.path().join(format!("n{}.log", i + 1)))
                    .unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                eprintln!("--- replica {i} (last 60 lines) ---");
                for line in &lines[lines.len().saturating_sub(60)..] {
                    eprintln!("{line}");
                }
            }
        }
    }
}

async fn channel(addr: &str) -> Option<Channel> {
    Channel::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
        .ok()
}

/// The leader as replica `among` see it, once they agree.
async fn agreed_leader(addrs: &[String], among: &[usize], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let mut leaders = BTreeSet::new();
        for &i in among {
            let leader = match channel(&addrs[i]).await {
                Some(ch) => RaftTransportClient::new(ch)
                    .status(StatusRequest {})
                    .await
                    .map(|r| r.into_inner().leader_id)
                    .unwrap_or(0),
                None => 0,
            };
            leaders.insert(leader);
        }
        if leaders.len() == 1
            && let Some(&leader) = leaders.iter().next()
            && leader != 0
            && among.contains(&(usize::try_from(leader).expect("id") - 1))
        {
            return usize::try_from(leader).expect("id") - 1;
        }
        assert!(
            Instant::now() < deadline,
            "no agreed leader among {among:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type History = Arc<Mutex<Vec<(i64, String)>>>;

/// Why a watcher's stream ended, for the failure message.
type Ending = Arc<Mutex<Option<String>>>;

/// Records every event of `/h/` seen through replica `addr` from revision 1.
async fn watch(
    addr: String,
    history: History,
    ending: Ending,
    created: tokio::sync::oneshot::Sender<()>,
) {
    let Some(ch) = channel(&addr).await else {
        return;
    };
    let (requests, receiver) = tokio::sync::mpsc::channel(1);
    let _ = requests
        .send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"/h/".to_vec(),
                range_end: b"/h0".to_vec(),
                start_revision: 1,
                ..WatchCreateRequest::default()
            })),
        })
        .await;
    let Ok(response) = WatchClient::new(ch)
        .watch(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
    else {
        return;
    };
    let mut stream = response.into_inner();
    let mut created = Some(created);
    let end = loop {
        let message = match stream.message().await {
            Ok(Some(message)) => message,
            Ok(None) => break "the stream ended".to_owned(),
            Err(status) => break format!("the stream failed: {status}"),
        };
        if let Some(created) = created.take() {
            let _ = created.send(());
        }
        if message.canceled {
            break format!("canceled: {}", message.cancel_reason);
        }
        for event in message.events {
            let kv = event.kv.unwrap_or_default();
            if let Ok(mut history) = history.lock() {
                history.push((
                    kv.mod_revision,
                    String::from_utf8_lossy(&kv.key).into_owned(),
                ));
            }
        }
    };
    if let Ok(mut ending) = ending.lock() {
        *ending = Some(end);
    }
    // Keep `requests` alive until the stream ends: dropping it cancels.
    drop(requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_writes_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start();
    let addrs = cluster.addrs.clone();
    let leader = agreed_leader(&addrs, &[0, 1, 2], Duration::from_secs(30)).await;

    let histories: Vec<History> = (0..3).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let endings: Vec<Ending> = (0..3).map(|_| Arc::new(Mutex::new(None))).collect();
    for (i, history) in histories.iter().enumerate() {
        let (created, ready) = tokio::sync::oneshot::channel();
        tokio::spawn(watch(
            addrs[i].clone(),
            history.clone(),
            endings[i].clone(),
            created,
        ));
        tokio::time::timeout(Duration::from_secs(10), ready)
            .await
            .expect("watch created in 10 s")
            .expect("watch created");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::new(Mutex::new(BTreeSet::new()));
    let mut writers = Vec::new();
    for w in 0..4usize {
        let (addrs, stop, acked) = (addrs.clone(), stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut clients: BTreeMap<usize, KvClient<Channel>> = BTreeMap::new();
            // Bounded in count as well as by `stop`.
            for i in 0..5_000usize {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let target = (w + i) % addrs.len();
                let client = match clients.entry(target) {
                    std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                    std::collections::btree_map::Entry::Vacant(entry) => {
                        match channel(&addrs[target]).await {
                            Some(ch) => entry.insert(KvClient::new(ch)),
                            None => continue,
                        }
                    }
                };
                let key = format!("/h/{w}/{i}");
                let put = client.put(PutRequest {
                    key: key.clone().into_bytes(),
                    value: b"v".to_vec(),
                    ..PutRequest::default()
                });
                match tokio::time::timeout(Duration::from_secs(5), put).await {
                    Ok(Ok(_)) => {
                        if let Ok(mut acked) = acked.lock() {
                            acked.insert(key);
                        }
                    }
                    // Unacknowledged: it may or may not have been applied.
                    Ok(Err(_)) | Err(_) => {
                        clients.remove(&target);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let acked_before_kill = acked.lock().map(|a| a.len()).unwrap_or(0);
    cluster.kill(leader);
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    agreed_leader(&addrs, &survivors, Duration::from_secs(30)).await;
    let acked = acked.lock().expect("acked").clone();
    assert!(
        acked_before_kill > 0,
        "no write was acknowledged before the kill"
    );
    assert!(
        acked.len() > acked_before_kill,
        "no write was acknowledged after the kill"
    );

    // A linearizable read through a survivor.
    let mut kv = KvClient::new(channel(&addrs[survivors[0]]).await.expect("survivor"));
    let range = kv
        .range(RangeRequest {
            key: b"/h/".to_vec(),
            range_end: b"/h0".to_vec(),
            ..RangeRequest::default()
        })
        .await
        .expect("range")
        .into_inner();
    let final_revision = range.header.expect("header").revision;
    let stored: BTreeMap<String, i64> = range
        .kvs
        .iter()
        .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv.version))
        .collect();
    for key in &acked {
        assert!(
            stored.contains_key(key),
            "acknowledged write {key} is missing"
        );
    }
    for (key, version) in &stored {
        assert_eq!(*version, 1, "{key} was applied {version} times");
    }
    // The last write under /h/. The store's revision may be later: the
    // control plane writes too (the controllers' leader lease).
    let last_written = range
        .kvs
        .iter()
        .map(|kv| kv.mod_revision)
        .max()
        .unwrap_or(0);

    // Every watcher saw the same ordered history; the dead leader's watcher
    // saw a prefix of it.
    let deadline = Instant::now() + Duration::from_secs(30);
    for &i in &survivors {
        loop {
            let last = histories[i]
                .lock()
                .map(|h| h.last().map_or(0, |e| e.0))
                .unwrap_or(0);
            if last >= last_written {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "watcher on replica {i} stuck at revision {last} (last write {last_written}): {}",
                endings[i]
                    .lock()
                    .ok()
                    .and_then(|e| e.clone())
                    .unwrap_or_else(|| "its stream is still open".to_owned())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let full = histories[survivors[0]].lock().expect("history").clone();
    let other = histories[survivors[1]].lock().expect("history").clone();
    let dead = histories[leader].lock().expect("history").clone();
    let upto = |h: &[(i64, String)]| -> Vec<(i64, String)> {
        h.iter()
            .filter(|e| e.0 <= final_revision)
            .cloned()
            .collect()
    };
    assert_eq!(upto(&full), upto(&other), "survivors' watchers disagree");
    assert!(
        full.windows(2).all(|w| w[0].0 < w[1].0),
        "revisions not increasing"
    );
    assert_eq!(
        &full[..dead.len()],
        &dead[..],
        "the dead leader's watcher diverged"
    );
    let watched: BTreeSet<String> = upto(&full).into_iter().map(|e| e.1).collect();
    assert_eq!(
        watched.len(),
        upto(&full).len(),
        "a key was delivered twice"
    );
    assert_eq!(
        watched,
        stored.keys().cloned().collect(),
        "watch and range disagree"
    );

    // The killed replica comes back and catches up (by snapshot or log).
    cluster.spawn(leader);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let revision = match channel(&addrs[leader]).await {
            Some(ch) => RaftTransportClient::new(ch)
                .status(StatusRequest {})
                .await
                .map(|r| r.into_inner().revision)
                .unwrap_or(0),
            None => 0,
        };
        if revision >= final_revision {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted replica stuck at revision {revision}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut kv = KvClient::new(channel(&addrs[leader]).await.expect("restarted"));
    let count = kv
        .range(RangeRequest {
            key: b"/h/".to_vec(),
            range_end: b"/h0".to_vec(),
            count_only: true,
            ..RangeRequest::default()
        })
        .await
        .expect("range on the restarted replica")
        .into_inner()
        .count;
    assert_eq!(usize::try_from(count).expect("count"), stored.len());
}

/// Whether `key` exists, read (linearizably) through replica `addr`.
async fn exists(addr: &str, key: &[u8]) -> bool {
    let mut kv = KvClient::new(channel(addr).await.expect("replica reachable"));
    let response = kv
        .range(RangeRequest {
            key: key.to_vec(),
            ..RangeRequest::default()
        })
        .await
        .expect("range")
        .into_inner();
    response.count == 1
}

/// The next keep-alive answer, failing the test rather than hanging.
async fn next_answer(
    answers: &mut tonic::Streaming<LeaseKeepAliveResponse>,
) -> LeaseKeepAliveResponse {
    tokio::time::timeout(Duration::from_secs(10), answers.message())
        .await
        .expect("keep-alive answered in 10 s")
        .expect("keep-alive answered")
        .expect("keep-alive stream open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_writes_and_past_reads_work_through_a_follower() {
    let cluster = Cluster::start();
    let addrs = cluster.addrs.clone();
    let leader = agreed_leader(&addrs, &[0, 1, 2], Duration::from_secs(30)).await;
    let follower = &addrs[(leader + 1) % 3];
    let through_follower = channel(follower).await.expect("follower reachable");
    let mut lease = LeaseClient::new(through_follower.clone());
    let mut kv = KvClient::new(through_follower);

    let granted = lease
        .lease_grant(LeaseGrantRequest { ttl: 2, id: 0 })
        .await
        .expect("grant through a follower")
        .into_inner();
    assert!(granted.id > 0);
    let key = b"/leases/node-a".to_vec();
    let written = kv
        .put(PutRequest {
            key: key.clone(),
            value: b"heartbeat".to_vec(),
            lease: granted.id,
            ..PutRequest::default()
        })
        .await
        .expect("write through a follower")
        .into_inner();
    let written_at = written.header.expect("header").revision;

    // Keep-alives sent only to the follower hold the lease well past its
    // TTL: they reach the leader, which keeps the deadlines.
    let (keep_alive, requests) = tokio::sync::mpsc::channel(4);
    let mut answers = lease
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(requests))
        .await
        .expect("keep-alive stream through a follower")
        .into_inner();
    let held_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < held_until {
        keep_alive
            .send(LeaseKeepAliveRequest { id: granted.id })
            .await
            .expect("send keep-alive");
        let answer = next_answer(&mut answers).await;
        assert_eq!((answer.id, answer.ttl), (granted.id, 2));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(
        exists(&addrs[leader], &key).await,
        "kept-alive lease expired"
    );
    keep_alive
        .send(LeaseKeepAliveRequest {
            id: granted.id + 1000,
        })
        .await
        .expect("send keep-alive");
    let unknown = next_answer(&mut answers).await;
    assert_eq!(
        unknown.ttl, 0,
        "an unknown lease answers TTL 0, as etcd does"
    );

    let ttl = lease
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: granted.id,
            keys: true,
        })
        .await
        .expect("time to live through a follower")
        .into_inner();
    assert_eq!(ttl.granted_ttl, 2);
    assert!((0..=2).contains(&ttl.ttl), "remaining TTL {}", ttl.ttl);
    assert_eq!(ttl.keys, vec![key.clone()]);

    // Reads at a past revision, through the follower.
    let revoked = lease
        .lease_revoke(LeaseRevokeRequest { id: granted.id })
        .await
        .expect("revoke through a follower")
        .into_inner();
    let revoked_at = revoked.header.expect("header").revision;
    for addr in &addrs {
        assert!(
            !exists(addr, &key).await,
            "revoked lease's key still on {addr}"
        );
    }
    let past = kv
        .range(RangeRequest {
            key: key.clone(),
            revision: written_at,
            ..RangeRequest::default()
        })
        .await
        .expect("read at a past revision")
        .into_inner();
    assert_eq!(
        past.kvs.len(),
        1,
        "the key as it was at revision {written_at}"
    );
    assert_eq!(past.kvs[0].value, b"heartbeat");
    let future = kv
        .range(RangeRequest {
            key,
            revision: revoked_at + 100,
            ..RangeRequest::default()
        })
        .await
        .expect_err("a future revision is refused");
    assert_eq!(future.code(), tonic::Code::OutOfRange);
    assert!(future.message().contains("future"), "{}", future.message());
}
