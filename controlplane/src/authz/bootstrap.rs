//! The default policy the control plane ensures on every start, named as
//! Kubernetes names it: `cluster-admin` (bound to `system:masters`),
//! `system:discovery` and `system:basic-user` (every authenticated user),
//! `system:kube-controller-manager` and `system:kube-scheduler` (the
//! in-process controllers and scheduler, which call the API under those
//! user names), `system:node` (not bound: the node authoriser serves
//! nodes), and `view` / `edit` / `admin` for operators to bind.
//!
//! Objects carrying `rbac.authorization.kubernetes.io/autoupdate: "false"`
//! are left as an operator changed them; the others are brought back to
//! the defaults (new rules after an upgrade arrive this way).

use rudder_api::{
    Kind,
    meta::ObjectMeta,
    rbac::{ClusterRole, ClusterRoleBinding, GROUP, PolicyRule, RoleRef, Subject},
};
use serde_json::Value;

use super::node::node_cluster_role_rules;
use crate::{
    apiserver::{ApiServer, ApiServerError},
    auth::{AUTHENTICATED_GROUP, MASTERS_GROUP},
};

/// The user name of the in-process controllers.
pub const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";
/// The user name of the in-process scheduler.
pub const SCHEDULER_USER: &str = "system:kube-scheduler";

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: words(verbs),
        api_groups: words(groups),
        resources: words(resources),
        ..PolicyRule::default()
    }
}

fn words(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

const READ: &[&str] = &["get", "list", "watch"];
const ALL_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// The workload resources of `view`, `edit` and `admin`.
const WORKLOADS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "pods",
            "pods/status",
            "services",
            "services/status",
            "endpoints",
            "events",
        ],
    ),
    (
        "apps",
        &[
            "deployments",
            "deployments/status",
            "deployments/scale",
            "replicasets",
            "replicasets/status",
            "replicasets/scale",
        ],
    ),
    ("discovery.k8s.io", &["endpointslices"]),
    ("coordination.k8s.io", &["leases"]),
];

fn workload_rules(verbs: &[&str]) -> Vec<PolicyRule> {
    WORKLOADS
        .iter()
        .map(|(group, resources)| rule(verbs, &[group], resources))
        .collect()
}

/// The default ClusterRoles.
pub fn cluster_roles() -> Vec<ClusterRole> {
    cluster_role_rules()
        .into_iter()
        .map(|(name, rules)| ClusterRole {
            metadata: metadata(name),
            rules,
            ..ClusterRole::default()
        })
        .collect()
}

fn cluster_role_rules() -> Vec<(&'static str, Vec<PolicyRule>)> {
    let mut edit = workload_rules(ALL_VERBS);
    edit.push(rule(READ, &[""], &["namespaces"]));
    let mut admin = edit.clone();
    admin.push(rule(ALL_VERBS, &[GROUP], &["roles", "rolebindings"]));
    let mut view = workload_rules(READ);
    view.push(rule(READ, &[""], &["namespaces"]));
    vec![
        (
            "cluster-admin",
            vec![
                rule(&["*"], &["*"], &["*"]),
                PolicyRule {
                    verbs: words(&["*"]),
                    non_resource_urls: words(&["*"]),
                    ..PolicyRule::default()
                },
            ],
        ),
        (
            "system:discovery",
            vec![PolicyRule {
                verbs: words(&["get"]),
                non_resource_urls: words(&[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/version",
                    "/version/",
                    "/openapi",
                    "/openapi/*",
                    "/healthz",
                    "/readyz",
                    "/livez",
                ]),
                ..PolicyRule::default()
            }],
        ),
        (
            "system:basic-user",
            vec![rule(
                &["create"],
                &["authorization.k8s.io"],
                &["selfsubjectaccessreviews"],
            )],
        ),
        (CONTROLLER_MANAGER_USER, controller_manager_rules()),
        (SCHEDULER_USER, scheduler_rules()),
        ("system:node", node_cluster_role_rules()),
        ("view", view),
        ("edit", edit),
        ("admin", admin),
    ]
}

/// What the controllers do: manage every workload object, the node
/// lifecycle (Node status and taints, evictions), Events (and their
/// expiry), namespace deletion (which removes everything in one,
/// RBAC objects included) and their leader lease.
fn controller_manager_rules() -> Vec<PolicyRule> {
    let mut rules = workload_rules(ALL_VERBS);
    rules.push(rule(ALL_VERBS, &[""], &["nodes", "nodes/status"]));
    rules.push(rule(
        &["get", "list", "watch", "update", "patch", "delete"],
        &[""],
        &["namespaces", "namespaces/status", "namespaces/finalize"],
    ));
    rules.push(rule(ALL_VERBS, &["events.k8s.io"], &["events"]));
    // Namespace deletion removes RBAC objects too; removing grants is
    // never an escalation.
    rules.push(rule(
        &["get", "list", "watch", "delete", "deletecollection"],
        &[GROUP],
        &["roles", "rolebindings"],
    ));
    rules
}

/// What the scheduler does: read the cluster (its informers), bind pods
/// (an update of `spec.nodeName`), write their scheduling conditions, and
/// record Events.
fn scheduler_rules() -> Vec<PolicyRule> {
    let mut rules = workload_rules(READ);
    rules.push(rule(READ, &[""], &["nodes", "namespaces"]));
    rules.push(rule(&["update", "patch"], &[""], &["pods", "pods/status"]));
    rules.push(rule(
        &["create", "update", "patch"],
        &["", "events.k8s.io"],
        &["events"],
    ));
    rules.push(rule(
        &["create", "update"],
        &["coordination.k8s.io"],
        &["leases"],
    ));
    rules
}

