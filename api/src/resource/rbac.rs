//! Defaulting and validation of the RBAC kinds: rules must name verbs and
//! what they apply to, a binding's `roleRef` must name a Role or
//! ClusterRole of `rbac.authorization.k8s.io`, subjects must be users,
//! groups or service accounts.

use super::{Resource, default_type_meta, type_meta, validate_metadata};
use crate::{
    kind::Kind,
    meta::ObjectMeta,
    rbac::{
        ClusterRole, ClusterRoleBinding, GROUP, PolicyRule, Role, RoleBinding, RoleRef, Subject,
    },
    validation::FieldErrors,
};

impl Resource for Role {
    const KIND: Kind = Kind::Role;
    type_meta!(Role, Kind::Role);

    fn apply_defaults(&mut self) {
        default_type_meta(Self::KIND, &mut self.api_version, &mut self.kind);
    }

    fn validate(&self, errors: &mut FieldErrors) {
        validate_metadata(Self::KIND, &self.metadata, errors);
        validate_rules(&self.rules, false, errors);
    }
}

impl Resource for ClusterRole {
    const KIND: Kind = Kind::ClusterRole;
    type_meta!(ClusterRole, Kind::ClusterRole);

    fn apply_defaults(&mut self) {
        default_type_meta(Self::KIND, &mut self.api_version, &mut self.kind);
    }

    fn validate(&self, errors: &mut FieldErrors) {
        validate_metadata(Self::KIND, &self.metadata, errors);
        validate_rules(&self.rules, true, errors);
    }
}

impl Resource for RoleBinding {
    const KIND: Kind = Kind::RoleBinding;
    type_meta!(RoleBinding, Kind::RoleBinding);

    fn apply_defaults(&mut self) {
        default_type_meta(Self::KIND, &mut self.api_version, &mut self.kind);
        default_subjects(&mut self.subjects, &self.metadata.namespace);
    }

    fn validate(&self, errors: &mut FieldErrors) {
        validate_metadata(Self::KIND, &self.metadata, errors);
        validate_role_ref(&self.role_ref, &["Role", "ClusterRole"], errors);
        validate_subjects(&self.subjects, errors);
    }
}

impl Resource for ClusterRoleBinding {
    const KIND: Kind = Kind::ClusterRoleBinding;
    type_meta!(ClusterRoleBinding, Kind::ClusterRoleBinding);

    fn apply_defaults(&mut self) {
        default_type_meta(Self::KIND, &mut self.api_version, &mut self.kind);
        default_subjects(&mut self.subjects, "");
    }

    fn validate(&self, errors: &mut FieldErrors) {
        validate_metadata(Self::KIND, &self.metadata, errors);
        validate_role_ref(&self.role_ref, &["ClusterRole"], errors);
        validate_subjects(&self.subjects, errors);
    }
}

/// Users and groups are of the RBAC group, as Kubernetes defaults them; a
/// RoleBinding's service accounts default to its own namespace.
fn default_subjects(subjects: &mut [Subject], namespace: &str) {
    for subject in subjects {
        match subject.kind.as_str() {
            "User" | "Group" if subject.api_group.is_empty() => {
                GROUP.clone_into(&mut subject.api_group)
            }
            "ServiceAccount" if subject.namespace.is_empty() => {
                namespace.clone_into(&mut subject.namespace);
            }
            _ => {}
        }
    }
}

fn validate_rules(rules: &[PolicyRule], cluster: bool, errors: &mut FieldErrors) {
    for (i, rule) in rules.iter().enumerate() {
        let field = |name: &str| format!("rules[{i}].{name}");
        if rule.verbs.is_empty() {
            errors.push(field("verbs"), "required: at least one verb (or \"*\")");
        }
        for (j, verb) in rule.verbs.iter().enumerate() {
            if verb.is_empty() || verb.chars().any(|c| c.is_whitespace() || c == '/') {
                errors.push(
                    format!("rules[{i}].verbs[{j}]"),
                    format!("{verb:?} is not a verb"),
                );
            }
        }
        let urls = !rule.non_resource_urls.is_empty();
        let resources = !rule.resources.is_empty() || !rule.api_groups.is_empty();
        match (urls, resources) {
            (true, true) => errors.push(
                field("nonResourceURLs"),
                "a rule names either resources (apiGroups, resources) or nonResourceURLs, not both",
            ),
            (true, false) if !cluster => errors.push(
                field("nonResourceURLs"),
                "only ClusterRoles may name nonResourceURLs (a Role's rules are namespaced)",
            ),
            (false, false) => errors.push(
                field("resources"),
                "required: resources with apiGroups, or nonResourceURLs",
            ),
            (false, true) => {
                if rule.api_groups.is_empty() {
                    errors.push(
                        field("apiGroups"),
                        "required: \"\" is the core group, \"*\" every group",
                    );
                }
                if rule.resources.is_empty() {
                    errors.push(
                        field("resources"),
                        "required: a resource (pods, pods/status) or \"*\"",
                    );
                }
            }
            (true, false) => {}
        }
        for (j, url) in rule.non_resource_urls.iter().enumerate() {
            let wildcard = url.find('*');
            if !url.starts_with('/') && url != "*" || wildcard.is_some_and(|at| at + 1 != url.len())
            {
                errors.push(
                    format!("rules[{i}].nonResourceURLs[{j}]"),
                    format!("{url:?}: a path starting with / (a * only at its end)"),
                );
            }
        }
    }
}

