//! What several test binaries share: kubectl, and a control plane as
//! users run it.

pub mod kubectl;

use std::path::Path;

use rudder_controlplane::{
    auth::{Authenticator, StaticTokens},
    pki::ClusterPki,
    server::{self, RunningServer, Security, ServerConfig, TlsSettings},
};

/// A control plane on 127.0.0.1 (ephemeral port, data in `dir`) serving
/// TLS with a certificate of `pki`, authenticating client certificates
/// of its CA.
pub async fn start_tls(dir: &Path, pki: &ClusterPki) -> RunningServer {
    let serving = pki
        .issue_serving(&["localhost".into()], &["127.0.0.1".parse().expect("ip")])
        .expect("serving cert");
    server::start(ServerConfig {
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        http_listen: None,
        compaction_interval: None,
        replication: None,
        security: Security::Tls(TlsSettings {
            client_ca_pem: pki.ca_pem().to_owned(),
            serving,
            authenticator: Authenticator::new(StaticTokens::default()),
            node_certificates: None,
        }),
        etcd_api: false,
    })
    .await
    .expect("server starts")
}
