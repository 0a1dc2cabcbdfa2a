//! Container environment: downward-API fields rudder fills in are
//! accepted, and what it cannot fill in is refused by name, never started
//! with the variable silently empty.

use rudder_api::{ApiError, Kind, object::normalize};
use serde_json::{Value, json};

fn pod_with_env(env: Value) -> Result<Value, ApiError> {
    normalize(
        Kind::Pod,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"containers": [{"name": "web", "command": ["sleep", "1"], "env": env}]}}),
    )
}

fn refused_fields(env: Value) -> Vec<String> {
    match pod_with_env(env) {
        Err(ApiError::Invalid { errors, .. }) => errors.into_iter().map(|e| e.field).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn field_refs_kubernetes_offers_are_accepted_and_kept() {
    let env = json!([
        {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "URL", "value": "http://$(MY_IP):8080"},
    ]);
    let pod = pod_with_env(env).expect("valid");
    assert_eq!(
        pod["spec"]["containers"][0]["env"][1]["valueFrom"]["fieldRef"]["fieldPath"],
        "status.podIP"
    );
}

#[test]
fn unsupported_sources_and_paths_are_refused_by_name() {
    let errors = refused_fields(json!([
        {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "C", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "1BAD", "value": "x"},
    ]));
    assert_eq!(
        errors,
        [
            "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
            "spec.containers[0].env[1].valueFrom.secretKeyRef",
            "spec.containers[0].env[2].valueFrom",
            "spec.containers[0].env[3].name",
        ]
    );
}
