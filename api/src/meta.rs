//! Object metadata shared by every kind, as Kubernetes spells it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `metadata` of every object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Unique within the kind and namespace; a DNS-1123 subdomain or label.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Prefix for a server-generated name when `name` is empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generate_name: String,
    /// Namespace of a namespaced object; defaults to "default".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Server-assigned identity, different for every incarnation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The store revision of the object's last write, for compare-and-swap.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Bumped by the server on every change of `spec`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
    /// Identifying key/value pairs, matched by selectors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Non-identifying key/value pairs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Objects this one belongs to (a ReplicaSet's Deployment, a Pod's
    /// ReplicaSet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    /// RFC 3339 time the server created the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// RFC 3339 time a graceful deletion was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Seconds the object was given to finish when its deletion was
    /// requested (a pod's agent SIGKILLs its containers after them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    /// Finalizers that must be removed before the object goes away.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Deprecated URL of the object. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
    /// Which manager set which fields (server-side apply). Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_list")]
    pub managed_fields: Vec<serde_json::Value>,
}

/// What a delete asks for besides the object's name (Kubernetes'
/// `DeleteOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Seconds a pod gets to stop; `None` takes the pod's
    /// `terminationGracePeriodSeconds`, 0 removes it at once.
    pub grace_period_seconds: Option<i64>,
    /// Precondition: delete only if the object is at this resourceVersion.
    pub resource_version: String,
    /// Precondition: delete only this incarnation of the object.
    pub uid: String,
    /// What becomes of the object's dependents; `None`: the kind's
    /// default, [`PropagationPolicy::Background`].
    pub propagation_policy: Option<PropagationPolicy>,
}

/// What a delete does to the objects the deleted one owns (those whose
/// `ownerReferences` name it), as Kubernetes' `propagationPolicy` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropagationPolicy {
    /// The owner goes at once; the garbage collector deletes its
    /// dependents afterwards.
    Background,
    /// The owner stays (marked, with the [`FOREGROUND_FINALIZER`]) until
    /// the collector has deleted its dependents, theirs first.
    Foreground,
    /// The dependents stay, no longer owned: the owner stays (with the
    /// [`ORPHAN_FINALIZER`]) until the collector has removed itself from
    /// their `ownerReferences`.
    Orphan,
}

/// The finalizer of an owner deleted with [`PropagationPolicy::Orphan`].
pub const ORPHAN_FINALIZER: &str = "orphan";
/// The finalizer of an owner deleted with [`PropagationPolicy::Foreground`].
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

impl PropagationPolicy {
    /// The policy `name` names (`Orphan`, `Background`, `Foreground`).
    ///
    /// # Errors
    /// Any other name, with what is accepted.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "Background" => Ok(Self::Background),
            "Foreground" => Ok(Self::Foreground),
            "Orphan" => Ok(Self::Orphan),
            other => Err(format!(
                "propagationPolicy {other:?} is not one of Orphan, Background, Foreground"
            )),
        }
    }

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Background => "Background",
            Self::Foreground => "Foreground",
            Self::Orphan => "Orphan",
        }
    }

    /// The finalizer that keeps the owner while the collector works.
    pub fn finalizer(self) -> Option<&'static str> {
        match self {
            Self::Background => None,
            Self::Foreground => Some(FOREGROUND_FINALIZER),
            Self::Orphan => Some(ORPHAN_FINALIZER),
        }
    }
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// A reference from an object to its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference")]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    /// Owner's apiVersion.
    pub api_version: String,
    /// Owner's kind.
    pub kind: String,
    /// Owner's name.
    pub name: String,
    /// Owner's uid.
    pub uid: String,
    /// Whether the owner is the managing controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// Whether the owner cannot be deleted before this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// A structured label selector (Deployments, ReplicaSets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must all be present with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Further requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One requirement of a [`LabelSelector`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement")]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` / `NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A condition in an object's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.apimachinery.pkg.apis.meta.v1.Condition")]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RFC 3339 time the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// RFC 3339 time of the last heartbeat (Nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<String>,
    /// RFC 3339 time of the last probe (Pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<String>,
    /// RFC 3339 time of the last update (Deployments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
}
