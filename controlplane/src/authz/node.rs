//! The node authoriser, in the spirit of Kubernetes' Node authorizer: a
//! node's identity (`system:node:<name>` in `system:nodes`) may read what
//! its agent needs (Services, Endpoints, EndpointSlices, Nodes), write its
//! own Node and Node status, its own Lease in `kube-node-lease`, Events,
//! and reach its pods (get, status, delete); [`super::node_restriction`]
//! then checks that those pods are bound to it and that created objects
//! are its own. Anything else it leaves to RBAC, which grants nodes
//! nothing by default.

use rudder_api::{names::NODE_LEASE_NAMESPACE, rbac};

use super::attributes::{Attributes, Target};
use crate::auth::UserInfo;

/// The group of every node identity.
pub const NODES_GROUP: &str = "system:nodes";
/// The user name prefix of node identities.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// The node a user is, if it is one.
pub fn node_of(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    (!name.is_empty() && user.groups.iter().any(|g| g == NODES_GROUP)).then_some(name)
}

/// Whether node `node` may do what `attributes` describe (before the
/// object checks of NodeRestriction).
pub fn allows(node: &str, attributes: &Attributes<'_>) -> bool {
    let Target::Resource(r) = &attributes.target else {
        return false;
    };
    let verb = attributes.verb;
    let reads = matches!(verb, "get" | "list" | "watch");
    match (r.group, r.resource, r.subresource) {
        ("", "services" | "endpoints" | "nodes", "")
        | ("discovery.k8s.io", "endpointslices", "")
            if reads =>
        {
            true
        }
        // Its own Node: register (the name is checked in the body) and
        // keep it and its status current.
        // (No patch: NodeRestriction checks the whole object an update sends.)
        ("", "nodes", "") => match verb {
            "create" => r.name.is_empty() || r.name == node,
            "update" => r.name == node,
            _ => false,
        },
        ("", "nodes", "status") => matches!(verb, "get" | "update" | "patch") && r.name == node,
        // Its own Lease, the heartbeat.
        ("coordination.k8s.io", "leases", "") if r.namespace == NODE_LEASE_NAMESPACE => {
            match verb {
                "create" => r.name.is_empty() || r.name == node,
                "get" | "update" | "patch" => r.name == node,
                _ => false,
            }
        }
        // Its pods, one at a time: which ones is NodeRestriction's check.
        ("", "pods", "") => matches!(verb, "get" | "delete") && !r.name.is_empty(),
        ("", "pods", "status") => matches!(verb, "get" | "update" | "patch") && !r.name.is_empty(),
        ("" | "events.k8s.io", "events", "") => matches!(verb, "create" | "update" | "patch"),
        _ => false,
    }
}

/// The ClusterRole `system:node`: what the node authoriser allows, as
/// RBAC rules (Kubernetes keeps it for clusters that bind nodes through
/// RBAC; it is not bound by default, as there).
pub fn node_cluster_role_rules() -> Vec<rbac::PolicyRule> {
    let rule = |verbs: &[&str], group: &str, resources: &[&str]| rbac::PolicyRule {
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        api_groups: vec![group.to_owned()],
        resources: resources.iter().map(|r| (*r).to_owned()).collect(),
        ..rbac::PolicyRule::default()
    };
    vec![
        rule(
            &["get", "list", "watch"],
            "",
            &["services", "endpoints", "nodes"],
        ),
        rule(
            &["get", "list", "watch"],
            "discovery.k8s.io",
            &["endpointslices"],
        ),
        rule(&["create", "update"], "", &["nodes"]),
        rule(&["get", "update", "patch"], "", &["nodes/status"]),
        rule(
            &["get", "create", "update", "patch"],
            "coordination.k8s.io",
            &["leases"],
        ),
        rule(&["get", "delete"], "", &["pods"]),
        rule(&["get", "update", "patch"], "", &["pods/status"]),
        rule(&["create", "update", "patch"], "", &["events"]),
        rule(&["create", "update", "patch"], "events.k8s.io", &["events"]),
    ]
}

#[cfg(test)]
mod tests {
    use rudder_api::Kind;

    use super::*;

    fn node(name: &str) -> UserInfo {
        UserInfo {
            name: format!("system:node:{name}"),
            uid: String::new(),
            groups: vec![NODES_GROUP.into()],
        }
    }

    #[test]
    fn only_node_identities_are_nodes() {
        assert_eq!(node_of(&node("n1")), Some("n1"));
        let mut impostor = node("n1");
        impostor.groups.clear();
        assert_eq!(node_of(&impostor), None, "the name alone is not enough");
    }

    #[test]
    fn a_node_writes_only_its_own_node_and_lease() {
        let update = |kind, sub, ns, name| {
            allows("n1", &Attributes::resource("update", kind, sub, ns, name))
        };
        assert!(update(Kind::Node, "", "", "n1"));
        assert!(update(Kind::Node, "status", "", "n1"));
        assert!(!update(Kind::Node, "", "", "n2"));
        assert!(!update(Kind::Node, "status", "", "n2"));
        assert!(update(Kind::Lease, "", NODE_LEASE_NAMESPACE, "n1"));
        assert!(!update(Kind::Lease, "", NODE_LEASE_NAMESPACE, "n2"));
        assert!(!update(Kind::Lease, "", "kube-system", "n1"));
        assert!(!update(Kind::Pod, "", "default", "web"), "never a pod spec");
        assert!(update(Kind::Pod, "status", "default", "web"));
        assert!(!allows(
            "n1",
            &Attributes::resource("create", Kind::Pod, "", "default", "")
        ));
        assert!(!allows(
            "n1",
            &Attributes::resource("delete", Kind::Node, "", "", "n2")
        ));
        assert!(!allows(
            "n1",
            &Attributes::resource("list", Kind::Pod, "", "", "")
        ));
        assert!(allows(
            "n1",
            &Attributes::resource("watch", Kind::EndpointSlice, "", "", "")
        ));
        assert!(!allows(
            "n1",
            &Attributes::resource("list", Kind::ClusterRole, "", "", "")
        ));
    }
}
