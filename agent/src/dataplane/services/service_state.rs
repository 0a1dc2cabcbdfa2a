//! Services and their endpoints as the agent hears of them (from the
//! control plane's node-sync stream, a services file, or a test), and the
//! frontends with backends they need on a node ([`FrontendSpec`]).

use std::net::Ipv4Addr;

use dataplane_common::service::{
    BACKEND_DRAINING, BACKEND_LOCAL, FRONTEND_AFFINITY, FRONTEND_EXTERNAL_LOCAL, FRONTEND_MAGLEV,
    FRONTEND_NODE_PORT, FrontendKey, ipv4_to_net, port_to_net,
};
pub use rudder_dataplane_maps::Protocol;

/// A Service's namespace and name.
#[expect(missing_docs, reason = "the namespace and name of a Kubernetes object")]
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName {
    pub namespace: String,
    pub name: String,
}

impl ServiceName {
    /// `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The Service annotation that selects the load-balancing algorithm:
/// `rudder.dev/load-balancing: maglev` (or `random`, the default).
pub const LOAD_BALANCING_ANNOTATION: &str = "rudder.dev/load-balancing";

/// How a frontend picks the backend of a new flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoadBalancing {
    /// Uniformly at random (the default, like kube-proxy).
    #[default]
    Random,
    /// Maglev consistent hashing of the flow: the same flow picks the same
    /// backend on every node, and a backend change moves few flows.
    Maglev,
}

/// One port of a Service.
#[expect(missing_docs, reason = "self-evident: the port's transport protocol")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// Port name (matches the endpoints' port names); may be empty when the
    /// Service has a single port.
    pub name: String,
    pub protocol: Protocol,
    /// The ClusterIP port.
    pub port: u16,
    /// The NodePort, for NodePort Services.
    pub node_port: Option<u16>,
}

/// One port of an endpoint (the resolved targetPort).
#[expect(missing_docs, reason = "self-evident: the port's transport protocol")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointPort {
    /// Name, matching a [`ServicePort::name`].
    pub name: String,
    pub protocol: Protocol,
    /// Port the pod listens on.
    pub port: u16,
}

/// One endpoint (pod) of a Service.
#[expect(missing_docs, reason = "self-evident: the pod's address and ports")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: Ipv4Addr,
    pub ports: Vec<EndpointPort>,
    /// Ready (and not terminating): receives new flows. Otherwise the
    /// endpoint drains: no new flows, its established ones go on.
    pub ready: bool,
    /// Its pod is being deleted.
    pub terminating: bool,
    /// The pod runs on this node.
    pub local: bool,
}

/// A Service with its endpoints: the unit the dataplane is told about.
#[expect(
    missing_docs,
    reason = "self-evident: the Service's name, ports and endpoints"
)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceState {
    pub name: ServiceName,
    /// The ClusterIP; `None` for headless Services (no frontend at all).
    pub cluster_ip: Option<Ipv4Addr>,
    pub ports: Vec<ServicePort>,
    /// sessionAffinity ClientIP timeout in seconds, if enabled.
    pub affinity_timeout_s: Option<u32>,
    /// externalTrafficPolicy Local (NodePorts use local backends only and
    /// keep the client address).
    pub external_traffic_local: bool,
    /// Backend selection.
    pub load_balancing: LoadBalancing,
    pub endpoints: Vec<Endpoint>,
}

/// Identity of a backend across frontends: address, port, protocol.
#[expect(missing_docs, reason = "the pod's address, port and protocol")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
}

/// Backends with their `BACKEND_*` flags.
pub type BackendList = Vec<(BackendKey, u8)>;

/// What one frontend of a Service must look like on a node: flags, and
/// backends in a stable order. The table turns it into map writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontendSpec {
    /// `FRONTEND_*` flags.
    pub flags: u16,
    /// sessionAffinity timeout (seconds; 0 without affinity).
    pub affinity_timeout_s: u32,
    /// Address and port replies are restored to.
    pub addr: Ipv4Addr,
    /// Port replies are restored to.
    pub port: u16,
    /// Backends taking new flows.
    pub active: BackendList,
    /// Draining backends (terminating or not ready): no new flows, kept so
    /// their established flows go on.
    pub draining: BackendList,
}

