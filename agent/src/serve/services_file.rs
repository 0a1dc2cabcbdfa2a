//! A file of Services with their endpoints, the Services of a node that
//! runs without a control plane: the facts the node-sync stream carries,
//! written by hand or by a test.
//!
//! ```json
//! {"services": [{
//!   "namespace": "default", "name": "web", "clusterIP": "10.96.0.10",
//!   "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}],
//!   "externalTrafficPolicy": "Cluster", "sessionAffinityTimeoutSeconds": null,
//!   "annotations": {"rudder.dev/load-balancing": "maglev"},
//!   "endpoints": [{"ip": "10.244.1.2", "node": "node1", "ready": true, "terminating": false}]
//! }]}
//! ```

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use serde::Deserialize;
use tokio::sync::mpsc::UnboundedSender;

use super::updates::ServiceUpdate;

use crate::dataplane::services::{
    Endpoint, EndpointPort, LOAD_BALANCING_ANNOTATION, LoadBalancing, Protocol, ServiceName,
    ServicePort, ServiceState,
};

/// Errors reading a services file.
#[expect(
    missing_docs,
    reason = "the fields are named for what the message shows"
)]
#[derive(Debug, thiserror::Error)]
pub enum ServicesFileError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    services: Vec<FileService>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileService {
    #[serde(default = "default_namespace")]
    namespace: String,
    name: String,
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<Ipv4Addr>,
    ports: Vec<FilePort>,
    #[serde(default)]
    external_traffic_policy: Option<String>,
    #[serde(default)]
    session_affinity_timeout_seconds: Option<u32>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    endpoints: Vec<FileEndpoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FilePort {
    #[serde(default)]
    name: String,
    #[serde(default = "default_protocol")]
    protocol: String,
    port: u16,
    target_port: Option<u16>,
    node_port: Option<u16>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileEndpoint {
    ip: Ipv4Addr,
    node: String,
    #[serde(default = "yes")]
    ready: bool,
    #[serde(default)]
    terminating: bool,
}

fn default_namespace() -> String {
    "default".into()
}

fn default_protocol() -> String {
    "TCP".into()
}

fn yes() -> bool {
    true
}

/// Reads `path` as the Services the node `node` should serve.
///
/// # Errors
/// When the file cannot be read or is invalid; the message names the
/// service and field.
pub fn read(path: &Path, node: &str) -> Result<Vec<ServiceState>, ServicesFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ServicesFileError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&text, node).map_err(|reason| ServicesFileError::Invalid {
        path: shown,
        reason,
    })
}

/// How often the services file is looked at.
const POLL: Duration = Duration::from_millis(200);

/// What the follower last saw of the file.
#[derive(Clone, Copy, PartialEq)]
enum LastLook {
    /// Not looked yet: the first look reads the file (or reports it
    /// missing) whatever it finds.
    Never,
    /// Its modification time then (`None`: it could not be stat'ed).
    Modified(Option<SystemTime>),
}

