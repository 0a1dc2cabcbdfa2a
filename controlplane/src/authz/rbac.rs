//! RBAC decisions from an in-memory index of the bindings: per user and
//! per group, the rules granted and where (cluster-wide, or in one
//! namespace). A decision is a few hash lookups and string comparisons;
//! the index is rebuilt, off the request path, whenever a Role,
//! ClusterRole or binding changes ([`super::view`]).

use std::{collections::HashMap, sync::Arc};

use rudder_api::rbac::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use super::attributes::{Attributes, ResourceAttributes, Target};
use crate::auth::{AUTHENTICATED_GROUP, UserInfo};

/// Rules granted by one binding.
#[derive(Debug, Clone)]
struct Grant {
    /// `None`: every namespace and the cluster scope (a
    /// ClusterRoleBinding); otherwise only requests in this namespace.
    namespace: Option<String>,
    rules: Arc<[PolicyRule]>,
}

/// The four RBAC kinds, as the index is built from them.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    /// Roles by (namespace, name).
    pub roles: HashMap<(String, String), Role>,
    /// ClusterRoles by name.
    pub cluster_roles: HashMap<String, ClusterRole>,
    /// RoleBindings by (namespace, name).
    pub role_bindings: HashMap<(String, String), RoleBinding>,
    /// ClusterRoleBindings by name.
    pub cluster_role_bindings: HashMap<String, ClusterRoleBinding>,
}

/// Who holds which rules, indexed by subject.
#[derive(Debug, Default)]
pub struct RbacIndex {
    users: HashMap<String, Vec<Grant>>,
    groups: HashMap<String, Vec<Grant>>,
}

impl RbacIndex {
    /// Resolves every binding of `policy` to its role's rules. A binding
    /// whose role does not exist grants nothing (until the role appears).
    pub fn build(policy: &Policy) -> Self {
        let cluster_rules: HashMap<&str, Arc<[PolicyRule]>> = policy
            .cluster_roles
            .iter()
            .map(|(name, role)| (name.as_str(), Arc::from(role.rules.as_slice())))
            .collect();
        let role_rules = |namespace: &str, role_ref: &RoleRef| -> Option<Arc<[PolicyRule]>> {
            match role_ref.kind.as_str() {
                "ClusterRole" => cluster_rules.get(role_ref.name.as_str()).cloned(),
                "Role" => policy
                    .roles
                    .get(&(namespace.to_owned(), role_ref.name.clone()))
                    .map(|role| Arc::from(role.rules.as_slice())),
                _ => None,
            }
        };
        let mut index = Self::default();
        for binding in policy.cluster_role_bindings.values() {
            // Validation admits only ClusterRoles here.
            if let Some(rules) = role_rules("", &binding.role_ref).filter(|r| !r.is_empty()) {
                index.grant(&binding.subjects, None, &rules);
            }
        }
        for binding in policy.role_bindings.values() {
            let namespace = &binding.metadata.namespace;
            if let Some(rules) = role_rules(namespace, &binding.role_ref).filter(|r| !r.is_empty())
            {
                index.grant(&binding.subjects, Some(namespace), &rules);
            }
        }
        index
    }

    fn grant(&mut self, subjects: &[Subject], namespace: Option<&str>, rules: &Arc<[PolicyRule]>) {
        for subject in subjects {
            let grant = Grant {
                namespace: namespace.map(str::to_owned),
                rules: rules.clone(),
            };
            match subject.kind.as_str() {
                "User" => self
                    .users
                    .entry(subject.name.clone())
                    .or_default()
                    .push(grant),
                "Group" => self
                    .groups
                    .entry(subject.name.clone())
                    .or_default()
                    .push(grant),
                // Service accounts authenticate as this user name.
                "ServiceAccount" => self
                    .users
                    .entry(format!(
                        "system:serviceaccount:{}:{}",
                        subject.namespace, subject.name
                    ))
                    .or_default()
                    .push(grant),
                _ => {}
            }
        }
    }

