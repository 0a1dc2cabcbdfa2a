//! The fields of a Node that its agent and the control plane own: the pod
//! CIDR(s) and the provider ID. A user's update of a Node (say, a manifest
//! that only carries `metadata.labels`) replaces the object, and without
//! this hook would drop them: the node's pod route would vanish from every
//! other node. As kube-apiserver does, they are immutable once set: an
//! update that leaves them out keeps them, one that changes them is
//! refused. (The status is kept by every non-status update already.)

use futures::future::BoxFuture;
use rudder_api::{ApiError, FieldError};
use rudder_kvstore::Store;
use serde_json::{Map, Value};

use super::{
    ApiServerError,
    hooks::{Claim, WriteHooks},
};

/// The spec fields that may go from unset to set, and never change after.
const SET_ONCE: [&str; 3] = ["podCIDR", "podCIDRs", "providerID"];

/// Write hooks of Nodes.
#[derive(Debug)]
pub struct NodeOwnedFields;

impl WriteHooks for NodeOwnedFields {
    fn before_update<'a>(
        &'a self,
        _store: &'a Store,
        next: &'a mut Value,
        current: &'a Value,
    ) -> BoxFuture<'a, Result<Claim, ApiServerError>> {
        let result = keep_set_once_fields(next, current).map(|()| Claim::default());
        Box::pin(async move { result })
    }
}

fn is_unset(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// Copies the set-once fields `next` leaves out from `current`; refuses a
/// change of one that `current` has set.
fn keep_set_once_fields(next: &mut Value, current: &Value) -> Result<(), ApiServerError> {
    let Some(current_spec) = current.get("spec").and_then(Value::as_object) else {
        return Ok(());
    };
    let name = next
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut errors = Vec::new();
    let mut kept = Map::new();
    for field in SET_ONCE {
        let was = current_spec.get(field);
        if is_unset(was) {
            continue;
        }
        let wanted = next.pointer(&format!("/spec/{field}"));
        if is_unset(wanted) {
            kept.insert(field.to_owned(), was.cloned().unwrap_or_default());
        } else if wanted != was {
            errors.push(FieldError {
                field: format!("spec.{field}"),
                message: format!(
                    "may not be changed once set (it is {})",
                    was.unwrap_or(&Value::Null)
                ),
            });
        }
    }
    if !errors.is_empty() {
        return Err(ApiServerError::Invalid(ApiError::Invalid {
            kind: "Node".to_owned(),
            name,
            errors,
        }));
    }
    if !kept.is_empty() {
        if !next.get("spec").is_some_and(Value::is_object) {
            next["spec"] = Value::Object(Map::new());
        }
        if let Some(spec) = next["spec"].as_object_mut() {
            spec.extend(kept);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(spec: Value) -> Value {
        json!({"metadata": {"name": "node2", "labels": {"zone": "a"}}, "spec": spec})
    }

    #[test]
    fn an_update_without_the_pod_cidr_keeps_it() {
        let current = node(json!({"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24"]}));
        let mut next = json!({"metadata": {"name": "node2", "labels": {"zone": "b"}}});
        keep_set_once_fields(&mut next, &current).expect("accepted");
        assert_eq!(next["spec"]["podCIDR"], "10.244.2.0/24");
        assert_eq!(next["spec"]["podCIDRs"], json!(["10.244.2.0/24"]));
        assert_eq!(next["metadata"]["labels"]["zone"], "b");
    }

    #[test]
    fn a_changed_pod_cidr_is_refused_naming_the_field() {
        let current = node(json!({"podCIDR": "10.244.2.0/24"}));
        let mut next = node(json!({"podCIDR": "0.0.0.0/0", "unschedulable": true}));
        let err = keep_set_once_fields(&mut next, &current).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("spec.podCIDR"), "{text}");
    }

    #[test]
    fn unset_fields_may_be_set_and_other_fields_change_freely() {
        let current = node(json!({"unschedulable": true}));
        let mut next = node(json!({"podCIDR": "10.244.3.0/24"}));
        keep_set_once_fields(&mut next, &current).expect("accepted");
        assert_eq!(next["spec"]["podCIDR"], "10.244.3.0/24");
        assert!(next["spec"].get("unschedulable").is_none());
    }
}
