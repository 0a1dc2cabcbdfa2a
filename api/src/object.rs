//! Objects as JSON: decoding with field paths, defaulting and validation of
//! any kind, keeping fields rudder does not model.
//!
//! The server stores what the user wrote, plus defaults: an object is
//! decoded into its typed form (where defaulting and validation happen) and
//! the typed result is merged back over the original JSON, so fields rudder
//! does not model (`spec.template.spec.volumes[0].configMap`, ...)
//! survive a round trip instead of being dropped or rejected.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    apps::{Deployment, ReplicaSet},
    coordination::Lease,
    core::{Endpoints, Event, Namespace, Node, Pod, Service},
    discovery::EndpointSlice,
    error::ApiError,
    kind::Kind,
    meta::ObjectMeta,
    rbac::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    resource::Resource,
    validation::FieldErrors,
};

/// Decodes a typed object from JSON, naming the field that does not fit.
///
/// # Errors
/// [`ApiError::Malformed`] with the path of the offending field.
pub fn decode<T: Resource>(json: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(json).map_err(|err| ApiError::Malformed {
        kind: T::KIND.name().to_owned(),
        name: String::new(),
        field: "(document)".to_owned(),
        message: err.to_string(),
    })?;
    from_value(T::KIND, value)
}

/// Decodes a typed object from a JSON value, naming the offending field.
///
/// # Errors
/// [`ApiError::Malformed`].
pub fn from_value<T: DeserializeOwned>(kind: Kind, value: Value) -> Result<T, ApiError> {
    let name = name_of(&value);
    serde_path_to_error::deserialize(value).map_err(|err| ApiError::Malformed {
        kind: kind.name().to_owned(),
        name,
        field: err.path().to_string(),
        message: err.into_inner().to_string(),
    })
}

