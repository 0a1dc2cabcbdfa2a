//! The network config on stdin, validated into [`NetConf`].

use std::{net::Ipv4Addr, path::PathBuf};

use rudder_netlink::Ipv4Subnet;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    bandwidth::BandwidthLimits,
    env::Attachment,
    error::{CniError, Result},
    result::{CniResult, Dns},
    version::CniVersion,
};

/// Where allocations live unless `ipam.dataDir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/rudder/cni/networks";
/// Where bandwidth records go unless `bandwidthDir` says otherwise.
pub const DEFAULT_BANDWIDTH_DIR: &str = "/var/lib/rudder/bandwidth";
/// The node bridge unless `bridge` says otherwise.
pub const DEFAULT_BRIDGE: &str = "cni0";

/// A validated network config.
#[derive(Clone, Debug)]
pub struct NetConf {
    /// The spec version results are written in.
    pub version: CniVersion,
    /// The network's name (names the allocation directory).
    pub name: String,
    /// The node bridge the pods' veths join.
    pub bridge: String,
    /// MTU of the bridge and veths; the kernel default when absent.
    pub mtu: Option<u32>,
    /// The address range and where allocations are kept.
    pub ipam: IpamConf,
    /// DNS settings handed back in the result.
    pub dns: Dns,
    /// Directory of the per-attachment bandwidth records.
    pub bandwidth_dir: PathBuf,
    /// The `bandwidth` capability from `runtimeConfig`, when it limits anything.
    pub bandwidth: Option<BandwidthLimits>,
    /// The previous plugin's result (chaining, CHECK, DEL).
    pub prev_result: Option<CniResult>,
    /// `cni.dev/valid-attachments` (GC).
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// Host-local style IPAM settings, for one IPv4 range.
#[derive(Clone, Debug)]
pub struct IpamConf {
    /// The node's pod subnet.
    pub subnet: Ipv4Subnet,
    /// First allocatable address.
    pub range_start: Ipv4Addr,
    /// Last allocatable address.
    pub range_end: Ipv4Addr,
    /// The bridge's address and the pods' default gateway (never allocated).
    pub gateway: Ipv4Addr,
    /// Directory holding one sub-directory of allocations per network.
    pub data_dir: PathBuf,
    /// Routes installed in the pod, all via `gateway` unless they name one.
    pub routes: Vec<RouteConf>,
}

/// A route for the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteConf {
    /// Destination.
    pub dst: Ipv4Subnet,
    /// Next hop.
    pub gw: Ipv4Addr,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNetConf {
    name: Option<String>,
    bridge: Option<String>,
    mtu: Option<u32>,
    ipam: Option<RawIpam>,
    #[serde(default)]
    dns: Dns,
    bandwidth_dir: Option<PathBuf>,
    #[serde(default)]
    runtime_config: RawRuntimeConfig,
    prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<RawAttachment>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIpam {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(flatten)]
    range: RawRange,
    ranges: Option<Vec<Vec<RawRange>>>,
    data_dir: Option<PathBuf>,
    routes: Option<Vec<RawRoute>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRange {
    subnet: Option<String>,
    range_start: Option<String>,
    range_end: Option<String>,
    gateway: Option<String>,
}

#[derive(Deserialize)]
struct RawRoute {
    dst: String,
    gw: Option<String>,
}

#[derive(Default, Deserialize)]
struct RawRuntimeConfig {
    bandwidth: Option<BandwidthLimits>,
}

#[derive(Deserialize)]
struct RawAttachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

/// The `cniVersion` of a config, for error reports about a config that
/// does not otherwise parse.
pub fn peek_version(stdin: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(stdin).ok()?;
    value.get("cniVersion")?.as_str().map(str::to_owned)
}

/// Decodes stdin as a JSON object (code 6 otherwise) and reads its `cniVersion`
/// (code 7 when missing, 1 when unsupported).
///
/// # Errors
///
/// As above.
pub fn parse_version(stdin: &[u8]) -> Result<(Value, CniVersion)> {
    let value: Value = serde_json::from_slice(stdin).map_err(|err| {
        if stdin.iter().all(u8::is_ascii_whitespace) {
            CniError::Decode("stdin is empty: the runtime must pass the network config".into())
        } else {
            CniError::Decode(err.to_string())
        }
    })?;
    if !value.is_object() {
        return Err(CniError::Decode(
            "the network config must be a JSON object".into(),
        ));
    }
    let version = match value.get("cniVersion") {
        Some(Value::String(v)) => CniVersion::parse(v)?,
        Some(other) => {
            return Err(CniError::config(
                "cniVersion",
                format!("{other} is not a string"),
            ));
        }
        None => return Err(CniError::config("cniVersion", "missing")),
    };
    Ok((value, version))
}

impl NetConf {
    /// Parses and validates the network config read from stdin.
    ///
    /// # Errors
    ///
    /// Code 6 for bad JSON, 1 for an unsupported `cniVersion`, 7 for an
    /// invalid config, 2 for a field rudder-cni does not support.
    pub fn parse(stdin: &[u8]) -> Result<Self> {
        let (value, version) = parse_version(stdin)?;
        let raw: RawNetConf = serde_json::from_value(value)
            .map_err(|err| CniError::config("config", err.to_string()))?;
        let RawNetConf {
            name,
            bridge,
            mtu,
            ipam,
            dns,
            bandwidth_dir,
            runtime_config,
            prev_result,
            valid_attachments,
        } = raw;
        let name = name.ok_or_else(|| CniError::config("name", "missing"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            || name.starts_with('.')
        {
            return Err(CniError::config(
                "name",
                format!(
                    "{name:?} must be letters, digits, '_', '.' and '-' (and not start with '.')"
                ),
            ));
        }
        let bridge = bridge.unwrap_or_else(|| DEFAULT_BRIDGE.to_owned());
        if bridge.is_empty() || bridge.len() > 15 || bridge.contains(['/', ':', ' ']) {
            return Err(CniError::config(
                "bridge",
                format!(
                    "{bridge:?} is not a valid interface name (1-15 bytes, no '/', ':' or space)"
                ),
            ));
        }
        if let Some(mtu) = mtu
            && !(68..=65535).contains(&mtu)
        {
            return Err(CniError::config(
                "mtu",
                format!("{mtu} is outside 68-65535"),
            ));
        }
        let ipam =
            ipam.ok_or_else(|| CniError::config("ipam", "missing: rudder-cni needs ipam.subnet"))?;
        let bandwidth = match runtime_config.bandwidth {
            Some(limits) => {
                limits.validate()?;
                (!limits.is_unlimited()).then_some(limits)
            }
            None => None,
        };
        Ok(Self {
            version,
            name,
            bridge,
            mtu,
            ipam: IpamConf::from_raw(ipam)?,
            dns,
            bandwidth_dir: bandwidth_dir.unwrap_or_else(|| DEFAULT_BANDWIDTH_DIR.into()),
            bandwidth,
            prev_result: prev_result.map(CniResult::from_value).transpose()?,
            valid_attachments: valid_attachments.map(|list| {
                list.into_iter()
                    .map(
                        |RawAttachment {
                             container_id,
                             ifname,
                         }| Attachment {
                            container_id,
                            ifname,
                        },
                    )
                    .collect()
            }),
        })
    }

    /// The directory of this network's allocations.
    pub fn allocation_dir(&self) -> PathBuf {
        self.ipam.data_dir.join(&self.name)
    }
}

impl IpamConf {
    fn from_raw(raw: RawIpam) -> Result<Self> {
        let RawIpam {
            kind,
            range,
            ranges,
            data_dir,
            routes,
        } = raw;
        if let Some(kind) = kind
            && !matches!(kind.as_str(), "host-local" | "rudder")
        {
            return Err(CniError::UnsupportedField {
                field: "ipam.type".into(),
                value: kind,
                reason: "rudder-cni has built-in host-local style IPAM; leave ipam.type out or say \"host-local\"".into(),
            });
        }
        let (range, path) = match ranges {
            Some(ranges) if range.subnet.is_some() => {
                drop(ranges);
                return Err(CniError::config(
                    "ipam",
                    "give either ipam.subnet or ipam.ranges, not both",
                ));
            }
            Some(ranges) => {
                let count: usize = ranges.iter().map(Vec::len).sum();
                let mut flat = ranges.into_iter().flatten();
                match (flat.next(), count) {
                    (Some(first), 1) => (first, "ipam.ranges[0][0]"),
                    (_, count) => {
                        return Err(CniError::UnsupportedField {
                            field: "ipam.ranges".into(),
                            value: format!("{count} ranges"),
                            reason: "rudder-cni allocates from exactly one IPv4 range".into(),
                        });
                    }
                }
            }
            None => (range, "ipam"),
        };
        let RawRange {
            subnet,
            range_start,
            range_end,
            gateway,
        } = range;
        let subnet_raw =
            subnet.ok_or_else(|| CniError::config(format!("{path}.subnet"), "missing"))?;
        if subnet_raw.contains(':') {
            return Err(CniError::UnsupportedField {
                field: format!("{path}.subnet"),
                value: subnet_raw,
                reason: "rudder-cni allocates IPv4 addresses only".into(),
            });
        }
        let subnet: Ipv4Subnet = subnet_raw
            .parse()
            .map_err(|reason| CniError::config(format!("{path}.subnet"), reason))?;
        if subnet.prefix_len() > 30 {
            return Err(CniError::config(
                format!("{path}.subnet"),
                format!(
                    "{subnet} is too small: it needs room for a gateway and pods (/30 at most)"
                ),
            ));
        }
        let first = Ipv4Addr::from(u32::from(subnet.network()) + 1);
        let last = Ipv4Addr::from(u32::from(subnet.broadcast()) - 1);
        let address = |field: &str, value: Option<String>, default: Ipv4Addr| -> Result<Ipv4Addr> {
            let Some(value) = value else {
                return Ok(default);
            };
            let field = format!("{path}.{field}");
            let addr: Ipv4Addr = value.parse().map_err(|_| {
                CniError::config(&field, format!("{value:?} is not an IPv4 address"))
            })?;
            if !subnet.contains(addr) || addr == subnet.network() || addr == subnet.broadcast() {
                return Err(CniError::config(
                    field,
                    format!("{addr} is not a host address of {subnet}"),
                ));
            }
            Ok(addr)
        };
        let gateway = address("gateway", gateway, first)?;
        let range_start = address("rangeStart", range_start, first)?;
        let range_end = address("rangeEnd", range_end, last)?;
        if range_start > range_end {
            return Err(CniError::config(
                format!("{path}.rangeStart"),
                format!("{range_start} is after rangeEnd {range_end}"),
            ));
        }
        let routes = match routes {
            None => vec![RouteConf {
                dst: Ipv4Subnet::new(Ipv4Addr::UNSPECIFIED, 0).unwrap_or(subnet),
                gw: gateway,
            }],
            Some(routes) => routes
                .into_iter()
                .enumerate()
                .map(|(i, RawRoute { dst, gw })| {
                    let field = format!("ipam.routes[{i}]");
                    let dst = dst
                        .parse()
                        .map_err(|reason| CniError::config(format!("{field}.dst"), reason))?;
                    let gw = match gw {
                        Some(gw) => gw.parse().map_err(|_| {
                            CniError::config(
                                format!("{field}.gw"),
                                format!("{gw:?} is not an IPv4 address"),
                            )
                        })?,
                        None => gateway,
                    };
                    Ok(RouteConf { dst, gw })
                })
                .collect::<Result<_>>()?,
        };
        Ok(Self {
            subnet,
            range_start,
            range_end,
            gateway,
            data_dir: data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use serde_json::json;

    use super::NetConf;

    fn parse(value: serde_json::Value) -> crate::error::Result<NetConf> {
        NetConf::parse(value.to_string().as_bytes())
    }

    #[test]
    fn defaults_fill_a_minimal_config() {
        let conf = parse(json!({
            "cniVersion": "1.1.0", "name": "pods", "type": "rudder-cni",
            "ipam": {"subnet": "10.244.1.0/24"}
        }))
        .expect("valid");
        assert_eq!(conf.bridge, "cni0");
        assert_eq!(conf.ipam.gateway, Ipv4Addr::new(10, 244, 1, 1));
        assert_eq!(conf.ipam.range_start, Ipv4Addr::new(10, 244, 1, 1));
        assert_eq!(conf.ipam.range_end, Ipv4Addr::new(10, 244, 1, 254));
        assert_eq!(conf.ipam.routes.len(), 1);
        assert_eq!(conf.ipam.routes[0].dst.to_string(), "0.0.0.0/0");
        assert!(conf.bandwidth.is_none());
    }

    #[test]
    fn ranges_form_and_runtime_bandwidth_are_read() {
        let conf = parse(json!({
            "cniVersion": "0.4.0", "name": "pods",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.2.0/24", "rangeStart": "10.244.2.10", "rangeEnd": "10.244.2.20", "gateway": "10.244.2.254"}]]},
            "runtimeConfig": {"bandwidth": {"ingressRate": 1000000, "ingressBurst": 100000}}
        }))
        .expect("valid");
        assert_eq!(conf.ipam.range_start, Ipv4Addr::new(10, 244, 2, 10));
        assert_eq!(conf.ipam.gateway, Ipv4Addr::new(10, 244, 2, 254));
        assert_eq!(conf.bandwidth.map(|b| b.ingress_rate), Some(1_000_000));
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let cases = [
            (
                json!({"cniVersion": "1.0.0", "ipam": {"subnet": "10.0.0.0/24"}}),
                7,
                "name",
            ),
            (json!({"cniVersion": "1.0.0", "name": "n"}), 7, "ipam"),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"subnet": "10.0.0.0/33"}}),
                7,
                "ipam.subnet",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"subnet": "fd00::/64"}}),
                2,
                "ipam.subnet",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.5"}}),
                7,
                "ipam.rangeStart",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.3"}}),
                7,
                "rangeStart",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "dhcp", "subnet": "10.0.0.0/24"}}),
                2,
                "ipam.type",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "a/b", "ipam": {"subnet": "10.0.0.0/24"}}),
                7,
                "name",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "bridge": "a-very-long-bridge", "ipam": {"subnet": "10.0.0.0/24"}}),
                7,
                "bridge",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "ipam": {"subnet": "10.0.0.0/24"}, "runtimeConfig": {"bandwidth": {"egressRate": 1000}}}),
                7,
                "egressBurst",
            ),
            (json!({"cniVersion": "7.0.0", "name": "n"}), 1, "7.0.0"),
            (json!({"name": "n"}), 7, "cniVersion"),
        ];
        for (config, code, needle) in cases {
            let err = parse(config.clone()).expect_err("invalid");
            assert_eq!(err.code(), code, "{config}: {err}");
            assert!(err.to_string().contains(needle), "{config}: {err}");
        }
        let err = NetConf::parse(b"{not json").expect_err("invalid");
        assert_eq!(err.code(), 6);
        let err = NetConf::parse(b"").expect_err("invalid");
        assert!(err.to_string().contains("empty"), "{err}");
    }
}
