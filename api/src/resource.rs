//! The [`Resource`] trait: what every kind provides (its metadata,
//! defaulting and validation), and its implementations.

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    apps::{Deployment, DeploymentStrategy, PodTemplateSpec, ReplicaSet, RollingUpdate},
    coordination::Lease,
    core::{
        Container, Endpoints, Event, IntOrString, Namespace, NamespaceStatus, Node, Pod, PodSpec,
        Probe, Service,
    },
    kind::Kind,
    meta::{LabelSelector, ObjectMeta},
    selector::Selector,
    validation::{FieldErrors, MAX_INT32, is_uid},
};

/// A kind of object the API serves.
pub trait Resource: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The kind.
    const KIND: Kind;

    /// The object's metadata.
    fn metadata(&self) -> &ObjectMeta;

    /// The object's metadata, to change.
    fn metadata_mut(&mut self) -> &mut ObjectMeta;

    /// Fills in what the user left out, as Kubernetes does.
    fn apply_defaults(&mut self) {}

    /// Checks the object, appending every problem to `errors`.
    fn validate(&self, errors: &mut FieldErrors);
}

/// Sets `apiVersion`/`kind` and validates the metadata every kind shares.
pub(crate) fn validate_metadata(kind: Kind, meta: &ObjectMeta, errors: &mut FieldErrors) {
    match kind {
        // Their names become DNS labels (service DNS, namespace names).
        Kind::Namespace | Kind::Service => errors.dns_label("metadata.name", &meta.name),
        _ => errors.dns_subdomain("metadata.name", &meta.name),
    }
    if kind.namespaced() {
        errors.dns_label("metadata.namespace", &meta.namespace);
    } else if !meta.namespace.is_empty() {
        errors.push(
            "metadata.namespace",
            format!("{kind} is cluster-scoped and takes no namespace"),
        );
    }
    errors.labels("metadata.labels", &meta.labels);
    errors.annotation_keys("metadata.annotations", &meta.annotations);
    if !meta.uid.is_empty() && !is_uid(&meta.uid) {
        errors.push(
            "metadata.uid",
            format!(
                "{:?} is not a uid: the API server assigns uids (a UUID); leave it out",
                meta.uid
            ),
        );
    }
    if !meta.resource_version.is_empty() && meta.resource_version.parse::<i64>().is_err() {
        errors.push(
            "metadata.resourceVersion",
            format!(
                "{:?} is not a resource version (a number from a previous read)",
                meta.resource_version
            ),
        );
    }
}

fn default_type_meta(kind: Kind, api_version: &mut String, kind_field: &mut String) {
    if api_version.is_empty() {
        kind.api_version().clone_into(api_version);
    }
    if kind_field.is_empty() {
        kind.name().clone_into(kind_field);
    }
}

macro_rules! type_meta {
    ($ty:ty, $kind:expr) => {
        fn metadata(&self) -> &ObjectMeta {
            &self.metadata
        }
        fn metadata_mut(&mut self) -> &mut ObjectMeta {
            &mut self.metadata
        }
    };
}

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

impl Resource for Pod {
    const KIND: Kind = Kind::Pod;
    type_meta!(Pod, Kind::Pod);

    fn apply_defaults(&mut self) {
        default_type_meta(Self::KIND, &mut self.api_version, &mut self.kind);
        default_pod_spec(&mut self.spec);
        self.status
            .get_or_insert_with(Default::default)
            .phase
            .get_or_insert_with(|| "Pending".to_owned());
    }

    fn validate(&self, errors: &mut FieldErrors) {
        validate_metadata(Self::KIND, &self.metadata, errors);
        validate_bandwidth("metadata.annotations", &self.metadata.annotations, errors);
        validate_pod_spec("spec", &self.spec, errors);
    }
}

fn default_pod_spec(spec: &mut PodSpec) {
    spec.restart_policy
        .get_or_insert_with(|| "Always".to_owned());
    spec.termination_grace_period_seconds.get_or_insert(30);
    for container in spec.containers.iter_mut().chain(&mut spec.init_containers) {
        default_container(container);
    }
}

