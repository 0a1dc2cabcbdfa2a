//! The API server end to end over gRPC and HTTP, on a real store in a
//! temporary directory, listening on 127.0.0.1 with ephemeral ports.

use std::time::Duration;

use rudder_api::{
    Kind,
    core::{Pod, Service},
};
use rudder_client::{Client, ClientError, ListOptions, NodeChange, NodeSyncUpdate, WatchEvent};
use rudder_controlplane::server::{self, RunningServer, Security, ServerConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(dir: &tempfile::TempDir) -> (RunningServer, Client) {
    let running = server::start(ServerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        http_listen: Some("127.0.0.1:0".parse().expect("addr")),
        compaction_interval: None,
        replication: None,
        security: Security::InsecurePlaintext,
        etcd_api: false,
    })
    .await
    .expect("server starts");
    let client = Client::connect(&running.grpc_addr.to_string())
        .await
        .expect("client connects");
    (running, client)
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "web",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "name": "http"}],
                        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}
                    }],
                    "affinity": {"podAntiAffinity": {}}
                }
            }
        }
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}
    })
}

fn pod(name: &str, node: Option<&str>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "1000"]}]}
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    pod
}

#[tokio::test]
async fn manifests_apply_with_defaults_and_keep_unknown_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, client) = start(&dir).await;
    let created = client
        .create_json(Kind::Deployment, &deployment())
        .await
        .expect("create");
    assert_eq!(created["metadata"]["namespace"], "default");
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(
        created["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    assert!(created["metadata"]["creationTimestamp"].is_string());
    assert_eq!(
        created["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
        "25%"
    );
    assert_eq!(
        created["spec"]["template"]["spec"]["affinity"],
        json!({"podAntiAffinity": {}}),
        "fields rudder does not model are kept"
    );
    let svc: Service = client
        .create(&serde_json::from_value(service()).expect("typed"))
        .await
        .expect("create");
    assert_eq!(svc.spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(svc.spec.ports[0].protocol.as_deref(), Some("TCP"));
    let again = client
        .get_json(Kind::Deployment, "default", "web")
        .await
        .expect("get");
    assert_eq!(again, created);
    match client.create_json(Kind::Deployment, &deployment()).await {
        Err(ClientError::AlreadyExists(message)) => {
            assert_eq!(
                message,
                "deployments \"web\" already exists in namespace \"default\""
            );
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    running.stop().await;
}

#[tokio::test]
async fn invalid_objects_are_rejected_naming_object_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, client) = start(&dir).await;
    let mut bad = service();
    bad["spec"]["ports"][0] = json!({"port": 70000, "targetPort": 8080});
    match client.create_json(Kind::Service, &bad).await {
        Err(ClientError::Invalid(message)) => assert_eq!(
            message,
            "service \"web\": spec.ports[0].port: port 70000 out of range 1-65535"
        ),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let mut bad_affinity = pod("p", None);
    bad_affinity["spec"]["affinity"] = json!({"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "Near", "values": ["a"]}]}
        ]}
    }});
    match client.create_json(Kind::Pod, &bad_affinity).await {
        Err(ClientError::Invalid(message)) => assert_eq!(
            message,
            "pod \"p\": spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator: \"Near\" is not one of In, NotIn, Exists, DoesNotExist, Gt, Lt"
        ),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let mut missing_ns = pod("p", None);
    missing_ns["metadata"]["namespace"] = json!("nope");
    assert!(matches!(
        client.create_json(Kind::Pod, &missing_ns).await,
        Err(ClientError::NotFound(_))
    ));
    running.stop().await;
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict_and_status_is_separate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, client) = start(&dir).await;
    let created = client
        .create_json(Kind::Pod, &pod("p", None))
        .await
        .expect("create");
    let mut first = created.clone();
    first["metadata"]["labels"]["tier"] = json!("front");
    let updated = client
        .update_json(Kind::Pod, &first, false)
        .await
        .expect("update");
    assert_ne!(
        updated["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    assert_eq!(updated["metadata"]["generation"], 1, "labels are not spec");
    let mut stale = created.clone();
    stale["spec"]["nodeName"] = json!("n1");
    match client.update_json(Kind::Pod, &stale, false).await {
        Err(ClientError::Conflict(message)) => assert!(message.contains("pods \"p\""), "{message}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    // Status goes through its own update; a spec update cannot change it.
    let mut status = updated.clone();
    status["status"] = json!({"phase": "Running", "podIP": "10.244.1.5"});
    let with_status = client
        .update_json(Kind::Pod, &status, true)
        .await
        .expect("status");
    assert_eq!(with_status["status"]["podIP"], "10.244.1.5");
    let mut sneaky = with_status.clone();
    sneaky["status"]["podIP"] = json!("1.2.3.4");
    sneaky["spec"]["nodeName"] = json!("n1");
    let after = client
        .update_json(Kind::Pod, &sneaky, false)
        .await
        .expect("update");
    assert_eq!(after["status"]["podIP"], "10.244.1.5");
    assert_eq!(after["metadata"]["generation"], 2, "spec changed");
    // Typed round trip.
    let typed: Pod = client.get("default", "p").await.expect("get");
    assert_eq!(typed.spec.node_name.as_deref(), Some("n1"));
    running.stop().await;
}

#[tokio::test]
async fn list_filters_by_labels_and_watch_resumes_from_resource_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, client) = start(&dir).await;
    client
        .create_json(Kind::Pod, &pod("a", None))
        .await
        .expect("create");
    let mut other = pod("b", None);
    other["metadata"]["labels"] = json!({"app": "db"});
    client.create_json(Kind::Pod, &other).await.expect("create");
    let list = client
        .list_json(
            Kind::Pod,
            &ListOptions {
                label_selector: "app=web".into(),
                ..ListOptions::default()
            },
        )
        .await
        .expect("list");
    let names: Vec<_> = list
        .items
        .iter()
        .map(|p| p["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("a")]);
    let mut watch = client
        .watch_json(
            Kind::Pod,
            &ListOptions {
                label_selector: "app=web".into(),
                ..ListOptions::default()
            },
            &list.resource_version,
        )
        .await
        .expect("watch");
    client
        .create_json(Kind::Pod, &pod("c", None))
        .await
        .expect("create");
    // Relabelling a matching pod away is a DELETED for this watcher.
    let mut a = client
        .get_json(Kind::Pod, "default", "a")
        .await
        .expect("get");
    a["metadata"]["labels"]["app"] = json!("other");
    client
        .update_json(Kind::Pod, &a, false)
        .await
        .expect("update");
    client
        .delete_json(Kind::Pod, "default", "c", "")
        .await
        .expect("delete");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("event");
        seen.push(match event {
            WatchEvent::Added(o) => ("ADDED", o["metadata"]["name"].clone()),
            WatchEvent::Modified(o) => ("MODIFIED", o["metadata"]["name"].clone()),
            WatchEvent::Deleted(o) => ("DELETED", o["metadata"]["name"].clone()),
            WatchEvent::Bookmark { .. } => ("BOOKMARK", Value::Null),
        });
    }
    assert_eq!(
        seen,
        vec![
            ("ADDED", json!("c")),
            ("DELETED", json!("a")),
            ("DELETED", json!("c"))
        ]
    );
    running.stop().await;
}

#[tokio::test]
async fn a_list_larger_than_grpc_default_message_size_arrives_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, client) = start(&dir).await;
    // 24 pods of ~256 KiB each: about 6 MiB in one list answer, over
    // tonic's default limit of 4 MiB.
    const PODS: usize = 24;
    let filler = "x".repeat(256 * 1024);
    for i in 0..PODS {
        let mut big = pod(&format!("big-{i}"), None);
        big["metadata"]["annotations"] = json!({"example.com/filler": filler});
        client.create_json(Kind::Pod, &big).await.expect("create");
    }
    let list = client
        .list::<Pod>(&ListOptions::default())
        .await
        .expect("the whole list decodes");
    assert_eq!(list.items.len(), PODS);
    assert!(
        list.items
            .iter()
            .all(|p| p.metadata.annotations.get("example.com/filler") == Some(&filler))
    );
    running.stop().await;
}

#[tokio::test]
async fn node_sync_sends_snapshot_then_changes_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, client) = start(&dir).await;
    client
        .create_json(Kind::Pod, &pod("mine", Some("n1")))
        .await
        .expect("create");
    client
        .create_json(Kind::Pod, &pod("theirs", Some("n2")))
        .await
        .expect("create");
    client
        .create_json(Kind::Service, &service())
        .await
        .expect("create");
    let mut stream = client.node_sync("n1", 0).await.expect("sync");
    let revision = match next(&mut stream).await {
        NodeSyncUpdate::Snapshot {
            revision,
            pods,
            services,
            endpoints,
            endpoint_slices,
        } => {
            let names: Vec<_> = pods.iter().map(|p| p.metadata.name.clone()).collect();
            assert_eq!(names, vec!["mine".to_owned()]);
            assert_eq!(services.len(), 1);
            assert!(endpoints.is_empty());
            assert!(endpoint_slices.is_empty());
            revision
        }
        other => panic!("expected a snapshot first, got {other:?}"),
    };
    client
        .create_json(Kind::Pod, &pod("other-node", Some("n2")))
        .await
        .expect("create");
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "10.244.1.5", "nodeName": "n1"}], "ports": [{"port": 80}]}]
    });
    client
        .create_json(Kind::Endpoints, &endpoints)
        .await
        .expect("create");
    // Grace 0, as the agent removes a pod it has stopped (a graceful
    // delete would be an upsert marking it).
    let force = rudder_api::meta::DeleteOptions {
        grace_period_seconds: Some(0),
        ..rudder_api::meta::DeleteOptions::default()
    };
    client
        .delete_with(Kind::Pod, "default", "mine", &force)
        .await
        .expect("delete");
    let mut last = revision;
    match next(&mut stream).await {
        NodeSyncUpdate::Change {
            revision,
            change: NodeChange::EndpointsUpserted(ep),
        } => {
            assert_eq!(ep.subsets[0].addresses[0].ip, "10.244.1.5");
            assert!(revision > last);
            last = revision;
        }
        other => panic!("expected endpoints, got {other:?}"),
    }
    match next(&mut stream).await {
        NodeSyncUpdate::Change {
            revision,
            change: NodeChange::PodDeleted(pod),
        } => {
            assert_eq!(pod.metadata.name, "mine");
            assert!(revision > last);
        }
        other => panic!("expected the pod deletion, got {other:?}"),
    }
    drop(stream);
    // Resuming after the endpoints change replays only what came after.
    let mut resumed = client.node_sync("n1", last).await.expect("sync");
    match next(&mut resumed).await {
        NodeSyncUpdate::Change {
            change: NodeChange::PodDeleted(pod),
            ..
        } => {
            assert_eq!(pod.metadata.name, "mine");
        }
        other => panic!("expected the pod deletion again, got {other:?}"),
    }
    running.stop().await;
}

