//! NodeRestriction: what the node authoriser cannot see in a request's
//! attributes, checked against the objects. A node may create only its
//! own Node and Lease (the name is in the body), and reach only pods
//! bound to it (`spec.nodeName`, read from the store). Applies to node
//! identities however they were authorised, RBAC included.

use rudder_api::{Kind, names::NODE_LEASE_NAMESPACE};
use serde_json::Value;

use super::attributes::{Attributes, Target};
use crate::apiserver::{ApiServer, ApiServerError};

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