fn default_container(container: &mut Container) {
    for port in &mut container.ports {
        port.protocol.get_or_insert_with(|| "TCP".to_owned());
    }
    if container.image_pull_policy.is_none() {
        // Kubernetes' rule: a :latest (or untagged) image is re-pulled.
        let policy = match &container.image {
            Some(image) if image.ends_with(":latest") || !image.contains(':') => "Always",
            _ => "IfNotPresent",
        };
        container.image_pull_policy = Some(policy.to_owned());
    }
    for probe in [
        &mut container.readiness_probe,
        &mut container.liveness_probe,
        &mut container.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
}

fn default_probe(probe: &mut Probe) {
    probe.period_seconds.get_or_insert(10);
    probe.timeout_seconds.get_or_insert(1);
    probe.failure_threshold.get_or_insert(3);
    probe.success_threshold.get_or_insert(1);
    if let Some(http) = &mut probe.http_get {
        http.path.get_or_insert_with(|| "/".to_owned());
        http.scheme.get_or_insert_with(|| "HTTP".to_owned());
    }
}

fn validate_pod_spec(path: &str, spec: &PodSpec, errors: &mut FieldErrors) {
    if spec.containers.is_empty() {
        errors.push(
            format!("{path}.containers"),
            "at least one container is required",
        );
    }
    let mut names = std::collections::BTreeSet::new();
    let all = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("{path}.containers[{i}]"), c))
        .chain(
            spec.init_containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("{path}.initContainers[{i}]"), c)),
        );
    for (field, container) in all {
        errors.dns_label(&format!("{field}.name"), &container.name);
        if !names.insert(container.name.as_str()) {
            errors.push(
                format!("{field}.name"),
                format!("container name {:?} is used twice", container.name),
            );
        }
        if container.image.is_none() && container.command.is_empty() {
            errors.push(
                format!("{field}.image"),
                "required: an image, or a command for the embedded runtime",
            );
        }
        for (j, port) in container.ports.iter().enumerate() {
            errors.port(
                &format!("{field}.ports[{j}].containerPort"),
                port.container_port,
            );
            errors.protocol(
                &format!("{field}.ports[{j}].protocol"),
                port.protocol.as_deref(),
            );
            if let Some(host_port) = port.host_port {
                errors.port(&format!("{field}.ports[{j}].hostPort"), host_port);
            }
        }
        if let Some(resources) = &container.resources {
            for (section, map) in [
                ("limits", &resources.limits),
                ("requests", &resources.requests),
            ] {
                for (name, value) in map {
                    errors.quantity(&format!("{field}.resources.{section}.{name}"), value);
                }
            }
        }
        for (name, probe) in [
            ("readinessProbe", &container.readiness_probe),
            ("livenessProbe", &container.liveness_probe),
            ("startupProbe", &container.startup_probe),
        ] {
            let Some(probe) = probe else { continue };
            let probe_path = format!("{field}.{name}");
            let handlers = usize::from(probe.http_get.is_some())
                + usize::from(probe.tcp_socket.is_some())
                + usize::from(probe.exec.is_some());
            if handlers != 1 {
                errors.push(
                    &probe_path,
                    "exactly one of httpGet, tcpSocket or exec is required",
                );
            }
            if let Some(IntOrString::Int(port)) = probe.http_get.as_ref().map(|h| &h.port) {
                errors.port(&format!("{probe_path}.httpGet.port"), *port);
            }
            if let Some(IntOrString::Int(port)) = probe.tcp_socket.as_ref().map(|t| &t.port) {
                errors.port(&format!("{probe_path}.tcpSocket.port"), *port);
            }
            // Kubernetes' bounds (its fields are int32): a period or timeout
            // of 0 would spin, a huge delay would overflow the agent's clock.
            for (field, value, min) in [
                ("initialDelaySeconds", probe.initial_delay_seconds, 0),
                ("periodSeconds", probe.period_seconds, 1),
                ("timeoutSeconds", probe.timeout_seconds, 1),
                ("failureThreshold", probe.failure_threshold, 1),
                ("successThreshold", probe.success_threshold, 1),
            ] {
                errors.in_range(&format!("{probe_path}.{field}"), value, min, MAX_INT32);
            }
            // A startup probe ends at its first success, so more than one
            // success in a row means nothing (Kubernetes refuses it too).
            if name == "startupProbe" && probe.success_threshold.is_some_and(|n| n != 1) {
                errors.push(
                    format!("{probe_path}.successThreshold"),
                    "must be 1 for a startup probe",
                );
            }
        }
    }
    errors.one_of(
        &format!("{path}.restartPolicy"),
        spec.restart_policy.as_deref(),
        &["Always", "OnFailure", "Never"],
    );
    // Kubernetes has no upper bound (int64), but the agent adds the grace
    // period to a clock: 68 years is more than any pod needs.
    errors.in_range(
        &format!("{path}.terminationGracePeriodSeconds"),
        spec.termination_grace_period_seconds,
        0,
        MAX_INT32,
    );
    if let Some(node) = &spec.node_name
        && !node.is_empty()
    {
        errors.dns_subdomain(&format!("{path}.nodeName"), node);
    }
    errors.labels(&format!("{path}.nodeSelector"), &spec.node_selector);
    if let Some(node_affinity) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
    {
        crate::node_selector::validate_node_affinity(
            &format!("{path}.affinity.nodeAffinity"),
            node_affinity,
            errors,
        );
    }
}

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