async fn next(stream: &mut rudder_client::NodeSyncStream) -> NodeSyncUpdate {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("update in time")
        .expect("stream open")
        .expect("update")
}

async fn http(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("response in time")
    .expect("read");
    response
}

#[tokio::test]
async fn http_json_serves_kubernetes_paths_and_status_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, client) = start(&dir).await;
    let addr = running.http_addr.expect("http");
    let body = serde_json::to_string(&service()).expect("json");
    let created = http(
        addr,
        &format!(
            "POST /api/v1/namespaces/default/services HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let got = http(
        addr,
        "GET /api/v1/namespaces/default/services/web HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        got.contains("\"clusterIP\"") || got.contains("\"type\":\"ClusterIP\""),
        "{got}"
    );
    let missing = http(
        addr,
        "GET /api/v1/namespaces/default/pods/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(
        missing.contains("\"kind\":\"Status\"") && missing.contains("\"reason\":\"NotFound\""),
        "{missing}"
    );
    // ?watch=true streams newline-delimited events; read the first one.
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"GET /api/v1/namespaces/default/services?watch=true HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .expect("write");
    let mut buffer = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&buffer).contains("\"type\":\"ADDED\"") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no watch event in 10s"
        );
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("read in time")
            .expect("read");
        assert!(n > 0, "watch closed early");
        buffer.extend_from_slice(&chunk[..n]);
    }
    drop(stream);
    drop(client);
    running.stop().await;
}

