//! What kubectl and client-go read before anything else: `/version`
//! (version.Info) and the legacy discovery documents (`/api`, `/apis`,
//! `/api/v1`, `/apis/<group>/v1`), all generated from [`Kind::ALL`].
//!
//! Aggregated discovery (`apidiscovery.k8s.io/v2`) is not served: those
//! paths always answer `Content-Type: application/json`, which tells a
//! client asking for `as=APIGroupDiscoveryList` that it got the legacy
//! document, and kubectl then walks the group versions one by one.

use rudder_api::Kind;
use serde_json::{Value, json};

use crate::authz::review;

/// The Kubernetes minor version whose API rudder follows.
pub(super) const KUBERNETES_MINOR: &str = "32";

/// The verbs every kind's collection and objects serve over HTTP.
const VERBS: [&str; 7] = [
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// `version.Info`: the Kubernetes version rudder's API follows, with
/// rudder's own version as build metadata.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0+rudder-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

/// The architecture as Go names it (`amd64`, `arm64`).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The named groups, in [`Kind::ALL`] order, without repeats, and then
/// `authorization.k8s.io` (access reviews, which are not stored kinds).
fn groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for kind in Kind::ALL {
        if !kind.group().is_empty() && !groups.contains(&kind.group()) {
            groups.push(kind.group());
        }
    }
    groups.push(review::GROUP);
    groups
}

/// `GET /apis/authorization.k8s.io/v1`: SelfSubjectAccessReviews, which
/// are only created.
fn review_resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{}/v1", review::GROUP),
        "resources": [{
            "name": review::RESOURCE,
            "singularName": "selfsubjectaccessreview",
            "namespaced": false,
            "kind": "SelfSubjectAccessReview",
            "verbs": ["create"],
        }],
    })
}

/// `GET /api`: the core group's versions.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    })
}

/// `GET /apis`: every named group, each with its one version `v1`.
pub fn group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .map(|group| {
            let version = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
            json!({"name": group, "versions": [version], "preferredVersion": version})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`: one group.
pub fn group(group: &str) -> Option<Value> {
    groups().contains(&group).then(|| {
        let version = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": group,
               "versions": [version], "preferredVersion": version})
    })
}

/// Whether Kubernetes puts `kind` in the `all` category (`kubectl get all`).
fn in_category_all(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Pod | Kind::Service | Kind::Deployment | Kind::ReplicaSet
    )
}

/// `GET /api/v1` (group "") or `GET /apis/<group>/v1`: the group's
/// resources and their served subresources; `None` for an unknown group.
pub fn resource_list(group: &str) -> Option<Value> {
    if group == review::GROUP {
        return Some(review_resources());
    }
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|kind| kind.group() == group)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for kind in kinds {
        let mut resource = json!({
            "name": kind.plural(),
            "singularName": kind.name().to_ascii_lowercase(),
            "namespaced": kind.namespaced(),
            "kind": kind.name(),
            "verbs": VERBS,
        });
        if !kind.short_names().is_empty() {
            resource["shortNames"] = json!(kind.short_names());
        }
        if in_category_all(kind) {
            resource["categories"] = json!(["all"]);
        }
        resources.push(resource);
        if kind.has_status() {
            resources.push(json!({
                "name": format!("{}/status", kind.plural()),
                "singularName": "",
                "namespaced": kind.namespaced(),
                "kind": kind.name(),
                "verbs": ["get", "patch", "update"],
            }));
        }
        if super::scale::has_scale(kind) {
            resources.push(json!({
                "name": format!("{}/scale", kind.plural()),
                "singularName": "",
                "namespaced": kind.namespaced(),
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        "v1".to_owned()
    } else {
        format!("{group}/v1")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// The discovery document at `path`, if `path` is one.
pub fn document(path: &str) -> Option<Value> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => Some(version()),
        ["api"] => Some(core_versions()),
        ["api", "v1"] => resource_list(""),
        ["apis"] => Some(group_list()),
        ["apis", name] => group(name),
        ["apis", group, "v1"] if !group.is_empty() => resource_list(group),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_discoverable_in_its_group() {
        for kind in Kind::ALL {
            let path = if kind.group().is_empty() {
                "/api/v1".to_owned()
            } else {
                format!("/apis/{}/v1", kind.group())
            };
            let list = document(&path).expect("resource list");
            let resource = list["resources"]
                .as_array()
                .expect("resources")
                .iter()
                .find(|r| r["name"] == kind.plural())
                .unwrap_or_else(|| panic!("{kind} listed in {path}"));
            assert_eq!(resource["kind"], kind.name());
            assert_eq!(resource["namespaced"], kind.namespaced());
        }
        let apps = document("/apis/apps/v1").expect("apps");
        assert!(!apps["resources"].to_string().contains("\"pods\""));
        assert!(document("/apis/batch/v1").is_none());
        assert!(document("/apis/batch").is_none());
    }

    #[test]
    fn groups_list_each_named_group_once() {
        let list = group_list();
        let names: Vec<&str> = list["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .filter_map(|g| g["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "coordination.k8s.io",
                "apps",
                "discovery.k8s.io",
                "rbac.authorization.k8s.io",
                "authorization.k8s.io"
            ]
        );
        assert_eq!(
            document("/apis/authorization.k8s.io/v1").expect("reviews")["resources"][0]["name"],
            "selfsubjectaccessreviews"
        );
        assert_eq!(version()["major"], "1");
    }
}
