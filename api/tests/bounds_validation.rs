//! Values that reach file paths and timers on nodes are bounded at the API:
//! a hostile or mistyped manifest is refused, never crashes an agent.

use rudder_api::{ApiError, Kind, object::normalize};
use serde_json::{Value, json};

fn pod(metadata_extra: Value, spec_extra: Value, probe: Value) -> Result<Value, ApiError> {
    let mut metadata = json!({"name": "web", "namespace": "default"});
    let mut spec = json!({"containers": [{
        "name": "web", "command": ["sleep", "1"],
        "readinessProbe": probe,
    }]});
    for (target, extra) in [(&mut metadata, metadata_extra), (&mut spec, spec_extra)] {
        if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
            target.extend(extra);
        }
    }
    normalize(
        Kind::Pod,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}),
    )
}

fn fields(result: Result<Value, ApiError>) -> Vec<String> {
    match result {
        Err(ApiError::Invalid { errors, .. }) => errors.into_iter().map(|e| e.field).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn tcp_probe(extra: Value) -> Value {
    let mut probe = json!({"tcpSocket": {"port": 80}});
    if let (Some(probe), Value::Object(extra)) = (probe.as_object_mut(), extra) {
        probe.extend(extra);
    }
    probe
}

#[test]
fn probe_timings_near_i64_max_are_refused() {
    let huge = json!(i64::MAX - 1);
    for field in ["initialDelaySeconds", "periodSeconds", "timeoutSeconds"] {
        let errors = fields(pod(json!({}), json!({}), tcp_probe(json!({field: huge}))));
        assert_eq!(
            errors,
            [format!("spec.containers[0].readinessProbe.{field}")],
            "{field}"
        );
    }
}

#[test]
fn a_zero_probe_period_is_refused() {
    let errors = fields(pod(
        json!({}),
        json!({}),
        tcp_probe(json!({"periodSeconds": 0})),
    ));
    assert_eq!(errors, ["spec.containers[0].readinessProbe.periodSeconds"]);
}

#[test]
fn a_huge_termination_grace_period_is_refused() {
    let errors = fields(pod(
        json!({}),
        json!({"terminationGracePeriodSeconds": i64::MAX}),
        tcp_probe(json!({})),
    ));
    assert_eq!(errors, ["spec.terminationGracePeriodSeconds"]);
}

#[test]
fn uids_that_are_not_uuids_are_refused() {
    for hostile in ["../../../etc", "a/b", "x"] {
        let errors = fields(pod(
            json!({"uid": hostile}),
            json!({}),
            tcp_probe(json!({})),
        ));
        assert_eq!(errors, ["metadata.uid"], "{hostile}");
    }
    let accepted = pod(
        json!({"uid": "6f1c2a4e-3b5d-4c7e-9a8b-0123456789ab"}),
        json!({}),
        tcp_probe(json!({})),
    );
    assert!(accepted.is_ok(), "{accepted:?}");
}

#[test]
fn sane_values_pass() {
    let accepted = pod(
        json!({}),
        json!({"terminationGracePeriodSeconds": 30}),
        tcp_probe(json!({"initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 1})),
    );
    assert!(accepted.is_ok(), "{accepted:?}");
}
