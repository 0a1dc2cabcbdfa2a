//! Validation rules shared by the kinds: names, labels, ports, quantities,
//! addresses. Each check appends a [`FieldError`] naming the field, so one
//! pass reports every problem.

use std::{collections::BTreeMap, net::IpAddr};

use crate::error::FieldError;

/// Collects field errors during validation.
#[derive(Debug, Default)]
pub struct FieldErrors {
    errors: Vec<FieldError>,
}

impl FieldErrors {
    /// Records that `field` is wrong.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors found.
    pub fn into_vec(self) -> Vec<FieldError> {
        self.errors
    }

    /// Requires `value` to be a DNS-1123 label (`web`, `db-0`).
    pub fn dns_label(&mut self, field: &str, value: &str) {
        if let Err(why) = check_dns_label(value) {
            self.push(
                field,
                format!("{value:?} is not a valid DNS-1123 label: {why}"),
            );
        }
    }

    /// Requires `value` to be a DNS-1123 subdomain (`web.example`).
    pub fn dns_subdomain(&mut self, field: &str, value: &str) {
        if let Err(why) = check_dns_subdomain(value) {
            self.push(
                field,
                format!("{value:?} is not a valid DNS-1123 subdomain: {why}"),
            );
        }
    }

    /// Requires `port` in 1-65535.
    pub fn port(&mut self, field: &str, port: i64) {
        if !(1..=65535).contains(&port) {
            self.push(field, format!("port {port} out of range 1-65535"));
        }
    }

    /// Requires a protocol rudder forwards.
    pub fn protocol(&mut self, field: &str, protocol: Option<&str>) {
        if let Some(protocol) = protocol
            && !matches!(protocol, "TCP" | "UDP" | "SCTP")
        {
            self.push(
                field,
                format!("protocol {protocol:?} is not one of TCP, UDP, SCTP"),
            );
        }
    }

    /// Requires `value` to be one of `allowed`.
    pub fn one_of(&mut self, field: &str, value: Option<&str>, allowed: &[&str]) {
        if let Some(value) = value
            && !allowed.contains(&value)
        {
            self.push(
                field,
                format!("{value:?} is not one of {}", allowed.join(", ")),
            );
        }
    }

    /// Requires a non-negative number.
    pub fn non_negative(&mut self, field: &str, value: Option<i64>) {
        if let Some(value) = value
            && value < 0
        {
            self.push(field, format!("{value} must not be negative"));
        }
    }

    /// Requires `value` within `min..=max`: the range Kubernetes gives the
    /// field (its int32 fields end at [`MAX_INT32`]). Durations that reach
    /// timers must be bounded here, before any component adds them to a clock.
    pub fn in_range(&mut self, field: &str, value: Option<i64>, min: i64, max: i64) {
        if let Some(value) = value
            && !(min..=max).contains(&value)
        {
            self.push(field, format!("{value} is out of range {min}-{max}"));
        }
    }

    /// Requires label keys and values in Kubernetes' syntax.
    pub fn labels(&mut self, field: &str, labels: &BTreeMap<String, String>) {
        for (key, value) in labels {
            if let Err(why) = check_qualified_name(key) {
                self.push(
                    format!("{field}[{key:?}]"),
                    format!("invalid label key: {why}"),
                );
            }
            if !value.is_empty() && check_label_value(value).is_err() {
                self.push(
                    format!("{field}[{key:?}]"),
                    format!(
                        "invalid label value {value:?}: at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"
                    ),
                );
            }
        }
    }

    /// Requires one label key in Kubernetes' syntax (`example.com/zone`).
    pub fn label_key(&mut self, field: &str, key: &str) {
        if let Err(why) = check_qualified_name(key) {
            self.push(field, format!("invalid label key {key:?}: {why}"));
        }
    }

    /// Requires annotation keys in Kubernetes' syntax.
    pub fn annotation_keys(&mut self, field: &str, annotations: &BTreeMap<String, String>) {
        for key in annotations.keys() {
            if let Err(why) = check_qualified_name(key) {
                self.push(
                    format!("{field}[{key:?}]"),
                    format!("invalid annotation key: {why}"),
                );
            }
        }
    }

