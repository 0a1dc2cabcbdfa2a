//! The node's membership in the cluster: its Node object (addresses, pod
//! CIDR, capacity, a Ready condition), a Lease renewed as its heartbeat, and
//! routes to every other node's pod CIDR via that node's address, kept in
//! sync with the Node objects (no overlay, no iptables).

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    time::{Duration, SystemTime},
};

use rudder_api::{
    coordination::{Lease, LeaseSpec},
    core::{Namespace, Node, NodeAddress, NodeSpec, NodeStatus},
    meta::{Condition, ObjectMeta},
    time::format_rfc3339,
};
use rudder_client::{
    Client, ClientConfig, ClientError, ListOptions, WatchEvent,
    list_watch::{ListWatchEvent, list_watch},
};
use rudder_netlink::{Ipv4Subnet, NextHop, RouteSocket};

/// Node annotation with the agent's HTTP endpoint (`http://ip:port`), where
/// `rudderctl logs` reads container output.
pub const AGENT_ENDPOINT_ANNOTATION: &str = "rudder.dev/agent-endpoint";

/// Namespace of node heartbeat leases, as in Kubernetes.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// What the agent says about its node.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    /// The Node object's name (and its lease's).
    pub name: String,
    /// Address other nodes reach it on.
    pub address: Ipv4Addr,
    /// Its pods' subnet (e.g. 10.244.1.0/24).
    pub pod_cidr: String,
    /// The cluster's pod network: other nodes' pod CIDRs are routed only
    /// inside it.
    pub cluster_cidr: Ipv4Subnet,
    /// Lease duration: how long the node counts as alive without a renewal.
    pub lease_duration: Duration,
    /// The agent's HTTP endpoint, if it serves one.
    pub agent_endpoint: Option<String>,
}

/// Runs forever: registers the node, renews
/// its lease at a third of the lease duration, and follows the other nodes'
/// pod CIDRs into routes. Errors are logged and retried.
pub async fn run(api: ClientConfig, identity: NodeIdentity) {
    let routes = tokio::spawn(follow_routes(api.clone(), identity.clone()));
    let mut registered = false;
    loop {
        match Client::connect_with(&api).await {
            Ok(client) => {
                if !registered {
                    match register(&client, &identity).await {
                        Ok(()) => {
                            registered = true;
                            tracing::info!(node = %identity.name, "node registered");
                        }
                        Err(err) => tracing::warn!(%err, "registering the node"),
                    }
                }
                if registered && let Err(err) = renew_lease(&client, &identity).await {
                    tracing::warn!(%err, "renewing the node lease");
                }
            }
            Err(err) => tracing::warn!(%err, "control plane unreachable"),
        }
        tokio::time::sleep(identity.lease_duration / 3).await;
        if routes.is_finished() {
            return;
        }
    }
}

