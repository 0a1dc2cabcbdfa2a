//! Service ports the dataplane could not program are refused at the API,
//! never accepted and silently dropped.

use rudder_api::{ApiError, Kind, object::normalize};
use serde_json::{Value, json};

fn service(ports: Value) -> Result<Value, ApiError> {
    normalize(
        Kind::Service,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": ports},
        }),
    )
}

fn messages(result: Result<Value, ApiError>) -> Vec<String> {
    match result {
        Err(ApiError::Invalid { errors, .. }) => errors
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn two_ports_with_the_same_port_and_protocol_are_refused() {
    let errors = messages(service(json!([
        {"name": "http", "port": 80},
        {"name": "alt", "port": 80, "protocol": "TCP"},
    ])));
    assert_eq!(
        errors,
        ["spec.ports[1].port: duplicate value: port 80/TCP is already spec.ports[0]"]
    );
}

#[test]
fn the_same_port_over_tcp_and_udp_is_two_frontends() {
    let accepted = service(json!([
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        {"name": "dns-udp", "port": 53, "protocol": "UDP"},
    ]));
    assert!(accepted.is_ok(), "{accepted:?}");
}

#[test]
fn sctp_service_ports_are_refused_naming_what_is_supported() {
    let errors = messages(service(json!([{"port": 9, "protocol": "SCTP"}])));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("spec.ports[0].protocol: SCTP is not supported")
            && errors[0].contains("TCP and UDP"),
        "{errors:?}"
    );
}
