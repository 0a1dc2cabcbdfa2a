//! The `scale` subresource of Deployments and ReplicaSets: an
//! autoscaling/v1 `Scale` view of the object's `spec.replicas`, which
//! `kubectl scale` reads and patches (and autoscalers would).

use rudder_api::Kind;
use serde_json::{Value, json};

use super::ApiServerError;

/// Whether `kind` serves `/scale`.
pub fn has_scale(kind: Kind) -> bool {
    matches!(kind, Kind::Deployment | Kind::ReplicaSet)
}

/// The `Scale` of `object`: its identity, desired and observed replicas,
/// and its selector in label-selector syntax.
pub fn scale_of(object: &Value) -> Value {
    let metadata = &object["metadata"];
    let mut identity = serde_json::Map::new();
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(value) = metadata.get(field) {
            identity.insert(field.to_owned(), value.clone());
        }
    }
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": identity,
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector_text(&object["spec"]["selector"]),
        },
    })
}

/// `object` with the replicas of `scale` (and its resourceVersion, a
/// precondition when given).
///
/// # Errors
/// [`ApiServerError::BadRequest`] when `spec.replicas` is missing or not
/// a whole number from 0 up.
pub fn with_scale(kind: Kind, mut object: Value, scale: &Value) -> Result<Value, ApiServerError> {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|replicas| (0..=i64::from(i32::MAX)).contains(replicas))
        .ok_or_else(|| {
            ApiServerError::BadRequest(format!(
                "{} {name:?}: Scale.spec.replicas must be a whole number from 0 up, not {}",
                kind.plural(),
                scale.pointer("/spec/replicas").unwrap_or(&Value::Null)
            ))
        })?;
    object["spec"]["replicas"] = json!(replicas);
    if let Some(version) = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|version| !version.is_empty())
    {
        object["metadata"]["resourceVersion"] = json!(version);
    }
    Ok(object)
}

/// A LabelSelector as text: `app=web,tier in (a,b),!gone`.
fn selector_text(selector: &Value) -> String {
    let mut terms: Vec<String> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect();
    for expression in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = expression["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = expression["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        terms.push(match expression["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_owned(),
            _ => format!("!{key}"),
        });
    }
    terms.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_views_and_sets_replicas() {
        let deployment = json!({
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7", "labels": {"a": "b"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "gone", "operator": "DoesNotExist"},
            ]}},
            "status": {"replicas": 1},
        });
        let scale = scale_of(&deployment);
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(
            scale["metadata"],
            json!({"name": "web", "namespace": "default", "resourceVersion": "7"})
        );
        assert_eq!(scale["spec"]["replicas"], 2);
        assert_eq!(
            scale["status"],
            json!({"replicas": 1, "selector": "app=web,tier in (a,b),!gone"})
        );

        let scaled = with_scale(
            Kind::Deployment,
            deployment.clone(),
            &json!({"spec": {"replicas": 5}}),
        )
        .expect("scaled");
        assert_eq!(scaled["spec"]["replicas"], 5);
        assert_eq!(scaled["metadata"]["labels"]["a"], "b");
        for bad in [
            json!({"spec": {"replicas": -1}}),
            json!({"spec": {}}),
            json!({"spec": {"replicas": "3"}}),
        ] {
            assert!(
                with_scale(Kind::Deployment, deployment.clone(), &bad).is_err(),
                "{bad}"
            );
        }
    }
}
