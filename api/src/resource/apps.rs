//! Defaulting and validation of Deployments and ReplicaSets: selectors
//! that match their template, rollout strategy, replica counts.

use super::{
    Resource, default_type_meta,
    pod::{default_pod_spec, validate_bandwidth, validate_pod_spec},
    type_meta, validate_metadata,
};
use crate::{
    apps::{Deployment, DeploymentStrategy, PodTemplateSpec, ReplicaSet, RollingUpdate},
    core::IntOrString,
    kind::Kind,
    meta::{LabelSelector, ObjectMeta},
    selector::Selector,
    validation::{FieldErrors, MAX_INT32},
};

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
