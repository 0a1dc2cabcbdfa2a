//! Service and EndpointSlice (or v1 Endpoints) objects, as the control
//! plane sends them, to the dataplane's [`ServiceState`], as seen from one
//! node.

use std::net::Ipv4Addr;

use rudder_api::{
    core::{Endpoints, Service},
    discovery::EndpointSlice,
};

use crate::dataplane::services::{
    Endpoint, EndpointPort, LOAD_BALANCING_ANNOTATION, LoadBalancing, Protocol, ServiceName,
    ServicePort, ServiceState,
};

/// Default sessionAffinity ClientIP timeout, as Kubernetes has it.
const DEFAULT_AFFINITY_TIMEOUT_S: u32 = 10_800;

/// Where a Service's backends come from.
#[derive(Debug, Clone, Copy)]
pub enum Backends<'a> {
    /// Its EndpointSlices (what the control plane's controller writes):
    /// each endpoint says whether it is ready and whether it terminates.
    Slices(&'a [&'a EndpointSlice]),
    /// Only v1 Endpoints (written by hand, or by an older control plane):
    /// ready and not-ready addresses, none known to be terminating.
    Endpoints(Option<&'a Endpoints>),
}

/// The dataplane's view of `service` with its `backends` on node `node`.
/// `None` for what the dataplane does not serve (headless, ExternalName,
/// no usable ClusterIP); problems are logged, never fatal.
pub fn service_state(
    service: &Service,
    backends: Backends<'_>,
    node: &str,
) -> Option<ServiceState> {
    let meta = &service.metadata;
    let name = ServiceName::new(&meta.namespace, &meta.name);
    let spec = &service.spec;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let cluster_ip = match spec.cluster_ip.as_deref() {
        None | Some("") | Some("None") => return None,
        Some(ip) => match ip.parse::<Ipv4Addr>() {
            Ok(ip) => ip,
            Err(_) => {
                tracing::warn!(service = %name, ip, "clusterIP is not IPv4; not served");
                return None;
            }
        },
    };
    let ports: Vec<ServicePort> = spec
        .ports
        .iter()
        .filter_map(|p| {
            let protocol = protocol(p.protocol.as_deref())?;
            Some(ServicePort {
                name: p.name.clone().unwrap_or_default(),
                protocol,
                port: u16::try_from(p.port).ok()?,
                node_port: p
                    .node_port
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n != 0),
            })
        })
        .collect();
    let affinity_timeout_s = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_S)
    });
    let load_balancing = match meta.annotations.get(LOAD_BALANCING_ANNOTATION) {
        None => LoadBalancing::Random,
        Some(value) => LoadBalancing::from_annotation(value).unwrap_or_else(|err| {
            tracing::warn!(service = %name, %err, "using random load balancing");
            LoadBalancing::Random
        }),
    };
    let state_endpoints = match backends {
        Backends::Slices(slices) => from_slices(slices, node),
        Backends::Endpoints(endpoints) => from_endpoints(endpoints, node),
    };
    Some(ServiceState {
        name,
        cluster_ip: Some(cluster_ip),
        ports,
        affinity_timeout_s,
        external_traffic_local: spec.external_traffic_policy.as_deref() == Some("Local"),
        load_balancing,
        endpoints: state_endpoints,
    })
}

/// Endpoints of the slices: ready ones take new flows; terminating and
/// not-ready ones drain (keep the flows they have, take no new ones): a pod
/// being deleted finishes its requests, and one whose readiness probe fails
/// for a moment keeps its connections, as conntrack keeps them under
/// kube-proxy. A pod that leaves the slices ends its flows.
fn from_slices(slices: &[&EndpointSlice], node: &str) -> Vec<Endpoint> {
    let mut endpoints = Vec::new();
    for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
        let ports: Vec<EndpointPort> = slice
            .ports
            .iter()
            .filter_map(|p| {
                Some(EndpointPort {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: protocol(p.protocol.as_deref())?,
                    port: u16::try_from(p.port?).ok()?,
                })
            })
            .collect();
        for endpoint in &slice.endpoints {
            let Some(addr) = endpoint
                .addresses
                .first()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let conditions = &endpoint.conditions;
            let terminating = conditions.is_terminating();
            let ready = conditions.is_ready() && !terminating;
            endpoints.push(Endpoint {
                addr,
                ports: ports.clone(),
                ready,
                terminating,
                local: endpoint.node_name.as_deref() == Some(node),
            });
        }
    }
    endpoints
}

/// Addresses of v1 Endpoints: ready ones take new flows, not-ready ones
/// drain (as in [`from_slices`]).
fn from_endpoints(endpoints: Option<&Endpoints>, node: &str) -> Vec<Endpoint> {
    let mut state_endpoints = Vec::new();
    for subset in endpoints.map(|e| e.subsets.as_slice()).unwrap_or_default() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .filter_map(|p| {
                Some(EndpointPort {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: protocol(p.protocol.as_deref())?,
                    port: u16::try_from(p.port).ok()?,
                })
            })
            .collect();
        let ready = subset.addresses.iter().map(|a| (a, true));
        let not_ready = subset.not_ready_addresses.iter().map(|a| (a, false));
        for (address, ready) in ready.chain(not_ready) {
            let Ok(addr) = address.ip.parse::<Ipv4Addr>() else {
                continue;
            };
            state_endpoints.push(Endpoint {
                addr,
                ports: ports.clone(),
                ready,
                terminating: false,
                local: address.node_name.as_deref() == Some(node),
            });
        }
    }
    state_endpoints
}

