//! A hand-made cluster for dataplane tests: node hosts on the underlay,
//! each with a pod bridge (`cni0`, 10.244.N.1/24), pods as namespaces with a
//! veth on that bridge, routes between the nodes' pod subnets, the eBPF
//! dataplane loaded and attached, and an outside client host. Services are
//! given to every node's [`ServiceDataplane`] directly, the way the agent
//! will once it follows the control plane.

use std::{net::Ipv4Addr, path::PathBuf, time::Instant};

use netns::{Host, Netns, TestNetwork};
use rudder_agent::dataplane::{
    Dataplane, TcAttach,
    services::{
        Endpoint, EndpointPort, LoadBalancing, NodeServiceConfig, Protocol, ServiceChange,
        ServiceDataplane, ServiceName, ServicePort, ServiceState, install_service_blackhole,
    },
};

/// The service CIDR every node blackholes.
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
/// Source address of hairpin flows.
pub const HAIRPIN_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 42, 1);

/// One node of the cluster.
pub struct Node {
    /// The node's host (namespace with `eth0` on the underlay).
    pub host: Host,
    /// Its bpffs directory.
    pub dir: PathBuf,
    /// Its service dataplane (the agent's desired-state interface).
    pub services: ServiceDataplane,
    /// Number of pods made on it so far.
    pods: u8,
    /// Host-side veths of its pods.
    pod_ifaces: Vec<String>,
    /// Its service settings.
    config: NodeServiceConfig,
}

/// A pod: a namespace with `eth0` on its node's bridge.
#[derive(Clone)]
pub struct Pod {
    /// Pod name (also the name its HTTP responder answers with).
    pub name: String,
    /// Its namespace.
    pub netns: Netns,
    /// Its address.
    pub addr: Ipv4Addr,
    /// Index of its node.
    pub node: usize,
    /// Host-side veth name in the node's namespace.
    pub host_iface: String,
}

impl std::ops::Deref for Pod {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.netns
    }
}

/// The cluster: underlay, nodes, an outside client.
pub struct Cluster {
    /// Nodes, `node1` first.
    pub nodes: Vec<Node>,
    /// Services applied, by name.
    applied: std::collections::BTreeMap<String, ServiceTemplate>,
    /// A host on the underlay that is not a node (NodePort client).
    pub client: Host,
    /// How the nodes' uplink tc programs attach.
    tc_attach: TcAttach,
    /// Drops last: removes every namespace and pin.
    pub net: TestNetwork,
}

/// A service port for [`Cluster::service`].
pub struct PortSpec {
    /// Port name.
    pub name: &'static str,
    /// Protocol.
    pub protocol: Protocol,
    /// ClusterIP port.
    pub port: u16,
    /// Pod port.
    pub target_port: u16,
    /// NodePort, if any.
    pub node_port: Option<u16>,
}

impl Cluster {
    /// Builds `nodes` nodes and a client host.
    ///
    /// # Panics
    /// When the kernel refuses any of it: the test cannot run.
    pub fn new(label: &str, nodes: usize) -> Self {
        Self::with_tc_attach(label, nodes, TcAttach::for_running_kernel())
    }

