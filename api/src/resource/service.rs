//! Defaulting and validation of Services: types, ports the dataplane can
//! program (TCP and UDP, one frontend per port/protocol), node ports,
//! session affinity.

use super::{Resource, default_type_meta, type_meta, validate_metadata};
use crate::{
    core::{IntOrString, Service},
    kind::Kind,
    meta::ObjectMeta,
    validation::FieldErrors,
};

impl Resource for Service {
    const KIND: Kind = Kind::Service;
    type_meta!(Service, Kind::Service);

    fn apply_defaults(&mut self) {
        default_type_meta(Self::KIND, &mut self.api_version, &mut self.kind);
        let spec = &mut self.spec;
        let type_ = spec
            .type_
            .get_or_insert_with(|| "ClusterIP".to_owned())
            .clone();
        spec.session_affinity
            .get_or_insert_with(|| "None".to_owned());
        if spec.session_affinity.as_deref() == Some("ClientIP") {
            spec.session_affinity_config
                .get_or_insert_with(Default::default)
                .client_ip
                .get_or_insert_with(Default::default)
                .timeout_seconds
                .get_or_insert(10800);
        }
        spec.internal_traffic_policy
            .get_or_insert_with(|| "Cluster".to_owned());
        if matches!(type_.as_str(), "NodePort" | "LoadBalancer") {
            spec.external_traffic_policy
                .get_or_insert_with(|| "Cluster".to_owned());
        }
        for port in &mut spec.ports {
            port.protocol.get_or_insert_with(|| "TCP".to_owned());
            port.target_port.get_or_insert(IntOrString::Int(port.port));
        }
    }

    fn validate(&self, errors: &mut FieldErrors) {
        validate_metadata(Self::KIND, &self.metadata, errors);
        let spec = &self.spec;
        errors.one_of(
            "spec.type",
            spec.type_.as_deref(),
            &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
        );
        errors.one_of(
            "spec.sessionAffinity",
            spec.session_affinity.as_deref(),
            &["None", "ClientIP"],
        );
        for (field, policy) in [
            ("spec.externalTrafficPolicy", &spec.external_traffic_policy),
            ("spec.internalTrafficPolicy", &spec.internal_traffic_policy),
        ] {
            errors.one_of(field, policy.as_deref(), &["Cluster", "Local"]);
        }
        if let Some(ip) = &spec.cluster_ip
            && !ip.is_empty()
            && ip != "None"
        {
            errors.ip("spec.clusterIP", ip);
        }
        errors.in_range(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds),
            1,
            86_400,
        );
        let node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        if spec.ports.is_empty() && spec.type_.as_deref() != Some("ExternalName") {
            errors.push("spec.ports", "at least one port is required");
        }
        let mut names = std::collections::BTreeSet::new();
        let mut frontends = std::collections::BTreeMap::new();
        for (i, port) in spec.ports.iter().enumerate() {
            let field = format!("spec.ports[{i}]");
            errors.port(&format!("{field}.port"), port.port);
            errors.protocol(&format!("{field}.protocol"), port.protocol.as_deref());
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            if protocol == "SCTP" {
                // Valid Kubernetes, but the dataplane translates TCP and UDP
                // only: accepting it would leave the port silently dead.
                errors.push(
                    format!("{field}.protocol"),
                    "SCTP is not supported by rudder's service dataplane (TCP and UDP are)",
                );
            }
            if let Some(first) = frontends.insert((port.port, protocol), i) {
                errors.push(
                    format!("{field}.port"),
                    format!(
                        "duplicate value: port {}/{protocol} is already spec.ports[{first}]",
                        port.port
                    ),
                );
            }
            match &port.target_port {
                Some(IntOrString::Int(target)) => {
                    errors.port(&format!("{field}.targetPort"), *target)
                }
                Some(IntOrString::String(name))
                    if name.is_empty() || name.len() > 15 || check_port_name(name).is_err() =>
                {
                    errors.push(
                        format!("{field}.targetPort"),
                        format!("{name:?} is neither a port number nor a port name (at most 15 lower case alphanumerics or '-')"),
                    );
                }
                Some(IntOrString::String(_)) | None => {}
            }
            match port.name.as_deref() {
                Some(name) => {
                    errors.dns_label(&format!("{field}.name"), name);
                    if !names.insert(name) {
                        errors.push(
                            format!("{field}.name"),
                            format!("port name {name:?} is used twice"),
                        );
                    }
                }
                None if spec.ports.len() > 1 => {
                    errors.push(
                        format!("{field}.name"),
                        "required when a service has more than one port",
                    );
                }
                None => {}
            }
            if let Some(node_port) = port.node_port {
                if !node_ports {
                    errors.push(
                        format!("{field}.nodePort"),
                        "only NodePort and LoadBalancer services take a nodePort",
                    );
                } else if !(30000..=32767).contains(&node_port) {
                    errors.push(
                        format!("{field}.nodePort"),
                        format!("nodePort {node_port} out of range 30000-32767"),
                    );
                }
            }
        }
        errors.labels("spec.selector", &spec.selector);
    }
}

fn check_port_name(name: &str) -> Result<(), ()> {
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase());
    if ok { Ok(()) } else { Err(()) }
}
