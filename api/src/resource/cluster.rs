//! Defaulting and validation of the cluster's own kinds: Namespace, Node,
//! Lease, Event, Endpoints.

use super::{Resource, default_type_meta, type_meta, validate_metadata};
use crate::{
    coordination::Lease,
    core::{Endpoints, Event, Namespace, NamespaceStatus, Node},
    discovery::EndpointSlice,
    kind::Kind,
    meta::ObjectMeta,
    validation::FieldErrors,
};

impl Resource for Namespace {
    const KIND: Kind = Kind::Namespace;
    type_meta!(Namespace, Kind::Namespace);

    fn apply_defaults(&mut self) {
        default_type_meta(Self::KIND, &mut self.api_version, &mut self.kind);
        self.status
            .get_or_insert_with(NamespaceStatus::default)
            .phase
            .get_or_insert_with(|| "Active".to_owned());
    }

    fn validate(&self, errors: &mut FieldErrors) {
        validate_metadata(Self::KIND, &self.metadata, errors);
    }
}

impl Resource for Node {
    const KIND: Kind = Kind::Node;
    type_meta!(Node, Kind::Node);

    fn apply_defaults(&mut self) {
        default_type_meta(Self::KIND, &mut self.api_version, &mut self.kind);
    }

    fn validate(&self, errors: &mut FieldErrors) {
        validate_metadata(Self::KIND, &self.metadata, errors);
        if let Some(cidr) = &self.spec.pod_cidr {
            errors.cidr("spec.podCIDR", cidr);
        }
        for (i, cidr) in self.spec.pod_cidrs.iter().enumerate() {
            errors.cidr(&format!("spec.podCIDRs[{i}]"), cidr);
        }
        for (i, taint) in self.spec.taints.iter().enumerate() {
            errors.one_of(
                &format!("spec.taints[{i}].effect"),
                Some(&taint.effect),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            );
        }
        if let Some(status) = &self.status {
            for (i, address) in status.addresses.iter().enumerate() {
                if matches!(address.type_.as_str(), "InternalIP" | "ExternalIP") {
                    errors.ip(&format!("status.addresses[{i}].address"), &address.address);
                }
            }
        }
    }
}

impl Resource for Lease {
    const KIND: Kind = Kind::Lease;
    type_meta!(Lease, Kind::Lease);

    fn apply_defaults(&mut self) {
        default_type_meta(Self::KIND, &mut self.api_version, &mut self.kind);
    }

    fn validate(&self, errors: &mut FieldErrors) {
        validate_metadata(Self::KIND, &self.metadata, errors);
        if let Some(seconds) = self.spec.lease_duration_seconds
            && seconds <= 0
        {
            errors.push(
                "spec.leaseDurationSeconds",
                format!("{seconds} must be greater than 0"),
            );
        }
    }
}

impl Resource for Event {
    const KIND: Kind = Kind::Event;
    type_meta!(Event, Kind::Event);

    fn apply_defaults(&mut self) {
        default_type_meta(Self::KIND, &mut self.api_version, &mut self.kind);
        self.type_.get_or_insert_with(|| "Normal".to_owned());
        self.count.get_or_insert(1);
        if self.first_timestamp.is_none() {
            self.first_timestamp = Some(crate::time::now_rfc3339());
        }
        if self.last_timestamp.is_none() {
            self.last_timestamp = self.first_timestamp.clone();
        }
    }

    fn validate(&self, errors: &mut FieldErrors) {
        validate_metadata(Self::KIND, &self.metadata, errors);
        let involved = &self.involved_object;
        if involved.kind.as_deref().unwrap_or_default().is_empty() {
            errors.push(
                "involvedObject.kind",
                "required: the kind the event is about",
            );
        }
        if involved.name.as_deref().unwrap_or_default().is_empty() {
            errors.push(
                "involvedObject.name",
                "required: the object the event is about",
            );
        }
        if self.reason.as_deref().unwrap_or_default().is_empty() {
            errors.push("reason", "required: a short CamelCase reason");
        }
        errors.one_of("type", self.type_.as_deref(), &["Normal", "Warning"]);
        if let Some(count) = self.count
            && count < 1
        {
            errors.push("count", format!("{count} must be at least 1"));
        }
        for (field, time) in [
            ("firstTimestamp", &self.first_timestamp),
            ("lastTimestamp", &self.last_timestamp),
        ] {
            if let Some(time) = time
                && crate::time::parse_rfc3339(time).is_none()
            {
                errors.push(field, format!("{time:?} is not an RFC 3339 time"));
            }
        }
    }
}

impl Resource for Endpoints {
    const KIND: Kind = Kind::Endpoints;
    type_meta!(Endpoints, Kind::Endpoints);

    fn apply_defaults(&mut self) {
        default_type_meta(Self::KIND, &mut self.api_version, &mut self.kind);
        for subset in &mut self.subsets {
            for port in &mut subset.ports {
                port.protocol.get_or_insert_with(|| "TCP".to_owned());
            }
        }
    }

    fn validate(&self, errors: &mut FieldErrors) {
        validate_metadata(Self::KIND, &self.metadata, errors);
        for (i, subset) in self.subsets.iter().enumerate() {
            for (j, address) in subset.addresses.iter().enumerate() {
                errors.ip(&format!("subsets[{i}].addresses[{j}].ip"), &address.ip);
            }
            for (j, address) in subset.not_ready_addresses.iter().enumerate() {
                errors.ip(
                    &format!("subsets[{i}].notReadyAddresses[{j}].ip"),
                    &address.ip,
                );
            }
            for (j, port) in subset.ports.iter().enumerate() {
                errors.port(&format!("subsets[{i}].ports[{j}].port"), port.port);
                errors.protocol(
                    &format!("subsets[{i}].ports[{j}].protocol"),
                    port.protocol.as_deref(),
                );
            }
        }
    }
}

impl Resource for EndpointSlice {
    const KIND: Kind = Kind::EndpointSlice;
    type_meta!(EndpointSlice, Kind::EndpointSlice);

    fn apply_defaults(&mut self) {
        default_type_meta(Self::KIND, &mut self.api_version, &mut self.kind);
        for port in &mut self.ports {
            port.protocol.get_or_insert_with(|| "TCP".to_owned());
        }
    }

    fn validate(&self, errors: &mut FieldErrors) {
        validate_metadata(Self::KIND, &self.metadata, errors);
        if !matches!(self.address_type.as_str(), "IPv4" | "IPv6" | "FQDN") {
            errors.push(
                "addressType",
                format!(
                    "{:?}: must be IPv4, IPv6 or FQDN (only IPv4 is served)",
                    self.address_type
                ),
            );
        }
        if self.endpoints.len() > 1000 {
            errors.push("endpoints", "at most 1000 endpoints per slice".to_owned());
        }
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            if endpoint.addresses.len() != 1 {
                errors.push(
                    format!("endpoints[{i}].addresses"),
                    "exactly one address per endpoint".to_owned(),
                );
            }
            if self.address_type == "IPv4" {
                for (j, address) in endpoint.addresses.iter().enumerate() {
                    errors.ip(&format!("endpoints[{i}].addresses[{j}]"), address);
                }
            }
        }
        for (i, port) in self.ports.iter().enumerate() {
            if let Some(number) = port.port {
                errors.port(&format!("ports[{i}].port"), number);
            }
            errors.protocol(&format!("ports[{i}].protocol"), port.protocol.as_deref());
        }
    }
}