/// This node's part in translation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddresses {
    /// Addresses NodePorts are served on (the node's uplink addresses).
    pub node_port_addrs: Vec<Ipv4Addr>,
}

impl LoadBalancing {
    /// The algorithm a [`LOAD_BALANCING_ANNOTATION`] value names.
    ///
    /// # Errors
    /// The value is neither `random` nor `maglev`.
    pub fn from_annotation(value: &str) -> Result<Self, String> {
        match value {
            "random" => Ok(Self::Random),
            "maglev" => Ok(Self::Maglev),
            other => Err(format!(
                "annotation {LOAD_BALANCING_ANNOTATION}: {other:?} is not random or maglev"
            )),
        }
    }
}

impl ServiceState {
    /// The frontends this Service needs on a node with `node`'s addresses.
    pub fn frontends(&self, node: &NodeAddresses) -> Vec<(FrontendKey, FrontendSpec)> {
        let Some(cluster_ip) = self.cluster_ip else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut base_flags = 0;
        if self.affinity_timeout_s.is_some() {
            base_flags |= FRONTEND_AFFINITY;
        }
        if self.load_balancing == LoadBalancing::Maglev {
            base_flags |= FRONTEND_MAGLEV;
        }
        for port in &self.ports {
            let (active, draining) = self.backends_for(port, false);
            out.push((
                frontend_key(cluster_ip, port.port, port.protocol),
                FrontendSpec {
                    flags: base_flags,
                    affinity_timeout_s: self.affinity_timeout_s.unwrap_or(0),
                    addr: cluster_ip,
                    port: port.port,
                    active,
                    draining,
                },
            ));
            let Some(node_port) = port.node_port else {
                continue;
            };
            let (active, draining) = self.backends_for(port, self.external_traffic_local);
            let mut flags = base_flags | FRONTEND_NODE_PORT;
            if self.external_traffic_local {
                flags |= FRONTEND_EXTERNAL_LOCAL;
            }
            for addr in &node.node_port_addrs {
                out.push((
                    frontend_key(*addr, node_port, port.protocol),
                    FrontendSpec {
                        flags,
                        affinity_timeout_s: self.affinity_timeout_s.unwrap_or(0),
                        addr: *addr,
                        port: node_port,
                        active: active.clone(),
                        draining: draining.clone(),
                    },
                ));
            }
        }
        out
    }

    /// Active and draining backends of `port`, sorted (a stable order
    /// keeps slot writes minimal and Maglev tables identical on all nodes).
    fn backends_for(&self, port: &ServicePort, local_only: bool) -> (BackendList, BackendList) {
        let mut active = Vec::new();
        let mut draining = Vec::new();
        for endpoint in &self.endpoints {
            if local_only && !endpoint.local {
                continue;
            }
            let matching = endpoint.ports.iter().find(|p| {
                p.protocol == port.protocol
                    && (p.name == port.name || (self.ports.len() == 1 && endpoint.ports.len() == 1))
            });
            let Some(target) = matching else {
                continue;
            };
            let key = BackendKey {
                addr: endpoint.addr,
                port: target.port,
                protocol: port.protocol,
            };
            let mut flags = if endpoint.local { BACKEND_LOCAL } else { 0 };
            if endpoint.ready && !endpoint.terminating {
                active.push((key, flags));
            } else {
                flags |= BACKEND_DRAINING;
                draining.push((key, flags));
            }
        }
        active.sort();
        active.dedup_by_key(|(k, _)| *k);
        // A pod in two slices at once (a move between slices) is active if
        // either says so: it must not also drain.
        draining.retain(|(k, _)| active.binary_search_by_key(k, |(a, _)| *a).is_err());
        draining.sort();
        draining.dedup_by_key(|(k, _)| *k);
        (active, draining)
    }
}

/// The map key of a frontend.
pub fn frontend_key(addr: Ipv4Addr, port: u16, protocol: Protocol) -> FrontendKey {
    FrontendKey {
        addr: ipv4_to_net(addr.octets()),
        port: port_to_net(port),
        proto: protocol.number(),
        pad: 0,
    }
}