    /// [`Cluster::new`] with the nodes' uplink tc programs attached as
    /// `tc_attach` says (tc filters, as on kernels without TCX, say).
    ///
    /// # Panics
    /// As [`Cluster::new`].
    pub fn with_tc_attach(label: &str, nodes: usize, tc_attach: TcAttach) -> Self {
        let mut net = TestNetwork::new(label).expect("test network");
        let hosts: Vec<Host> = (1..=nodes)
            .map(|i| net.add_host(&format!("node{i}")).expect("node host"))
            .collect();
        let client = net.add_host("client").expect("client host");
        // The outside client stands for a machine on a real network, whose
        // packets arrive with complete checksums (the XDP fast path relies
        // on that); a veth would otherwise hand over partial ones.
        client
            .run(&["ethtool", "-K", "eth0", "tx", "off"])
            .expect("client checksum offload off");
        // A veth only takes frames its peer sends with XDP_TX (the NodePort
        // fast path hairpinning to another node) when it runs XDP itself:
        // the nodes' underlay ports get the (passing) counting program, as
        // a switch port would take the frames of a NIC.
        let underlay_pins = net.bpffs_dir("underlay");
        let ports: Vec<String> = (1..=hosts.len()).map(|i| format!("h{i}")).collect();
        net.underlay()
            .enter(move || -> Result<(), String> {
                let mut dp = Dataplane::load(&underlay_pins).map_err(|e| e.to_string())?;
                for port in &ports {
                    dp.attach_xdp(dataplane_common::program_names::COUNT_XDP, port)
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            })
            .expect("enter underlay")
            .unwrap_or_else(|e| panic!("underlay ports: {e}"));
        let mut built = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            let n = i + 1;
            host.ip(&["link", "add", "cni0", "type", "bridge"])
                .expect("bridge");
            host.ip(&["addr", "add", &format!("10.244.{n}.1/24"), "dev", "cni0"])
                .expect("bridge addr");
            host.ip(&["link", "set", "cni0", "up"]).expect("bridge up");
            host.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])
                .expect("forwarding");
            for (j, other) in hosts.iter().enumerate() {
                if i != j {
                    host.ip(&[
                        "route",
                        "add",
                        &format!("10.244.{}.0/24", j + 1),
                        "via",
                        &other.addr.to_string(),
                    ])
                    .expect("route to other node's pods");
                }
            }
            let dir = net.bpffs_dir(&format!("node{n}"));
            let load_dir = dir.clone();
            let uplink_ifindex = host
                .enter(move || -> Result<u32, String> {
                    let mut dp = Dataplane::load(&load_dir).map_err(|e| e.to_string())?;
                    dp.set_tc_attach(tc_attach);
                    dp.attach_uplink("eth0").map_err(|e| e.to_string())?;
                    dp.attach_uplink_fast_path("eth0")
                        .map_err(|e| e.to_string())?;
                    install_service_blackhole(SERVICE_CIDR).map_err(|e| e.to_string())?;
                    nix::net::if_::if_nametoindex("eth0").map_err(|e| e.to_string())
                })
                .expect("enter node")
                .unwrap_or_else(|e| panic!("node{n} dataplane: {e}"));
            let config = NodeServiceConfig {
                node_addr: host.addr,
                hairpin_addr: HAIRPIN_ADDR,
                snat_ports: 40000..=49999,
                uplink_ifindex,
            };
            let services = ServiceDataplane::open(&dir, &config).expect("service maps");
            built.push(Node {
                host: host.clone(),
                dir,
                services,
                pods: 0,
                pod_ifaces: Vec::new(),
                config,
            });
        }
        Self {
            nodes: built,
            applied: Default::default(),
            client,
            tc_attach,
            net,
        }
    }

    /// Adds a pod named `name` on node `node` (0-based) and attaches the
    /// dataplane to its host-side veth.
    ///
    /// # Panics
    /// When the kernel refuses it.
    pub fn add_pod(&mut self, node: usize, name: &str) -> Pod {
        let n = node + 1;
        let index = {
            let node = &mut self.nodes[node];
            node.pods += 1;
            node.pods + 1
        };
        let netns = self
            .net
            .add_namespace(&format!("n{n}-{name}"))
            .expect("pod namespace");
        let addr = Ipv4Addr::new(10, 244, n as u8, index);
        let host_iface = format!("v{n}p{index}");
        let host = &self.nodes[node].host;
        host.ip(&[
            "link",
            "add",
            &host_iface,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            netns.name(),
        ])
        .expect("pod veth");
        host.ip(&["link", "set", &host_iface, "master", "cni0", "up"])
            .expect("veth on bridge");
        netns
            .ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"])
            .expect("pod addr");
        netns
            .ip(&["link", "set", "eth0", "up"])
            .expect("pod eth0 up");
        netns
            .ip(&["route", "add", "default", "via", &format!("10.244.{n}.1")])
            .expect("pod default route");
        let dir = self.nodes[node].dir.clone();
        let iface = host_iface.clone();
        host.enter(move || -> Result<(), String> {
            let mut dp = Dataplane::load(&dir).map_err(|e| e.to_string())?;
            dp.attach_pod_interface(&iface).map_err(|e| e.to_string())
        })
        .expect("enter node")
        .unwrap_or_else(|e| panic!("pod {name} dataplane: {e}"));
        self.nodes[node].pod_ifaces.push(host_iface.clone());
        Pod {
            name: name.to_owned(),
            netns,
            addr,
            node,
            host_iface,
        }
    }

    /// A Service as each node sees it (`local` differs per node).
    pub fn service(
        &self,
        name: &str,
        cluster_ip: Ipv4Addr,
        ports: &[PortSpec],
        backends: &[(&Pod, EndpointState)],
    ) -> ServiceTemplate {
        ServiceTemplate {
            name: ServiceName::new("default", name),
            cluster_ip,
            ports: ports
                .iter()
                .map(|p| {
                    (
                        ServicePort {
                            name: p.name.into(),
                            protocol: p.protocol,
                            port: p.port,
                            node_port: p.node_port,
                        },
                        p.target_port,
                    )
                })
                .collect(),
            backends: backends
                .iter()
                .map(|(pod, state)| (pod.addr, pod.node, *state))
                .collect(),
            affinity_timeout_s: None,
            external_traffic_local: false,
            load_balancing: LoadBalancing::Random,
        }
    }

    /// Gives the Service to every node's dataplane.
    ///
    /// # Panics
    /// When a node refuses it.
    pub fn apply(&mut self, template: &ServiceTemplate) {
        self.applied
            .insert(template.name.name.clone(), template.clone());
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let change = ServiceChange::Upsert(template.for_node(i));
            node.services
                .apply(&change, Instant::now())
                .expect("apply service");
        }
    }

    /// Deletes the Service on every node.
    ///
    /// # Panics
    /// When a node refuses it.
    pub fn delete(&mut self, name: &str) {
        self.applied.remove(name);
        for node in &mut self.nodes {
            let change = ServiceChange::Delete(ServiceName::new("default", name));
            node.services
                .apply(&change, Instant::now())
                .expect("delete service");
        }
    }
}

