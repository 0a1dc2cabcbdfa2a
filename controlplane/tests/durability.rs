//! A single-node control plane killed with SIGKILL keeps every write it
//! acknowledged: the write-ahead log is replayed on restart.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rudder_kvstore::proto::etcdserverpb::{PutRequest, RangeRequest, kv_client::KvClient};
use tonic::transport::Channel;

/// The server process, killed when dropped (also on a failed assertion).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path, addr: &str) -> Server {
    Server(
        Command::new(env!("CARGO_BIN_EXE_rudder-controlplane"))
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", addr, "--http-listen", "off"])
            // The store is under test: its raw etcd API, on loopback.
            .args(["--insecure-plaintext", "--enable-etcd-api"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts"),
    )
}

async fn connect(addr: &str) -> KvClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(channel) = Channel::from_shared(format!("http://{addr}"))
            .expect("url")
            .connect()
            .await
        {
            return KvClient::new(channel);
        }
        assert!(Instant::now() < deadline, "server did not come up in 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .to_string();
    let mut server = start(dir.path(), &addr);
    let client = connect(&addr).await;
    let mut writers = Vec::new();
    for w in 0..8 {
        let mut client = client.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..100 {
                client
                    .put(PutRequest {
                        key: format!("/d/{w}/{i}").into_bytes(),
                        value: vec![b'v'; 256],
                        ..PutRequest::default()
                    })
                    .await
                    .expect("put acknowledged");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    // Let the pending changes grow old enough that the next write hands
    // them to redb without an fsync, so the kill also catches redb holding
    // changes it never made durable.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut last = client.clone();
    last.put(PutRequest {
        key: b"/d/last".to_vec(),
        value: vec![b'v'; 256],
        ..PutRequest::default()
    })
    .await
    .expect("put acknowledged");
    // No clean shutdown: whatever redb had not made durable must come back
    // from the write-ahead log.
    let _ = server.0.kill();
    let _ = server.0.wait();
    drop(server);
    let _server = start(dir.path(), &addr);
    let mut client = connect(&addr).await;
    let range = client
        .range(RangeRequest {
            key: b"/d/".to_vec(),
            range_end: b"/d0".to_vec(),
            ..RangeRequest::default()
        })
        .await
        .expect("range")
        .into_inner();
    assert_eq!(range.count, 801, "acknowledged writes were lost");
    assert!(range.kvs.iter().all(|kv| kv.version == 1));
}
