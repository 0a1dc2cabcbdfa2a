//! The `apps/v1` kinds: Deployment and ReplicaSet.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    core::{IntOrString, PodSpec},
    meta::{Condition, LabelSelector, ObjectMeta},
};

/// Pods to create from a template: metadata and spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.core.v1.PodTemplateSpec")]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateSpec {
    /// Labels and annotations of the pods.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec of the pods.
    #[serde(default)]
    pub spec: PodSpec,
}

/// A replicated, rolling-updated set of pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.apps.v1.Deployment")]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// `apps/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `Deployment`.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: DeploymentSpec,
    /// Observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeploymentStatus>,
}

/// `Deployment.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.apps.v1.DeploymentSpec")]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// Desired pods; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    /// Which pods belong; must match the template's labels.
    #[serde(default)]
    pub selector: LabelSelector,
    /// The pods.
    #[serde(default)]
    pub template: PodTemplateSpec,
    /// How pods are replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
    /// Seconds a pod must be ready to count as available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i64>,
    /// Old ReplicaSets kept; default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
    /// Paused rollouts do not progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Seconds before a stuck rollout is reported; default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i64>,
}

/// `Deployment.spec.strategy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.apps.v1.DeploymentStrategy")]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStrategy {
    /// `RollingUpdate` (default) or `Recreate`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Bounds of a rolling update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
}

/// `strategy.rollingUpdate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.apps.v1.RollingUpdateDeployment")]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdate {
    /// Extra pods allowed during the update; default 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Pods that may be missing during the update; default 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// `Deployment.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.apps.v1.DeploymentStatus")]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    /// Generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    /// Pods from the current template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i64>,
    /// Ready pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i64>,
    /// Available pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i64>,
    /// Pods missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_replicas: Option<i64>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Count of hash collisions of the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i64>,
}

/// A fixed-size set of identical pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.apps.v1.ReplicaSet")]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSet {
    /// `apps/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `ReplicaSet`.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: ReplicaSetSpec,
    /// Observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReplicaSetStatus>,
}

/// `ReplicaSet.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.apps.v1.ReplicaSetSpec")]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetSpec {
    /// Desired pods; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    /// Which pods belong; must match the template's labels.
    #[serde(default)]
    pub selector: LabelSelector,
    /// The pods.
    #[serde(default)]
    pub template: PodTemplateSpec,
    /// Seconds a pod must be ready to count as available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i64>,
}

/// `ReplicaSet.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.apps.v1.ReplicaSetStatus")]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetStatus {
    /// Pods.
    #[serde(default)]
    pub replicas: i64,
    /// Pods whose labels match the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fully_labeled_replicas: Option<i64>,
    /// Ready pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i64>,
    /// Available pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i64>,
    /// Generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub conditions: Vec<serde_json::Value>,
}