fn node_object(identity: &NodeIdentity) -> Node {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let capacity: BTreeMap<String, String> = [
        ("cpu".to_owned(), cpus.to_string()),
        ("memory".to_owned(), format!("{memory_kib}Ki")),
        ("pods".to_owned(), "110".to_owned()),
    ]
    .into();
    let now = format_rfc3339(SystemTime::now());
    Node {
        metadata: ObjectMeta {
            name: identity.name.clone(),
            labels: [("kubernetes.io/hostname".to_owned(), identity.name.clone())].into(),
            annotations: identity
                .agent_endpoint
                .iter()
                .map(|e| (AGENT_ENDPOINT_ANNOTATION.to_owned(), e.clone()))
                .collect(),
            ..ObjectMeta::default()
        },
        spec: NodeSpec {
            pod_cidr: (!identity.pod_cidr.is_empty()).then(|| identity.pod_cidr.clone()),
            pod_cidrs: [identity.pod_cidr.clone()]
                .into_iter()
                .filter(|c| !c.is_empty())
                .collect(),
            ..NodeSpec::default()
        },
        status: Some(NodeStatus {
            addresses: vec![NodeAddress {
                type_: "InternalIP".into(),
                address: identity.address.to_string(),
            }],
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("AgentReady".into()),
                message: Some("rudder-agent is running and its dataplane is loaded".into()),
                last_transition_time: Some(now.clone()),
                last_heartbeat_time: Some(now),
                ..Condition::default()
            }],
            allocatable: capacity.clone(),
            capacity,
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

/// Creates the Node, or brings an existing one (a restart) up to date.
async fn register(client: &Client, identity: &NodeIdentity) -> Result<(), ClientError> {
    let wanted = node_object(identity);
    match client.get::<Node>("", &identity.name).await {
        Err(ClientError::NotFound(_)) => {
            let created = client.create(&wanted).await?;
            let mut with_status = created;
            with_status.status = wanted.status;
            client.update_status(&with_status).await.map(drop)
        }
        Ok(mut existing) => {
            existing.spec.pod_cidr = wanted.spec.pod_cidr;
            existing.spec.pod_cidrs = wanted.spec.pod_cidrs;
            existing.metadata.labels.extend(wanted.metadata.labels);
            existing
                .metadata
                .annotations
                .remove(AGENT_ENDPOINT_ANNOTATION);
            existing
                .metadata
                .annotations
                .extend(wanted.metadata.annotations);
            let mut updated = client.update(&existing).await?;
            updated.status = wanted.status;
            client.update_status(&updated).await.map(drop)
        }
        Err(err) => Err(err),
    }
}

/// Renews (or creates) the node's Lease.
async fn renew_lease(client: &Client, identity: &NodeIdentity) -> Result<(), ClientError> {
    let now = format_rfc3339(SystemTime::now());
    match client.get::<Lease>(LEASE_NAMESPACE, &identity.name).await {
        Ok(mut lease) => {
            lease.spec.renew_time = Some(now);
            client.update(&lease).await.map(drop)
        }
        Err(ClientError::NotFound(_)) => {
            let namespace = Namespace {
                metadata: ObjectMeta {
                    name: LEASE_NAMESPACE.into(),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            };
            // The control plane makes it; a node may not create
            // namespaces, and is told so (Forbidden) even when it exists.
            match client.create(&namespace).await {
                Ok(_) | Err(ClientError::AlreadyExists(_) | ClientError::Forbidden(_)) => {}
                Err(err) => return Err(err),
            }
            let lease = Lease {
                metadata: ObjectMeta {
                    name: identity.name.clone(),
                    namespace: LEASE_NAMESPACE.into(),
                    ..ObjectMeta::default()
                },
                spec: LeaseSpec {
                    holder_identity: Some(identity.name.clone()),
                    lease_duration_seconds: Some(
                        identity.lease_duration.as_secs().try_into().unwrap_or(40),
                    ),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    ..LeaseSpec::default()
                },
                ..Lease::default()
            };
            client.create(&lease).await.map(drop)
        }
        Err(err) => Err(err),
    }
}

/// Keeps one route per other node: its pod CIDR via its InternalIP,
/// following the Node objects through the client's list+watch loop (which
/// resumes, re-lists when compacted and retries by itself).
async fn follow_routes(api: ClientConfig, identity: NodeIdentity) {
    let client = loop {
        match Client::connect_with(&api).await {
            Ok(client) => break client,
            Err(err) => tracing::warn!(%err, "following nodes"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let mut installed: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut refused: BTreeMap<String, String> = BTreeMap::new();
    let mut current: BTreeMap<String, Node> = BTreeMap::new();
    list_watch(
        &client,
        &ListOptions::default(),
        |event: ListWatchEvent<Node>| {
            match event {
                ListWatchEvent::Listed { items, .. } => {
                    current = items
                        .into_iter()
                        .map(|n| (n.metadata.name.clone(), n))
                        .collect();
                }
                ListWatchEvent::Watched(WatchEvent::Added(node) | WatchEvent::Modified(node)) => {
                    current.insert(node.metadata.name.clone(), node);
                }
                ListWatchEvent::Watched(WatchEvent::Deleted(node)) => {
                    current.remove(&node.metadata.name);
                }
                ListWatchEvent::Watched(WatchEvent::Bookmark { .. }) => return,
            }
            let wanted = wanted_routes(&identity, &current, &mut refused);
            reconcile_routes(&wanted, &mut installed);
        },
    )
    .await;
}

/// Pod CIDR and address of a node, if it has both.
fn route_of(node: &Node) -> Option<(String, String)> {
    let cidr = node.spec.pod_cidr.clone().filter(|c| !c.is_empty())?;
    let via = node
        .status
        .as_ref()?
        .addresses
        .iter()
        .find(|a| a.type_ == "InternalIP")?
        .address
        .clone();
    Some((cidr, via))
}

/// The routes to other nodes' pods: each node's pod CIDR via its address,
/// for CIDRs inside the cluster's pod network that overlap neither this
/// node's own nor one an older node holds (the first node to claim a
/// range keeps it, as an allocator would have given it out). A Node object
/// is user input: one claiming 0.0.0.0/0, a service range or another
/// node's pods must not reroute this node. Refusals are logged once per
/// node and CIDR (`refused` remembers them).
fn wanted_routes(
    identity: &NodeIdentity,
    nodes: &BTreeMap<String, Node>,
    refused: &mut BTreeMap<String, String>,
) -> BTreeMap<String, (String, String)> {
    let own = Ipv4Subnet::parse_network(&identity.pod_cidr).ok();
    let mut candidates: Vec<(&str, &Node)> = nodes
        .iter()
        .filter(|(name, _)| **name != identity.name)
        .map(|(name, node)| (name.as_str(), node))
        .collect();
    // Oldest first; RFC 3339 timestamps of one format sort as time does.
    candidates.sort_by_key(|(name, node)| (node.metadata.creation_timestamp.clone(), *name));
    let mut taken: Vec<Ipv4Subnet> = own.into_iter().collect();
    let mut wanted = BTreeMap::new();
    let mut still_refused = BTreeMap::new();
    for (name, node) in candidates {
        let Some((cidr, via)) = route_of(node) else {
            continue;
        };
        let why = match Ipv4Subnet::parse_network(&cidr) {
            Err(err) => Some(err),
            Ok(subnet) if !identity.cluster_cidr.covers(subnet) => Some(format!(
                "outside the cluster's pod network {}",
                identity.cluster_cidr
            )),
            Ok(subnet) if taken.iter().any(|t| t.overlaps(subnet)) => {
                Some("overlaps this node's or an older node's pod CIDR".to_owned())
            }
            Ok(subnet) => {
                taken.push(subnet);
                None
            }
        };
        match why {
            None => {
                wanted.insert(name.to_owned(), (cidr, via));
            }
            Some(why) => {
                if refused.get(name) != Some(&cidr) {
                    tracing::warn!(node = %name, %cidr, %why, "not routing the node's pod CIDR");
                }
                still_refused.insert(name.to_owned(), cidr);
            }
        }
    }
    *refused = still_refused;
    wanted
}

fn reconcile_routes(
    wanted: &BTreeMap<String, (String, String)>,
    installed: &mut BTreeMap<String, (String, String)>,
) {
    for (name, (cidr, via)) in wanted {
        if installed.get(name) == Some(&(cidr.clone(), via.clone())) {
            continue;
        }
        match change_pod_route(cidr, via, RouteSocket::replace_route) {
            Ok(()) => {
                tracing::info!(node = %name, %cidr, %via, "route to node's pods");
                installed.insert(name.clone(), (cidr.clone(), via.clone()));
            }
            Err(err) => tracing::warn!(node = %name, %cidr, %via, %err, "installing route"),
        }
    }
    let gone: Vec<String> = installed
        .keys()
        .filter(|n| !wanted.contains_key(*n))
        .cloned()
        .collect();
    for name in gone {
        if let Some((cidr, via)) = installed.remove(&name) {
            let _ = change_pod_route(&cidr, &via, RouteSocket::delete_route);
            tracing::info!(node = %name, %cidr, "route removed: node gone");
        }
    }
}

/// Replaces or deletes (`change`) the route `<cidr> via <via>` of a
/// Node object; why not, for the log.
fn change_pod_route(
    cidr: &str,
    via: &str,
    change: fn(&mut RouteSocket, Ipv4Subnet, NextHop) -> rudder_netlink::Result<()>,
) -> Result<(), String> {
    let dst = Ipv4Subnet::parse_network(cidr)?;
    let gateway: Ipv4Addr = via
        .parse()
        .map_err(|_| format!("{via:?} is not an IPv4 address"))?;
    RouteSocket::open()
        .and_then(|mut socket| change(&mut socket, dst, NextHop::Gateway(gateway)))
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_cidr() -> Ipv4Subnet {
        Ipv4Subnet::parse_network("10.244.0.0/16").expect("subnet")
    }

    fn node_claiming(name: &str, cidr: &str, created: &str, addr: &str) -> Node {
        let mut node = node_object(&NodeIdentity {
            name: name.into(),
            address: addr.parse().expect("address"),
            pod_cidr: cidr.into(),
            cluster_cidr: cluster_cidr(),
            lease_duration: Duration::from_secs(40),
            agent_endpoint: None,
        });
        node.metadata.creation_timestamp = Some(created.into());
        node
    }

    #[test]
    fn only_pod_cidrs_inside_the_cluster_network_and_unclaimed_are_routed() {
        let me = NodeIdentity {
            name: "n1".into(),
            address: Ipv4Addr::new(198, 18, 0, 1),
            pod_cidr: "10.244.1.0/24".into(),
            cluster_cidr: cluster_cidr(),
            lease_duration: Duration::from_secs(40),
            agent_endpoint: None,
        };
        let t = |s: u8| format!("2026-12-02T10:00:{s:02}Z");
        let nodes: BTreeMap<String, Node> = [
            ("n2", "10.244.2.0/24", t(1)),
            // Every address, a service range, this node's own pods, the
            // whole pod network, an older node's range: none is routed.
            ("n3", "0.0.0.0/0", t(2)),
            ("n4", "10.96.0.0/24", t(3)),
            ("n5", "10.244.1.0/24", t(4)),
            ("n6", "10.244.0.0/16", t(5)),
            ("n7", "10.244.2.0/24", t(6)),
            ("n8", "10.244.8.0/24", t(7)),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (name, cidr, created))| {
            let addr = format!("198.18.0.{}", i + 2);
            (name.to_owned(), node_claiming(name, cidr, &created, &addr))
        })
        .collect();
        let mut refused = BTreeMap::new();
        let wanted = wanted_routes(&me, &nodes, &mut refused);
        assert_eq!(
            wanted.keys().map(String::as_str).collect::<Vec<_>>(),
            ["n2", "n8"]
        );
        assert_eq!(
            refused.keys().map(String::as_str).collect::<Vec<_>>(),
            ["n3", "n4", "n5", "n6", "n7"]
        );
        // The older node keeps its range whichever name sorts first.
        let mut swapped = nodes.clone();
        swapped
            .get_mut("n2")
            .expect("n2")
            .metadata
            .creation_timestamp = Some(t(9));
        let wanted = wanted_routes(&me, &swapped, &mut refused);
        assert_eq!(wanted["n7"].0, "10.244.2.0/24");
        assert!(!wanted.contains_key("n2"));
    }

    #[test]
    fn a_node_object_carries_address_cidr_capacity_and_readiness() {
        let node = node_object(&NodeIdentity {
            name: "n1".into(),
            address: Ipv4Addr::new(192, 0, 2, 1),
            pod_cidr: "10.244.1.0/24".into(),
            cluster_cidr: cluster_cidr(),
            lease_duration: Duration::from_secs(40),
            agent_endpoint: Some("http://192.0.2.1:10250".into()),
        });
        assert_eq!(
            node.metadata.annotations[AGENT_ENDPOINT_ANNOTATION],
            "http://192.0.2.1:10250"
        );
        assert_eq!(
            route_of(&node),
            Some(("10.244.1.0/24".into(), "192.0.2.1".into()))
        );
        let status = node.status.expect("status");
        assert!(status.capacity["cpu"].parse::<usize>().expect("cpu count") >= 1);
        assert!(status.capacity["memory"].ends_with("Ki"));
        assert_eq!(status.conditions[0].type_, "Ready");
    }
}
