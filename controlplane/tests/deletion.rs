//! Graceful deletion in the API server, as Kubernetes does it: a pod bound
//! to a node is marked (deletionTimestamp, deletionGracePeriodSeconds) and
//! removed only by a delete with grace 0; finalizers keep any object until
//! the last is removed; preconditions and bad grace periods are refused.

use rudder_api::{Kind, meta::DeleteOptions};
use rudder_client::{Client, ClientError};
use rudder_controlplane::server::{self, RunningServer, Security, ServerConfig};
use serde_json::{Value, json};

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

fn pod(name: &str, node: Option<&str>, grace: i64) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": grace,
            "containers": [{"name": "c", "command": ["sleep", "1000"]}]
        }
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    pod
}

fn grace(seconds: i64) -> DeleteOptions {
    DeleteOptions {
        grace_period_seconds: Some(seconds),
        ..DeleteOptions::default()
    }
}

async fn gone(client: &Client, name: &str) -> bool {
    matches!(
        client.get_json(Kind::Pod, "default", name).await,
        Err(ClientError::NotFound(_))
    )
}

#[tokio::test]
async fn a_bound_pod_is_marked_with_its_grace_period_and_removed_by_grace_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, client) = start(&dir).await;
    let created = client
        .create_json(Kind::Pod, &pod("web", Some("n1"), 20))
        .await
        .expect("create");
    let marked = client
        .delete_with(Kind::Pod, "default", "web", &DeleteOptions::default())
        .await
        .expect("delete");
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], json!(20));
    let deadline = marked["metadata"]["deletionTimestamp"]
        .as_str()
        .and_then(rudder_api::time::parse_rfc3339)
        .expect("deletionTimestamp is a time");
    let created_at = created["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(rudder_api::time::parse_rfc3339)
        .expect("creationTimestamp");
    assert!(
        deadline >= created_at + std::time::Duration::from_secs(20),
        "deletionTimestamp is when the grace period ends"
    );
    assert!(!gone(&client, "web").await, "the pod stays while it stops");

    // Neither a client update nor a longer grace period unmarks or delays it.
    let mut edited = client
        .get_json(Kind::Pod, "default", "web")
        .await
        .expect("get");
    edited["metadata"]["deletionTimestamp"] = Value::Null;
    edited["metadata"]["labels"] = json!({"touched": "yes"});
    let updated = client
        .update_json(Kind::Pod, &edited, false)
        .await
        .expect("update");
    assert_eq!(
        updated["metadata"]["deletionTimestamp"],
        marked["metadata"]["deletionTimestamp"]
    );
    let again = client
        .delete_with(Kind::Pod, "default", "web", &grace(60))
        .await
        .expect("delete again");
    assert_eq!(again["metadata"]["deletionGracePeriodSeconds"], json!(20));
    let shorter = client
        .delete_with(Kind::Pod, "default", "web", &grace(5))
        .await
        .expect("shorten");
    assert_eq!(shorter["metadata"]["deletionGracePeriodSeconds"], json!(5));

    // Only this incarnation: a wrong uid is a conflict and deletes nothing.
    let wrong = DeleteOptions {
        grace_period_seconds: Some(0),
        uid: "not-its-uid".into(),
        ..DeleteOptions::default()
    };
    let err = client
        .delete_with(Kind::Pod, "default", "web", &wrong)
        .await
        .expect_err("uid precondition");
    assert!(matches!(err, ClientError::Conflict(_)), "{err}");
    let right = DeleteOptions {
        grace_period_seconds: Some(0),
        uid: created["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .into(),
        ..DeleteOptions::default()
    };
    client
        .delete_with(Kind::Pod, "default", "web", &right)
        .await
        .expect("final delete");
    assert!(gone(&client, "web").await);
    running.stop().await;
}

#[tokio::test]
async fn unscheduled_pods_and_grace_zero_are_removed_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, client) = start(&dir).await;
    client
        .create_json(Kind::Pod, &pod("pending", None, 30))
        .await
        .expect("create");
    client
        .delete_with(Kind::Pod, "default", "pending", &DeleteOptions::default())
        .await
        .expect("delete");
    assert!(
        gone(&client, "pending").await,
        "no agent runs it: removed at once"
    );
    client
        .create_json(Kind::Pod, &pod("forced", Some("n1"), 30))
        .await
        .expect("create");
    client
        .delete_with(Kind::Pod, "default", "forced", &grace(0))
        .await
        .expect("force delete");
    assert!(gone(&client, "forced").await, "grace 0 removes at once");
    running.stop().await;
}

#[tokio::test]
async fn finalizers_keep_an_object_until_the_last_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, client) = start(&dir).await;
    let mut guarded = pod("guarded", None, 30);
    guarded["metadata"]["finalizers"] = json!(["example.com/a", "example.com/b"]);
    client
        .create_json(Kind::Pod, &guarded)
        .await
        .expect("create");
    let marked = client
        .delete_with(Kind::Pod, "default", "guarded", &grace(0))
        .await
        .expect("delete");
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let mut current = marked;
    current["metadata"]["finalizers"] = json!(["example.com/b"]);
    let current = client
        .update_json(Kind::Pod, &current, false)
        .await
        .expect("drop one finalizer");
    assert!(!gone(&client, "guarded").await, "one finalizer is left");
    let mut last = current;
    last["metadata"]["finalizers"] = json!([]);
    client
        .update_json(Kind::Pod, &last, false)
        .await
        .expect("drop the last finalizer");
    assert!(gone(&client, "guarded").await, "no finalizer left: removed");
    running.stop().await;
}

#[tokio::test]
async fn http_delete_takes_grace_from_the_query_and_refuses_bad_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (running, client) = start(&dir).await;
    let http = running.http_addr.expect("http listener");
    client
        .create_json(Kind::Pod, &pod("web", Some("n1"), 30))
        .await
        .expect("create");
    let delete = |query: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(http).await.expect("connect");
        let request = format!(
            "DELETE /api/v1/namespaces/default/pods/web{query} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        );
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
            .await
            .expect("write");
        let mut response = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response)
            .await
            .expect("read");
        response
    };
    let bad = delete("?gracePeriodSeconds=soon").await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    assert!(bad.contains("gracePeriodSeconds"), "{bad}");
    let negative = delete("?gracePeriodSeconds=-5").await;
    assert!(negative.starts_with("HTTP/1.1 400"), "{negative}");
    let marked = delete("?gracePeriodSeconds=7").await;
    assert!(marked.starts_with("HTTP/1.1 200"), "{marked}");
    assert!(
        marked.contains(r#""deletionGracePeriodSeconds":7"#),
        "{marked}"
    );
    let removed = delete("?gracePeriodSeconds=0").await;
    assert!(removed.starts_with("HTTP/1.1 200"), "{removed}");
    assert!(gone(&client, "web").await);
    running.stop().await;
}
