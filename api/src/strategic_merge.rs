//! How a strategic merge patch merges each list of the Kubernetes types
//! rudder serves: the `patchMergeKey`/`patchStrategy` tags of Kubernetes'
//! Go types, by a list's field name and the field it sits in.
//!
//! One table for both users of it: the API server's strategic merge
//! (`PATCH` with `application/strategic-merge-patch+json`) and the OpenAPI
//! schema, whose `x-kubernetes-patch-merge-key`/`x-kubernetes-patch-strategy`
//! tell kubectl how to compute the patches it sends.

/// How a list field merges in a strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// Elements are objects matched by this key.
    MergeKey(&'static str),
    /// A list of scalars merged as a set (finalizers).
    Set,
    /// The patch's list replaces the current one.
    Replace,
}

/// The strategy of the list `field` inside the field `parent` (the name of
/// the field holding the object the list is in, "" at the top of an
/// object; list elements have their list's name).
pub fn list_strategy(parent: &str, field: &str) -> ListStrategy {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => ListStrategy::MergeKey("name"),
        "ports"
            if matches!(
                parent,
                "containers" | "initContainers" | "ephemeralContainers"
            ) =>
        {
            ListStrategy::MergeKey("containerPort")
        }
        // Service.spec.ports.
        "ports" if parent == "spec" => ListStrategy::MergeKey("port"),
        "volumeMounts" => ListStrategy::MergeKey("mountPath"),
        "volumeDevices" => ListStrategy::MergeKey("devicePath"),
        "conditions" => ListStrategy::MergeKey("type"),
        // Node.status.addresses (an EndpointSubset's addresses are atomic).
        "addresses" if parent == "status" => ListStrategy::MergeKey("type"),
        "hostAliases" => ListStrategy::MergeKey("ip"),
        "topologySpreadConstraints" => ListStrategy::MergeKey("topologyKey"),
        "ownerReferences" => ListStrategy::MergeKey("uid"),
        "finalizers" if parent == "metadata" => ListStrategy::Set,
        _ => ListStrategy::Replace,
    }
}

impl ListStrategy {
    /// The OpenAPI extensions that describe the strategy
    /// (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`).
    pub fn openapi_extensions(self) -> Vec<(&'static str, &'static str)> {
        match self {
            ListStrategy::MergeKey(key) => vec![
                ("x-kubernetes-patch-merge-key", key),
                ("x-kubernetes-patch-strategy", "merge"),
            ],
            ListStrategy::Set => vec![("x-kubernetes-patch-strategy", "merge")],
            ListStrategy::Replace => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_merge_by_their_kubernetes_keys() {
        assert_eq!(
            list_strategy("spec", "containers"),
            ListStrategy::MergeKey("name")
        );
        assert_eq!(
            list_strategy("containers", "ports"),
            ListStrategy::MergeKey("containerPort")
        );
        assert_eq!(
            list_strategy("spec", "ports"),
            ListStrategy::MergeKey("port")
        );
        assert_eq!(list_strategy("subsets", "ports"), ListStrategy::Replace);
        assert_eq!(
            list_strategy("status", "addresses"),
            ListStrategy::MergeKey("type")
        );
        assert_eq!(list_strategy("subsets", "addresses"), ListStrategy::Replace);
        assert_eq!(list_strategy("metadata", "finalizers"), ListStrategy::Set);
        assert_eq!(list_strategy("spec", "finalizers"), ListStrategy::Replace);
    }
}
