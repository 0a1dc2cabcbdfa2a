//! The `discovery.k8s.io/v1` kind: EndpointSlice, what kube-proxy (and
//! here the node agents) read to program a Service's backends. Unlike v1
//! Endpoints it says, per endpoint, whether it is ready, still serving and
//! terminating, so a pod being deleted can keep its established flows while
//! getting no new ones.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{core::ObjectReference, meta::ObjectMeta};

/// Label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming who manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on the slices the control plane writes.
pub const MANAGED_BY_CONTROLLER: &str = "endpointslice-controller.k8s.io";
/// Endpoints per slice, as kube-controller-manager's default
/// `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// A set of endpoints of one Service sharing ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.discovery.v1.EndpointSlice")]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    /// `discovery.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `EndpointSlice`.
    #[serde(default)]
    pub kind: String,
    /// Metadata; labelled with [`SERVICE_NAME_LABEL`].
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `IPv4` (the only type served), `IPv6` or `FQDN`.
    #[serde(default)]
    pub address_type: String,
    /// The endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// The ports every endpoint serves.
    #[serde(default)]
    pub ports: Vec<EndpointSlicePort>,
}

/// One backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.discovery.v1.Endpoint")]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Its addresses (one, for a pod).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Whether it takes traffic.
    #[serde(default)]
    pub conditions: EndpointConditions,
    /// Hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The node it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectReference>,
    /// The zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Topology hints. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub hints: Option<serde_json::Value>,
    /// Deprecated topology labels. Kept as written; rudder does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form")]
    pub deprecated_topology: Option<serde_json::Value>,
}

/// `ready` (unset means ready), `serving` (ready, whether or not
/// terminating) and `terminating`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[schemars(rename = "io.k8s.api.discovery.v1.EndpointConditions")]
#[serde(rename_all = "camelCase")]
pub struct EndpointConditions {
    /// Ready for new traffic: serving and not terminating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// Its readiness probe passes (also while it terminates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
    /// It is being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminating: Option<bool>,
}

/// A port of a slice.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema, Default,
)]
#[schemars(rename = "io.k8s.api.discovery.v1.EndpointPort")]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlicePort {
    /// The Service port's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// TCP (default), UDP or SCTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The port number on the endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Application protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

impl EndpointSlice {
    /// The Service this slice belongs to (its [`SERVICE_NAME_LABEL`]).
    pub fn service_name(&self) -> Option<&str> {
        self.metadata
            .labels
            .get(SERVICE_NAME_LABEL)
            .map(String::as_str)
    }
}

impl EndpointConditions {
    /// `ready`, read as Kubernetes does: unset means ready.
    pub fn is_ready(&self) -> bool {
        self.ready.unwrap_or(true)
    }

    /// `serving`: unset means the same as ready.
    pub fn is_serving(&self) -> bool {
        self.serving.unwrap_or_else(|| self.is_ready())
    }

    /// `terminating`: unset means not.
    pub fn is_terminating(&self) -> bool {
        self.terminating.unwrap_or(false)
    }
}
