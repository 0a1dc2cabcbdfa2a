//! The API refuses bandwidth annotations the agent could not apply, on pods
//! and on the pod templates of Deployments, and says which field is wrong.

use rudder_api::{ApiError, Kind, object::normalize};
use serde_json::{Value, json};

fn pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "annotations": annotations},
        "spec": {"containers": [{"name": "web", "command": ["sleep", "1"]}]},
    })
}

fn invalid_fields(result: Result<Value, ApiError>) -> Vec<(String, String)> {
    match result {
        Err(ApiError::Invalid { errors, .. }) => {
            errors.into_iter().map(|e| (e.field, e.message)).collect()
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn pod_with_valid_bandwidth_annotations_is_accepted() {
    let accepted = normalize(
        Kind::Pod,
        pod(json!({
            "kubernetes.io/ingress-bandwidth": "10M",
            "kubernetes.io/egress-bandwidth": "1Gi",
        })),
    );
    assert!(accepted.is_ok(), "{accepted:?}");
}

#[test]
fn pod_with_malformed_bandwidth_is_refused_naming_the_annotation() {
    let fields = invalid_fields(normalize(
        Kind::Pod,
        pod(json!({"kubernetes.io/egress-bandwidth": "10MB"})),
    ));
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert_eq!(
        fields[0].0,
        "metadata.annotations[\"kubernetes.io/egress-bandwidth\"]"
    );
    assert!(fields[0].1.contains("not a quantity"), "{}", fields[0].1);
}

#[test]
fn pod_with_bandwidth_out_of_range_is_refused() {
    for absurd in ["500", "2T", "0"] {
        let fields = invalid_fields(normalize(
            Kind::Pod,
            pod(json!({"kubernetes.io/ingress-bandwidth": absurd})),
        ));
        assert!(fields[0].1.contains("out of range"), "{absurd}: {fields:?}");
    }
}

#[test]
fn deployment_template_with_bad_bandwidth_is_refused() {
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"},
                             "annotations": {"kubernetes.io/ingress-bandwidth": "fast"}},
                "spec": {"containers": [{"name": "web", "command": ["sleep", "1"]}]},
            },
        },
    });
    let fields = invalid_fields(normalize(Kind::Deployment, deployment));
    assert!(
        fields[0]
            .0
            .starts_with("spec.template.metadata.annotations"),
        "{fields:?}"
    );
}
