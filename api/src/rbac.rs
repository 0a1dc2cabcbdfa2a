//! The `rbac.authorization.k8s.io/v1` kinds: Role and ClusterRole (sets of
//! [`PolicyRule`]s), RoleBinding and ClusterRoleBinding (who holds one, by
//! [`Subject`] and [`RoleRef`]). Their meaning is the control plane's
//! authoriser's; here they are shapes, defaults and validation.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;

/// The API group of the RBAC kinds.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// What a rule allows: verbs on resources of API groups (optionally only
/// the named objects), or verbs on non-resource URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.rbac.v1.PolicyRule")]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, `escalate`, `bind`, or `*`.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// API groups ("" is the core group; `*` every group).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// Resources (`pods`), subresources (`pods/status`), `*`, `*/status`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Only these objects (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// URL paths not naming a resource (`/healthz`, `/api/*`); only in
    /// ClusterRoles.
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

/// A set of rules in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.rbac.v1.Role")]
#[serde(rename_all = "camelCase")]
pub struct Role {
    /// `rbac.authorization.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `Role`.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the role allows.
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
}

/// A set of rules for the whole cluster (or, bound by a RoleBinding, for
/// one namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.rbac.v1.ClusterRole")]
#[serde(rename_all = "camelCase")]
pub struct ClusterRole {
    /// `rbac.authorization.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `ClusterRole`.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the role allows.
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
}

/// Who a binding grants its role to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.rbac.v1.Subject")]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    /// `rbac.authorization.k8s.io` for users and groups, "" for service
    /// accounts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// The user, group or service account name.
    pub name: String,
    /// A service account's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The role a binding grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.rbac.v1.RoleRef")]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    /// `rbac.authorization.k8s.io`.
    #[serde(default)]
    pub api_group: String,
    /// `Role` (only from a RoleBinding) or `ClusterRole`.
    pub kind: String,
    /// The role's name.
    pub name: String,
}

/// Grants a Role or ClusterRole to subjects, within one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.rbac.v1.RoleBinding")]
#[serde(rename_all = "camelCase")]
pub struct RoleBinding {
    /// `rbac.authorization.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `RoleBinding`.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Who holds the role.
    #[serde(default)]
    pub subjects: Vec<Subject>,
    /// The role.
    pub role_ref: RoleRef,
}

/// Grants a ClusterRole to subjects, in every namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.rbac.v1.ClusterRoleBinding")]
#[serde(rename_all = "camelCase")]
pub struct ClusterRoleBinding {
    /// `rbac.authorization.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `ClusterRoleBinding`.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Who holds the role.
    #[serde(default)]
    pub subjects: Vec<Subject>,
    /// The role (a ClusterRole).
    pub role_ref: RoleRef,
}