    /// Every grant that reaches `user`: its own and its groups'.
    fn grants<'a>(&'a self, user: &'a UserInfo) -> impl Iterator<Item = &'a Grant> + 'a {
        let own = self.users.get(&user.name).into_iter().flatten();
        let groups = user
            .groups
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(AUTHENTICATED_GROUP))
            .filter_map(|group| self.groups.get(group))
            .flatten();
        own.chain(groups)
    }

    /// Whether some binding of `user` allows the request.
    pub fn allows(&self, user: &UserInfo, attributes: &Attributes<'_>) -> bool {
        let namespace = match &attributes.target {
            Target::Resource(r) => r.namespace,
            Target::NonResource { .. } => "",
        };
        self.grants(user)
            .filter(|grant| applies_in(grant, namespace, attributes))
            .any(|grant| grant.rules.iter().any(|rule| rule_allows(rule, attributes)))
    }

    /// Whether `user` holds everything `rule` would grant, in `namespace`
    /// ("" for a ClusterRole's rules: only cluster-wide grants count).
    /// This is Kubernetes' escalation check: nobody grants what they do
    /// not hold.
    pub fn covers(&self, user: &UserInfo, namespace: &str, rule: &PolicyRule) -> bool {
        let held: Vec<&PolicyRule> = self
            .grants(user)
            .filter(|grant| match &grant.namespace {
                None => true,
                Some(own) => !namespace.is_empty() && own == namespace,
            })
            .flat_map(|grant| grant.rules.iter())
            .collect();
        let names: &[String] = &rule.resource_names;
        let any_name = [String::new()];
        let names = if names.is_empty() {
            &any_name[..]
        } else {
            names
        };
        for verb in &rule.verbs {
            for url in &rule.non_resource_urls {
                if !held.iter().any(|h| {
                    matches_word(&h.verbs, verb)
                        && h.non_resource_urls.iter().any(|u| url_covers(u, url))
                }) {
                    return false;
                }
            }
            for group in &rule.api_groups {
                for resource in &rule.resources {
                    for name in names {
                        let covered = held.iter().any(|h| {
                            matches_word(&h.verbs, verb)
                                && matches_word(&h.api_groups, group)
                                && h.resources.iter().any(|r| r == "*" || r == resource)
                                && (h.resource_names.is_empty()
                                    || (!name.is_empty() && h.resource_names.contains(name)))
                        });
                        if !covered {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }
}

/// Whether a grant reaches a request in `namespace`: cluster-wide grants
/// reach everything; a RoleBinding's only resource requests in its own
/// namespace (never cluster-scoped objects, lists across namespaces or
/// non-resource URLs).
fn applies_in(grant: &Grant, namespace: &str, attributes: &Attributes<'_>) -> bool {
    match (&grant.namespace, &attributes.target) {
        (None, _) => true,
        (Some(own), Target::Resource(_)) => !namespace.is_empty() && own == namespace,
        (Some(_), Target::NonResource { .. }) => false,
    }
}

/// `words` contains `word` or `*`.
fn matches_word(words: &[String], word: &str) -> bool {
    words.iter().any(|w| w == "*" || w == word)
}

/// Whether one rule allows the request.
pub fn rule_allows(rule: &PolicyRule, attributes: &Attributes<'_>) -> bool {
    if !matches_word(&rule.verbs, attributes.verb) {
        return false;
    }
    match &attributes.target {
        Target::Resource(r) => resource_matches(rule, r),
        Target::NonResource { path } => rule
            .non_resource_urls
            .iter()
            .any(|url| url_covers(url, path)),
    }
}

fn resource_matches(rule: &PolicyRule, r: &ResourceAttributes<'_>) -> bool {
    if !matches_word(&rule.api_groups, r.group) {
        return false;
    }
    let resource_ok = rule.resources.iter().any(|wanted| {
        if wanted == "*" {
            return true;
        }
        match wanted.split_once('/') {
            None => r.subresource.is_empty() && wanted == r.resource,
            Some((resource, sub)) => {
                (resource == "*" || resource == r.resource)
                    && sub == r.subresource
                    && !sub.is_empty()
            }
        }
    });
    resource_ok
        && (rule.resource_names.is_empty()
            || (!r.name.is_empty() && rule.resource_names.iter().any(|n| n == r.name)))
}

/// A rule's URL (`/healthz`, `/api/*`, `*`) covers `path`.
fn url_covers(url: &str, path: &str) -> bool {
    match url.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => url == path,
    }
}

#[cfg(test)]
mod tests {
    use rudder_api::{Kind, meta::ObjectMeta, rbac::GROUP};

    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
            api_groups: groups.iter().map(|s| (*s).to_owned()).collect(),
            resources: resources.iter().map(|s| (*s).to_owned()).collect(),
            ..PolicyRule::default()
        }
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn subject(kind: &str, name: &str) -> Subject {
        Subject {
            kind: kind.into(),
            api_group: GROUP.into(),
            name: name.into(),
            namespace: String::new(),
        }
    }

    fn policy() -> Policy {
        let mut policy = Policy::default();
        policy.roles.insert(
            ("dev".into(), "reader".into()),
            Role {
                metadata: ObjectMeta {
                    name: "reader".into(),
                    namespace: "dev".into(),
                    ..ObjectMeta::default()
                },
                rules: vec![rule(
                    &["get", "list", "watch"],
                    &[""],
                    &["pods", "pods/status"],
                )],
                ..Role::default()
            },
        );
        policy.role_bindings.insert(
            ("dev".into(), "jane-reads".into()),
            RoleBinding {
                metadata: ObjectMeta {
                    name: "jane-reads".into(),
                    namespace: "dev".into(),
                    ..ObjectMeta::default()
                },
                subjects: vec![subject("User", "jane")],
                role_ref: RoleRef {
                    api_group: GROUP.into(),
                    kind: "Role".into(),
                    name: "reader".into(),
                },
                ..RoleBinding::default()
            },
        );
        policy.cluster_roles.insert(
            "node-reader".into(),
            ClusterRole {
                rules: vec![rule(&["get", "list"], &[""], &["nodes"])],
                ..ClusterRole::default()
            },
        );
        policy.cluster_role_bindings.insert(
            "ops-nodes".into(),
            ClusterRoleBinding {
                subjects: vec![subject("Group", "ops")],
                role_ref: RoleRef {
                    api_group: GROUP.into(),
                    kind: "ClusterRole".into(),
                    name: "node-reader".into(),
                },
                ..ClusterRoleBinding::default()
            },
        );
        policy
    }

    #[test]
    fn a_role_binding_reaches_its_namespace_only() {
        let index = RbacIndex::build(&policy());
        let jane = user("jane", &[]);
        let list = |ns| Attributes::resource("list", Kind::Pod, "", ns, "");
        assert!(index.allows(&jane, &list("dev")));
        assert!(!index.allows(&jane, &list("prod")));
        assert!(!index.allows(&jane, &list("")), "not across namespaces");
        assert!(!index.allows(
            &jane,
            &Attributes::resource("delete", Kind::Pod, "", "dev", "p")
        ));
        assert!(index.allows(
            &jane,
            &Attributes::resource("get", Kind::Pod, "status", "dev", "p")
        ));
        assert!(!index.allows(
            &jane,
            &Attributes::resource("get", Kind::Pod, "log", "dev", "p")
        ));
    }

    #[test]
    fn a_cluster_role_binding_reaches_groups_everywhere() {
        let index = RbacIndex::build(&policy());
        let ops = user("sam", &["ops"]);
        assert!(index.allows(&ops, &Attributes::resource("get", Kind::Node, "", "", "n1")));
        assert!(!index.allows(
            &ops,
            &Attributes::resource("update", Kind::Node, "", "", "n1")
        ));
        assert!(!index.allows(
            &user("sam", &[]),
            &Attributes::resource("get", Kind::Node, "", "", "n1")
        ));
    }

    #[test]
    fn names_subresources_and_urls_match_as_kubernetes_matches_them() {
        let mut named = rule(&["update"], &["apps"], &["deployments/scale"]);
        named.resource_names = vec!["web".into()];
        let scale = |name| Attributes::resource("update", Kind::Deployment, "scale", "x", name);
        assert!(rule_allows(&named, &scale("web")));
        assert!(!rule_allows(&named, &scale("db")));
        assert!(!rule_allows(
            &named,
            &Attributes::resource("update", Kind::Deployment, "", "x", "web")
        ));
        let status = rule(&["*"], &["*"], &["*/status"]);
        assert!(rule_allows(
            &status,
            &Attributes::resource("patch", Kind::Pod, "status", "x", "p")
        ));
        assert!(!rule_allows(
            &status,
            &Attributes::resource("patch", Kind::Pod, "", "x", "p")
        ));
        let urls = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/api/*".into(), "/version".into()],
            ..PolicyRule::default()
        };
        assert!(rule_allows(
            &urls,
            &Attributes::non_resource("get", "/api/v1")
        ));
        assert!(rule_allows(
            &urls,
            &Attributes::non_resource("get", "/version")
        ));
        assert!(!rule_allows(
            &urls,
            &Attributes::non_resource("get", "/versions")
        ));
    }

    #[test]
    fn coverage_is_rule_by_rule_and_namespace_by_namespace() {
        let index = RbacIndex::build(&policy());
        let jane = user("jane", &[]);
        assert!(index.covers(&jane, "dev", &rule(&["get"], &[""], &["pods"])));
        assert!(!index.covers(&jane, "dev", &rule(&["delete"], &[""], &["pods"])));
        assert!(!index.covers(&jane, "prod", &rule(&["get"], &[""], &["pods"])));
        assert!(!index.covers(&jane, "", &rule(&["get"], &[""], &["pods"])));
        assert!(!index.covers(&jane, "dev", &rule(&["get"], &[""], &["*"])));
    }
}