/// TCP when unset; SCTP (and anything else) is not served.
fn protocol(name: Option<&str>) -> Option<Protocol> {
    match name {
        None | Some("TCP") => Some(Protocol::Tcp),
        Some("UDP") => Some(Protocol::Udp),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::services::{NodeAddresses, service_state::BackendList};

    fn decode<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).expect("valid json")
    }

    #[test]
    fn a_nodeport_service_with_endpoints_becomes_a_service_state() {
        let service: Service = decode(
            r#"{"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "shop", "annotations": {"rudder.dev/load-balancing": "maglev"}},
                "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "externalTrafficPolicy": "Local",
                         "sessionAffinity": "ClientIP",
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
                                   {"name": "dns", "protocol": "UDP", "port": 53}]}}"#,
        );
        let endpoints: Endpoints = decode(
            r#"{"metadata": {"name": "web", "namespace": "shop"},
                "subsets": [{"addresses": [{"ip": "10.244.1.2", "nodeName": "n1"}, {"ip": "10.244.2.2", "nodeName": "n2"}],
                             "notReadyAddresses": [{"ip": "10.244.1.9", "nodeName": "n1"}],
                             "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}]}]}"#,
        );
        let state =
            service_state(&service, Backends::Endpoints(Some(&endpoints)), "n1").expect("served");
        assert_eq!(state.name.to_string(), "shop/web");
        assert_eq!(state.cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 10)));
        assert_eq!(state.ports.len(), 2);
        assert_eq!(state.ports[0].node_port, Some(30080));
        assert_eq!(state.ports[1].protocol, Protocol::Udp);
        assert!(state.external_traffic_local);
        assert_eq!(state.affinity_timeout_s, Some(DEFAULT_AFFINITY_TIMEOUT_S));
        assert_eq!(state.load_balancing, LoadBalancing::Maglev);
        let ready: Vec<(String, bool)> = state
            .endpoints
            .iter()
            .map(|e| (e.addr.to_string(), e.ready))
            .collect();
        assert_eq!(
            ready,
            [
                ("10.244.1.2".to_owned(), true),
                ("10.244.2.2".to_owned(), true),
                ("10.244.1.9".to_owned(), false),
            ],
            "not-ready addresses are kept, to drain"
        );
        assert!(state.endpoints[0].local && !state.endpoints[1].local);
        assert_eq!(state.endpoints[0].ports[1].port, 5353);
    }

    #[test]
    fn headless_and_external_name_services_are_not_served() {
        let headless: Service = decode(
            r#"{"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}"#,
        );
        assert_eq!(
            service_state(&headless, Backends::Endpoints(None), "n1"),
            None
        );
        let external: Service =
            decode(r#"{"metadata": {"name": "x"}, "spec": {"type": "ExternalName", "ports": []}}"#);
        assert_eq!(
            service_state(&external, Backends::Endpoints(None), "n1"),
            None
        );
    }

    #[test]
    fn slices_give_ready_endpoints_new_flows_and_the_others_only_theirs() {
        let service: Service = decode(
            r#"{"metadata": {"name": "web", "namespace": "shop"},
                "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}"#,
        );
        let slice: EndpointSlice = decode(
            r#"{"metadata": {"name": "web-0", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [
                  {"addresses": ["10.244.1.2"], "nodeName": "n1", "conditions": {"ready": true, "serving": true, "terminating": false}},
                  {"addresses": ["10.244.1.3"], "nodeName": "n1", "conditions": {"ready": false, "serving": true, "terminating": true}},
                  {"addresses": ["10.244.2.4"], "nodeName": "n2", "conditions": {"ready": false, "serving": false, "terminating": true}},
                  {"addresses": ["10.244.2.5"], "nodeName": "n2", "conditions": {"ready": false, "serving": false, "terminating": false}},
                  {"addresses": ["10.244.2.6"], "nodeName": "n2", "conditions": {}}
                ]}"#,
        );
        let state = service_state(&service, Backends::Slices(&[&slice]), "n1").expect("served");
        let seen: Vec<(String, bool, bool, bool)> = state
            .endpoints
            .iter()
            .map(|e| (e.addr.to_string(), e.ready, e.terminating, e.local))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("10.244.1.2".to_owned(), true, false, true),
                ("10.244.1.3".to_owned(), false, true, true),
                ("10.244.2.4".to_owned(), false, true, false),
                ("10.244.2.5".to_owned(), false, false, false),
                // Unset conditions mean ready (as Kubernetes reads them).
                ("10.244.2.6".to_owned(), true, false, false),
            ]
        );
        assert_eq!(state.endpoints[0].ports[0].port, 8080);
        let nodes = NodeAddresses {
            node_port_addrs: Vec::new(),
        };
        let (_, frontend) = &state.frontends(&nodes)[0];
        let addrs = |list: &BackendList| -> Vec<String> {
            list.iter().map(|(k, _)| k.addr.to_string()).collect()
        };
        assert_eq!(addrs(&frontend.active), ["10.244.1.2", "10.244.2.6"]);
        assert_eq!(
            addrs(&frontend.draining),
            ["10.244.1.3", "10.244.2.4", "10.244.2.5"],
            "terminating and not-ready endpoints keep their flows"
        );
    }
}
