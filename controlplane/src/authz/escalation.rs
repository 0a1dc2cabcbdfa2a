//! Escalation prevention, as Kubernetes' RBAC does it: a user may write a
//! Role or ClusterRole only with rules they hold themselves (or with the
//! `escalate` verb on it), and a binding only to a role whose rules they
//! hold (or with the `bind` verb on that role).

use rudder_api::{
    Kind,
    rbac::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef},
};
use serde_json::Value;

use super::{attributes::Attributes, rbac::RbacIndex, view::RbacView};
use crate::{apiserver::ApiServerError, auth::UserInfo};

/// Checks that `user` may write `object` (of an RBAC kind; other kinds
/// pass).
///
/// An object that does not decode passes: the write's validation, which
/// decodes it the same way, refuses it naming the field at fault.
///
/// # Errors
/// [`ApiServerError::Forbidden`] naming the first rule not held.
pub fn check(
    user: &UserInfo,
    view: &RbacView,
    kind: Kind,
    object: &Value,
) -> Result<(), ApiServerError> {
    let index = view.index();
    let meta = rudder_api::object::metadata_of(object);
    match kind {
        Kind::Role | Kind::ClusterRole => {
            let rules = if kind == Kind::Role {
                decoded::<Role>(object).map(|role| role.rules)
            } else {
                decoded::<ClusterRole>(object).map(|role| role.rules)
            };
            let Some(rules) = rules else { return Ok(()) };
            let namespace = if kind == Kind::Role {
                meta.namespace.as_str()
            } else {
                ""
            };
            let escalate = Attributes::resource("escalate", kind, "", namespace, &meta.name);
            if index.allows(user, &escalate) {
                return Ok(());
            }
            held(user, &index, namespace, &rules, || {
                format!("{} {:?}", kind.name(), meta.name)
            })
        }
        Kind::RoleBinding | Kind::ClusterRoleBinding => {
            let role_ref = if kind == Kind::RoleBinding {
                decoded::<RoleBinding>(object).map(|binding| binding.role_ref)
            } else {
                decoded::<ClusterRoleBinding>(object).map(|binding| binding.role_ref)
            };
            let Some(role_ref) = role_ref else {
                return Ok(());
            };
            let namespace = if kind == Kind::RoleBinding {
                meta.namespace.as_str()
            } else {
                ""
            };
            let role_kind = if role_ref.kind == "Role" {
                Kind::Role
            } else {
                Kind::ClusterRole
            };
            let bind = Attributes {
                verb: "bind",
                target: super::attributes::Target::Resource(
                    super::attributes::ResourceAttributes {
                        group: rudder_api::rbac::GROUP,
                        resource: role_kind.plural(),
                        subresource: "",
                        namespace,
                        name: &role_ref.name,
                    },
                ),
            };
            if index.allows(user, &bind) {
                return Ok(());
            }
            let Some(rules) = view.role_rules(namespace, &role_ref) else {
                return Err(ApiServerError::Forbidden(format!(
                    "user {:?} may not bind {} {:?}: it does not exist, so the permissions it grants cannot be checked against the user's own",
                    user.name, role_ref.kind, role_ref.name
                )));
            };
            held(user, &index, namespace, &rules, || describe_ref(&role_ref))
        }
        _ => Ok(()),
    }
}

/// The typed object, or `None` for one validation will refuse.
fn decoded<T: serde::de::DeserializeOwned>(object: &Value) -> Option<T> {
    serde_json::from_value(object.clone()).ok()
}

fn describe_ref(role_ref: &RoleRef) -> String {
    format!("{} {:?}", role_ref.kind, role_ref.name)
}

fn held(
    user: &UserInfo,
    index: &RbacIndex,
    namespace: &str,
    rules: &[PolicyRule],
    what: impl Fn() -> String,
) -> Result<(), ApiServerError> {
    match rules
        .iter()
        .find(|rule| !index.covers(user, namespace, rule))
    {
        None => Ok(()),
        Some(rule) => Err(ApiServerError::Forbidden(format!(
            "user {:?} attempts to grant RBAC permissions not currently held ({}): {}{}",
            user.name,
            what(),
            describe_rule(rule),
            if namespace.is_empty() {
                " at the cluster scope".to_owned()
            } else {
                format!(" in the namespace {namespace:?}")
            }
        ))),
    }
}

fn describe_rule(rule: &PolicyRule) -> String {
    let list = |items: &[String]| format!("[{}]", items.join(","));
    if rule.non_resource_urls.is_empty() {
        format!(
            "{{APIGroups:{} Resources:{} ResourceNames:{} Verbs:{}}}",
            list(&rule.api_groups),
            list(&rule.resources),
            list(&rule.resource_names),
            list(&rule.verbs)
        )
    } else {
        format!(
            "{{NonResourceURLs:{} Verbs:{}}}",
            list(&rule.non_resource_urls),
            list(&rule.verbs)
        )
    }
}
