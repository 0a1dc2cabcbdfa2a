//! ClusterIP and NodePort allocation for Services, inside the API server's
//! own store transactions.
//!
//! Every address or port a Service holds is a key of its own
//! (`/registry/allocations/serviceips/<ip>`, `/registry/allocations/nodeports/<port>`)
//! written in the same transaction as the Service, with a compare that the
//! key does not exist yet. Two concurrent creates that pick the same value
//! cannot both commit: the loser's transaction fails and it picks again.
//! Deleting a Service deletes its keys in the delete's transaction, so a
//! value is released exactly when its Service goes away.
//!
//! The ranges live in the store too (`/registry/ranges/services`, written
//! by `rudder-controlplane --service-cluster-ip-range/--service-node-port-range`),
//! so every replica allocates from the same ranges.

use std::{collections::BTreeSet, fmt, net::Ipv4Addr, ops::RangeInclusive};

use futures::future::BoxFuture;
use rudder_api::{ApiError, FieldError};
use rudder_kvstore::{
    Compare, CompareOp, CompareTarget, DeleteRequest, KeyRange, KeyValue, Op, PutRequest,
    RangeRequest, Store, StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    ApiServerError,
    hooks::{Claim, WriteHooks},
    storage::decode,
};

/// Store key of the configured ranges.
pub const RANGES_KEY: &str = "/registry/ranges/services";
const IP_PREFIX: &str = "/registry/allocations/serviceips/";
const PORT_PREFIX: &str = "/registry/allocations/nodeports/";

/// The ranges Services get their ClusterIPs and NodePorts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRanges {
    /// ClusterIP range, e.g. `10.96.0.0/12`.
    pub cluster_ip_cidr: String,
    /// First NodePort.
    pub node_port_first: u16,
    /// Last NodePort.
    pub node_port_last: u16,
}

impl Default for ServiceRanges {
    fn default() -> Self {
        Self {
            cluster_ip_cidr: "10.96.0.0/12".to_owned(),
            node_port_first: 30000,
            node_port_last: 32767,
        }
    }
}

/// A range that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    /// The CIDR does not parse or is too small.
    #[error(
        "service range {0:?}: expected an IPv4 CIDR of at least 4 addresses, like 10.96.0.0/12"
    )]
    Cidr(String),
    /// The port range does not parse or is outside 1-65535.
    #[error("node port range {0:?}: expected FIRST-LAST, like 30000-32767")]
    Ports(String),
}

impl ServiceRanges {
    /// Builds ranges from their command-line spelling (`10.96.0.0/12`,
    /// `30000-32767`).
    ///
    /// # Errors
    /// [`RangeError`] naming the part that does not parse.
    pub fn parse(cidr: &str, node_ports: &str) -> Result<Self, RangeError> {
        let ports_err = || RangeError::Ports(node_ports.to_owned());
        let (first, last) = node_ports.split_once('-').ok_or_else(ports_err)?;
        let ranges = Self {
            cluster_ip_cidr: cidr.to_owned(),
            node_port_first: first.trim().parse().map_err(|_| ports_err())?,
            node_port_last: last.trim().parse().map_err(|_| ports_err())?,
        };
        ranges.ip_range()?;
        if ranges.node_port_first == 0 || ranges.node_port_first > ranges.node_port_last {
            return Err(ports_err());
        }
        Ok(ranges)
    }

    /// Usable addresses (network and broadcast addresses left out).
    fn ip_range(&self) -> Result<RangeInclusive<u32>, RangeError> {
        let err = || RangeError::Cidr(self.cluster_ip_cidr.clone());
        let (ip, bits) = self.cluster_ip_cidr.split_once('/').ok_or_else(err)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| err())?;
        let bits: u32 = bits.parse().map_err(|_| err())?;
        if bits > 30 {
            return Err(err());
        }
        let size = 1u32 << (32 - bits);
        let network = u32::from(ip) & !(size - 1);
        Ok(network + 1..=network + size - 2)
    }

    fn port_range(&self) -> RangeInclusive<u32> {
        u32::from(self.node_port_first)..=u32::from(self.node_port_last)
    }
}

impl fmt::Display for ServiceRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClusterIPs from {}, NodePorts {}-{}",
            self.cluster_ip_cidr, self.node_port_first, self.node_port_last
        )
    }
}

/// Writes the ranges every replica allocates from.
///
/// # Errors
/// Store errors.
pub async fn configure(store: &Store, ranges: &ServiceRanges) -> Result<(), StoreError> {
    store
        .put(
            RANGES_KEY,
            serde_json::to_vec(ranges).unwrap_or_default(),
            0,
        )
        .await
        .map(drop)
}

async fn ranges(store: &Store) -> Result<ServiceRanges, StoreError> {
    Ok(store
        .get(RANGES_KEY)
        .await?
        .and_then(|kv| serde_json::from_slice(&kv.value).ok())
        .unwrap_or_default())
}

fn invalid(name: &str, field: &str, message: String) -> ApiServerError {
    ApiServerError::Invalid(ApiError::Invalid {
        kind: "Service".to_owned(),
        name: name.to_owned(),
        errors: vec![FieldError {
            field: field.to_owned(),
            message,
        }],
    })
}