fn subject(kind: &str, name: &str) -> Subject {
    Subject {
        kind: kind.to_owned(),
        api_group: GROUP.to_owned(),
        name: name.to_owned(),
        namespace: String::new(),
    }
}

/// The default ClusterRoleBindings, each to the ClusterRole of its name.
pub fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    binding_subjects()
        .into_iter()
        .map(|(name, subject)| ClusterRoleBinding {
            metadata: metadata(name),
            subjects: vec![subject],
            role_ref: RoleRef {
                api_group: GROUP.to_owned(),
                kind: "ClusterRole".to_owned(),
                name: name.to_owned(),
            },
            ..ClusterRoleBinding::default()
        })
        .collect()
}

/// (binding and role name, subject).
fn binding_subjects() -> Vec<(&'static str, Subject)> {
    vec![
        ("cluster-admin", subject("Group", MASTERS_GROUP)),
        ("system:discovery", subject("Group", AUTHENTICATED_GROUP)),
        ("system:basic-user", subject("Group", AUTHENTICATED_GROUP)),
        (
            CONTROLLER_MANAGER_USER,
            subject("User", CONTROLLER_MANAGER_USER),
        ),
        (SCHEDULER_USER, subject("User", SCHEDULER_USER)),
    ]
}

fn metadata(name: &str) -> ObjectMeta {
    let mut meta = ObjectMeta {
        name: name.to_owned(),
        ..ObjectMeta::default()
    };
    meta.labels
        .insert("kubernetes.io/bootstrapping".into(), "rbac-defaults".into());
    meta.annotations.insert(AUTOUPDATE.into(), "true".into());
    meta
}

/// Creates the default policy, or brings it back to the defaults.
///
/// # Errors
/// Store errors.
pub async fn ensure(api: &ApiServer) -> Result<(), ApiServerError> {
    for role in cluster_roles() {
        let name = role.metadata.name.clone();
        ensure_object(api, Kind::ClusterRole, &name, to_value(&role)?, "rules").await?;
    }
    for binding in cluster_role_bindings() {
        let name = binding.metadata.name.clone();
        let binding = to_value(&binding)?;
        ensure_object(api, Kind::ClusterRoleBinding, &name, binding, "subjects").await?;
    }
    Ok(())
}

fn to_value<T: serde::Serialize>(object: &T) -> Result<Value, ApiServerError> {
    serde_json::to_value(object)
        .map_err(|err| ApiServerError::BadRequest(format!("bootstrap policy: {err}")))
}

/// Creates `wanted`, or updates its `field` when the stored copy differs
/// and may be updated.
async fn ensure_object(
    api: &ApiServer,
    kind: Kind,
    name: &str,
    wanted: Value,
    field: &str,
) -> Result<(), ApiServerError> {
    match api.get(kind, "", name).await {
        Err(ApiServerError::NotFound(_)) => match api.create(kind, wanted).await {
            Ok(_) | Err(ApiServerError::AlreadyExists(_)) => Ok(()),
            Err(err) => Err(err),
        },
        Ok(mut current) => {
            let frozen = current
                .pointer(&format!(
                    "/metadata/annotations/{}",
                    AUTOUPDATE.replace('/', "~1")
                ))
                .and_then(Value::as_str)
                == Some("false");
            if frozen || current.get(field) == wanted.get(field) {
                return Ok(());
            }
            current[field] = wanted[field].clone();
            match api.update(kind, current, false).await {
                // Someone else brought it up to date meanwhile.
                Ok(_) | Err(ApiServerError::Conflict(_)) => Ok(()),
                Err(err) => Err(err),
            }
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        auth::UserInfo,
        authz::{
            Attributes,
            rbac::{Policy, RbacIndex},
        },
    };

    fn default_index() -> RbacIndex {
        let mut policy = Policy::default();
        for role in cluster_roles() {
            policy
                .cluster_roles
                .insert(role.metadata.name.clone(), role);
        }
        for binding in cluster_role_bindings() {
            policy
                .cluster_role_bindings
                .insert(binding.metadata.name.clone(), binding);
        }
        RbacIndex::build(&policy)
    }

    fn user(name: &str) -> UserInfo {
        UserInfo {
            name: name.to_owned(),
            uid: String::new(),
            groups: Vec::new(),
        }
    }

    #[test]
    fn the_namespace_controller_may_empty_a_namespace_of_every_kind() {
        let index = default_index();
        let controllers = user(CONTROLLER_MANAGER_USER);
        for kind in Kind::ALL.into_iter().filter(|kind| kind.namespaced()) {
            for verb in ["list", "delete"] {
                assert!(
                    index.allows(
                        &controllers,
                        &Attributes::resource(verb, kind, "", "x", "o")
                    ),
                    "{CONTROLLER_MANAGER_USER} may not {verb} {kind}"
                );
            }
        }
        assert!(
            !index.allows(
                &controllers,
                &Attributes::resource("create", Kind::ClusterRoleBinding, "", "", "")
            ),
            "the controllers grant nothing"
        );
    }

    #[test]
    fn everyone_reads_discovery_and_asks_but_nothing_more() {
        let index = default_index();
        let anyone = user("someone");
        assert!(index.allows(&anyone, &Attributes::non_resource("get", "/apis/apps/v1")));
        assert!(!index.allows(
            &anyone,
            &Attributes::resource("list", Kind::Pod, "", "default", "")
        ));
        let scheduler = user(SCHEDULER_USER);
        assert!(index.allows(
            &scheduler,
            &Attributes::resource("update", Kind::Pod, "", "a", "p")
        ));
        assert!(!index.allows(
            &scheduler,
            &Attributes::resource("delete", Kind::Pod, "", "a", "p")
        ));
    }
}
