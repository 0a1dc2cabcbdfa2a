//! The kinds rudder serves, and what the server needs to know about each.

use std::fmt;

/// A kind of resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `v1` Namespace (cluster-scoped).
    Namespace,
    /// `v1` Node (cluster-scoped).
    Node,
    /// `coordination.k8s.io/v1` Lease.
    Lease,
    /// `v1` Pod.
    Pod,
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` ReplicaSet.
    ReplicaSet,
    /// `v1` Service.
    Service,
    /// `v1` Endpoints.
    Endpoints,
    /// `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice,
    /// `v1` Event.
    Event,
    /// `rbac.authorization.k8s.io/v1` Role.
    Role,
    /// `rbac.authorization.k8s.io/v1` ClusterRole (cluster-scoped).
    ClusterRole,
    /// `rbac.authorization.k8s.io/v1` RoleBinding.
    RoleBinding,
    /// `rbac.authorization.k8s.io/v1` ClusterRoleBinding (cluster-scoped).
    ClusterRoleBinding,
}

impl Kind {
    /// Every kind, in the order `rudderctl get all` lists them.
    pub const ALL: [Kind; 14] = [
        Kind::Namespace,
        Kind::Node,
        Kind::Lease,
        Kind::Pod,
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::Service,
        Kind::Endpoints,
        Kind::EndpointSlice,
        Kind::Event,
        Kind::Role,
        Kind::ClusterRole,
        Kind::RoleBinding,
        Kind::ClusterRoleBinding,
    ];

    /// The kind's name as in `kind:` (`Pod`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Node => "Node",
            Kind::Lease => "Lease",
            Kind::Pod => "Pod",
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Service => "Service",
            Kind::Endpoints => "Endpoints",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Event => "Event",
            Kind::Role => "Role",
            Kind::ClusterRole => "ClusterRole",
            Kind::RoleBinding => "RoleBinding",
            Kind::ClusterRoleBinding => "ClusterRoleBinding",
        }
    }

    /// The resource name in URLs (`pods`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Node => "nodes",
            Kind::Lease => "leases",
            Kind::Pod => "pods",
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
            Kind::Service => "services",
            Kind::Endpoints => "endpoints",
            Kind::EndpointSlice => "endpointslices",
            Kind::Event => "events",
            Kind::Role => "roles",
            Kind::ClusterRole => "clusterroles",
            Kind::RoleBinding => "rolebindings",
            Kind::ClusterRoleBinding => "clusterrolebindings",
        }
    }

    /// Short names `rudderctl` accepts, as kubectl does.
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Namespace => &["ns"],
            Kind::Node => &["no"],
            Kind::Lease => &[],
            Kind::Pod => &["po"],
            Kind::Deployment => &["deploy"],
            Kind::ReplicaSet => &["rs"],
            Kind::Service => &["svc"],
            Kind::Endpoints => &["ep"],
            Kind::EndpointSlice => &[],
            Kind::Event => &["ev"],
            Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding => &[],
        }
    }

    /// The API group ("" for core).
    pub fn group(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::ReplicaSet => "apps",
            Kind::Lease => "coordination.k8s.io",
            Kind::EndpointSlice => "discovery.k8s.io",
            Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding => {
                crate::rbac::GROUP
            }
            _ => "",
        }
    }

    /// `apiVersion` of the kind.
    pub fn api_version(self) -> &'static str {
        match self.group() {
            "apps" => "apps/v1",
            "coordination.k8s.io" => "coordination.k8s.io/v1",
            "discovery.k8s.io" => "discovery.k8s.io/v1",
            crate::rbac::GROUP => "rbac.authorization.k8s.io/v1",
            _ => "v1",
        }
    }

    /// Whether objects live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(
            self,
            Kind::Namespace | Kind::Node | Kind::ClusterRole | Kind::ClusterRoleBinding
        )
    }

    /// Whether the kind has a `status` that only the status update changes.
    pub fn has_status(self) -> bool {
        !matches!(
            self,
            Kind::Endpoints
                | Kind::EndpointSlice
                | Kind::Lease
                | Kind::Event
                | Kind::Role
                | Kind::ClusterRole
                | Kind::RoleBinding
                | Kind::ClusterRoleBinding
        )
    }

    /// Parses a kind name, plural, singular or short name, in any case.
    pub fn parse(text: &str) -> Option<Kind> {
        let lower = text.to_ascii_lowercase();
        Kind::ALL.into_iter().find(|kind| {
            kind.name().eq_ignore_ascii_case(&lower)
                || kind.plural() == lower
                || kind.short_names().contains(&lower.as_str())
        })
    }

    /// The store key prefix of the kind's objects (`/registry/pods/`).
    pub fn key_prefix(self) -> String {
        format!("/registry/{}/", self.plural())
    }

    /// The store key of one object.
    pub fn key(self, namespace: &str, name: &str) -> String {
        if self.namespaced() {
            format!("/registry/{}/{namespace}/{name}", self.plural())
        } else {
            format!("/registry/{}/{name}", self.plural())
        }
    }

    /// The kind whose objects live under `key`, if any.
    pub fn of_key(key: &[u8]) -> Option<Kind> {
        let rest = key.strip_prefix(b"/registry/")?;
        let end = rest.iter().position(|&b| b == b'/')?;
        let plural = std::str::from_utf8(&rest[..end]).ok()?;
        Kind::ALL.into_iter().find(|kind| kind.plural() == plural)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_plurals_and_short_names() {
        assert_eq!(Kind::parse("Pod"), Some(Kind::Pod));
        assert_eq!(Kind::parse("pods"), Some(Kind::Pod));
        assert_eq!(Kind::parse("svc"), Some(Kind::Service));
        assert_eq!(Kind::parse("deployment"), Some(Kind::Deployment));
        assert_eq!(Kind::parse("rs"), Some(Kind::ReplicaSet));
        assert_eq!(Kind::parse("endpoints"), Some(Kind::Endpoints));
        assert_eq!(Kind::parse("endpointslices"), Some(Kind::EndpointSlice));
        assert_eq!(Kind::parse("cronjobs"), None);
        assert_eq!(Kind::parse("clusterroles"), Some(Kind::ClusterRole));
        assert_eq!(Kind::parse("RoleBinding"), Some(Kind::RoleBinding));
        assert!(!Kind::ClusterRoleBinding.namespaced());
        assert_eq!(Kind::Role.api_version(), "rbac.authorization.k8s.io/v1");
    }

    #[test]
    fn keys_round_trip_to_their_kind() {
        assert_eq!(
            Kind::Pod.key("default", "web"),
            "/registry/pods/default/web"
        );
        assert_eq!(Kind::Node.key("", "n1"), "/registry/nodes/n1");
        assert_eq!(Kind::of_key(b"/registry/services/a/b"), Some(Kind::Service));
        assert_eq!(Kind::of_key(b"/other/x"), None);
        assert_eq!(
            Kind::of_key(Kind::EndpointSlice.key("a", "b").as_bytes()),
            Some(Kind::EndpointSlice)
        );
        assert_eq!(
            Kind::of_key(Kind::Endpoints.key("a", "b").as_bytes()),
            Some(Kind::Endpoints)
        );
    }
}
