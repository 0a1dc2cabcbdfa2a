//! What the scheduler knows about nodes and pods: a pod's needs, and per
//! node its allocatable resources and what is placed there. Quantities are
//! read by the API's one exact parser ([`rudder_api::quantity`]).

use std::collections::HashMap;
use std::sync::Arc;

use rudder_api::{
    core::{Node, Pod},
    facts::{NodeExt, ObjectExt},
    quantity::{self, Quantity, saturating_i64},
};

/// A quantity of a named resource from a map of them (requests, limits,
/// allocatable); unparsable values (the API refuses them) count as absent.
fn quantity_of(map: &std::collections::BTreeMap<String, String>, name: &str) -> Option<Quantity> {
    map.get(name).and_then(|q| quantity::parse(q).ok())
}

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
                    quantity_of(&resources.requests, name)
                        .or_else(|| quantity_of(&resources.limits, name))
                };
                // Requests round up: 100u of cpu is one millicore, not none.
                if let Some(cpu) = amount("cpu") {
                    requests.cpu_milli = requests
                        .cpu_milli
                        .saturating_add(saturating_i64(cpu.milli()));
                }
                if let Some(memory) = amount("memory") {
                    requests.memory = requests
                        .memory
                        .saturating_add(saturating_i64(memory.units_ceil()));
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
            status.and_then(|s| {
                quantity_of(&s.allocatable, name).or_else(|| quantity_of(&s.capacity, name))
            })
        };
        // What a node offers rounds down: half a byte is no byte.
        self.allocatable = Resources {
            cpu_milli: amount("cpu").map_or(0, |c| saturating_i64(c.milli())),
            memory: amount("memory").map_or(0, |m| saturating_i64(m.units_floor())),
        };
        self.max_pods = amount("pods").map_or(110, |p| saturating_i64(p.units_floor()));
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
    fn requests_are_read_exactly_and_never_round_to_zero() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "resources": {"requests": {"cpu": "9m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "100u", "memory": "1500m"}}},
            ]},
        }))
        .expect("pod");
        let needs = PodNeeds::of(&pod);
        assert_eq!(needs.requests.cpu_milli, 9 + 1);
        assert_eq!(needs.requests.memory, 64 * 1024 * 1024 + 2);
    }
}