/// The `metadata.name` of a JSON object ("" if missing).
pub fn name_of(value: &Value) -> String {
    value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The `metadata` of a JSON object, leniently (missing or odd fields are
/// left empty: validation reports them).
pub fn metadata_of(value: &Value) -> ObjectMeta {
    value
        .get("metadata")
        .cloned()
        .and_then(|meta| serde_json::from_value(meta).ok())
        .unwrap_or_default()
}

/// The kind an object says it is, from its `kind` field.
///
/// # Errors
/// [`ApiError::UnknownKind`] when missing or not served.
pub fn kind_of(value: &Value) -> Result<Kind, ApiError> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Kind::parse(kind)
        .filter(|k| k.name() == kind)
        .ok_or_else(|| ApiError::UnknownKind(kind.to_owned()))
}

/// Defaults and validates an object of `kind`; returns it with defaults
/// filled in and unknown fields kept.
///
/// # Errors
/// [`ApiError::Malformed`] if it does not decode, [`ApiError::Invalid`]
/// listing every invalid field.
pub fn normalize(kind: Kind, raw: Value) -> Result<Value, ApiError> {
    match kind {
        Kind::Namespace => normalize_as::<Namespace>(raw),
        Kind::Node => normalize_as::<Node>(raw),
        Kind::Lease => normalize_as::<Lease>(raw),
        Kind::Pod => normalize_as::<Pod>(raw),
        Kind::Deployment => normalize_as::<Deployment>(raw),
        Kind::ReplicaSet => normalize_as::<ReplicaSet>(raw),
        Kind::Service => normalize_as::<Service>(raw),
        Kind::Endpoints => normalize_as::<Endpoints>(raw),
        Kind::EndpointSlice => normalize_as::<EndpointSlice>(raw),
        Kind::Event => normalize_as::<Event>(raw),
        Kind::Role => normalize_as::<Role>(raw),
        Kind::ClusterRole => normalize_as::<ClusterRole>(raw),
        Kind::RoleBinding => normalize_as::<RoleBinding>(raw),
        Kind::ClusterRoleBinding => normalize_as::<ClusterRoleBinding>(raw),
    }
}

fn normalize_as<T: Resource>(raw: Value) -> Result<Value, ApiError> {
    if let Some(kind) = raw.get("kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != T::KIND.name()
    {
        return Err(ApiError::Invalid {
            kind: T::KIND.name().to_owned(),
            name: name_of(&raw),
            errors: vec![crate::error::FieldError {
                field: "kind".to_owned(),
                message: format!("{kind:?} sent where {} was expected", T::KIND),
            }],
        });
    }
    let mut typed: T = from_value(T::KIND, raw.clone())?;
    typed.apply_defaults();
    let mut errors = FieldErrors::default();
    typed.validate(&mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Invalid {
            kind: T::KIND.name().to_owned(),
            name: typed.metadata().name.clone(),
            errors: errors.into_vec(),
        });
    }
    let typed = serde_json::to_value(&typed).map_err(|err| ApiError::Malformed {
        kind: T::KIND.name().to_owned(),
        name: name_of(&raw),
        field: "(document)".to_owned(),
        message: err.to_string(),
    })?;
    let mut merged = raw;
    merge(&mut merged, typed);
    Ok(merged)
}

/// Writes `typed` over `base`: objects merge key by key (keys only in
/// `base` stay), arrays of the same length merge element by element, any
/// other value is replaced.
pub fn merge(base: &mut Value, typed: Value) {
    match (base, typed) {
        (Value::Object(base), Value::Object(typed)) => {
            for (key, value) in typed {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(typed)) if base.len() == typed.len() => {
            for (existing, value) in base.iter_mut().zip(typed) {
                merge(existing, value);
            }
        }
        (base, typed) => *base = typed,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_are_filled_and_unknown_fields_kept() {
        let raw = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"port": 80, "appProtocol": "http"}],
                "ipFamilyPolicy": "SingleStack"
            }
        });
        let out = normalize(Kind::Service, raw).expect("valid");
        assert_eq!(out["spec"]["type"], "ClusterIP");
        assert_eq!(out["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(out["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(out["spec"]["ports"][0]["appProtocol"], "http");
        assert_eq!(out["spec"]["ipFamilyPolicy"], "SingleStack");
    }

    #[test]
    fn invalid_port_names_object_and_field() {
        let raw = json!({
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"ports": [{"port": 70000}]}
        });
        let err = normalize(Kind::Service, raw).expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "service \"web\": spec.ports[0].port: port 70000 out of range 1-65535; \
             spec.ports[0].targetPort: port 70000 out of range 1-65535"
        );
    }

    #[test]
    fn wrong_type_names_the_path() {
        let raw = json!({
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": "eighty"}]}]}
        });
        let err = normalize(Kind::Pod, raw).expect_err("malformed");
        let text = err.to_string();
        assert!(
            text.starts_with("pod \"p\": spec.containers[0].ports[0].containerPort: invalid type"),
            "{text}"
        );
    }

    #[test]
    fn deployment_defaults_and_selector_check() {
        let raw = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
                }
            }
        });
        let out = normalize(Kind::Deployment, raw.clone()).expect("valid");
        assert_eq!(out["spec"]["replicas"], 1);
        assert_eq!(out["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(out["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(
            out["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            "25%"
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        let mut mismatched = raw;
        mismatched["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
        let err = normalize(Kind::Deployment, mismatched).expect_err("invalid");
        assert!(
            err.to_string()
                .contains("spec.template.metadata.labels: do not match the selector app=web"),
            "{err}"
        );
    }

    #[test]
    fn startup_probe_is_defaulted_and_checked_like_the_others() {
        let pod = |startup: serde_json::Value| {
            json!({
                "kind": "Pod",
                "metadata": {"name": "p", "namespace": "default"},
                "spec": {"containers": [{"name": "c", "image": "x", "startupProbe": startup}]}
            })
        };
        let out = normalize(Kind::Pod, pod(json!({"tcpSocket": {"port": 8080}}))).expect("valid");
        let probe = &out["spec"]["containers"][0]["startupProbe"];
        assert_eq!(probe["periodSeconds"], 10);
        assert_eq!(probe["failureThreshold"], 3);
        assert_eq!(probe["successThreshold"], 1);
        let err = normalize(
            Kind::Pod,
            pod(json!({"exec": {"command": ["true"]}, "successThreshold": 2})),
        )
        .expect_err("invalid")
        .to_string();
        assert!(
            err.contains(
                "spec.containers[0].startupProbe.successThreshold: must be 1 for a startup probe"
            ),
            "{err}"
        );
        let err = normalize(Kind::Pod, pod(json!({"periodSeconds": 1})))
            .expect_err("invalid")
            .to_string();
        assert!(
            err.contains(
                "spec.containers[0].startupProbe: exactly one of httpGet, tcpSocket or exec"
            ),
            "{err}"
        );
    }

    #[test]
    fn names_and_quantities_are_checked() {
        let raw = json!({
            "kind": "Pod",
            "metadata": {"name": "Bad_Name", "namespace": "default"},
            "spec": {"containers": [{
                "name": "c", "image": "x",
                "resources": {"limits": {"memory": "64MB"}}
            }]}
        });
        let err = normalize(Kind::Pod, raw).expect_err("invalid").to_string();
        assert!(
            err.contains("metadata.name: \"Bad_Name\" is not a valid DNS-1123 subdomain"),
            "{err}"
        );
        assert!(
            err.contains("spec.containers[0].resources.limits.memory: \"64MB\" is not a quantity"),
            "{err}"
        );
    }
}