impl Cluster {
    /// Restarts node `node`'s agent as a new process would: a fresh load of
    /// the kernel programs (reusing the pinned maps), every pinned link
    /// switched to them, the service table rebuilt from the maps, then a
    /// full resync with the applied services. Returns the number of map
    /// writes the resync needed.
    ///
    /// # Panics
    /// When any step fails.
    pub fn restart_agent(&mut self, node: usize) -> usize {
        let n = &mut self.nodes[node];
        let dir = n.dir.clone();
        let ifaces = n.pod_ifaces.clone();
        let tc_attach = self.tc_attach;
        n.host
            .enter(move || -> Result<(), String> {
                let mut dp = Dataplane::load(&dir).map_err(|e| e.to_string())?;
                dp.set_tc_attach(tc_attach);
                dp.attach_uplink("eth0").map_err(|e| e.to_string())?;
                dp.attach_uplink_fast_path("eth0")
                    .map_err(|e| e.to_string())?;
                for iface in &ifaces {
                    dp.attach_pod_interface(iface).map_err(|e| e.to_string())?;
                }
                Ok(())
            })
            .expect("enter node")
            .unwrap_or_else(|e| panic!("restarting node{}: {e}", node + 1));
        n.services = ServiceDataplane::open(&n.dir, &n.config).expect("reopen service maps");
        let desired: Vec<ServiceState> = self.applied.values().map(|t| t.for_node(node)).collect();
        n.services.resync(&desired, Instant::now()).expect("resync")
    }
}

/// State of one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointState {
    /// Ready: takes new flows.
    Ready,
    /// Terminating: keeps its flows, takes no new ones.
    Terminating,
    /// Not ready (its readiness probe fails): like terminating, drains.
    NotReady,
}

/// A Service before it is specialised per node.
#[derive(Clone)]
pub struct ServiceTemplate {
    /// Name.
    pub name: ServiceName,
    /// ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// Ports and their target ports.
    pub ports: Vec<(ServicePort, u16)>,
    /// Backends: address, node index, state.
    pub backends: Vec<(Ipv4Addr, usize, EndpointState)>,
    /// sessionAffinity ClientIP timeout.
    pub affinity_timeout_s: Option<u32>,
    /// externalTrafficPolicy Local.
    pub external_traffic_local: bool,
    /// Backend selection.
    pub load_balancing: LoadBalancing,
}

impl ServiceTemplate {
    /// The Service as node `node` sees it.
    pub fn for_node(&self, node: usize) -> ServiceState {
        ServiceState {
            name: self.name.clone(),
            cluster_ip: Some(self.cluster_ip),
            ports: self.ports.iter().map(|(p, _)| p.clone()).collect(),
            affinity_timeout_s: self.affinity_timeout_s,
            external_traffic_local: self.external_traffic_local,
            load_balancing: self.load_balancing,
            endpoints: self
                .backends
                .iter()
                .map(|(addr, on, state)| Endpoint {
                    addr: *addr,
                    ports: self
                        .ports
                        .iter()
                        .map(|(p, target)| EndpointPort {
                            name: p.name.clone(),
                            protocol: p.protocol,
                            port: *target,
                        })
                        .collect(),
                    ready: *state == EndpointState::Ready,
                    terminating: *state == EndpointState::Terminating,
                    local: *on == node,
                })
                .collect(),
        }
    }
}

/// `pod=<name>` of every line the HTTP responder answered.
pub fn responders(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| {
            l.strip_prefix("pod=")
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned)
        })
        .collect()
}

/// `client=<addr>` of every line the HTTP responder answered.
pub fn seen_clients(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("client=")))
        .map(|c| c.split(':').next().unwrap_or_default().to_owned())
        .collect()
}
