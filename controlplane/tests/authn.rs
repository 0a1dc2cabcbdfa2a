//! Every listener refuses unauthenticated and wrongly authenticated
//! callers: no credential, a certificate from another CA, an expired
//! certificate, a wrong token; a good certificate or token gets in.
//! The server runs in-process with TLS on 127.0.0.1, ephemeral ports.

use std::{sync::Arc, time::Duration};

use rudder_api::core::Namespace;
use rudder_client::{Client, ClientConfig, ClientError, ClientIdentity, Credentials, ListOptions};
use rudder_controlplane::{
    auth::{Authenticator, BootstrapTokens, MASTERS_GROUP, StaticTokens, csr::NodeCertificates},
    pki::{ClientProfile, ClusterPki, IssuedCert},
    server::{self, RunningServer, Security, ServerConfig, TlsSettings},
};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Fixture {
    _dir: tempfile::TempDir,
    pki: Arc<ClusterPki>,
    running: RunningServer,
    tokens: BootstrapTokens,
}

async fn start() -> Fixture {
    start_with(false).await
}

async fn start_with(etcd_api: bool) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Arc::new(ClusterPki::load_or_create(&dir.path().join("pki")).expect("ca"));
    let mut serving = pki
        .issue_serving(&["localhost".into()], &["127.0.0.1".parse().expect("ip")])
        .expect("serving cert");
    // As the control plane serves it: the CA travels with the chain.
    serving.cert_pem.push_str(pki.ca_pem());
    let bootstrap = BootstrapTokens::in_dir(pki.dir());
    let tokens = StaticTokens::parse("good-token,ci-bot,1001,\"ci\"\n").expect("token file parses");
    let running = server::start(ServerConfig {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        http_listen: Some("127.0.0.1:0".parse().expect("addr")),
        compaction_interval: None,
        replication: None,
        security: Security::Tls(TlsSettings {
            client_ca_pem: pki.ca_pem().to_owned(),
            serving,
            authenticator: Authenticator::new(tokens).with_bootstrap_tokens(bootstrap.clone()),
            node_certificates: Some(NodeCertificates::new(
                pki.clone(),
                Duration::from_secs(3600),
            )),
        }),
        etcd_api,
    })
    .await
    .expect("server starts");
    Fixture {
        _dir: dir,
        pki,
        running,
        tokens: bootstrap,
    }
}

fn config(f: &Fixture, identity: Option<&IssuedCert>, token: Option<&str>) -> ClientConfig {
    ClientConfig {
        server: format!("https://{}", f.running.grpc_addr),
        credentials: Credentials {
            ca_pem: Some(f.pki.ca_pem().to_owned()),
            server_name: None,
            identity: identity.map(|cert| ClientIdentity {
                cert_pem: cert.cert_pem.clone(),
                key_pem: cert.key_pem.clone(),
            }),
            token: token.map(str::to_owned),
        },
        reload_from: None,
    }
}

/// Connects and lists namespaces: what one call with these credentials
/// gets.
async fn list_namespaces(config: &ClientConfig) -> Result<usize, ClientError> {
    let client = Client::connect_with(config).await?;
    let list = tokio::time::timeout(
        Duration::from_secs(10),
        client.list::<Namespace>(&ListOptions::default()),
    )
    .await
    .expect("the call ends");
    list.map(|list| list.items.len())
}

#[tokio::test]
async fn a_certificate_of_the_cluster_ca_or_a_known_token_gets_in() {
    let f = start().await;
    let admin = f
        .pki
        .issue_client(&ClientProfile::new("admin", &[MASTERS_GROUP]))
        .expect("admin cert");
    assert!(
        list_namespaces(&config(&f, Some(&admin), None))
            .await
            .expect("admin lists")
            > 0
    );
    // Authenticated as ci-bot, who no RBAC binding lets list namespaces:
    // the refusal names the user the token stands for.
    let token_user = list_namespaces(&config(&f, None, Some("good-token"))).await;
    assert!(
        matches!(&token_user, Err(ClientError::Forbidden(m)) if m.contains("User \"ci-bot\"")),
        "a token from the token file is accepted: {token_user:?}"
    );
    f.running.stop().await;
}