/// The allocation keys a stored Service holds.
pub fn held_keys(service: &Value) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    if let Some(ip) = service.pointer("/spec/clusterIP").and_then(Value::as_str)
        && ip.parse::<Ipv4Addr>().is_ok()
    {
        keys.insert(format!("{IP_PREFIX}{ip}"));
    }
    for port in ports(service) {
        if let Some(node_port) = port.get("nodePort").and_then(Value::as_i64) {
            keys.insert(format!("{PORT_PREFIX}{node_port}"));
        }
    }
    keys
}

fn ports(service: &Value) -> Vec<Value> {
    service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn takes_node_ports(service: &Value) -> bool {
    matches!(
        service.pointer("/spec/type").and_then(Value::as_str),
        Some("NodePort" | "LoadBalancer")
    )
}

/// The Service's [`WriteHooks`]: claims ClusterIP and NodePorts on create
/// and update, releases them on delete, in the write's own transaction.
#[derive(Debug)]
pub struct ServiceAllocation;

impl WriteHooks for ServiceAllocation {
    fn before_create<'a>(
        &'a self,
        store: &'a Store,
        object: &'a mut Value,
    ) -> BoxFuture<'a, Result<Claim, ApiServerError>> {
        Box::pin(claim(store, object, None))
    }

    fn before_update<'a>(
        &'a self,
        store: &'a Store,
        next: &'a mut Value,
        current: &'a Value,
    ) -> BoxFuture<'a, Result<Claim, ApiServerError>> {
        Box::pin(claim(store, next, Some(current)))
    }

    fn before_delete(&self, current: &KeyValue) -> Result<Vec<Op>, ApiServerError> {
        // Released in the same transaction that deletes the Service.
        Ok(release_ops(&held_keys(&decode(current)?)))
    }
}

/// Fills in a Service's ClusterIP and NodePorts (`current`: the stored
/// version on an update) and returns what the write's transaction must
/// check and do. Values the user gave are validated against the ranges;
/// values kept from `current` are reused.
///
/// # Errors
/// [`ApiServerError::Invalid`] for a value outside the ranges, a changed
/// ClusterIP; store errors.
pub async fn claim(
    store: &Store,
    service: &mut Value,
    current: Option<&Value>,
) -> Result<Claim, ApiServerError> {
    let ranges = ranges(store).await?;
    let ip_range = ranges
        .ip_range()
        .map_err(|err| ApiServerError::BadRequest(err.to_string()))?;
    let name = rudder_api::object::name_of(service);
    let mut claim = Claim::default();
    let service_type = service
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_owned();

    // ClusterIP.
    let wanted_ip = service
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let current_ip = current
        .and_then(|c| c.pointer("/spec/clusterIP"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let ip = if service_type == "ExternalName" {
        String::new()
    } else if wanted_ip.is_empty() && !current_ip.is_empty() {
        current_ip.clone()
    } else if current.is_some() && !current_ip.is_empty() && wanted_ip != current_ip {
        return Err(invalid(
            &name,
            "spec.clusterIP",
            format!("may not change once set (is {current_ip}); delete and recreate the service"),
        ));
    } else if wanted_ip == "None" {
        "None".to_owned()
    } else if wanted_ip.is_empty() {
        let taken = allocated(store, IP_PREFIX).await?;
        let picked = pick(&ip_range, &taken).ok_or_else(|| {
            invalid(
                &name,
                "spec.clusterIP",
                format!("no address left in {}", ranges.cluster_ip_cidr),
            )
        })?;
        Ipv4Addr::from(picked).to_string()
    } else {
        let parsed: Ipv4Addr = wanted_ip.parse().map_err(|_| {
            invalid(
                &name,
                "spec.clusterIP",
                format!("{wanted_ip:?} is not an IPv4 address"),
            )
        })?;
        if !ip_range.contains(&u32::from(parsed)) {
            return Err(invalid(
                &name,
                "spec.clusterIP",
                format!(
                    "{parsed} is not in the service range {}",
                    ranges.cluster_ip_cidr
                ),
            ));
        }
        if current_ip != wanted_ip {
            claim
                .requested
                .push((format!("{IP_PREFIX}{parsed}"), "spec.clusterIP".to_owned()));
        }
        parsed.to_string()
    };
    if let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) {
        if ip.is_empty() {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        } else {
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
        }
    }

    // NodePorts.
    let current_ports = current.map(ports).unwrap_or_default();
    let mut new_ports = ports(service);
    let node_ports = takes_node_ports(service);
    let mut taken: Option<BTreeSet<u32>> = None;
    let mut chosen = BTreeSet::new();
    for (i, port) in new_ports.iter_mut().enumerate() {
        let Some(port) = port.as_object_mut() else {
            continue;
        };
        if !node_ports {
            port.remove("nodePort");
            continue;
        }
        let field = format!("spec.ports[{i}].nodePort");
        if let Some(value) = port.get("nodePort").and_then(Value::as_i64) {
            let in_range = u32::try_from(value).is_ok_and(|v| ranges.port_range().contains(&v));
            if !in_range {
                return Err(invalid(
                    &name,
                    &field,
                    format!(
                        "{value} is not in the node port range {}-{}",
                        ranges.node_port_first, ranges.node_port_last
                    ),
                ));
            }
            let held = current_ports
                .iter()
                .any(|p| p.get("nodePort").and_then(Value::as_i64) == Some(value));
            if !held {
                claim
                    .requested
                    .push((format!("{PORT_PREFIX}{value}"), field));
            }
            chosen.insert(u32::try_from(value).unwrap_or_default());
            continue;
        }
        // Keep the port this service port had (same port and protocol).
        let kept = current_ports
            .iter()
            .find(|p| {
                p.get("port") == port.get("port") && p.get("protocol") == port.get("protocol")
            })
            .and_then(|p| p.get("nodePort").and_then(Value::as_i64));
        let value = match kept {
            Some(value) => u32::try_from(value).unwrap_or_default(),
            None => {
                if taken.is_none() {
                    taken = Some(allocated(store, PORT_PREFIX).await?);
                }
                let mut avoid = taken.clone().unwrap_or_default();
                avoid.extend(&chosen);
                pick(&ranges.port_range(), &avoid).ok_or_else(|| {
                    invalid(&name, &field, "no node port left in the range".to_owned())
                })?
            }
        };
        chosen.insert(value);
        port.insert("nodePort".into(), json!(value));
    }
    if let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut)
        && spec.contains_key("ports")
    {
        spec.insert("ports".into(), Value::Array(new_ports));
    }

    let wanted = held_keys(service);
    let held = current.map(held_keys).unwrap_or_default();
    let owner = service_key(service);
    for key in wanted.difference(&held) {
        claim.compares.push(Compare {
            key: key.clone().into_bytes(),
            target: CompareTarget::CreateRevision(0),
            op: CompareOp::Equal,
        });
        claim.ops.push(Op::Put(PutRequest {
            key: key.clone().into_bytes(),
            value: owner.clone().into_bytes(),
            lease: 0,
        }));
    }
    claim.ops.extend(release_ops(held.difference(&wanted)));
    Ok(claim)
}

