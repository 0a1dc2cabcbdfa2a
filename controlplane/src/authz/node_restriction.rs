//! NodeRestriction: what the node authoriser cannot see in a request's
//! attributes, checked against the objects. A node may create only its
//! own Node and Lease (the name is in the body), may not change its own
//! taints or `node-restriction.kubernetes.io/` labels, and reaches only
//! pods bound to it (`spec.nodeName`, read from the store). Applies to node
//! identities however they were authorised, RBAC included.

use rudder_api::{Kind, names::NODE_LEASE_NAMESPACE};
use serde_json::Value;

use super::attributes::{Attributes, Target};
use crate::apiserver::{ApiServer, ApiServerError};

/// Labels only admins may set on a Node (workloads select nodes by them,
/// so a node must not claim them), as in Kubernetes.
const RESTRICTED_LABEL_PREFIX: &str = "node-restriction.kubernetes.io/";

/// The restricted labels of a Node.
fn restricted_labels(node: &Value) -> Vec<(&str, &Value)> {
    node.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter(|(key, _)| key.starts_with(RESTRICTED_LABEL_PREFIX))
                .map(|(key, value)| (key.as_str(), value))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a request of node `node`; `body` is the object a create or
/// update sends.
///
/// # Errors
/// [`ApiServerError::Forbidden`] naming what the node may not do; store
/// errors while reading the pod.
pub async fn admit(
    api: &ApiServer,
    node: &str,
    attributes: &Attributes<'_>,
    body: Option<&Value>,
) -> Result<(), ApiServerError> {
    let Target::Resource(r) = &attributes.target else {
        return Ok(());
    };
    let body_name = || {
        body.and_then(|b| b.pointer("/metadata/name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let refuse = |what: String| Err(ApiServerError::Forbidden(format!("node {node:?} {what}")));
    match (r.group, r.resource) {
        ("", "nodes") if attributes.verb == "create" && body_name() != node => refuse(format!(
            "may only create its own Node object, not {:?}",
            body_name()
        )),
        ("", "nodes") if attributes.verb == "update" && r.subresource.is_empty() => {
            let Some(sent) = body else {
                return Ok(());
            };
            let current = match api.get(Kind::Node, "", r.name).await {
                Ok(current) => current,
                Err(ApiServerError::NotFound(_)) => return Ok(()),
                Err(err) => return Err(err),
            };
            if sent.pointer("/spec/taints") != current.pointer("/spec/taints") {
                return refuse(
                    "may not change its own taints (the node lifecycle controller and admins do)"
                        .to_owned(),
                );
            }
            if restricted_labels(sent) != restricted_labels(&current) {
                return refuse(format!(
                    "may not change its own {RESTRICTED_LABEL_PREFIX}* labels"
                ));
            }
            Ok(())
        }
        ("coordination.k8s.io", "leases")
            if attributes.verb == "create"
                && (body_name() != node || r.namespace != NODE_LEASE_NAMESPACE) =>
        {
            refuse(format!(
                "may only create its own Lease {NODE_LEASE_NAMESPACE}/{node}, not {}/{}",
                r.namespace,
                body_name()
            ))
        }
        ("", "pods") => {
            // A pod that is not there is the operation's NotFound to report.
            let pod = match api.get(Kind::Pod, r.namespace, r.name).await {
                Ok(pod) => pod,
                Err(ApiServerError::NotFound(_)) => return Ok(()),
                Err(err) => return Err(err),
            };
            let bound = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if bound == node {
                Ok(())
            } else {
                refuse(format!(
                    "may only reach pods bound to it; pod {}/{} is not",
                    r.namespace, r.name
                ))
            }
        }
        _ => Ok(()),
    }
}