    /// Requires a resource quantity (`500m`, `1.5Gi`, `2`).
    pub fn quantity(&mut self, field: &str, value: &str) {
        if let Err(why) = crate::quantity::parse(value) {
            self.push(field, format!("{value:?} is not a quantity: {why}"));
        }
    }

    /// Requires an IP address.
    pub fn ip(&mut self, field: &str, value: &str) {
        if value.parse::<IpAddr>().is_err() {
            self.push(field, format!("{value:?} is not an IP address"));
        }
    }

    /// Requires a CIDR (`10.244.1.0/24`).
    pub fn cidr(&mut self, field: &str, value: &str) {
        let valid = value.split_once('/').is_some_and(|(ip, bits)| {
            match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
                (Ok(IpAddr::V4(_)), Ok(bits)) => bits <= 32,
                (Ok(IpAddr::V6(_)), Ok(bits)) => bits <= 128,
                _ => false,
            }
        });
        if !valid {
            self.push(
                field,
                format!("{value:?} is not a CIDR such as 10.244.1.0/24"),
            );
        }
    }
}

fn check_dns_label(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("must not be empty");
    }
    if value.len() > 63 {
        return Err("must be at most 63 characters");
    }
    let bytes = value.as_bytes();
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err("must consist of lower case alphanumeric characters or '-'");
    }
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Err("must start and end with an alphanumeric character");
    }
    Ok(())
}

fn check_dns_subdomain(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("must not be empty");
    }
    if value.len() > 253 {
        return Err("must be at most 253 characters");
    }
    for part in value.split('.') {
        check_dns_label(part).map_err(|_| {
            "must consist of lower case alphanumeric characters, '-' or '.', and start and end with an alphanumeric character"
        })?;
    }
    Ok(())
}

/// Whether `value` may be a label value (empty, or at most 63 characters of
/// `[A-Za-z0-9-_.]` starting and ending alphanumeric).
pub(crate) fn is_label_value(value: &str) -> bool {
    value.is_empty() || check_label_value(value).is_ok()
}

fn check_label_value(value: &str) -> Result<(), ()> {
    let bytes = value.as_bytes();
    let ok = value.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if ok { Ok(()) } else { Err(()) }
}

pub(crate) fn check_qualified_name(key: &str) -> Result<(), &'static str> {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            check_dns_subdomain(prefix).map_err(|_| "prefix must be a DNS-1123 subdomain")?;
            name
        }
        None => key,
    };
    if name.is_empty() {
        return Err("name part must not be empty");
    }
    check_label_value(name).map_err(|_| {
        "name part must be at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"
    })
}

/// The largest value of Kubernetes' int32 fields (probe timings, minReadySeconds).
pub const MAX_INT32: i64 = i32::MAX as i64;

/// Whether `uid` has the textual form of a UUID (`8-4-4-4-12` hex digits),
/// which every uid the API server assigns has. Uids become file names on
/// nodes, so nothing else may pass.
pub fn is_uid(uid: &str) -> bool {
    let groups: Vec<&str> = uid.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `value` is a DNS-1123 label (namespace names, container names):
/// at most 63 characters of `[a-z0-9-]`, starting and ending alphanumeric,
/// so never `.`, `..` or anything with a `/`.
pub fn is_dns_label(value: &str) -> bool {
    check_dns_label(value).is_ok()
}

/// Whether `value` is a DNS-1123 subdomain (most object names): dot-separated
/// DNS labels, so never an empty, `.` or `..` part, nor a `/`.
pub fn is_dns_subdomain(value: &str) -> bool {
    check_dns_subdomain(value).is_ok()
}

/// Whether `value` is a Kubernetes quantity.
pub fn is_quantity(value: &str) -> bool {
    crate::quantity::parse(value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for good in ["1", "500m", "1.5Gi", "64Mi", "2e3", "0.5", "100k"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "m", "1.2.3", "5 Gi", "abc", "1GB"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn dns_names() {
        assert!(check_dns_label("web-0").is_ok());
        assert!(check_dns_label("Web").is_err());
        assert!(check_dns_label("-web").is_err());
        assert!(check_dns_label(&"a".repeat(64)).is_err());
        assert!(check_dns_subdomain("web.example.com").is_ok());
        assert!(check_dns_subdomain("web..x").is_err());
        assert!(check_qualified_name("app.kubernetes.io/name").is_ok());
        assert!(check_qualified_name("bad key").is_err());
    }
}