/// Follows the services file at `path`: every time its modification time
/// changes, it is read and sent to `services` as the full set; a file that
/// cannot be read or is invalid is logged, and the maps keep their last
/// state. Returns when the receiver is gone.
pub async fn follow(path: PathBuf, node: String, services: UnboundedSender<ServiceUpdate>) {
    let mut last = LastLook::Never;
    loop {
        let look = LastLook::Modified(std::fs::metadata(&path).and_then(|m| m.modified()).ok());
        if look != last {
            last = look;
            let received = Instant::now();
            match read(&path, &node) {
                Ok(all) => {
                    let update = ServiceUpdate::Resync {
                        services: all,
                        received,
                    };
                    if services.send(update).is_err() {
                        return;
                    }
                }
                Err(err) => {
                    tracing::error!(%err, "services file ignored; the maps keep their last state");
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Parses the file's text; errors name the service and field.
pub fn parse(text: &str, node: &str) -> Result<Vec<ServiceState>, String> {
    let file: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
    file.services
        .into_iter()
        .map(|s| convert(s, node))
        .collect()
}

fn convert(service: FileService, node: &str) -> Result<ServiceState, String> {
    let FileService {
        namespace,
        name,
        cluster_ip,
        ports,
        external_traffic_policy,
        session_affinity_timeout_seconds,
        annotations,
        endpoints,
    } = service;
    let id = format!("service \"{namespace}/{name}\"");
    let external_traffic_local = match external_traffic_policy.as_deref() {
        None | Some("Cluster") => false,
        Some("Local") => true,
        Some(other) => {
            return Err(format!(
                "{id}: externalTrafficPolicy {other:?} is not Cluster or Local"
            ));
        }
    };
    let load_balancing = match annotations.get(LOAD_BALANCING_ANNOTATION) {
        None => LoadBalancing::Random,
        Some(value) => LoadBalancing::from_annotation(value).map_err(|e| format!("{id}: {e}"))?,
    };
    let mut service_ports = Vec::new();
    let mut endpoint_ports = Vec::new();
    for (i, port) in ports.into_iter().enumerate() {
        let protocol = match port.protocol.as_str() {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            other => {
                return Err(format!(
                    "{id}: ports[{i}].protocol {other:?} is not TCP or UDP"
                ));
            }
        };
        if port.port == 0 {
            return Err(format!("{id}: ports[{i}].port must be 1-65535"));
        }
        service_ports.push(ServicePort {
            name: port.name.clone(),
            protocol,
            port: port.port,
            node_port: port.node_port,
        });
        endpoint_ports.push(EndpointPort {
            name: port.name,
            protocol,
            port: port.target_port.unwrap_or(port.port),
        });
    }
    Ok(ServiceState {
        name: ServiceName { namespace, name },
        cluster_ip,
        ports: service_ports,
        affinity_timeout_s: session_affinity_timeout_seconds,
        external_traffic_local,
        load_balancing,
        endpoints: endpoints
            .into_iter()
            .map(|e| Endpoint {
                addr: e.ip,
                ports: endpoint_ports.clone(),
                ready: e.ready,
                terminating: e.terminating,
                local: e.node == node,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::dataplane::services::LoadBalancing;

    #[test]
    fn a_service_file_becomes_service_states_with_local_endpoints_marked() {
        let text = r#"{"services": [{"name": "web", "clusterIP": "10.96.0.10",
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}],
            "endpoints": [{"ip": "10.244.1.2", "node": "node1"}, {"ip": "10.244.2.2", "node": "node2"}]}]}"#;
        let services = parse(text, "node1").expect("valid");
        assert_eq!(services.len(), 1);
        let s = &services[0];
        assert_eq!(s.name.to_string(), "default/web");
        assert_eq!(s.endpoints[0].ports[0].port, 8080);
        assert!(s.endpoints[0].local && !s.endpoints[1].local);
        assert_eq!(s.ports[0].node_port, Some(30080));
        assert_eq!(s.load_balancing, LoadBalancing::Random);
        let maglev = r#"{"services": [{"name": "web", "clusterIP": "10.96.0.10", "ports": [{"port": 80}],
            "annotations": {"rudder.dev/load-balancing": "maglev"}}]}"#;
        assert_eq!(
            parse(maglev, "node1").expect("valid")[0].load_balancing,
            LoadBalancing::Maglev
        );
        let bad = maglev.replace("\"maglev\"", "\"ring\"");
        let err = parse(&bad, "node1").expect_err("invalid");
        assert!(
            err.starts_with("service \"default/web\": annotation rudder.dev/load-balancing"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_field_is_named_with_its_service() {
        let text = r#"{"services": [{"name": "web", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "protocol": "SCTP"}]}]}"#;
        let err = parse(text, "node1").expect_err("invalid");
        assert_eq!(
            err,
            r#"service "default/web": ports[0].protocol "SCTP" is not TCP or UDP"#
        );
        let err = parse(
            r#"{"services": [{"name": "web", "bogus": 1, "ports": []}]}"#,
            "n",
        )
        .expect_err("invalid");
        assert!(err.contains("unknown field `bogus`"), "{err}");
    }
}