fn validate_template(
    selector: &LabelSelector,
    template: &PodTemplateSpec,
    replicas: Option<i64>,
    errors: &mut FieldErrors,
) {
    errors.non_negative("spec.replicas", replicas);
    if selector.match_labels.is_empty() && selector.match_expressions.is_empty() {
        errors.push(
            "spec.selector",
            "required: a selector matching the template's labels",
        );
    } else {
        match Selector::from_label_selector(selector) {
            Ok(parsed) if !parsed.matches(&template.metadata.labels) => errors.push(
                "spec.template.metadata.labels",
                format!(
                    "do not match the selector {parsed}: the pods would not belong to their owner"
                ),
            ),
            Ok(_) => {}
            Err(err) => errors.push("spec.selector", err.to_string()),
        }
    }
    errors.labels("spec.template.metadata.labels", &template.metadata.labels);
    validate_bandwidth(
        "spec.template.metadata.annotations",
        &template.metadata.annotations,
        errors,
    );
    validate_pod_spec("spec.template.spec", &template.spec, errors);
}

/// Refuses bandwidth annotations the agent could not apply, so a pod never
/// runs unlimited because of a typo.
fn validate_bandwidth(
    path: &str,
    annotations: &std::collections::BTreeMap<String, String>,
    errors: &mut FieldErrors,
) {
    if let Err((key, why)) = crate::bandwidth::BandwidthLimits::from_annotations(annotations) {
        errors.push(format!("{path}[{key:?}]"), why.to_string());
    }
}

fn validate_percent_or_int(field: &str, value: Option<&IntOrString>, errors: &mut FieldErrors) {
    match value {
        Some(IntOrString::Int(n)) if *n < 0 => {
            errors.push(field, format!("{n} must not be negative"));
        }
        Some(IntOrString::String(text)) => {
            let valid = text
                .strip_suffix('%')
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n <= 100);
            if !valid {
                errors.push(
                    field,
                    format!("{text:?} is neither a number nor a percentage like 25%"),
                );
            }
        }
        _ => {}
    }
}

fn is_zero(value: Option<&IntOrString>) -> bool {
    match value {
        Some(IntOrString::Int(0)) => true,
        Some(IntOrString::String(text)) => text == "0%",
        _ => false,
    }
}

impl Resource for Deployment {
    const KIND: Kind = Kind::Deployment;
    type_meta!(Deployment, Kind::Deployment);

    fn apply_defaults(&mut self) {
        default_type_meta(Self::KIND, &mut self.api_version, &mut self.kind);
        let spec = &mut self.spec;
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        let strategy = spec
            .strategy
            .get_or_insert_with(DeploymentStrategy::default);
        let type_ = strategy
            .type_
            .get_or_insert_with(|| "RollingUpdate".to_owned());
        if type_ == "RollingUpdate" {
            let rolling = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdate::default);
            rolling
                .max_surge
                .get_or_insert_with(|| IntOrString::String("25%".to_owned()));
            rolling
                .max_unavailable
                .get_or_insert_with(|| IntOrString::String("25%".to_owned()));
        }
        default_pod_spec(&mut spec.template.spec);
    }

    fn validate(&self, errors: &mut FieldErrors) {
        validate_metadata(Self::KIND, &self.metadata, errors);
        let spec = &self.spec;
        validate_template(&spec.selector, &spec.template, spec.replicas, errors);
        if let Some(strategy) = &spec.strategy {
            errors.one_of(
                "spec.strategy.type",
                strategy.type_.as_deref(),
                &["RollingUpdate", "Recreate"],
            );
            if let Some(rolling) = &strategy.rolling_update {
                if strategy.type_.as_deref() == Some("Recreate") {
                    errors.push(
                        "spec.strategy.rollingUpdate",
                        "may not be set when strategy type is Recreate",
                    );
                }
                validate_percent_or_int(
                    "spec.strategy.rollingUpdate.maxSurge",
                    rolling.max_surge.as_ref(),
                    errors,
                );
                validate_percent_or_int(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    rolling.max_unavailable.as_ref(),
                    errors,
                );
                if is_zero(rolling.max_surge.as_ref()) && is_zero(rolling.max_unavailable.as_ref())
                {
                    errors.push(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        "may not be 0 when maxSurge is 0: the rollout could never progress",
                    );
                }
            }
        }
        errors.in_range("spec.minReadySeconds", spec.min_ready_seconds, 0, MAX_INT32);
        errors.in_range(
            "spec.revisionHistoryLimit",
            spec.revision_history_limit,
            0,
            MAX_INT32,
        );
        errors.in_range(
            "spec.progressDeadlineSeconds",
            spec.progress_deadline_seconds,
            1,
            MAX_INT32,
        );
    }
}

impl Resource for ReplicaSet {
    const KIND: Kind = Kind::ReplicaSet;
    type_meta!(ReplicaSet, Kind::ReplicaSet);

    fn apply_defaults(&mut self) {
        default_type_meta(Self::KIND, &mut self.api_version, &mut self.kind);
        self.spec.replicas.get_or_insert(1);
        default_pod_spec(&mut self.spec.template.spec);
    }

    fn validate(&self, errors: &mut FieldErrors) {
        validate_metadata(Self::KIND, &self.metadata, errors);
        validate_template(
            &self.spec.selector,
            &self.spec.template,
            self.spec.replicas,
            errors,
        );
        errors.in_range(
            "spec.minReadySeconds",
            self.spec.min_ready_seconds,
            0,
            MAX_INT32,
        );
    }
}