fn validate_role_ref(role_ref: &RoleRef, kinds: &[&str], errors: &mut FieldErrors) {
    if role_ref.api_group != GROUP {
        errors.push(
            "roleRef.apiGroup",
            format!("{:?}: must be {GROUP:?}", role_ref.api_group),
        );
    }
    if !kinds.contains(&role_ref.kind.as_str()) {
        errors.push(
            "roleRef.kind",
            format!("{:?}: must be {}", role_ref.kind, kinds.join(" or ")),
        );
    }
    if let Err(why) = check_path_segment(&role_ref.name) {
        errors.push("roleRef.name", format!("{:?}: {why}", role_ref.name));
    }
}

fn validate_subjects(subjects: &[Subject], errors: &mut FieldErrors) {
    for (i, subject) in subjects.iter().enumerate() {
        let field = |name: &str| format!("subjects[{i}].{name}");
        if subject.name.is_empty() {
            errors.push(field("name"), "required");
        }
        match subject.kind.as_str() {
            "User" | "Group" => {
                if subject.api_group != GROUP {
                    errors.push(
                        field("apiGroup"),
                        format!(
                            "{:?}: must be {GROUP:?} for a {}",
                            subject.api_group, subject.kind
                        ),
                    );
                }
            }
            "ServiceAccount" => {
                if !subject.api_group.is_empty() {
                    errors.push(
                        field("apiGroup"),
                        format!("{:?}: must be \"\" for a ServiceAccount", subject.api_group),
                    );
                }
                if subject.namespace.is_empty() {
                    errors.push(field("namespace"), "required for a ServiceAccount");
                }
            }
            other => errors.push(
                field("kind"),
                format!("{other:?}: must be User, Group or ServiceAccount"),
            ),
        }
    }
}

/// RBAC objects are named like path segments (`system:node` is a valid
/// ClusterRole name): not empty, not `.` or `..`, no `/` or `%`.
pub(crate) fn check_path_segment(name: &str) -> Result<(), &'static str> {
    match name {
        "" => Err("required"),
        "." | ".." => Err("may not be \".\" or \"..\""),
        _ if name.contains(['/', '%']) => Err("may not contain \"/\" or \"%\""),
        _ if name.len() > 253 => Err("must be at most 253 characters"),
        _ if name.chars().any(char::is_control) => Err("may not contain control characters"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{Kind, object::normalize};

    #[test]
    fn bindings_must_name_a_role_of_the_rbac_group() {
        let binding = |kind: &str, role_kind: &str, group: &str| {
            json!({"kind": kind, "metadata": {"name": "b", "namespace": "dev"},
                   "subjects": [{"kind": "User", "name": "jane"}],
                   "roleRef": {"apiGroup": group, "kind": role_kind, "name": "system:node"}})
        };
        let ok = normalize(
            Kind::RoleBinding,
            binding("RoleBinding", "ClusterRole", "rbac.authorization.k8s.io"),
        )
        .expect("valid");
        assert_eq!(
            ok["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io",
            "defaulted"
        );
        let err = normalize(
            Kind::RoleBinding,
            binding("RoleBinding", "Pod", "rbac.authorization.k8s.io"),
        )
        .expect_err("a Pod is no role")
        .to_string();
        assert!(
            err.contains("roleRef.kind: \"Pod\": must be Role or ClusterRole"),
            "{err}"
        );
        let mut cluster = binding("ClusterRoleBinding", "Role", "");
        cluster["metadata"] = json!({"name": "system:b"});
        let err = normalize(Kind::ClusterRoleBinding, cluster)
            .expect_err("invalid")
            .to_string();
        assert!(
            err.contains("roleRef.kind: \"Role\": must be ClusterRole"),
            "{err}"
        );
        assert!(err.contains("roleRef.apiGroup"), "{err}");
    }

    #[test]
    fn rules_need_verbs_and_a_target_and_roles_take_no_urls() {
        let role = |rules: serde_json::Value| json!({"kind": "Role", "metadata": {"name": "r", "namespace": "dev"}, "rules": rules});
        normalize(
            Kind::Role,
            role(json!([{"apiGroups": [""], "resources": ["pods/status"], "verbs": ["get"]}])),
        )
        .expect("valid");
        let err = normalize(
            Kind::Role,
            role(json!([
                {"apiGroups": [""], "resources": ["pods"]},
                {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
                {"verbs": ["get"]}
            ])),
        )
        .expect_err("invalid")
        .to_string();
        assert!(err.contains("rules[0].verbs: required"), "{err}");
        assert!(
            err.contains("rules[1].nonResourceURLs: only ClusterRoles"),
            "{err}"
        );
        assert!(err.contains("rules[2].resources: required"), "{err}");
        let err = normalize(
            Kind::ClusterRole,
            json!({"kind": "ClusterRole", "metadata": {"name": "a/b"}}),
        )
        .expect_err("a slash in the name")
        .to_string();
        assert!(err.contains("metadata.name"), "{err}");
    }
}
