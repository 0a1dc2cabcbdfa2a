//! What the scheduler knows about nodes and pods: a pod's needs, and per
//! node its allocatable resources and what is placed there. The Kubernetes
//! quantity parser the scheduler uses ([`parse_quantity`]) is here too.

use std::collections::HashMap;
use std::sync::Arc;

use rudder_api::{
    core::{Node, Pod},
    facts::{NodeExt, ObjectExt},
};

/// Resources in scheduling units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub cpu_milli: i64,
    /// Bytes.
    pub memory: i64,
}

/// What a pod needs from a node.
#[derive(Debug, Clone, Default)]
pub struct PodNeeds {
    /// Summed container requests (limits where requests are missing).
    pub requests: Resources,
    /// Host ports as (protocol, port).
    pub host_ports: Vec<(String, i64)>,
    /// uid of the controlling owner (spreading).
    pub owner: Option<String>,
}

impl PodNeeds {
    /// Reads a pod's needs.
    pub fn of(pod: &Pod) -> Self {
        let mut requests = Resources::default();
        let mut host_ports = Vec::new();
        for container in &pod.spec.containers {
            if let Some(resources) = &container.resources {
                let amount = |name: &str| {
                    resources
                        .requests
                        .get(name)
                        .or_else(|| resources.limits.get(name))
                        .and_then(|q| parse_quantity(q))
                };
                if let Some(cpu) = amount("cpu") {
                    requests.cpu_milli += to_i64((cpu * 1000.0).ceil());
                }
                if let Some(memory) = amount("memory") {
                    requests.memory += to_i64(memory.ceil());
                }
            }
            for port in &container.ports {
                if let Some(host_port) = port.host_port.filter(|p| *p > 0) {
                    host_ports.push((
                        port.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
                        host_port,
                    ));
                }
            }
        }
        Self {
            requests,
            host_ports,
            owner: pod.controller().map(|o| o.uid.clone()),
        }
    }
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "quantities are far below i64::MAX; saturating is the right answer for absurd ones"
)]
fn to_i64(value: f64) -> i64 {
    value as i64
}

/// Parses a Kubernetes quantity (`500m`, `2`, `64Mi`, `1G`, `1e3`).
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let suffixes: [(&str, f64); 14] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("Pi", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("Ei", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("m", 1e-3),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = text.strip_suffix(suffix)
            && let Ok(value) = number.parse::<f64>()
        {
            return Some(value * factor);
        }
    }
    text.parse::<f64>().ok()
}

/// A node as the scheduler sees it: capacity, what is placed on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node.
    pub node: Arc<Node>,
    /// Allocatable resources.
    pub allocatable: Resources,
    /// Pods it may run.
    pub max_pods: i64,
    /// Requests of the pods placed on it.
    pub requested: Resources,
    /// The same with defaults for pods that request nothing (scoring).
    pub requested_nonzero: Resources,
    /// Pods placed on it.
    pub pods: i64,
    /// Host ports in use.
    pub host_ports: HashMap<(String, i64), u32>,
    /// Pods per controlling owner.
    pub owners: HashMap<String, u32>,
    /// Ready and schedulable.
    pub ready: bool,
}

impl NodeInfo {
    /// A node with nothing placed yet.
    pub fn new(node: Arc<Node>) -> Self {
        let mut info = Self {
            node: node.clone(),
            allocatable: Resources::default(),
            max_pods: 0,
            requested: Resources::default(),
            requested_nonzero: Resources::default(),
            pods: 0,
            host_ports: HashMap::new(),
            owners: HashMap::new(),
            ready: false,
        };
        info.set_node(node);
        info
    }

    /// Takes a new version of the node (capacity, conditions, taints).
    pub fn set_node(&mut self, node: Arc<Node>) {
        let status = node.status.as_ref();
        let amount = |name: &str| {
            status
                .and_then(|s| s.allocatable.get(name).or_else(|| s.capacity.get(name)))
                .and_then(|q| parse_quantity(q))
        };
        self.allocatable = Resources {
            cpu_milli: amount("cpu").map_or(0, |c| to_i64((c * 1000.0).floor())),
            memory: amount("memory").map_or(0, |m| to_i64(m.floor())),
        };
        self.max_pods = amount("pods").map_or(110, |p| to_i64(p.floor()));
        self.ready = node.is_ready();
        self.node = node;
    }

    /// Accounts for a pod placed here (`sign` 1) or removed (-1).
    pub fn account(&mut self, needs: &PodNeeds, sign: i64) {
        self.requested.cpu_milli += sign * needs.requests.cpu_milli;
        self.requested.memory += sign * needs.requests.memory;
        let nonzero = scoring_requests(needs);
        self.requested_nonzero.cpu_milli += sign * nonzero.cpu_milli;
        self.requested_nonzero.memory += sign * nonzero.memory;
        self.pods += sign;
        for port in &needs.host_ports {
            bump(&mut self.host_ports, port.clone(), sign);
        }
        if let Some(owner) = &needs.owner {
            bump(&mut self.owners, owner.clone(), sign);
        }
    }
}

fn bump<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K, sign: i64) {
    if sign > 0 {
        *map.entry(key).or_insert(0) += 1;
    } else if let Some(count) = map.get_mut(&key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            map.remove(&key);
        }
    }
}

/// Requests counted for scoring: pods without requests still take some
/// room, or every one of them would look free and pile onto one node.
const DEFAULT_CPU_MILLI: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

pub(super) fn scoring_requests(needs: &PodNeeds) -> Resources {
    Resources {
        cpu_milli: if needs.requests.cpu_milli == 0 {
            DEFAULT_CPU_MILLI
        } else {
            needs.requests.cpu_milli
        },
        memory: if needs.requests.memory == 0 {
            DEFAULT_MEMORY
        } else {
            needs.requests.memory
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_in_their_units() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("64Mi"), Some(64.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("16302124Ki"), Some(16_302_124.0 * 1024.0));
        assert_eq!(parse_quantity("lots"), None);
    }
}
