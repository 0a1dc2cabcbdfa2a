//! The result of ADD (and the `prevResult` of chained plugins), written in
//! the format of the config's spec version.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{error::CniError, version::CniVersion};

/// What an attachment looks like: interfaces, addresses, routes and DNS.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    /// Interfaces created or touched, host side and sandbox side.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned, each naming its interface by index.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes installed in the sandbox.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// DNS settings for the runtime to apply.
    #[serde(default)]
    pub dns: Dns,
}

/// One interface of a result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    /// The interface name.
    pub name: String,
    /// Its hardware address, `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Its MTU (a 1.1.0 field; dropped from older results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The sandbox (netns path) it lives in; absent for host interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Fields of other plugins' results, passed on untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One address of a result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with prefix length, `10.244.1.5/24`.
    pub address: String,
    /// The gateway of its subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces` of the interface holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// Fields of other plugins' results, passed on untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl IpConfig {
    /// The address and prefix length, if this is a well-formed IPv4 entry.
    pub fn ipv4(&self) -> Option<(Ipv4Addr, u8)> {
        let (addr, prefix) = self.address.split_once('/')?;
        Some((
            addr.parse().ok()?,
            prefix.parse().ok().filter(|p| *p <= 32)?,
        ))
    }
}

/// One route of a result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Destination, `0.0.0.0/0`.
    pub dst: String,
    /// Next hop; absent means the interface's default gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Fields of other plugins' results, passed on untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// DNS settings (from the network config; rudder-cni does not apply them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        let Self {
            nameservers,
            domain,
            search,
            options,
        } = self;
        nameservers.is_empty() && domain.is_none() && search.is_empty() && options.is_empty()
    }
}

impl CniResult {
    /// Reads a result of any supported version (a `prevResult`).
    ///
    /// # Errors
    ///
    /// Code 7 when it does not have the shape of a result.
    pub fn from_value(value: Value) -> Result<Self, CniError> {
        let mut result: Self = serde_json::from_value(value)
            .map_err(|err| CniError::config("prevResult", err.to_string()))?;
        // 0.4.0 tags addresses with their family; later versions do not.
        for ip in &mut result.ips {
            ip.extra.remove("version");
        }
        Ok(result)
    }

    /// The result as JSON in `version`'s format.
    pub fn to_value(&self, version: CniVersion) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        let Some(object) = value.as_object_mut() else {
            return value;
        };
        if version < CniVersion::V1_1_0
            && let Some(Value::Array(interfaces)) = object.get_mut("interfaces")
        {
            for interface in interfaces.iter_mut().filter_map(Value::as_object_mut) {
                interface.remove("mtu");
            }
        }
        if version == CniVersion::V0_4_0
            && let Some(Value::Array(ips)) = object.get_mut("ips")
        {
            for ip in ips.iter_mut().filter_map(Value::as_object_mut) {
                let family = match ip.get("address").and_then(Value::as_str) {
                    Some(address) if address.contains(':') => "6",
                    _ => "4",
                };
                ip.insert("version".into(), Value::from(family));
            }
        }
        object.insert("cniVersion".into(), Value::from(version.as_str()));
        value
    }

    /// Index of the interface named `name` in `sandbox`.
    pub fn sandbox_interface(&self, name: &str, sandbox: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == name && i.sandbox.as_deref() == Some(sandbox))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::CniResult;
    use crate::version::CniVersion;

    fn sample() -> serde_json::Value {
        json!({
            "cniVersion": "0.4.0",
            "interfaces": [
                {"name": "cni0", "mac": "0a:58:0a:f4:01:01"},
                {"name": "eth0", "mac": "0a:58:0a:f4:01:02", "sandbox": "/run/netns/p", "mtu": 1400}
            ],
            "ips": [{"version": "4", "address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1", "priority": 5}],
            "dns": {"nameservers": ["10.96.0.10"]}
        })
    }

    #[test]
    fn formats_follow_the_requested_version() {
        let result = CniResult::from_value(sample()).expect("parses");
        let old = result.to_value(CniVersion::V0_4_0);
        assert_eq!(old["cniVersion"], "0.4.0");
        assert_eq!(old["ips"][0]["version"], "4");
        assert!(old["interfaces"][1].get("mtu").is_none());
        let new = result.to_value(CniVersion::V1_1_0);
        assert_eq!(new["cniVersion"], "1.1.0");
        assert!(new["ips"][0].get("version").is_none());
        assert_eq!(new["interfaces"][1]["mtu"], 1400);
        assert_eq!(new["ips"][0]["interface"], 1);
        // Fields rudder-cni does not model pass through.
        assert_eq!(new["routes"][0]["priority"], 5);
        assert_eq!(new["dns"]["nameservers"][0], "10.96.0.10");
        let v1 = result.to_value(CniVersion::V1_0_0);
        assert!(v1["ips"][0].get("version").is_none());
        assert!(v1["interfaces"][1].get("mtu").is_none());
    }

    #[test]
    fn a_malformed_prev_result_is_code_7() {
        let err = CniResult::from_value(json!({"ips": [{"gateway": "x"}]})).err();
        assert_eq!(err.map(|e| e.code()), Some(7));
    }
}