/// Deletes of the given allocation keys.
pub fn release_ops<'a>(keys: impl IntoIterator<Item = &'a String>) -> Vec<Op> {
    keys.into_iter()
        .map(|key| {
            Op::Delete(DeleteRequest {
                range: KeyRange::key(key.clone()),
            })
        })
        .collect()
}

fn service_key(service: &Value) -> String {
    let meta = rudder_api::object::metadata_of(service);
    format!("{}/{}", meta.namespace, meta.name)
}

async fn allocated(store: &Store, prefix: &str) -> Result<BTreeSet<u32>, StoreError> {
    let (response, _) = store
        .range(RangeRequest {
            range: KeyRange::prefix(prefix),
            keys_only: true,
            ..RangeRequest::default()
        })
        .await?;
    Ok(response
        .kvs
        .iter()
        .filter_map(|kv| {
            let text = std::str::from_utf8(&kv.key).ok()?.strip_prefix(prefix)?;
            if prefix == IP_PREFIX {
                text.parse::<Ipv4Addr>().ok().map(u32::from)
            } else {
                text.parse().ok()
            }
        })
        .collect())
}

/// A random free value of `range`; random so concurrent allocators rarely
/// pick the same one (and when they do, the transaction decides).
fn pick(range: &RangeInclusive<u32>, taken: &BTreeSet<u32>) -> Option<u32> {
    let size = u64::from(range.end() - range.start()) + 1;
    if (taken.range(range.clone()).count() as u64) >= size {
        return None;
    }
    let random = || {
        u64::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..8]
                .try_into()
                .unwrap_or_default(),
        )
    };
    for _ in 0..32 {
        let candidate = range.start() + u32::try_from(random() % size).unwrap_or_default();
        if !taken.contains(&candidate) {
            return Some(candidate);
        }
    }
    // Nearly full: walk from a random point.
    let start = random() % size;
    (0..size)
        .map(|i| range.start() + u32::try_from((start + i) % size).unwrap_or_default())
        .find(|candidate| !taken.contains(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_leave_out_network_and_broadcast() {
        let ranges = ServiceRanges::parse("10.96.0.0/30", "30000-30001").expect("valid");
        let ips = ranges.ip_range().expect("cidr");
        assert_eq!(Ipv4Addr::from(*ips.start()), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(Ipv4Addr::from(*ips.end()), Ipv4Addr::new(10, 96, 0, 2));
        assert!(ServiceRanges::parse("10.96.0.0", "30000-32767").is_err());
        assert!(ServiceRanges::parse("10.96.0.0/12", "32767-30000").is_err());
    }

    #[test]
    fn pick_finds_the_last_free_value() {
        let taken: BTreeSet<u32> = (1..=99).filter(|v| *v != 42).collect();
        assert_eq!(pick(&(1..=99), &taken), Some(42));
        let full: BTreeSet<u32> = (1..=99).collect();
        assert_eq!(pick(&(1..=99), &full), None);
    }
}
