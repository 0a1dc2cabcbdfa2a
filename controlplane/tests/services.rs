//! ClusterIP and NodePort allocation by the API server: conflict-free under
//! concurrent creates, user-requested values checked, values released on
//! delete, headless services allowed.

use std::collections::BTreeSet;

use rudder_api::{
    core::{Service, ServicePort, ServiceSpec},
    meta::ObjectMeta,
};
use rudder_client::{Client, ClientError};
use rudder_controlplane::{
    apiserver::allocation::{self, ServiceRanges},
    server::{self, RunningServer, Security, ServerConfig},
};

async fn start(dir: &tempfile::TempDir, ranges: &ServiceRanges) -> (RunningServer, Client) {
    let running = server::start(ServerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        http_listen: None,
        compaction_interval: None,
        replication: None,
        security: Security::InsecurePlaintext,
        etcd_api: false,
    })
    .await
    .expect("server starts");
    allocation::configure(running.store(), ranges)
        .await
        .expect("ranges written");
    let client = Client::connect(&running.grpc_addr.to_string())
        .await
        .expect("client connects");
    (running, client)
}

fn service(name: &str, type_: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: name.into(),
            namespace: "default".into(),
            ..ObjectMeta::default()
        },
        spec: ServiceSpec {
            type_: Some(type_.into()),
            ports: vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }],
            ..ServiceSpec::default()
        },
        ..Service::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_share_a_cluster_ip_or_node_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 62 addresses and 100 ports for 60 services: collisions are certain
    // to be attempted, never committed.
    let ranges = ServiceRanges::parse("10.96.0.0/26", "30000-30099").expect("ranges");
    let (running, client) = start(&dir, &ranges).await;
    let creates = (0..60).map(|i| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .create(&service(&format!("svc-{i}"), "NodePort"))
                .await
        })
    });
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for create in creates {
        let created = create.await.expect("task").expect("created");
        let ip = created
            .spec
            .cluster_ip
            .clone()
            .expect("clusterIP allocated");
        assert!(ip.starts_with("10.96.0."), "{ip}");
        assert!(ips.insert(ip.clone()), "duplicate ClusterIP {ip}");
        let port = created.spec.ports[0].node_port.expect("nodePort allocated");
        assert!((30000..=30099).contains(&port), "{port}");
        assert!(ports.insert(port), "duplicate NodePort {port}");
        assert_eq!(created.spec.cluster_ips, vec![ip]);
    }
    // What the store holds agrees with what the creates returned.
    let listed = client
        .list::<Service>(&Default::default())
        .await
        .expect("list");
    let listed_ips: BTreeSet<_> = listed
        .items
        .iter()
        .filter_map(|s| s.spec.cluster_ip.clone())
        .collect();
    assert_eq!(listed_ips, ips);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_loses_the_race_for_a_picked_cluster_ip_picks_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 14 addresses for 14 services created at once, in rounds: picks
    // collide, and the loser of a collision must pick another address
    // rather than report the one it lost as taken.
    let ranges = ServiceRanges::parse("10.96.0.0/28", "30000-30099").expect("ranges");
    let (running, client) = start(&dir, &ranges).await;
    for round in 0..5 {
        let creates: Vec<_> = (0..14)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move {
                    client
                        .create(&service(&format!("svc-{round}-{i}"), "ClusterIP"))
                        .await
                })
            })
            .collect();
        let mut ips = BTreeSet::new();
        for create in creates {
            let created = create.await.expect("task").expect("created");
            ips.insert(created.spec.cluster_ip.expect("clusterIP allocated"));
        }
        assert_eq!(ips.len(), 14, "every address used once: {ips:?}");
        for i in 0..14 {
            client
                .delete::<Service>("default", &format!("svc-{round}-{i}"))
                .await
                .expect("deleted");
        }
    }
    running.stop().await;
}

#[tokio::test]
async fn requested_values_are_checked_and_released_on_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, client) = start(&dir, &ServiceRanges::default()).await;
    let mut wanted = service("a", "NodePort");
    wanted.spec.cluster_ip = Some("10.96.0.10".into());
    wanted.spec.ports[0].node_port = Some(30080);
    let a = client.create(&wanted).await.expect("a created");
    assert_eq!(a.spec.cluster_ip.as_deref(), Some("10.96.0.10"));
    assert_eq!(a.spec.ports[0].node_port, Some(30080));

    let mut same_ip = service("b", "ClusterIP");
    same_ip.spec.cluster_ip = Some("10.96.0.10".into());
    let err = client.create(&same_ip).await.expect_err("ip taken");
    assert!(
        matches!(&err, ClientError::Invalid(m) if m.contains("spec.clusterIP: 10.96.0.10 is already allocated")),
        "{err}"
    );
    let mut same_port = service("c", "NodePort");
    same_port.spec.ports[0].node_port = Some(30080);
    let err = client.create(&same_port).await.expect_err("port taken");
    assert!(
        matches!(&err, ClientError::Invalid(m) if m.contains("spec.ports[0].nodePort: 30080 is already allocated")),
        "{err}"
    );
    let mut outside = service("d", "ClusterIP");
    outside.spec.cluster_ip = Some("192.168.1.1".into());
    let err = client
        .create(&outside)
        .await
        .expect_err("outside the range");
    assert!(
        err.to_string()
            .contains("not in the service range 10.96.0.0/12"),
        "{err}"
    );

    // An update keeps the allocation and may not change the address.
    let mut changed = a.clone();
    changed.spec.cluster_ip = Some("10.96.0.11".into());
    let err = client.update(&changed).await.expect_err("immutable");
    assert!(err.to_string().contains("may not change"), "{err}");
    let mut relabelled = a.clone();
    relabelled
        .metadata
        .labels
        .insert("tier".into(), "web".into());
    relabelled.spec.cluster_ip = None;
    relabelled.spec.ports[0].node_port = None;
    let updated = client.update(&relabelled).await.expect("updated");
    assert_eq!(updated.spec.cluster_ip.as_deref(), Some("10.96.0.10"));
    assert_eq!(updated.spec.ports[0].node_port, Some(30080));

    // Deleting releases both values.
    client
        .delete::<Service>("default", "a")
        .await
        .expect("deleted");
    client.create(&same_ip).await.expect("ip reusable");
    client.create(&same_port).await.expect("port reusable");

    // Headless services get no address.
    let mut headless = service("h", "ClusterIP");
    headless.spec.cluster_ip = Some("None".into());
    let h = client.create(&headless).await.expect("headless");
    assert_eq!(h.spec.cluster_ip.as_deref(), Some("None"));
    running.stop().await;
}