#[tokio::test]
async fn an_oversized_request_gets_a_clear_error_and_the_server_stays_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, client) = start(&dir).await;
    let mut huge = pod("huge", None);
    huge["metadata"]["annotations"] =
        json!({"example.com/filler": "x".repeat(server::MAX_REQUEST_BYTES + 1)});
    // gRPC: refused by size, nothing stored.
    let err = client
        .create_json(Kind::Pod, &huge)
        .await
        .expect_err("an oversized message is refused");
    let text = err.to_string();
    assert!(
        text.contains("message length too large") || text.contains("OutOfRange"),
        "{text}"
    );
    // HTTP: 413 before the body is read whole.
    let addr = running.http_addr.expect("http");
    let body = serde_json::to_string(&huge).expect("json");
    let refused = http(
        addr,
        &format!(
            "POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 413"), "{refused}");
    // Still serving, and nothing of the refused requests was stored.
    client
        .create_json(Kind::Pod, &pod("small", None))
        .await
        .expect("a normal request after the refused ones");
    let pods = client
        .list::<Pod>(&ListOptions::default())
        .await
        .expect("list");
    let names: Vec<&str> = pods
        .items
        .iter()
        .map(|p| p.metadata.name.as_str())
        .collect();
    assert_eq!(names, ["small"]);
    running.stop().await;
}