#[tokio::test]
async fn anonymous_and_wrong_token_callers_are_unauthenticated() {
    let f = start().await;
    let anonymous = list_namespaces(&config(&f, None, None)).await;
    assert!(
        matches!(&anonymous, Err(ClientError::Unauthenticated(m)) if m.contains("anonymous")),
        "{anonymous:?}"
    );
    let wrong = list_namespaces(&config(&f, None, Some("not-the-token"))).await;
    assert!(
        matches!(&wrong, Err(ClientError::Unauthenticated(_))),
        "{wrong:?}"
    );
    // A valid certificate does not make a bad token acceptable.
    let admin = f
        .pki
        .issue_client(&ClientProfile::new("admin", &[MASTERS_GROUP]))
        .expect("admin cert");
    let both = list_namespaces(&config(&f, Some(&admin), Some("not-the-token"))).await;
    assert!(
        matches!(&both, Err(ClientError::Unauthenticated(_))),
        "{both:?}"
    );
    f.running.stop().await;
}

#[tokio::test]
async fn certificates_from_another_ca_or_expired_are_refused() {
    let f = start().await;
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = ClusterPki::load_or_create(other_dir.path()).expect("other ca");
    let foreign = other
        .issue_client(&ClientProfile::new("admin", &[MASTERS_GROUP]))
        .expect("foreign cert");
    let refused = list_namespaces(&config(&f, Some(&foreign), None)).await;
    assert!(refused.is_err(), "a foreign CA's certificate got in");

    let mut old = ClientProfile::new("admin", &[MASTERS_GROUP]);
    old.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    old.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let expired = f.pki.issue_client(&old).expect("expired cert");
    let refused = list_namespaces(&config(&f, Some(&expired), None)).await;
    assert!(refused.is_err(), "an expired certificate got in");
    f.running.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_cluster_ca_does_not_connect() {
    let f = start().await;
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = ClusterPki::load_or_create(other_dir.path()).expect("other ca");
    let mut wrong_trust = config(&f, None, Some("good-token"));
    wrong_trust.credentials.ca_pem = Some(other.ca_pem().to_owned());
    assert!(
        list_namespaces(&wrong_trust).await.is_err(),
        "the client sent its token to a server it cannot verify"
    );
    f.running.stop().await;
}

/// One HTTPS/1.1 GET; the status code.
async fn https_get(f: &Fixture, path: &str, token: Option<&str>) -> u16 {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(f.pki.ca_pem().as_bytes()) {
        roots.add(cert.expect("ca pem")).expect("ca");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let addr = f.running.http_addr.expect("http listener");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("request");
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

#[tokio::test]
async fn http_refuses_anonymous_requests_but_answers_health_checks() {
    let f = start().await;
    assert_eq!(https_get(&f, "/api/v1/namespaces", None).await, 401);
    assert_eq!(
        https_get(&f, "/api/v1/namespaces", Some("not-the-token")).await,
        401
    );
    // Authenticated, then refused by RBAC (ci-bot has no binding); the
    // discovery documents every authenticated user may read.
    assert_eq!(
        https_get(&f, "/api/v1/namespaces", Some("good-token")).await,
        403
    );
    assert_eq!(https_get(&f, "/api/v1", Some("good-token")).await, 200);
    assert_eq!(https_get(&f, "/healthz", None).await, 200);
    assert_eq!(https_get(&f, "/readyz", None).await, 200);
    f.running.stop().await;
}

/// A raw etcd `Range` with a bearer token over TLS; the gRPC code.
async fn etcd_range(f: &Fixture, token: &str) -> tonic::Code {
    use rudder_kvstore::proto::etcdserverpb::{RangeRequest, kv_client::KvClient};
    use tonic::transport::{Certificate, Channel, ClientTlsConfig};
    let channel = Channel::from_shared(format!("https://{}", f.running.grpc_addr))
        .expect("url")
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(f.pki.ca_pem())))
        .expect("tls")
        .connect()
        .await
        .expect("connect");
    let mut request = tonic::Request::new(RangeRequest {
        key: b"/registry/".to_vec(),
        range_end: b"/registry0".to_vec(),
        ..RangeRequest::default()
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    match KvClient::new(channel).range(request).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn the_raw_etcd_api_is_off_by_default_and_never_for_ordinary_users() {
    let f = start().await;
    assert_eq!(
        etcd_range(&f, "good-token").await,
        tonic::Code::Unimplemented
    );
    f.running.stop().await;
    let f = start_with(true).await;
    assert_eq!(
        etcd_range(&f, "good-token").await,
        tonic::Code::PermissionDenied,
        "a user outside system:masters read the raw store"
    );
    assert_eq!(etcd_range(&f, "bad").await, tonic::Code::Unauthenticated);
    f.running.stop().await;
}

// --- Joining: bootstrap tokens, the pinned CA, node certificates ---------

use rudder_client::bootstrap::{self, JoinError, Requester};

fn server_url(f: &Fixture) -> String {
    format!("https://{}", f.running.grpc_addr)
}

/// The user a PEM client certificate names.
fn subject_of(cert_pem: &str) -> rudder_controlplane::auth::UserInfo {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("pem");
    rudder_controlplane::auth::user_of_certificate(&der).expect("subject")
}

#[tokio::test]
async fn a_node_joins_with_a_bootstrap_token_and_the_pinned_ca() {
    let f = start().await;
    let token = f
        .tokens
        .create(time::Duration::hours(1), "test")
        .expect("token");
    let ca = bootstrap::discover_ca(&server_url(&f), f.pki.ca_hash())
        .await
        .expect("the pinned CA is found");
    assert_eq!(ca.trim(), f.pki.ca_pem().trim());
    let identity = bootstrap::request_node_certificate(
        &server_url(&f),
        &ca,
        &Requester::Token(token.to_string()),
        "node-a",
    )
    .await
    .expect("a node certificate");
    let user = subject_of(&identity.cert_pem);
    assert_eq!(user.name, "system:node:node-a");
    assert_eq!(user.groups, ["system:nodes"]);
    // The node certificate gets in; the token itself only asks for certificates.
    let node = ClientConfig {
        server: server_url(&f),
        credentials: Credentials {
            ca_pem: Some(ca.clone()),
            server_name: None,
            identity: Some(identity.clone()),
            token: None,
        },
        reload_from: None,
    };
    let nodes = Client::connect_with(&node)
        .await
        .expect("connects")
        .list::<rudder_api::core::Node>(&ListOptions::default())
        .await;
    nodes.expect("the node is in (and may list Nodes)");
    let as_token = config(&f, None, Some(&token.to_string()));
    match list_namespaces(&as_token).await {
        Err(err) => assert!(
            err.to_string().contains("only request a node certificate"),
            "{err}"
        ),
        Ok(_) => panic!("a bootstrap token listed namespaces"),
    }
    // Renewal with the node's own certificate, for its own name only.
    let renewed = bootstrap::request_node_certificate(
        &server_url(&f),
        &ca,
        &Requester::Certificate(identity.clone()),
        "node-a",
    )
    .await
    .expect("renewed");
    assert_eq!(subject_of(&renewed.cert_pem).name, "system:node:node-a");
    let other = bootstrap::request_node_certificate(
        &server_url(&f),
        &ca,
        &Requester::Certificate(identity),
        "node-b",
    )
    .await
    .expect_err("another node's certificate is refused");
    assert!(other.to_string().contains("only its own"), "{other}");
}

#[tokio::test]
async fn a_wrong_ca_hash_is_refused_naming_both_hashes() {
    let f = start().await;
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = bootstrap::discover_ca(&server_url(&f), &wrong)
        .await
        .expect_err("refused");
    assert!(matches!(err, JoinError::HashMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&wrong), "{text}");
    assert!(text.contains(f.pki.ca_hash()), "{text}");
    let malformed = bootstrap::discover_ca(&server_url(&f), "sha256:12")
        .await
        .expect_err("refused");
    assert!(matches!(malformed, JoinError::BadHash(_)), "{malformed}");
}

#[tokio::test]
async fn wrong_deleted_and_expired_tokens_are_refused_clearly() {
    let f = start().await;
    let ca = f.pki.ca_pem().to_owned();
    let ask = |token: String| {
        let server = server_url(&f);
        let ca = ca.clone();
        async move {
            bootstrap::request_node_certificate(&server, &ca, &Requester::Token(token), "node-a")
                .await
                .expect_err("refused")
                .to_string()
        }
    };
    let wrong = ask("abcdef.0123456789abcdef".into()).await;
    assert!(wrong.contains("not valid"), "{wrong}");
    let token = f
        .tokens
        .create(time::Duration::hours(1), "")
        .expect("token");
    f.tokens.delete(&token.id).expect("deleted");
    let deleted = ask(token.to_string()).await;
    assert!(deleted.contains("not valid"), "{deleted}");
    // Expired: a token file line whose expiry has passed.
    let token = f
        .tokens
        .create(time::Duration::hours(1), "")
        .expect("token");
    let path = f.tokens.path().to_owned();
    let text = std::fs::read_to_string(&path).expect("tokens file");
    let past = (time::OffsetDateTime::now_utc() - time::Duration::hours(1)).unix_timestamp();
    let text = text
        .lines()
        .map(
            |line| match line.split(',').collect::<Vec<_>>().as_slice() {
                [id, hash, _, rest @ ..] if *id == token.id => {
                    format!("{id},{hash},{past},{}", rest.join(","))
                }
                _ => line.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, text).expect("rewritten");
    let expired = ask(token.to_string()).await;
    assert!(expired.contains("expired"), "{expired}");
}
