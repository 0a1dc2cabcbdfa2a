//! Defaulting and validation of Pods and of the pod spec that templates
//! share (containers, ports, resources, probes, bounds on every value that
//! reaches a node's timers, bandwidth annotations).

use super::{Resource, default_type_meta, type_meta, validate_metadata};
use crate::{
    core::{Container, EnvVar, IntOrString, Pod, PodSpec, Probe},
    downward::PodField,
    kind::Kind,
    meta::ObjectMeta,
    validation::{FieldErrors, MAX_INT32},
};

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

pub(super) fn default_pod_spec(spec: &mut PodSpec) {
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

pub(super) fn validate_pod_spec(path: &str, spec: &PodSpec, errors: &mut FieldErrors) {
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
        validate_env(&field, &container.env, errors);
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

/// Environment variables: a C identifier-like name, and either a value or
/// one supported source. What rudder cannot fill in is refused by name
/// rather than started with the variable silently empty.
fn validate_env(field: &str, env: &[EnvVar], errors: &mut FieldErrors) {
    for (i, var) in env.iter().enumerate() {
        let at = format!("{field}.env[{i}]");
        let valid_name = !var.name.is_empty()
            && !var.name.starts_with(|c: char| c.is_ascii_digit())
            && var
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid_name {
            errors.push(
                format!("{at}.name"),
                format!(
                    "{:?}: a valid environment variable name must consist of letters, digits, '_', '-' or '.', and must not start with a digit",
                    var.name
                ),
            );
        }
        let Some(source) = &var.value_from else {
            continue;
        };
        if var.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errors.push(
                format!("{at}.valueFrom"),
                "may not be specified when `value` is not empty",
            );
        }
        let unsupported = [
            ("resourceFieldRef", source.resource_field_ref.is_some()),
            ("configMapKeyRef", source.config_map_key_ref.is_some()),
            ("secretKeyRef", source.secret_key_ref.is_some()),
        ];
        for (name, _) in unsupported.iter().filter(|(_, given)| *given) {
            errors.push(
                format!("{at}.valueFrom.{name}"),
                "not supported by rudder (it has no ConfigMaps, Secrets or resource fields); only fieldRef is",
            );
        }
        let sources = usize::from(source.field_ref.is_some())
            + unsupported.iter().filter(|(_, given)| *given).count();
        if sources != 1 {
            errors.push(
                format!("{at}.valueFrom"),
                "exactly one of fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef is required",
            );
        }
        if let Some(field_ref) = &source.field_ref
            && PodField::parse(&field_ref.field_path).is_none()
        {
            errors.push(
                format!("{at}.valueFrom.fieldRef.fieldPath"),
                format!(
                    "{:?} is not supported; supported values: {}",
                    field_ref.field_path,
                    crate::downward::SUPPORTED
                ),
            );
        }
    }
}

/// Refuses bandwidth annotations the agent could not apply, so a pod never
/// runs unlimited because of a typo.
pub(super) fn validate_bandwidth(
    path: &str,
    annotations: &std::collections::BTreeMap<String, String>,
    errors: &mut FieldErrors,
) {
    if let Err((key, why)) = crate::bandwidth::BandwidthLimits::from_annotations(annotations) {
        errors.push(format!("{path}[{key:?}]"), why.to_string());
    }
}
